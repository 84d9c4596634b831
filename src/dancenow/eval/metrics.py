"""Evaluation metrics on numpy arrays: SSIM, PSNR, crops, pose distance, temporal flicker.

Images are (H, W, 3) uint8 RGB arrays unless noted; keypoints follow
`dancenow.pose.schema` ((137, 3) or (T, 137, 3) of x, y, confidence in pixels).
This module never imports torch (the perceptual metrics live in `dancenow.eval.lpips`).

Image similarity (SSIM, PSNR, crops) lives in `dancenow.similarity`, box geometry in
`dancenow.pose.geometry`; both are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from dancenow.pose.geometry import Box, body_box, clamp_box, motion_thirds, person_height
from dancenow.pose.schema import BODY, FACE, LEFT_HAND, N_KEYPOINTS, RIGHT_HAND
from dancenow.similarity import SSIM_K1, SSIM_K2, SSIM_RADIUS, SSIM_SIGMA, SSIM_TRUNCATE, crop, psnr, ssim, ssim_map

__all__ = ["Box", "body_box", "clamp_box", "person_height", "crop", "psnr", "ssim", "ssim_map", "SSIM_K1", "SSIM_K2",
           "SSIM_RADIUS", "SSIM_SIGMA", "SSIM_TRUNCATE", "POSE_PARTS", "pose_distance", "missed_detections",
           "backward_flows", "flicker_series", "flicker", "sharpness", "sharpness_ratio"]

# Keypoint index sets of the parts reported by the pose metrics.
POSE_PARTS: dict[str, np.ndarray] = {
    "body": np.arange(N_KEYPOINTS)[BODY],
    "face": np.arange(N_KEYPOINTS)[FACE],
    "hands": np.concatenate([np.arange(N_KEYPOINTS)[LEFT_HAND], np.arange(N_KEYPOINTS)[RIGHT_HAND]]),
    "all": np.arange(N_KEYPOINTS),
}


# ------------------------------------------------------------------ pose metrics
def _as_seq(kp: np.ndarray, name: str) -> np.ndarray:
    kp = np.asarray(kp, dtype=np.float64)
    if kp.ndim == 2:
        kp = kp[None]
    if kp.ndim != 3 or kp.shape[1:] != (N_KEYPOINTS, 3):
        raise ValueError(f"{name}: keypoints must be (T, {N_KEYPOINTS}, 3), got {kp.shape}")
    return kp


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


# ------------------------------------------------------------------ sharpness
def sharpness(image: np.ndarray) -> float:
    """High-frequency energy of an image: the mean squared 4-neighbour Laplacian of its
    grey levels (0-255), a 1-pixel border dropped. 0 for a flat image; blur lowers it."""
    g = _gray(image)
    if min(g.shape) < 3:
        raise ValueError(f"sharpness: image must be at least 3x3, got {g.shape}")
    lap = cv2.Laplacian(g, cv2.CV_64F, ksize=1)[1:-1, 1:-1]
    return float(np.mean(lap * lap))


def sharpness_ratio(generated: Sequence[np.ndarray], real: Sequence[np.ndarray]) -> float:
    """Generated over real high-frequency energy, summed over paired crops (1: as sharp as the
    real frames; below 1: softer; NaN when the real crops are flat or none are given)."""
    if len(generated) != len(real):
        raise ValueError(f"sharpness_ratio: {len(generated)} generated crops but {len(real)} real ones")
    num = sum(sharpness(g) for g in generated)
    den = sum(sharpness(r) for r in real)
    return num / den if den > 0 else math.nan


# ------------------------------------------------------------------ by motion
MOTION_THIRDS = ("slow", "middle", "fast")


def by_motion(scores: Sequence[float], motion: Sequence[float]) -> dict[str, float]:
    """Mean of per-frame `scores` over the slowest, middle and fastest third of the frames by
    `motion` (`pose.geometry.motion_thirds`; NaN scores, frames without a score, left out)."""
    s, m = np.asarray(scores, np.float64), np.asarray(motion, np.float64)
    if s.shape != m.shape:
        raise ValueError(f"by_motion: {s.shape} scores but {m.shape} motions")
    thirds = motion_thirds(m)
    out = {}
    for k, name in enumerate(MOTION_THIRDS):
        v = s[thirds == k]
        v = v[np.isfinite(v)]
        out[name] = float(v.mean()) if v.size else math.nan
    return out
