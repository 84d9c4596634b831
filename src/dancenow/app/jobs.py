"""The web app's background jobs: one `dancenow run` worker process at a time, a queue behind it.

A job is a file, APP_DATA/jobs/<id>.json (written atomically), so a reloaded page or a
restarted app finds it. The worker is `python -m dancenow run ...` (the same chain as the
command line) in its own process, with its output in APP_DATA/jobs/<id>.log; its progress
is read from its OUT_DIR (`chain_progress`). The runner thread starts the oldest queued job
when none is running. When the app starts, a job recorded as running is reattached if its
worker still runs, and otherwise started again: `dancenow run` skips the finished stages and
resumes training from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from dancenow.app.chain import chain_progress
from dancenow.atomic import write_json

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
INTERRUPTED = {130, -2, -15}  # Ctrl-C (the app's and its worker's), SIGINT, SIGTERM: the job is resumed
MAX_RESTARTS = 3


@dataclass(frozen=True)
class JobSpec:
    """What a worker runs: `dancenow run TARGET [--source SOURCE] -o OUT_DIR` with these options."""

    kind: str                    # "train" (prepare, train, evaluate) or "transfer" (adds a source)
    target: str
    out_dir: str
    minutes: float
    preset: str = "cpu"
    size_text: str = "256"
    train_sets: tuple[str, ...] = ()
    eval_frames: int = 48
    source: str | None = None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "dancenow", "run", self.target, "-o", self.out_dir, "--minutes",
               repr(float(self.minutes)), "--preset", self.preset, "--size", self.size_text, "--eval-frames",
               str(self.eval_frames), "-q"]
        for s in self.train_sets:
            cmd += ["--set", s]
        return cmd + (["--source", self.source] if self.source else [])


@dataclass(frozen=True)
class Job:
    id: str
    spec: JobSpec
    created: float
    status: str = QUEUED
    pid: int | None = None
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    restarts: int = 0
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Job":
        spec = JobSpec(**{**d["spec"], "train_sets": tuple(d["spec"].get("train_sets", ()))})
        return cls(**{**d, "spec": spec, "notes": tuple(d.get("notes", ()))})


def _alive(pid: int | None, marker: str) -> bool:
    """Whether `pid` is a live process whose command line contains `marker` (not a reused pid)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and marker in cmdline


class JobStore:
    """The job files in APP_DATA/jobs."""

    def __init__(self, root: Path):
        self.dir = Path(root) / "jobs"
        self.dir.mkdir(parents=True, exist_ok=True)

    def save(self, job: Job) -> Job:
        write_json(self.dir / f"{job.id}.json", job.to_dict())
        return job

    def all(self) -> list[Job]:
        jobs = []
        for p in self.dir.glob("*.json"):
            try:
                jobs.append(Job.from_dict(json.loads(p.read_text(encoding="utf-8"))))
            except (OSError, ValueError, TypeError, KeyError):
                continue  # a foreign or damaged file is not a job
        return sorted(jobs, key=lambda j: j.created)

    def get(self, job_id: str) -> Job | None:
        return next((j for j in self.all() if j.id == job_id), None)

    def log_path(self, job_id: str) -> Path:
        return self.dir / f"{job_id}.log"


def _error_from_log(path: Path) -> str | None:
    """The worker's one-line error (`dancenow: error: ...`) from the end of its log."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[-50:]
    except OSError:
        return None
    errs = [ln.split("dancenow: error:", 1)[1].strip() for ln in lines if "dancenow: error:" in ln]
    return errs[-1] if errs else None


class JobRunner:
    """Starts queued jobs one at a time in worker processes and follows them (a daemon thread)."""

    def __init__(self, root: Path, poll_s: float = 0.5):
        self.store = JobStore(root)
        self.poll_s = poll_s
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        src = str(Path(__file__).resolve().parents[2])  # the dancenow this app runs is the worker's too
        self._env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}

    def submit(self, spec: JobSpec) -> Job:
        with self._lock:
            return self.store.save(Job(uuid.uuid4().hex[:12], spec, time.time()))

    def queue_position(self, job_id: str) -> int:
        """0 when the job runs (or is over); else how many jobs are ahead of it."""
        jobs = self.store.all()
        me = next((j for j in jobs if j.id == job_id), None)
        if me is None or me.status != QUEUED:
            return 0
        return sum(1 for j in jobs if j.status == RUNNING or (j.status == QUEUED and j.created < me.created))

    def recover(self) -> None:
        """At start: reattach to running workers, requeue jobs whose worker is gone (they resume)."""
        with self._lock:
            for j in self.store.all():
                if j.status == RUNNING and not _alive(j.pid, j.spec.out_dir):
                    self.store.save(dataclasses.replace(
                        j, status=QUEUED, pid=None, restarts=j.restarts + 1,
                        notes=j.notes + ("the app stopped while this job ran: it continues from its last checkpoint",)))

    def tick(self) -> None:
        with self._lock:
            for j in self.store.all():
                if j.status == RUNNING:
                    self._follow(j)
            jobs = self.store.all()
            if not any(j.status == RUNNING for j in jobs):
                queued = [j for j in jobs if j.status == QUEUED]
                if queued:
                    self._launch(queued[0])

    def _follow(self, j: Job) -> None:
        proc = self._procs.get(j.id)
        if proc is not None:
            rc = proc.poll()
            if rc is None:
                return
        elif _alive(j.pid, j.spec.out_dir):
            return  # a worker started by an earlier app: reattached
        else:
            rc = None
        self._procs.pop(j.id, None)
        prog = chain_progress(j.spec.out_dir)
        if rc == 0 or (rc is None and prog.status == "done"):
            self.store.save(dataclasses.replace(j, status=DONE, finished=time.time()))
            return
        if (rc in INTERRUPTED or prog.status == "interrupted") and j.restarts < MAX_RESTARTS:
            self.store.save(dataclasses.replace(  # stopped, not failed: it continues from its checkpoint
                j, status=QUEUED, pid=None, restarts=j.restarts + 1,
                notes=j.notes + (f"the worker was stopped (exit code {rc}): it continues from its last checkpoint",)))
            return
        err = prog.error or _error_from_log(self.store.log_path(j.id)) or f"the worker stopped (exit code {rc})"
        self.store.save(dataclasses.replace(j, status=FAILED, finished=time.time(), error=err))

    def _launch(self, j: Job) -> None:
        with open(self.store.log_path(j.id), "ab") as log:
            proc = subprocess.Popen(j.spec.command(), stdout=log, stderr=subprocess.STDOUT, env=self._env,
                                    stdin=subprocess.DEVNULL)
        self._procs[j.id] = proc
        self.store.save(dataclasses.replace(j, status=RUNNING, pid=proc.pid, started=time.time()))

    def start(self) -> "JobRunner":
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="dancenow-jobs", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.tick()

    def stop(self, terminate: bool = False) -> None:
        """Stop following; `terminate` also stops the workers (their jobs resume on the next start)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if terminate:
            for proc in self._procs.values():
                proc.terminate()
                proc.wait()
