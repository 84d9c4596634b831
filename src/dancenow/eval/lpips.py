"""LPIPS (AlexNet, v0.1; Zhang et al. 2018) without torchvision, and the perceptual-metric choice.

LPIPS v0.1 with the AlexNet trunk, as the `lpips` package computes it
(`lpips.LPIPS(net="alex", version="0.1")`, inputs in [-1, 1]):

1. ScalingLayer: x -> (x - shift) / scale, shift = (-0.030, -0.088, -0.188),
   scale = (0.458, 0.448, 0.450) per RGB channel.
2. AlexNet `features` in torchvision's layout; the outputs of its five ReLUs
   (`features.1, .4, .7, .9, .11`; 64, 192, 384, 256, 256 channels) are used.
3. Each feature map is unit-normalised over channels (x / (||x||_2 + 1e-10)), the two
   images' maps are subtracted and squared, a learned 1x1 conv (no bias, one output
   channel, `lin{k}.model.1.weight` of shape (1, C, 1, 1)) weighs the channels, the
   result is averaged over space, and the five layers are summed.

Weights are never downloaded. Two files are needed:

* AlexNet ImageNet weights, torchvision's `alexnet-owt-7be5be79.pth` (older torchvision:
  `alexnet-owt-4df8aa71.pth`), looked for in `torch.hub.get_dir()/checkpoints/`.
* The LPIPS v0.1 linear heads `alex.pth` (6 KB), shipped by the pip package `lpips`
  (`lpips/weights/v0.1/alex.pth`) and by `torchmetrics`
  (`torchmetrics/functional/image/lpips_models/alex.pth`). Both package folders are
  searched with importlib without importing them (they need torchvision); otherwise
  copy the file to `torch.hub.get_dir()/checkpoints/lpips_v0.1_alex.pth`.

`lpips_status()` says which files were found and where to put missing ones.
When LPIPS is unavailable, `perceptual_metric` falls back to the unlearned
VGG16-HED feature distance of `dancenow.models.vgg`, under a different name.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from dancenow.errors import DancenowError, InputError
from dancenow.models.io import read_state_dict
from dancenow.models.vgg import load_vgg_trunk

LPIPS_NAME = "LPIPS-alex-v0.1"
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
ALEX_CHANNELS = (64, 192, 384, 256, 256)
ALEX_TAPS = (1, 4, 7, 9, 11)  # indices of the ReLUs in torchvision's alexnet.features
ALEX_CONVS = (0, 3, 6, 8, 10)
# torchvision hub file names; torch.hub names files <name>-<first 8 hex of sha256>.pth.
ALEXNET_FILES = ("alexnet-owt-7be5be79.pth", "alexnet-owt-4df8aa71.pth")
ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
LIN_HUB_FILE = "lpips_v0.1_alex.pth"
# sha256 of the official LPIPS v0.1 alex.pth (same file in lpips and torchmetrics).
LIN_SHA256 = "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"
LIN_PACKAGE_FILES = (
    ("lpips", Path("weights") / "v0.1" / "alex.pth"),
    ("torchmetrics", Path("functional") / "image" / "lpips_models" / "alex.pth"),
)
# Smallest input side AlexNet's relu5 accepts is 23 px; smaller crops are upscaled to this.
MIN_SIDE = 32

PerceptualFn = Callable[[np.ndarray, np.ndarray], float]


def _alexnet_features() -> nn.Sequential:
    """torchvision AlexNet `features` up to relu5 (indices 0..11, same keys)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
    )


class _Lin(nn.Module):
    """LPIPS NetLinLayer: Dropout (inactive: always eval) then a 1x1 conv to 1 channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))


def _unit(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return f / (f.square().sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """LPIPS v0.1, AlexNet trunk. State dict keys: `features.{0,3,6,8,10}.{weight,bias}`
    (torchvision AlexNet) and `lin{0..4}.model.1.weight` (lpips package).

    forward(x, y): RGB (B, 3, H, W) in [-1, 1], H and W >= 23 -> (B,) distances, 0 for
    identical images. Always in eval mode; no parameter requires grad.
    `weights_verified` is True when both loaded files matched the official sha256.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = _alexnet_features()
        self.lin0, self.lin1, self.lin2, self.lin3, self.lin4 = (_Lin(c) for c in ALEX_CHANNELS)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        self.weights_verified = False
        self.sources: tuple[Path, Path] | None = None
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "LPIPS":
        """Stays in eval mode (dropout off) whatever a caller asks."""
        return super().train(False)

    def layers(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five ReLU outputs of AlexNet for [-1, 1] input (after the scaling layer)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS expects (B, 3, H, W) RGB images, got {tuple(x.shape)}")
        h = (x - self.shift.to(x.dtype)) / self.scale.to(x.dtype)
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in ALEX_TAPS:
                out.append(h)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape:
            raise ValueError(f"LPIPS: shapes differ {tuple(x.shape)} vs {tuple(y.shape)}")
        total = x.new_zeros(x.shape[0], dtype=torch.float32)
        lins = (self.lin0, self.lin1, self.lin2, self.lin3, self.lin4)
        for fx, fy, lin in zip(self.layers(x), self.layers(y), lins):
            d = (_unit(fx) - _unit(fy)).square()
            total = total + lin.model(d).float().mean(dim=(1, 2, 3))
        return total


# ------------------------------------------------------------------ locating the files
@dataclass(frozen=True)
class LPIPSFiles:
    """Where the two LPIPS weight files were found (None: missing) and what was searched."""

    alexnet: Path | None
    lin: Path | None
    alexnet_searched: tuple[Path, ...]
    lin_searched: tuple[Path, ...]


def _hub_checkpoints(hub_dir: str | Path | None) -> Path:
    return Path(torch.hub.get_dir() if hub_dir is None else hub_dir) / "checkpoints"


def _package_lin_candidates() -> list[Path]:
    """alex.pth inside installed lpips / torchmetrics packages, found without importing them."""
    out = []
    for package, rel in LIN_PACKAGE_FILES:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.submodule_search_locations:
            out.extend(Path(loc) / rel for loc in spec.submodule_search_locations)
    return out


def find_lpips_files(
    *,
    alexnet_path: str | Path | None = None,
    lin_path: str | Path | None = None,
    hub_dir: str | Path | None = None,
) -> LPIPSFiles:
    """Locate the AlexNet and linear-head files (explicit paths win; see module doc).

    hub_dir: the torch hub folder (default `torch.hub.get_dir()`); its `checkpoints/`
    subfolder is searched.
    """
    ckpt = _hub_checkpoints(hub_dir)
    a_cands = [Path(alexnet_path)] if alexnet_path is not None else [ckpt / n for n in ALEXNET_FILES]
    l_cands = (
        [Path(lin_path)] if lin_path is not None else [ckpt / LIN_HUB_FILE, *_package_lin_candidates()]
    )
    alex = next((p for p in a_cands if p.is_file()), None)
    lin = next((p for p in l_cands if p.is_file()), None)
    return LPIPSFiles(alex, lin, tuple(a_cands), tuple(l_cands))


def lpips_status(
    *,
    alexnet_path: str | Path | None = None,
    lin_path: str | Path | None = None,
    hub_dir: str | Path | None = None,
) -> str:
    """One paragraph: is LPIPS available, which files were found, and where to put missing ones."""
    f = find_lpips_files(alexnet_path=alexnet_path, lin_path=lin_path, hub_dir=hub_dir)
    ckpt = _hub_checkpoints(hub_dir)
    if f.alexnet is not None and f.lin is not None:
        return f"{LPIPS_NAME} available: AlexNet weights {f.alexnet}, linear heads {f.lin}."
    lines = [f"{LPIPS_NAME} unavailable (evaluation reports VGG16-HED-dist instead):"]
    if f.alexnet is None:
        lines.append(
            "  missing AlexNet ImageNet weights; looked for "
            + ", ".join(str(p) for p in f.alexnet_searched)
            + f". Put torchvision's {ALEXNET_FILES[0]} ({ALEXNET_URL}) in {ckpt}/ "
            "or pass its path."
        )
    if f.lin is None:
        lines.append(
            "  missing LPIPS v0.1 linear weights (alex.pth); looked for "
            + ", ".join(str(p) for p in f.lin_searched)
            + ". Copy alex.pth from the lpips package (lpips/weights/v0.1/alex.pth) or torchmetrics "
            f"(torchmetrics/functional/image/lpips_models/alex.pth) to {ckpt / LIN_HUB_FILE} "
            "or pass its path."
        )
    return "\n".join(lines)


# ------------------------------------------------------------------ loading
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    return read_state_dict(path, what)


def _check_keys(path: Path, sd: dict[str, torch.Tensor], needed: dict[str, torch.Tensor],
                ignorable: Callable[[str], bool], what: str) -> None:
    missing = sorted(k for k in needed if k not in sd)
    unexpected = sorted(k for k in sd if k not in needed and not ignorable(k))
    if missing or unexpected:
        raise InputError(path, f"not {what}: missing keys {missing or '[]'}, unexpected keys {unexpected or '[]'}")
    for k, v in needed.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise InputError(path, f"{k} has shape {tuple(sd[k].shape)}, expected {tuple(v.shape)} ({what})")


def build_lpips(alexnet_path: str | Path, lin_path: str | Path) -> LPIPS:
    """LPIPS from the two files (torch.load(weights_only=True)); strict key/shape checks.

    The AlexNet file may hold the whole torchvision model (`classifier.*` and the
    unused `features.*` are ignored). Raises InputError naming the file and problem.
    """
    a_path, l_path = Path(alexnet_path), Path(lin_path)
    for p, what in ((a_path, "AlexNet weights"), (l_path, "LPIPS v0.1 linear weights")):
        if not p.is_file():
            raise InputError(p, f"{what} file not found")
    model = LPIPS()
    own = model.state_dict()
    feat_needed = {k: v for k, v in own.items() if k.startswith("features.")}
    lin_needed = {k: v for k, v in own.items() if k.startswith("lin")}
    a_sd = _read_state_dict(a_path, "torchvision AlexNet")
    _check_keys(a_path, a_sd, feat_needed, lambda k: k.startswith(("classifier.", "features.")),
                "a torchvision AlexNet state dict")
    l_sd = _read_state_dict(l_path, "LPIPS v0.1 alex.pth")
    _check_keys(l_path, l_sd, lin_needed, lambda k: False, "an LPIPS v0.1 AlexNet linear-head file")
    merged = {k: a_sd[k].float() for k in feat_needed} | {k: l_sd[k].float() for k in lin_needed}
    model.load_state_dict(merged, strict=True)
    a_sha = _sha256(a_path)
    a_ok = any(a_sha.startswith(n.split("-")[-1].removesuffix(".pth")) for n in ALEXNET_FILES)
    model.weights_verified = a_ok and _sha256(l_path) == LIN_SHA256
    model.sources = (a_path, l_path)
    return model


def load_lpips(
    device: torch.device | str | None = None,
    *,
    alexnet_path: str | Path | None = None,
    lin_path: str | Path | None = None,
    hub_dir: str | Path | None = None,
) -> LPIPS | None:
    """LPIPS on `device` from the located files, or None when a file is missing
    (`lpips_status()` explains). An explicit path that does not exist, or a file of the
    wrong format, raises InputError. Never downloads."""
    for p in (alexnet_path, lin_path):
        if p is not None and not Path(p).is_file():
            raise InputError(p, "LPIPS weights file not found")
    f = find_lpips_files(alexnet_path=alexnet_path, lin_path=lin_path, hub_dir=hub_dir)
    if f.alexnet is None or f.lin is None:
        return None
    return build_lpips(f.alexnet, f.lin).to(device)


# ------------------------------------------------------------------ the metric the evaluation uses
def _to_tensor(img: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) float32 in [-1, 1]."""
    a = np.asarray(img)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {a.shape} {a.dtype}")
    t = torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=torch.float32)
    return (t.permute(2, 0, 1)[None] / 127.5 - 1.0)


def _upscale_small(a: np.ndarray, b: np.ndarray, min_side: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = a.shape[:2]
    s = min(h, w)
    if s >= min_side:
        return a, b
    size = (max(min_side, round(w * min_side / s)), max(min_side, round(h * min_side / s)))
    return (cv2.resize(a, size, interpolation=cv2.INTER_CUBIC), cv2.resize(b, size, interpolation=cv2.INTER_CUBIC))


def perceptual_metric(
    device: torch.device | str | None = None,
    *,
    alexnet_path: str | Path | None = None,
    lin_path: str | Path | None = None,
    hub_dir: str | Path | None = None,
    vgg_source: str | Path = "hed",
) -> tuple[str, PerceptualFn]:
    """(name, fn(a, b) -> float) for (H, W, 3) uint8 RGB images of equal shape.

    LPIPS when both of its files are found: name "LPIPS-alex-v0.1" (with
    "(unverified-weights)" appended when a file's sha256 differs from the official
    one). Otherwise the unlearned feature distance of `dancenow.models.vgg`
    (`VGGTrunk.feature_distance`), named "VGG16-HED-dist" (or "VGG19-dist" for a VGG19
    `vgg_source` file): a different metric, never to be compared with LPIPS values.
    Images with a side under 32 px are upscaled (bicubic, both alike) first.
    Raises DancenowError when neither is available.
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    model = load_lpips(dev, alexnet_path=alexnet_path, lin_path=lin_path, hub_dir=hub_dir)
    if model is not None:
        name = LPIPS_NAME if model.weights_verified else f"{LPIPS_NAME}(unverified-weights)"
        dist = model
    else:
        try:
            trunk = load_vgg_trunk(vgg_source, dev, torch.float32)
        except DancenowError as e:
            raise DancenowError(
                f"no perceptual metric available: {e}\n"
                + lpips_status(alexnet_path=alexnet_path, lin_path=lin_path, hub_dir=hub_dir)
            ) from None
        name = "VGG16-HED-dist" if trunk.arch == "vgg16_hed" else "VGG19-dist"
        dist = trunk.feature_distance

    def fn(a: np.ndarray, b: np.ndarray) -> float:
        if np.shape(a) != np.shape(b):
            raise ValueError(f"{name}: images differ in shape {np.shape(a)} vs {np.shape(b)}")
        a2, b2 = _upscale_small(np.asarray(a), np.asarray(b), MIN_SIDE)
        with torch.inference_mode():
            return float(dist(_to_tensor(a2, dev), _to_tensor(b2, dev))[0])

    return name, fn
