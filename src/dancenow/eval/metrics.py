"""Evaluation metrics on numpy arrays: SSIM, PSNR, crops, pose distance, temporal flicker.

Images are (H, W, 3) uint8 RGB arrays unless noted; keypoints follow
`dancenow.pose.schema` ((137, 3) or (T, 137, 3) of x, y, confidence in pixels).
This module never imports torch (the perceptual metrics live in `dancenow.eval.lpips`).

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

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter

from dancenow.pose.schema import BODY, FACE, LEFT_HAND, N_KEYPOINTS, RIGHT_HAND

Box = tuple[int, int, int, int]

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # radius int(3.5 * 1.5 + 0.5) = 5 -> 11x11 window
SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
SSIM_K1, SSIM_K2 = 0.01, 0.03

# Keypoint index sets of the parts reported by the pose metrics.
POSE_PARTS: dict[str, np.ndarray] = {
    "body": np.arange(N_KEYPOINTS)[BODY],
    "face": np.arange(N_KEYPOINTS)[FACE],
    "hands": np.concatenate([np.arange(N_KEYPOINTS)[LEFT_HAND], np.arange(N_KEYPOINTS)[RIGHT_HAND]]),
    "all": np.arange(N_KEYPOINTS),
}


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
def clamp_box(box: Sequence[float], width: int, height: int) -> Box | None:
    """(x0, y0, x1, y1) -> integer box inside a width x height image (x0, y0 floored,
    x1, y1 ceiled, then clamped), or None when nothing of it lies inside."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        return None
    ix0 = min(max(int(math.floor(x0)), 0), width)
    iy0 = min(max(int(math.floor(y0)), 0), height)
    ix1 = min(max(int(math.ceil(x1)), 0), width)
    iy1 = min(max(int(math.ceil(y1)), 0), height)
    if ix1 <= ix0 or iy1 <= iy0:
        return None
    return ix0, iy0, ix1, iy1


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


def body_box(
    keypoints: np.ndarray, width: int, height: int, margin: float = 0.1, conf_thr: float = 0.1
) -> Box | None:
    """Box (x0, y0, x1, y1) around the visible BODY_25 points of one frame.

    keypoints: (137, 3). The tight box of the body points with confidence > conf_thr is
    grown on every side by `margin` x its height, then clamped to the width x height
    frame. None when fewer than 2 body points are visible. (Face crops use the
    fixed-size boxes of `dancenow.data.prepare.face_boxes`.)
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape != (N_KEYPOINTS, 3):
        raise ValueError(f"body_box: keypoints must be ({N_KEYPOINTS}, 3), got {kp.shape}")
    body = kp[BODY]
    pts = body[body[:, 2] > conf_thr, :2]
    if len(pts) < 2:
        return None
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    pad = margin * (y1 - y0)
    return clamp_box((x0 - pad, y0 - pad, x1 + pad, y1 + pad), width, height)


# ------------------------------------------------------------------ pose metrics
def _as_seq(kp: np.ndarray, name: str) -> np.ndarray:
    kp = np.asarray(kp, dtype=np.float64)
    if kp.ndim == 2:
        kp = kp[None]
    if kp.ndim != 3 or kp.shape[1:] != (N_KEYPOINTS, 3):
        raise ValueError(f"{name}: keypoints must be (T, {N_KEYPOINTS}, 3), got {kp.shape}")
    return kp


def person_height(keypoints: np.ndarray, conf_thr: float = 0.1) -> np.ndarray | float:
    """Height of the person in pixels: vertical extent of the visible BODY_25 points
    (eyes/ears to heels/toes when the whole body is seen).

    keypoints (137, 3) -> float; (T, 137, 3) -> (T,) float64. NaN where fewer than 2
    body points are visible or the extent is 0.
    """
    single = np.asarray(keypoints).ndim == 2
    kp = _as_seq(keypoints, "person_height")
    body = kp[:, BODY]
    ok = body[:, :, 2] > conf_thr
    y = np.where(ok, body[:, :, 1], np.nan)
    out = np.full(len(kp), np.nan)
    enough = ok.sum(axis=1) >= 2
    if enough.any():
        out[enough] = np.nanmax(y[enough], axis=1) - np.nanmin(y[enough], axis=1)
    out[~(out > 0)] = np.nan
    return float(out[0]) if single else out


def pose_distance(
    pred: np.ndarray, ref: np.ndarray, heights: np.ndarray | None = None, conf_thr: float = 0.1
) -> dict[str, float]:
    """Mean L2 keypoint distance between detections on generated (`pred`) and real (`ref`) frames.

    pred, ref: (T, 137, 3). A point counts only where it is detected (confidence > conf_thr)
    in both. heights: (T,) person height in pixels per frame, or None to use
    `person_height(ref)`; frames without a finite positive height are left out of the
    normalized values only.

    Returns, for part in body, face, hands, all:
      `{part}`: mean distance in pixels (NaN when no point pair counts),
      `{part}_norm`: mean of distance / height (NaN when none),
      `{part}_n`: number of point pairs that counted.
    """
    p, r = _as_seq(pred, "pose_distance pred"), _as_seq(ref, "pose_distance ref")
    if p.shape != r.shape:
        raise ValueError(f"pose_distance: pred {p.shape} and ref {r.shape} differ")
    h = person_height(r, conf_thr) if heights is None else np.asarray(heights, dtype=np.float64)
    if h.shape != (len(r),):
        raise ValueError(f"pose_distance: heights must be ({len(r)},), got {h.shape}")
    both = (p[:, :, 2] > conf_thr) & (r[:, :, 2] > conf_thr)
    dist = np.linalg.norm(p[:, :, :2] - r[:, :, :2], axis=2)  # (T, 137)
    h_ok = np.isfinite(h) & (h > 0)
    norm = dist / np.where(h_ok, h, 1.0)[:, None]
    out: dict[str, float] = {}
    for part, idx in POSE_PARTS.items():
        m = both[:, idx]
        d = dist[:, idx][m]
        mn = m & h_ok[:, None]
        dn = norm[:, idx][mn]
        out[part] = float(d.mean()) if d.size else math.nan
        out[f"{part}_norm"] = float(dn.mean()) if dn.size else math.nan
        out[f"{part}_n"] = int(m.sum())
    return out


def missed_detections(pred: np.ndarray, ref: np.ndarray, conf_thr: float = 0.1) -> dict[str, float]:
    """Points detected on the real frame but not on the generated one.

    pred, ref: (T, 137, 3). For part in body, face, hands, all:
      `{part}`: mean number per frame of points with confidence > conf_thr in ref and
      <= conf_thr in pred,
      `{part}_rate`: those misses over the points present in ref (NaN when ref has none).
    """
    p, r = _as_seq(pred, "missed_detections pred"), _as_seq(ref, "missed_detections ref")
    if p.shape != r.shape:
        raise ValueError(f"missed_detections: pred {p.shape} and ref {r.shape} differ")
    in_ref = r[:, :, 2] > conf_thr
    missed = in_ref & ~(p[:, :, 2] > conf_thr)
    out: dict[str, float] = {}
    for part, idx in POSE_PARTS.items():
        n_missed = int(missed[:, idx].sum())
        n_ref = int(in_ref[:, idx].sum())
        out[part] = n_missed / len(r) if len(r) else math.nan
        out[f"{part}_rate"] = n_missed / n_ref if n_ref else math.nan
    return out


# ------------------------------------------------------------------ temporal flicker
def _gray(frame: np.ndarray) -> np.ndarray:
    f = np.asarray(frame)
    if f.dtype != np.uint8:
        raise ValueError(f"flow frames must be uint8, got {f.dtype}")
    if f.ndim == 2:
        return np.ascontiguousarray(f)
    if f.ndim == 3 and f.shape[2] == 3:
        return cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY)
    raise ValueError(f"expected (H, W, 3) RGB or (H, W) frames, got {f.shape}")


def _sample(field: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    return cv2.remap(field, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def backward_flows(
    flow_frames: Sequence[np.ndarray], *, occlusion: bool = True
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Flow from each frame t (t >= 1) back to frame t-1, with a validity mask.

    Computed with OpenCV DIS (PRESET_MEDIUM) on grayscale. Returns T-1 pairs
    (flow (H, W, 2) float32, valid (H, W) bool): pixel (x, y) of frame t shows what
    frame t-1 shows at (x + flow_x, y + flow_y). A pixel is invalid when that point is
    outside the frame, or (occlusion=True) when forward and backward flow disagree
    (Sundaram et al. 2010: |f + b|^2 > 0.01 (|f|^2 + |b|^2) + 0.5), i.e. occluded.
    """
    grays = [_gray(f) for f in flow_frames]
    if len(grays) < 2:
        raise ValueError(f"need at least 2 frames for optical flow, got {len(grays)}")
    shape = grays[0].shape
    for i, g in enumerate(grays):
        if g.shape != shape:
            raise ValueError(f"flow frame {i} has size {g.shape}, frame 0 has {shape}")
    h, w = shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    out = []
    for t in range(1, len(grays)):
        back = dis.calc(grays[t], grays[t - 1], None)  # t -> t-1
        map_x, map_y = xs + back[:, :, 0], ys + back[:, :, 1]
        valid = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
        if occlusion:
            fwd = dis.calc(grays[t - 1], grays[t], None)  # t-1 -> t
            fwd_at = _sample(fwd, map_x, map_y)
            err = np.square(back + fwd_at).sum(axis=2)
            mag = np.square(back).sum(axis=2) + np.square(fwd_at).sum(axis=2)
            valid &= err <= 0.01 * mag + 0.5
        out.append((back, valid))
    return out


def flicker_series(frames: Sequence[np.ndarray], flows: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Per pair (t-1, t) flicker of `frames` given `backward_flows` of the reference video.

    Frame t-1 is warped to t with the flow (bilinear, cv2.remap); the value is the mean
    absolute difference to frame t over valid pixels and all channels, in intensity
    units (0-255 for uint8). Returns (T-1,) float64; NaN for a pair without valid pixels.
    """
    if len(frames) != len(flows) + 1:
        raise ValueError(f"{len(frames)} frames need {len(frames) - 1} flows, got {len(flows)}")
    out = np.full(len(flows), np.nan)
    for t in range(1, len(frames)):
        prev = np.asarray(frames[t - 1], dtype=np.float32)
        cur = np.asarray(frames[t], dtype=np.float32)
        flow, valid = flows[t - 1]
        if prev.shape != cur.shape or cur.shape[:2] != flow.shape[:2]:
            raise ValueError(
                f"frame {t - 1}/{t} sizes {prev.shape}/{cur.shape} do not match the flow {flow.shape[:2]}"
            )
        h, w = flow.shape[:2]
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        warped = _sample(prev, xs + flow[:, :, 0], ys + flow[:, :, 1])
        diff = np.abs(cur - warped)
        if diff.ndim == 3:
            diff = diff.mean(axis=2)
        if valid.any():
            out[t - 1] = float(diff[valid].mean())
    return out


def flicker(
    frames: Sequence[np.ndarray], flow_frames: Sequence[np.ndarray], *, occlusion: bool = True
) -> float:
    """Temporal flicker: mean over t of |frame_t - warp(frame_{t-1})|, the warp following
    the optical flow of `flow_frames` (the real video, same length and size).

    flicker(generated, real) measures flicker the real motion does not explain;
    flicker(real, real) is the floor for comparison (flow and warping errors). 0 for a
    static video. To score several videos against one real video, compute
    `backward_flows(real)` once and call `flicker_series` for each.
    """
    if len(frames) != len(flow_frames):
        raise ValueError(f"flicker: {len(frames)} frames but {len(flow_frames)} flow frames")
    series = flicker_series(frames, backward_flows(flow_frames, occlusion=occlusion))
    return float(np.nanmean(series)) if np.isfinite(series).any() else math.nan
