"""The one keypoint schema of dancenow: OpenPose BODY_25 + 70 face points + 2x21 hand points.

All keypoints of a frame live in one (137, 3) array of (x, y, confidence), x and y in
pixels of the frame (origin top-left), confidence in [0, 1]; confidence 0 means missing.
"Left" and "right" are the person's own left and right, as in OpenPose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from dancenow.errors import InputError

SCHEMA_VERSION = 1

BODY_NAMES: tuple[str, ...] = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "MidHip", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye",
    "REar", "LEar", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
)
N_BODY, N_FACE, N_HAND = 25, 70, 21
N_KEYPOINTS = N_BODY + N_FACE + 2 * N_HAND  # 137

BODY = slice(0, N_BODY)
FACE = slice(N_BODY, N_BODY + N_FACE)
LEFT_HAND = slice(N_BODY + N_FACE, N_BODY + N_FACE + N_HAND)
RIGHT_HAND = slice(N_BODY + N_FACE + N_HAND, N_KEYPOINTS)
PARTS: dict[str, slice] = {"body": BODY, "face": FACE, "left_hand": LEFT_HAND, "right_hand": RIGHT_HAND}

B = {name: i for i, name in enumerate(BODY_NAMES)}
NOSE, NECK, MID_HIP = B["Nose"], B["Neck"], B["MidHip"]
R_ANKLE, L_ANKLE = B["RAnkle"], B["LAnkle"]
FEET = (B["RAnkle"], B["LAnkle"], B["RHeel"], B["LHeel"], B["RBigToe"], B["LBigToe"])

# OpenPose BODY_25 limbs (pairs of body indices), drawn in this order.
BODY_LIMBS: tuple[tuple[int, int], ...] = (
    (1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11),
    (8, 12), (12, 13), (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18),
    (14, 19), (19, 20), (14, 21), (11, 22), (22, 23), (11, 24),
)
# OpenPose BODY_25 keypoint colours (RGB); a limb takes the colour of its second point.
BODY_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 85), (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0),
    (85, 255, 0), (0, 255, 0), (255, 0, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255),
    (0, 170, 255), (0, 85, 255), (0, 0, 255), (255, 0, 170), (170, 0, 255), (255, 0, 255),
    (85, 0, 255), (0, 0, 255), (0, 0, 255), (0, 0, 255), (0, 255, 255), (0, 255, 255),
    (0, 255, 255),
)

# 70-point face layout (OpenPose / dlib-68 + 2 pupils), as contours of face indices.
FACE_CONTOURS: dict[str, tuple[int, ...]] = {
    "jaw": tuple(range(0, 17)),
    "right_brow": tuple(range(17, 22)),
    "left_brow": tuple(range(22, 27)),
    "nose_bridge": tuple(range(27, 31)),
    "nose_bottom": tuple(range(31, 36)),
    "right_eye": tuple(range(36, 42)) + (36,),
    "left_eye": tuple(range(42, 48)) + (42,),
    "outer_lips": tuple(range(48, 60)) + (48,),
    "inner_lips": tuple(range(60, 68)) + (60,),
}
R_PUPIL, L_PUPIL = 68, 69

# 21-point hand layout (OpenPose and MediaPipe agree): wrist, then 4 joints per finger.
HAND_LIMBS: tuple[tuple[int, int], ...] = tuple(
    pair
    for base in (1, 5, 9, 13, 17)
    for pair in ((0, base), (base, base + 1), (base + 1, base + 2), (base + 2, base + 3))
)
# OpenPose hand colours per finger (RGB), thumb to pinky.
HAND_FINGER_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 255, 0), (0, 255, 0), (0, 255, 255), (0, 0, 255),
)


@dataclass(frozen=True, eq=False)
class PoseSequence:
    """Keypoints of one person over a video.

    keypoints: (T, 137, 3) float32, (x, y, confidence) in pixels; confidence 0 = missing.
    timestamps: (T,) float64 seconds of each frame (variable frame rate is kept).
    width, height: frame size in pixels the coordinates refer to.
    fps: nominal frame rate.
    meta: JSON-serializable extras (source file, normalization statistics, ...).
    """

    keypoints: np.ndarray
    width: int
    height: int
    fps: float
    timestamps: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        kp = np.asarray(self.keypoints, dtype=np.float32)
        if kp.ndim != 3 or kp.shape[1:] != (N_KEYPOINTS, 3):
            raise ValueError(f"keypoints must be (T, {N_KEYPOINTS}, 3), got {kp.shape}")
        object.__setattr__(self, "keypoints", kp)
        ts = self.timestamps
        ts = np.arange(len(kp), dtype=np.float64) / float(self.fps) if ts is None else np.asarray(ts, np.float64)
        if ts.shape != (len(kp),):
            raise ValueError(f"timestamps must be ({len(kp)},), got {ts.shape}")
        object.__setattr__(self, "timestamps", ts)

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def body(self) -> np.ndarray:
        """(T, 25, 3) view."""
        return self.keypoints[:, BODY]

    @property
    def face(self) -> np.ndarray:
        """(T, 70, 3) view."""
        return self.keypoints[:, FACE]

    @property
    def left_hand(self) -> np.ndarray:
        """(T, 21, 3) view."""
        return self.keypoints[:, LEFT_HAND]

    @property
    def right_hand(self) -> np.ndarray:
        """(T, 21, 3) view."""
        return self.keypoints[:, RIGHT_HAND]

    def detected(self) -> np.ndarray:
        """(T,) bool: frames where any body point was found."""
        return (self.body[:, :, 2] > 0).any(axis=1)

    def with_keypoints(self, keypoints: np.ndarray, **changes: Any) -> "PoseSequence":
        return replace(self, keypoints=keypoints, **changes)

    def slice(self, start: int, stop: int) -> "PoseSequence":
        return replace(self, keypoints=self.keypoints[start:stop], timestamps=self.timestamps[start:stop])

    # ------------------------------------------------------------------ I/O
    def save(self, path: str | Path) -> Path:
        """Write `.npz` (keypoints, timestamps, JSON header) atomically."""
        path = Path(path)
        header = {
            "schema": "dancenow.PoseSequence",
            "schema_version": SCHEMA_VERSION,
            "layout": {"body": "BODY_25", "face": 70, "left_hand": 21, "right_hand": 21},
            "width": int(self.width),
            "height": int(self.height),
            "fps": float(self.fps),
            "meta": self.meta,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                keypoints=self.keypoints,
                timestamps=self.timestamps,
                header=np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8),
            )
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "PoseSequence":
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "poses file not found")
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(bytes(z["header"]).decode("utf-8"))
                keypoints, timestamps = z["keypoints"], z["timestamps"]
        except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
            raise InputError(path, f"not a dancenow poses file ({type(exc).__name__})") from None
        if header.get("schema") != "dancenow.PoseSequence":
            raise InputError(path, "not a dancenow poses file (no PoseSequence header)")
        if header.get("schema_version") != SCHEMA_VERSION:
            raise InputError(path, f"poses schema version {header.get('schema_version')} is not {SCHEMA_VERSION}")
        return cls(
            keypoints=keypoints,
            timestamps=timestamps,
            width=int(header["width"]),
            height=int(header["height"]),
            fps=float(header["fps"]),
            meta=header.get("meta", {}),
        )


def empty_keypoints(n_frames: int) -> np.ndarray:
    """(T, 137, 3) zeros: all points missing."""
    return np.zeros((n_frames, N_KEYPOINTS, 3), dtype=np.float32)
