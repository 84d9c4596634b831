"""Transfer through a tiny trained model: length, fps, size, audio, gaps, scene cuts, bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from conftest import make_tiny_poses
from dancenow.cli import main
from dancenow.errors import InputError
from dancenow.pose.schema import PoseSequence, empty_keypoints
from dancenow.pose.geometry import resample_indices
from dancenow.run import load_trained
from dancenow.transfer.pipeline import (TransferConfig, TransferFrame, TransferPipeline, scene_segments,
                                         transfer)
from dancenow.video import probe, read_frames, read_image


def test_transfer_length_fps_size_and_audio(tiny_clip, tiny_run, tmp_path):
    video, poses = tiny_clip
    r = transfer(video, tiny_run, tmp_path / "out.mp4", poses=poses, progress=False)
    m = probe(r.output)
    assert (r.frames, m.width, m.height) == (40, 64, 64)
    assert m.fps == pytest.approx(10.0)
    assert sum(1 for _ in read_frames(r.output)) == 40
    assert m.has_audio and m.audio_duration == pytest.approx(4.0, abs=0.1)  # the 6 s tone, trimmed
    assert r.segments == 1 and r.frames_without_person == 0


def test_side_by_side_cut_and_fps(tiny_clip, tiny_run, tmp_path):
    video, poses = tiny_clip
    cfg = TransferConfig(side_by_side=True, start=1.0, end=2.0, fps=20.0, audio=False)
    r = transfer(video, tiny_run, tmp_path / "sbs.mp4", cfg, poses=poses, progress=False)
    m = probe(r.output)
    assert (m.width, m.height, r.frames) == (3 * 64, 64, 21)
    assert not m.has_audio


def test_pipeline_frames_follow_the_plan_and_match_the_video(tiny_clip, tiny_run, tmp_path):
    """frames(plan) is what transfer writes: one TransferFrame per output frame, in order,
    mapped to the planned source frames, the same on every pass."""
    video, poses = tiny_clip
    cfg = TransferConfig(start=1.0, end=2.0, fps=20.0, audio=False)
    pipe = TransferPipeline(load_trained(tiny_run), cfg)
    plan = pipe.plan(poses, video)
    frames = list(pipe.frames(plan))
    assert all(isinstance(f, TransferFrame) for f in frames)
    assert len(frames) == len(plan) == len(plan.indices) == 21 and plan.fps == pytest.approx(20.0)
    assert [f.index for f in frames] == list(range(21))
    assert [f.source_index for f in frames] == plan.indices.tolist()
    np.testing.assert_array_equal(np.stack([f.keypoints for f in frames]), plan.normalized.keypoints[plan.indices])
    assert all(f.image.shape == f.label.shape == (64, 64, 3) for f in frames)
    again = list(pipe.frames(plan))
    assert all(np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label) for a, b in zip(frames, again))
    r = transfer(video, tiny_run, tmp_path / "o.mp4", cfg, poses=poses, progress=False)
    written = [f.image.astype(float) for f in read_frames(r.output)]
    assert r.frames == len(written) == len(frames)
    err = np.array([[np.abs(w - f.image).mean() for f in frames] for w in written])
    assert err.diagonal().max() < 8.0  # H.264 at crf 18 on the untrained tiny model's noisy 64 px frames
    assert err.argmin(axis=1).tolist() == list(range(21))  # each decoded frame is nearest its own TransferFrame


def test_gap_fades_to_background_and_cut_restarts(tiny_clip, tiny_run, tmp_path):
    video, poses = tiny_clip
    kp = poses.keypoints.copy()
    kp[10:22] = 0.0  # 1.2 s without a person: longer than the 0.25 s gap filling
    present = kp[:, :, 2] > 0
    kp[30:, :, 0] = np.where(present[30:], kp[30:, :, 0] - 25, 0)  # the whole skeleton jumps: a cut
    src = PoseSequence(kp, poses.width, poses.height, poses.fps)
    assert scene_segments(src.keypoints)[29] != scene_segments(src.keypoints)[30]
    r = transfer(video, tiny_run, tmp_path / "gap.mp4", TransferConfig(fade_s=0.2, audio=False), poses=src,
                 progress=False)
    assert r.frames_without_person == 12 and r.segments >= 2
    frames = [f.image.astype(float) for f in read_frames(r.output)]
    bg = read_image(tiny_run / "background.png").astype(float)
    assert np.abs(frames[18] - bg).mean() < 3.0          # empty stage in the long gap
    assert np.abs(frames[11] - bg).mean() > np.abs(frames[18] - bg).mean()  # fading, not cut to black
    assert np.abs(frames[25] - bg).mean() > 3.0          # the target is back


def test_resample_indices():
    ts = np.arange(10) / 5.0
    idx, fps = resample_indices(ts, None, None, None)
    assert idx.tolist() == list(range(10)) and fps == pytest.approx(5.0)
    idx, fps = resample_indices(ts, 10.0, 0.4, 1.0)
    assert idx.tolist() == [2, 2, 3, 3, 4, 4, 5]


def test_source_without_person(tiny_clip, tiny_run, tmp_path):
    video, poses = tiny_clip
    nobody = PoseSequence(empty_keypoints(len(poses)), poses.width, poses.height, poses.fps)
    with pytest.raises(InputError, match="no person detected"):
        transfer(video, tiny_run, tmp_path / "x.mp4", poses=nobody, progress=False)
    assert not (tmp_path / "x.mp4").exists()


def test_incomplete_or_incompatible_run(tiny_clip, tiny_run, tmp_path):
    video, poses = tiny_clip
    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken)
    shutil.rmtree(broken / "checkpoints" / "latest" / "generator")
    with pytest.raises(InputError, match="incomplete run"):
        transfer(video, broken, tmp_path / "x.mp4", poses=poses, progress=False)
    old = tmp_path / "old"
    shutil.copytree(tiny_run, old)
    cfg = (old / "config.json").read_text().replace('"dancenow_version": "0.1.0"', '"dancenow_version": "9.0.0"')
    (old / "config.json").write_text(cfg)
    with pytest.raises(InputError, match="incompatible"):
        transfer(video, old, tmp_path / "x.mp4", poses=poses, progress=False)
    assert not (tmp_path / "x.mp4").exists()


def test_unwritable_output_via_cli(tiny_clip, tiny_run, tmp_path, capsys):
    video, poses = tiny_clip
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    poses_path = poses.save(tmp_path / "p.npz")
    rc = main(["transfer", str(video), "--model", str(tiny_run), "-o", str(blocker / "out.mp4"),
               "--poses", str(poses_path), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "out.mp4" in err[0] and err[0].startswith("dancenow: error:")
    rc = main(["transfer", str(video), "--model", str(tmp_path / "nowhere"), "-o", str(tmp_path / "o.mp4"), "-q"])
    assert rc == 2 and "not a trained run" in capsys.readouterr().err


def test_transfer_other_subject_size(tiny_run, tmp_path):
    """A source of another size and position is normalized into the target's frame."""
    from conftest import draw_tiny_frames
    from dancenow.video import write_video

    src = make_tiny_poses(n_frames=20, size=128, phase=1.0)
    video = write_video(tmp_path / "src.mp4", draw_tiny_frames(src), src.fps)
    r = transfer(video, tiny_run, tmp_path / "o.mp4", TransferConfig(audio=False), poses=src, progress=False)
    m = probe(r.output)
    assert (m.width, m.height, r.frames) == (64, 64, 20)


def test_transfer_auto_backend_says_which_and_matches_eager(tiny_clip, tiny_run, tmp_path):
    video, poses = tiny_clip
    cfg = TransferConfig(start=0.0, end=1.5, audio=False)
    ref = [f.image for f in TransferPipeline(load_trained(tiny_run), cfg).frames(
        TransferPipeline(load_trained(tiny_run), cfg).plan(poses, video))]
    pipe = TransferPipeline(load_trained(tiny_run), TransferConfig(start=0.0, end=1.5, audio=False, backend="auto"))
    out = [f.image for f in pipe.frames(pipe.plan(poses, video))]
    assert pipe.choice is not None and pipe.choice.backend in ("torch", "onnx", "openvino")
    assert max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(out, ref)) <= 2
    rc = main(["transfer", str(video), "--model", str(tiny_run), "-o", str(tmp_path / "o.mp4"),
               "--poses", str(poses.save(tmp_path / "p.npz")), "--backend", "onnx", "--end", "1", "-q"])
    assert rc == 0 and (tmp_path / "o.mp4").is_file()


def test_export_via_cli(tiny_run, tmp_path, capsys):
    rc = main(["export", str(tiny_run), "-o", str(tmp_path / "m.onnx")])
    out = capsys.readouterr().out
    assert rc == 0 and (tmp_path / "m.onnx").is_file() and (tmp_path / "m.face.onnx").is_file() and "m.onnx" in out
    assert main(["export", str(tmp_path / "nowhere"), "-o", str(tmp_path / "x.onnx")]) == 2
    assert not (tmp_path / "x.onnx").exists()
