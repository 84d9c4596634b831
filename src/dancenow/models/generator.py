"""pix2pixHD generators: GlobalGenerator and LocalEnhancer.

Temporal smoothing (the paper's G(x_t, G(x_{t-1}))) is done by the caller, who
concatenates the pose label and the previous output on channels, so a typical
`in_channels` is 3 + 3. Nothing temporal lives inside the generator.

Inputs are (B, in_channels, H, W) tensors; outputs are (B, out_channels, H, W)
in [-1, 1] (tanh). H and W must be multiples of 2**n_down (GlobalGenerator) or
2**(n_down + 1) (LocalEnhancer).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from dancenow.models.blocks import (
    UPSAMPLES,
    ResnetBlock,
    check_divisible,
    check_norm,
    conv7_in,
    down,
    downsample_avg,
    init_weights,
    up,
)


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of a pix2pixHD generator.

    ngf: filters of the full-resolution layers. For the LocalEnhancer this is the
    width of the full-resolution branch; its inner global generator uses 2*ngf
    (as pix2pixHD), see `global_config()`.
    n_down / n_blocks: downsamplings and residual blocks of the global generator.
    n_local_blocks: residual blocks of the local enhancer's full-resolution branch.
    """

    in_channels: int
    out_channels: int = 3
    ngf: int = 64
    n_down: int = 4
    n_blocks: int = 9
    use_local_enhancer: bool = False
    n_local_blocks: int = 3
    norm: str = "instance"
    upsample: str = "transpose"   # "transpose" (pix2pixHD) or "resize" (resize + conv: no checkerboard)
    skips: bool = False           # U-Net skips: each decoder level adds the encoder's features of its size
    max_width: int = 0            # cap on any level's filters (0: ngf * 2**level, pix2pixHD's doubling)

    def __post_init__(self) -> None:
        if self.upsample not in UPSAMPLES:
            raise ValueError(f"GeneratorConfig.upsample must be one of {UPSAMPLES}, got {self.upsample!r}")
        for name in ("in_channels", "out_channels", "ngf", "n_down"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"GeneratorConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("n_blocks", "n_local_blocks", "max_width"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"GeneratorConfig.{name} must be >= 0, got {getattr(self, name)}")
        check_norm(self.norm)

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this."""
        return 2 ** (self.n_down + (1 if self.use_local_enhancer else 0))

    def width(self, level: int) -> int:
        """Filters after `level` downsamplings: ngf doubled each time, at most max_width."""
        w = self.ngf * 2**level
        return min(w, self.max_width) if self.max_width else w

    def global_config(self) -> "GeneratorConfig":
        """The config of the global generator inside (or before) a local enhancer.

        A GlobalGenerator trained with this config can be grown into the local
        enhancer `self` with `LocalEnhancer.from_global`.
        """
        if not self.use_local_enhancer:
            return self
        return dataclasses.replace(self, ngf=2 * self.ngf, use_local_enhancer=False)


def _check_config(cfg: GeneratorConfig, local: bool, cls: str) -> None:
    if not isinstance(cfg, GeneratorConfig):
        raise TypeError(f"{cls} needs a GeneratorConfig, got {type(cfg).__name__}")
    if cfg.use_local_enhancer != local:
        raise ValueError(f"{cls} needs GeneratorConfig.use_local_enhancer={local}")


def _architecture(cfg: GeneratorConfig) -> tuple:
    """The fields that shape a global generator (n_local_blocks does not)."""
    return (cfg.in_channels, cfg.out_channels, cfg.ngf, cfg.n_down, cfg.n_blocks, cfg.norm, cfg.upsample,
            cfg.skips, cfg.max_width)


class UNetFeatures(nn.Module):
    """The global generator's layers with U-Net skips: each decoder level's output plus the
    encoder's features of the same size (added: no extra channels, so hardly any extra cost).
    The label's sharp edges reach the output layers without passing the bottleneck."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.head = nn.Sequential(*conv7_in(cfg.in_channels, cfg.ngf, cfg.norm))
        self.downs = nn.ModuleList(nn.Sequential(*down(cfg.width(i), cfg.width(i + 1), cfg.norm))
                                   for i in range(cfg.n_down))
        self.blocks = nn.Sequential(*[ResnetBlock(cfg.width(cfg.n_down), cfg.norm) for _ in range(cfg.n_blocks)])
        self.ups = nn.ModuleList(nn.Sequential(*up(cfg.width(i), cfg.width(i - 1), cfg.norm, cfg.upsample))
                                 for i in range(cfg.n_down, 0, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.head(x)]
        for d in self.downs:
            skips.append(d(skips[-1]))
        h = self.blocks(skips.pop())
        for u in self.ups:
            h = u(h) + skips.pop()
        return h


def _global_features(cfg: GeneratorConfig) -> nn.Module:
    """Everything of the global generator but its output layer: (B,in,H,W) -> (B,ngf,H,W)."""
    if cfg.skips:
        return UNetFeatures(cfg)
    layers: list[nn.Module] = conv7_in(cfg.in_channels, cfg.ngf, cfg.norm)
    for i in range(cfg.n_down):
        layers += down(cfg.width(i), cfg.width(i + 1), cfg.norm)
    layers += [ResnetBlock(cfg.width(cfg.n_down), cfg.norm) for _ in range(cfg.n_blocks)]
    for i in range(cfg.n_down, 0, -1):
        layers += up(cfg.width(i), cfg.width(i - 1), cfg.norm, cfg.upsample)
    return nn.Sequential(*layers)


def _to_image(ngf: int, out_channels: int) -> nn.Sequential:
    """Reflection pad 3 + 7x7 conv + tanh: (B,ngf,H,W) -> (B,out,H,W) in [-1, 1]."""
    return nn.Sequential(
        nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, kernel_size=7), nn.Tanh()
    )


class GlobalGenerator(nn.Module):
    """pix2pixHD global generator (G1).

    7x7 conv -> n_down strided 3x3 convs (channels doubling) -> n_blocks residual
    blocks -> n_down transposed convs -> 7x7 conv -> tanh.
    Shapes: (B, in_channels, H, W) -> (B, out_channels, H, W), H, W multiples of 2**n_down.
    """

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        _check_config(config, local=False, cls="GlobalGenerator")
        self.config = config
        self.features = _global_features(config)
        self.to_image = _to_image(config.ngf, config.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(x, self.config.size_multiple, "GlobalGenerator")
        return self.to_image(self.features(x))


class LocalEnhancer(nn.Module):
    """pix2pixHD local enhancer (G2 around G1).

    The global branch (a GlobalGenerator of width 2*ngf without its output layer)
    runs on the input downsampled 2x; a full-resolution front end (7x7 conv, one
    strided conv to 2*ngf) runs on the input; the two feature maps are summed and
    go through n_local_blocks residual blocks, one transposed conv and a 7x7 conv
    + tanh. Shapes: (B, in, H, W) -> (B, out, H, W), H, W multiples of 2**(n_down+1).
    """

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        _check_config(config, local=True, cls="LocalEnhancer")
        self.config = config
        g = config.global_config()
        self.global_features = _global_features(g)
        self.local_front = nn.Sequential(
            *conv7_in(config.in_channels, config.ngf, config.norm),
            *down(config.ngf, 2 * config.ngf, config.norm),
        )
        self.local_back = nn.Sequential(
            *[ResnetBlock(2 * config.ngf, config.norm) for _ in range(config.n_local_blocks)],
            *up(2 * config.ngf, config.ngf, config.norm, config.upsample),
        )
        self.to_image = _to_image(config.ngf, config.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(x, self.config.size_multiple, "LocalEnhancer")
        coarse = self.global_features(downsample_avg(x))
        return self.to_image(self.local_back(self.local_front(x) + coarse))

    def global_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the global branch (pix2pixHD keeps them fixed for the first epochs)."""
        return self.global_features.parameters()

    def local_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the full-resolution branch (front end, blocks, output layer)."""
        for m in (self.local_front, self.local_back, self.to_image):
            yield from m.parameters()

    @classmethod
    def from_global(
        cls,
        global_gen: GlobalGenerator,
        config: GeneratorConfig,
        rng: torch.Generator | None = None,
    ) -> "LocalEnhancer":
        """A local enhancer whose global branch is a copy of a trained `global_gen`.

        `config` must have use_local_enhancer=True and `config.global_config()`
        must describe the same network as `global_gen.config` (same in/out
        channels, n_down, n_blocks, norm; config.ngf is half the global ngf).
        The new full-resolution branch is initialised from `rng` (pix2pixHD init)
        or PyTorch's default init when `rng` is None. The result is on the device
        and dtype of `global_gen`.
        """
        if not isinstance(global_gen, GlobalGenerator):
            raise TypeError(f"from_global needs a GlobalGenerator, got {type(global_gen).__name__}")
        _check_config(config, local=True, cls="LocalEnhancer")
        if _architecture(config.global_config()) != _architecture(global_gen.config):
            raise ValueError(
                "LocalEnhancer.from_global: the global generator's config "
                f"{global_gen.config} does not match config.global_config() {config.global_config()}"
            )
        ref = next(global_gen.parameters())
        enhancer = cls(config)
        if rng is not None:
            init_weights(enhancer, rng)
        enhancer.to(device=ref.device, dtype=ref.dtype)
        enhancer.global_features.load_state_dict(global_gen.features.state_dict(), strict=True)
        return enhancer


def build_generator(config: GeneratorConfig, rng: torch.Generator | None = None) -> nn.Module:
    """GlobalGenerator or LocalEnhancer as the config says, pix2pixHD-initialised from `rng`.

    With rng=None PyTorch's default initialisation is kept.
    """
    net: nn.Module = LocalEnhancer(config) if config.use_local_enhancer else GlobalGenerator(config)
    if rng is not None:
        init_weights(net, rng)
    return net
