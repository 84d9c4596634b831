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


def test_chain_restarts_on_reentry_even_when_its_first_poses_were_dropped(tiny_run):
    model = load_trained(tiny_run)
    kp = make_tiny_poses(40).keypoints.copy()
    kp[22:27] = 0
    engine = LiveEngine(model, LiveConfig(calibration_s=1.0), detector=ExactPoses(kp), generator=Generator(model))
    poses = [engine.pose(np.zeros((64, 64, 3), np.uint8), t / 10.0) for t in range(40)]
    assert [p.entry for p in poses[20:30]] == [1, 1] + [1] * 5 + [2, 2, 2]
    # generation sees every other pose of the first entry and none of the exit nor the re-entry's first two
    shown = [engine.generate(p) for t, p in enumerate(poses) if (t < 22 and t % 2 == 0) or t >= 29]
    starts = [f.timestamp for f in shown if f.chain_start]
    assert starts == [poses[next(t for t, p in enumerate(poses) if p.state == "dancing" and t % 2 == 0)].timestamp,
                      poses[29].timestamp]


class SlowEngine:
    """Wraps a LiveEngine so that each stage takes `pose_s` / `generate_s` seconds, and records
    how many calls of each stage were running at once."""

    def __init__(self, engine: LiveEngine, generate_s: float, pose_s: float = 0.0):
        self.engine, self.generator = engine, engine.generator
        self.pose_s, self.generate_s = pose_s, generate_s
        self.active = {"pose": 0, "generate": 0}
        self.max_active = {"pose": 0, "generate": 0}
        self.overlapped = False  # a pose call and a generate call were running at the same time
        self.poses = 0
        self.lock = threading.Lock()

    def _run(self, stage: str, seconds: float, fn, *args):
        with self.lock:
            self.active[stage] += 1
            self.max_active[stage] = max(self.max_active[stage], self.active[stage])
            self.overlapped |= self.active["pose"] > 0 and self.active["generate"] > 0
        time.sleep(seconds)
        out = fn(*args)
        with self.lock:
            self.active[stage] -= 1
        return out

    def pose(self, image, t):
        self.poses += 1
        return self._run("pose", self.pose_s, self.engine.pose, image, t)

    def generate(self, pose):
        return self._run("generate", self.generate_s, self.engine.generate, pose)

    def process(self, image, t):
        return self.generate(self.pose(image, t))


@pytest.mark.parametrize("pipelined", [True, False])
def test_live_from_a_file_at_its_frame_rate_drops_frames_instead_of_queueing(tiny_run, tiny_clip, pipelined):
    video, poses = tiny_clip  # 40 frames at 10 frames/s
    model = load_trained(tiny_run)
    engine = LiveEngine(model, LiveConfig(calibration_s=0.5), detector=ExactPoses(poses.keypoints),
                        generator=Generator(model))
    slow = SlowEngine(engine, 0.25)  # 2.5 frame intervals per frame
    shown = []
    stats = drive(slow, ((f.image, f.time) for f in read_frames(video)), shown.append, realtime=True,
                  pipelined=pipelined)
    assert stats.frames_read == 40 and stats.frames_shown == len(shown)
    assert stats.frames_dropped == 40 - stats.frames_shown and stats.frames_dropped >= 10
    assert stats.max_held == 1 and slow.max_active == {"pose": 1, "generate": 1}
    assert stats.max_lag_frames <= 5  # the frame shown is never more than a few frames behind the reader
    ts = [f.timestamp for f in shown]
    assert ts == sorted(ts)  # newest first, never out of order
    assert slow.poses == stats.frames_shown  # no pose work on a frame that was then dropped


def test_pipelined_live_overlaps_pose_and_generation(tiny_run, tiny_clip):
    video, poses = tiny_clip
    model = load_trained(tiny_run)
    frames = [(f.image, f.time) for f in read_frames(video)]
    runs = {}
    for pipelined in (False, True):
        engine = LiveEngine(model, LiveConfig(calibration_s=0.5), detector=ExactPoses(poses.keypoints),
                            generator=Generator(model))
        slow = SlowEngine(engine, 0.12, pose_s=0.12)
        stats = drive(slow, frames, lambda f: None, realtime=True, pipelined=pipelined)
        runs[pipelined] = slow
        assert stats.frames_shown >= 1 and stats.frames_read == 40
    assert runs[True].overlapped and not runs[False].overlapped


def test_a_pipelined_run_stopped_early_ends_its_pose_stage_at_once(tiny_run, tiny_clip):
    video, poses = tiny_clip
    model = load_trained(tiny_run)
    frames = [(f.image, f.time) for f in read_frames(video)]

    def endless():  # a camera: frames keep coming after the run is told to stop
        for i in range(100000):
            yield frames[i % len(frames)][0], i / 30.0

    engine = LiveEngine(model, LiveConfig(calibration_s=0.2), detector=ExactPoses(poses.keypoints),
                        generator=Generator(model))
    slow = SlowEngine(engine, 0.06, pose_s=0.03)
    stats = drive(slow, endless(), lambda f: None, realtime=True, max_seconds=0.5, pipelined=True)
    calls = slow.poses
    assert stats.frames_shown >= 1
    assert not any(t.name == "live-pose" and t.is_alive() for t in threading.enumerate())
    time.sleep(0.2)
    assert slow.poses == calls  # nothing runs the detector after drive returned


def test_train_cli_without_background_turns_the_matte_loss_off(tiny_data, tmp_path):
    from dancenow.cli import main
    from dancenow.run import RunDir

    sets = [x for s in ("ngf=8", "n_down=2", "n_blocks=1", "ndf=8", "num_D=1", "precision=fp32") for x in ("--set", s)]
    rc = main(["train", str(tiny_data), "-o", str(tmp_path / "run"), "--preset", "cpu", "--no-background",
               "--no-face-gan", "--max-steps", "2", "-q", *sets])
    cfg = RunDir(tmp_path / "run").load_config().train
    assert rc == 0 and cfg.lambda_matte == 0.0 and not cfg.use_background


class FailingPoses(ExactPoses):
    def detect(self, image):
        if self.i == 12:
            raise RuntimeError("detector broke")
        return super().detect(image)


def test_an_error_in_the_pose_stage_ends_the_live_run_with_it(tiny_run, tiny_clip):
    video, poses = tiny_clip
    model = load_trained(tiny_run)
    engine = LiveEngine(model, LiveConfig(calibration_s=0.5), detector=FailingPoses(poses.keypoints),
                        generator=Generator(model))
    with pytest.raises(RuntimeError, match="detector broke"):
        drive(engine, ((f.image, f.time) for f in read_frames(video)), lambda f: None, realtime=True)


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
