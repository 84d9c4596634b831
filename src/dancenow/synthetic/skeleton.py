"""Posing a subject on a dance: forward kinematics in metres, then a pinhole camera to pixels.

World coordinates: x to the image right, y up from the floor, depth away from the camera
(metres). The camera is static and level: the horizon is a fixed image row, so a dancer
who steps toward the camera stands lower in the frame and looks larger.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dancenow.pose.schema import B, FACE, LEFT_HAND, N_FACE, N_KEYPOINTS, RIGHT_HAND, PoseSequence
from dancenow.synthetic.dance import HOME_DEPTH, REF_LEG, Dance
from dancenow.synthetic.subject import Subject


@dataclass(frozen=True)
class Camera:
    """Level pinhole camera. focal: focal length in frame heights; horizon: image row of the
    horizon as a fraction of the height; height: camera height above the floor (m); wall:
    distance of the back wall (m)."""

    focal: float = 1.15
    horizon: float = 0.35
    height: float = 1.30
    wall: float = 7.0

    def project(self, pts: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """pts: (..., 3) world (x, y, depth) -> (..., 2) pixels (x, y) in a (W, H) frame."""
        w, h = size
        f = self.focal * h
        d = np.maximum(pts[..., 2], 1e-3)
        x = w / 2.0 + f * pts[..., 0] / d
        y = self.horizon * h + f * (self.height - pts[..., 1]) / d
        return np.stack([x, y], axis=-1)

    def floor_row(self, depth: float | np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Image row of the floor at `depth` metres."""
        h = size[1]
        return self.horizon * h + self.focal * h * self.height / np.asarray(depth, np.float64)

    def wall_row(self, size: tuple[int, int]) -> float:
        """Image row of the line where the back wall meets the floor."""
        return float(self.floor_row(self.wall, size))


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-9)


def _perp(v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Component of v (T,3) orthogonal to unit `axis` (T,3)."""
    return v - (v * axis).sum(-1, keepdims=True) * axis


def _rot(a: np.ndarray, b: np.ndarray, ang: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotate the orthonormal pair (a, b) by `ang` (T,) in their plane: a -> cos a + sin b."""
    c, s = np.cos(ang)[:, None], np.sin(ang)[:, None]
    return c * a + s * b, c * b - s * a


# ---------------------------------------------------------------- face template
def _face_template(mouth: np.ndarray, smile: np.ndarray, blink: np.ndarray) -> np.ndarray:
    """(T, 70, 3) face points in head units (x person's left, y up, z forward), head centre at 0."""
    T = mouth.shape[0]
    pts = np.zeros((T, N_FACE, 3))
    th = np.linspace(0.0, np.pi, 17)
    c = np.cos(th)
    pts[:, 0:17, 0] = -0.355 * np.sign(c) * np.abs(c) ** 0.7
    pts[:, 0:17, 1] = -0.01 - 0.49 * np.sin(th) ** 1.3
    pts[:, 0:17, 2] = 0.05 + 0.28 * np.sin(th)
    bx = np.linspace(-0.27, -0.07, 5)
    pts[:, 17:22, 0] = bx
    pts[:, 17:22, 1] = 0.085 + 0.03 * np.sin(np.linspace(0.2, 2.6, 5))
    pts[:, 22:27, 0] = -bx[::-1]
    pts[:, 22:27, 1] = pts[:, 17:22, 1][:, ::-1]
    pts[:, 17:27, 2] = 0.36
    pts[:, 27:31, 0] = 0.0
    pts[:, 27:31, 1] = np.linspace(0.03, -0.13, 4)
    pts[:, 27:31, 2] = np.linspace(0.40, 0.49, 4)
    pts[:, 31:36, 0] = np.linspace(-0.07, 0.07, 5)
    pts[:, 31:36, 1] = [-0.165, -0.175, -0.18, -0.175, -0.165]
    pts[:, 31:36, 2] = [0.40, 0.43, 0.44, 0.43, 0.40]
    # eyes: corner, two upper lid points, corner, two lower lid points
    eye = np.array([[-0.065, 0.0], [-0.022, 0.026], [0.022, 0.026], [0.065, 0.0], [0.022, -0.02], [-0.022, -0.02]])
    for start, cx, order in ((36, -0.155, eye), (42, 0.155, eye)):
        pts[:, start:start + 6, 0] = cx + order[:, 0]
        pts[:, start:start + 6, 1] = order[:, 1]
        pts[:, start + 1:start + 3, 1] = order[1:3, 1] - (order[1:3, 1] + 0.015) * blink[:, None]
        pts[:, start:start + 6, 2] = 0.36
    # lips
    m = mouth[:, None]
    sm = smile[:, None]
    outer = np.array([[-0.12, -0.29], [-0.08, -0.266], [-0.035, -0.256], [0.0, -0.262], [0.035, -0.256],
                      [0.08, -0.266], [0.12, -0.29], [0.08, -0.322], [0.04, -0.336], [0.0, -0.34],
                      [-0.04, -0.336], [-0.08, -0.322]])
    pts[:, 48:60, 0] = outer[:, 0] * (1.0 + 0.08 * sm)
    pts[:, 48:60, 1] = outer[:, 1]
    pts[:, 55:60, 1] -= 0.075 * m
    pts[:, [48, 54], 1] += 0.02 * sm
    inner = np.array([[-0.1, -0.292], [-0.035, -0.28], [0.0, -0.282], [0.035, -0.28], [0.1, -0.292],
                      [0.035, -0.302], [0.0, -0.304], [-0.035, -0.302]])
    pts[:, 60:68, 0] = inner[:, 0] * (1.0 + 0.08 * sm)
    pts[:, 60:68, 1] = inner[:, 1]
    pts[:, 65:68, 1] -= 0.065 * m
    pts[:, [60, 64], 1] += 0.02 * sm
    pts[:, 48:68, 2] = 0.38
    pts[:, 68, :] = [-0.155, 0.003, 0.37]
    pts[:, 69, :] = [0.155, 0.003, 0.37]
    return pts


# ---------------------------------------------------------------- hand template
# (along the hand, toward the thumb, out of the palm) in hand lengths, open hand
_HAND_OPEN = np.array([
    [0.0, 0.0, 0.0],
    [0.12, 0.15, 0.03], [0.27, 0.28, 0.05], [0.39, 0.36, 0.05], [0.49, 0.42, 0.05],
    [0.46, 0.12, 0.0], [0.67, 0.13, 0.0], [0.80, 0.135, 0.0], [0.92, 0.14, 0.0],
    [0.47, 0.03, 0.0], [0.70, 0.03, 0.0], [0.85, 0.03, 0.0], [1.0, 0.03, 0.0],
    [0.45, -0.06, 0.0], [0.66, -0.07, 0.0], [0.80, -0.075, 0.0], [0.93, -0.08, 0.0],
    [0.41, -0.14, 0.0], [0.56, -0.16, 0.0], [0.66, -0.17, 0.0], [0.75, -0.18, 0.0],
])


def _hand_points(curl: np.ndarray) -> np.ndarray:
    """(T, 21, 3) hand points in hand lengths for finger curl 0 (open) .. 1 (fist)."""
    T = curl.shape[0]
    out = np.repeat(_HAND_OPEN[None], T, axis=0).copy()
    bend = curl * 1.45  # per joint, radians
    for base in (5, 9, 13, 17):
        chain = _HAND_OPEN[base:base + 4]
        segs = np.diff(chain, axis=0)  # (3, 3)
        pos = np.repeat(chain[0][None], T, axis=0)
        ang = np.zeros(T)
        for i in range(3):
            ang = ang + bend
            L = np.linalg.norm(segs[i])
            d = segs[i] / L
            # rotate the segment from "along" toward "out of the palm" by ang
            step = np.stack([np.cos(ang) * d[0], np.full(T, d[1]), np.sin(ang) * abs(d[0])], -1) * L
            pos = pos + step
            out[:, base + i + 1] = pos
    # thumb folds toward the palm centre
    k = 0.55 * curl[:, None]
    target = np.array([0.45, 0.02, 0.12])
    for i, w in ((2, 0.3), (3, 0.6), (4, 0.85)):
        out[:, i] = out[:, i] + (target - out[:, i]) * (k * w)
    return out


# ---------------------------------------------------------------- kinematics
def pose_world(subject: Subject, dance: Dance) -> np.ndarray:
    """(T, 137, 3) world positions (x, y, depth) in metres of the subject's keypoints on `dance`."""
    s = subject
    ch = lambda name: dance.channel(name)  # noqa: E731
    T = len(dance)
    k = s.leg / REF_LEG  # bigger people take bigger steps
    up_w = np.tile([0.0, 1.0, 0.0], (T, 1))
    out = np.zeros((T, N_KEYPOINTS, 3))

    # --- feet on the floor, pelvis above them
    feet = dance.feet.copy()
    feet[..., 0] *= k
    feet[..., 2] = HOME_DEPTH + (feet[..., 2] - HOME_DEPTH) * k
    feet[..., 1] *= k
    yaw = ch("yaw")
    fwd = np.stack([np.sin(yaw), np.zeros(T), -np.cos(yaw)], -1)
    left = np.stack([np.cos(yaw), np.zeros(T), np.sin(yaw)], -1)
    px = dance.pelvis[:, 0] * k
    pd = HOME_DEPTH + (dance.pelvis[:, 1] - HOME_DEPTH) * k
    pel = np.stack([px, np.zeros(T), pd], -1) + left * (ch("sway") * k)[:, None]
    hips = [pel - left * s.hip_half, pel + left * s.hip_half]  # right, left
    ankles = [np.stack([feet[:, i, 0], s.ankle_height + feet[:, i, 1], feet[:, i, 2]], -1) for i in range(2)]
    reach = 0.995 * s.leg
    y = np.full(T, s.hip_height) - ch("crouch") * k
    for i in range(2):
        horiz = np.hypot(hips[i][:, 0] - ankles[i][:, 0], hips[i][:, 2] - ankles[i][:, 2])
        lim = ankles[i][:, 1] + np.sqrt(np.maximum(reach**2 - horiz**2, 1e-6))
        y = np.where(dance.contact[:, i], np.minimum(y, lim), y)
    pel[:, 1] = y
    for i in range(2):
        hips[i][:, 1] = y
    out[:, B["MidHip"]] = pel
    out[:, B["RHip"]], out[:, B["LHip"]] = hips

    # legs: two-bone IK, knees forward and a little outward
    for i, side, pfx in ((0, -1.0, "R"), (1, 1.0, "L")):
        hp, an = hips[i], ankles[i]
        v = an - hp
        dist = np.linalg.norm(v, axis=-1)
        u = v / dist[:, None]
        dist_c = np.minimum(dist, 0.999 * s.leg)
        an = hp + u * dist_c[:, None]  # unreachable lifted feet are pulled in
        along = (s.thigh**2 - s.shin**2 + dist_c**2) / (2 * dist_c)
        across = np.sqrt(np.maximum(s.thigh**2 - along**2, 0.0))
        n = _unit(_perp(fwd + 0.35 * side * left, u))
        out[:, B[f"{pfx}Knee"]] = hp + u * along[:, None] + n * across[:, None]
        out[:, B[f"{pfx}Ankle"]] = an
        # foot: turned out, toes down while lifted
        fyaw = 0.6 * yaw + side * 0.28
        fd = np.stack([np.sin(fyaw), np.zeros(T), -np.cos(fyaw)], -1)
        fl = np.stack([np.cos(fyaw), np.zeros(T), np.sin(fyaw)], -1)
        pitch = np.clip(feet[:, i, 1] / (0.25 * s.leg), 0, 1) * 0.6
        fd2, fu2 = _rot(fd, up_w, -pitch)
        inner = -side * fl
        heel = an + fd2 * (-0.22 * s.foot) - fu2 * s.ankle_height
        big = an + fd2 * (0.78 * s.foot) - fu2 * s.ankle_height + inner * (0.10 * s.foot)
        small = an + fd2 * (0.66 * s.foot) - fu2 * s.ankle_height - inner * (0.17 * s.foot)
        out[:, B[f"{pfx}Heel"]], out[:, B[f"{pfx}BigToe"]], out[:, B[f"{pfx}SmallToe"]] = heel, big, small

    # --- torso
    roll, pitch_t = ch("torso_roll"), ch("torso_pitch")
    spine = _unit(up_w + np.tan(roll)[:, None] * left + np.tan(pitch_t)[:, None] * fwd)
    neck = pel + spine * s.torso
    out[:, B["Neck"]] = neck
    left_u = _unit(_perp(left, spine))
    fwd_u = _unit(np.cross(spine, left_u))
    fwd_u = np.where(((fwd_u * fwd).sum(-1) < 0)[:, None], -fwd_u, fwd_u)
    shoulders = [neck - left_u * s.shoulder_half, neck + left_u * s.shoulder_half]
    out[:, B["RShoulder"]], out[:, B["LShoulder"]] = shoulders

    # --- arms and hands
    for i, side, pfx, hand_sl in ((0, -1.0, "r", RIGHT_HAND), (1, 1.0, "l", LEFT_HAND)):
        abd, flex, elbow = ch(f"{pfx}_abd"), ch(f"{pfx}_flex"), ch(f"{pfx}_elbow")
        plane, wrist, curl = ch(f"{pfx}_plane"), ch(f"{pfx}_wrist"), ch(f"{pfx}_curl")
        outward = side * left_u
        d = (outward * (np.sin(abd) * np.cos(flex))[:, None] - spine * (np.cos(abd) * np.cos(flex))[:, None]
             + fwd_u * np.sin(flex)[:, None])
        d = _unit(d)
        el = shoulders[i] + d * s.upper_arm
        pref = np.cos(plane)[:, None] * spine - np.sin(plane)[:, None] * outward + 0.35 * fwd_u
        n = _unit(_perp(pref, d))
        f = np.cos(elbow)[:, None] * d + np.sin(elbow)[:, None] * n
        wr = el + f * s.forearm
        P = "R" if i == 0 else "L"
        out[:, B[f"{P}Elbow"]], out[:, B[f"{P}Wrist"]] = el, wr
        # hand frame: along the forearm, bent at the wrist toward the palm (palm faces the camera)
        along = np.cos(wrist)[:, None] * f + np.sin(wrist)[:, None] * _unit(_perp(n, f))
        thumb = np.cross(fwd_u, along)
        weak = np.linalg.norm(thumb, axis=-1) < 0.35
        thumb = np.where(weak[:, None], thumb + np.cross(spine, along) * 0.8, thumb)
        thumb = _unit(_perp(thumb, along)) * (-side)
        palm = np.cross(along, thumb)
        palm = np.where(((palm * fwd_u).sum(-1) < 0)[:, None], -palm, palm)
        hp = _hand_points(curl)  # (T, 21, 3)
        out[:, hand_sl] = (wr[:, None, :] + s.hand * (hp[..., 0:1] * along[:, None] + hp[..., 1:2] * thumb[:, None]
                                                     + hp[..., 2:3] * palm[:, None]))

    # --- head: pivot on top of the neck; yaw, nod, tilt relative to the torso
    pivot = neck + _unit(spine + 0.15 * fwd_u) * s.neck
    hf, hl = _rot(fwd_u, left_u, ch("head_yaw"))
    hf, hu = _rot(hf, spine, -ch("head_pitch"))
    hu, hl = _rot(hu, hl, ch("head_roll"))
    centre_h = pivot + s.head * (0.30 * hu + 0.02 * hf)
    face = _face_template(ch("mouth"), ch("smile"), ch("blink"))

    def head_pt(p: np.ndarray) -> np.ndarray:
        axes = p[..., 0:1] * hl[:, None] + p[..., 1:2] * hu[:, None] + p[..., 2:3] * hf[:, None]
        return centre_h[:, None] + s.head * axes

    out[:, FACE] = head_pt(face)
    out[:, B["Nose"]] = out[:, FACE][:, 30]
    out[:, B["REye"]] = out[:, FACE][:, 68]
    out[:, B["LEye"]] = out[:, FACE][:, 69]
    ears = np.array([[[-0.40, -0.04, -0.01], [0.40, -0.04, -0.01]]]).repeat(T, 0)
    e = head_pt(ears)
    out[:, B["REar"]], out[:, B["LEar"]] = e[:, 0], e[:, 1]
    return out


def pose_subject(
    subject: Subject,
    dance: Dance,
    size: int | tuple[int, int],
    *,
    offset: tuple[float, float] = (0.0, 0.0),
    scale: float = 1.0,
    camera: Camera = Camera(),
) -> PoseSequence:
    """Exact keypoints of `subject` dancing `dance`, seen by `camera` in a frame of `size` (W, H).

    `scale` and `offset` (pixels) move the figure in the frame: the points are scaled about the
    horizon centre (as a longer lens would) and then shifted, so a demo source can stand
    elsewhere than the target. Points outside the frame get confidence 0; all others 1.
    """
    w, h = _size(size)
    if not (scale > 0 and np.isfinite(scale)):
        raise ValueError(f"scale must be positive, got {scale}")
    xy = camera.project(pose_world(subject, dance), (w, h))
    anchor = np.array([w / 2.0, camera.horizon * h])
    xy = (xy - anchor) * float(scale) + anchor + np.asarray(offset, np.float64)
    inside = (xy[..., 0] >= 0) & (xy[..., 0] <= w - 1) & (xy[..., 1] >= 0) & (xy[..., 1] <= h - 1)
    kp = np.concatenate([xy, inside[..., None].astype(np.float64)], axis=-1).astype(np.float32)
    meta = {
        "synthetic": {
            "subject_seed": subject.seed,
            "dance_seed": dance.seed,
            "bpm": dance.bpm,
            "offset": [float(offset[0]), float(offset[1])],
            "scale": float(scale),
        }
    }
    return PoseSequence(keypoints=kp, width=w, height=h, fps=dance.fps, timestamps=dance.timestamps.copy(), meta=meta)


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    """(W, H) from an int (square) or a pair; both at least 16."""
    if isinstance(size, (int, np.integer)):
        w = h = int(size)
    else:
        w, h = (int(v) for v in size)
    if w < 16 or h < 16:
        raise ValueError(f"frame size must be at least 16x16, got {w}x{h}")
    return w, h
