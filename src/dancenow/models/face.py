"""The paper's face GAN: a residual face generator and a 70x70 PatchGAN face discriminator.

The face generator Gf takes the face crop of the pose label and the face crop
of the body generator's output (concatenated on channels) and predicts a
residual r; its output is `image_crop + r`.

Design choice: the sum is NOT clipped or squashed. The last conv starts at zero
(`ZeroConv2d`), so before training Gf is exactly the identity on the generated
crop and face training starts from the body generator's result; a tanh or
clamp of the sum would break that identity (tanh(x) != x) or stop gradients
at the bounds. The reconstruction / GAN / VGG losses keep the result near
[-1, 1]; whoever pastes it back into the frame clamps to [-1, 1] for display.

The face discriminator judges (pose crop, face crop) concatenated on channels:
use `build_discriminator(face_discriminator_config(...))`, a single-scale
(num_D=1) n_layers=3 PatchGAN, so `GANLoss` and `feature_matching_loss`
work on it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dancenow.models.blocks import (
    ResnetBlock,
    ZeroConv2d,
    check_divisible,
    check_norm,
    conv7_in,
    down,
    init_weights,
    up,
)
from dancenow.models.discriminator import DiscriminatorConfig
from dancenow.tensors import crop_faces, paste_faces

FEATHER = 8  # a full-resolution face is blended in over side / FEATHER pixels at its box's edges


@dataclass(frozen=True)
class FaceGeneratorConfig:
    """Architecture of the residual face generator (small: ngf 32, 2 downsamplings)."""

    label_channels: int = 3
    image_channels: int = 3
    ngf: int = 32
    n_down: int = 2
    n_blocks: int = 4
    norm: str = "instance"
    upsample: str = "transpose"  # or "resize" (see `dancenow.models.blocks.up`)

    def __post_init__(self) -> None:
        for name in ("label_channels", "image_channels", "ngf", "n_down"):
            if int(getattr(self, name)) < 1:
                raise ValueError(
                    f"FaceGeneratorConfig.{name} must be >= 1, got {getattr(self, name)}"
                )
        if int(self.n_blocks) < 0:
            raise ValueError(f"FaceGeneratorConfig.n_blocks must be >= 0, got {self.n_blocks}")
        check_norm(self.norm)

    @property
    def size_multiple(self) -> int:
        """Face crop height and width must be multiples of this."""
        return 2**self.n_down


class FaceGenerator(nn.Module):
    """Residual face generator: (label crop, image crop) -> image crop + residual.

    Shapes: label (B, label_channels, h, w), image (B, image_channels, h, w) ->
    (B, image_channels, h, w); h, w multiples of 2**n_down. Unclipped (see module doc).
    """

    def __init__(self, config: FaceGeneratorConfig):
        super().__init__()
        if not isinstance(config, FaceGeneratorConfig):
            raise TypeError(f"FaceGenerator needs a FaceGeneratorConfig, got {type(config).__name__}")
        self.config = config
        c = config
        layers: list[nn.Module] = conv7_in(c.label_channels + c.image_channels, c.ngf, c.norm)
        for i in range(c.n_down):
            layers += down(c.ngf * 2**i, c.ngf * 2 ** (i + 1), c.norm)
        layers += [ResnetBlock(c.ngf * 2**c.n_down, c.norm) for _ in range(c.n_blocks)]
        for i in range(c.n_down, 0, -1):
            layers += up(c.ngf * 2**i, c.ngf * 2 ** (i - 1), c.norm, c.upsample)
        layers += [nn.ReflectionPad2d(3), ZeroConv2d(c.ngf, c.image_channels, kernel_size=7)]
        self.body = nn.Sequential(*layers)

    def residual(self, label_crop: torch.Tensor, image_crop: torch.Tensor) -> torch.Tensor:
        """The predicted residual r (same shape as image_crop)."""
        c = self.config
        if label_crop.shape[1] != c.label_channels or image_crop.shape[1] != c.image_channels:
            raise ValueError(
                f"FaceGenerator: expected {c.label_channels} label and {c.image_channels} image "
                f"channels, got {label_crop.shape[1]} and {image_crop.shape[1]}"
            )
        if label_crop.shape[-2:] != image_crop.shape[-2:]:
            raise ValueError(
                f"FaceGenerator: label crop {tuple(label_crop.shape[-2:])} and image crop "
                f"{tuple(image_crop.shape[-2:])} differ in size"
            )
        check_divisible(image_crop, c.size_multiple, "FaceGenerator")
        return self.body(torch.cat([label_crop, image_crop], dim=1))

    def forward(self, label_crop: torch.Tensor, image_crop: torch.Tensor) -> torch.Tensor:
        return image_crop + self.residual(label_crop, image_crop)


def build_face_generator(
    config: FaceGeneratorConfig, rng: torch.Generator | None = None
) -> FaceGenerator:
    """A FaceGenerator, pix2pixHD-initialised from `rng` (last conv stays zero either way)."""
    net = FaceGenerator(config)
    if rng is not None:
        init_weights(net, rng)
    return net


def face_discriminator_config(
    label_channels: int = 3,
    image_channels: int = 3,
    ndf: int = 64,
    norm: str = "instance",
    use_spectral_norm: bool = False,
) -> DiscriminatorConfig:
    """Config of the paper's face discriminator: one 70x70 PatchGAN (n_layers=3, num_D=1)
    judging (pose crop, face crop) concatenated on channels."""
    return DiscriminatorConfig(
        in_channels=label_channels + image_channels,
        ndf=ndf,
        n_layers=3,
        num_D=1,
        norm=norm,
        use_spectral_norm=use_spectral_norm,
    )


def refine_faces(face_generator: nn.Module, labels: torch.Tensor, frames: torch.Tensor,
                 boxes: torch.Tensor) -> torch.Tensor:
    """Frames with their face crops replaced by the face generator's refinement (clamped).

    labels, frames: (B, 3, H, W) in [-1, 1]; boxes: (B, 4) x0, y0, x1, y1 (-1 rows: no face,
    left as they are). Training's validation and transfer both paste faces this way.
    """
    keep, (lab_c, fake_c) = crop_faces(boxes, labels, frames)
    if len(keep) == 0:
        return frames
    return paste_faces(frames, boxes, keep, face_generator(lab_c, fake_c).float())


def upsample_face(crops: torch.Tensor, size: int) -> torch.Tensor:
    """(K, C, s, s) face crops of a generated frame -> (K, C, size, size), bilinear."""
    return nn.functional.interpolate(crops.float(), size=(size, size), mode="bilinear", align_corners=False)


def refine_faces_hr(face_generator: nn.Module, face_labels: torch.Tensor, frames: torch.Tensor,
                    boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The face GAN at the face's own resolution: (frames with the refined faces pasted back at
    the frames' scale, feathered; the refined faces (K, 3, S, S) clamped; kept indices (K,)).

    face_labels: (B, 3, S, S) the stick figure inside each face box drawn at S x S (as in
    training); frames: (B, 3, H, W); boxes: (B, 4) (-1 rows: no face, left as they are).
    """
    keep, (fake_c,) = crop_faces(boxes, frames)
    if len(keep) == 0:
        return frames, fake_c, keep
    size, side = face_labels.shape[-1], fake_c.shape[-1]
    faces = face_generator(face_labels[keep], upsample_face(fake_c, size)).float().clamp(-1, 1)
    small = nn.functional.interpolate(faces, size=(side, side), mode="bilinear", antialias=True,
                                      align_corners=False)
    return paste_faces(frames, boxes, keep, small, feather=max(1, side // FEATHER)), faces, keep
