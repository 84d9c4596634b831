"""Prepared data on disk -> training pairs (frame t-1, frame t) as typed tensors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from dancenow.errors import InputError
from dancenow.pose.geometry import body_motion_in
from dancenow.pose.reference import ReferenceBank, choose_bank
from dancenow.pose.render import RenderStyle, render_crop, render_input, render_pose
from dancenow.pose.schema import PoseSequence
from dancenow.tensors import to_tensor
from dancenow.video import read_image, read_mask

from dancenow.data.prepare import MANIFEST_VERSION


@dataclass(frozen=True, eq=False)
class PreparedData:
    """A prepared DATA_DIR, loaded and checked."""

    root: Path
    manifest: dict
    poses: PoseSequence        # output pixels
    face_boxes: np.ndarray     # (T, 4) int32, -1 rows where no face

    @classmethod
    def load(cls, root: str | Path) -> "PreparedData":
        root = Path(root)
        mpath = root / "manifest.json"
        if not mpath.is_file():
            raise InputError(root, "not a prepared data dir (no manifest.json): run `dancenow prepare` first")
        manifest = json.loads(mpath.read_text())
        if manifest.get("version") != MANIFEST_VERSION:
            raise InputError(mpath, f"manifest version {manifest.get('version')} is not {MANIFEST_VERSION}: re-run prepare")
        poses = PoseSequence.load(root / "poses.npz")
        fb = root / "face_boxes.npy"
        if not fb.is_file():
            raise InputError(fb, "missing: re-run prepare")
        boxes = np.load(fb, allow_pickle=False)
        n = int(manifest["n_frames"])
        if len(poses) != n or len(boxes) != n:
            raise InputError(root, f"inconsistent: manifest says {n} frames, poses {len(poses)}, face boxes {len(boxes)}")
        return cls(root, manifest, poses, boxes)

    @property
    def size(self) -> tuple[int, int]:
        w, h = self.manifest["size"]
        return int(w), int(h)

    def split(self, name: str) -> tuple[int, int]:
        a, b = self.manifest["split"][name]
        return int(a), int(b)

    def background(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB background plate."""
        return _read(self.root / "background.png", "background plate")

    def frame_path(self, i: int) -> Path:
        return self.root / "frames" / f"{i:06d}.png"

    def read_frame(self, i: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB frame i."""
        return _read(self.frame_path(i), "frame")

    def label(self, i: int, style: RenderStyle = RenderStyle()) -> np.ndarray:
        w, h = self.size
        return render_pose(self.poses.keypoints[i], w, h, style)

    def model_input(self, i: int, style: RenderStyle = RenderStyle(), reference: ReferenceBank | None = None,
                    gap: int = 0) -> np.ndarray:
        """Frame i's generator input (`render_input`): with `reference`, never a reference within
        `gap` frames of i."""
        w, h = self.size
        return render_input(self.poses.keypoints[i], w, h, style, reference, i, gap)

    def reference_bank(self, k: int, split: str = "train", margin: int = 0) -> ReferenceBank:
        """`k` diverse frames of a split (`choose_bank`) with their poses, none of its last
        `margin` frames (while the split has more than that)."""
        a, b = self.split(split)
        b = b - margin if b - margin > a else b
        idx = a + choose_bank(self.poses.keypoints[a:b], k)
        if len(idx) == 0:
            raise InputError(self.root, f"no {split} frames to take reference frames from")
        return ReferenceBank(np.stack([self.read_frame(int(i)) for i in idx]), self.poses.keypoints[idx].copy(), idx)

    @property
    def face_hr_size(self) -> int:
        """Side of the full-resolution face crops in faces/ (0: none were made)."""
        return int(self.manifest.get("face_hr_size", 0))

    def has_face(self, i: int) -> bool:
        return bool(self.face_boxes[i, 0] >= 0)

    def read_face(self, i: int) -> np.ndarray:
        """(S, S, 3) uint8: frame i's face box cut from the original video (S = face_hr_size)."""
        return _read(self.root / "faces" / f"{i:06d}.png", "face crop")

    def face_label(self, i: int, style: RenderStyle = RenderStyle()) -> np.ndarray:
        """(S, S, 3) uint8: frame i's stick figure inside its face box, drawn at S x S."""
        return render_crop(self.poses.keypoints[i], self.face_boxes[i], self.face_hr_size, style)


    @property
    def has_mattes(self) -> bool:
        """Whether prepare made mattes/ (data prepared before mattes existed has none until re-run)."""
        return "matte" in self.manifest

    def read_matte(self, i: int) -> np.ndarray:
        """(H, W) uint8: frame i's person matte, 255 on the person."""
        path = self.root / "mattes" / f"{i:06d}.png"
        try:
            matte = read_mask(path)
        except InputError as exc:
            raise InputError(path, f"missing or unreadable matte ({exc.problem}): re-run prepare") from None
        w, h = self.size
        if matte.shape != (h, w):
            raise InputError(path, f"matte is {matte.shape[1]}x{matte.shape[0]}, the frames {w}x{h}: re-run prepare")
        return matte


def _read(path: Path, what: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB image of the prepared data; InputError saying to re-run prepare."""
    try:
        return read_image(path)
    except InputError as exc:
        raise InputError(path, f"missing or unreadable {what} ({exc.problem}): re-run prepare") from None


@dataclass(frozen=True, eq=False)
class PairSample:
    """Two consecutive frames (batched along dim 0 after `collate_pairs`).

    label_prev, label: (B, C, H, W) generator inputs in [-1, 1]: stick figures (C = 3), and
        with a reference bank the warped reference frame after them (C = 6)
    image_prev, image: (B, 3, H, W) real frames in [-1, 1]
    face_box: (B, 4) int64 x0, y0, x1, y1 of frame t (-1 where no face)
    index: (B,) int64 frame index t
    face_label, face_image: (B, 3, S, S) frame t's face box at the face's full resolution
        (stick figure, real crop from the original video; zeros where no face), or None
        where the data has no full-resolution faces
    matte_prev, matte: (B, 1, H, W) the person's mattes of frames t-1 and t in [0, 1], or None
        where they are not asked for
    """

    label_prev: torch.Tensor
    label: torch.Tensor
    image_prev: torch.Tensor
    image: torch.Tensor
    face_box: torch.Tensor
    index: torch.Tensor
    face_label: torch.Tensor | None = None
    face_image: torch.Tensor | None = None
    matte_prev: torch.Tensor | None = None
    matte: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> "PairSample":
        return PairSample(*(None if (t := getattr(self, f)) is None else t.to(device, non_blocking=True)
                            for f in self.__dataclass_fields__))


class PairDataset(Dataset):
    """Pairs (t-1, t) with both frames inside one split; item k is t = start + 1 + k.

    Frames are cached in memory (as uint8) when the split is small enough.
    """

    def __init__(self, data: PreparedData, split: str = "train", style: RenderStyle = RenderStyle(),
                 cache_bytes: int = 2 << 30, reference: ReferenceBank | None = None, gap: int = 0,
                 mattes: bool = False):
        if mattes and not data.has_mattes:
            raise InputError(data.root, "has no person mattes (prepared before they existed): re-run prepare")
        self.data, self.mattes = data, mattes
        self.reference, self.gap = reference, int(gap)
        self.start, self.stop = data.split(split)
        self.style = style
        w, h = data.size
        self._cache: dict[int, np.ndarray] | None = {} if (self.stop - self.start) * w * h * (3 + self.mattes) <= cache_bytes else None
        self._matte_cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return max(0, self.stop - self.start - 1)

    def motion(self) -> np.ndarray:
        """Item k's body motion (pixels the fastest body point moved from frame t-1 to t)."""
        return body_motion_in(self.data.poses.keypoints, self.start + 1, self.start + 1 + len(self))

    def _frame(self, i: int) -> np.ndarray:
        if self._cache is None:
            return self.data.read_frame(i)
        if i not in self._cache:
            self._cache[i] = self.data.read_frame(i)
        return self._cache[i]

    def _matte(self, i: int) -> torch.Tensor | None:
        if not self.mattes:
            return None
        m = self._matte_cache.get(i)
        if m is None:
            m = self.data.read_matte(i)
            if self._cache is not None:
                self._matte_cache[i] = m
        return torch.from_numpy(m.astype(np.float32) / 255.0)[None]

    def _faces(self, t: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        s = self.data.face_hr_size
        if not s:
            return None, None
        if not self.data.has_face(t):
            return torch.zeros(3, s, s), torch.zeros(3, s, s)
        return to_tensor(self.data.face_label(t, self.style)), to_tensor(self.data.read_face(t))

    def __getitem__(self, k: int) -> tuple[torch.Tensor | None, ...]:
        t = self.start + 1 + int(k)
        return (
            to_tensor(self.data.model_input(t - 1, self.style, self.reference, self.gap)),
            to_tensor(self.data.model_input(t, self.style, self.reference, self.gap)),
            to_tensor(self._frame(t - 1)),
            to_tensor(self._frame(t)),
            torch.from_numpy(self.data.face_boxes[t].astype(np.int64)),
            torch.tensor(t, dtype=torch.int64),
            *self._faces(t),
            self._matte(t - 1),
            self._matte(t),
        )


def collate_pairs(items: list[tuple[torch.Tensor | None, ...]]) -> PairSample:
    return PairSample(*(None if parts[0] is None else torch.stack(parts) for parts in zip(*items)))
