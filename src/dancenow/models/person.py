"""The person generator as the method uses it: pose (+ previous frame) in, frame out.

`PersonGenerator` wraps a pix2pixHD generator (GlobalGenerator or LocalEnhancer):
- temporal smoothing (paper): the input is the pose label concatenated with the
  previous generated frame (zeros for the first frame of a chain);
- background composite (dancenow): with a static camera the target's background is
  known, so the generator outputs RGB plus an alpha channel and the frame is
  alpha * rgb + (1 - alpha) * background. Capacity goes to the person, and the
  background is exactly the target's.
`forward_pair` generates two consecutive frames with the gradient flowing through the
first, in one call (so DistributedDataParallel sees one forward per step).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class PersonSpec:
    label_channels: int = 3
    use_temporal: bool = True
    use_background: bool = True

    @property
    def in_channels(self) -> int:
        return self.label_channels + (3 if self.use_temporal else 0)

    @property
    def out_channels(self) -> int:
        return 4 if self.use_background else 3


class PersonGenerator(nn.Module):
    def __init__(self, generator: nn.Module, spec: PersonSpec, background: torch.Tensor | None = None):
        super().__init__()
        self.generator = generator
        self.spec = spec
        if spec.use_background:
            if background is None:
                raise ValueError("PersonGenerator with use_background needs a background (1, 3, H, W) in [-1, 1]")
            self.register_buffer("background", background.detach().clone(), persistent=False)
        else:
            self.background = None

    def set_background(self, background: torch.Tensor) -> None:
        self.background = background.to(self.background.device, self.background.dtype)

    def _compose(self, out: torch.Tensor) -> torch.Tensor:
        if not self.spec.use_background:
            return out
        rgb, alpha = out[:, :3], (out[:, 3:4] + 1.0) * 0.5
        bg = self.background
        if bg.shape[-2:] != rgb.shape[-2:]:
            bg = nn.functional.interpolate(bg, size=rgb.shape[-2:], mode="area")
        return alpha * rgb + (1.0 - alpha) * bg.to(rgb.dtype)

    def step(self, label: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        """One frame: label (B, 3, H, W), previous output (B, 3, H, W) or None -> (B, 3, H, W)."""
        if self.spec.use_temporal:
            if previous is None:
                previous = torch.zeros_like(label[:, :3])
            x = torch.cat([label, previous.to(label.dtype)], dim=1)
        else:
            x = label
        return self._compose(self.generator(x))

    def forward_pair(self, label_prev: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames t-1 (from zeros) and t (from frame t-1's output, gradient flowing through it)."""
        prev = self.step(label_prev, None)
        return prev, self.step(label, prev)

    def forward(self, label_prev: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Temporal: (frame t-1, frame t) as `forward_pair`. Otherwise (None, frame t) alone."""
        if self.spec.use_temporal:
            return self.forward_pair(label_prev, label)
        return None, self.step(label, None)
