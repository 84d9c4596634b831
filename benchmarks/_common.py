"""Shared set-up for the benchmark scripts: a prepared synthetic data dir of any size."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path | None:
    d = Path(os.environ.get("DANCENOW_DATA", REPO.parent / "shared" / "data"))
    return d if (d / "README.md").is_file() else None


def synthetic_data_dir(width: int, height: int, seconds: float = 2.0, fps: float = 10.0, root: Path | None = None) -> Path:
    """A prepared data dir of the synthetic dancer (exact poses, no detector) at width x height."""
    from dancenow.data.prepare import PrepareConfig, prepare
    from dancenow.synthetic import make_clip, write_clip

    root = Path(root or tempfile.mkdtemp(prefix="dancenow-bench-"))
    clip = make_clip(1, 7, seconds, fps, (width, height))
    video = write_clip(clip, root / "clip.mp4")
    return prepare(video, root / f"data_{width}x{height}", PrepareConfig(width=width, height=height),
                   poses=clip.poses, progress=False)
