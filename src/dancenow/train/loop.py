"""`dancenow train`: the training loop (global -> optional local enhancer -> face GAN).

One step of the body stages (temporal smoothing as in the paper):
    fake_{t-1} = G(pose_{t-1}, 0);  fake_t = G(pose_t, fake_{t-1})      (gradient through both)
    D judges (pose_{t-1}, pose_t, frame_{t-1}, frame_t), real vs generated;
    G loss = LSGAN + lambda_feat * feature matching + lambda_vgg * VGG (+ lambda_l1 * L1).
The face stage freezes G; a residual face generator refines the face crop of fake_t and
a 70x70 PatchGAN judges (pose crop, face crop).

Determinism: every random choice (weights, data order) derives from `cfg.seed`; the data
order is a function of the step, so a run interrupted and resumed on the CPU ends with
the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

import dancenow
from dancenow.atomic import atomic_path, write_json
from dancenow.data.dataset import PairDataset, PairSample, PreparedData, collate_pairs, to_image, to_tensor
from dancenow.errors import DancenowError, InputError
from dancenow.models.discriminator import DiscriminatorConfig, build_discriminator
from dancenow.models.face import FaceGeneratorConfig, build_face_generator, face_discriminator_config
from dancenow.models.generator import GeneratorConfig, LocalEnhancer, build_generator
from dancenow.models.losses import GANLoss, VGGPerceptualLoss, feature_matching_loss
from dancenow.models.person import PersonGenerator, PersonSpec, crop_windows, person_windows
from dancenow.pose.pipeline import TARGET_STATS_FILE
from dancenow.train import checkpoint as ckpt
from dancenow.train.config import TrainConfig
from dancenow.train.distributed import DistInfo, barrier, broadcast_int, init_distributed, shutdown

RUN_CONFIG = "config.json"
CALIBRATION_STEPS = 4
REPLAN_EVERY = 50


# ------------------------------------------------------------------ helpers
def stage_plan(cfg: TrainConfig) -> list[str]:
    stages = ["global"]
    if cfg.use_local_enhancer:
        stages.append("local")
    if cfg.use_face_gan:
        stages.append("face")
    return stages


def generator_config(cfg: TrainConfig, spec: PersonSpec) -> GeneratorConfig:
    """The final generator's config (a local enhancer when the config asks for one)."""
    return GeneratorConfig(in_channels=spec.in_channels, out_channels=spec.out_channels, ngf=cfg.ngf,
                           n_down=cfg.n_down, n_blocks=cfg.n_blocks, use_local_enhancer=cfg.use_local_enhancer,
                           n_local_blocks=cfg.n_local_blocks)


def person_spec(cfg: TrainConfig) -> PersonSpec:
    return PersonSpec(label_channels=3, use_temporal=cfg.use_temporal, use_background=cfg.use_background,
                      use_window=cfg.person_window and cfg.use_background)


def discriminator_config(cfg: TrainConfig) -> DiscriminatorConfig:
    per_frame = 3 + 3
    return DiscriminatorConfig(in_channels=per_frame * (2 if cfg.use_temporal else 1), ndf=cfg.ndf,
                               n_layers=cfg.n_layers_D, num_D=cfg.num_D)


def face_configs(cfg: TrainConfig) -> tuple[FaceGeneratorConfig, DiscriminatorConfig]:
    return (FaceGeneratorConfig(ngf=cfg.face_ngf, n_down=cfg.face_n_down, n_blocks=cfg.face_n_blocks),
            face_discriminator_config(ndf=cfg.face_ndf))


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """pix2pixHD schedule: constant, then linear decay to 0 over the last `decay_fraction`."""
    start = int(total * (1.0 - cfg.decay_fraction))
    if step < start or total <= start:
        return cfg.lr
    return cfg.lr * max(0.0, 1.0 - (step - start) / max(1, total - start))


def plan_stage_steps(cfg: TrainConfig, stage: str, rest: list[str], step: int, per_step: float,
                     stage_start: float, now: float, budget: float) -> int:
    """Total steps of `stage` under a time budget (seconds since the run started).

    The stage ends at its share (`cfg.time_fractions` among the stages `rest`, itself
    first) of the time that was left when it started at `stage_start`; the steps still
    to go are the time until then over the measured `per_step`. At least one more step.
    """
    fr = {"global": cfg.time_fractions[0], "local": cfg.time_fractions[1], "face": cfg.time_fractions[2]}
    share = fr[stage] / max(1e-9, sum(fr[s] for s in rest))
    stage_end = stage_start + max(0.0, budget - stage_start) * share
    return max(step + 1, step + int(max(0.0, stage_end - now) / max(per_step, 1e-9)))


class StepSampler(Sampler[int]):
    """Dataset indices for steps [start, stop) of a stage: a fresh seeded permutation per
    epoch, rank r taking every world-th sample. A pure function of the step."""

    def __init__(self, n: int, seed: int, stage_index: int, start: int, stop: int, batch: int, info: DistInfo):
        self.n, self.seed, self.stage_index = n, seed, stage_index
        self.start, self.stop, self.batch, self.info = start, stop, batch, info
        self._perm_epoch, self._perm = -1, None

    def _perm_for(self, epoch: int) -> torch.Tensor:
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.stage_index * 10_007 + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start, self.stop):
            for b in range(self.batch):
                flat = (step * self.info.world_size + self.info.rank) * self.batch + b
                yield int(self._perm_for(flat // self.n)[flat % self.n])

    def __len__(self) -> int:
        return (self.stop - self.start) * self.batch


def crop_faces(boxes: torch.Tensor, *images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Crop the same face box out of each image batch; samples without a face are dropped.

    boxes: (B, 4) x0, y0, x1, y1 (-1: none). Returns (kept indices (K,), [crops (K, C, s, s)]).
    """
    keep = torch.nonzero(boxes[:, 0] >= 0).flatten()
    crops: list[torch.Tensor] = []
    for img in images:
        parts = [img[i, :, int(boxes[i, 1]) : int(boxes[i, 3]), int(boxes[i, 0]) : int(boxes[i, 2])] for i in keep.tolist()]
        crops.append(torch.stack(parts) if parts else img[:0])
    return keep, crops


def paste_faces(image: torch.Tensor, boxes: torch.Tensor, keep: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    out = image.clone()
    for j, i in enumerate(keep.tolist()):
        x0, y0, x1, y1 = (int(v) for v in boxes[i])
        out[i, :, y0:y1, x0:x1] = faces[j].clamp(-1, 1).to(out.dtype)
    return out


def _unwrap(m: nn.Module) -> nn.Module:
    return m.module if isinstance(m, nn.parallel.DistributedDataParallel) else m


# ------------------------------------------------------------------ result
@dataclass
class TrainResult:
    run_dir: Path
    steps: dict[str, int]
    val_ssim: float | None
    finished: bool
    seconds: float
    weights_digest: str = ""  # sha256 of the generator's weights on this rank (ranks must agree)
    history: list[dict[str, Any]] = field(default_factory=list)


# ------------------------------------------------------------------ trainer
class Trainer:
    def __init__(self, data: PreparedData, run_dir: Path, cfg: TrainConfig, device: torch.device, info: DistInfo,
                 *, progress: bool = True, log: Callable[[str], None] = print):
        self.data, self.run_dir, self.cfg, self.device, self.info = data, run_dir, cfg, device, info
        self.progress = progress and info.is_main
        self.log = log if info.is_main else (lambda s: None)
        self.spec = person_spec(cfg)
        self.gcfg = generator_config(cfg, self.spec)
        self.dcfg = discriminator_config(cfg)
        self.fgcfg, self.fdcfg = face_configs(cfg)
        w, h = data.size
        mult = self.gcfg.size_multiple
        if w % mult or h % mult:
            raise InputError(data.root, f"frame size {w}x{h} is not a multiple of {mult} (needed by this generator); "
                                        f"prepare with --size a multiple of {mult}")
        self.stages = stage_plan(cfg)
        self.gan = GANLoss()
        self.vgg: VGGPerceptualLoss | None = None
        if cfg.use_vgg_loss:
            from dancenow.models.vgg import load_vgg_trunk

            self.vgg = VGGPerceptualLoss(load_vgg_trunk(cfg.vgg_weights, device=device))
        bg = data.background() if cfg.use_background else None
        self.background = to_tensor(bg)[None].to(device) if bg is not None else None
        self.dataset = PairDataset(data, "train")
        if len(self.dataset) < 1:
            raise InputError(data.root, "the training split has fewer than 2 frames")
        self.val_start, self.val_stop = data.split("val")
        self.tb = None
        self.metrics_path = run_dir / "metrics.jsonl"
        self.t0 = time.time()
        self.elapsed_before = 0.0

    # ---------------------------------------------------------- precision
    def autocast(self):
        if self.cfg.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.cfg.precision == "bf16" else torch.float16
        if dtype == torch.float16 and self.device.type != "cuda":
            raise DancenowError("precision fp16 needs CUDA; use bf16 or fp32 on the CPU")
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _prep(self, m: nn.Module) -> nn.Module:
        m = m.to(self.device)
        if self.cfg.channels_last:
            m = m.to(memory_format=torch.channels_last)
        return m

    def _ddp(self, m: nn.Module) -> nn.Module:
        if not self.info.enabled:
            return m
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(m, device_ids=ids)

    def _adam(self, params) -> torch.optim.Adam:
        # foreach: one fused update over all tensors (on CPU the per-tensor default cost ~10% of a demo step)
        return torch.optim.Adam([p for p in params], lr=self.cfg.lr, betas=(self.cfg.beta1, self.cfg.beta2), foreach=True)

    # ---------------------------------------------------------- nets per stage
    def build_stage(self, stage: str, stage_index: int, prev_ckpt: Path | None, stage_step: int = 0) -> None:
        """Create the networks and optimizers of `stage` (weights from the previous stage's end)."""
        cfg = self.cfg
        rng = torch.Generator().manual_seed(cfg.seed * 7919 + stage_index)
        gcfg_global = self.gcfg.global_config()
        self.scale_down = stage == "global" and cfg.use_local_enhancer
        final_cfg = self.gcfg if cfg.use_local_enhancer else gcfg_global
        if stage == "global":
            g = build_generator(gcfg_global, rng)
        elif prev_ckpt is None:  # resuming inside this stage: weights come from its checkpoint
            g = build_generator(final_cfg)
        elif stage == "local":
            glob = build_generator(gcfg_global)
            ckpt.load_into(prev_ckpt, "generator", glob)
            g = LocalEnhancer.from_global(glob, self.gcfg, rng=rng)
        else:
            g = build_generator(final_cfg)
            ckpt.load_into(prev_ckpt, "generator", g)
        self.g_raw = self._prep(g)
        self.g_cfg_now = gcfg_global if stage == "global" else self.gcfg
        self.G = PersonGenerator(self.g_raw, self.spec, self.background)
        self.stage = stage
        self.D = self.FG = self.FD = None
        self.opts: dict[str, torch.optim.Optimizer] = {}
        if stage in ("global", "local"):
            self.D_raw = self._prep(build_discriminator(self.dcfg, rng))
            if stage == "local" and stage_step < cfg.local_fix_global_steps:
                for p in self.g_raw.global_parameters():
                    p.requires_grad_(False)
            self.opts["G"] = self._adam(self.g_raw.parameters())
            self.opts["D"] = self._adam(self.D_raw.parameters())
            self.G_train = self._ddp(self.G)
            self.D_train = self._ddp(self.D_raw)
        else:  # face
            for p in self.g_raw.parameters():
                p.requires_grad_(False)
            self.FG_raw = self._prep(build_face_generator(self.fgcfg, rng))
            self.FD_raw = self._prep(build_discriminator(self.fdcfg, rng))
            self.opts["FG"] = self._adam(self.FG_raw.parameters())
            self.opts["FD"] = self._adam(self.FD_raw.parameters())
            self.FG_train = self._ddp(self.FG_raw)
            self.FD_train = self._ddp(self.FD_raw)

    def components(self) -> dict[str, tuple[nn.Module, Any]]:
        comps: dict[str, tuple[nn.Module, Any]] = {"generator": (self.g_raw, self.g_cfg_now)}
        if self.stage in ("global", "local"):
            comps["discriminator"] = (self.D_raw, self.dcfg)
        else:
            comps["face_generator"] = (self.FG_raw, self.fgcfg)
            comps["face_discriminator"] = (self.FD_raw, self.fdcfg)
        return comps

    def load_stage_checkpoint(self, ckpt_dir: Path) -> None:
        for name, (module, _) in self.components().items():
            ckpt.load_into(ckpt_dir, name, module)
        ckpt.load_optimizers(ckpt_dir, self.opts)

    # ---------------------------------------------------------- one step
    def _inputs(self, batch: PairSample) -> PairSample:
        b = batch.to(self.device)
        if self.scale_down:
            pool = lambda t: nn.functional.avg_pool2d(t, 2)  # noqa: E731
            b = PairSample(pool(b.label_prev), pool(b.label), pool(b.image_prev), pool(b.image), b.face_box // 2, b.index)
        if self.cfg.channels_last:
            cl = lambda t: t.contiguous(memory_format=torch.channels_last)  # noqa: E731
            b = PairSample(cl(b.label_prev), cl(b.label), cl(b.image_prev), cl(b.image), b.face_box, b.index)
        return b

    def _pair(self, labels: tuple[torch.Tensor, ...], images: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return torch.cat([*labels, *images], dim=1)

    def _vgg(self, fake: torch.Tensor, real: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        if not self.cfg.vgg_on_person_crop or self.spec.use_window:  # a window is already the person's box
            return self.vgg(fake, real)
        margin = max(4, label.shape[-1] // 32)
        boxes = [person_windows([label[i : i + 1]], self.G.size_multiple, margin)[0] for i in range(label.shape[0])]
        total = 0.0
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            total = total + self.vgg(fake[i : i + 1, :, y0:y1, x0:x1], real[i : i + 1, :, y0:y1, x0:x1])
        return total / len(boxes)

    def body_step(self, batch: PairSample, lr: float) -> dict[str, float]:
        cfg, b = self.cfg, self._inputs(batch)
        for opt in self.opts.values():
            for g in opt.param_groups:
                g["lr"] = lr
        D_eval = _unwrap(self.D_train)
        windows = self.G.windows_for(b.label)  # frame t's person window (None: whole frames)
        with self.autocast():
            # temporal: (frame t-1, frame t); otherwise (None, frame t). Whole frames.
            fake_prev, fake = self.G_train(b.label_prev, b.label)
            if windows is not None:  # D and the losses see frames t-1 and t at frame t's window
                cut = lambda t: crop_windows(t, windows)  # noqa: E731
                b = PairSample(cut(b.label_prev), cut(b.label), cut(b.image_prev), cut(b.image), b.face_box, b.index)
                fake, fake_prev = cut(fake), (cut(fake_prev) if fake_prev is not None else None)
            if cfg.use_temporal:
                cond = (b.label_prev, b.label)
                fake_pair = self._pair(cond, (fake_prev, fake))
                real_pair = self._pair(cond, (b.image_prev, b.image))
            else:
                fake_pair = self._pair((b.label,), (fake,))
                real_pair = self._pair((b.label,), (b.image,))
            # generator losses, D frozen
            D_eval.requires_grad_(False)
            pred_fake = D_eval(fake_pair)
            with torch.no_grad():
                pred_real = D_eval(real_pair)
            loss_gan = self.gan(pred_fake, True)
            loss_feat = feature_matching_loss(pred_fake, pred_real, cfg.n_layers_D, cfg.num_D) * cfg.lambda_feat
            loss_vgg = torch.zeros((), device=self.device)
            loss_l1 = torch.zeros((), device=self.device)
            pairs = [(fake, b.image, b.label)] + ([(fake_prev, b.image_prev, b.label_prev)] if fake_prev is not None else [])
            if self.vgg is not None and cfg.lambda_vgg > 0:
                vp = pairs if cfg.vgg_on_both_frames else pairs[:1]
                loss_vgg = sum(self._vgg(f, r, l) for f, r, l in vp) / len(vp) * cfg.lambda_vgg
            if cfg.lambda_l1 > 0:
                loss_l1 = sum(nn.functional.l1_loss(f.float(), r.float()) for f, r, _ in pairs) / len(pairs) * cfg.lambda_l1
            loss_g = loss_gan + loss_feat + loss_vgg + loss_l1
        self.opts["G"].zero_grad(set_to_none=True)
        loss_g.backward()
        self.opts["G"].step()
        D_eval.requires_grad_(True)
        with self.autocast():
            both = self.D_train(torch.cat([real_pair, fake_pair.detach()], dim=0))
            n = real_pair.shape[0]
            pred_r = [[f[:n] for f in scale] for scale in both]
            pred_f = [[f[n:] for f in scale] for scale in both]
            loss_d = 0.5 * (self.gan(pred_r, True) + self.gan(pred_f, False))
        self.opts["D"].zero_grad(set_to_none=True)
        loss_d.backward()
        self.opts["D"].step()
        return {"G_gan": loss_gan.item(), "G_feat": loss_feat.item(), "G_vgg": loss_vgg.item(),
                "G_l1": loss_l1.item(), "D": loss_d.item()}

    def face_step(self, batch: PairSample, lr: float) -> dict[str, float]:
        cfg, b = self.cfg, self._inputs(batch)
        for opt in self.opts.values():
            for g in opt.param_groups:
                g["lr"] = lr
        with torch.no_grad(), self.autocast():  # whole frames, exactly as transfer generates them
            prev = self.G.step(b.label_prev, None) if self.cfg.use_temporal else None
            fake = self.G.step(b.label, prev)
        keep, (lab_c, fake_c, real_c) = crop_faces(b.face_box, b.label, fake.float(), b.image)
        if len(keep) == 0:
            return {}
        FD_eval = _unwrap(self.FD_train)
        with self.autocast():
            refined = self.FG_train(lab_c, fake_c)
            FD_eval.requires_grad_(False)
            pf = FD_eval(torch.cat([lab_c, refined], 1))
            with torch.no_grad():
                pr = FD_eval(torch.cat([lab_c, real_c], 1))
            loss_gan = self.gan(pf, True)
            loss_feat = feature_matching_loss(pf, pr, self.fdcfg.n_layers, self.fdcfg.num_D) * cfg.lambda_feat
            loss_vgg = self.vgg(refined, real_c) * cfg.lambda_face_vgg if self.vgg is not None else torch.zeros((), device=self.device)
            loss_l1 = nn.functional.l1_loss(refined.float(), real_c.float()) * cfg.lambda_face_l1
            loss = loss_gan + loss_feat + loss_vgg + loss_l1
        self.opts["FG"].zero_grad(set_to_none=True)
        loss.backward()
        self.opts["FG"].step()
        FD_eval.requires_grad_(True)
        with self.autocast():
            both = self.FD_train(torch.cat([torch.cat([lab_c, real_c], 1), torch.cat([lab_c, refined.detach()], 1)], 0))
            n = len(keep)
            loss_d = 0.5 * (self.gan([[f[:n] for f in s] for s in both], True) + self.gan([[f[n:] for f in s] for s in both], False))
        self.opts["FD"].zero_grad(set_to_none=True)
        loss_d.backward()
        self.opts["FD"].step()
        return {"F_gan": loss_gan.item(), "F_feat": loss_feat.item(), "F_vgg": loss_vgg.item(),
                "F_l1": loss_l1.item(), "FD": loss_d.item()}

    # ---------------------------------------------------------- validation and samples
    @torch.no_grad()
    def generate_chain(self, indices: list[int]) -> list[np.ndarray]:
        """Generate consecutive frames in order (temporal feedback), with face refinement if trained."""
        from dancenow.data.dataset import to_tensor as tt

        outs, prev = [], None
        face_g = self.FG_raw if self.stage == "face" else None
        for i in indices:
            label = tt(self.data.label(i))[None].to(self.device)
            if self.scale_down:
                label = nn.functional.avg_pool2d(label, 2)
            with self.autocast():
                fake = self.G.step(label, prev).float()
            prev = fake
            if face_g is not None:
                box = torch.from_numpy(self.data.face_boxes[i].astype(np.int64))[None]
                keep, (lc, fc) = crop_faces(box, label, fake)
                if len(keep):
                    with self.autocast():
                        fake = paste_faces(fake, box, keep, face_g(lc, fc).float())
            outs.append(to_image(fake[0]))
        return outs

    def validate(self, step_label: str) -> float | None:
        from dancenow.eval.metrics import body_box, crop, ssim

        if self.val_stop - self.val_start < 2:
            return None
        idx = list(range(self.val_start, min(self.val_stop, self.val_start + self.cfg.val_frames)))
        gen = self.generate_chain(idx)
        scores = []
        for i, g in zip(idx, gen):
            real = self.data.read_frame(i)
            if g.shape != real.shape:
                real = to_image(nn.functional.avg_pool2d(to_tensor(real)[None], 2)[0])
                kp = self.data.poses.keypoints[i] * np.array([0.5, 0.5, 1], np.float32)
            else:
                kp = self.data.poses.keypoints[i]
            box = body_box(kp, real.shape[1], real.shape[0])
            scores.append(ssim(crop(g, box), crop(real, box)))
        self.save_samples(idx, gen, step_label)
        return float(np.mean(scores))

    def save_samples(self, idx: list[int], gen: list[np.ndarray], step_label: str) -> None:
        import cv2

        picks = np.unique(np.linspace(0, len(idx) - 1, min(4, len(idx))).round().astype(int))
        rows = []
        for p in picks:
            i = idx[p]
            g = gen[p]
            h, w = g.shape[:2]
            real = cv2.resize(self.data.read_frame(i), (w, h), interpolation=cv2.INTER_AREA)
            label = cv2.resize(self.data.label(i), (w, h), interpolation=cv2.INTER_AREA)
            rows.append(np.concatenate([label, real, g], axis=1))
        grid = np.concatenate(rows, axis=0)
        path = self.run_dir / "samples" / f"{step_label}.png"
        with atomic_path(path) as tmp:
            cv2.imwrite(str(tmp), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        shutil.copyfile(path, self.run_dir / "samples" / "latest.png")
        if self.tb is not None:
            self.tb.add_image("samples/pose|real|generated", grid, dataformats="HWC",
                              global_step=int(step_label.split("_")[-1]) if step_label.split("_")[-1].isdigit() else 0)


# ------------------------------------------------------------------ entry point
def _prepare_run_dir(run_dir: Path, data: PreparedData, cfg: TrainConfig, resume: bool) -> None:
    cfg_path = run_dir / RUN_CONFIG
    if cfg_path.is_file() and not resume:
        raise InputError(run_dir, "already holds a run: pass --resume to continue it, or choose another -o")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "samples").mkdir(exist_ok=True)
    shutil.copyfile(data.root / TARGET_STATS_FILE, run_dir / TARGET_STATS_FILE)
    if cfg.use_background:
        shutil.copyfile(data.root / "background.png", run_dir / "background.png")
    write_json(run_dir / "manifest.json", data.manifest)


def run_config_dict(cfg: TrainConfig, data: PreparedData, spec: PersonSpec) -> dict[str, Any]:
    return {
        "dancenow_version": dancenow.__version__,
        "train": cfg.to_dict(),
        "person": {"label_channels": spec.label_channels, "use_temporal": spec.use_temporal,
                   "use_background": spec.use_background, "use_window": spec.use_window},
        "data": {"root": str(data.root.resolve()), "size": list(data.size), "fps": data.manifest["fps"],
                 "face_box_size": data.manifest["face_box_size"], "sha256": data.manifest["source"]["sha256"]},
        "stages": stage_plan(cfg),
    }


def train(data_dir: str | Path, run_dir: str | Path, cfg: TrainConfig, *, resume: bool = False,
          max_minutes: float | None = None, max_steps: int | None = None, device: str | None = None,
          progress: bool = True) -> TrainResult:
    """Train (or resume) a personal model. Runs unchanged under `torchrun`.

    max_minutes: plan every stage's step count to fit this wall-clock budget (measured
    step times); the plan is saved, so a resumed run follows it. max_steps: stop (after
    checkpointing) once this many steps ran in this invocation: for smoke runs and tests.
    """
    info, dev = init_distributed(device)
    try:
        return _train(Path(data_dir), Path(run_dir), cfg, resume, max_minutes, max_steps, dev, info, progress)
    finally:
        shutdown(info)


def _train(data_dir: Path, run_dir: Path, cfg: TrainConfig, resume: bool, max_minutes: float | None,
           max_steps: int | None, device: torch.device, info: DistInfo, progress: bool) -> TrainResult:
    torch.manual_seed(cfg.seed)
    data = PreparedData.load(data_dir)
    ckpt_dir = run_dir / "checkpoints" / "latest"
    state: dict[str, Any]
    if resume and (run_dir / RUN_CONFIG).is_file():
        saved = json.loads((run_dir / RUN_CONFIG).read_text())
        cfg = TrainConfig.from_dict({**saved["train"], "time_fractions": tuple(saved["train"]["time_fractions"])})
        if saved["data"]["sha256"] != data.manifest["source"]["sha256"]:
            raise InputError(data_dir, f"is not the data {run_dir} was trained on (different source video)")
        state = ckpt.read_state(ckpt_dir) if ckpt_dir.is_dir() else {}
    else:
        if info.is_main:
            _prepare_run_dir(run_dir, data, cfg, resume)
        state = {}
    trainer = Trainer(data, run_dir, cfg, device, info, progress=progress)
    if info.is_main:
        write_json(run_dir / RUN_CONFIG, {**run_config_dict(cfg, data, trainer.spec),
                                          "max_minutes": max_minutes if not state else state.get("max_minutes")})
        from torch.utils.tensorboard import SummaryWriter

        trainer.tb = SummaryWriter(str(run_dir / "tb"))
    barrier(info)

    planned: dict[str, int] = dict(state.get("planned", {}))
    budget_s = (max_minutes * 60.0) if max_minutes else state.get("budget_s")
    elapsed_before = float(state.get("elapsed_s", 0.0))
    t_start = time.time()
    stage_index = int(state.get("stage_index", 0))
    stage_step = int(state.get("stage_step", 0))
    done_this_call = 0
    val_ssim = state.get("val_ssim")
    history: list[dict[str, Any]] = []
    stopped = False

    def elapsed() -> float:
        return elapsed_before + time.time() - t_start

    def save(stage_name: str) -> None:
        if info.is_main:
            st = {"version": dancenow.__version__, "stage": stage_name, "stage_index": stage_index,
                  "stage_step": stage_step, "planned": planned, "elapsed_s": elapsed(), "budget_s": budget_s,
                  "val_ssim": val_ssim, "max_minutes": max_minutes}
            ckpt.save_checkpoint(ckpt_dir, trainer.components(), trainer.opts, st)
        barrier(info)

    while stage_index < len(trainer.stages) and not stopped:
        stage = trainer.stages[stage_index]
        prev_ckpt = ckpt_dir if (stage_index > 0 or stage_step > 0) else None
        trainer.build_stage(stage, stage_index, prev_ckpt if stage_step == 0 else None, stage_step)
        if stage_step > 0:
            trainer.load_stage_checkpoint(ckpt_dir)
        fixed_steps = {"global": cfg.global_steps, "local": cfg.local_steps, "face": cfg.face_steps}[stage]
        total = planned.get(stage)
        if total is None and not budget_s:
            total = planned[stage] = fixed_steps
        step_fn = trainer.face_step if stage == "face" else trainer.body_step
        bar = tqdm(total=total, initial=stage_step, desc=f"train[{stage}]", unit="step", disable=not trainer.progress,
                   dynamic_ncols=True)
        calib_t0, calib_step, stage_t0 = None, 0, 0.0
        upper = total if total is not None else stage_step + 10**9
        sampler = StepSampler(len(trainer.dataset), cfg.seed, stage_index, stage_step, upper, cfg.batch_size, info)
        loader = DataLoader(trainer.dataset, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate_pairs,
                            num_workers=cfg.num_workers, persistent_workers=False)
        for batch in loader:
            if total is not None and stage_step >= total:
                break
            if (stage == "local" and cfg.local_fix_global_steps > 0 and stage_step == cfg.local_fix_global_steps):
                for p in trainer.g_raw.global_parameters():
                    p.requires_grad_(True)
                trainer.opts["G"] = trainer._adam(trainer.g_raw.parameters())
                trainer.G_train = trainer._ddp(trainer.G)
            lr = lr_at(cfg, stage_step, total if total is not None else 10**9)
            losses = step_fn(batch, lr)
            stage_step += 1
            done_this_call += 1
            bar.update()
            # plan the stage from measured step time (after a warm-up step), and re-plan every
            # REPLAN_EVERY steps from the mean so far: step times drift (poses, validation, load)
            if total is None and stage_step == 1:
                calib_t0, calib_step, stage_t0 = time.time(), stage_step, elapsed()
            if calib_t0 is not None and (stage_step == calib_step + CALIBRATION_STEPS - 1
                                         or (stage_step - calib_step) % REPLAN_EVERY == 0) and stage_step > calib_step:
                per_step = (time.time() - calib_t0) / (stage_step - calib_step)
                rest = trainer.stages[stage_index:]
                planned_here = plan_stage_steps(cfg, stage, rest, stage_step, per_step, stage_t0, elapsed(), budget_s)
                total = broadcast_int(planned_here, info, trainer.device)
                planned[stage] = total
                bar.total = total
                bar.refresh()
            if losses and (stage_step % cfg.log_every == 0 or stage_step == 1):
                rec = {"stage": stage, "step": stage_step, "lr": lr, "time_s": round(elapsed(), 2), **losses}
                history.append(rec)
                if info.is_main:
                    with open(trainer.metrics_path, "a") as fh:
                        fh.write(json.dumps(rec) + "\n")
                    if trainer.tb is not None:
                        for k, v in losses.items():
                            trainer.tb.add_scalar(f"{stage}/{k}", v, stage_step)
                bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
            finished_stage = total is not None and stage_step >= total
            if info.is_main and (stage_step % cfg.val_every == 0 or finished_stage):
                trainer.G.eval()
                val_ssim = trainer.validate(f"{stage}_{stage_step:06d}")
                trainer.G.train()
                if val_ssim is not None:
                    rec = {"stage": stage, "step": stage_step, "val_ssim_person": val_ssim, "time_s": round(elapsed(), 2)}
                    history.append(rec)
                    with open(trainer.metrics_path, "a") as fh:
                        fh.write(json.dumps(rec) + "\n")
                    if trainer.tb is not None:
                        trainer.tb.add_scalar(f"{stage}/val_ssim_person", val_ssim, stage_step)
                    bar.write(f"[{stage} {stage_step}] validation SSIM (person crop): {val_ssim:.4f}")
            elif info.is_main and stage_step % cfg.sample_every == 0:
                trainer.G.eval()
                idx = list(range(trainer.val_start, min(trainer.val_stop, trainer.val_start + 4)))
                trainer.save_samples(idx, trainer.generate_chain(idx), f"{stage}_{stage_step:06d}")
                trainer.G.train()
            over_time = budget_s is not None and elapsed() > budget_s * 1.02 + 30
            hit_max = max_steps is not None and done_this_call >= max_steps
            if finished_stage or stage_step % cfg.checkpoint_every == 0 or hit_max or over_time:
                save(stage)
            if hit_max or over_time:
                stopped = True
                break
        bar.close()
        if stopped:
            break
        # next stage starts from this stage's final weights (saved above)
        stage_index += 1
        stage_step = 0
        if stage_index < len(trainer.stages):
            # the finished stage's final checkpoint becomes the start of the next one
            if info.is_main:
                st = ckpt.read_state(ckpt_dir)
                st.update({"stage_index": stage_index, "stage_step": 0, "stage": trainer.stages[stage_index]})
                write_json(ckpt_dir / ckpt.STATE_FILE, st)
            barrier(info)
    finished = stage_index >= len(trainer.stages)
    if info.is_main:
        if trainer.tb is not None:
            trainer.tb.close()
        summary = {"finished": finished, "steps": planned, "val_ssim_person": val_ssim, "seconds": elapsed()}
        write_json(run_dir / "summary.json", summary)
        where = "finished" if finished else (f"stopped at {trainer.stages[stage_index]} step {stage_step} "
                                             f"(resume with --resume)")
        trainer.log(f"{run_dir}: {where}; planned steps {planned}; validation SSIM (person crop) {val_ssim if val_ssim is None else round(val_ssim, 4)}")
    return TrainResult(run_dir, planned, val_ssim, finished, elapsed(), weights_digest(trainer.g_raw), history)


def weights_digest(module: nn.Module) -> str:
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
