"""The person generator as the method uses it: pose (+ previous frame) in, frame out.

`PersonGenerator` wraps a pix2pixHD generator (GlobalGenerator or LocalEnhancer):
- temporal smoothing (paper): the input is the pose label concatenated with the
  previous generated frame (zeros for the first frame of a chain);
- background composite (dancenow): with a static camera the target's background is
  known, so the generator outputs RGB plus an alpha channel and the frame is
  alpha * rgb + (1 - alpha) * background. Capacity goes to the person, and the
  background is exactly the target's.
- person window (dancenow): with a background plate, the generator only runs on a
  window around the drawn skeleton (its box, a margin of 1/16 of the frame, snapped to
  the generator's size multiple); the rest of the frame is the plate. The person fills
  about a third of a typical frame, so a step costs a third of the full-frame one and
  generation runs about twice as fast. Training, validation and transfer all use the
  same window rule, so instance-norm statistics agree between them.
`forward_pair` generates two consecutive frames with the gradient flowing through the
first, in one call (so DistributedDataParallel sees one forward per step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from dancenow.models.generator import GeneratorConfig, build_generator
from dancenow.pose.render import STICK_CHANNELS

Window = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), in pixels


@dataclass(frozen=True)
class PersonSpec:
    label_channels: int = 3
    use_temporal: bool = True
    use_background: bool = True
    use_window: bool = False  # needs use_background: the plate fills the frame outside the window
    window_multiple: int = 0  # window sides rounded up to this (0: the generator's size multiple)

    def __post_init__(self) -> None:
        if self.use_window and not self.use_background:
            raise ValueError("PersonSpec: use_window needs use_background (the plate fills the rest of the frame)")
        if self.window_multiple < 0:
            raise ValueError(f"PersonSpec: window_multiple must be >= 0, got {self.window_multiple}")

    @property
    def in_channels(self) -> int:
        return self.label_channels + (3 if self.use_temporal else 0)

    @property
    def out_channels(self) -> int:
        return 4 if self.use_background else 3


@dataclass(frozen=True)
class PersonGeneratorConfig:
    """A saved person generator: the pix2pixHD generator inside it and how it is used."""

    generator: GeneratorConfig
    spec: PersonSpec

    def __post_init__(self) -> None:
        g, s = self.generator, self.spec
        if g.in_channels != s.in_channels or g.out_channels != s.out_channels:
            raise ValueError(f"PersonGeneratorConfig: generator channels {g.in_channels} -> {g.out_channels} "
                             f"do not fit the person spec ({s.in_channels} -> {s.out_channels})")

    @property
    def size_multiple(self) -> int:
        return int(self.generator.size_multiple)


def window_margin(width: int, height: int) -> int:
    """Pixels added around the skeleton's box: 1/16 of the frame's larger side, at least 4."""
    return max(4, round(max(width, height) / 16))


def person_windows(labels: Sequence[torch.Tensor], multiple: int, margin: int | None = None,
                   round_to: int | None = None) -> list[Window]:
    """One window per sample covering the drawn pixels of every label in `labels` (e.g. the
    pose images of frames t-1 and t, each (B, C, H, W) in [-1, 1], background -1).

    Each box is grown by `margin`; all windows of the batch get the size of the largest,
    rounded up to `round_to` (default `multiple`; a multiple of it) and at most the frame (H and W
    must be multiples of `multiple`), each centred on its own person and moved inside the frame.
    A sample with nothing drawn gets the whole frame.
    """
    h, w = labels[0].shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(f"person_windows: frame {w}x{h} is not a multiple of {multiple}")
    margin = window_margin(w, h) if margin is None else margin
    drawn = torch.zeros(labels[0].shape[0], h, w, dtype=torch.bool, device=labels[0].device)
    for lab in labels:
        drawn |= (lab > -0.99).any(dim=1)
    rows, cols = drawn.any(dim=2).cpu(), drawn.any(dim=1).cpu()
    boxes: list[tuple[int, int, int, int] | None] = []
    for r, c in zip(rows, cols):
        ys, xs = torch.nonzero(r).flatten(), torch.nonzero(c).flatten()
        if len(ys) == 0:
            boxes.append(None)
            continue
        boxes.append((int(xs[0]) - margin, int(ys[0]) - margin, int(xs[-1]) + 1 + margin, int(ys[-1]) + 1 + margin))
    if any(b is None for b in boxes):
        return [(0, 0, w, h)] * len(boxes)
    bw = max(b[2] - b[0] for b in boxes)
    bh = max(b[3] - b[1] for b in boxes)
    r = multiple if round_to is None else int(round_to)
    if r % multiple:
        raise ValueError(f"person_windows: round_to {r} is not a multiple of {multiple}")
    bw = min(w, max(r, math.ceil(bw / r) * r))
    bh = min(h, max(r, math.ceil(bh / r) * r))
    out = []
    for x0, y0, x1, y1 in boxes:
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        wx = min(max(0, cx - bw // 2), w - bw)
        wy = min(max(0, cy - bh // 2), h - bh)
        out.append((wx, wy, wx + bw, wy + bh))
    return out


def crop_windows(images: torch.Tensor, windows: Sequence[Window]) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, h, w): sample i cut at windows[i] (all windows the same size)."""
    return torch.stack([images[i, :, y0:y1, x0:x1] for i, (x0, y0, x1, y1) in enumerate(windows)])


def paste_windows(frames: torch.Tensor, crops: torch.Tensor, windows: Sequence[Window]) -> torch.Tensor:
    """A copy of `frames` (B, C, H, W) with crops[i] written at windows[i]."""
    out = frames.clone()
    for i, (x0, y0, x1, y1) in enumerate(windows):
        out[i, :, y0:y1, x0:x1] = crops[i].to(out.dtype)
    return out


def window_feather(windows: Sequence[Window], frame: tuple[int, int], device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, 1, h, w) weights for the alpha matte of window crops: 1 inside, falling linearly
    to 0 over half the margin at each window edge that lies inside the frame (frame edges
    keep full weight). The person is a margin away from every edge, so only stray paint
    near the border is faded, and no seam shows where the window meets the plate."""
    fh, fw = frame
    x0, y0, x1, y1 = windows[0]
    h, w = y1 - y0, x1 - x0
    ramp = max(1, window_margin(fw, fh) // 2)
    out = []
    for x0, y0, x1, y1 in windows:
        ys = torch.arange(h, dtype=torch.float32, device=device)
        xs = torch.arange(w, dtype=torch.float32, device=device)
        wy = torch.ones(h, device=device)
        wx = torch.ones(w, device=device)
        if y0 > 0:
            wy = torch.minimum(wy, (ys + 0.5) / ramp)
        if y1 < fh:
            wy = torch.minimum(wy, (h - ys - 0.5) / ramp)
        if x0 > 0:
            wx = torch.minimum(wx, (xs + 0.5) / ramp)
        if x1 < fw:
            wx = torch.minimum(wx, (w - xs - 0.5) / ramp)
        out.append(wy.clamp(0, 1)[:, None] * wx.clamp(0, 1)[None, :])
    return torch.stack(out)[:, None]


class PersonGenerator(nn.Module):
    """A saved component (`PersonGeneratorConfig`); the background plate is not part of its
    weights: it comes from the run folder (`set_background`) and must be set before use."""

    def __init__(self, generator: nn.Module, spec: PersonSpec, background: torch.Tensor | None = None):
        super().__init__()
        self.generator = generator
        self.spec = spec
        self.config = PersonGeneratorConfig(generator.config, spec)
        self.size_multiple = self.config.size_multiple
        self.register_buffer("background", None, persistent=False)
        if background is not None:
            self.set_background(background)

    @classmethod
    def from_config(cls, config: PersonGeneratorConfig, rng: torch.Generator | None = None) -> "PersonGenerator":
        """A new person generator (no background yet); weights pix2pixHD-initialised from `rng` if given."""
        return cls(build_generator(config.generator, rng), config.spec)

    def set_background(self, background: torch.Tensor) -> None:
        """The target's plate, (1, 3, H, W) in [-1, 1] (kept on this module's device)."""
        dev = next(self.generator.parameters()).device
        self.background = background.detach().clone().to(dev)

    def _background(self, size: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
        bg = self.background
        if bg is None:
            raise ValueError("PersonGenerator with use_background needs set_background() before use")
        if bg.shape[-2:] != size:
            bg = nn.functional.interpolate(bg, size=size, mode="area")
        return bg.to(like.dtype)

    def _compose(self, out: torch.Tensor, bg: torch.Tensor | None,
                 feather: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(frame, alpha in [0, 1]; None without a background)."""
        if not self.spec.use_background:
            return out, None
        rgb, alpha = out[:, :3], (out[:, 3:4] + 1.0) * 0.5
        if feather is not None:
            alpha = alpha * feather.to(alpha.dtype)
        return alpha * rgb + (1.0 - alpha) * bg, alpha

    def windows_for(self, *labels: torch.Tensor) -> list[Window] | None:
        """The person windows of a batch (None when this generator works on whole frames)."""
        if not self.spec.use_window:
            return None
        m = self.size_multiple
        labels = tuple(lab[:, :STICK_CHANNELS] for lab in labels)  # the stick figure says where the person is
        return person_windows(labels, m, round_to=max(m, -(-self.spec.window_multiple // m) * m))

    def _run(self, label: torch.Tensor, previous: torch.Tensor | None, bg: torch.Tensor | None,
             feather: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.spec.use_temporal:
            if previous is None:
                previous = torch.zeros_like(label[:, :3])
            x = torch.cat([label, previous.to(label.dtype)], dim=1)
        else:
            x = label
        return self._compose(self.generator(x), bg, feather)

    def _plate(self, label: torch.Tensor) -> torch.Tensor | None:
        """The background plate for whole frames like `label` (B, C, H, W)."""
        if not self.spec.use_background:
            return None
        return self._background(tuple(label.shape[-2:]), label).expand(label.shape[0], -1, -1, -1)

    def step(self, label: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        """One whole frame: label (B, 3, H, W), previous output (B, 3, H, W) or None -> (B, 3, H, W).

        With a person window the generator runs on the window only and the plate fills the rest.
        """
        return self.step_alpha(label, previous, with_alpha=False)[0]

    def step_alpha(self, label: torch.Tensor, previous: torch.Tensor | None,
                   with_alpha: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`step`, and the whole frame's alpha (B, 1, H, W), 0 outside the window (None without a
        background, or when not `with_alpha`)."""
        windows = self.windows_for(label)
        if windows is None:
            return self._run(label, previous, self._plate(label))
        bg_full = self._plate(label)
        prev_c = None if previous is None else crop_windows(previous, windows)
        feather = window_feather(windows, tuple(label.shape[-2:]), label.device)
        out, alpha = self._run(crop_windows(label, windows), prev_c, crop_windows(bg_full, windows), feather)
        if not with_alpha:
            return paste_windows(bg_full, out, windows), None
        return paste_windows(bg_full, out, windows), paste_windows(torch.zeros_like(bg_full[:, :1]), alpha, windows)

    def forward_pair(self, label_prev: torch.Tensor, label: torch.Tensor,
                     drop_prev: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Frames t-1 (from zeros) and t (from frame t-1's output, gradient flowing through it),
        whole frames, each made exactly as `step` makes it in transfer (own window each), and
        their alphas (`step_alpha`). drop_prev: frame t from zeros too (previous-frame dropout:
        it must draw from the pose)."""
        prev, alpha_prev = self.step_alpha(label_prev, None)
        cur, alpha = self.step_alpha(label, None if drop_prev else prev)
        return prev, cur, alpha_prev, alpha

    def forward(self, label_prev: torch.Tensor, label: torch.Tensor,
                drop_prev: bool = False) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Temporal: (frame t-1, frame t, alpha t-1, alpha t) as `forward_pair`. Otherwise
        (None, frame t, None, alpha t) from frame t alone."""
        if self.spec.use_temporal:
            return self.forward_pair(label_prev, label, drop_prev)
        cur, alpha = self.step_alpha(label, None)
        return None, cur, None, alpha
