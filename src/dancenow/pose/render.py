"""Stick-figure rendering in OpenPose's look (pure numpy + OpenCV, deterministic).

Coloured body limbs with round joints, hand bones coloured per finger, face contours and
pupils in white. Line widths scale with the image size (not the person's size), so a
person walking toward the camera gets a bigger figure drawn with the same strokes.
Missing points (confidence at or below `conf_threshold`) and limbs touching them are
not drawn. The same renderer makes training labels, transfer labels and overlays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np

from dancenow.pose.schema import (
    BODY,
    BODY_COLORS,
    BODY_LIMBS,
    FACE,
    FACE_CONTOURS,
    HAND_FINGER_COLORS,
    HAND_LIMBS,
    L_PUPIL,
    LEFT_HAND,
    R_PUPIL,
    RIGHT_HAND,
    PoseSequence,
)
from dancenow.pose.geometry import HEAD_POINTS, person_height
from dancenow.pose.reference import TORSO, ReferenceBank

_SHIFT = 4  # sub-pixel precision bits for cv2 drawing
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class RenderStyle:
    line_scale: float = 1.0
    conf_threshold: float = 0.05
    draw_face: bool = True
    draw_hands: bool = True
    background: tuple[int, int, int] = (0, 0, 0)


def stroke_widths(width: int, height: int, line_scale: float = 1.0) -> tuple[int, int, int]:
    """(body, hand, face) line thickness in pixels for an image of this size."""
    s = min(width, height) / 256.0 * line_scale
    body = max(1, int(round(2.5 * s)))
    hand = max(1, int(round(1.0 * s)))
    face = max(1, int(round(1.0 * s)))
    return body, hand, face


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]) * _ONE)), int(round(float(p[1]) * _ONE))


def _line(img: np.ndarray, a: np.ndarray, b: np.ndarray, color, thickness: int) -> None:
    cv2.line(img, _pt(a), _pt(b), color, thickness, lineType=cv2.LINE_AA, shift=_SHIFT)


def _dot(img: np.ndarray, p: np.ndarray, color, radius: int) -> None:
    cv2.circle(img, _pt(p), radius * _ONE, color, -1, lineType=cv2.LINE_AA, shift=_SHIFT)


def draw_pose(img: np.ndarray, keypoints: np.ndarray, style: RenderStyle = RenderStyle()) -> np.ndarray:
    """Draw one frame's (137, 3) keypoints onto `img` (H, W, 3 uint8 RGB), in place; returns img."""
    h, w = img.shape[:2]
    body_w, hand_w, face_w = stroke_widths(w, h, style.line_scale)
    thr = style.conf_threshold
    body = keypoints[BODY]
    ok = body[:, 2] > thr
    for a, b in BODY_LIMBS:
        if ok[a] and ok[b]:
            _line(img, body[a], body[b], BODY_COLORS[b], body_w)
    for i in np.flatnonzero(ok):
        _dot(img, body[i], BODY_COLORS[i], max(1, body_w))
    if style.draw_hands:
        for part in (LEFT_HAND, RIGHT_HAND):
            hand = keypoints[part]
            hok = hand[:, 2] > thr
            for j, (a, b) in enumerate(HAND_LIMBS):
                if hok[a] and hok[b]:
                    _line(img, hand[a], hand[b], HAND_FINGER_COLORS[j // 4], hand_w)
    if style.draw_face:
        face = keypoints[FACE]
        fok = face[:, 2] > thr
        white = (255, 255, 255)
        for contour in FACE_CONTOURS.values():
            for a, b in zip(contour[:-1], contour[1:]):
                if fok[a] and fok[b]:
                    _line(img, face[a], face[b], white, face_w)
        for p in (R_PUPIL, L_PUPIL):
            if fok[p]:
                _dot(img, face[p], white, max(1, face_w))
    return img


def render_pose(keypoints: np.ndarray, width: int, height: int, style: RenderStyle = RenderStyle()) -> np.ndarray:
    """(137, 3) keypoints -> (height, width, 3) uint8 RGB stick figure on the style's background."""
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:] = style.background
    return draw_pose(img, np.asarray(keypoints, dtype=np.float32), style)


STICK_CHANNELS = 3  # a generator's input image: the stick figure first, then (with a bank) the reference


def render_input(keypoints: np.ndarray, width: int, height: int, style: RenderStyle = RenderStyle(),
                 reference: ReferenceBank | None = None, frame: int | None = None, gap: int = 0) -> np.ndarray:
    """A generator's input for one pose: the stick figure (H, W, 3) uint8, and with `reference`
    the nearest reference frame's parts warped onto the pose beside it (H, W, 6). frame, gap:
    training's rule that a frame never takes a reference within `gap` frames of itself."""
    label = render_pose(keypoints, width, height, style)
    if reference is None:
        return label
    if reference.size != (width, height):
        raise ValueError(f"render_input: the reference bank is {reference.size}, the frame {width}x{height}")
    return np.concatenate([label, reference.warped(np.asarray(keypoints, np.float64), frame, gap)], axis=2)


def crop_keypoints(keypoints: np.ndarray, box: np.ndarray | tuple, size: int) -> np.ndarray:
    """(..., 137, 3) keypoints in frame pixels -> the same points in the pixels of the square
    `box` (x0, y0, x1, y1) resized to size x size; missing points stay missing."""
    kp = np.array(keypoints, dtype=np.float32, copy=True)
    x0, y0, x1, _ = (float(v) for v in box)
    s = size / (x1 - x0)
    kp[..., 0] = (kp[..., 0] - x0) * s
    kp[..., 1] = (kp[..., 1] - y0) * s
    return kp


def render_crop(keypoints: np.ndarray, box: np.ndarray | tuple, size: int,
                style: RenderStyle = RenderStyle()) -> np.ndarray:
    """The stick figure of the square `box` (x0, y0, x1, y1, frame pixels) drawn at size x size:
    the face GAN's label at the face's real resolution, with strokes as thin as at that size."""
    return render_pose(crop_keypoints(keypoints, box, size), size, size, style)


def render_sequence(seq: PoseSequence, style: RenderStyle = RenderStyle()) -> Iterator[np.ndarray]:
    """Yield one stick-figure image per frame of `seq`, at the sequence's frame size."""
    for kp in seq.keypoints:
        yield render_pose(kp, seq.width, seq.height, style)


def overlay_pose(image: np.ndarray, keypoints: np.ndarray, style: RenderStyle = RenderStyle()) -> np.ndarray:
    """Draw the stick figure over a copy of a real frame (for checking by eye)."""
    return draw_pose(np.ascontiguousarray(image).copy(), np.asarray(keypoints, dtype=np.float32), style)


# where the person may be, for the background plate: thick strokes, not the box around them
MASK_LIMB = 0.08   # half-width of a limb's stroke, as a fraction of the person's height
MASK_HEAD = 0.11   # radius of the head's disc (hair), same unit
MASK_GROW = 0.04   # the whole mask grown by this (loose clothes, motion blur)


def render_person_mask(keypoints: np.ndarray, width: int, height: int, conf: float = 0.1) -> np.ndarray:
    """(137, 3) keypoints -> (height, width) bool: the pixels the person may cover. Every seen
    body limb drawn as a thick stroke, the torso and each hand filled, a disc for the head,
    all grown by MASK_GROW; scaled by the person's height. All False without a person."""
    kp = np.asarray(keypoints, np.float64)
    tall = person_height(kp, conf)
    mask = np.zeros((height, width), np.uint8)
    if not np.isfinite(tall):
        return mask.astype(bool)
    seen = kp[:, 2] > conf
    pt = lambda i: (int(round(kp[i, 0])), int(round(kp[i, 1])))  # noqa: E731
    stroke = max(2, int(round(2 * MASK_LIMB * tall)))
    for a, b in BODY_LIMBS:
        if seen[a] and seen[b]:
            cv2.line(mask, pt(a), pt(b), 1, thickness=stroke)
    torso = [i for i in TORSO if seen[i]]
    for part in (torso, [i for i in range(LEFT_HAND.start, LEFT_HAND.stop) if seen[i]],
                 [i for i in range(RIGHT_HAND.start, RIGHT_HAND.stop) if seen[i]],
                 [i for i in range(FACE.start, FACE.stop) if seen[i]]):
        if len(part) >= 3:
            cv2.fillConvexPoly(mask, cv2.convexHull(np.round(kp[part, :2]).astype(np.int32)), 1)
    head = [i for i in HEAD_POINTS if seen[i]]
    if head:
        c = kp[head, :2].mean(0)
        cv2.circle(mask, (int(round(c[0])), int(round(c[1]))), max(2, int(round(MASK_HEAD * tall))), 1, -1)
    r = max(1, int(round(MASK_GROW * tall)))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return mask.astype(bool)
