"""The app's job runner and upload checks, without a browser: real worker processes, real files."""

from __future__ import annotations

import dataclasses
import os
import time

import pytest

from dancenow.app.jobs import DONE, FAILED, QUEUED, RUNNING, Job, JobRunner, JobSpec, JobStore
from dancenow.app.media import store_upload
from dancenow.app.web import host_warning
from dancenow.errors import InputError


def _spec(tmp_path, target, name="r"):
    return JobSpec("train", str(target), str(tmp_path / "runs" / name), 0.1, "cpu", "64", ("ngf=8",), 4)


def test_the_worker_command_is_dancenow_run_with_the_job_options(tmp_path):
    cmd = dataclasses.replace(_spec(tmp_path, "/t.mp4"), source="/s.mp4").command()
    assert cmd[1:6] == ["-m", "dancenow", "run", "/t.mp4", "-o"]
    assert cmd[cmd.index("--minutes") + 1] == "0.1" and cmd[cmd.index("--set") + 1] == "ngf=8"
    assert cmd[-2:] == ["--source", "/s.mp4"]


def test_one_job_at_a_time_the_rest_queue_and_a_failure_reads_as_one_line(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    runner = JobRunner(tmp_path)
    first = runner.submit(_spec(tmp_path, bad, "a"))
    second = runner.submit(_spec(tmp_path, bad, "b"))
    runner.tick()
    assert runner.store.get(first.id).status == RUNNING and runner.store.get(second.id).status == QUEUED
    assert runner.queue_position(second.id) == 1
    deadline = time.time() + 60
    while runner.store.get(second.id).status != FAILED and time.time() < deadline:
        runner.tick()
        time.sleep(0.2)
    for job in (runner.store.get(first.id), runner.store.get(second.id)):
        assert job.status == FAILED and "notes.mp4: not a video file" in job.error, job.error


def test_a_job_whose_worker_died_with_the_app_is_queued_again_to_resume(tmp_path):
    store = JobStore(tmp_path)
    dead = store.save(Job("deadbeef0000", _spec(tmp_path, "/t.mp4"), time.time(), RUNNING, pid=2**22 + 7))
    alive = store.save(Job("alive0000000", dataclasses.replace(_spec(tmp_path, "/t.mp4", "x"), out_dir="python"),
                           time.time(), RUNNING, pid=os.getpid()))  # this process's command line holds "python"
    JobRunner(tmp_path).recover()
    d, a = store.get(dead.id), store.get(alive.id)
    assert d.status == QUEUED and d.restarts == 1 and "continues from its last checkpoint" in d.notes[0]
    assert a.status == RUNNING and a.pid == os.getpid()


def test_uploads_are_checked_and_stored_under_a_content_name(tmp_path, tiny_clip):
    video, _ = tiny_clip
    app = tmp_path / "app"
    stored = store_upload(video, app, 10**8, "the target video")
    assert stored.parent == app / "uploads" and stored.name != video.name and stored.suffix == ".mp4"
    assert stored.read_bytes() == video.read_bytes()
    with pytest.raises(InputError, match=r"^the target video: is 0\.\d MB, over this app's upload limit of 0 MB"):
        store_upload(video, app, 1000, "the target video")
    text = tmp_path / "x.mp4"
    text.write_text("hello")
    with pytest.raises(InputError, match="^the source video: not a video file"):
        store_upload(text, app, 10**8, "the source video")


def test_listening_beyond_loopback_warns():
    assert host_warning("127.0.0.1", 7860) is None
    assert "anyone who can reach this machine on port 7860" in host_warning("0.0.0.0", 7860)


def test_a_video_without_a_person_is_refused_with_a_clear_message(tmp_path):
    import numpy as np

    from dancenow.app.media import skeleton_preview
    from dancenow.video import write_video

    empty = write_video(tmp_path / "room.mp4", [np.full((96, 96, 3), 120, np.uint8)] * 8, 8.0)
    with pytest.raises(InputError, match="^the target video: no person was found in any of 8 frames"):
        skeleton_preview(empty, "the target video")


def test_a_worker_stopped_by_a_signal_is_queued_again_not_failed(tmp_path):
    import subprocess
    import sys

    runner = JobRunner(tmp_path)
    job = runner.store.save(Job("sig000000000", _spec(tmp_path, "/t.mp4"), time.time(), RUNNING, pid=None))
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    runner._procs[job.id] = proc
    runner.store.save(dataclasses.replace(job, pid=proc.pid))
    proc.terminate()
    proc.wait()
    runner._follow(runner.store.get(job.id))
    j = runner.store.get(job.id)
    assert j.status == QUEUED and j.restarts == 1 and "exit code -15" in j.notes[-1]
