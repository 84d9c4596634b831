"""Building blocks shared by the generators and discriminators (pix2pixHD layout).

All blocks are plain `nn.Module`s with no device or dtype baked in, work on
channels_last tensors and under autocast (CPU bf16, CUDA fp16/bf16).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

NORMS = ("instance", "batch", "none")


def check_norm(norm: str) -> str:
    """Return `norm` if it names a supported normalisation, else raise ValueError."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return norm


def norm_layer(norm: str, channels: int) -> nn.Module:
    """The normalisation layer for `channels` feature maps.

    "instance" is InstanceNorm2d(affine=False, track_running_stats=False) as in
    pix2pixHD; "batch" is BatchNorm2d; "none" is the identity.
    """
    check_norm(norm)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


class ZeroConv2d(nn.Conv2d):
    """A Conv2d whose weight and bias start at zero (and that `init_weights` leaves at zero).

    Used as the last layer of residual generators so they start as the identity.
    """

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class ResnetBlock(nn.Module):
    """pix2pixHD residual block: x + [pad, conv3x3, norm, ReLU, pad, conv3x3, norm](x).

    Shapes: (B, dim, H, W) -> (B, dim, H, W).
    """

    def __init__(self, dim: int, norm: str = "instance"):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3),
            norm_layer(norm, dim),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3),
            norm_layer(norm, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def conv7_in(in_channels: int, out_channels: int, norm: str) -> list[nn.Module]:
    """Reflection pad 3 + 7x7 conv + norm + ReLU (the generators' first layer)."""
    return [
        nn.ReflectionPad2d(3),
        nn.Conv2d(in_channels, out_channels, kernel_size=7),
        norm_layer(norm, out_channels),
        nn.ReLU(inplace=True),
    ]


def down(in_channels: int, out_channels: int, norm: str) -> list[nn.Module]:
    """Strided 3x3 conv (H, W -> H/2, W/2) + norm + ReLU."""
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1),
        norm_layer(norm, out_channels),
        nn.ReLU(inplace=True),
    ]


UPSAMPLES = ("transpose", "resize")


def up(in_channels: int, out_channels: int, norm: str, mode: str = "transpose") -> list[nn.Module]:
    """2x upsampling (H, W -> 2H, 2W) + norm + ReLU.

    mode "transpose": a transposed 3x3 conv (pix2pixHD). "resize": nearest-neighbour resize,
    then a 3x3 conv: no checkerboard pattern (Odena et al. 2016, "Deconvolution and
    Checkerboard Artifacts"), where a stride-2 transposed conv overlaps unevenly."""
    if mode not in UPSAMPLES:
        raise ValueError(f"upsample mode must be one of {UPSAMPLES}, got {mode!r}")
    if mode == "transpose":
        conv: list[nn.Module] = [nn.ConvTranspose2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1,
                                                    output_padding=1)]
    else:
        conv = [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_channels, out_channels, 3, padding=1)]
    return [*conv, norm_layer(norm, out_channels), nn.ReLU(inplace=True)]


def downsample_avg(x: torch.Tensor) -> torch.Tensor:
    """pix2pixHD's 2x input downsampling: 3x3 average pool, stride 2, pad 1, pads not counted.

    Shapes: (B, C, H, W) -> (B, C, ceil(H/2), ceil(W/2)).
    """
    return nn.functional.avg_pool2d(
        x, kernel_size=3, stride=2, padding=1, count_include_pad=False
    )


def init_weights(module: nn.Module, rng: torch.Generator) -> nn.Module:
    """pix2pixHD initialisation, reproducible from `rng` (a CPU torch.Generator).

    Conv / transposed conv weights ~ N(0, 0.02), biases 0; BatchNorm weights
    ~ N(1, 0.02), biases 0. `ZeroConv2d` layers are left at zero. Values are
    drawn on the CPU in float32 and copied, so the result does not depend on the
    module's device or dtype. Returns `module`.
    """

    def normal_like(p: torch.Tensor, mean: float) -> torch.Tensor:
        t = torch.empty(p.shape, dtype=torch.float32)
        nn.init.normal_(t, mean, 0.02, generator=rng)
        return t

    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, ZeroConv2d):
                m.reset_parameters()
            elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                if parametrize.is_parametrized(m, "weight"):
                    _init_spectral(m, normal_like, rng)
                else:
                    m.weight.copy_(normal_like(m.weight, 0.0))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(normal_like(m.weight, 1.0))
                m.bias.zero_()
    return module


def _init_spectral(m: nn.Module, normal_like, rng: torch.Generator) -> None:
    """Initialise a spectral-norm parametrised conv: weight from `rng`, then fresh
    power-iteration vectors (also from `rng`) refined by 15 iterations."""
    original = m.parametrizations.weight.original
    original.copy_(normal_like(original, 0.0))
    for p in m.parametrizations.weight:
        if not (hasattr(p, "_u") and hasattr(p, "_v")):
            continue
        for name in ("_u", "_v"):
            buf = getattr(p, name)
            t = torch.randn(buf.shape, generator=rng, dtype=torch.float32)
            buf.copy_(nn.functional.normalize(t, dim=0, eps=p.eps))
        p._power_method(p._reshape_weight_to_matrix(original), 15)


def check_divisible(x: torch.Tensor, factor: int, what: str) -> None:
    """Raise ValueError unless x's height and width are multiples of `factor`."""
    h, w = x.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(
            f"{what}: input height and width must be multiples of {factor}, got {h}x{w}"
        )
