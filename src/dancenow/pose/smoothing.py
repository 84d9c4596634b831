"""Confidence-aware temporal smoothing and gap filling of keypoint tracks (pure numpy).

Default (`SmoothingConfig()`), and why:
1. Points below `min_confidence` are treated as missing.
2. Gaps of at most `max_gap_s` seconds between two detections are filled by linear
   interpolation (confidence = the smaller neighbour's, times 0.9 so filled points
   stay distinguishable); longer gaps stay missing.
3. A 3-frame running median on each contiguous run of a track removes single-frame
   outliers (a detector flipping a wrist for one frame) without smearing motion.
4. A confidence-weighted Gaussian (sigma `sigma_s` seconds, i.e. fps-independent)
   removes the remaining jitter. At low frame rates the Gaussian's sigma falls under
   half a frame and is skipped, leaving the median alone; this is the paper's own
   choice (Gaussian for high-fps video, median for low fps) made continuous.
Offline (non-causal) filters are the right tool here: whole videos are available, and
unlike One-Euro they add no lag.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from dancenow.pose.schema import FACE, PoseSequence


@dataclass(frozen=True)
class SmoothingConfig:
    min_confidence: float = 0.1
    max_gap_s: float = 0.25
    median_window: int = 3
    sigma_s: float = 0.04
    face_sigma_scale: float = 1.5  # face points jitter more than limbs at the same size


def _runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """(T,) bool -> list of [start, stop) runs of True."""
    padded = np.concatenate([[False], valid, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def fill_gaps(keypoints: np.ndarray, max_gap: int, min_confidence: float = 0.0) -> np.ndarray:
    """Linearly interpolate missing runs of at most `max_gap` frames between two valid frames.

    keypoints: (T, K, 3). Returns a new (T, K, 3) array; longer gaps and gaps at either
    end stay missing (confidence 0).
    """
    out = np.array(keypoints, dtype=np.float32, copy=True)
    if max_gap <= 0 or len(out) < 3:
        return out
    valid = out[:, :, 2] > min_confidence
    for k in range(out.shape[1]):
        v = valid[:, k]
        for start, stop in _runs(~v):
            if start == 0 or stop == len(v) or stop - start > max_gap:
                continue
            a, b = out[start - 1, k], out[stop, k]
            w = (np.arange(start, stop) - (start - 1)) / (stop - (start - 1))
            out[start:stop, k, :2] = a[:2] + w[:, None] * (b[:2] - a[:2])
            out[start:stop, k, 2] = 0.9 * min(a[2], b[2])
    return out


def median_filter(keypoints: np.ndarray, window: int, min_confidence: float = 0.0) -> np.ndarray:
    """Running median of x and y over each contiguous valid run (window odd, in frames)."""
    out = np.array(keypoints, dtype=np.float32, copy=True)
    if window < 3:
        return out
    half = window // 2
    valid = out[:, :, 2] > min_confidence
    for k in range(out.shape[1]):
        for start, stop in _runs(valid[:, k]):
            n = stop - start
            if n < 3:
                continue
            seg = keypoints[start:stop, k, :2]
            idx = np.arange(n)[:, None] + np.arange(-half, half + 1)[None, :]
            idx = np.clip(idx, 0, n - 1)  # edge frames reuse the border value
            out[start:stop, k, :2] = np.median(seg[idx], axis=1)
    return out


def gaussian_smooth(keypoints: np.ndarray, sigma: float, min_confidence: float = 0.0) -> np.ndarray:
    """Confidence-weighted Gaussian smoothing of x, y along time (sigma in frames).

    Each output point is sum_j g(t-j) c_j p_j / sum_j g(t-j) c_j over valid frames j of
    the same contiguous run, so missing frames neither pull points toward (0, 0) nor
    bridge separate runs. Missing points stay missing.
    """
    out = np.array(keypoints, dtype=np.float32, copy=True)
    if sigma < 0.5:
        return out
    radius = int(np.ceil(3 * sigma))
    offsets = np.arange(-radius, radius + 1)
    g = np.exp(-0.5 * (offsets / sigma) ** 2)
    valid = out[:, :, 2] > min_confidence
    for k in range(out.shape[1]):
        for start, stop in _runs(valid[:, k]):
            n = stop - start
            if n < 2:
                continue
            seg = keypoints[start:stop, k].astype(np.float64)
            idx = np.arange(n)[:, None] + offsets[None, :]
            inside = (idx >= 0) & (idx < n)
            w = g[None, :] * inside * seg[np.clip(idx, 0, n - 1), 2]
            wsum = w.sum(axis=1, keepdims=True)
            pts = seg[np.clip(idx, 0, n - 1), :2]
            out[start:stop, k, :2] = (w[:, :, None] * pts).sum(axis=1) / np.maximum(wsum, 1e-12)
    return out


def smooth_keypoints(keypoints: np.ndarray, fps: float, cfg: SmoothingConfig = SmoothingConfig()) -> np.ndarray:
    """Full default chain on a (T, K, 3) array: threshold, fill gaps, median, Gaussian."""
    kp = np.array(keypoints, dtype=np.float32, copy=True)
    low = kp[:, :, 2] < cfg.min_confidence
    kp[low] = 0.0
    kp = fill_gaps(kp, max_gap=int(round(cfg.max_gap_s * fps)))
    kp = median_filter(kp, cfg.median_window)
    sigma = cfg.sigma_s * fps
    if kp.shape[1] > FACE.start:
        body_like = np.ones(kp.shape[1], dtype=bool)
        body_like[FACE] = False
        out = kp.copy()
        out[:, body_like] = gaussian_smooth(kp[:, body_like], sigma)
        out[:, FACE] = gaussian_smooth(kp[:, FACE], sigma * cfg.face_sigma_scale)
        return out
    return gaussian_smooth(kp, sigma)


def smooth_poses(seq: PoseSequence, cfg: SmoothingConfig = SmoothingConfig()) -> PoseSequence:
    """Smooth a PoseSequence; records the settings in meta['smoothing']."""
    kp = smooth_keypoints(seq.keypoints, seq.fps, cfg)
    meta = dict(seq.meta)
    meta["smoothing"] = {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}
    return replace(seq, keypoints=kp, meta=meta)
