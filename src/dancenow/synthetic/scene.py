"""The room (pre-rendered once per size) and rendering a subject on keypoints into it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, overload

import cv2
import numpy as np

from dancenow.pose.schema import N_KEYPOINTS, PoseSequence
from dancenow.synthetic.draw import PersonDrawer, shade
from dancenow.synthetic.skeleton import Camera, _size
from dancenow.synthetic.subject import Scene, Subject


@dataclass(frozen=True, eq=False)
class RenderResult:
    """One rendered frame: image (H, W, 3) uint8 RGB and mask (H, W) bool of the person's pixels."""

    image: np.ndarray
    mask: np.ndarray


def render_background(scene: Scene, size: int | tuple[int, int], camera: Camera = Camera()) -> np.ndarray:
    """(H, W, 3) uint8 RGB: wall with a skirting board (and maybe a picture), a plank floor
    in perspective toward the camera's horizon, a little texture. Deterministic per scene."""
    w, h = _size(size)
    rng = np.random.default_rng([scene.seed, 0xB6, w, h])
    img = np.zeros((h, w, 3), np.float32)
    wall_y = camera.wall_row((w, h))
    f = camera.focal * h
    hz = camera.horizon * h
    rows = np.arange(h, dtype=np.float32)[:, None]
    # wall: lighter toward the top
    wall = np.array(scene.wall, np.float32)
    g = (1.06 - 0.12 * np.clip(rows / max(wall_y, 1.0), 0, 1))[:, :, None]
    img[:] = wall[None, None] * g
    # floor: base colour, lighter toward the camera, planks along the depth axis
    floor = np.array(scene.floor, np.float32)
    yf = int(np.floor(wall_y))
    if yf < h:
        fr = np.clip((rows[yf:] - wall_y) / max(h - wall_y, 1.0), 0, 1)
        img[yf:] = floor[None, None] * (0.85 + 0.25 * fr)[:, :, None]
        plank = 0.55 * 7.0 / scene.plank_count * (w / h)  # plank width in metres
        d_near = f * camera.height / max(h - hz, 1.0)
        x_max = 0.5 * w * d_near / f + plank
        n_side = int(np.ceil(x_max / plank)) + 1
        xs = (np.arange(-n_side, n_side + 1) + 0.5) * plank
        depth_far, depth_near = camera.wall, max(d_near * 0.98, 0.2)
        # per-plank tint
        tints = rng.uniform(0.9, 1.08, size=len(xs) - 1)
        for i in range(len(xs) - 1):
            quad = np.array([[xs[i], depth_far], [xs[i + 1], depth_far], [xs[i + 1], depth_near], [xs[i], depth_near]])
            px = w / 2 + f * quad[:, 0] / quad[:, 1]
            py = hz + f * camera.height / quad[:, 1]
            poly = np.round(np.stack([px, py], -1) * 16).astype(np.int32)
            layer = np.zeros((h, w), np.uint8)
            cv2.fillPoly(layer, [poly], 255, cv2.LINE_AA, 4)
            a = layer.astype(np.float32)[:, :, None] / 255.0
            img[:] = img * (1 - a) + img * tints[i] * a
        line = np.array(scene.floor_line, np.float32)
        lines = []
        for x in xs:
            p0 = (w / 2 + f * x / depth_far, hz + f * camera.height / depth_far)
            p1 = (w / 2 + f * x / depth_near, hz + f * camera.height / depth_near)
            lines.append(np.round(np.array([p0, p1]) * 16).astype(np.int32))
        # staggered board ends
        for i in range(len(xs) - 1):
            for d in rng.uniform(depth_near, depth_far, size=2):
                y = hz + f * camera.height / d
                lines.append(np.round(np.array([[w / 2 + f * xs[i] / d, y], [w / 2 + f * xs[i + 1] / d, y]]) * 16
                                      ).astype(np.int32))
        cv2.polylines(img, lines, False, tuple(float(c) for c in line), 1, cv2.LINE_AA, 4)
    # skirting board
    board = 0.12 * f / camera.wall
    y0 = int(round(wall_y - board))
    trim = np.array(scene.wall_trim, np.float32)
    if 0 <= y0 < h:
        img[y0:yf] = trim * 0.95
        img[y0:min(h, y0 + max(1, int(board * 0.15)))] = trim
        img[max(yf - 1, 0):yf] = np.array(shade(scene.wall_trim, 0.6), np.float32)
    # a framed picture on the wall
    if scene.poster:
        pw, ph = 0.9 * f / camera.wall, 0.65 * f / camera.wall
        cx = w * (0.2 if rng.random() < 0.5 else 0.8)
        cy = hz - 0.45 * f / camera.wall
        x0, x1, y0p, y1p = int(cx - pw / 2), int(cx + pw / 2), int(cy - ph / 2), int(cy + ph / 2)
        frame = max(1, int(0.04 * f / camera.wall))
        cv2.rectangle(img, (x0 - frame, y0p - frame), (x1 + frame, y1p + frame), (60.0, 45.0, 35.0), -1)
        pc = np.array(scene.poster_color, np.float32)
        y0c, x0c = max(y0p, 0), max(x0, 0)
        art = img[y0c:max(y1p, y0c), x0c:max(x1, x0c)].copy()
        if art.size:
            art[:] = pc * 1.1
            for _ in range(3):
                c = (int(rng.uniform(0, art.shape[1])), int(rng.uniform(0, art.shape[0])))
                r = int(rng.uniform(0.1, 0.3) * ph) + 1
                col = tuple(float(v) for v in np.clip(pc * rng.uniform(0.4, 1.6, 3), 0, 255))
                cv2.circle(art, c, r, col, -1, cv2.LINE_AA)
            img[y0c:y0c + art.shape[0], x0c:x0c + art.shape[1]] = art
        cv2.rectangle(img, (x0 - frame, y0p - frame), (x1 + frame, y1p + frame), (60.0, 45.0, 35.0), frame)
    # texture: fine grain, and soft blotches
    grain = rng.normal(0.0, 2.2, size=(h, w, 1)).astype(np.float32)
    blotch = cv2.GaussianBlur(rng.normal(0.0, 1.0, size=(h, w)).astype(np.float32), (0, 0), max(2.0, w / 40))
    blotch *= 3.5 / max(float(blotch.std()), 1e-6)
    img += grain + blotch[:, :, None]
    # gentle vignette
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    img *= (1.0 - 0.07 * r2)[:, :, None]
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


class Renderer:
    """Draws one subject in its room at a fixed frame size; the background is rendered once."""

    def __init__(self, subject: Subject, size: int | tuple[int, int], *, scene: Scene | None = None,
                 camera: Camera = Camera()):
        self.subject = subject
        self.size = _size(size)
        self.scene = scene if scene is not None else subject.scene
        self.background = render_background(self.scene, self.size, camera)
        self._drawer = PersonDrawer(subject)

    def __call__(self, keypoints: np.ndarray) -> RenderResult:
        """keypoints: (137, 3) in this frame's pixels -> RenderResult."""
        kp = np.asarray(keypoints)
        if kp.shape != (N_KEYPOINTS, 3):
            raise ValueError(f"keypoints must be ({N_KEYPOINTS}, 3), got {kp.shape}")
        img = self.background.copy()
        mask = np.zeros(img.shape[:2], np.uint8)
        self._drawer.draw(img, mask, kp)
        return RenderResult(image=img, mask=mask > 0)


@overload
def render(subject: Subject, poses: PoseSequence, size: int | tuple[int, int] | None = None, *,
           scene: Scene | None = None) -> Iterator[RenderResult]: ...
@overload
def render(subject: Subject, poses: np.ndarray, size: int | tuple[int, int] | None = None, *,
           scene: Scene | None = None) -> RenderResult: ...
def render(subject, poses, size=None, *, scene=None):  # noqa: E301
    """Draw `subject` on keypoints in its room (or `scene`).

    poses: a (137, 3) array (needs `size`) -> one RenderResult; or a PoseSequence -> an iterator of
    RenderResult, one per frame, at `size` (default the sequence's own; keypoints are rescaled
    when the sizes differ).
    """
    if isinstance(poses, PoseSequence):
        target = _size(size) if size is not None else (poses.width, poses.height)
        sx, sy = target[0] / poses.width, target[1] / poses.height
        return _render_seq(Renderer(subject, target, scene=scene), poses.keypoints, sx, sy)
    kp = np.asarray(poses, np.float32)
    if kp.shape != (N_KEYPOINTS, 3):
        raise ValueError(f"poses must be a PoseSequence or a ({N_KEYPOINTS}, 3) array, got shape {kp.shape}")
    if size is None:
        raise ValueError("render: size is required for a single (137, 3) keypoint array")
    return Renderer(subject, size, scene=scene)(kp)


def _render_seq(r: Renderer, keypoints: np.ndarray, sx: float, sy: float) -> Iterator[RenderResult]:
    scale = np.array([sx, sy, 1.0], np.float32)
    for kp in keypoints:
        yield r(kp * scale if (sx != 1.0 or sy != 1.0) else kp)
