"""Device and precision: which device a process uses and how autocast is set up.

`device` and `precision` are values passed down; nothing else in dancenow chooses a device
or builds an autocast context.
"""

from __future__ import annotations

import contextlib

import torch

from dancenow.errors import DancenowError

PRECISIONS = ("fp32", "bf16", "fp16")


def pick_device(name: str | None = None, local_rank: int = 0) -> torch.device:
    """'auto'/None: CUDA (this process's local GPU) if available, else CPU."""
    if name in (None, "auto"):
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    return dev


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a precision name (None: fp32, no autocast)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context for `precision` on `device` (a no-op for fp32).

    fp16 needs CUDA (and a gradient scaler when training: see `dancenow.train.schedule`).
    """
    dtype = autocast_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    if dtype == torch.float16 and device.type != "cuda":
        raise DancenowError("precision fp16 needs CUDA; use bf16 or fp32 on the CPU")
    return torch.autocast(device_type=device.type, dtype=dtype)
