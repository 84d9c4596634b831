"""The web app's Live tab (no UI here): the browser's webcam frames -> `LiveEngine` -> the newest generated frame.

The page streams camera frames to the server (`App.live_frame` in `dancenow.app.web`). Each frame
goes into the engine's one-slot mailbox (`dancenow.transfer.live.LatestFrame`) and the request
returns at once with the newest generated frame; a worker thread runs the engine on the newest
frames as `dancenow.transfer.live.run_stages` does for `dancenow live` (the pose stage on one
thread, generation on another, a one-slot mailbox between them). A frame arriving while a stage
works replaces the one waiting (counted as dropped), so nothing queues and the picture is at most
one frame of work per stage plus one frame interval behind the camera. The engine is built in the
worker (the "auto" backend measures the backends first), so no request waits for it.
"""

from __future__ import annotations

import base64
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from dancenow.transfer.live import LatestFrame, LiveEngine, LiveFrame, run_stages

STATE_TEXT = {
    "calibrating": "**Calibrating**: stand where you will dance, step forward and back.",
    "dancing": "**Dancing**",
    "no person": "**No person in view**: step into the picture, whole body in view.",
}


@dataclass(frozen=True)
class LiveStatus:
    """What the page shows under the picture."""

    frame: LiveFrame | None   # the newest generated frame (None before the first)
    generated: int            # frames the engine has generated
    received: int             # frames the page has sent
    dropped: int              # frames replaced in a mailbox before a stage took them
    fps: float                # generated frames per second, over the last ~2 s
    error: str | None = None

    def text(self, run_id: str) -> str:
        if self.error:
            return f"**Error:** {self.error}"
        if self.frame is None:
            return f"Loading the model of run `{run_id}`… ({self.received} camera frames received)"
        return (f"{STATE_TEXT.get(self.frame.state, self.frame.state)}  \n"
                f"run `{run_id}` · {self.generated} frames generated · {self.fps:.1f} frames/s · "
                f"{self.dropped} dropped (the engine was busy)")


class LiveSession:
    """One page's live stream on one run: `submit` never blocks, `status` is the newest output."""

    def __init__(self, run_id: str, make_engine: Callable[[], LiveEngine]):
        self.run_id = run_id
        self.box, self.poses = LatestFrame(), LatestFrame()  # camera frames -> pose stage -> generation
        self._lock = threading.Lock()
        self._latest: LiveFrame | None = None
        self._generated = 0
        self._done: deque[float] = deque(maxlen=64)
        self._error: str | None = None
        self._thread = threading.Thread(target=self._work, args=(make_engine,), daemon=True, name=f"live-{run_id}")
        self._thread.start()

    def submit(self, rgb: np.ndarray, timestamp: float) -> None:
        self.box.put((None, rgb, timestamp))

    def _work(self, make_engine: Callable[[], LiveEngine]) -> None:
        engine = None
        try:
            engine = make_engine()
            run_stages(engine, self.box, self._emit, poses=self.poses)
        except Exception as exc:  # noqa: BLE001 - shown in the page, one line
            with self._lock:
                self._error = f"live generation stopped: {type(exc).__name__}: {exc}".splitlines()[0]
        finally:
            if engine is not None:
                engine.close()

    def _emit(self, meta: None, out: LiveFrame) -> None:
        with self._lock:
            self._latest, self._generated = out, self._generated + 1
            self._done.append(time.perf_counter())

    def status(self) -> LiveStatus:
        with self._lock:
            now = time.perf_counter()
            recent = [t for t in self._done if now - t <= 2.0]
            fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
            dropped = self.box.dropped + self.poses.dropped
            return LiveStatus(self._latest, self._generated, self.box.put_count, dropped, fps, self._error)

    def close(self) -> None:
        self.box.close()
        self._thread.join(timeout=10)


def frame_html(image: np.ndarray, quality: int = 85) -> str:
    """The generated frame as an <img> with a JPEG data URL (no file per frame on disk)."""
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    src = "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode("ascii")
    return (f"<img id='live-frame' alt='generated frame' src='{src}' "
            "style='width:min(100%, 360px);border-radius:6px'>")
