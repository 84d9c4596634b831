"""Known answers for the identity and sharpness measures."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dancenow.eval.metrics import sharpness, sharpness_ratio
from dancenow.synthetic import make_clip


def _frame(subject: int, t: int, size: int = 1024):
    clip = make_clip(subject, 7, 2.0, 15, size)
    for i, f in enumerate(clip.iter_frames()):
        if i == t:
            return f, clip.poses.keypoints[t]
    raise AssertionError("clip too short")


def test_sharpness_of_an_image_and_of_a_blurred_copy():
    img, _ = _frame(1, 0, 256)
    assert sharpness_ratio([img], [img]) == 1.0
    soft = cv2.GaussianBlur(img, (0, 0), 1.5)
    softer = cv2.GaussianBlur(img, (0, 0), 3.0)
    assert sharpness(softer) < sharpness(soft) < sharpness(img)
    assert sharpness_ratio([soft], [img]) < 0.5
    assert sharpness(np.full((16, 16, 3), 90, np.uint8)) == 0.0
    with pytest.raises(ValueError):
        sharpness_ratio([img], [])


def test_face_identity_known_answers():
    pytest.importorskip("dlib")
    from dancenow.eval.identity import FaceIdentity, IdentityAccumulator, face_distance

    fi = FaceIdentity()
    faces = {}
    for subject in (1, 4):
        for t in (0, 20):
            img, kp = _frame(subject, t)
            box = fi.box_for(img, kp)
            assert box is not None
            faces[subject, t] = (img, box, fi.embed(img, box))
    img, box, e = faces[1, 0]
    assert face_distance(e, fi.embed(img, box)) == 0.0  # an image against itself
    same = max(face_distance(faces[s, 0][2], faces[s, 20][2]) for s in (1, 4))
    other = min(face_distance(faces[1, a][2], faces[4, b][2]) for a in (0, 20) for b in (0, 20))
    assert same < other, (same, other)  # two subjects farther apart than one subject in two poses
    acc = IdentityAccumulator(fi)
    acc.add(img, img, None)
    acc.add(img, np.zeros_like(img), None)  # no face where the real one is
    blank = np.full_like(img, 255)
    assert acc.add(blank, blank, None) is None  # nothing to place a box on: skipped
    s = acc.scores()
    assert (s.frames, s.skipped, s.same_person) == (2, 1, 0.5)
