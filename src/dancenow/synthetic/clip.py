"""Synthetic clips: a subject dancing, as frames, masks and exact keypoints; writing them to files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from dancenow.errors import DancenowError, InputError
from dancenow.pose.schema import PoseSequence
from dancenow.synthetic.dance import Dance, make_dance
from dancenow.synthetic.scene import Renderer, RenderResult
from dancenow.synthetic.skeleton import Camera, _size, pose_subject
from dancenow.synthetic.subject import Subject, make_subject
from dancenow.video import write_video


@dataclass(frozen=True, eq=False)
class SyntheticClip:
    """A subject dancing a dance: exact poses, and frames/masks rendered on demand.

    Iterating yields one RenderResult per frame (streaming); frames()/masks() render them all
    into (T, H, W, 3) uint8 / (T, H, W) bool arrays.
    """

    subject: Subject
    dance: Dance
    poses: PoseSequence

    @property
    def size(self) -> tuple[int, int]:
        """(W, H)."""
        return self.poses.width, self.poses.height

    @property
    def fps(self) -> float:
        return self.poses.fps

    def __len__(self) -> int:
        return len(self.poses)

    def __iter__(self) -> Iterator[RenderResult]:
        r = Renderer(self.subject, self.size)
        for kp in self.poses.keypoints:
            yield r(kp)

    def iter_frames(self) -> Iterator[np.ndarray]:
        """(H, W, 3) uint8 RGB frames, one at a time."""
        for res in self:
            yield res.image

    def frames(self) -> np.ndarray:
        """(T, H, W, 3) uint8 RGB."""
        w, h = self.size
        out = np.empty((len(self), h, w, 3), np.uint8)
        for i, res in enumerate(self):
            out[i] = res.image
        return out

    def masks(self) -> np.ndarray:
        """(T, H, W) bool person masks."""
        w, h = self.size
        out = np.empty((len(self), h, w), bool)
        for i, res in enumerate(self):
            out[i] = res.mask
        return out


def make_clip(
    subject_seed: int,
    dance_seed: int,
    seconds: float,
    fps: float,
    size: int | tuple[int, int],
    *,
    bpm: float | None = None,
    offset: tuple[float, float] = (0.0, 0.0),
    scale: float = 1.0,
    camera: Camera = Camera(),
    varied: bool = False,
) -> SyntheticClip:
    """Subject `subject_seed` dancing dance `dance_seed` for `seconds` at `fps` in a (W, H) frame
    (varied: a range-of-motion routine, see :func:`dancenow.synthetic.dance.make_dance`)."""
    subject = make_subject(subject_seed)
    dance = make_dance(dance_seed, seconds, fps, bpm=bpm, varied=varied)
    poses = pose_subject(subject, dance, _size(size), offset=offset, scale=scale, camera=camera)
    return SyntheticClip(subject=subject, dance=dance, poses=poses)


def write_clip(clip: SyntheticClip, video_path: str | Path, poses_path: str | Path | None = None) -> Path:
    """Write the clip as an H.264 MP4 (dancenow.video.write_video, atomic) and its exact poses as
    a PoseSequence .npz (atomic). Returns the video path."""
    out = write_video(video_path, clip.iter_frames(), clip.fps)
    if poses_path is not None:
        try:
            clip.poses.save(poses_path)
        except OSError as exc:
            raise InputError(poses_path, f"cannot write poses ({exc.strerror or exc})") from None
    return Path(out)


def synth_to_files(
    subject: int,
    dance: int,
    seconds: float,
    fps: float,
    size: int | tuple[int, int],
    video_path: str | Path,
    poses_path: str | Path | None = None,
    *,
    bpm: float | None = None,
    varied: bool = False,
) -> SyntheticClip:
    """`dancenow synth`: make the clip of subject seed `subject` dancing dance seed `dance` and write
    the video (and poses). Returns the clip (poses, dance and subject for a summary).
    Bad arguments raise DancenowError (one line); unwritable paths InputError."""
    try:
        clip = make_clip(subject, dance, seconds, fps, size, bpm=bpm, varied=varied)
    except ValueError as exc:
        raise DancenowError(f"synth: {exc}") from None
    write_clip(clip, video_path, poses_path)
    return clip
