"""Global pose normalization without knowing the future: live mode's normalizer (pure numpy).

The paper's normalization (`dancenow.pose.normalize`) needs the source's ankle statistics at
its closest and farthest positions, taken over the whole video. Live, there is no whole video:

1. Calibration. For the first `calibration_s` seconds with a person in view ("stand where you
   will dance, step forward and back") nothing is generated; the frames' poses are collected
   and `compute_stats` on them gives the first statistics.
2. Running update. Every `update_every_s` the statistics are computed again over the last
   `history_s` seconds of poses (calibration included while it is that recent), and the
   statistics in use move toward them by at most `max_rate` x the frame height per second
   for each ankle height, person height and the centre. A dancer who steps farther back than
   in calibration widens the range over a few seconds; a bad detection never makes the
   figure jump.
3. The ground point. Offline, a centred running max of the ankle height keeps a jump from
   reading as a step back; live only the past is known, so the max runs over the last
   `ground_window_s` seconds.

A person who leaves the view keeps the statistics; the ground history restarts on re-entry.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from dancenow.pose.geometry import person_present
from dancenow.pose.normalize import NormStats, ankle_track, apply_transforms, compute_stats, frame_transforms
from dancenow.pose.schema import PoseSequence

_MOVING = ("ankle_close", "ankle_far", "height_close", "height_far", "center_x")


@dataclass(frozen=True)
class OnlineNormConfig:
    calibration_s: float = 4.0
    min_calibration_frames: int = 8
    history_s: float = 60.0
    update_every_s: float = 0.5
    max_rate: float = 0.05        # fraction of the frame height per second a statistic may move
    ground_window_s: float = 0.2  # causal running max of the ankle height

    def __post_init__(self) -> None:
        if self.calibration_s < 0 or self.max_rate <= 0 or self.history_s <= 0:
            raise ValueError("OnlineNormConfig: calibration_s >= 0, max_rate > 0 and history_s > 0 are needed")


def bounded_step(current: NormStats, wanted: NormStats, max_move: float) -> NormStats:
    """`current` moved toward `wanted`, each moving statistic by at most `max_move` pixels."""
    moved = {k: getattr(current, k) + float(np.clip(getattr(wanted, k) - getattr(current, k), -max_move, max_move))
             for k in _MOVING}
    return replace(current, **moved, n_frames_used=wanted.n_frames_used)


class OnlineNormalizer:
    """Source poses (137, 3) in the camera's pixels -> the target's pixels, frame by frame."""

    def __init__(self, target: NormStats, width: int, height: int, cfg: OnlineNormConfig = OnlineNormConfig()):
        self.target, self.width, self.height, self.cfg = target, int(width), int(height), cfg
        self.stats: NormStats | None = None
        self.calibrated_s = 0.0
        self._history: deque[tuple[float, np.ndarray]] = deque()
        self._ground: deque[tuple[float, float]] = deque()
        self._last_t: float | None = None
        self._last_update: float | None = None
        self._last_x: float | None = None

    @property
    def calibrating(self) -> bool:
        return self.stats is None

    def _statistics(self) -> NormStats | None:
        kp = np.stack([k for _, k in self._history])
        try:
            return compute_stats(PoseSequence(kp, self.width, self.height, 30.0))
        except ValueError:  # no frame with both a nose and an ankle yet
            return None

    def _update_stats(self, t: float) -> None:
        cfg = self.cfg
        if self.stats is None:
            if self.calibrated_s >= cfg.calibration_s and len(self._history) >= cfg.min_calibration_frames:
                self.stats, self._last_update = self._statistics(), t
            return
        if t - self._last_update >= cfg.update_every_s:
            wanted = self._statistics()
            if wanted is not None:
                self.stats = bounded_step(self.stats, wanted, cfg.max_rate * self.height * (t - self._last_update))
            self._last_update = t

    def _ground_y(self, t: float, keypoints: np.ndarray) -> tuple[float, float] | None:
        ax, ay = ankle_track(keypoints[None])
        if np.isfinite(ay[0]):
            self._ground.append((t, float(ay[0])))
            self._last_x = float(ax[0])
        while self._ground and t - self._ground[0][0] > self.cfg.ground_window_s:
            self._ground.popleft()
        if not self._ground or self._last_x is None:
            return None
        return self._last_x, max(y for _, y in self._ground)

    def update(self, keypoints: np.ndarray, t: float) -> np.ndarray | None:
        """One frame's keypoints at time `t` (s) -> (137, 3) in the target's pixels, or None while
        calibrating, when no person is in view, or before an ankle has been seen."""
        dt = 0.0 if self._last_t is None else max(0.0, t - self._last_t)
        self._last_t = t
        if not person_present(keypoints[None])[0]:
            self._ground.clear()
            self._last_x = None
            return None
        self.calibrated_s += dt
        self._history.append((t, np.asarray(keypoints, np.float32)))
        while t - self._history[0][0] > self.cfg.history_s:
            self._history.popleft()
        self._update_stats(t)
        ground = self._ground_y(t, keypoints)
        if self.stats is None or ground is None:
            return None
        scale, a_src, a_tgt, _ = frame_transforms(np.array([ground[0]]), np.array([ground[1]]), self.stats,
                                                  self.target)
        return apply_transforms(keypoints[None], scale, a_src, a_tgt)[0]
