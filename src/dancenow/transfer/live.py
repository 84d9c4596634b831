"""Live mirror mode: camera or stream frames -> pose -> normalization -> the target, frame by frame.

The engine (`LiveEngine.process(rgb, timestamp) -> LiveFrame`) is a library object the CLI and
the web app call the same way, one frame at a time:

    engine = LiveEngine(load_trained("runs/me"))
    out = engine.process(rgb_frame, t)     # out.image: (H, W, 3) uint8, out.state

Per frame: MediaPipe in tracking mode (`DetectorConfig.tracking()`: face and hands every other
frame, skipped when out of view), the online normalizer (`dancenow.pose.online`: a short
calibration, then a bounded-rate running update), the stick figure, the generator of the
fastest backend within tolerance (`dancenow.transfer.backend`). The temporal chain restarts
whenever the person was out of view (the generator's previous frame is reset to zeros, as at a
video's start); while nobody is in view the target's plate is shown, faded from the last frame.

The engine works in two stages, `pose` (detect, normalize, draw: the detector and the normalizer)
and `generate` (the generator and its temporal chain); `process` is one after the other.
`run_live` drives an engine from a source in real time with three threads: a reader that puts
each frame into a one-slot mailbox (`LatestFrame`: a newer frame replaces one not yet taken,
which counts as dropped), the pose stage taking the newest frame when it is free, and generation
taking the newest pose result through a second one-slot mailbox (`run_stages`). The stages
overlap, so frames/s approach the slower stage's rather than the sum's; nothing is ever queued,
so latency stays one frame of work per stage plus at most one frame interval.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import cv2
import numpy as np

from dancenow.errors import DancenowError, InputError
from dancenow.pose.detect import DetectorConfig, HolisticDetector, PoseDetector
from dancenow.pose.geometry import person_present
from dancenow.pose.online import OnlineNormalizer, OnlineNormConfig
from dancenow.pose.render import STICK_CHANNELS
from dancenow.run import TrainedModel, load_trained
from dancenow.transfer.backend import face_boxes_for, face_label_for, make_generator
from dancenow.transfer.pipeline import _fade


@dataclass(frozen=True)
class LiveConfig:
    calibration_s: float = 4.0
    backend: str = "auto"
    precision: str = "fp32"
    max_rate: float = 0.05   # normalization statistics move at most this x frame height per second
    fade_s: float = 0.25
    detector: DetectorConfig = field(default_factory=DetectorConfig.tracking)
    pipelined: bool = True       # pose and generation on two threads (`run_stages`): more frames/s,
                                 # about one stage more latency
    generation_threads: int = 0  # the graph runtime's threads (0: torch's count)


@dataclass(frozen=True, eq=False)
class LiveFrame:
    """One processed frame. state: "calibrating", "dancing" or "no person"; chain_start: the
    temporal chain (re)started on this frame; label: the stick figure drawn (None when none)."""

    timestamp: float
    image: np.ndarray
    label: np.ndarray | None
    state: str
    chain_start: bool
    face: np.ndarray | None = None      # the full-resolution face (models that make one), else None
    face_box: np.ndarray | None = None  # where it goes in `image` (see pipeline.upscale_frame)


@dataclass(frozen=True, eq=False)
class LivePose:
    """What the pose stage hands the generation stage. entry: counts the person's entries into
    view (a new value restarts the temporal chain); fps: the camera's frame rate so far; label,
    box, face_label: the stick figure, the face box and the face crop's label (None when no one
    is drawn)."""

    timestamp: float
    state: str
    entry: int
    fps: float
    label: np.ndarray | None = None
    box: np.ndarray | None = None
    face_label: np.ndarray | None = None


class LiveEngine:
    """Frame-by-frame live generation for one model (see the module docstring). One caller per
    stage: `pose` and `generate` may run on two threads, each called from one thread in frame
    order. `detector` defaults to a tracking-mode `HolisticDetector`."""

    def __init__(self, model: TrainedModel, cfg: LiveConfig = LiveConfig(), detector: PoseDetector | None = None,
                 generator: Any | None = None):
        self.model, self.cfg = model, cfg
        self.detector = detector if detector is not None else HolisticDetector(cfg.detector)
        self.generator = generator if generator is not None else make_generator(
            model, cfg.backend, cfg.precision, threads=cfg.generation_threads or None)
        w, h = model.size
        self.plate = model.background if model.background is not None else np.zeros((h, w, 3), np.uint8)
        self._norm: OnlineNormalizer | None = None
        self._norm_cfg = OnlineNormConfig(calibration_s=cfg.calibration_s, max_rate=cfg.max_rate)
        self._fps = 15.0                 # pose stage: the camera's frame rate, the normalizer, entries into view
        self._t: float | None = None
        self._in_view, self._entries = False, 0
        self._last: np.ndarray | None = None  # generation stage: the last frame, the chain's entry
        self._chain_entry = -1
        self._gone = 0

    @property
    def normalizer(self) -> OnlineNormalizer | None:
        return self._norm

    def process(self, image: np.ndarray, timestamp: float) -> LiveFrame:
        """One RGB frame (H, W, 3) uint8 of the camera at `timestamp` (s) -> the generated frame."""
        return self.generate(self.pose(image, timestamp))

    def pose(self, image: np.ndarray, timestamp: float) -> LivePose:
        """Stage 1: detect, normalize, draw. Touches only the detector and the normalizer, so it may
        run on another thread than `generate` (one caller per stage, frames in order)."""
        if self._norm is None:
            self._norm = OnlineNormalizer(self.model.target_stats, image.shape[1], image.shape[0], self._norm_cfg)
        if self._t is not None and timestamp > self._t:
            self._fps = 0.9 * self._fps + 0.1 / (timestamp - self._t)
        self._t = timestamp
        kp = self.detector.detect(image)
        norm = self._norm.update(kp, timestamp)
        if norm is None or not person_present(norm[None])[0]:
            self._in_view = False
            return LivePose(timestamp, "calibrating" if person_present(kp[None])[0] else "no person",
                            self._entries, self._fps)
        if not self._in_view:
            self._in_view, self._entries = True, self._entries + 1
        label = self.model.render_label(norm)
        box = face_boxes_for(self.model, norm[None])[0]
        return LivePose(timestamp, "dancing", self._entries, self._fps, label, box,
                        face_label_for(self.model, norm, box))

    def generate(self, pose: LivePose) -> LiveFrame:
        """Stage 2: the generated frame of a `pose` result. Touches only the generator and the
        temporal chain. The chain restarts on the first pose of each entry into view, even when
        the poses in between were dropped."""
        if pose.label is None:
            return self._empty(pose)
        start = pose.entry != self._chain_entry
        if start:
            self.generator.reset()
        self._chain_entry, self._gone = pose.entry, 0
        self._last, face = self.generator(pose.label, pose.box, pose.face_label)
        return LiveFrame(pose.timestamp, self._last, pose.label[:, :, :STICK_CHANNELS], "dancing", start, face,
                         pose.box if face is not None else None)

    def _empty(self, pose: LivePose) -> LiveFrame:
        """Nobody to draw (or still calibrating): the plate, faded in from the last frame."""
        self._chain_entry = -1
        self._gone += 1
        fade = max(0, int(round(self.cfg.fade_s * pose.fps)))
        return LiveFrame(pose.timestamp, _fade(self._last, self.plate, self._gone, fade), None, pose.state, False)

    def close(self) -> None:
        self.detector.close()


# ------------------------------------------------------------------ real time: a one-slot mailbox
class LatestFrame:
    """A one-slot mailbox between a reader and the engine: `put` replaces a frame not yet taken
    (counted in `dropped`), `take` waits for the newest. Never holds more than one frame."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._closed = False
        self.put_count = 0
        self.dropped = 0
        self.max_held = 0

    def put(self, item: Any) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.put_count += 1
            self.max_held = max(self.max_held, 1)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_empty(self) -> None:
        """Wait until the frame held (if any) has been taken, or the mailbox is closed."""
        with self._cond:
            while self._item is not None and not self._closed:
                self._cond.wait()

    def take(self) -> Any | None:
        """The newest frame (waiting for one), or None once closed and empty."""
        with self._cond:
            while self._item is None and not self._closed:
                self._cond.wait()
            item, self._item = self._item, None
            self._cond.notify_all()
            return item


@dataclass(frozen=True)
class LiveStats:
    """What a live run did. latency: capture of a frame to its generated frame being handed to
    the sinks (s); lag: frames the reader had delivered past the one being shown."""

    frames_read: int
    frames_shown: int
    frames_dropped: int
    max_held: int
    max_lag_frames: int
    seconds: float
    latency_median_s: float
    latency_p95_s: float
    backend: str = ""

    @property
    def fps(self) -> float:
        return self.frames_shown / max(self.seconds, 1e-9)

    def describe(self) -> str:
        return (f"live: {self.frames_shown} of {self.frames_read} frames shown ({self.frames_dropped} dropped), "
                f"{self.fps:.1f} frames/s, latency median {1000 * self.latency_median_s:.0f} ms, "
                f"p95 {1000 * self.latency_p95_s:.0f} ms; {self.backend}")


def _reader(frames: Iterable[tuple[np.ndarray, float]], box: LatestFrame, realtime: bool,
            stop: threading.Event) -> None:
    """Put ((index, capture clock), image, source time) items, paced to the source times if `realtime`."""
    t0 = None
    try:
        for i, (image, t) in enumerate(frames):
            if stop.is_set():
                break
            if realtime:
                now = time.perf_counter()
                t0 = now - t if t0 is None else t0
                if t0 + t > now:
                    time.sleep(t0 + t - now)
            box.put(((i, time.perf_counter()), image, t))
    finally:
        box.close()


def run_stages(engine: LiveEngine, inbox: LatestFrame, emit: Callable[[Any, LiveFrame], None], *,
               pipelined: bool | None = None, poses: LatestFrame | None = None) -> None:
    """Generate a frame for each (meta, RGB image, time s) taken from `inbox` until it closes and
    empties; `emit(meta, frame)` each one on this thread. Pipelined, the pose stage (`engine.pose`:
    detection, normalization, drawing) runs on a worker thread and generation (`engine.generate`)
    on this one, with a one-slot mailbox between them: the two stages overlap (frame t's pose while
    frame t-1 is generated) and nothing queues. The pose stage takes the next camera frame only
    once generation has taken its last result, and then only when generation is about to be free
    (after the generation time less the pose time, both running means): no pose work is spent on
    a frame that would be dropped (that CPU time would slow generation), and the frame taken is
    as new as it can be, so latency stays about one pose plus one generation.
    `poses`: that mailbox, when the caller wants its counts. pipelined None: the engine's
    `LiveConfig.pipelined`. Errors of either stage end the run and are raised here."""
    if not (engine.cfg.pipelined if pipelined is None else pipelined):
        while (item := inbox.take()) is not None:
            emit(item[0], engine.process(item[1], item[2]))
        return
    poses, failed, stopping = poses if poses is not None else LatestFrame(), [], threading.Event()
    took = {"pose": 0.0, "generate": 0.0}  # running means (s) of each stage's time per drawn frame
    drawn = [False]  # the last pose handed over has a figure to generate (generation is busy with it)

    def pose_stage() -> None:
        try:
            while not stopping.is_set():
                poses.wait_empty()
                ahead = 0.9 * (took["generate"] - took["pose"]) if drawn[0] else 0.0
                if ahead > 0 and stopping.wait(min(ahead, 1.0)):
                    break
                if stopping.is_set() or (item := inbox.take()) is None:
                    break
                t = time.perf_counter()
                pose = engine.pose(item[1], item[2])
                if pose.label is not None:
                    took["pose"] = _mean(took["pose"], time.perf_counter() - t)
                drawn[0] = pose.label is not None
                poses.put((item[0], pose))
        except BaseException as exc:  # noqa: BLE001 - raised again on the caller's thread
            failed.append(exc)
        finally:
            poses.close()

    worker = threading.Thread(target=pose_stage, daemon=True, name="live-pose")
    worker.start()
    try:
        while (item := poses.take()) is not None:
            t = time.perf_counter()
            emit(item[0], engine.generate(item[1]))
            if item[1].label is not None:
                took["generate"] = _mean(took["generate"], time.perf_counter() - t)
    finally:
        stopping.set()  # the pose stage ends after the frame it is on (the reader may still be putting)
        inbox.close()
        poses.close()
        worker.join(timeout=10)
    if failed:
        raise failed[0]


def _mean(mean: float, value: float) -> float:
    return value if mean == 0.0 else 0.8 * mean + 0.2 * value


def drive(engine: LiveEngine, frames: Iterable[tuple[np.ndarray, float]], sink: Callable[[LiveFrame], None],
          *, realtime: bool = True, max_seconds: float | None = None, pipelined: bool | None = None) -> LiveStats:
    """Run `engine` on `frames` ((RGB image, time s) pairs) as they come, newest first, never
    queueing: frames arriving while the engine works replace each other (dropped). Pipelined
    (None: the engine's `LiveConfig.pipelined`), pose and generation run on two threads (`run_stages`)."""
    box, poses, stop = LatestFrame(), LatestFrame(), threading.Event()
    reader = threading.Thread(target=_reader, args=(frames, box, realtime, stop), daemon=True)
    latencies, max_lag, shown = [], 0, 0
    start = time.perf_counter()

    def emit(meta: tuple[int, float], frame: LiveFrame) -> None:
        nonlocal max_lag, shown
        i, captured = meta
        sink(frame)
        latencies.append(time.perf_counter() - captured)
        max_lag = max(max_lag, box.put_count - 1 - i)
        shown += 1
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            raise _Enough

    reader.start()
    try:
        run_stages(engine, box, emit, pipelined=pipelined, poses=poses)
    except (KeyboardInterrupt, _Enough):  # Ctrl-C (or q in the window) ends a live run normally
        pass
    finally:
        stop.set()
        box.close()
        reader.join(timeout=5)
    lat = np.array(latencies or [0.0])
    choice = getattr(engine.generator, "choice", None)
    return LiveStats(box.put_count, shown, box.put_count - shown, max(box.max_held, poses.max_held), max_lag,
                     time.perf_counter() - start, float(np.median(lat)), float(np.percentile(lat, 95)),
                     choice.describe() if choice else "")


class _Enough(Exception):
    """`drive`'s max_seconds reached."""


# ------------------------------------------------------------------ sources
def camera_frames(index: int) -> Iterator[tuple[np.ndarray, float]]:
    """RGB frames of camera `index`, timed by the clock when read (the camera sets the pace)."""
    cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        raise DancenowError(f"camera {index}: cannot be opened (no camera, or no permission); use --input FILE_OR_URL")
    return _capture(cap)


def _capture(cap: Any) -> Iterator[tuple[np.ndarray, float]]:
    t0 = time.perf_counter()
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), time.perf_counter() - t0
    finally:
        cap.release()


def open_source(source: int | str) -> tuple[Iterator[tuple[np.ndarray, float]], bool, float]:
    """(frames, play in real time?, frame rate) for a camera index, a video file or a stream URL."""
    if isinstance(source, int):
        return camera_frames(source), False, 30.0
    path = Path(source)
    if path.exists():
        from dancenow.video import probe, read_frames

        fps = probe(path).fps
        return ((f.image, f.time) for f in read_frames(path)), True, fps
    if "://" not in str(source):
        raise InputError(source, "not found (give a video file, a stream URL or --camera N)")
    cap = cv2.VideoCapture(str(source))
    if not cap.isOpened():
        raise InputError(source, "stream cannot be opened")
    return _capture(cap), False, float(cap.get(cv2.CAP_PROP_FPS) or 30.0)


# ------------------------------------------------------------------ sinks
def window_sink(title: str = "dancenow live") -> Callable[[LiveFrame], None]:
    """Show frames in an OpenCV window; DancenowError where OpenCV has no GUI (headless wheels)."""
    try:
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)
    except cv2.error:
        raise DancenowError("--window: this OpenCV has no GUI (highgui; opencv-python-headless is installed): "
                            "use --serve (a page on 127.0.0.1) or --output FILE.mp4") from None

    def show(frame: LiveFrame) -> None:
        cv2.imshow(title, cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
        if cv2.waitKey(1) & 0xFF in (27, ord("q")):
            raise KeyboardInterrupt

    return show


class MjpegServer:
    """The newest frame as an MJPEG stream at http://127.0.0.1:PORT/ (a page with one <img>)."""

    def __init__(self, port: int):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self._jpeg, self._cond = b"", threading.Condition()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != "/stream":
                    body = b"<html><body style='margin:0;background:#000'><img src='/stream' style='height:100vh'>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while True:
                        jpeg = server.wait_jpeg()
                        if jpeg:  # nothing before the first frame
                            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    return

        try:
            self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        except OSError as exc:
            raise DancenowError(f"--serve: port {port} on 127.0.0.1 cannot be used: {exc}") from None
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_jpeg(self) -> bytes:
        with self._cond:
            self._cond.wait(timeout=1.0)
            return self._jpeg

    def __call__(self, frame: LiveFrame) -> None:
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
        with self._cond:
            self._jpeg = jpeg.tobytes()
            self._cond.notify_all()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def run_live(run_dir: str | Path, source: int | str, cfg: LiveConfig = LiveConfig(), *, window: bool = False,
             serve: bool = False, port: int = 8765, output: str | Path | None = None,
             max_seconds: float | None = None) -> LiveStats:
    """`dancenow live`: the engine on a camera / file / stream, shown, served and/or recorded."""
    if not (window or serve or output):
        raise DancenowError("live: choose where frames go: --window, --serve and/or --output FILE.mp4")
    frames, realtime, fps = open_source(source)
    sinks: list[Callable[[LiveFrame], None]] = [window_sink()] if window else []
    engine = LiveEngine(load_trained(run_dir), cfg)
    print(f"live: {engine.generator.choice.describe()}")
    server = MjpegServer(port) if serve else None
    if server is not None:
        sinks.append(server)
        print(f"live: serving on http://127.0.0.1:{server.port}/ (Ctrl-C stops)")
    writer = None
    if output is not None:
        from dancenow.video import VideoWriter

        writer = VideoWriter(output, fps=fps)
        sinks.append(lambda f: writer.write(f.image))
    try:
        return drive(engine, frames, lambda f: [s(f) for s in sinks], realtime=realtime, max_seconds=max_seconds)
    finally:
        engine.close()
        if writer is not None:
            writer.close()
        if server is not None:
            server.close()
