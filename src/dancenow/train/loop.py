"""`dancenow train`: the training loop (global -> optional local enhancer -> face GAN).

The parts, each readable alone: `stages` (the networks and optimizers of each stage),
`steps` (one body or face step), `schedule` (learning rate, time-budget planner, data
order), `validate` (held-out frames and sample grids), `metrics` (the one sink for logs),
`checkpoint` and `distributed`. The run folder is written through `dancenow.run`.

Determinism: every random choice (weights, data order) derives from `cfg.seed`; the data
order is a function of the step, so a run interrupted and resumed on the CPU ends with
the same weights as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

import dancenow
from dancenow.atomic import write_json
from dancenow.config import TrainConfig
from dancenow.data.dataset import PairDataset, PreparedData, collate_pairs
from dancenow.errors import DancenowError, InputError
from dancenow.models.losses import GANLoss, VGGPerceptualLoss
from dancenow.models.vgg import load_vgg_trunk
from dancenow.pose.normalize import NormStats
from dancenow.pose.pipeline import load_target_stats
from dancenow.pose.render import RenderStyle
from dancenow.run import DataInfo, RunConfig, RunDir
from dancenow.tensors import to_tensor
from dancenow.train import checkpoint as ckpt
from dancenow.train.distributed import DistInfo, barrier, init_distributed, shutdown
from dancenow.train.metrics import MetricsSink
from dancenow.train.precision import choose_precision
from dancenow.train.schedule import BudgetPlanner, StepSampler, fast_repeats, lr_at, plan_config
from dancenow.train.stages import Builder, Stage, generator_config, person_spec, stage_plan
from dancenow.train.steps import StepContext, body_step, face_step
from dancenow.train.validate import save_preview, validate


@dataclass
class TrainResult:
    run_dir: Path
    steps: dict[str, int]
    val_ssim: float | None
    finished: bool
    seconds: float
    weights_digest: str = ""  # sha256 of the trained generator's weights on this rank (ranks must agree; not the average)
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class LoopState:
    """Where the loop is; saved as the checkpoint's state.json, so a resumed run continues exactly."""

    stage_index: int = 0
    stage_step: int = 0
    planned: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    budget_s: float | None = None
    val_ssim: float | None = None
    max_minutes: float | None = None

    @classmethod
    def of(cls, d: dict[str, Any]) -> "LoopState":
        return cls(int(d.get("stage_index", 0)), int(d.get("stage_step", 0)), dict(d.get("planned", {})),
                   float(d.get("elapsed_s", 0.0)), d.get("budget_s"), d.get("val_ssim"), d.get("max_minutes"))

    def to_dict(self, stage: str, elapsed_s: float) -> dict[str, Any]:
        return {"version": dancenow.__version__, "stage": stage, "stage_index": self.stage_index,
                "stage_step": self.stage_step, "planned": self.planned, "elapsed_s": elapsed_s,
                "budget_s": self.budget_s, "val_ssim": self.val_ssim, "max_minutes": self.max_minutes}


@dataclass(eq=False)
class Session:
    """One invocation of `train`: the run, its data, the step context and the clock."""

    run: RunDir
    config: RunConfig
    data: PreparedData
    dataset: PairDataset
    ctx: StepContext
    builder: Builder
    sink: MetricsSink
    state: LoopState
    max_steps: int | None
    t_start: float = field(default_factory=time.time)
    done: int = 0  # steps run in this invocation

    @property
    def cfg(self) -> TrainConfig:
        return self.config.train

    @property
    def info(self) -> DistInfo:
        return self.ctx.info

    def elapsed(self) -> float:
        return self.state.elapsed_s + time.time() - self.t_start

    def save(self, stage: Stage) -> None:
        if self.info.is_main:
            stage.save(self.run.checkpoint, self.state.to_dict(stage.name, self.elapsed()))
        barrier(self.info)


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
        torch.manual_seed(cfg.seed)
        session = _open(Path(data_dir), RunDir(Path(run_dir)), cfg, resume, max_minutes, max_steps, dev, info,
                        progress)
        return _run(session)
    finally:
        shutdown(info)


def _open_run(run: RunDir, data: PreparedData, cfg: TrainConfig, resume: bool, max_minutes: float | None,
              info: DistInfo) -> tuple[RunConfig, LoopState]:
    """The run's config and loop state: a new run folder, or the saved ones when resuming."""
    state, loaded = LoopState(), False
    if resume and run.exists():
        saved = run.load_config()
        if saved.data.sha256 != data.manifest["source"]["sha256"]:
            raise InputError(data.root, f"is not the data {run.root} was trained on (different source video)")
        if saved.person.use_background and run.background_path.is_file() and \
                run.background_path.read_bytes() != (data.root / "background.png").read_bytes():
            raise InputError(data.root, f"has another background plate than {run.root} was trained on "
                                        "(prepare was re-run): train a new run")
        if run.checkpoint.is_dir():
            state, loaded = LoopState.of(ckpt.read_state(run.checkpoint)), True
        cfg = saved.train
    elif info.is_main:
        if run.exists():
            raise InputError(run.root, "already holds a run: pass --resume to continue it, or choose another -o")
        run.create(data, cfg.use_background)
    state.max_minutes = state.max_minutes if loaded else max_minutes
    state.budget_s = (max_minutes * 60.0) if max_minutes else state.budget_s
    stats: NormStats = load_target_stats(data.root)
    config = RunConfig(cfg, person_spec(cfg), DataInfo.of(data), RenderStyle(), stats, tuple(stage_plan(cfg)),
                       state.max_minutes)
    return config, state


def _open(data_dir: Path, run: RunDir, cfg: TrainConfig, resume: bool, max_minutes: float | None,
          max_steps: int | None, device: torch.device, info: DistInfo, progress: bool) -> Session:
    data = PreparedData.load(data_dir)
    config, state = _open_run(run, data, cfg, resume, max_minutes, info)
    cfg = config.train
    mult = generator_config(cfg, config.person).size_multiple
    w, h = data.size
    if w % mult or h % mult:
        raise InputError(data.root, f"frame size {w}x{h} is not a multiple of {mult} (needed by this generator); "
                                    f"prepare with --size a multiple of {mult}")
    gap = round(cfg.reference_gap_s * float(data.manifest["fps"]))
    reference = _reference_bank(run, data, cfg, info, resume, gap)
    dataset = PairDataset(data, "train", config.render, reference=reference, gap=gap,
                          mattes=cfg.lambda_matte > 0 and cfg.use_background)
    if len(dataset) < 1:
        raise InputError(data.root, "the training split has fewer than 2 frames")
    vgg = VGGPerceptualLoss(load_vgg_trunk(cfg.vgg_weights, device=device)) if cfg.use_vgg_loss else None
    background = to_tensor(data.background())[None].to(device) if cfg.use_background else None
    if cfg.precision == "auto":
        chosen, timings = choose_precision(cfg, config.person, device, info, background, dataset,
                                           config.data.face_box_size)
        cfg = cfg.replace(precision=chosen)
        config = dataclasses.replace(config, train=cfg)
        if info.is_main and progress:
            measured = ", ".join(f"{k} {v:.3f}" for k, v in timings.items())
            print(f"precision auto: {chosen}" + (f" (s/step measured: {measured})" if measured else ""))
    ctx = StepContext(cfg, device, info, GANLoss(), vgg, config.data.face_box_size,
                      face_hr=cfg.use_face_hr and config.data.face_hr_size > 0, reference=reference)
    if info.is_main:
        run.save_config(config)
    sink = MetricsSink(run, write=info.is_main, progress=progress)
    barrier(info)
    return Session(run, config, data, dataset, ctx, Builder(cfg, config.person, device, info, background), sink,
                   state, max_steps)


def _reference_bank(run: RunDir, data: PreparedData, cfg: TrainConfig, info: DistInfo, resume: bool, gap: int):
    """The run's reference frames (use_reference): the saved ones when resuming, else chosen
    from the training split, never within `gap` frames of its end (the held-out frames follow
    it); every rank chooses the same, the main rank saves them."""
    if not cfg.use_reference:
        return None
    if resume and run.references_path.is_file():
        return run.load_references()
    bank = data.reference_bank(cfg.reference_frames, margin=gap)
    if info.is_main:
        run.save_references(bank)
    return bank


def _run(s: Session) -> TrainResult:
    """Every stage from where the state says, top to bottom; then the summary."""
    stages = list(s.config.stages)
    stage: Stage | None = None
    stopped = False
    while s.state.stage_index < len(stages) and not stopped:
        name, st = stages[s.state.stage_index], s.state
        prev = s.run.checkpoint if (st.stage_index > 0 and st.stage_step == 0) else None
        stage = s.builder.build(name, st.stage_index, prev, st.stage_step)
        if st.stage_step > 0:
            stage.load(s.run.checkpoint)
        stopped = _run_stage(s, stage)
        if not stopped:
            _next_stage(s, stages)
    finished = s.state.stage_index >= len(stages)
    if s.info.is_main:
        s.sink.close()
        s.run.write_summary({"finished": finished, "steps": s.state.planned, "val_ssim_person": s.state.val_ssim,
                             "seconds": s.elapsed()})
        where = "finished" if finished else (f"stopped at {stages[s.state.stage_index]} step {s.state.stage_step} "
                                             "(resume with --resume)")
        val = s.state.val_ssim
        print(f"{s.run.root}: {where}; planned steps {s.state.planned}; validation SSIM (person crop) "
              f"{val if val is None else round(val, 4)}")
    digest = weights_digest(stage.G.generator) if stage is not None else ""
    return TrainResult(s.run.root, s.state.planned, s.state.val_ssim, finished, s.elapsed(), digest, s.sink.history)


def _next_stage(s: Session, stages: list[str]) -> None:
    """The finished stage's final checkpoint becomes the start of the next one."""
    s.state.stage_index += 1
    s.state.stage_step = 0
    if s.state.stage_index < len(stages) and s.info.is_main:
        st = ckpt.read_state(s.run.checkpoint)
        st.update({"stage_index": s.state.stage_index, "stage_step": 0, "stage": stages[s.state.stage_index]})
        write_json(s.run.checkpoint / ckpt.STATE_FILE, st)
    barrier(s.info)


def _loader(s: Session, stage: Stage, stop: int) -> DataLoader:
    repeats = fast_repeats(s.dataset.motion(), s.cfg.fast_repeat) if s.cfg.fast_repeat > 1 else None
    sampler = StepSampler(len(s.dataset), s.cfg.seed, stage.index, s.state.stage_step, stop, s.cfg.batch_size,
                          s.info, repeats)
    return DataLoader(s.dataset, batch_size=s.cfg.batch_size, sampler=sampler, collate_fn=collate_pairs,
                      num_workers=s.cfg.num_workers, persistent_workers=False)


def _run_stage(s: Session, stage: Stage) -> bool:
    """Steps of one stage until its planned total; True when stopped early (max_steps, time)."""
    cfg, st = s.cfg, s.state
    total = st.planned.get(stage.name)
    if total is None and not st.budget_s:
        total = st.planned[stage.name] = stage.fixed_steps
    planner = None
    if total is None:
        planner = BudgetPlanner(plan_config(cfg, s.ctx.face_hr), stage.name, list(s.config.stages[stage.index:]), st.budget_s,
                                s.info, s.ctx.device)
    step_fn: Callable = face_step if stage.is_face else body_step
    s.sink.start_stage(stage.name, total, st.stage_step)
    stopped = False
    for batch in _loader(s, stage, total if total is not None else st.stage_step + 10**9):
        if total is not None and st.stage_step >= total:
            break
        if stage.on_step is not None:
            stage.on_step(stage, st.stage_step)
        lr = lr_at(cfg, st.stage_step, total if total is not None else 10**9)
        losses = step_fn(s.ctx, stage, batch, lr, st.stage_step)
        _check_finite(stage.name, st.stage_step + 1, losses)
        st.stage_step += 1
        stage.update_averages(cfg.ema_decay, st.stage_step)
        s.done += 1
        s.sink.step()
        new_total = planner.after_step(st.stage_step, s.elapsed()) if planner is not None else None
        if new_total is not None:
            total = st.planned[stage.name] = new_total
            s.sink.set_total(total)
        if losses and (st.stage_step % cfg.log_every == 0 or st.stage_step == 1):
            s.sink.losses(stage.name, st.stage_step, lr, s.elapsed(), losses)
        finished = total is not None and st.stage_step >= total
        _report(s, stage, finished)
        over_time = st.budget_s is not None and s.elapsed() > st.budget_s * 1.02 + 30
        hit_max = s.max_steps is not None and s.done >= s.max_steps
        if finished or st.stage_step % cfg.checkpoint_every == 0 or hit_max or over_time:
            s.save(stage)
        if hit_max or over_time:
            stopped = True
            break
    s.sink.end_stage()
    return stopped


def _check_finite(stage: str, step: int, losses: dict[str, float]) -> None:
    """Stop before a diverged model reaches a checkpoint (the last good one stays)."""
    bad = sorted(k for k, v in losses.items() if not math.isfinite(v))
    if bad:
        raise DancenowError(f"training diverged: {stage} step {step} gave non-finite {', '.join(bad)}; "
                            "the last checkpoint is kept (--resume continues from it; try a lower lr)")


def _report(s: Session, stage: Stage, finished: bool) -> None:
    """Rank 0: validation every `val_every` steps and at the stage's end, sample grids between."""
    step = s.state.stage_step
    if not s.info.is_main:
        return
    label = f"{stage.name}_{step:06d}"
    if step % s.cfg.val_every == 0 or finished:
        stage.G.eval()
        s.state.val_ssim = validate(s.ctx, stage, s.data, s.config.render, s.run, s.sink, label)
        stage.G.train()
        if s.state.val_ssim is not None:
            s.sink.validation(stage.name, step, s.elapsed(), s.state.val_ssim)
    elif step % s.cfg.sample_every == 0:
        stage.G.eval()
        save_preview(s.ctx, stage, s.data, s.config.render, s.run, s.sink, label)
        stage.G.train()


def weights_digest(module: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
