"""pix2pixHD discriminators: NLayerDiscriminator (PatchGAN) and MultiscaleDiscriminator.

The caller concatenates what is judged on channels (e.g. pose label + image, or
for the paper's temporal discriminator two consecutive labels and two images).
Both return the intermediate features so feature matching is a short loop; the
last feature of each scale is the (unbounded, LSGAN) patch prediction map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from dancenow.models.blocks import check_norm, downsample_avg, init_weights, norm_layer

MAX_WIDTH = 512


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Architecture of a (multiscale) PatchGAN discriminator.

    n_layers=3 gives the 70x70 PatchGAN of pix2pix. num_D scales, each judging
    the input downsampled 2x more than the previous one.
    """

    in_channels: int
    ndf: int = 64
    n_layers: int = 3
    num_D: int = 2
    norm: str = "instance"
    use_spectral_norm: bool = False

    def __post_init__(self) -> None:
        for name in ("in_channels", "ndf", "n_layers", "num_D"):
            if int(getattr(self, name)) < 1:
                raise ValueError(
                    f"DiscriminatorConfig.{name} must be >= 1, got {getattr(self, name)}"
                )
        check_norm(self.norm)

    @property
    def n_features(self) -> int:
        """Length of each scale's feature list (n_layers + 1 hidden maps + the prediction)."""
        return self.n_layers + 2


class NLayerDiscriminator(nn.Module):
    """pix2pixHD PatchGAN: 4x4 convs, LeakyReLU(0.2), norm on all but the first layer.

    n_layers strided convs (channels doubling up to 512), one stride-1 conv, and
    a stride-1 conv to one channel. forward returns the list of the n_layers + 2
    layer outputs; the last one, (B, 1, h, w), is the patch prediction.
    """

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        if not isinstance(config, DiscriminatorConfig):
            raise TypeError(f"NLayerDiscriminator needs a DiscriminatorConfig, got {type(config).__name__}")
        self.config = config
        pad = math.ceil((4 - 1) / 2)

        def conv(cin: int, cout: int, stride: int) -> nn.Module:
            c = nn.Conv2d(cin, cout, kernel_size=4, stride=stride, padding=pad)
            return spectral_norm(c) if config.use_spectral_norm else c

        layers: list[nn.Module] = [
            nn.Sequential(conv(config.in_channels, config.ndf, 2), nn.LeakyReLU(0.2, inplace=True))
        ]
        width = config.ndf
        for n in range(1, config.n_layers + 1):
            prev, width = width, min(width * 2, MAX_WIDTH)
            stride = 2 if n < config.n_layers else 1
            layers.append(
                nn.Sequential(
                    conv(prev, width, stride),
                    norm_layer(config.norm, width),
                    nn.LeakyReLU(0.2, inplace=True),
                )
            )
        layers.append(nn.Sequential(conv(width, 1, 1)))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


class MultiscaleDiscriminator(nn.Module):
    """num_D NLayerDiscriminators at 1x, 1/2x, 1/4x ... of the input.

    Downsampling between scales is a 3x3 average pool, stride 2, pad 1,
    count_include_pad=False. forward returns list (over scales, full resolution
    first) of lists of features (see NLayerDiscriminator).
    """

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        if not isinstance(config, DiscriminatorConfig):
            raise TypeError(
                f"MultiscaleDiscriminator needs a DiscriminatorConfig, got {type(config).__name__}"
            )
        self.config = config
        self.scales = nn.ModuleList(NLayerDiscriminator(config) for _ in range(config.num_D))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        out = []
        for i, d in enumerate(self.scales):
            if i > 0:
                x = downsample_avg(x)
            out.append(d(x))
        return out


def build_discriminator(
    config: DiscriminatorConfig, rng: torch.Generator | None = None
) -> MultiscaleDiscriminator:
    """A MultiscaleDiscriminator, pix2pixHD-initialised from `rng` (default init if None)."""
    net = MultiscaleDiscriminator(config)
    if rng is not None:
        init_weights(net, rng)
    return net
