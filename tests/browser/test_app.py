"""The web app in a real headless browser (Debian's chromium driven by Playwright; no browser download).

One app process on a free port with a seconds-long training config: a bad upload shows its
error; the synthetic target is uploaded and its skeleton shown; a short training runs in the
worker and the progress view updates (also after a page reload); a source is uploaded and
transferred; the page's <video> plays the result and the download is the file on disk. No
request may leave 127.0.0.1. Screenshots go to outputs/test-artifacts/.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from app_server import app_process

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")
if not Path(CHROMIUM).is_file():
    pytest.skip("Debian's chromium is not installed (`make test` installs it with apt-get)", allow_module_level=True)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    data = tmp_path_factory.mktemp("app") / "data"
    with app_process(data) as url:
        yield url, data


def _text(page, sel: str) -> str:
    return page.locator(sel).inner_text()


def _wait_text(page, sel: str, pattern: str, timeout_s: float = 120.0) -> str:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        t = _text(page, sel)
        if re.search(pattern, t):
            return t
        page.wait_for_timeout(250)
    raise AssertionError(f"{sel} never matched {pattern!r}; it shows: {_text(page, sel)!r}")


def _upload(page, elem: str, path: Path) -> None:
    clear = page.locator(f"#{elem} button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
    page.locator(f"#{elem} input[type=file]").set_input_files(str(path))


def test_app_end_to_end_in_chromium(app_url, synthetic_videos, artifacts_dir, tmp_path):
    from playwright.sync_api import sync_playwright

    url, data = app_url
    target, source, _ = synthetic_videos
    not_video = tmp_path / "dance.mp4"
    not_video.write_text("these are my dance notes, not a video\n")
    hosts: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900}, accept_downloads=True)
        page.on("request", lambda r: hosts.append(urlparse(r.url).hostname or r.url))
        page.goto(url)
        page.locator("#start-training").wait_for()

        # a file that is not a video: a clear message in the page
        _upload(page, "source-file", not_video)
        msg = _wait_text(page, "#source-status", r"Error")
        assert "the source video" in msg and "not a video" in msg
        page.locator("#source-status").scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts_dir / "app_bad_upload.png"))

        # the target: uploaded, its skeleton and detection rates shown
        _upload(page, "target-file", target)
        _wait_text(page, "#target-status", r"Detected skeleton: person found in \d+%")
        assert page.locator("#target-skeleton img").count() >= 1
        page.screenshot(path=str(artifacts_dir / "app_target.png"))

        # a short training in the worker; progress updates, and survives a reload
        page.locator("#minutes input").fill("0.1")
        page.locator("#start-training").click()
        _wait_text(page, "#start-status", r"Training (started|queued)")
        first = _wait_text(page, "#progress", r"step \d+ / ")
        page.reload()
        page.locator("#progress").wait_for()
        later = _wait_text(page, "#progress", r"step \d+ / ")
        job_id = re.search(r"job (\w{12})", first).group(1)
        assert job_id in later
        page.locator("#sample img").wait_for(timeout=120_000)
        page.screenshot(path=str(artifacts_dir / "app_training.png"), full_page=True)
        done = _wait_text(page, "#progress", r"Train job \w+: (done|failed)", 240)
        assert ": done" in done, done
        steps = [int(s) for s in re.findall(r"step (\d+) / ", first + later + done)]
        assert max(steps) > min(steps), (first, later, done)  # the view moved on

        # the source: uploaded (after the bad one), transferred, played and downloaded
        _upload(page, "source-file", source)
        _wait_text(page, "#source-status", r"Detected skeleton")
        _wait_text(page, "#runs", r"\bdone\b")
        page.locator("#start-transfer").click()
        _wait_text(page, "#transfer-status", r"Transfer (started|queued)")
        _wait_text(page, "#progress", r"Transfer job \w+: (done|failed)", 240)
        video = page.locator("#result-video video")
        video.wait_for(timeout=60_000)
        page.wait_for_function("() => { const v = document.querySelector('#result-video video');"
                               " return v && v.readyState >= 2 && v.duration > 0; }", timeout=60_000)
        info = video.evaluate("v => ({rs: v.readyState, d: v.duration, w: v.videoWidth, h: v.videoHeight})")
        results = sorted(data.glob("runs/*/result-*.mp4"))
        assert len(results) == 1
        from dancenow.video import probe

        meta = probe(results[0])
        assert info["rs"] >= 2 and (info["w"], info["h"]) == (meta.width, meta.height)
        assert abs(info["d"] - meta.duration) < 0.5 and meta.has_audio
        page.locator("#result-video").scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts_dir / "app_result.png"), full_page=True)
        with page.expect_download() as dl:
            page.locator("#result-download a").first.click()
        got = Path(dl.value.path()).read_bytes()
        assert hashlib.sha256(got).digest() == hashlib.sha256(results[0].read_bytes()).digest()
        browser.close()
    outside = sorted({h for h in hosts if h not in ("127.0.0.1",)})
    assert outside == [], f"the page fetched from outside: {outside}"
