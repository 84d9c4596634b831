"""`evaluate` / `compare` end to end on a tiny synthetic target and two tiny trained runs.

The pose detector is replaced by a fake with known answers (it returns the input keypoints
shifted by a known offset, and drops points on generated frames), so the pose metrics have
exact expected values; a last test runs the real detector when it is installed.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from dancenow.data.dataset import PreparedData
from dancenow.errors import InputError
from dancenow.eval import report as rep
from dancenow.eval.lpips import find_lpips_files
from dancenow.eval.metrics import person_height
from dancenow.pose.schema import B, PoseSequence, empty_keypoints

W = H = 64
T = 60  # 10 % validation split -> 6 held-out frames
REAL_SHIFT = (3.0, 4.0)    # 5 px
GEN_SHIFT = (6.0, 8.0)     # 10 px
GEN_DROPPED = (B["RWrist"], B["LWrist"])


def _synthetic_poses() -> PoseSequence:
    kp = empty_keypoints(T)
    for t in range(T):
        x = 32 + 8 * np.sin(t / 5)
        pts = {"Nose": (x, 12), "Neck": (x, 20), "RShoulder": (x - 6, 20), "LShoulder": (x + 6, 20),
               "RElbow": (x - 9, 30 + 3 * np.sin(t / 3)), "LElbow": (x + 9, 30), "RWrist": (x - 10, 38),
               "LWrist": (x + 10, 38 + 3 * np.cos(t / 3)), "MidHip": (x, 38), "RHip": (x - 4, 38),
               "LHip": (x + 4, 38), "RKnee": (x - 5, 48), "LKnee": (x + 5, 48), "RAnkle": (x - 5, 58),
               "LAnkle": (x + 5, 58)}
        for n, (a, b) in pts.items():
            kp[t, B[n]] = [a, b, 1.0]
    return PoseSequence(kp, W, H, 10.0)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny tensors on a shared 2-core machine run several times faster on one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, one_torch_thread) -> dict[str, Path]:
    """A prepared 64x64 synthetic target and two tiny runs (temporal on / off), made once."""
    from dancenow.data.prepare import PrepareConfig, prepare
    from dancenow.pose.render import RenderStyle, render_pose
    from dancenow.config import TrainConfig
    from dancenow.train.loop import train
    from dancenow.video import write_video

    root = tmp_path_factory.mktemp("evaluate")
    seq = _synthetic_poses()
    frames = [render_pose(k, W, H, RenderStyle(line_scale=3.0, background=(90, 120, 150))) for k in seq.keypoints]
    write_video(root / "target.mp4", frames, 10.0)
    data = prepare(root / "target.mp4", root / "data", PrepareConfig(width=W, height=H), poses=seq, progress=False)
    cfg = TrainConfig(preset="tiny", ngf=8, n_down=2, n_blocks=1, ndf=8, n_layers_D=2, num_D=1, face_ngf=8,
                      face_ndf=8, face_n_blocks=1, global_steps=3, face_steps=2, checkpoint_every=5,
                      sample_every=1000, val_every=1000, val_frames=2, precision="fp32", lambda_l1=10.0,
                      use_vgg_loss=False)
    train(data, root / "full", cfg, progress=False)
    train(data, root / "no_temporal", cfg.replace(use_temporal=False), progress=False)
    return {"root": root, "data": data, "full": root / "full", "no_temporal": root / "no_temporal"}


class FakeDetector:
    """Known answers: real frames -> input keypoints + REAL_SHIFT; any other frame ->
    input keypoints + GEN_SHIFT with GEN_DROPPED removed. Consumes the frames it is given."""

    def __init__(self, data_dir: Path):
        self.data = PreparedData.load(data_dir)
        self.calls: list[str] = []

    def __call__(self, frames, *, fps, width, height, progress=True) -> PoseSequence:
        start, _ = self.data.split("val")
        out, kinds = [], []
        for k, frame in enumerate(frames):
            assert frame.shape == (height, width, 3) and frame.dtype == np.uint8
            kp = self.data.poses.keypoints[start + k].copy()
            real = np.array_equal(frame, self.data.read_frame(start + k))
            shift = REAL_SHIFT if real else GEN_SHIFT
            seen = kp[:, 2] > 0
            kp[seen, 0] += shift[0]
            kp[seen, 1] += shift[1]
            if not real:
                kp[list(GEN_DROPPED)] = 0.0
            out.append(kp)
            kinds.append(real)
        self.calls.append("real" if all(kinds) else "generated")
        return PoseSequence(np.stack(out), width, height, fps)


def _strict_json(path: Path) -> dict:
    def reject(name: str):
        raise AssertionError(f"{path} holds {name}")

    return json.loads(path.read_text(), parse_constant=reject)


def _expected_metric_name() -> str:
    f = find_lpips_files()
    return "VGG16-HED-dist" if (f.alexnet is None or f.lin is None) else "LPIPS-alex-v0.1"


# ------------------------------------------------------------------ evaluate
def test_evaluate_end_to_end(tiny, tmp_path):
    det = FakeDetector(tiny["data"])
    out = tmp_path / "eval"
    r = rep.evaluate(tiny["full"], tiny["data"], out, device="cpu", detector=det, progress=False)

    data = PreparedData.load(tiny["data"])
    start, stop = data.split("val")
    assert r.frames == (start, stop) and r.n_frames == 6 and r.size == (W, H)
    assert det.calls == ["real", "generated"]
    for name in ("metrics.json", "report.md", "contact_sheet.png"):
        assert (out / name).is_file()

    # image metrics in range; every held-out frame has a body and a face box here
    assert r.body.frames == 6 and r.body.skipped == 0
    assert r.face.frames + r.face.skipped == 6
    for crop in (r.body, r.face):
        if crop.frames:
            assert -1.0 <= crop.ssim <= 1.0 and crop.ssim < 0.999  # 5 training steps: far from perfect
            assert 0.0 < crop.psnr <= rep.PSNR_CAP_DB
            assert crop.perceptual > 0.0
    assert r.perceptual_metric == _expected_metric_name()
    if r.perceptual_metric == "VGG16-HED-dist":
        assert r.lpips_status and "LPIPS" in r.lpips_status
    assert r.flags["use_temporal"] is True and r.flags["use_face_gan"] is True and r.flags["face_generator"] is True

    # pose metrics: exact answers from the fake detector
    inputs = data.poses.keypoints[start:stop]
    h = person_height(inputs)
    assert r.pose_generated.distance["body"] == pytest.approx(10.0, abs=1e-4)
    assert r.pose_real.distance["body"] == pytest.approx(5.0, abs=1e-4)
    assert r.pose_generated.distance_norm["body"] == pytest.approx(float(np.mean(10.0 / h)), rel=1e-4)
    assert r.pose_generated.missed["body"] == pytest.approx(len(GEN_DROPPED))
    assert r.pose_real.missed["body"] == 0.0
    n_body = int((inputs[:, :25, 2] > rep.CONF_THRESHOLD).sum())
    assert r.pose_generated.pairs["body"] == n_body - 6 * len(GEN_DROPPED)
    assert math.isnan(r.pose_generated.distance["face"])  # the synthetic dancer has no face points
    assert r.pose_real.frames_with_person == 6

    assert math.isfinite(r.flicker_generated) and r.flicker_generated >= 0
    assert math.isfinite(r.flicker_real) and r.flicker_real >= 0

    m = _strict_json(out / "metrics.json")
    assert m["perceptual_metric"] == r.perceptual_metric
    assert m["pose_generated"]["distance"]["face"] is None
    assert m["body"]["ssim"] == pytest.approx(r.body.ssim)
    thirds = m["body_ssim_by_motion"]  # 6 frames: two per third, averaging to the whole
    assert sum(thirds.values()) / 3 == pytest.approx(r.body.ssim)
    assert "Body SSIM by motion" in (out / "report.md").read_text()
    assert m["frames"] == {"start": start, "stop": stop, "count": 6}

    md = (out / "report.md").read_text()
    for text in ("Body SSIM", f"Body {r.perceptual_metric}", "Face SSIM", "Pose distance", "Missed detections",
                 "| Body | Face | Hands | Overall |", "| real |", "Body PSNR", "Flicker", "| full |"):
        assert text in md, text
    if r.lpips_status:
        assert "is not LPIPS" in md and r.lpips_status.splitlines()[0] in md

    from dancenow.video import read_image

    sheet = read_image(out / "contact_sheet.png")
    assert sheet.shape == (6 * H + 5 * 2, 3 * W + 2 * (H // 2), 3)  # + face close-ups (real | generated)
    np.testing.assert_array_equal(sheet[:H, :W], data.read_frame(start))
    np.testing.assert_array_equal(sheet[:H, W:2 * W], data.label(start))


def test_perfect_generator_scores_perfectly(tiny, tmp_path, monkeypatch):
    """A 'model' returning the real frames: SSIM 1, PSNR at the cap, distance 0, flicker = real's."""
    from dancenow.transfer import pipeline

    data = PreparedData.load(tiny["data"])
    start, _ = data.split("val")

    def real_frames(self, poses, *a, **k):
        for i in range(len(poses)):
            yield pipeline.TransferFrame(i, i, poses.keypoints[i], data.label(start + i), data.read_frame(start + i))

    monkeypatch.setattr(pipeline.TransferPipeline, "frames_for", real_frames)
    r = rep.evaluate(tiny["full"], tiny["data"], tmp_path / "perfect", device="cpu",
                     detector=FakeDetector(tiny["data"]), max_frames=4, progress=False)
    assert r.n_frames == 4
    assert r.body.ssim == pytest.approx(1.0) and r.body.psnr == rep.PSNR_CAP_DB
    assert r.body.perceptual == pytest.approx(0.0, abs=1e-6)
    assert r.flicker_generated == pytest.approx(r.flicker_real)
    # the fake detector sees real frames: the generated row equals the real row
    assert r.pose_generated.distance["body"] == pytest.approx(5.0, abs=1e-4)
    assert r.pose_generated.missed["all"] == 0.0
    # the new measures: as sharp as the real frames, and the same person wherever a face is placed
    assert r.sharpness_body == pytest.approx(1.0) and r.sharpness_face == pytest.approx(1.0)
    assert set(r.body_ssim_by_motion) == {"slow", "middle", "fast"}
    assert all(v == pytest.approx(1.0) for v in r.body_ssim_by_motion.values())
    if r.identity is not None:
        assert r.identity.frames + r.identity.skipped == 4
        assert r.identity.frames == 0 or (r.identity.same_person == 1.0 and r.identity.distance == 0.0)
    md = (tmp_path / "perfect" / "report.md").read_text()
    assert "Body sharpness" in md and "Same person" in md


def test_max_frames_limits_the_evaluation(tiny, tmp_path):
    r = rep.evaluate(tiny["no_temporal"], tiny["data"], tmp_path / "e", device="cpu",
                     detector=FakeDetector(tiny["data"]), max_frames=2, progress=False)
    assert r.n_frames == 2 and r.body.frames == 2
    assert r.flags["use_temporal"] is False
    from dancenow.video import read_image

    assert read_image(tmp_path / "e" / "contact_sheet.png").shape[0] == 2 * H + 2


# ------------------------------------------------------------------ compare
def test_compare_two_runs(tiny, tmp_path):
    det = FakeDetector(tiny["data"])
    out = tmp_path / "cmp"
    reports = rep.compare([tiny["full"], tiny["no_temporal"]], tiny["data"], out, device="cpu", detector=det,
                          max_frames=4, progress=False)
    assert [r.name for r in reports] == ["full", "no_temporal"]
    assert det.calls == ["real", "generated", "generated"]  # real frames detected once
    assert reports[0].frames == reports[1].frames
    assert reports[0].pose_real is reports[1].pose_real  # detected and scored once
    for r in reports:
        assert (out / r.name / "report.md").is_file() and (out / r.name / "metrics.json").is_file()
    cj = _strict_json(out / "compare.json")
    assert [x["name"] for x in cj["runs"]] == ["full", "no_temporal"]
    assert [x["flags"]["use_temporal"] for x in cj["runs"]] == [True, False]
    assert cj["frames"]["count"] == 4
    md = (out / "compare.md").read_text()
    assert "| full | yes | yes | yes |" in md
    assert "| no_temporal | no | yes | yes |" in md
    body_rows = [ln for ln in md.splitlines() if ln.startswith(("| full |", "| no_temporal |"))]
    assert len(body_rows) == 2 * 9  # flags, image quality, PSNR, by motion, 2x pose distance, missed, flicker, sharpness+identity
    assert md.count("| real |") == 4  # pose distance (px, normalized), missed detections, flicker


def test_compare_names_runs_with_the_same_folder_name_apart(tiny, tmp_path):
    assert rep._unique_names([tiny["full"], tiny["full"], tiny["no_temporal"]]) == ["full", "full-2", "no_temporal"]


# ------------------------------------------------------------------ bad input
def test_incomplete_run_dir_is_a_clear_input_error(tiny, tmp_path):
    det = FakeDetector(tiny["data"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no config.json"):
        rep.evaluate(empty, tiny["data"], tmp_path / "o", detector=det, progress=False)
    started = tmp_path / "started"
    started.mkdir()
    (started / "config.json").write_text((tiny["full"] / "config.json").read_text())
    with pytest.raises(InputError, match="incomplete run"):
        rep.evaluate(started, tiny["data"], tmp_path / "o", detector=det, progress=False)
    with pytest.raises(InputError, match="not found"):
        rep.compare([tiny["full"], tmp_path / "missing"], tiny["data"], tmp_path / "o", detector=det, progress=False)
    assert det.calls == []  # failed before any detection
    assert not (tmp_path / "o").exists()


def test_bad_data_dir_is_a_clear_input_error(tiny, tmp_path):
    with pytest.raises(InputError, match="manifest.json"):
        rep.evaluate(tiny["full"], tmp_path, tmp_path / "o", detector=FakeDetector(tiny["data"]), progress=False)


def test_json_safe_turns_nan_into_null():
    assert rep.json_safe({"a": math.nan, "b": (1.0, math.inf), "c": np.float32(2.0)}) == {
        "a": None, "b": [1.0, None], "c": 2.0}


# ------------------------------------------------------------------ the real detector
@pytest.mark.skipif(importlib.util.find_spec("dancenow.pose.detect") is None,
                    reason="dancenow.pose.detect (the MediaPipe detector) is not in the tree yet")
def test_evaluate_with_the_real_detector(tiny, tmp_path):
    r = rep.evaluate(tiny["full"], tiny["data"], tmp_path / "real", device="cpu", max_frames=2, progress=False)
    assert r.n_frames == 2
    assert 0 <= r.pose_real.frames_with_person <= 2
    assert (tmp_path / "real" / "report.md").is_file()


def test_evaluate_and_compare_cli_quiet(tiny, tmp_path, capsys):
    from dancenow.cli import main

    assert main(["evaluate", "--model", str(tiny["full"]), "--data", str(tiny["data"]), "-o", str(tmp_path / "e"),
                 "--max-frames", "2", "--device", "cpu", "-q"]) == 0
    assert main(["compare", str(tiny["full"]), str(tiny["no_temporal"]), "--data", str(tiny["data"]),
                 "-o", str(tmp_path / "c"), "--max-frames", "2", "--device", "cpu", "-q"]) == 0
    out, err = capsys.readouterr()
    assert "body SSIM" in out and "compare.md" in out
    assert "frame/s" not in err  # no progress bars
    assert (tmp_path / "e" / "report.md").is_file() and (tmp_path / "c" / "compare.md").is_file()


def test_body_ssim_by_motion_puts_each_frame_in_its_own_third(tiny, tmp_path, monkeypatch):
    """Real frames everywhere but a blank one for the held-out frame that moves most: only the fast
    third loses (the motion is the input pose's, measured from the frame before it)."""
    from dancenow.pose.geometry import body_motion_in
    from dancenow.transfer import pipeline

    data = PreparedData.load(tiny["data"])
    start, _ = data.split("val")
    fastest = int(np.argmax(body_motion_in(data.poses.keypoints, start, start + 6)))

    def frames(self, poses, *a, **k):
        for i in range(len(poses)):
            image = data.read_frame(start + i) * (i != fastest)
            yield pipeline.TransferFrame(i, i, poses.keypoints[i], data.label(start + i), image.astype(np.uint8))

    monkeypatch.setattr(pipeline.TransferPipeline, "frames_for", frames)
    r = rep.evaluate(tiny["full"], tiny["data"], tmp_path / "one_blank", device="cpu",
                     detector=FakeDetector(tiny["data"]), max_frames=6, progress=False)
    thirds = r.body_ssim_by_motion
    assert thirds["slow"] == pytest.approx(1.0) and thirds["middle"] == pytest.approx(1.0)
    assert thirds["fast"] < 0.9
