"""The stages of training and the networks each one builds.

    global  PersonGenerator (GlobalGenerator inside) + multiscale D; at half resolution when
            a local enhancer follows
    local   the global generator grown into a LocalEnhancer + multiscale D
    face    the body generator frozen; a residual face generator + a 70x70 PatchGAN

A `Stage` holds what its step function needs (`steps.body_step` or `steps.face_step`), its
optimizers and the components its checkpoint saves. Every random choice at construction
comes from `cfg.seed` and the stage's index.

With `ema_decay`, a stage also keeps an exponential moving average of its generator's weights
(the "G" or "FG" it trains). The average is what the checkpoint saves as `generator` /
`face_generator`, so validation, the next stage, transfer and export all use it; the trained
weights are saved beside it (`generator_train`, `face_generator_train`) for resuming.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from dancenow.config import TrainConfig
from dancenow.models.discriminator import DiscriminatorConfig, build_discriminator
from dancenow.models.face import FaceGeneratorConfig, build_face_generator, face_discriminator_config
from dancenow.models.generator import GeneratorConfig, LocalEnhancer
from dancenow.models.person import PersonGenerator, PersonGeneratorConfig, PersonSpec
from dancenow.train import checkpoint as ckpt
from dancenow.train.distributed import DistInfo

STAGES = ("global", "local", "face")


# ------------------------------------------------------------------ configs of a run
def stage_plan(cfg: TrainConfig) -> list[str]:
    return [s for s in STAGES if s == "global" or (s == "local" and cfg.use_local_enhancer)
            or (s == "face" and cfg.use_face_gan)]


def person_spec(cfg: TrainConfig) -> PersonSpec:
    return PersonSpec(label_channels=6 if cfg.use_reference else 3, use_temporal=cfg.use_temporal,
                      use_background=cfg.use_background, use_window=cfg.person_window and cfg.use_background,
                      window_multiple=cfg.window_multiple)


def generator_config(cfg: TrainConfig, spec: PersonSpec) -> GeneratorConfig:
    """The final generator's config (a local enhancer when the config asks for one)."""
    return GeneratorConfig(in_channels=spec.in_channels, out_channels=spec.out_channels, ngf=cfg.ngf,
                           n_down=cfg.n_down, n_blocks=cfg.n_blocks, use_local_enhancer=cfg.use_local_enhancer,
                           n_local_blocks=cfg.n_local_blocks, upsample=cfg.upsample, skips=cfg.skips,
                           max_width=cfg.max_width)


def discriminator_config(cfg: TrainConfig) -> DiscriminatorConfig:
    per_frame = person_spec(cfg).label_channels + 3  # pose label (+ warped reference) + frame
    return DiscriminatorConfig(in_channels=per_frame * (2 if cfg.use_temporal else 1), ndf=cfg.ndf,
                               n_layers=cfg.n_layers_D, num_D=cfg.num_D)


def face_configs(cfg: TrainConfig) -> tuple[FaceGeneratorConfig, DiscriminatorConfig]:
    return (FaceGeneratorConfig(ngf=cfg.face_ngf, n_down=cfg.face_n_down, n_blocks=cfg.face_n_blocks,
                                upsample=cfg.upsample),
            face_discriminator_config(ndf=cfg.face_ndf))


# ------------------------------------------------------------------ optimizers
@dataclass(eq=False)
class Optim:
    """An Adam optimizer and, for fp16, its gradient scaler (None otherwise)."""

    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None = None

    def set_lr(self, lr: float) -> None:
        for g in self.opt.param_groups:
            g["lr"] = lr

    def step(self, loss: torch.Tensor) -> None:
        """Backward `loss` and step (scaled, skipping steps with inf/NaN gradients, under fp16)."""
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            self.opt.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()


def make_optim(cfg: TrainConfig, params, device: torch.device) -> Optim:
    # foreach: one fused update over all tensors (on CPU the per-tensor default cost ~10% of a demo step)
    opt = torch.optim.Adam(list(params), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), foreach=True)
    scaler = torch.amp.GradScaler(device.type) if cfg.precision == "fp16" else None
    return Optim(opt, scaler)


# ------------------------------------------------------------------ weight averaging
def ema_copy(module: nn.Module) -> nn.Module:
    """A frozen copy of `module` to hold its average (buffers such as the plate included)."""
    ema = copy.deepcopy(module)
    ema.requires_grad_(False)
    return ema.eval()


@torch.no_grad()
def update_ema(ema: nn.Module, module: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * module, parameter by parameter; buffers copied."""
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in module.parameters()], 1.0 - decay)
    for e, b in zip(ema.buffers(), module.buffers()):
        e.copy_(b)


def ema_decay_at(decay: float, step: int) -> float:
    """The average's decay after `step` steps: short at first, so early weights fade out fast."""
    return min(decay, (1.0 + step) / (10.0 + step))


# ------------------------------------------------------------------ a stage
@dataclass(eq=False)
class Stage:
    """One stage's networks (raw modules and their DDP-wrapped training views) and optimizers."""

    name: str
    index: int
    G: PersonGenerator
    optims: dict[str, Optim]
    components: dict[str, tuple[nn.Module, Any]]
    train_views: dict[str, nn.Module]        # "G"/"D" or "FG"/"FD": what the step calls forward on
    raw: dict[str, nn.Module]                # the same networks unwrapped
    fixed_steps: int
    scale_down: bool = False                 # global stage before a local enhancer: half resolution
    on_step: Callable[["Stage", int], None] | None = field(default=None, repr=False)
    ema: dict[str, nn.Module] = field(default_factory=dict)  # "G" / "FG" -> its weights' average

    @property
    def is_face(self) -> bool:
        return self.name == "face"

    def averaged(self, name: str) -> nn.Module:
        """The network that generates for validation: the average where one is kept."""
        return self.ema.get(name, self.raw[name] if name in self.raw else self.G)

    def update_averages(self, decay: float, step: int) -> None:
        """After an optimizer step (`step` steps done in this stage)."""
        for name, ema in self.ema.items():
            update_ema(ema, self.raw[name], ema_decay_at(decay, step))

    def load(self, ckpt_dir: Path) -> None:
        """Resume inside this stage: every network, optimizer and scaler from its checkpoint."""
        for name, (module, _) in self.components.items():
            ckpt.load_into(ckpt_dir, name, module)
        ckpt.load_optimizers(ckpt_dir, {k: o.opt for k, o in self.optims.items()})
        ckpt.load_scalers(ckpt_dir, {k: o.scaler for k, o in self.optims.items() if o.scaler is not None})

    def save(self, ckpt_dir: Path, state: dict[str, Any]) -> None:
        ckpt.save_checkpoint(ckpt_dir, self.components, {k: o.opt for k, o in self.optims.items()}, state,
                             scalers={k: o.scaler for k, o in self.optims.items() if o.scaler is not None})


@dataclass(frozen=True, eq=False)
class Builder:
    """Builds stages: the run's configs, device, distributed setup and background plate."""

    cfg: TrainConfig
    spec: PersonSpec
    device: torch.device
    info: DistInfo
    background: torch.Tensor | None  # (1, 3, H, W) in [-1, 1]

    def _prep(self, m: nn.Module) -> nn.Module:
        m = m.to(self.device)
        return m.to(memory_format=torch.channels_last) if self.cfg.channels_last else m

    def ddp(self, m: nn.Module) -> nn.Module:
        if not self.info.enabled:
            return m
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(m, device_ids=ids)

    def _person(self, gcfg: GeneratorConfig, rng: torch.Generator | None, ckpt_dir: Path | None) -> PersonGenerator:
        g = PersonGenerator.from_config(PersonGeneratorConfig(gcfg, self.spec), rng)
        if ckpt_dir is not None:
            ckpt.load_into(ckpt_dir, "generator", g)
        return g

    def _generator(self, name: str, rng: torch.Generator, prev_ckpt: Path | None) -> PersonGenerator:
        """The stage's generator; `prev_ckpt`: the previous stage's end (None: new, or resuming inside)."""
        final = generator_config(self.cfg, self.spec)
        gcfg_global = final.global_config()
        if name == "global":
            g = self._person(gcfg_global, rng, None)
        elif prev_ckpt is None:  # resuming inside this stage: weights come from its checkpoint
            g = self._person(final if self.cfg.use_local_enhancer else gcfg_global, None, None)
        elif name == "local":
            glob = self._person(gcfg_global, None, prev_ckpt)
            g = PersonGenerator(LocalEnhancer.from_global(glob.generator, final, rng=rng), self.spec)
        else:
            g = self._person(final if self.cfg.use_local_enhancer else gcfg_global, None, prev_ckpt)
        g = self._prep(g)
        if self.background is not None:
            g.set_background(self.background)
        return g

    def build(self, name: str, index: int, prev_ckpt: Path | None, stage_step: int = 0) -> Stage:
        """Stage `name` (the `index`-th of the run), starting at `stage_step`."""
        cfg = self.cfg
        rng = torch.Generator().manual_seed(cfg.seed * 7919 + index)
        G = self._generator(name, rng, prev_ckpt)
        fixed = {"global": cfg.global_steps, "local": cfg.local_steps, "face": cfg.face_steps}[name]
        if name == "face":
            return self._face_stage(index, G, rng, fixed)
        D = self._prep(build_discriminator(discriminator_config(cfg), rng))
        frozen = name == "local" and stage_step < cfg.local_fix_global_steps
        if frozen:
            for p in G.generator.global_parameters():
                p.requires_grad_(False)
        optims = {"G": make_optim(cfg, G.generator.parameters(), self.device),
                  "D": make_optim(cfg, D.parameters(), self.device)}
        comps, ema = _with_average("generator", G, G.config, "G", cfg.ema_decay)
        return Stage(name, index, G, optims, {**comps, "discriminator": (D, D.config)},
                     {"G": self.ddp(G), "D": self.ddp(D)}, {"G": G, "D": D}, fixed,
                     scale_down=name == "global" and cfg.use_local_enhancer,
                     on_step=self._unfreeze_global if frozen else None, ema=ema)

    def _face_stage(self, index: int, G: PersonGenerator, rng: torch.Generator, fixed: int) -> Stage:
        fgcfg, fdcfg = face_configs(self.cfg)
        for p in G.parameters():
            p.requires_grad_(False)
        FG = self._prep(build_face_generator(fgcfg, rng))
        FD = self._prep(build_discriminator(fdcfg, rng))
        optims = {"FG": make_optim(self.cfg, FG.parameters(), self.device),
                  "FD": make_optim(self.cfg, FD.parameters(), self.device)}
        face_comps, ema = _with_average("face_generator", FG, fgcfg, "FG", self.cfg.ema_decay)
        comps = {"generator": (G, G.config), **face_comps, "face_discriminator": (FD, fdcfg)}
        return Stage("face", index, G, optims, comps, {"FG": self.ddp(FG), "FD": self.ddp(FD)},
                     {"FG": FG, "FD": FD}, fixed, ema=ema)

    def _unfreeze_global(self, stage: Stage, step: int) -> None:
        """Local stage: after `local_fix_global_steps`, train the global branch too (new optimizer)."""
        if step != self.cfg.local_fix_global_steps:
            return
        for p in stage.G.generator.global_parameters():
            p.requires_grad_(True)
        stage.optims["G"] = make_optim(self.cfg, stage.G.generator.parameters(), self.device)
        stage.train_views["G"] = self.ddp(stage.G)
        stage.on_step = None


def _with_average(component: str, module: nn.Module, config: Any, view: str,
                  decay: float) -> tuple[dict[str, tuple[nn.Module, Any]], dict[str, nn.Module]]:
    """(checkpoint components, averages) of a trained generator: with `decay`, the average is
    saved under `component` and the trained weights under `component`_train."""
    if decay <= 0:
        return {component: (module, config)}, {}
    ema = ema_copy(module)
    return {component: (ema, config), f"{component}_train": (module, config)}, {view: ema}
