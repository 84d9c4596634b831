"""Body, face and hand keypoints from video frames with MediaPipe (CPU, no downloads).

`HolisticDetector` runs MediaPipe's holistic model set (the pose, face-mesh and hand
landmark models that ``mp.solutions.holistic`` chains) as its own pipeline:

1. body: MediaPipe Pose (model_complexity=1, tracking mode) on the frame shrunk so its
   long side is at most `max_side` pixels;
2. face: the body landmarks place a head crop (rotated upright) that is cut from the
   full-resolution frame, resampled to 192x192 and given to the face-mesh landmark model;
   the next frame's crop comes from this frame's mesh, moved by the head's motion, with
   the body-placed crop as the fallback when it fails;
3. hands: likewise one 224x224 crop per hand around where the body's wrist, index and
   pinky landmarks put it (tighter for tiny hands), given to the hand landmark model.
The face and hand crops of a frame run on `threads` threads at once.

Why not ``mp.solutions.holistic`` itself: it chains the same models but keeps a face or
hand only at presence >= 0.5 and works from the shrunk frame, so it loses small people's
faces and hands. On the 256x256 real target (benchmarks/bench_pose.py): face in 34% of
frames and a left/right hand in 1%/2% for mp.solutions.holistic, 54% and 10%/14% here,
at about the same speed. On a large person (the squats clip) both find the face in
every frame and the hands in 80-100%; the points agree to about 2 pixels. Faces scoring
0.1-0.5 on the small target were checked by eye: the mesh sits on the face.

Confidences: body points get MediaPipe's visibility (points below `min_visibility`, or
outside the frame, are missing); face and hand points get their landmark model's
presence probability, and a part scoring below `min_face_score` / `min_hand_score` is
missing. Frames without a person are all zero.

Several people: MediaPipe Pose tracks a single person (the most prominent one when
tracking starts) and keeps following that person; the others are ignored.

Left/right: MediaPipe's ``left_*`` pose landmarks are the person's own left, the
schema's convention (checked against OpenPose on the paper's frames); each hand crop is
placed from that side's wrist, so hands inherit it (mp.solutions.holistic agrees: its
``left_hand_landmarks`` lie at the pose's left wrist in all frames of the squats clip).
"""

from __future__ import annotations

import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol

import cv2
import numpy as np

from dancenow.errors import DancenowError, InputError
from dancenow.pose.mediapipe_map import mediapipe_to_schema
from dancenow.pose.schema import BODY, FACE, LEFT_HAND, N_KEYPOINTS, RIGHT_HAND, PoseSequence
from dancenow.video import Frame, probe, read_frames

MEDIAPIPE_VERSION = "0.10.21"
DETECTOR_NAME = "mediapipe-pose+face+hand-crops"
DETECTOR_VERSION = "1"

_FACE_MODEL, _FACE_INPUT = "mediapipe/modules/face_landmark/face_landmark.tflite", 192
_HAND_MODELS = {
    "full": "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
    "lite": "mediapipe/modules/hand_landmark/hand_landmark_lite.tflite",
}
_HAND_INPUT = 224

# MediaPipe pose landmark indices used to place crops.
_L_EYE, _R_EYE, _L_EAR, _R_EAR, _MOUTH_L, _MOUTH_R = 2, 5, 7, 8, 9, 10
_NOSE = 0
_HAND_POSE_POINTS = {"left": (15, 17, 19), "right": (16, 18, 20)}  # wrist, pinky, index
_WRIST = {"left": 15, "right": 16}
# FaceMesh eye outer corners (person's right, left): their direction is the face's x axis.
_MESH_R_EYE_OUTER, _MESH_L_EYE_OUTER = 33, 263


def _mediapipe() -> Any:
    try:
        import mediapipe as mp
    except ImportError:
        raise DancenowError(
            f"mediapipe {MEDIAPIPE_VERSION} is not installed: pip install --no-deps mediapipe=={MEDIAPIPE_VERSION}"
        ) from None
    return mp


# ------------------------------------------------------------------ geometry (pure numpy)
@dataclass(frozen=True)
class Roi:
    """A rotated square in frame pixels: centre, side length, and the angle (radians) of
    its x axis, (cos angle, sin angle), in image coordinates (y down)."""

    cx: float
    cy: float
    side: float
    angle: float


def roi_affine(roi: Roi, size: int) -> np.ndarray:
    """(2, 3) affine map from crop pixels (size x size) to frame pixels."""
    s = roi.side / size
    c, si = math.cos(roi.angle), math.sin(roi.angle)
    a = np.array([[c * s, -si * s, 0.0], [si * s, c * s, 0.0]])
    a[:, 2] = np.array([roi.cx, roi.cy]) - a[:, :2] @ np.array([size / 2.0, size / 2.0])
    return a


def crop_roi(image: np.ndarray, roi: Roi, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut `roi` out of image (HxWx3) as a size x size upright crop (bilinear, black outside).

    Returns (crop, affine) with affine (2, 3) mapping crop pixels to frame pixels.
    """
    a = roi_affine(roi, size)
    crop = cv2.warpAffine(
        image, a, (size, size), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    return crop, a


def roi_in_frame(roi: Roi, width: int, height: int) -> bool:
    """Whether the crop's centre lies in the frame: a part placed outside it is out of view."""
    return 0.0 <= roi.cx < width and 0.0 <= roi.cy < height


def roi_around(points: np.ndarray, angle: float, scale: float, shift_up: float = 0.0) -> Roi:
    """Square ROI with x axis at `angle` bounding points (N, 2) in that rotated frame,
    its side scaled by `scale`, moved by `shift_up` sides along the ROI's up direction."""
    xa = np.array([math.cos(angle), math.sin(angle)])
    ya = np.array([-math.sin(angle), math.cos(angle)])
    u, v = points @ xa, points @ ya
    cu, cv_ = (u.min() + u.max()) / 2.0, (v.min() + v.max()) / 2.0
    side = scale * max(float(u.max() - u.min()), float(v.max() - v.min()), 1.0)
    centre = cu * xa + cv_ * ya - shift_up * side * ya
    return Roi(float(centre[0]), float(centre[1]), side, angle)


def _upright_angle(up: np.ndarray) -> float:
    """ROI angle that makes vector `up` (image coordinates) point up in the crop."""
    return math.atan2(float(up[0]), float(-up[1]))


def face_roi_from_pose(pose_px: np.ndarray, scale: float = 2.0) -> Roi:
    """Head crop from MediaPipe pose landmarks (33, >=2) in pixels.

    Centre between the eyes and the mouth, upright along mouth->eyes, side `scale` times
    the face size (ear-to-ear distance, or 2.4 x eyes-to-mouth for a face seen side-on).
    """
    eyes = (pose_px[_L_EYE, :2] + pose_px[_R_EYE, :2]) / 2.0
    mouth = (pose_px[_MOUTH_L, :2] + pose_px[_MOUTH_R, :2]) / 2.0
    up = eyes - mouth
    size = max(float(np.linalg.norm(pose_px[_L_EAR, :2] - pose_px[_R_EAR, :2])), 2.4 * float(np.linalg.norm(up)), 2.0)
    c = (eyes + mouth) / 2.0
    return Roi(float(c[0]), float(c[1]), scale * size, _upright_angle(up))


def face_roi_from_mesh(mesh_px: np.ndarray, scale: float = 1.5) -> Roi:
    """Next frame's face crop from this frame's face mesh (468+, >=2) in pixels."""
    eye_axis = mesh_px[_MESH_L_EYE_OUTER, :2] - mesh_px[_MESH_R_EYE_OUTER, :2]
    return roi_around(mesh_px[:, :2], math.atan2(float(eye_axis[1]), float(eye_axis[0])), scale)


def hand_roi_from_pose(
    pose_px: np.ndarray, side: str, scale_small: float = 1.3, scale_large: float = 2.0,
    small_px: float = 20.0, large_px: float = 40.0,
) -> Roi:
    """Hand crop from MediaPipe pose landmarks (33, >=2) in pixels; side 'left' or 'right'.

    The middle finger's base is estimated at (2 index + pinky) / 3; the crop is centred
    there, upright along wrist->middle, with side scale x L, L = 2 |middle - wrist| (about
    the hand's length). The scale goes from `scale_small` for L <= `small_px` to
    `scale_large` for L >= `large_px`: a few-pixel blurry hand is found more often in a
    tight crop, a large one needs room for spread fingers (tuned on the real target and
    the squats clip).
    """
    w, p, i = (pose_px[k, :2] for k in _HAND_POSE_POINTS[side])
    mid = (2.0 * i + p) / 3.0
    v = mid - w
    length = 2.0 * float(np.linalg.norm(v))
    t = min(max((length - small_px) / (large_px - small_px), 0.0), 1.0)
    scale = scale_small + t * (scale_large - scale_small)
    return Roi(float(mid[0]), float(mid[1]), max(scale * length, 8.0), _upright_angle(v))


# ------------------------------------------------------------------ landmark models on crops
_GRAPH = """
input_stream: "IMAGE:image"
output_stream: "LANDMARKS:landmarks"
output_stream: "SCORE:score"
node {
  calculator: "ImageToTensorCalculator"
  input_stream: "IMAGE:image"
  output_stream: "TENSORS:input_tensors"
  options { [mediapipe.ImageToTensorCalculatorOptions.ext] {
    output_tensor_width: %(size)d output_tensor_height: %(size)d
    output_tensor_float_range { min: 0.0 max: 1.0 } } }
}
node {
  calculator: "InferenceCalculator"
  input_stream: "TENSORS:input_tensors"
  output_stream: "TENSORS:output_tensors"
  options { [mediapipe.InferenceCalculatorOptions.ext] { model_path: "%(model)s" delegate { xnnpack {} } } }
}
node {
  calculator: "SplitTensorVectorCalculator"
  input_stream: "output_tensors"
  output_stream: "landmark_tensor"
  output_stream: "score_tensor"
  options { [mediapipe.SplitVectorCalculatorOptions.ext] { ranges { begin: 0 end: 1 } ranges { begin: 1 end: 2 } } }
}
node { calculator: "TensorsToFloatsCalculator" input_stream: "TENSORS:landmark_tensor" output_stream: "FLOATS:landmarks" }
node { calculator: "TensorsToFloatsCalculator" input_stream: "TENSORS:score_tensor" output_stream: "FLOATS:score" }
"""


class _CropLandmarker:
    """One MediaPipe landmark model (face mesh or hand) run on ready-made square crops."""

    def __init__(self, model: str, size: int, n_points: int, score_is_logit: bool):
        from mediapipe.python.solution_base import SolutionBase

        self.size, self.n_points, self.score_is_logit = size, n_points, score_is_logit
        self._graph = SolutionBase(graph_config=_GRAPH % {"size": size, "model": model})

    def __call__(self, image: np.ndarray, roi: Roi) -> tuple[np.ndarray, float]:
        """-> (n_points, 2) landmarks in frame pixels, presence probability."""
        crop, a = crop_roi(image, roi, self.size)
        out = self._graph.process({"image": crop})
        pts = np.asarray(out.landmarks, np.float64).reshape(self.n_points, 3)[:, :2]
        score = float(np.asarray(out.score, np.float64).reshape(-1)[0])
        if self.score_is_logit:
            score = 1.0 / (1.0 + math.exp(-max(min(score, 60.0), -60.0)))
        return pts @ a[:, :2].T + a[:, 2], score

    def close(self) -> None:
        self._graph.close()


# ------------------------------------------------------------------ detector
@dataclass(frozen=True)
class DetectorConfig:
    """Settings of `HolisticDetector`.

    max_side: the body model sees frames shrunk so the long side is at most this (never
        enlarged); face and hand crops always come from the full-resolution frame.
    static_image_mode: treat every frame as an unrelated photo (no tracking); for single images.
    detect_face, detect_hands: run the face / hand stages at all.
    min_face_score, min_hand_score: presence probability needed to keep a face / hand. A
        blurry 20-pixel face scoring 0.1 still gets a well-placed mesh; hands are held to
        a higher bar because tiny hands fail in less obvious ways.
    min_visibility: body points less visible than this are missing.
    threads: the face and hand crops of a frame run on this many threads at once
        (MediaPipe releases the GIL); 1 runs them one after another. Results are the same.
    part_stride: re-detect the face and the hands every `part_stride` frames, staggered (at 2:
        the face on one frame, both hands on the next). On the frames between, a part found
        last time follows the body: its landmarks move with the nose (face) or that wrist
        (hand), keeping their score, as long as the body still shows the part. 1 (default):
        every part on every frame, the accurate offline mode. `DetectorConfig.tracking()` is
        the live mode (stride 2).
    A part whose crop the body places outside the frame (or whose anchor point the body does
    not see) is not run at all on that frame, in either mode.
    """

    max_side: int = 512
    static_image_mode: bool = False
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    detect_face: bool = True
    detect_hands: bool = True
    min_face_score: float = 0.1
    min_hand_score: float = 0.3
    hand_model: str = "full"
    face_crop_scale: float = 2.0
    min_visibility: float = 0.3
    threads: int = 2
    part_stride: int = 1

    @classmethod
    def tracking(cls, **changes: Any) -> "DetectorConfig":
        """Live / tracking mode: tracking body model, face and hands every other frame, staggered."""
        return cls(**{"static_image_mode": False, "part_stride": 2, **changes})

    def __post_init__(self) -> None:
        if self.part_stride < 1:
            raise ValueError(f"part_stride must be >= 1, got {self.part_stride}")
        if self.hand_model not in _HAND_MODELS:
            raise ValueError(f"hand_model must be one of {sorted(_HAND_MODELS)}, got {self.hand_model!r}")
        if self.max_side < 64:
            raise ValueError(f"max_side must be >= 64, got {self.max_side}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")


@dataclass
class DetectionStats:
    """Running counts over all frames a `HolisticDetector` has seen (`detector.stats`)."""

    frames: int = 0
    missed_frames: list[int] = field(default_factory=list)
    face_frames: int = 0
    left_hand_frames: int = 0
    right_hand_frames: int = 0
    seconds: float = 0.0  # time spent detecting, summed per frame (streamed frames overlap)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rates(self) -> dict[str, float]:
        """Fraction of frames with a person, a face, a left hand, a right hand."""
        n = max(self.frames, 1)
        return {
            "person": (self.frames - len(self.missed_frames)) / n,
            "face": self.face_frames / n,
            "left_hand": self.left_hand_frames / n,
            "right_hand": self.right_hand_frames / n,
        }


class PoseDetector(Protocol):
    """Anything that turns RGB frames of one video, in order, into (137, 3) keypoints."""

    name: str
    version: str

    def detect(self, image: np.ndarray) -> np.ndarray:
        """image: HxWx3 uint8 RGB -> (137, 3) float32 x, y (pixels of image), confidence."""
        ...

    def close(self) -> None: ...


def _landmarks(lms: Any) -> np.ndarray | None:
    """MediaPipe NormalizedLandmarkList -> (N, 4) x, y, z, visibility (normalized), or None."""
    if lms is None:
        return None
    return np.array([(p.x, p.y, p.z, p.visibility) for p in lms.landmark], np.float64)


def _shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    s = max_side / max(h, w)
    if s >= 1.0:
        return image
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


class HolisticDetector:
    """MediaPipe pose + face-mesh + hand landmark models; see the module docstring.

    Feed the frames of one video in order (tracking state carries over); use one
    detector per video, or `static_image_mode=True` for unrelated images.
    """

    name = DETECTOR_NAME
    version = f"{DETECTOR_VERSION}/mediapipe-{MEDIAPIPE_VERSION}"

    def __init__(self, config: DetectorConfig = DetectorConfig()):
        mp = _mediapipe()
        self.config = config
        self.stats = DetectionStats()
        self._pose = mp.solutions.pose.Pose(
            static_image_mode=config.static_image_mode,
            model_complexity=1,  # the one body model mediapipe ships (0 and 2 are downloaded)
            smooth_landmarks=not config.static_image_mode,
            enable_segmentation=False,
            min_detection_confidence=config.min_detection_confidence,
            min_tracking_confidence=config.min_tracking_confidence,
        )
        self._face = _CropLandmarker(_FACE_MODEL, _FACE_INPUT, 468, score_is_logit=True) if config.detect_face else None
        # One hand model per side: the two hands may run at the same time.
        self._hands = {
            side: _CropLandmarker(_HAND_MODELS[config.hand_model], _HAND_INPUT, 21, score_is_logit=False)
            for side in ("left", "right")
        } if config.detect_hands else {}
        self._pool = ThreadPoolExecutor(config.threads - 1, "dancenow-crops") if config.threads > 1 else None
        self._face_track: tuple[Roi, Roi] | None = None  # (crop from last mesh, pose crop then)
        self._last: dict[str, tuple[np.ndarray, float, np.ndarray] | None] = {}  # part -> (points, score, anchor)

    def detect(self, image: np.ndarray) -> np.ndarray:
        """image: HxWx3 uint8 RGB -> (137, 3) float32 in pixels of `image`."""
        return self._finish(*self._body_step(image))

    def detect_stream(self, images: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """`detect` of each image, in order, with the same results: the body model of the next
        image runs while this image's face and hands do (MediaPipe releases the GIL), so a
        video's frames go through faster. Each result comes when the next image has been read;
        each image is kept until then (do not reuse its buffer). A stream left early has run the
        body model one image further than it answered: use a fresh detector for other frames."""
        pool = ThreadPoolExecutor(1, "dancenow-parts")
        pending = None
        try:
            for image in images:
                body = self._body_step(image)
                if pending is not None:
                    yield pending.result()
                pending = pool.submit(self._finish, *body)
            if pending is not None:
                yield pending.result()
        finally:
            pool.shutdown(wait=True)

    def _body_step(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, int, float]:
        """The body model on one frame (frames in order): (image, landmarks or None, frame index,
        seconds spent)."""
        t0 = time.perf_counter()
        image = np.ascontiguousarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be HxWx3 uint8 RGB, got {image.shape} {image.dtype}")
        i = self.stats.frames
        self.stats.frames += 1
        pose = _landmarks(self._pose.process(_shrink(image, self.config.max_side)).pose_landmarks)
        return image, pose, i, time.perf_counter() - t0

    def _finish(self, image: np.ndarray, pose: np.ndarray | None, i: int, seconds: float) -> np.ndarray:
        """Face and hands of frame i (frames in order) and the schema's keypoints."""
        t0 = time.perf_counter()
        st = self.stats
        if pose is None:
            st.missed_frames.append(i)
            self._face_track = None
            st.seconds += seconds + time.perf_counter() - t0
            return np.zeros((N_KEYPOINTS, 3), np.float32)
        h, w = image.shape[:2]
        pose_px = pose[:, :2] * (w, h)
        parts = self._parts(image, pose, pose_px, i)
        norm = [None if r is None else r[0] / (w, h) for r in parts]
        scores = [0.0 if r is None else r[1] for r in parts]
        kp = mediapipe_to_schema(pose, *norm, w, h, face_score=scores[0], lhand_score=scores[1],
                                 rhand_score=scores[2], min_visibility=self.config.min_visibility)
        st.face_frames += bool((kp[FACE, 2] > 0).any())
        st.left_hand_frames += bool((kp[LEFT_HAND, 2] > 0).any())
        st.right_hand_frames += bool((kp[RIGHT_HAND, 2] > 0).any())
        st.seconds += seconds + time.perf_counter() - t0
        return kp

    def _parts(self, image: np.ndarray, pose: np.ndarray, pose_px: np.ndarray, i: int) -> list:
        """[face, left hand, right hand] of frame i: each (points px, score) or None; detected when
        due, else last time's points moved with the body (see `DetectorConfig.part_stride`)."""
        stride = self.config.part_stride
        jobs = [("face", self._detect_face, (image, pose, pose_px)),
                ("left", self._detect_hand, (image, pose, pose_px, "left")),
                ("right", self._detect_hand, (image, pose, pose_px, "right"))]
        due = [stride == 1 or i % stride == (0 if name == "face" else 1 % stride) for name, _, _ in jobs]
        run = [(k, fn, args) for k, ((_, fn, args), d) in enumerate(zip(jobs, due)) if d]
        out: dict[int, Any] = {}
        if self._pool is None or len(run) < 2:
            out = {k: fn(*args) for k, fn, args in run}
        else:  # the last job runs here while the pool runs the others
            futures = {k: self._pool.submit(fn, *args) for k, fn, args in run[:-1]}
            k, fn, args = run[-1]
            out = {k: fn(*args)}
            out.update({k: f.result() for k, f in futures.items()})
        parts = []
        for k, (name, _, _) in enumerate(jobs):
            anchor = pose_px[_NOSE if name == "face" else _WRIST[name], :2]
            seen = pose[_NOSE if name == "face" else _WRIST[name], 3] >= self.config.min_visibility
            if k in out:
                self._last[name] = None if out[k] is None else (out[k][0], out[k][1], anchor.copy())
                parts.append(out[k])
            elif seen and self._last.get(name) is not None:
                pts, score, then = self._last[name]
                parts.append((pts + (anchor - then), score))
            else:
                parts.append(None)
        return parts

    def _detect_face(self, image: np.ndarray, pose: np.ndarray, pose_px: np.ndarray) -> tuple[np.ndarray, float] | None:
        """-> (468, 2) face mesh in frame pixels and its presence score, or None."""
        cfg = self.config
        if self._face is None or pose[_NOSE, 3] < cfg.min_visibility:  # no face stage / facing away
            self._face_track = None
            return None
        from_pose = face_roi_from_pose(pose_px, cfg.face_crop_scale)
        if not roi_in_frame(from_pose, image.shape[1], image.shape[0]):  # the head is out of view
            self._face_track = None
            return None
        rois = [from_pose]
        if self._face_track is not None:
            # Last frame's mesh gives the crop's size and tilt; the body's head motion
            # since then moves it (fast moves at low frame rates would lose the face).
            mesh_roi, then = self._face_track
            moved = Roi(mesh_roi.cx + from_pose.cx - then.cx, mesh_roi.cy + from_pose.cy - then.cy,
                        mesh_roi.side, mesh_roi.angle)
            if 0.4 < moved.side / from_pose.side < 2.5:
                rois.insert(0, moved)
        for roi in rois:  # the pose-placed crop is the fallback when the tracked one fails
            mesh, score = self._face(image, roi)
            if score >= cfg.min_face_score:
                if not cfg.static_image_mode:
                    self._face_track = (face_roi_from_mesh(mesh), from_pose)
                return mesh, score
        self._face_track = None
        return None

    def _detect_hand(
        self, image: np.ndarray, pose: np.ndarray, pose_px: np.ndarray, side: str
    ) -> tuple[np.ndarray, float] | None:
        """-> (21, 2) hand landmarks in frame pixels and the presence score, or None."""
        cfg = self.config
        if side not in self._hands or pose[_WRIST[side], 3] < cfg.min_visibility:
            return None
        roi = hand_roi_from_pose(pose_px, side)
        if not roi_in_frame(roi, image.shape[1], image.shape[0]):  # the hand is out of view
            return None
        pts, score = self._hands[side](image, roi)
        return (pts, score) if score >= cfg.min_hand_score else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._pose.close()
        for m in (self._face, *self._hands.values()):
            if m is not None:
                m.close()

    def __enter__(self) -> HolisticDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------ sequences
def _frames_with_times(frames: Iterable[Any], fps: float) -> Iterator[tuple[float, np.ndarray]]:
    for i, f in enumerate(frames):
        if isinstance(f, np.ndarray):
            yield i / fps, f
        else:  # dancenow.video.Frame (or anything with .time and .image)
            yield float(f.time), f.image


def detect_frames(
    frames: Iterable[np.ndarray | Frame],
    *,
    fps: float,
    width: int,
    height: int,
    progress: bool = True,
    detector: PoseDetector | None = None,
    total: int | None = None,
    meta: dict[str, Any] | None = None,
) -> PoseSequence:
    """Detect one person's keypoints in every frame -> PoseSequence (T, 137, 3).

    frames: RGB uint8 arrays (HxWx3) or `dancenow.video.Frame`s, in video order; arrays
        are timed index / fps, Frames keep their own time.
    width, height: the frame size the keypoints are reported in; frames of another size
        (e.g. decoded shrunk) have their coordinates scaled to it.
    detector: defaults to a fresh `HolisticDetector()` (closed afterwards).
    meta: extra entries for the sequence's meta, which also records the detector (name,
        version, config), "missed_frames" (indices of frames without a person) and
        "detection" (counts of frames with a person, face, left and right hand).
    """
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    own = detector is None
    det: PoseDetector = HolisticDetector() if detector is None else detector
    from tqdm import tqdm

    kps: list[np.ndarray] = []
    times: list[float] = []
    seen: deque[tuple[float, tuple[int, ...]]] = deque()  # (time, shape) of images given, not yet answered

    def images() -> Iterator[np.ndarray]:
        for t, img in tqdm(_frames_with_times(frames, fps), total=total, disable=not progress, unit="frame",
                           desc="detecting poses"):
            seen.append((t, img.shape))
            yield img

    stream = getattr(det, "detect_stream", None) or (lambda imgs: map(det.detect, imgs))
    try:
        for kp in stream(images()):
            t, shape = seen.popleft()
            ih, iw = shape[:2]
            if (iw, ih) != (width, height):
                kp = kp.copy()
                kp[:, 0] *= width / iw
                kp[:, 1] *= height / ih
            kps.append(kp)
            times.append(t)
    finally:
        if own:
            det.close()
    keypoints = np.stack(kps) if kps else np.zeros((0, N_KEYPOINTS, 3), np.float32)
    found = keypoints[..., 2] > 0
    missed = np.flatnonzero(~found[:, BODY].any(axis=1))
    config = getattr(det, "config", None)
    info = {
        **(meta or {}),
        "detector": det.name,
        "detector_version": det.version,
        "detector_config": asdict(config) if config is not None else {},
        "missed_frames": [int(i) for i in missed],
        "detection": {
            "frames": len(keypoints),
            "missed_frames": len(missed),
            "face_frames": int(found[:, FACE].any(axis=1).sum()),
            "left_hand_frames": int(found[:, LEFT_HAND].any(axis=1).sum()),
            "right_hand_frames": int(found[:, RIGHT_HAND].any(axis=1).sum()),
        },
    }
    return PoseSequence(keypoints=keypoints, width=int(width), height=int(height), fps=float(fps),
                        timestamps=np.asarray(times, np.float64), meta=info)


def detect_video(
    path: str | Path,
    *,
    progress: bool = True,
    max_frames: int | None = None,
    config: DetectorConfig = DetectorConfig(),
) -> PoseSequence:
    """Detect keypoints in every frame (or the first `max_frames`) of a video file.

    Coordinates are in pixels of the upright video frame. Raises InputError for a
    missing/unreadable video or one that decodes zero frames.
    """
    path = Path(path)
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    vm = probe(path)
    total = vm.n_frames if max_frames is None else min(vm.n_frames, max_frames)
    with HolisticDetector(config) as det:
        seq = detect_frames(read_frames(path, end=max_frames), fps=vm.fps, width=vm.width, height=vm.height,
                            progress=progress, detector=det, total=total, meta={"source": str(path)})
    if len(seq) == 0:
        raise InputError(path, "no frames could be decoded")
    return seq
