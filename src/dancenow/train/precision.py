"""`precision="auto"`: choose the training precision by measuring a few steps on this machine.

CPUs differ: with AMX / AVX512-BF16 units bf16 autocast runs faster than fp32, without them
about 2x slower. On CUDA, bf16 where the GPU supports it (else fp16, with gradient scalers).
The choice is saved in the run's config, so a resumed run keeps it.
"""

from __future__ import annotations

import statistics
import time

import torch

from dancenow.config import TrainConfig
from dancenow.data.dataset import PairDataset, collate_pairs
from dancenow.models.losses import GANLoss
from dancenow.models.person import PersonSpec
from dancenow.train.distributed import DistInfo, broadcast_int
from dancenow.train.stages import Builder
from dancenow.train.steps import StepContext, body_step

CANDIDATES = ("fp32", "bf16")
BF16_MARGIN = 0.9   # bf16 is chosen only when its step takes under 90% of fp32's
ROUNDS = 3          # timed rounds per candidate, interleaved (a load that comes and goes hits both)
ROUND_STEPS = 2     # steps per round; the median round counts


class _Timer:
    """One candidate's throwaway networks (another seed: the run's own weights and data order are
    untouched), warmed up, timed a round at a time."""

    def __init__(self, cfg: TrainConfig, spec: PersonSpec, device: torch.device, background: torch.Tensor | None,
                 batch, face_side: int):
        solo = DistInfo()
        self.stage = Builder(cfg, spec, device, solo, background).build("global", 99, None)
        self.ctx = StepContext(cfg, device, solo, GANLoss(), None, face_side)
        self.batch, self.device, self.rounds = batch, device, []
        for _ in range(2):  # kernels are created on the first steps of a shape
            body_step(self.ctx, self.stage, batch, cfg.lr)

    def round(self, steps: int) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t = time.perf_counter()
        for _ in range(steps):
            body_step(self.ctx, self.stage, self.batch, self.ctx.cfg.lr)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.rounds.append((time.perf_counter() - t) / steps)


def time_body_steps(cfgs: dict[str, TrainConfig], spec: PersonSpec, device: torch.device,
                    background: torch.Tensor | None, dataset: PairDataset, face_side: int,
                    rounds: int = ROUNDS, steps: int = ROUND_STEPS) -> dict[str, float]:
    """Median seconds per step of the global stage for each config, timed in interleaved rounds."""
    cfg0 = next(iter(cfgs.values()))
    batch = collate_pairs([dataset[i % len(dataset)] for i in range(cfg0.batch_size)])
    timers = {k: _Timer(c, spec, device, background, batch, face_side) for k, c in cfgs.items()}
    for _ in range(rounds):
        for t in timers.values():
            t.round(steps)
    return {k: statistics.median(t.rounds) for k, t in timers.items()}


def choose_precision(cfg: TrainConfig, spec: PersonSpec, device: torch.device, info: DistInfo,
                     background: torch.Tensor | None, dataset: PairDataset, face_side: int
                     ) -> tuple[str, dict[str, float]]:
    """(precision, measured seconds per step by candidate). Every rank gets rank 0's choice."""
    if device.type == "cuda":
        return ("bf16" if torch.cuda.is_bf16_supported() else "fp16"), {}
    timings = time_body_steps({p: cfg.replace(precision=p) for p in CANDIDATES}, spec, device, background,
                              dataset, face_side)
    pick = "bf16" if timings["bf16"] < BF16_MARGIN * timings["fp32"] else "fp32"
    pick = CANDIDATES[broadcast_int(CANDIDATES.index(pick), info, device)]
    return pick, timings
