"""The Live tab's server side (no browser): webcam frames into the engine's one-slot mailbox, the newest out.

The engine is held inside a frame with events (no timings): frames sent meanwhile replace each
other, the engine then takes only the newest, and the page's handler never waits for it.
"""

from __future__ import annotations

import threading

import numpy as np

from conftest import make_tiny_poses

from dancenow.app.live import STATE_TEXT, LiveSession, frame_html
from dancenow.run import load_trained
from dancenow.transfer.backend import Generator
from dancenow.transfer.live import LiveConfig, LiveEngine


class ExactPoses:
    """The clip's exact keypoints in frame order (a PoseDetector)."""

    name, version = "exact", "1"

    def __init__(self, keypoints):
        self.keypoints, self.i = keypoints, 0

    def detect(self, image):
        kp = self.keypoints[min(self.i, len(self.keypoints) - 1)]
        self.i += 1
        return kp

    def close(self):
        pass


class HeldEngine:
    """A LiveEngine whose pose stage waits on its first frame until `release` is set (`entered`:
    it took that frame)."""

    def __init__(self, engine: LiveEngine):
        self.engine, self.entered, self.release, self.taken = engine, threading.Event(), threading.Event(), []
        self.cfg = engine.cfg

    def pose(self, image, t):
        self.taken.append(t)
        self.entered.set()
        self.release.wait(timeout=30)
        return self.engine.pose(image, t)

    def generate(self, pose):
        return self.engine.generate(pose)

    def close(self):
        self.engine.close()


def test_frames_sent_while_the_engine_works_are_dropped_and_the_newest_is_shown(tiny_run):
    model = load_trained(tiny_run)
    engine = LiveEngine(model, LiveConfig(calibration_s=0.0), detector=ExactPoses(make_tiny_poses(40).keypoints),
                        generator=Generator(model))
    held = HeldEngine(engine)
    live = LiveSession("tiny", lambda: held)
    frame = np.zeros((64, 64, 3), np.uint8)
    try:
        live.submit(frame, 0.0)
        assert held.entered.wait(timeout=30)
        assert live.status().frame is None  # nothing generated yet, and asking did not wait
        for i in range(1, 5):
            live.submit(frame, i / 10.0)  # the engine is busy: each replaces the one waiting
        st = live.status()
        assert (st.received, st.dropped, st.generated) == (5, 3, 0)
        assert "Loading the model" in st.text("tiny")
        held.release.set()
        live.box.close()  # no more frames: the worker finishes the waiting one and stops
        live._thread.join(timeout=30)
        st = live.status()
        assert held.taken == [0.0, 0.4]  # the first, then only the newest
        assert st.generated == 2 and st.frame.timestamp == 0.4 and st.error is None
        assert st.frame.state in STATE_TEXT and "2 frames generated" in st.text("tiny")
    finally:
        held.release.set()
        live.close()


def test_an_engine_that_fails_shows_one_line_in_the_page():
    def broken():
        raise RuntimeError("no model here\nsecond line")

    live = LiveSession("gone", broken)
    live.close()
    text = live.status().text("gone")
    assert text == "**Error:** live generation stopped: RuntimeError: no model here"


def test_frame_html_is_an_inline_jpeg():
    html = frame_html(np.full((32, 48, 3), 200, np.uint8))
    assert "src='data:image/jpeg;base64,/9j/" in html and "id='live-frame'" in html


def test_the_live_handler_needs_a_trained_run(tmp_path):
    from dancenow.app.jobs import JobRunner
    from dancenow.app.web import App, AppConfig

    app = App(AppConfig(data_dir=tmp_path), JobRunner(tmp_path))
    html, text = app.live_frame(np.zeros((48, 64, 3), np.uint8), "no-such-run", "page-1")
    assert html is None and text.startswith("**Error:** choose a trained run")
    assert app.live_frame(None, "no-such-run", "page-1") == (None, "Start the camera above.")
