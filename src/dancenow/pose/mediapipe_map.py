"""MediaPipe landmarks -> the dancenow keypoint schema (BODY_25 + 70 face + 2x21 hands).

Pure numpy index tables; no MediaPipe import. Conventions checked on real footage:

* MediaPipe pose landmarks named ``left_*`` are the person's own left, like OpenPose's
  ``L*`` points (tests/integration/test_detect_real.py compares against the OpenPose
  keypoints of the paper's sample frames, where a person seen side-on tells the sides apart).
* Face: the 468-point FaceMesh topology is reduced to the 70-point OpenPose/dlib layout
  (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, lips 48-67, pupils 68-69), whose
  "right" (points 0, 17-21, 36-41, 68) is the person's right, i.e. image left for a face
  looking at the camera. MediaPipe's points 33/133 are the person's right eye corners, so
  the two agree without mirroring. Pupils: the iris centres 468/473 when the mesh has
  the 478 refined points, else the mean of each eye's 16 contour points.
* Hands: MediaPipe and OpenPose share the 21-point order (wrist, then 4 joints per finger
  from thumb to pinky), so the mapping is the identity.

Feet: MediaPipe has a heel and one ``foot_index`` (tip of the foot) per foot. The foot
index becomes OpenPose's BigToe. SmallToe has no counterpart and is estimated (see
:func:`estimate_small_toes`): a fixed combination of the foot's heel -> toe vector and
the hip line, at half the confidence of the points it comes from. It is never detected.
"""

from __future__ import annotations

import numpy as np

from dancenow.pose.schema import FACE, LEFT_HAND, N_BODY, N_FACE, N_HAND, N_KEYPOINTS, RIGHT_HAND

# ---------------------------------------------------------------- body: 33 -> BODY_25
MP_POSE_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)
N_MP_POSE = 33

# BODY_25 index -> tuple of MediaPipe pose indices averaged into it (empty = no counterpart).
BODY25_FROM_MP_POSE: tuple[tuple[int, ...], ...] = (
    (0,),        # 0 Nose
    (11, 12),    # 1 Neck = mid-shoulders
    (12,),       # 2 RShoulder
    (14,),       # 3 RElbow
    (16,),       # 4 RWrist
    (11,),       # 5 LShoulder
    (13,),       # 6 LElbow
    (15,),       # 7 LWrist
    (23, 24),    # 8 MidHip = mid-hips
    (24,),       # 9 RHip
    (26,),       # 10 RKnee
    (28,),       # 11 RAnkle
    (23,),       # 12 LHip
    (25,),       # 13 LKnee
    (27,),       # 14 LAnkle
    (5,),        # 15 REye
    (2,),        # 16 LEye
    (8,),        # 17 REar
    (7,),        # 18 LEar
    (31,),       # 19 LBigToe  <- left_foot_index
    (),          # 20 LSmallToe (no MediaPipe counterpart: estimate_small_toes)
    (29,),       # 21 LHeel
    (32,),       # 22 RBigToe  <- right_foot_index
    (),          # 23 RSmallToe (no MediaPipe counterpart: estimate_small_toes)
    (30,),       # 24 RHeel
)
assert len(BODY25_FROM_MP_POSE) == N_BODY

# SmallToe = BigToe + BACK * (Heel - BigToe) + SIDE * (own hip - other hip), confidence
# CONF * the lowest of those four. See estimate_small_toes.
SMALL_TOE_BACK, SMALL_TOE_SIDE, SMALL_TOE_CONF = 0.20, 0.25, 0.5
# (small toe, big toe, heel, own hip, other hip) in BODY_25
_SMALL_TOE_FROM: tuple[tuple[int, int, int, int, int], ...] = ((20, 19, 21, 12, 9), (23, 22, 24, 9, 12))

# ---------------------------------------------------------------- face: 468 -> 70
# Person's right = image left for a frontal face, in both layouts.
_JAW = (234, 93, 132, 58, 172, 136, 150, 176, 152, 400, 379, 365, 397, 288, 361, 323, 454)
_RIGHT_BROW = (70, 63, 105, 66, 107)          # outer -> inner
_LEFT_BROW = (336, 296, 334, 293, 300)        # inner -> outer
_NOSE_BRIDGE = (168, 197, 5, 4)               # between the eyes -> tip
_NOSE_BOTTOM = (98, 97, 2, 326, 327)          # right nostril wing -> left
_RIGHT_EYE = (33, 160, 158, 133, 153, 144)    # outer corner, upper lid, inner corner, lower lid
_LEFT_EYE = (362, 385, 387, 263, 373, 380)    # inner corner, upper lid, outer corner, lower lid
_OUTER_LIPS = (61, 40, 37, 0, 267, 270, 291, 321, 405, 17, 181, 91)
_INNER_LIPS = (78, 81, 13, 311, 308, 402, 14, 178)
FACE70_FROM_MP_FACE: tuple[int, ...] = (
    _JAW + _RIGHT_BROW + _LEFT_BROW + _NOSE_BRIDGE + _NOSE_BOTTOM + _RIGHT_EYE + _LEFT_EYE
    + _OUTER_LIPS + _INNER_LIPS
)
assert len(FACE70_FROM_MP_FACE) == 68
# Eye contours (16 points each) whose mean stands in for the pupil without iris landmarks.
MP_RIGHT_EYE_CONTOUR: tuple[int, ...] = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
MP_LEFT_EYE_CONTOUR: tuple[int, ...] = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
MP_RIGHT_IRIS_CENTER, MP_LEFT_IRIS_CENTER = 468, 473  # only in the 478-point refined mesh

# ---------------------------------------------------------------- hands: identity
HAND21_FROM_MP_HAND: tuple[int, ...] = tuple(range(N_HAND))


def _as_landmarks(arr: np.ndarray | None, n: tuple[int, ...], what: str) -> np.ndarray | None:
    if arr is None:
        return None
    a = np.asarray(arr, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] not in n or a.shape[1] < 2:
        raise ValueError(f"{what} landmarks must be (N, >=2) with N in {n}, got {a.shape}")
    return a


def _with_conf(a: np.ndarray, score: float) -> np.ndarray:
    """(N, k>=2) -> (N, 3) x, y, conf; conf from column 3 (visibility) when there is one."""
    out = np.empty((len(a), 3), np.float64)
    out[:, :2] = a[:, :2]
    out[:, 2] = a[:, 3] if a.shape[1] >= 4 else score
    return out


def pose33_to_body25(pose33: np.ndarray) -> np.ndarray:
    """(33, 3) x, y, conf -> (25, 3); averaged points take the lower confidence of their parts,
    the small toes are estimated (:func:`estimate_small_toes`).

    Any coordinate unit works (pixels or normalized); missing outputs are all-zero.
    """
    p = np.asarray(pose33, dtype=np.float64)
    out = np.zeros((N_BODY, 3), np.float64)
    for j, src in enumerate(BODY25_FROM_MP_POSE):
        if not src:
            continue
        s = p[list(src)]
        conf = float(s[:, 2].min())
        if conf > 0:
            out[j, :2] = s[:, :2].mean(axis=0)
            out[j, 2] = conf
    return estimate_small_toes(out)


def estimate_small_toes(body25: np.ndarray) -> np.ndarray:
    """(25, 3) BODY_25 with the small toes (20, 23) estimated; other points unchanged.

    The little toe's tip sits behind the big toe's (towards the heel) and out to the
    side, away from the body's midline. In 3D that is ``big + a (heel - big) + b (own hip -
    other hip)``; a camera's projection keeps such linear combinations (up to perspective
    across the foot), so the same formula holds in image coordinates: seen side-on the
    hip line shrinks and the small toe falls behind the big toe, seen from the front it
    sits out to the side. a = SMALL_TOE_BACK and b = SMALL_TOE_SIDE (fitted on the
    synthetic dancers, plausible for adult feet: the little toe ends about a fifth of
    a foot length back, about a quarter of the hip width out); feet turned out or in
    move the true point off the estimate. Confidence: SMALL_TOE_CONF times the lowest of
    the four points used; missing when any is missing.
    """
    out = np.array(body25, dtype=np.float64, copy=True)
    for small, big, heel, hip, other in _SMALL_TOE_FROM:
        src = out[[big, heel, hip, other]]
        conf = float(src[:, 2].min())
        if conf <= 0:
            out[small] = 0.0
            continue
        out[small, :2] = src[0, :2] + SMALL_TOE_BACK * (src[1, :2] - src[0, :2]) + SMALL_TOE_SIDE * (
            src[2, :2] - src[3, :2])
        out[small, 2] = SMALL_TOE_CONF * conf
    return out


def face468_to_face70(face: np.ndarray) -> np.ndarray:
    """(468 or 478, 3) x, y, conf -> (70, 3); pupils from iris centres or eye-contour means."""
    f = np.asarray(face, dtype=np.float64)
    out = np.zeros((N_FACE, 3), np.float64)
    out[:68] = f[list(FACE70_FROM_MP_FACE)]
    if len(f) >= 478:
        out[68] = f[MP_RIGHT_IRIS_CENTER]
        out[69] = f[MP_LEFT_IRIS_CENTER]
    else:
        for k, contour in ((68, MP_RIGHT_EYE_CONTOUR), (69, MP_LEFT_EYE_CONTOUR)):
            c = f[list(contour)]
            out[k, :2] = c[:, :2].mean(axis=0)
            out[k, 2] = c[:, 2].min()
    out[out[:, 2] <= 0] = 0.0
    return out


def mediapipe_to_schema(
    pose33: np.ndarray | None,
    face468: np.ndarray | None,
    lhand21: np.ndarray | None,
    rhand21: np.ndarray | None,
    width: int,
    height: int,
    *,
    face_score: float = 1.0,
    lhand_score: float = 1.0,
    rhand_score: float = 1.0,
    min_visibility: float = 0.0,
) -> np.ndarray:
    """Normalized MediaPipe landmarks of one frame -> (137, 3) x, y (pixels), confidence.

    pose33: (33, >=2) normalized [x, y, (z, visibility)] or None; visibility becomes the
        confidence (1 when absent) and points with visibility < `min_visibility` are missing.
    face468: (468 or 478, >=2) normalized FaceMesh landmarks or None.
    lhand21, rhand21: (21, >=2) normalized landmarks of the person's left / right hand or None.
    face_score, lhand_score, rhand_score: confidence given to every point of that part
        (MediaPipe has no per-point confidence for faces and hands), unless the array has
        a 4th column.
    Points outside the frame ([0, width) x [0, height)) are marked missing (confidence 0),
    as OpenPose never reports them. Missing points are all-zero rows.
    """
    pose = _as_landmarks(pose33, (N_MP_POSE,), "pose")
    face = _as_landmarks(face468, (468, 478), "face")
    lh = _as_landmarks(lhand21, (N_HAND,), "left hand")
    rh = _as_landmarks(rhand21, (N_HAND,), "right hand")
    scale = np.array([width, height], np.float64)
    out = np.zeros((N_KEYPOINTS, 3), np.float64)
    if pose is not None:
        p = _with_conf(pose, 1.0)
        p[:, :2] *= scale
        p[p[:, 2] < min_visibility, 2] = 0.0
        out[:N_BODY] = pose33_to_body25(p)
    if face is not None:
        f = _with_conf(face, face_score)
        f[:, :2] *= scale
        out[FACE] = face468_to_face70(f)
    for part, hand, score in ((LEFT_HAND, lh, lhand_score), (RIGHT_HAND, rh, rhand_score)):
        if hand is not None:
            h = _with_conf(hand, score)[list(HAND21_FROM_MP_HAND)]
            h[:, :2] *= scale
            out[part] = h
    x, y = out[:, 0], out[:, 1]
    outside = (x < 0) | (y < 0) | (x >= width) | (y >= height)
    out[outside | (out[:, 2] <= 0)] = 0.0
    out[:, 2] = np.clip(out[:, 2], 0.0, 1.0)
    return out.astype(np.float32)
