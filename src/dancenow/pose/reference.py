"""Real pixels for poses the target's video never showed: a bank of the target's own frames, and
the nearest one's body parts warped onto a new pose, one affine per part (the idea of Siarohin
et al., "Deformable GANs for Pose-based Human Image Generation", CVPR 2018).

The generator gets the warped image as three more input channels beside the stick figure, so
clothes, skin and hair can come from a real frame where the stick figure alone leaves the
generator to invent them. Pure numpy + OpenCV (no torch).

    bank = choose_bank(keypoints, frames, k=32)     # indices of k diverse training poses
    ref = ReferenceBank(images, keypoints, frames)  # the frames themselves (run folder)
    i = ref.nearest(kp, frame=t, gap=60)            # training: not within 60 frames of t
    warped = warp_parts(ref.images[i], ref.keypoints[i], kp)   # (H, W, 3) uint8, black elsewhere
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from dancenow.pose.geometry import CONF, HEAD_POINTS
from dancenow.pose.schema import B, FACE, LEFT_HAND, MID_HIP, NECK, RIGHT_HAND

# body points that describe a pose for retrieval: BODY_25 up to the ankles, eyes and ears
FEATURE_POINTS = np.arange(19)
VIEW_POINTS = HEAD_POINTS  # nose, eyes, ears: which of them are seen says which way the person faces
VIEW_WEIGHT = 0.5
TORSO = (NECK, B["RShoulder"], B["LShoulder"], MID_HIP, B["RHip"], B["LHip"])
# bones, drawn back to front: legs, (torso), (head), arms; feet with the legs
LEGS = ((9, 10), (12, 13), (10, 11), (13, 14), (11, 22), (14, 19))
ARMS = ((2, 3), (5, 6), (3, 4), (6, 7))
LEG_WIDTH, ARM_WIDTH = 0.32, 0.24   # capsule widths, fractions of the torso's length
HEAD_GROW = 0.25                     # the head's outline grown by this fraction of the torso length


def torso_length(kp: np.ndarray) -> float:
    """Neck to mid-hip in pixels (the scale of every part), or the body box's height / 3."""
    if kp[NECK, 2] > CONF and kp[MID_HIP, 2] > CONF:
        return max(float(np.hypot(*(kp[NECK, :2] - kp[MID_HIP, :2]))), 4.0)
    pts = kp[:25][kp[:25, 2] > CONF, :2]
    return max(float(np.ptp(pts[:, 1])) / 3.0, 4.0) if len(pts) >= 2 else 4.0


def pose_features(keypoints: np.ndarray) -> np.ndarray:
    """(T, 137, 3) -> (T, F) retrieval features: body points relative to the torso's centre in
    torso lengths (unseen points at the centre), and which face points are seen (the view)."""
    kp = np.asarray(keypoints, np.float64).reshape(-1, keypoints.shape[-2], 3)
    out = []
    for k in kp:
        seen = k[:25, 2] > CONF
        centre = (k[NECK, :2] + k[MID_HIP, :2]) / 2 if seen[NECK] and seen[MID_HIP] else (
            k[:25][seen, :2].mean(0) if seen.any() else np.zeros(2))
        rel = (k[FEATURE_POINTS, :2] - centre) / torso_length(k)
        rel[~seen[FEATURE_POINTS]] = 0.0
        view = VIEW_WEIGHT * seen[list(VIEW_POINTS)].astype(np.float64)
        out.append(np.concatenate([rel.ravel(), view]))
    return np.stack(out) if out else np.zeros((0, 2 * len(FEATURE_POINTS) + len(VIEW_POINTS)))


def choose_bank(keypoints: np.ndarray, k: int) -> np.ndarray:
    """Indices (sorted) of `k` diverse poses of `keypoints` (T, 137, 3): farthest-point sampling
    in `pose_features`, from the pose nearest the mean. Deterministic."""
    feats = pose_features(keypoints)
    n = len(feats)
    if n == 0 or k <= 0:
        return np.zeros(0, np.int64)
    chosen = [int(np.argmin(((feats - feats.mean(0)) ** 2).sum(1)))]
    dist = ((feats - feats[chosen[0]]) ** 2).sum(1)
    while len(chosen) < min(k, n):
        i = int(np.argmax(dist))
        chosen.append(i)
        dist = np.minimum(dist, ((feats - feats[i]) ** 2).sum(1))
    return np.array(sorted(chosen), np.int64)


@dataclass(frozen=True, eq=False)
class ReferenceBank:
    """Reference frames of the target: images (K, H, W, 3) uint8, their keypoints (K, 137, 3)
    in the same pixels, and their frame indices (K,) in the prepared data."""

    images: np.ndarray
    keypoints: np.ndarray
    frames: np.ndarray
    features: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        k = len(self.images)
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"ReferenceBank: images must be (K, H, W, 3) uint8, got {self.images.shape} "
                             f"{self.images.dtype}")
        if len(self.keypoints) != k or len(self.frames) != k or k == 0:
            raise ValueError(f"ReferenceBank: {k} images, {len(self.keypoints)} keypoints, {len(self.frames)} frames")
        object.__setattr__(self, "features", pose_features(self.keypoints))

    @property
    def size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[1])

    def nearest(self, keypoints: np.ndarray, frame: int | None = None, gap: int = 0) -> int:
        """The bank entry whose pose is nearest `keypoints` (137, 3); with `frame`, entries less
        than `gap` frames from it are passed over (training: a frame must not see itself)."""
        d = ((self.features - pose_features(keypoints[None])[0]) ** 2).sum(1)
        if frame is not None and gap > 0:
            far = np.abs(self.frames - int(frame)) >= gap
            if far.any():
                d = np.where(far, d, np.inf)
        return int(np.argmin(d))

    def warped(self, keypoints: np.ndarray, frame: int | None = None, gap: int = 0) -> np.ndarray:
        """The nearest entry's parts warped onto `keypoints`: (H, W, 3) uint8."""
        i = self.nearest(keypoints, frame, gap)
        return warp_parts(self.images[i], self.keypoints[i], keypoints)


# ------------------------------------------------------------------ per-part transforms
def bone_affine(pa: np.ndarray, pb: np.ndarray, qa: np.ndarray, qb: np.ndarray) -> np.ndarray | None:
    """The 2x3 affine taking bone pa->pb onto qa->qb: stretched along the bone, not across it.
    None where either bone is under a pixel long (no direction to follow)."""
    dp, dq = pb - pa, qb - qa
    lp, lq = float(np.hypot(*dp)), float(np.hypot(*dq))
    if lp < 1.0 or lq < 1.0:
        return None
    up, uq = dp / lp, dq / lq
    vp, vq = np.array([-up[1], up[0]]), np.array([-uq[1], uq[0]])
    stretch = float(np.clip(lq / lp, 0.25, 4.0))
    m = stretch * np.outer(uq, up) + np.outer(vq, vp)
    return np.hstack([m, (qa - m @ pa)[:, None]])


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    """The least-squares rotation + scale + shift (2x3) taking points src (N, 2) onto dst; None
    below 2 points or for a degenerate fit."""
    if len(src) < 2:
        return None
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    den = float((s ** 2).sum())
    if den < 1e-6:
        return None
    a = float((s * d).sum()) / den
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / den
    m = np.array([[a, -b], [b, a]])
    return np.hstack([m, (md - m @ ms)[:, None]])


def fit_affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    """The least-squares affine (2x3) taking src (N, 2) onto dst; a similarity below 3 points."""
    if len(src) < 3:
        return fit_similarity(src, dst)
    spread = np.linalg.svd(src - src.mean(0), compute_uv=False)
    if spread[-1] < 0.2 * spread[0]:  # nearly on a line (a side view's torso): an affine would shear
        return fit_similarity(src, dst)
    a = np.hstack([src, np.ones((len(src), 1))])
    sol, _, rank, _ = np.linalg.lstsq(a, dst, rcond=None)
    return sol.T if rank == 3 else fit_similarity(src, dst)


# ------------------------------------------------------------------ warping
def _paste(out: np.ndarray, image: np.ndarray, m: np.ndarray, points: np.ndarray, grow: float, hull: bool) -> None:
    """Warp `image` by `m` into `out` inside the outline of `points` (N, 2) in the new pose, grown
    by `grow` pixels: a capsule along 2 points (hull False) or their convex hull. Only the
    outline's box is drawn and warped."""
    h, w = out.shape[:2]
    r = max(1, int(round(grow)))
    x0, y0 = np.maximum(np.floor(points.min(0)).astype(int) - r - 1, 0)
    x1, y1 = np.minimum(np.ceil(points.max(0)).astype(int) + r + 2, (w, h))
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    pts = np.round(points - (x0, y0)).astype(np.int32)
    if hull:
        poly = cv2.convexHull(pts)
        cv2.fillConvexPoly(mask, poly, 1)
        cv2.polylines(mask, [poly], True, 1, thickness=2 * r)
    else:
        cv2.line(mask, tuple(map(int, pts[0])), tuple(map(int, pts[1])), 1, thickness=2 * r)
    shifted = m.astype(np.float64).copy()
    shifted[:, 2] -= (x0, y0)
    part = cv2.warpAffine(image, shifted, (int(x1 - x0), int(y1 - y0)), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT)
    sel = mask > 0
    out[y0:y1, x0:x1][sel] = part[sel]


def _points(ref: np.ndarray, kp: np.ndarray, idx) -> tuple[np.ndarray, np.ndarray]:
    idx = np.asarray(idx)
    both = (ref[idx, 2] > CONF) & (kp[idx, 2] > CONF)
    return ref[idx[both], :2].astype(np.float64), kp[idx[both], :2].astype(np.float64)


def _bone(image, ref, kp, out, pair, width) -> None:
    a, b = pair
    if min(ref[a, 2], ref[b, 2], kp[a, 2], kp[b, 2]) <= CONF:
        return
    m = bone_affine(ref[a, :2], ref[b, :2], kp[a, :2], kp[b, :2])
    if m is None:
        return
    _paste(out, image, m, kp[[a, b], :2], width / 2, hull=False)


def warp_parts(image: np.ndarray, ref_kp: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """`image` (H, W, 3) uint8 with pose `ref_kp` warped part by part onto `keypoints` (137, 3)
    (the same pixels): legs, torso, head, arms and hands, back to front, each part inside its
    outline in the new pose; black where no part is. Parts unseen in either pose are left out."""
    ref, kp = np.asarray(ref_kp, np.float64), np.asarray(keypoints, np.float64)
    out = np.zeros_like(image)
    t = torso_length(kp)
    for pair in LEGS:
        _bone(image, ref, kp, out, pair, LEG_WIDTH * t)
    src, dst = _points(ref, kp, TORSO)
    m = fit_affine(src, dst)
    if m is not None and len(dst) >= 3:
        _paste(out, image, m, dst, ARM_WIDTH * t / 2, hull=True)
    head = np.concatenate([np.array(VIEW_POINTS + (NECK,)), np.arange(FACE.start, FACE.stop)])
    src, dst = _points(ref, kp, head)
    m = fit_similarity(src, dst)
    if m is not None and len(dst) >= 3:
        _paste(out, image, m, dst, HEAD_GROW * t, hull=True)
    for pair in ARMS:
        _bone(image, ref, kp, out, pair, ARM_WIDTH * t)
    for hand, wrist in ((RIGHT_HAND, B["RWrist"]), (LEFT_HAND, B["LWrist"])):
        idx = np.concatenate([[wrist], np.arange(hand.start, hand.stop)])
        src, dst = _points(ref, kp, idx)
        m = fit_similarity(src, dst)
        if m is not None and len(dst) >= 4:
            _paste(out, image, m, dst, ARM_WIDTH * t / 3, hull=True)
    return out
