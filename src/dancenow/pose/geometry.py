"""Geometry on keypoints, shared by every stage: boxes, "person present", heights, resampling.

Pure numpy (no torch). Keypoints follow `dancenow.pose.schema`: (137, 3) for one frame or
(T, 137, 3) for a sequence, x, y, confidence in pixels. Boxes are (x0, y0, x1, y1) with
x1, y1 exclusive.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from dancenow.pose.schema import BODY, FACE, N_KEYPOINTS, NOSE, B

Box = tuple[int, int, int, int]

CONF = 0.1                 # a keypoint counts as seen above this confidence
PRESENT_MIN_POINTS = 3     # a frame shows a person when this many body points are seen
HEAD_POINTS = (NOSE, B["REye"], B["LEye"], B["REar"], B["LEar"])


def person_present(keypoints: np.ndarray, conf: float = CONF, min_points: int = PRESENT_MIN_POINTS) -> np.ndarray:
    """(T, 137, 3) -> (T,) bool: at least `min_points` body points seen."""
    return (np.asarray(keypoints)[:, BODY, 2] > conf).sum(axis=1) >= min_points


def person_boxes(keypoints: np.ndarray, conf: float = CONF) -> np.ndarray:
    """(T, 137, 3) -> (T, 4) float x0, y0, x1, y1 of the seen body points (tight); NaN rows where none."""
    body = np.asarray(keypoints)[:, BODY]
    ok = body[:, :, 2] > conf
    x = np.where(ok, body[:, :, 0], np.nan)
    y = np.where(ok, body[:, :, 1], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.stack([np.nanmin(x, 1), np.nanmin(y, 1), np.nanmax(x, 1), np.nanmax(y, 1)], axis=1)


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


def body_box(keypoints: np.ndarray, width: int, height: int, margin: float = 0.1, conf_thr: float = CONF) -> Box | None:
    """Box around the seen BODY_25 points of one frame, grown by `margin` x its height.

    keypoints: (137, 3). The tight box of `person_boxes`, grown on every side by `margin` x
    its height, then clamped to the width x height frame. None when fewer than 2 body
    points are seen. (Face crops use the fixed-size boxes of `face_boxes`.)
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape != (N_KEYPOINTS, 3):
        raise ValueError(f"body_box: keypoints must be ({N_KEYPOINTS}, 3), got {kp.shape}")
    if (kp[BODY, 2] > conf_thr).sum() < 2:
        return None
    x0, y0, x1, y1 = person_boxes(kp[None], conf_thr)[0]
    pad = margin * (y1 - y0)
    return clamp_box((x0 - pad, y0 - pad, x1 + pad, y1 + pad), width, height)


def _face_side(keypoints: np.ndarray, conf: float) -> list[float]:
    """Per-frame face sizes: the face points' extent, or twice the nose-neck distance."""
    face = keypoints[:, FACE]
    fok = face[:, :, 2] > conf
    sizes = []
    for t in range(len(keypoints)):
        if fok[t].sum() >= 20:
            p = face[t, fok[t], :2]
            sizes.append(max(np.ptp(p[:, 0]), np.ptp(p[:, 1])))
        elif keypoints[t, NOSE, 2] > conf and keypoints[t, B["Neck"], 2] > conf:
            sizes.append(2.0 * abs(keypoints[t, B["Neck"], 1] - keypoints[t, NOSE, 1]))
    return sizes


def face_boxes(keypoints: np.ndarray, width: int, height: int, conf: float = CONF,
               side: int | None = None) -> tuple[np.ndarray, int]:
    """Fixed-size square face boxes.

    keypoints (T, 137, 3) in output pixels -> ((T, 4) int32 x0, y0, x1, y1, side). The side is
    the same for every frame (1.6 x the median face size: jaw width/height from face points, or
    twice the nose-neck distance where the face was not found), rounded up to a multiple of 8,
    at least 32. The centre is the mean of seen face points (else of the head points).
    Rows are -1 where neither is seen. `side` fixes the size (transfer uses the
    size the face GAN was trained with).
    """
    if side is None:
        sizes = _face_side(keypoints, conf)
        side = 1.6 * float(np.median(sizes)) if sizes else 0.15 * height
        side = int(max(32, 8 * np.ceil(side / 8)))
        side = min(side, 8 * (min(width, height) // 8))
    face, head = keypoints[:, FACE], keypoints[:, HEAD_POINTS]
    fok, hok = face[:, :, 2] > conf, head[:, :, 2] > conf
    out = np.full((len(keypoints), 4), -1, dtype=np.int32)
    for t in range(len(keypoints)):
        if fok[t].sum() >= 20:
            c = face[t, fok[t], :2].mean(axis=0)
        elif hok[t].any():
            c = head[t, hok[t], :2].mean(axis=0)
        else:
            continue
        x0 = min(max(int(round(c[0] - side / 2)), 0), width - side)
        y0 = min(max(int(round(c[1] - side / 2)), 0), height - side)
        out[t] = (x0, y0, x0 + side, y0 + side)
    return out, side


def person_height(keypoints: np.ndarray, conf_thr: float = CONF) -> np.ndarray | float:
    """Height of the person in pixels: vertical extent of the seen BODY_25 points
    (eyes/ears to heels/toes when the whole body is seen).

    keypoints (137, 3) -> float; (T, 137, 3) -> (T,) float64. NaN where fewer than 2
    body points are seen or the extent is 0.
    """
    single = np.asarray(keypoints).ndim == 2
    kp = np.asarray(keypoints, dtype=np.float64)
    kp = kp[None] if single else kp
    if kp.ndim != 3 or kp.shape[1:] != (N_KEYPOINTS, 3):
        raise ValueError(f"person_height: keypoints must be (T, {N_KEYPOINTS}, 3), got {kp.shape}")
    boxes = person_boxes(kp, conf_thr)
    out = boxes[:, 3] - boxes[:, 1]
    out[(kp[:, BODY, 2] > conf_thr).sum(axis=1) < 2] = np.nan
    out[~(out > 0)] = np.nan
    return float(out[0]) if single else out


def body_motion(keypoints: np.ndarray, conf_thr: float = CONF) -> np.ndarray:
    """How far the fastest body point moved into each frame: (T, 137, 3) -> (T,) float64 pixels,
    the largest displacement from frame t-1 to t among the BODY_25 points seen in both (a kick
    moves one foot, so the largest, not a mean). 0 for the first frame and where no point is
    seen in both."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[1:] != (N_KEYPOINTS, 3):
        raise ValueError(f"body_motion: keypoints must be (T, {N_KEYPOINTS}, 3), got {kp.shape}")
    out = np.zeros(len(kp), dtype=np.float64)
    if len(kp) < 2:
        return out
    body = kp[:, BODY]
    seen = (body[1:, :, 2] > conf_thr) & (body[:-1, :, 2] > conf_thr)
    step = np.linalg.norm(body[1:, :, :2] - body[:-1, :, :2], axis=-1)
    out[1:] = np.where(seen, step, 0.0).max(axis=1)
    return out


def body_motion_in(keypoints: np.ndarray, start: int, stop: int, conf_thr: float = CONF) -> np.ndarray:
    """`body_motion` of frames [start, stop) of a longer sequence: frame `start` is measured from
    frame start-1 (0 when start is 0), as in the whole sequence."""
    if not 0 <= start <= stop <= len(keypoints):
        raise ValueError(f"body_motion_in: frames [{start}, {stop}) of {len(keypoints)}")
    if stop == start:
        return np.zeros(0, dtype=np.float64)
    return body_motion(np.asarray(keypoints)[max(0, start - 1):stop], conf_thr)[-(stop - start):]


def motion_thirds(motion: np.ndarray) -> np.ndarray:
    """Which third of the frames by `motion` each frame is in: (T,) -> (T,) int, 0 the slowest,
    2 the fastest (the stable ascending order split as np.array_split does: the slower thirds
    take the remainder, and of equal motions the later frame counts as the faster)."""
    m = np.asarray(motion, dtype=np.float64)
    if m.ndim != 1:
        raise ValueError(f"motion_thirds: motion must be (T,), got {m.shape}")
    out = np.zeros(len(m), dtype=np.int64)
    for third, idx in enumerate(np.array_split(np.argsort(m, kind="stable"), 3)):
        out[idx] = third
    return out


def resample_indices(timestamps: np.ndarray, fps: float | None, start: float | None = None,
                     end: float | None = None) -> tuple[np.ndarray, float]:
    """Frame index for every output tick, and the output fps: the one resampling rule.

    Output ticks run every 1/fps from `start` (default the first frame) to `end`; each
    takes the latest frame at or before it (frames repeat when fps is higher than the
    video's). fps None keeps every frame in [start, end] at the video's mean rate.
    """
    ts = np.asarray(timestamps, dtype=np.float64)
    ts = ts - ts[0]
    t0 = 0.0 if start is None else max(0.0, float(start))
    t1 = ts[-1] if end is None else min(float(end), ts[-1])
    if fps is None:
        idx = np.flatnonzero((ts >= t0 - 1e-6) & (ts <= t1 + 1e-6))
        src_fps = (len(ts) - 1) / ts[-1] if ts[-1] > 0 else 25.0
        return idx, float(src_fps)
    ticks = np.arange(t0, t1 + 1e-6, 1.0 / fps)
    idx = np.clip(np.searchsorted(ts, ticks + 1e-6, side="right") - 1, 0, len(ts) - 1)
    return idx, float(fps)
