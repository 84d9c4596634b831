"""The Live tab in headless chromium: a fake webcam (a .y4m of the synthetic dancer) streams to the app,
the trained run's LiveEngine generates, and the page shows the generated frames, the state and a counter.

The trained run is made by `dancenow run` into the app's runs folder (seconds-long tiny training), so
it appears in the app's runs list as any earlier run does. Screenshot: outputs/test-artifacts/app_live.png.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from app_server import app_process
from conftest import dancenow_env, set_args

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")
if not Path(CHROMIUM).is_file():
    pytest.skip("Debian's chromium is not installed (`make test` installs it with apt-get)", allow_module_level=True)


def write_y4m(path: Path, frames, fps: int) -> Path:
    """Frames (RGB uint8, even sides) as a YUV4MPEG2 file: a text header, then FRAME + raw I420 each."""
    frames = [np.ascontiguousarray(f) for f in frames]
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            f.write(b"FRAME\n" + cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


@pytest.fixture(scope="module")
def live_app(synthetic_videos, tmp_path_factory):
    target, _, _ = synthetic_videos
    data = tmp_path_factory.mktemp("live_app") / "data"
    out = data / "runs" / "live-run"
    cmd = [sys.executable, "-m", "dancenow", "run", str(target), "-o", str(out), "--minutes", "0.05", "--size", "64",
           "--eval-frames", "4", "-q", *set_args()]
    done = subprocess.run(cmd, env=dancenow_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    with app_process(data, "--live-calibration", "2") as url:
        yield url


def test_live_tab_streams_the_webcam_and_shows_generated_frames(live_app, artifacts_dir, tmp_path):
    from playwright.sync_api import sync_playwright

    from dancenow.synthetic import make_clip

    clip = make_clip(1, 7, 4.0, 10.0, 160, varied=True)  # the target's dancer, new moves
    cam = write_y4m(tmp_path / "camera.y4m", clip.iter_frames(), 10)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={cam}"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(live_app)
        page.get_by_role("tab", name="Live").click()
        page.wait_for_function("() => document.querySelector('#live-run input')?.value === 'live-run'",
                               timeout=30_000)  # the runs list reached the Live tab's dropdown
        page.locator("#live-camera button", has_text="Click to Access Webcam").click()
        page.locator("#live-camera button[aria-label='capture photo']").click()  # "Record": start streaming

        seen_states, srcs, counts = set(), set(), []
        deadline_polls = 240  # x 250 ms
        for _ in range(deadline_polls):
            text = page.locator("#live-status").inner_text()
            seen_states |= {s for s in ("Calibrating", "Dancing", "No person in view") if s in text}
            assert "Error" not in text, text
            img = page.locator("#live-output img#live-frame")
            if img.count():
                srcs.add(img.get_attribute("src"))
            counts += [int(m) for m in re.findall(r"(\d+) frames generated", text)]
            if "Dancing" in seen_states and len(srcs) >= 5 and max(counts, default=0) >= 20:
                break
            page.wait_for_timeout(250)
        page.screenshot(path=str(artifacts_dir / "app_live.png"), full_page=True)
        browser.close()
    assert "Dancing" in seen_states, (seen_states, text)
    assert max(counts, default=0) >= 20 and counts == sorted(counts), counts  # the counter only goes up
    assert len(srcs) >= 5 and all(s.startswith("data:image/jpeg;base64,") and len(s) > 200 for s in srcs)
    assert re.search(r"\d+\.\d frames/s", text) and not re.search(r"\b0\.0 frames/s", text), text
