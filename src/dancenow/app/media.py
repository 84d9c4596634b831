"""The web app's media steps (no UI here): store uploads safely, make the built-in synthetic
dancer, preview a video's detected skeleton, list the app's runs.

Uploads are checked (size limit, a readable video) and copied into APP_DATA/uploads under a
name made from their content hash: no path or name from the client is ever used as a path.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dancenow.atomic import atomic_path
from dancenow.data.prepare import file_sha256
from dancenow.errors import InputError
from dancenow.pose.geometry import person_present
from dancenow.pose.render import overlay_pose
from dancenow.pose.schema import FACE
from dancenow.video import probe, read_frames, write_video

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"}


def store_upload(path: str | Path, app_dir: Path, max_bytes: int, what: str) -> Path:
    """Check an uploaded file and copy it to APP_DATA/uploads/<sha256[:16]><suffix>.

    Raises InputError naming the upload as `what` (e.g. "the target video"): over `max_bytes`,
    not a video (or damaged). The suffix is kept only when it is a known video suffix."""
    src = Path(path)
    size = src.stat().st_size if src.is_file() else 0
    if size > max_bytes:
        raise InputError(what, f"is {size / 1e6:.1f} MB, over this app's upload limit of {max_bytes / 1e6:.0f} MB")
    try:
        meta = probe(src)
    except InputError as exc:
        raise InputError(what, exc.problem) from None
    if meta.n_frames < 2:
        raise InputError(what, "has fewer than 2 frames: not a dance video")
    suffix = src.suffix.lower() if src.suffix.lower() in VIDEO_SUFFIXES else ".mp4"
    dest = app_dir / "uploads" / f"{file_sha256(src)[:16]}{suffix}"
    if not dest.is_file():
        with atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
    return dest


def synthetic_video(app_dir: Path, role: str, seconds: float, size: int) -> Path:
    """The built-in synthetic dancer (role "target") or a synthetic dance with music ("source"),
    made once into APP_DATA/uploads."""
    from dancenow.eval.synthetic_benchmark import beat_track
    from dancenow.synthetic import make_clip

    dest = app_dir / "uploads" / f"synthetic-{role}-{seconds:g}s-{size}px.mp4"
    if dest.is_file():
        return dest
    if role == "target":
        clip = make_clip(1, 7, seconds, 15.0, size, varied=True)
        return write_video(dest, clip.iter_frames(), clip.fps)
    clip = make_clip(4, 3, seconds, 15.0, size, offset=(60.0 * size / 256, 12.0 * size / 256), scale=0.8)
    music = beat_track(app_dir / "uploads" / f".music-{seconds:g}s.m4a", seconds + 0.5, clip.dance.bpm)
    out = write_video(dest, clip.iter_frames(), clip.fps, audio_from=music)
    music.unlink()
    return out


@dataclass(frozen=True)
class SkeletonPreview:
    """The detector on frames sampled evenly over a video."""

    images: tuple[np.ndarray, ...]   # a few sampled frames with the detected skeleton drawn on
    sampled: int
    person_rate: float
    face_rate: float
    hand_rate: float

    def summary(self) -> str:
        return (f"person found in {self.person_rate:.0%} of {self.sampled} sampled frames, face in "
                f"{self.face_rate:.0%}, a hand in {self.hand_rate:.0%}")


def skeleton_preview(video: Path, what: str, samples: int = 16, shown: int = 4) -> SkeletonPreview:
    """Detect the person on `samples` frames spread over `video`; InputError when none has one."""
    from dancenow.pose.detect import detect_frames

    meta = probe(video)
    picks = set(np.unique(np.linspace(0, max(0, meta.n_frames - 1), samples).round().astype(int)).tolist())
    frames = [f.image for f in read_frames(video, max_size=512) if f.index in picks]
    if not frames:
        raise InputError(what, "no frame could be decoded")
    h, w = frames[0].shape[:2]
    seq = detect_frames(frames, fps=meta.fps, width=w, height=h, progress=False)
    present = person_present(seq.keypoints)
    if not present.any():
        raise InputError(what, f"no person was found in any of {len(frames)} frames sampled over the video: "
                               "film one person, whole body in view")
    face = (seq.keypoints[:, FACE, 2] > 0.1).sum(axis=1) >= 20
    hands = (seq.keypoints[:, FACE.stop:, 2] > 0.1).any(axis=1)
    idx = np.linspace(0, len(frames) - 1, min(shown, len(frames))).round().astype(int)
    images = tuple(overlay_pose(frames[i], seq.keypoints[i]) for i in idx)
    return SkeletonPreview(images, len(frames), float(present.mean()), float(face.mean()), float(hands.mean()))


@dataclass(frozen=True)
class RunInfo:
    """One of the app's runs (APP_DATA/runs/<id>), from its chain ledger."""

    id: str
    out_dir: Path
    target: str
    status: str
    minutes: float | None
    val_ssim: float | None
    trained: bool               # its model is trained and evaluated (report.md written)
    results: tuple[Path, ...]


def list_runs(app_dir: Path) -> list[RunInfo]:
    """The app's runs, newest first."""
    runs = []
    for d in sorted((app_dir / "runs").glob("*/chain.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            led = json.loads(d.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        st = led.get("stages", {})
        tr = st.get("train", {})
        results = tuple(d.parent / r["result"] for k, r in st.items()
                        if k.startswith("transfer:") and r.get("status") == "done")
        runs.append(RunInfo(d.parent.name, d.parent, Path(led.get("target", "?")).name, led.get("status", "?"),
                            (led.get("options") or {}).get("minutes"), tr.get("val_ssim"),
                            tr.get("status") == "done" and (d.parent / "report.md").is_file(), results))
    return runs
