"""A stopped app restarts its job from the last checkpoint: the job runner with a real worker.

The worker (`dancenow run`, a training job) is killed once it has checkpointed, as when the
app and its workers stop; a new runner on the same folder (the restarted app) queues the job
again, and it finishes with its training resumed past step 0.
"""

from __future__ import annotations

import json
import os
import signal
import time

from conftest import TINY_TRAIN_SETS, dancenow_env

from dancenow.app.jobs import DONE, RUNNING, JobRunner, JobSpec


def _wait(pred, timeout_s=180.0, runner=None):
    deadline = time.time() + timeout_s
    while not pred() and time.time() < deadline:
        if runner is not None:
            runner.tick()
        time.sleep(0.2)
    return pred()


def test_a_restarted_app_resumes_its_interrupted_training(synthetic_videos, tmp_path, monkeypatch):
    for k, v in dancenow_env().items():
        monkeypatch.setenv(k, v)
    target, _, _ = synthetic_videos
    out = tmp_path / "runs" / "one"
    state = out / "run" / "checkpoints" / "latest" / "state.json"
    spec = JobSpec("train", str(target), str(out), 0.15, "cpu", "64", TINY_TRAIN_SETS, 4)
    first = JobRunner(tmp_path)
    job = first.submit(spec)
    first.tick()
    step = lambda: json.loads(state.read_text())["stage_step"] if state.is_file() else 0  # noqa: E731
    assert _wait(lambda: step() > 0, runner=first), first.store.log_path(job.id).read_text()[-2000:]
    os.kill(first.store.get(job.id).pid, signal.SIGKILL)  # the app stopped, its worker with it
    first._procs[job.id].wait()
    killed_at = step()
    assert first.store.get(job.id).status == RUNNING  # as the stopped app left it

    second = JobRunner(tmp_path)  # the app started again
    second.recover()
    assert _wait(lambda: second.store.get(job.id).status not in ("queued", RUNNING), runner=second)
    done = second.store.get(job.id)
    assert done.status == DONE and done.restarts == 1, (done, second.store.log_path(job.id).read_text()[-2000:])
    train = json.loads((out / "chain.json").read_text())["stages"]["train"]
    assert train["status"] == "done" and train["resumed_from"]["stage_step"] >= killed_at > 0
    assert (out / "report.md").is_file()
