"""Browser-test helpers: the app as the user starts it (`python -m dancenow app`) on a free port."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from conftest import dancenow_env, free_port, set_args


@contextlib.contextmanager
def app_process(data: Path, *args: str) -> Iterator[str]:
    """Run `dancenow app` on `data` (tiny trainings) until the block ends; yields its URL."""
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [sys.executable, "-m", "dancenow", "app", "--port", str(port), "--data-dir", str(data), "--minutes", "0.1",
           "--size", "64", "--eval-frames", "4", *set_args(), *args]
    log_path = data.parent / "app.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=dancenow_env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            for _ in range(120):
                if "dancenow app: http" in log_path.read_text(errors="replace"):
                    break
                assert proc.poll() is None, log_path.read_text()
                time.sleep(0.5)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=30)
