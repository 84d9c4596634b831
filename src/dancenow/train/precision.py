"""`precision="auto"`: choose the training precision by measuring a few steps on this machine.

CPUs differ: with AMX / AVX512-BF16 units bf16 autocast runs faster than fp32, without them
about 2x slower. On CUDA, bf16 where the GPU supports it (else fp16, with gradient scalers).
The choice is saved in the run's config, so a resumed run keeps it.
"""

from __future__ import annotations

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
TIMED_STEPS = 3


def time_body_steps(cfg: TrainConfig, spec: PersonSpec, device: torch.device, background: torch.Tensor | None,
                    dataset: PairDataset, face_side: int, steps: int = TIMED_STEPS) -> float:
    """Seconds per step of the global stage (after one warm-up step) on a throwaway copy of the
    networks (another seed: the run's own weights and data order are untouched)."""
    solo = DistInfo()
    stage = Builder(cfg, spec, device, solo, background).build("global", 99, None)
    ctx = StepContext(cfg, device, solo, GANLoss(), None, face_side)
    batch = collate_pairs([dataset[i % len(dataset)] for i in range(cfg.batch_size)])
    body_step(ctx, stage, batch, cfg.lr)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t = time.perf_counter()
    for _ in range(steps):
        body_step(ctx, stage, batch, cfg.lr)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t) / steps


def choose_precision(cfg: TrainConfig, spec: PersonSpec, device: torch.device, info: DistInfo,
                     background: torch.Tensor | None, dataset: PairDataset, face_side: int
                     ) -> tuple[str, dict[str, float]]:
    """(precision, measured seconds per step by candidate). Every rank gets rank 0's choice."""
    if device.type == "cuda":
        return ("bf16" if torch.cuda.is_bf16_supported() else "fp16"), {}
    timings = {p: time_body_steps(cfg.replace(precision=p), spec, device, background, dataset, face_side)
               for p in CANDIDATES}
    pick = "bf16" if timings["bf16"] < BF16_MARGIN * timings["fp32"] else "fp32"
    pick = CANDIDATES[broadcast_int(CANDIDATES.index(pick), info, device)]
    return pick, timings
