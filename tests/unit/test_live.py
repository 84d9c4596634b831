"""Live mode: the online normalizer, the engine's chain restarts, and real-time dropping (counts only)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from conftest import make_tiny_poses

from dancenow.pose.normalize import NormStats, compute_stats
from dancenow.pose.online import OnlineNormalizer, OnlineNormConfig, bounded_step
from dancenow.run import load_trained
from dancenow.transfer.backend import Generator
from dancenow.transfer.live import LatestFrame, LiveConfig, LiveEngine, drive
from dancenow.video import read_frames


class ExactPoses:
    """A PoseDetector giving the clip's exact keypoints in frame order (zeros: nobody in view)."""

    name, version = "exact", "1"

    def __init__(self, keypoints: np.ndarray):
        self.keypoints, self.i = keypoints, 0

    def detect(self, image: np.ndarray) -> np.ndarray:
        kp = self.keypoints[min(self.i, len(self.keypoints) - 1)]
        self.i += 1
        return kp

    def close(self) -> None:
        pass


def test_bounded_step_never_moves_more_than_allowed():
    a = NormStats(100.0, 50.0, 80.0, 40.0, 30.0, 200, 200, 10)
    b = NormStats(160.0, 10.0, 81.0, 40.0, 30.0, 200, 200, 20)
    s = bounded_step(a, b, 5.0)
    assert (s.ankle_close, s.ankle_far, s.height_close, s.height_far) == (105.0, 45.0, 81.0, 40.0)


def test_online_normalizer_calibrates_then_moves_at_a_bounded_rate():
    poses = make_tiny_poses(200, fps=10.0)
    target = compute_stats(make_tiny_poses(40, phase=2.0))
    cfg = OnlineNormConfig(calibration_s=2.0, max_rate=0.02, update_every_s=0.5)
    norm = OnlineNormalizer(target, poses.width, poses.height, cfg)
    out, stats = [], []
    for t, kp in enumerate(poses.keypoints):
        out.append(norm.update(kp, t / 10.0))
        stats.append(norm.stats)
    assert all(o is None for o in out[:20]) and out[25] is not None  # 2 s of calibration, then poses
    seen = [s for s in stats if s is not None]
    for a, b in zip(seen[:-1], seen[1:]):  # per frame (0.1 s) at most 0.02 x 64 px/s x 0.5 s between updates
        assert max(abs(a.ankle_close - b.ankle_close), abs(a.ankle_far - b.ankle_far)) <= 0.02 * 64 * 0.5 + 1e-6
    full = compute_stats(poses)
    assert abs(seen[-1].ankle_far - full.ankle_far) < abs(seen[0].ankle_far - full.ankle_far) + 1e-6
    assert norm.update(np.zeros_like(poses.keypoints[0]), 20.1) is None  # nobody in view


def test_engine_restarts_the_chain_when_the_person_comes_back(tiny_run):
    model = load_trained(tiny_run)
    kp = make_tiny_poses(40).keypoints.copy()
    kp[22:27] = 0  # the person leaves for half a second
    engine = LiveEngine(model, LiveConfig(calibration_s=1.0), detector=ExactPoses(kp), generator=Generator(model))
    frames = [engine.process(np.zeros((64, 64, 3), np.uint8), t / 10.0) for t in range(40)]
    states = [f.state for f in frames]
    assert states[:10] == ["calibrating"] * 10 and states[15] == "dancing"
    assert states[22:27] == ["no person"] * 5 and states[27] == "dancing"
    assert [t for t, f in enumerate(frames) if f.chain_start] == [states.index("dancing"), 27]
    assert np.array_equal(frames[26].image, model.background)  # faded out to the plate
    assert all(f.image.shape == (64, 64, 3) for f in frames)


class SlowEngine:
    """Wraps a LiveEngine so that each frame takes `seconds` (a camera faster than generation)."""

    def __init__(self, engine: LiveEngine, seconds: float):
        self.engine, self.seconds, self.generator = engine, seconds, engine.generator
        self.active, self.max_active = 0, 0
        self.lock = threading.Lock()

    def process(self, image, t):
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        time.sleep(self.seconds)
        out = self.engine.process(image, t)
        with self.lock:
            self.active -= 1
        return out


def test_live_from_a_file_at_its_frame_rate_drops_frames_instead_of_queueing(tiny_run, tiny_clip):
    video, poses = tiny_clip  # 40 frames at 10 frames/s
    model = load_trained(tiny_run)
    engine = LiveEngine(model, LiveConfig(calibration_s=0.5), detector=ExactPoses(poses.keypoints),
                        generator=Generator(model))
    slow = SlowEngine(engine, 0.25)  # 2.5 frame intervals per frame
    shown = []
    stats = drive(slow, ((f.image, f.time) for f in read_frames(video)), shown.append, realtime=True)
    assert stats.frames_read == 40 and stats.frames_shown == len(shown)
    assert stats.frames_dropped == 40 - stats.frames_shown and stats.frames_dropped >= 10
    assert stats.max_held == 1 and slow.max_active == 1
    assert stats.max_lag_frames <= 4  # the frame shown is never more than a few frames behind the reader
    ts = [f.timestamp for f in shown]
    assert ts == sorted(ts)  # newest first, never out of order


def test_mailbox_keeps_only_the_newest():
    box = LatestFrame()
    for i in range(5):
        box.put(i)
    assert box.take() == 4 and box.dropped == 4 and box.put_count == 5
    box.close()
    assert box.take() is None


def test_mjpeg_server_serves_the_newest_frame_on_localhost():
    import urllib.request

    from dancenow.transfer.live import LiveFrame, MjpegServer

    server = MjpegServer(0)
    try:
        page = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=5).read()
        assert b"/stream" in page
        frame = LiveFrame(0.0, np.full((32, 48, 3), 200, np.uint8), None, "dancing", True)
        stream = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/stream", timeout=5)
        feeder = threading.Timer(0.2, server, args=(frame,))
        feeder.start()
        head = stream.read(64)
        assert head.startswith(b"--frame\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8")  # a JPEG follows
        stream.close()
        feeder.join()
    finally:
        server.close()


def test_live_needs_somewhere_to_show_frames(tiny_run):
    from dancenow.errors import DancenowError
    from dancenow.transfer.live import run_live

    with pytest.raises(DancenowError, match="--window, --serve and/or --output"):
        run_live(tiny_run, 0)
