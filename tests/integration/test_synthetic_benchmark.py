"""The demo's pipeline end to end, very short: synthetic target and source, the real
detector, a few seconds of training, transfer scored against the exact ground truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dancenow.eval.synthetic_benchmark import SyntheticBenchmarkConfig, run_synthetic
from dancenow.video import probe, read_frames


@pytest.fixture(scope="module")
def short_demo(tmp_path_factory):
    pytest.importorskip("mediapipe")
    out = tmp_path_factory.mktemp("demo")
    cfg = SyntheticBenchmarkConfig(target_seconds=3.0, source_seconds=2.0, size=128, preset="demo",
                                   train_minutes=0.1, pose_eval=False)
    return out, cfg, run_synthetic(out, cfg, progress=False, log=lambda *_: None)


def test_demo_writes_scored_video_and_report(short_demo):
    out, cfg, m = short_demo
    meta = probe(out / "transfer.mp4")
    # source | normalized pose | result | ground truth, one frame per source frame, with the music
    assert (meta.width, meta.height) == (4 * cfg.size, cfg.size)
    assert m["frames"] == round(cfg.source_seconds * cfg.fps) == sum(1 for _ in read_frames(out / "transfer.mp4"))
    assert meta.has_audio
    for key in ("ground_truth", "ground_truth_given_skeleton"):
        g = m[key]
        assert 0.0 < g["ssim_person"] < 1.0 and 0.0 < g["ssim_full_frame"] < 1.0
        assert g["psnr_person"] > 5.0
    assert json.loads((out / "metrics.json").read_text())["frames"] == m["frames"]
    report = (out / "report.md").read_text()
    assert "exact skeleton" in report and f"{m['ground_truth']['ssim_person']:.3f}" in report


def test_demo_truth_panel_is_the_target_on_the_normalized_source_skeleton(short_demo):
    """The ground-truth panel draws the target subject where the normalized (detected) source
    skeleton stands and at its size, not where the source stood in its own frame."""
    out, cfg, _ = short_demo
    from dancenow.video import read_image

    plate = read_image(out / "run" / "background.png").astype(np.int16)
    s = cfg.size
    checked = 0
    for f in read_frames(out / "transfer.mp4"):
        if f.index % 5:
            continue
        skel = f.image[:, s:2 * s].max(axis=2) > 60
        person = np.abs(f.image[:, 3 * s:].astype(np.int16) - plate).sum(axis=2) > 90
        if skel.sum() < 20 or person.sum() < 50:
            continue
        (sy, sx), (py, px) = np.nonzero(skel), np.nonzero(person)
        assert abs(sx.mean() - px.mean()) < 0.08 * s
        skel_h, person_h = np.ptp(sy), np.quantile(py, 0.98) - np.quantile(py, 0.02)
        assert 0.7 < person_h / skel_h < 1.4
        checked += 1
    assert checked >= 3
