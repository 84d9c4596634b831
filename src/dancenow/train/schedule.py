"""The schedule of a stage: learning rate, the time-budget planner, and the data order.

All pure functions of the step (and of measured step times for the planner), so a run
interrupted and resumed follows the same schedule.
"""

from __future__ import annotations

import time
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from dancenow.config import TrainConfig
from dancenow.pose.geometry import motion_thirds
from dancenow.train.distributed import DistInfo, broadcast_int

CALIBRATION_STEPS = 4
REPLAN_EVERY = 50
STAGE_FRACTION = {"global": 0, "local": 1, "face": 2}  # index into TrainConfig.time_fractions


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """pix2pixHD schedule: constant, then linear decay to 0 over the last `decay_fraction`."""
    start = int(total * (1.0 - cfg.decay_fraction))
    if step < start or total <= start:
        return cfg.lr
    return cfg.lr * max(0.0, 1.0 - (step - start) / max(1, total - start))


def l1_weight_at(cfg: TrainConfig, lr: float) -> float:
    """lambda_l1 at a step whose learning rate is `lr`: constant while the rate is, then falling
    with it to `l1_end_fraction` of itself (less averaging of what the GAN sharpens, late on)."""
    f = cfg.l1_end_fraction
    return cfg.lambda_l1 * (f + (1.0 - f) * min(1.0, lr / cfg.lr)) if cfg.lr > 0 else cfg.lambda_l1


def plan_config(cfg: TrainConfig, face_hr: bool) -> TrainConfig:
    """The config a time budget is shared by: a face stage at full resolution (costlier steps,
    and where identity is won: 400 -> 1200 face steps took the same-person share from 0.80 to
    1.00 on a 960x1254 target) gets `face_hr_time_fraction` of the time, the others the rest
    in their proportions."""
    if not face_hr or not cfg.use_face_gan:
        return cfg
    g, l, _ = cfg.time_fractions
    k = (1.0 - cfg.face_hr_time_fraction) / max(1e-9, g + l)
    return cfg.replace(time_fractions=(g * k, l * k, cfg.face_hr_time_fraction))


def plan_stage_steps(cfg: TrainConfig, stage: str, rest: list[str], step: int, per_step: float,
                     stage_start: float, now: float, budget: float) -> int:
    """Total steps of `stage` under a time budget (seconds since the run started).

    The stage ends at its share (`cfg.time_fractions` among the stages `rest`, itself
    first) of the time that was left when it started at `stage_start`; the steps still
    to go are the time until then over the measured `per_step`. At least one more step.
    """
    fr = {name: cfg.time_fractions[i] for name, i in STAGE_FRACTION.items()}
    share = fr[stage] / max(1e-9, sum(fr[s] for s in rest))
    stage_end = stage_start + max(0.0, budget - stage_start) * share
    return max(step + 1, step + int(max(0.0, stage_end - now) / max(per_step, 1e-9)))


class BudgetPlanner:
    """Plans a stage's step count from measured step times under a time budget.

    Calibrates after a warm-up step, plans after CALIBRATION_STEPS - 1 more, and re-plans
    every REPLAN_EVERY steps from the mean so far (step times drift: poses, validation,
    load). Rank 0's plan is broadcast so every rank runs the same number of steps.
    """

    def __init__(self, cfg: TrainConfig, stage: str, rest: list[str], budget_s: float, info: DistInfo,
                 device: torch.device):
        self.cfg, self.stage, self.rest, self.budget_s = cfg, stage, rest, budget_s
        self.info, self.device = info, device
        self.t0: float | None = None
        self.step0 = 0
        self.stage_start = 0.0

    def after_step(self, step: int, elapsed: float) -> int | None:
        """Call after each step (`step` done, `elapsed` run seconds): a new total, or None."""
        if step == 1:
            self.t0, self.step0, self.stage_start = time.time(), step, elapsed
            return None
        if self.t0 is None or step <= self.step0:
            return None
        if step != self.step0 + CALIBRATION_STEPS - 1 and (step - self.step0) % REPLAN_EVERY != 0:
            return None
        per_step = (time.time() - self.t0) / (step - self.step0)
        total = plan_stage_steps(self.cfg, self.stage, self.rest, step, per_step, self.stage_start, elapsed,
                                 self.budget_s)
        return broadcast_int(total, self.info, self.device)


def fast_repeats(motion: np.ndarray, repeat: int) -> np.ndarray:
    """How often each item appears in an epoch: `repeat` times for the third of the items that
    move fastest (`motion`, one value per item; `pose.geometry.motion_thirds`, the thirds
    `evaluate` reports), once for the rest."""
    out = np.ones(len(motion), dtype=np.int64)
    if repeat > 1:
        out[motion_thirds(motion) == 2] = repeat
    return out


class StepSampler(Sampler[int]):
    """Dataset indices for steps [start, stop) of a stage: a fresh seeded permutation per
    epoch, rank r taking every world-th sample. A pure function of the step.

    `repeats` (one count per item) lists item i that many times in every epoch; none: once each."""

    def __init__(self, n: int, seed: int, stage_index: int, start: int, stop: int, batch: int, info: DistInfo,
                 repeats: np.ndarray | None = None):
        if repeats is not None and (len(repeats) != n or np.min(repeats, initial=1) < 1):
            raise ValueError(f"repeats must be {n} counts of at least 1")
        self.items = torch.arange(n) if repeats is None else torch.from_numpy(np.repeat(np.arange(n), repeats))
        self.n, self.seed, self.stage_index = len(self.items), seed, stage_index
        self.start, self.stop, self.batch, self.info = start, stop, batch, info
        self._perm_epoch, self._perm = -1, None

    def _perm_for(self, epoch: int) -> torch.Tensor:
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.stage_index * 10_007 + epoch)
            self._perm, self._perm_epoch = self.items[torch.randperm(self.n, generator=g)], epoch
        return self._perm

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start, self.stop):
            for b in range(self.batch):
                flat = (step * self.info.world_size + self.info.rank) * self.batch + b
                yield int(self._perm_for(flat // self.n)[flat % self.n])

    def __len__(self) -> int:
        return (self.stop - self.start) * self.batch
