"""Global pose normalization (Everybody Dance Now, Sec. 3 / appendix): pure numpy.

In each video we find where the person's feet stand when closest to the camera (the
largest ankle y, lowest in the frame) and when farthest (the smallest), and the person's
height near each. A source frame whose feet stand at ankle height y gets the scale

    s(y) = s_far + a(y) * (s_close - s_far),     a(y) = (y - far_src) / (close_src - far_src)

with s_close = height_tgt_close / height_src_close and s_far likewise, and is translated
so that its ankle lands at far_tgt + a(y) * (close_tgt - far_tgt) in the target frame:
depth in the source maps linearly onto the target's depth range. Horizontally, the
offset of the feet from the source's median position is scaled onto the target's
median position.

"Ankle y" of a frame is the lowest visible ankle/heel (the foot on the ground);
"height" is the vertical distance from the nose to that ankle. Both are robust
statistics over many frames (percentiles, medians), so a few bad detections do not
move them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from dancenow.pose.schema import B, NOSE, PoseSequence

ANKLE_POINTS = (B["RAnkle"], B["LAnkle"], B["RHeel"], B["LHeel"])


@dataclass(frozen=True)
class NormStats:
    """Statistics of one video, in that video's pixel coordinates."""

    ankle_close: float   # ankle y when closest to the camera (largest y)
    ankle_far: float     # ankle y when farthest (smallest y)
    height_close: float  # nose-to-ankle height near the close position
    height_far: float    # nose-to-ankle height near the far position
    center_x: float      # median ankle x over the video
    width: int
    height: int
    n_frames_used: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "NormStats":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class NormConfig:
    close_percentile: float = 95.0   # robust "max" of ankle y
    far_percentile: float = 5.0      # robust "min" of ankle y
    near_fraction: float = 0.15      # frames within this fraction of the ankle range count as "near" a position
    height_percentile: float = 90.0  # upright height among the near frames (ignores crouches)
    min_conf: float = 0.1
    ground_window_s: float = 0.4     # ground contact = highest ankle y within +-window/2: a jump is not a step back


def ankle_track(keypoints: np.ndarray, min_conf: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame ground point.

    keypoints: (T, 137, 3). Returns (ankle_x (T,), ankle_y (T,)): x is the mean x of the
    visible ankles/heels (between the feet, steady when weight shifts), y the lowest
    visible one (the foot on the ground); NaN where none is visible.
    """
    pts = keypoints[:, ANKLE_POINTS].astype(np.float64)  # (T, 4, 3)
    ok = pts[:, :, 2] > min_conf
    n = ok.sum(axis=1)
    any_ok = n > 0
    ax = np.where(any_ok, (pts[:, :, 0] * ok).sum(axis=1) / np.maximum(n, 1), np.nan)
    ay = np.where(any_ok, np.where(ok, pts[:, :, 1], -np.inf).max(axis=1), np.nan)
    return ax, ay


def person_heights(keypoints: np.ndarray, min_conf: float = 0.1) -> np.ndarray:
    """(T,) nose-to-ground-ankle vertical distance, NaN where not measurable."""
    _, ay = ankle_track(keypoints, min_conf)
    nose = keypoints[:, NOSE]
    ny = np.where(nose[:, 2] > min_conf, nose[:, 1], np.nan)
    return ay - ny


def compute_stats(seq: PoseSequence, cfg: NormConfig = NormConfig()) -> NormStats:
    """Normalization statistics of one video. Raises ValueError when no frame has both a nose and an ankle."""
    ax, ay = ankle_track(seq.keypoints, cfg.min_conf)
    h = person_heights(seq.keypoints, cfg.min_conf)
    usable = np.isfinite(ay) & np.isfinite(h) & (h > 0)
    if usable.sum() == 0:
        raise ValueError("no frame shows both the nose and an ankle: cannot compute normalization statistics")
    y_ok, h_ok = ay[usable], h[usable]
    close = float(np.percentile(y_ok, cfg.close_percentile))
    far = float(np.percentile(y_ok, cfg.far_percentile))
    tol = max(cfg.near_fraction * (close - far), 0.01 * seq.height)
    near_close = np.abs(y_ok - close) <= tol
    near_far = np.abs(y_ok - far) <= tol
    h_close = float(np.percentile(h_ok[near_close], cfg.height_percentile))
    h_far = float(np.percentile(h_ok[near_far], cfg.height_percentile))
    return NormStats(
        ankle_close=close,
        ankle_far=far,
        height_close=h_close,
        height_far=h_far,
        center_x=float(np.nanmedian(ax[usable])),
        width=int(seq.width),
        height=int(seq.height),
        n_frames_used=int(usable.sum()),
    )


def _depth_fraction(y: np.ndarray, stats: NormStats) -> np.ndarray:
    """Where ankle height y sits between far (0) and close (1); 0.5 when the video has no depth range."""
    span = stats.ankle_close - stats.ankle_far
    if span < 1e-6 * max(stats.height, 1):
        return np.full_like(y, 0.5)
    return np.clip((y - stats.ankle_far) / span, 0.0, 1.0)


def frame_transforms(
    ankle_x: np.ndarray, ankle_y: np.ndarray, src: NormStats, tgt: NormStats
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame similarity transforms from source to target pixels.

    ankle_x, ankle_y: (T,) source ground point (no NaN). Returns (scale, anchor_src (T,2),
    anchor_tgt (T,2), alpha (T,)): p' = anchor_tgt + scale * (p - anchor_src).
    """
    alpha = _depth_fraction(ankle_y, src)
    s_close = tgt.height_close / src.height_close
    s_far = tgt.height_far / src.height_far
    if src.ankle_close - src.ankle_far < 1e-6 * max(src.height, 1):
        scale = np.full_like(alpha, 0.5 * (s_close + s_far))
    else:
        scale = s_far + alpha * (s_close - s_far)
    tgt_y = tgt.ankle_far + alpha * (tgt.ankle_close - tgt.ankle_far)
    tgt_x = tgt.center_x + scale * (ankle_x - src.center_x)
    anchor_src = np.stack([ankle_x, ankle_y], axis=1)
    anchor_tgt = np.stack([tgt_x, tgt_y], axis=1)
    return scale, anchor_src, anchor_tgt, alpha


def ground_track(ankle_y: np.ndarray, window: int) -> np.ndarray:
    """(T,) centred running max of the (filled) ankle y over `window` frames.

    A foot in the air (a jump, a kick) rises above the ground; taking the lowest foot
    position nearby as the ground keeps a jump from being read as a step away from the
    camera (which would shrink the figure mid-air).
    """
    if window < 2:
        return ankle_y
    half = window // 2
    n = len(ankle_y)
    idx = np.clip(np.arange(n)[:, None] + np.arange(-half, half + 1)[None, :], 0, n - 1)
    return ankle_y[idx].max(axis=1)


def _fill_track(v: np.ndarray) -> np.ndarray:
    """Fill NaNs in a (T,) track by linear interpolation, holding the ends."""
    ok = np.isfinite(v)
    if ok.all() or not ok.any():
        return v
    idx = np.arange(len(v))
    return np.interp(idx, idx[ok], v[ok])


def source_transforms(
    source: PoseSequence, src_stats: NormStats, tgt_stats: NormStats, cfg: NormConfig = NormConfig()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-frame similarity transforms that :func:`normalize_poses` applies:
    (scale (T,), anchor_src (T, 2), anchor_tgt (T, 2)), p' = anchor_tgt + scale * (p - anchor_src).

    Frames where the feet are not visible use the ground point interpolated from
    neighbouring frames.
    """
    ax, ay = ankle_track(source.keypoints, cfg.min_conf)
    if not np.isfinite(ay).any():
        raise ValueError("the source never shows an ankle: cannot normalize")
    ax, ay = _fill_track(ax), _fill_track(ay)
    ay = ground_track(ay, int(round(cfg.ground_window_s * source.fps)))
    scale, a_src, a_tgt, _ = frame_transforms(ax, ay, src_stats, tgt_stats)
    return scale, a_src, a_tgt


def apply_transforms(keypoints: np.ndarray, scale: np.ndarray, anchor_src: np.ndarray,
                     anchor_tgt: np.ndarray) -> np.ndarray:
    """(T, K, 3) keypoints moved by per-frame similarity transforms; missing points stay (0, 0, 0)."""
    kp = np.array(keypoints, dtype=np.float32, copy=True)
    present = kp[:, :, 2] > 0
    xy = anchor_tgt[:, None, :] + scale[:, None, None] * (kp[:, :, :2] - anchor_src[:, None, :])
    kp[:, :, :2] = np.where(present[:, :, None], xy, 0.0)
    return kp


def normalize_poses(
    source: PoseSequence, src_stats: NormStats, tgt_stats: NormStats, cfg: NormConfig = NormConfig()
) -> PoseSequence:
    """Map source keypoints into the target's frame (size tgt_stats.width x height).

    Frames where the feet are not visible use the ground point interpolated from
    neighbouring frames. Missing points stay missing. The statistics are recorded in
    meta['normalization'].
    """
    kp = apply_transforms(source.keypoints, *source_transforms(source, src_stats, tgt_stats, cfg))
    meta = dict(source.meta)
    meta["normalization"] = {"source": src_stats.to_dict(), "target": tgt_stats.to_dict(), "config": asdict(cfg)}
    return replace(source, keypoints=kp, width=tgt_stats.width, height=tgt_stats.height, meta=meta)
