"""Shared test fixtures: real footage location, GPU auto-skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("DANCENOW_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real clips of ../shared/data (or $DANCENOW_DATA); skips with the reason when absent."""
    d = shared_data_dir()
    if not (d / "README.md").is_file():
        pytest.skip(f"real test footage not found at {d} (set DANCENOW_DATA to its folder)")
    return d


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave pictures for a person to look at (gitignored)."""
    d = REPO / "outputs" / "test-artifacts"
    d.mkdir(parents=True, exist_ok=True)
    return d


def pytest_configure(config):
    # Tests use tiny tensors: one thread each avoids OpenMP oversubscription when the
    # machine is shared (2 threads on a busy 2-core machine made tiny steps 10x slower).
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none here)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# ------------------------------------------------------------------ tiny data for training tests
TINY_SIZE = 64


def make_tiny_poses(n_frames: int = 40, size: int = TINY_SIZE, fps: float = 10.0, phase: float = 0.0):
    """A stick person walking side to side and toward the camera (exact keypoints, no face)."""
    import numpy as np

    from dancenow.pose.schema import B, PoseSequence, empty_keypoints

    kp = empty_keypoints(n_frames)
    s = size / 64.0
    for t in range(n_frames):
        x = 32 + 8 * np.sin(t / 5 + phase)
        depth = 0.85 + 0.15 * np.sin(t / 7 + phase)  # closer: bigger and lower
        ground = 44 + 14 * depth
        h = 46 * depth

        def p(dx, fy):
            return ((x + dx * depth) * s, (ground - fy * h) * s)

        pts = {"Nose": p(0, 0.93), "Neck": p(0, 0.80), "RShoulder": p(-6, 0.80), "LShoulder": p(6, 0.80),
               "RElbow": p(-9, 0.60 + 0.06 * np.sin(t / 3)), "LElbow": p(9, 0.60),
               "RWrist": p(-10, 0.45), "LWrist": p(10, 0.45 + 0.06 * np.cos(t / 3)),
               "MidHip": p(0, 0.45), "RHip": p(-4, 0.45), "LHip": p(4, 0.45), "RKnee": p(-5, 0.22),
               "LKnee": p(5, 0.22), "RAnkle": p(-5, 0.0), "LAnkle": p(5, 0.0), "REye": p(-1.5, 0.95),
               "LEye": p(1.5, 0.95)}
        for name, (a, b) in pts.items():
            kp[t, B[name]] = [a, b, 1.0]
    return PoseSequence(kp, size, size, fps)


def draw_tiny_frames(poses):
    """A 'person' made of thick limbs and a head on a textured wall + floor."""
    import cv2
    import numpy as np

    from dancenow.pose.render import RenderStyle, render_pose

    w, h = poses.width, poses.height
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.zeros((h, w, 3), np.uint8)
    bg[:] = (150, 140, 120)
    bg[yy > 0.62 * h] = (110, 80, 60)
    bg[(xx // 8 + yy // 8) % 2 == 0] += 8
    frames = []
    for kp in poses.keypoints:
        fig = render_pose(kp, w, h, RenderStyle(line_scale=3.0, draw_face=False))
        img = np.where(fig.sum(-1, keepdims=True) > 0, fig, bg).astype(np.uint8)
        nose = kp[0]
        cv2.circle(img, (int(nose[0]), int(nose[1])), max(2, w // 20), (230, 190, 160), -1, cv2.LINE_AA)
        frames.append(img)
    return frames


def write_tone(path, seconds: float = 6.0, rate: int = 44100):
    """A stereo sine-wave AAC file the tests make themselves."""
    import numpy as np

    from dancenow.video import write_audio

    tone = 0.2 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)
    return write_audio(path, np.stack([tone, tone]), rate)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    """(video path, exact poses) of a 40-frame 64x64 clip with an audio track."""
    from dancenow.video import write_video

    d = tmp_path_factory.mktemp("tiny_clip")
    poses = make_tiny_poses()
    tone = write_tone(d / "tone.m4a")
    video = write_video(d / "clip.mp4", draw_tiny_frames(poses), poses.fps, audio_from=tone)
    poses.save(d / "clip.npz")
    return video, poses


@pytest.fixture(scope="session")
def tiny_data(tiny_clip, tmp_path_factory):
    """A prepared data dir of the tiny clip (exact poses, no detector)."""
    from dancenow.data.prepare import PrepareConfig, prepare

    video, poses = tiny_clip
    out = tmp_path_factory.mktemp("tiny_data") / "data"
    prepare(video, out, PrepareConfig(width=TINY_SIZE, height=TINY_SIZE), poses=poses, progress=False)
    return out


def tiny_train_config(**changes):
    from dancenow.config import TrainConfig

    base = TrainConfig(preset="tiny", ngf=8, n_down=2, n_blocks=1, ndf=8, n_layers_D=2, num_D=1, face_ngf=8,
                       face_n_down=2, face_n_blocks=1, face_ndf=8, precision="fp32", lambda_l1=10.0,
                       lambda_face_l1=10.0, use_vgg_loss=False, global_steps=6, face_steps=2, checkpoint_every=3,
                       sample_every=1000, val_every=1000, val_frames=4, log_every=1)
    return base.replace(**changes)


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory):
    """A tiny trained run (global + face stages, a few steps)."""
    from dancenow.train.loop import train

    run = tmp_path_factory.mktemp("tiny_run") / "run"
    train(tiny_data, run, tiny_train_config(use_vgg_loss=True), progress=False)
    return run


# ------------------------------------------------------------------ synthetic videos for the chain and the app
TINY_TRAIN_SETS = ("ngf=8", "n_down=2", "n_blocks=1", "ndf=8", "n_layers_D=2", "num_D=1", "face_ngf=8",
                   "face_n_down=2", "face_n_blocks=1", "face_ndf=8", "precision=fp32", "checkpoint_every=3",
                   "sample_every=3", "val_every=1000", "val_frames=4", "log_every=1")


def set_args(sets=TINY_TRAIN_SETS):
    """--set KEY=VALUE arguments for seconds-long trainings of `dancenow run` / `dancenow app`."""
    return [a for s in sets for a in ("--set", s)]


@pytest.fixture(scope="session")
def synthetic_videos(tmp_path_factory):
    """(target.mp4, source.mp4 with music, silent.mp4): short synthetic dancers the detector finds."""
    from dancenow.eval.synthetic_benchmark import beat_track
    from dancenow.synthetic import make_clip, write_clip
    from dancenow.video import write_video

    d = tmp_path_factory.mktemp("synthetic_videos")
    target = make_clip(1, 7, 4.0, 10.0, 160, varied=True)
    write_clip(target, d / "target.mp4")
    source = make_clip(4, 3, 3.0, 10.0, 160, offset=(30.0, 6.0), scale=0.8)
    music = beat_track(d / "music.m4a", 3.5, source.dance.bpm)
    write_video(d / "source.mp4", source.iter_frames(), 10.0, audio_from=music)
    write_video(d / "silent.mp4", source.iter_frames(), 10.0)
    return d / "target.mp4", d / "source.mp4", d / "silent.mp4"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dancenow_env() -> dict:
    """The environment of a `python -m dancenow` subprocess that imports this checkout's dancenow."""
    src = str(REPO / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p),
            "OMP_NUM_THREADS": "1"}
