"""Is the generated face the same person? dlib's face-recognition ResNet, offline.

The weights ship inside packages (`dlib-bin` for the library, `face-recognition-models` for
`dlib_face_recognition_resnet_model_v1.dat` and the 5-point aligner
`shape_predictor_5_face_landmarks.dat`, CC0): nothing is downloaded. A face is aligned with
the 5-point shape predictor inside a box and embedded into 128 numbers; two faces whose
embeddings are closer than 0.6 (Euclidean) are conventionally the same person (dlib's LFW
threshold).

The box comes from dlib's HOG face detector where it finds the face, else from our own face
keypoints (small faces, profiles). A generated frame is aligned in the same box as its real
frame (the generator was given that frame's pose), so the two crops cover the same place.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dancenow.errors import DancenowError
from dancenow.pose.schema import FACE

SAME_PERSON = 0.6             # dlib's threshold: below it, the same person
MIN_FACE_POINTS = 20          # our face keypoints needed to place a box without dlib's detector
RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"
ALIGNER_FILE = "shape_predictor_5_face_landmarks.dat"


def models_dir() -> Path:
    """The folder of face-recognition-models' .dat files (found without importing the package,
    whose __init__ needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise DancenowError("face identity needs the face-recognition-models package "
                            "(pip install face-recognition-models==0.3.0)")
    d = Path(list(spec.submodule_search_locations)[0]) / "models"
    for f in (RESNET_FILE, ALIGNER_FILE):
        if not (d / f).is_file():
            raise DancenowError(f"{d / f}: missing from face-recognition-models")
    return d


@dataclass(frozen=True)
class IdentityScores:
    """Identity of the generated faces against the real ones, over the frames whose real face
    could be placed. distance: mean embedding distance; same_person: the fraction below
    `SAME_PERSON`; frames: pairs scored; skipped: frames without a placeable real face."""

    distance: float
    same_person: float
    frames: int
    skipped: int


class FaceIdentity:
    """128-d face embeddings: `embed(image, box)`, `box_for(image, keypoints)`."""

    def __init__(self) -> None:
        try:
            import dlib  # heavy optional dependency: only where identity is measured
        except ImportError as exc:
            raise DancenowError(f"face identity needs dlib (pip install dlib-bin==20.0.1.post1): {exc}") from None
        d = models_dir()
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._aligner = dlib.shape_predictor(str(d / ALIGNER_FILE))
        self._net = dlib.face_recognition_model_v1(str(d / RESNET_FILE))

    def box_for(self, image: np.ndarray, keypoints: np.ndarray | None = None) -> tuple[int, int, int, int] | None:
        """A face box (x0, y0, x1, y1) in `image`: dlib's detector (upsampled once for small
        faces), else the box of the face keypoints (137, 3) grown by 10%; None if neither."""
        found = self._detector(np.ascontiguousarray(image), 1)
        if len(found):
            r = max(found, key=lambda r: r.area())
            return r.left(), r.top(), r.right(), r.bottom()
        if keypoints is None:
            return None
        face = keypoints[FACE]
        ok = face[:, 2] > 0.1
        if ok.sum() < MIN_FACE_POINTS:
            return None
        (x0, y0), (x1, y1) = face[ok, :2].min(axis=0), face[ok, :2].max(axis=0)
        pad = 0.1 * max(x1 - x0, y1 - y0)
        return int(x0 - pad), int(y0 - pad), int(math.ceil(x1 + pad)), int(math.ceil(y1 + pad))

    def embed(self, image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """(128,) float64 embedding of the face in `box` of an (H, W, 3) uint8 RGB image."""
        img = np.ascontiguousarray(image, dtype=np.uint8)
        rect = self._dlib.rectangle(*(int(v) for v in box))
        shape = self._aligner(img, rect)
        return np.asarray(self._net.compute_face_descriptor(img, shape), dtype=np.float64)


def face_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))


class IdentityAccumulator:
    """Feeds (real, generated, keypoints) frame pairs; `scores()` at the end."""

    def __init__(self, model: FaceIdentity):
        self.model = model
        self.distances: list[float] = []
        self.skipped = 0

    def add(self, real: np.ndarray, gen: np.ndarray, keypoints: np.ndarray | None) -> float | None:
        box = self.model.box_for(real, keypoints)
        if box is None:
            self.skipped += 1
            return None
        d = face_distance(self.model.embed(real, box), self.model.embed(gen, box))
        self.distances.append(d)
        return d

    def scores(self) -> IdentityScores:
        d = np.asarray(self.distances)
        if not len(d):
            return IdentityScores(math.nan, math.nan, 0, self.skipped)
        return IdentityScores(float(d.mean()), float((d < SAME_PERSON).mean()), len(d), self.skipped)
