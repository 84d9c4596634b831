"""File-level pose steps used by the CLI: normalize a source against a target, render to video."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dancenow.errors import InputError
from dancenow.pose.normalize import NormStats, compute_stats, normalize_poses
from dancenow.pose.openpose_io import read_openpose_json, read_openpose_yaml
from dancenow.pose.render import RenderStyle, overlay_pose, render_pose
from dancenow.pose.schema import PoseSequence
from dancenow.pose.smoothing import smooth_poses
from dancenow.video import VideoWriter, probe, read_frames

TARGET_STATS_FILE = "target_stats.json"


def load_target_stats(path: str | Path) -> NormStats:
    """Target statistics from a poses file (computed after smoothing), or from a prepared
    data dir / trained run dir (their `target_stats.json`)."""
    path = Path(path)
    if path.is_dir():
        f = path / TARGET_STATS_FILE
        if not f.is_file():
            raise InputError(path, f"no {TARGET_STATS_FILE}: not a prepared data dir or trained run dir")
        try:
            return NormStats.from_dict(json.loads(f.read_text()))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f, f"malformed target statistics ({exc})") from None
    seq = PoseSequence.load(path)
    try:
        return compute_stats(smooth_poses(seq))
    except ValueError as exc:
        raise InputError(path, str(exc)) from None


def source_stats(seq: PoseSequence, path: str | Path = "source") -> NormStats:
    try:
        return compute_stats(seq)
    except ValueError as exc:
        raise InputError(path, str(exc)) from None


def load_poses_for(video: str | Path, poses: str | Path) -> PoseSequence:
    """Keypoints a user already has for `video`: a dancenow `.npz`, or a folder of OpenPose
    per-frame JSON files or of the paper's OpenCV YAML files (`*_pose.yml`)."""
    p = Path(poses)
    if not p.is_dir():
        return PoseSequence.load(p)
    m = probe(video)
    if any(p.glob("*_pose.yml")):
        return read_openpose_yaml(p, m.width, m.height, m.fps)
    return read_openpose_json(p, m.width, m.height, m.fps)


def normalize_files(source: str | Path, target: str | Path, output: str | Path, *, smooth: bool = True) -> Path:
    src = PoseSequence.load(source)
    if smooth:
        src = smooth_poses(src)
    tgt_stats = load_target_stats(target)
    out = normalize_poses(src, source_stats(src, source), tgt_stats)
    return out.save(output)


def render_file(poses: str | Path, output: str | Path, *, overlay: str | Path | None = None,
                progress: bool = True, style: RenderStyle = RenderStyle()) -> Path:
    """Render a poses file to an H.264 video (on black, or over `overlay`'s frames)."""
    seq = PoseSequence.load(poses)
    bar = tqdm(total=len(seq), desc="render", unit="frame", disable=not progress)
    with VideoWriter(output, fps=seq.fps) as writer:
        if overlay is None:
            for kp in seq.keypoints:
                writer.write(render_pose(kp, seq.width, seq.height, style))
                bar.update()
        else:
            n = 0
            for frame, kp in zip(read_frames(overlay), seq.keypoints):
                img = frame.image
                if img.shape[1] != seq.width or img.shape[0] != seq.height:
                    sx, sy = img.shape[1] / seq.width, img.shape[0] / seq.height
                    kp = kp * np.array([sx, sy, 1.0], np.float32)
                writer.write(overlay_pose(img, kp, style))
                bar.update()
                n += 1
            if n == 0:
                raise InputError(overlay, "no frames to draw on")
    bar.close()
    return Path(output)
