"""Image similarity on numpy arrays: SSIM, PSNR, and crops of boxes.

Used by training's validation and by evaluation (`dancenow.eval.metrics` re-exports them).
Images are (H, W, 3) uint8 RGB arrays unless noted; boxes are (x0, y0, x1, y1), x1, y1
exclusive.

SSIM follows Wang et al. 2004 as scikit-image computes it with
`structural_similarity(a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255)`: an 11x11 Gaussian window (sigma 1.5,
truncated at 3.5 sigma = radius 5), K1 = 0.01, K2 = 0.03, population (not sample)
covariances; the SSIM map is averaged after dropping a 5-pixel border (where the
window would leave the image), and colour images are scored per RGB channel and the
channel scores averaged (no luminance conversion).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter

from dancenow.pose.geometry import clamp_box

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # radius int(3.5 * 1.5 + 0.5) = 5 -> 11x11 window
SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
SSIM_K1, SSIM_K2 = 0.01, 0.03


# ------------------------------------------------------------------ image similarity
def _pair(a: np.ndarray, b: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"{name}: images differ in shape {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"{name}: expected (H, W) or (H, W, C) images, got shape {a.shape}")
    return a.astype(np.float64), b.astype(np.float64)


def ssim_map(a: np.ndarray, b: np.ndarray, *, data_range: float = 255.0) -> np.ndarray:
    """Per-pixel SSIM of two single-channel (H, W) images, float64 (H, W), border included."""
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return gaussian_filter(x, sigma=SSIM_SIGMA, truncate=SSIM_TRUNCATE, mode="reflect")

    ux, uy = blur(a), blur(b)
    vx = blur(a * a) - ux * ux
    vy = blur(b * b) - uy * uy
    vxy = blur(a * b) - ux * uy
    num = (2.0 * ux * uy + c1) * (2.0 * vxy + c2)
    den = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    return num / den


def ssim(a: np.ndarray, b: np.ndarray, *, data_range: float = 255.0) -> float:
    """Mean SSIM of two images (H, W) or (H, W, C), averaged over channels (see module doc).

    Both images must have the same shape and be at least 11x11. 1.0 for identical images.
    """
    x, y = _pair(a, b, "ssim")
    h, w = x.shape[:2]
    win = 2 * SSIM_RADIUS + 1
    if h < win or w < win:
        raise ValueError(f"ssim: images must be at least {win}x{win} pixels, got {h}x{w}")
    if x.ndim == 2:
        x, y = x[:, :, None], y[:, :, None]
    r = SSIM_RADIUS
    scores = [
        ssim_map(x[:, :, c], y[:, :, c], data_range=data_range)[r:-r, r:-r].mean()
        for c in range(x.shape[2])
    ]
    return float(np.mean(scores))


def psnr(a: np.ndarray, b: np.ndarray, *, data_range: float = 255.0, cap: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels.

    Identical images give `math.inf`, or `cap` when one is given (PSNR values are
    also clipped to at most `cap`); averaging over frames should use a cap.
    """
    x, y = _pair(a, b, "psnr")
    mse = float(np.mean((x - y) ** 2))
    value = math.inf if mse == 0.0 else 10.0 * math.log10(data_range**2 / mse)
    return value if cap is None else min(value, float(cap))


# ------------------------------------------------------------------ crops
def crop(image: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """The part of `image` (H, W, ...) inside box (x0, y0, x1, y1), clamped to the image.

    x1, y1 are exclusive. Raises ValueError when the box misses the image entirely.
    """
    h, w = image.shape[:2]
    b = clamp_box(box, w, h)
    if b is None:
        raise ValueError(f"crop: box {tuple(box)} lies outside the {w}x{h} image")
    x0, y0, x1, y1 = b
    return image[y0:y1, x0:x1]


