"""`dancenow run` end to end on synthetic videos: killed with -9 in training, re-run, finished.

The chain runs as the user runs it (`python -m dancenow run`, a subprocess), with a
seconds-long training (tiny networks through --set). The first run is killed once training
has written a checkpoint past step 0; the second continues from it and writes every output;
a third finds every stage unchanged (changed inputs: tests/unit/test_chain.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from conftest import dancenow_env, set_args

from dancenow.video import probe


def _cmd(target, source, silent, out, minutes="0.2"):
    return [sys.executable, "-m", "dancenow", "run", str(target), str(source), "--source", str(silent), "-o", str(out),
            "--minutes", minutes, "--size", "64", "--eval-frames", "4", "-q", *set_args()]


def _checkpoint_step(out) -> int:
    try:
        return int(json.loads((out / "run" / "checkpoints" / "latest" / "state.json").read_text())["stage_step"])
    except (OSError, ValueError, KeyError):
        return 0


def test_run_killed_in_training_resumes_and_finishes(synthetic_videos, tmp_path):
    target, source, silent = synthetic_videos
    out = tmp_path / "out"
    log = open(tmp_path / "first.log", "wb")
    proc = subprocess.Popen(_cmd(target, source, silent, out), env=dancenow_env(), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while _checkpoint_step(out) == 0 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, "the first run ended before training checkpointed: " + (tmp_path / "first.log").read_text()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _checkpoint_step(out)
    assert killed_at > 0
    ledger = json.loads((out / "chain.json").read_text())
    assert ledger["status"] == "running" and ledger["stages"]["train"]["status"] == "running"

    second = subprocess.run(_cmd(target, source, silent, out), env=dancenow_env(), capture_output=True, text=True)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "prepare: unchanged since the last run, skipped" in second.stdout
    assert "train: resuming" in second.stdout
    ledger = json.loads((out / "chain.json").read_text())
    assert ledger["status"] == "done"
    resumed = ledger["stages"]["train"]["resumed_from"]
    assert resumed["stage_step"] >= killed_at > 0
    for name, audio in (("result.mp4", True), ("side_by_side.mp4", True), ("result-silent.mp4", False)):
        m = probe(out / name)
        assert m.n_frames == 30 and m.has_audio is audio, name
    assert probe(out / "side_by_side.mp4").width > probe(out / "result.mp4").width
    report = (out / "report.md").read_text()
    assert "## Held-out scores" in report and "| train |" in report and "| transfer:silent |" in report
    assert "resumed from its checkpoint" in report and (out / "contact_sheet.png").stat().st_size > 0
    assert (out / "data" / "manifest.json").is_file() and (out / "run" / "config.json").is_file()

    third = subprocess.run(_cmd(target, source, silent, out), env=dancenow_env(), capture_output=True, text=True)
    assert third.returncode == 0, third.stderr[-3000:]
    for stage in ("prepare", "train", "evaluate", "transfer:result", "transfer:silent"):
        assert f"{stage}: unchanged since the last run, skipped" in third.stdout
