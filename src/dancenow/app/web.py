"""`dancenow app`: the local web app (Gradio), one page from two videos to the result.

Steps on the page: the target (upload, or the built-in synthetic dancer) with its detected
skeleton and detection rates; a training time and Start; live progress (stage, step, ETA,
the latest sample grid, validation SSIM); a source dance with its skeleton, Transfer, the
result playing in the page and a download; the previous runs with their reports. A second
tab, Live, streams the browser's webcam to a trained run's `LiveEngine` and shows the generated
person, its state and frames/s (`dancenow.app.live`: a one-slot mailbox, frames dropped when behind).

Training and transfer run as `dancenow run` in a worker process (`dancenow.app.jobs`), never
in a request handler: closing or reloading the page does not stop them, the page shows the
latest job again, and a restarted app resumes an interrupted job from its last checkpoint.
One job runs at a time; later ones queue and say so.

Offline: analytics off, a theme of system fonts (nothing fetched from Google Fonts), no
share link; every file the page loads is served by the app itself. Uploads are stored under
APP_DATA with names from their content hash (`dancenow.app.media.store_upload`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from dancenow.app.chain import chain_progress, source_name
from dancenow.app.jobs import DONE, FAILED, QUEUED, RUNNING, Job, JobRunner, JobSpec
from dancenow.app.live import LiveSession, frame_html
from dancenow.app.media import list_runs, skeleton_preview, store_upload, synthetic_video
from dancenow.errors import DancenowError
from dancenow.run import load_trained
from dancenow.transfer.live import LiveConfig, LiveEngine
from dancenow.video import read_image

CSS = "footer {display: none !important}"


@dataclass(frozen=True)
class AppConfig:
    data_dir: Path = Path("dancenow-app")
    host: str = "127.0.0.1"
    port: int = 7860
    max_upload_mb: float = 2000.0
    minutes: float = 10.0
    preset: str = "cpu"
    size_text: str = "256"
    train_sets: tuple[str, ...] = ()
    synthetic_seconds: float = 20.0
    synthetic_size: int = 256
    eval_frames: int = 48
    live_calibration_s: float = 4.0
    live_backend: str = "auto"

    @property
    def max_bytes(self) -> int:
        return int(self.max_upload_mb * 1e6)


@dataclass(eq=False)
class App:
    """The page's handlers: each returns plain values for the components (testable without a browser)."""

    cfg: AppConfig
    runner: JobRunner
    root: Path = field(init=False)
    _live: LiveSession | None = field(init=False, default=None)
    _live_key: tuple[str, str] = field(init=False, default=("", ""))
    _live_shown: int = field(init=False, default=-1)
    _live_lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.root = self.cfg.data_dir.resolve()

    # -------------------------------------------------------------- inputs
    def _video(self, file: str | None, role: str) -> tuple[str | None, list, str]:
        what = f"the {role} video"
        if not file:
            return None, [], f"Choose {what} first."
        try:
            stored = store_upload(Path(file), self.root, self.cfg.max_bytes, what)
            prev = skeleton_preview(stored, what)
        except DancenowError as exc:
            return None, [], f"**Error:** {exc}"
        return str(stored), list(prev.images), f"Detected skeleton: {prev.summary()}."

    def target_upload(self, file: str | None) -> tuple[str | None, list, str]:
        return self._video(file, "target")

    def source_upload(self, file: str | None) -> tuple[str | None, list, str]:
        return self._video(file, "source")

    def synthetic(self, role: str) -> tuple[str | None, list, str]:
        path = synthetic_video(self.root, role, self.cfg.synthetic_seconds, self.cfg.synthetic_size)
        stored, images, msg = self._video(str(path), role)
        return stored, images, f"The built-in synthetic {'dancer' if role == 'target' else 'dance'}. {msg}"

    # -------------------------------------------------------------- jobs
    def _queued_text(self, job: Job, what: str) -> str:
        ahead = self.runner.queue_position(job.id)
        return (f"{what} queued (job `{job.id}`): {ahead} job(s) ahead of it; one job trains at a time."
                if ahead else f"{what} started (job `{job.id}`).")

    def start_training(self, target: str | None, minutes: float) -> str:
        if not target:
            return "**Error:** choose a target video (or the built-in synthetic dancer) first."
        run_dir = self.root / "runs" / time.strftime("%Y%m%d-%H%M%S")
        while run_dir.exists():
            run_dir = run_dir.with_name(run_dir.name + "x")
        spec = JobSpec("train", target, str(run_dir), float(minutes), self.cfg.preset, self.cfg.size_text,
                       self.cfg.train_sets, self.cfg.eval_frames)
        job = self.runner.submit(spec)
        self.runner.tick()
        return self._queued_text(job, "Training")

    def start_transfer(self, source: str | None, run_id: str | None) -> str:
        if not source:
            return "**Error:** choose a source dance first."
        trained = {r.id: r for r in list_runs(self.root) if r.trained}
        if not run_id or run_id not in trained:
            return "**Error:** choose a trained model (train one above, or pick a previous run)."
        train_job = next((j for j in reversed(self.runner.store.all())
                          if j.spec.kind == "train" and Path(j.spec.out_dir).name == run_id), None)
        if train_job is None:
            return f"**Error:** run {run_id} was not made by this app: use `dancenow transfer` for it."
        spec = dataclasses.replace(train_job.spec, kind="transfer", source=source)
        job = self.runner.submit(spec)
        self.runner.tick()
        return self._queued_text(job, "Transfer")

    # -------------------------------------------------------------- what the page shows
    def _shown_job(self) -> Job | None:
        jobs = self.runner.store.all()
        running = [j for j in jobs if j.status == RUNNING]
        return running[0] if running else (jobs[-1] if jobs else None)

    def progress(self) -> tuple[str, Path | None]:
        """The progress text of the running (else the newest) job, and its latest sample grid."""
        job = self._shown_job()
        if job is None:
            return "No job yet: choose a target and start a training.", None
        p = chain_progress(job.spec.out_dir)
        lines = [f"**{job.spec.kind.title()} job `{job.id}`: {job.status}**"]
        if job.status == QUEUED:
            lines.append(f"- waiting: {self.runner.queue_position(job.id)} job(s) ahead; one job trains at a time")
        if job.status == RUNNING:
            lines.append(f"- stage: {p.stage or 'starting'}")
        if job.spec.kind == "train" and p.step is not None and (p.stage == "train" or job.status != RUNNING):
            eta = f", ETA {int(p.eta_s) // 60}:{int(p.eta_s) % 60:02d}" if p.eta_s is not None else ""
            lines.append(f"- training ({p.train_stage}): step {p.step} / {p.total or '?'}{eta}")
        if p.val_ssim is not None:
            lines.append(f"- validation SSIM (person crop) so far: {p.val_ssim:.3f}")
        if job.status == FAILED:
            lines.append(f"- **Error:** {job.error}")
        lines += [f"- note: {n}" for n in job.notes]
        waiting = sum(1 for j in self.runner.store.all() if j.status == QUEUED and j.id != job.id)
        if waiting:
            lines.append(f"- {waiting} more job(s) queued")
        return "\n".join(lines), p.sample

    def latest_result(self) -> Path | None:
        """The result video of the newest finished transfer job."""
        for j in reversed(self.runner.store.all()):
            if j.spec.kind == "transfer" and j.status == DONE and j.spec.source:
                p = Path(j.spec.out_dir) / f"result-{source_name(j.spec.source, set())}.mp4"
                if p.is_file():
                    return p
        return None

    def runs(self) -> tuple[str, list[str]]:
        """A table of the app's runs and the ids of the trained ones (to reuse their model)."""
        runs = list_runs(self.root)
        if not runs:
            return "No runs yet.", []
        rows = ["| run | target | status | minutes | validation SSIM | results |", "|---|---|---|---|---|---|"]
        for r in runs:
            val = f"{r.val_ssim:.3f}" if r.val_ssim is not None else "–"
            rows.append(f"| `{r.id}` | {r.target} | {r.status} | {r.minutes} | {val} | "
                        f"{', '.join(p.name for p in r.results) or '–'} |")
        return "\n".join(rows), [r.id for r in runs if r.trained]

    def report(self, run_id: str | None) -> tuple[str, Path | None]:
        run = next((r for r in list_runs(self.root) if r.id == run_id), None)
        if run is None or not (run.out_dir / "report.md").is_file():
            return "Choose a trained run to see its report.", None
        sheet = run.out_dir / "contact_sheet.png"
        text = (run.out_dir / "report.md").read_text(encoding="utf-8").replace("![contact sheet](contact_sheet.png)", "")
        return text, sheet if sheet.is_file() else None

    # -------------------------------------------------------------- live
    def live_frame(self, image: Any, run_id: str | None, session: str) -> tuple[str | None, str]:
        """One webcam frame (RGB array) of page `session` -> (the newest generated frame as HTML, None when
        unchanged since the last call; the status text). Never waits for the engine."""
        if image is None:
            return None, "Start the camera above."
        live = self._live_for(run_id, session)
        if isinstance(live, str):
            return None, live
        live.submit(image, time.perf_counter())
        st = live.status()
        html = None
        if st.frame is not None and st.generated != self._live_shown:
            html, self._live_shown = frame_html(st.frame.image), st.generated
        return html, st.text(live.run_id)

    def _live_for(self, run_id: str | None, session: str) -> LiveSession | str:
        """The live session of (page, run), made on its first frame; at most one engine at a time."""
        with self._live_lock:
            if self._live is not None and self._live_key == (session, run_id):
                return self._live
            run = next((r for r in list_runs(self.root) if r.id == run_id and r.trained), None)
            if run is None:
                return "**Error:** choose a trained run (train one in the first tab, or pick a previous run)."
            self._close_live()
            cfg = LiveConfig(calibration_s=self.cfg.live_calibration_s, backend=self.cfg.live_backend)
            self._live = LiveSession(run.id, lambda: LiveEngine(load_trained(run.out_dir / "run"), cfg))
            self._live_key, self._live_shown = (session, run.id), -1
            return self._live

    def live_stop(self, session: str | None = None) -> None:
        """Close the live engine (of page `session` only, when given): its page closed."""
        with self._live_lock:
            if session is None or self._live_key[0] == session:
                self._close_live()

    def _close_live(self) -> None:
        if self._live is not None:
            self._live.close()
        self._live, self._live_key = None, ("", "")


def _sample_image(path: Path | None, shown: float) -> tuple[Any, float]:
    """The sample grid as an array when it changed since `shown` (its mtime), else skip."""
    import gradio as gr

    if path is None:
        return gr.skip(), shown
    try:
        mtime = path.stat().st_mtime
        if mtime == shown:
            return gr.skip(), shown
        return read_image(path), mtime
    except (OSError, DancenowError):  # being rewritten: the next tick shows it
        return gr.skip(), shown


def _layout(app: App) -> SimpleNamespace:
    """The components, top to bottom (elem_ids are what the browser tests use)."""
    import gradio as gr

    c: dict[str, Any] = {}
    gr.Markdown("# dancenow\nDo-as-I-do motion transfer: film yourself (the **target**), pick a dance (the "
                "**source**), and get a video of you performing it, with its music. Everything runs on this machine.")
    c.update(target=gr.State(None), source=gr.State(None), shown=gr.State(""), sample_seen=gr.State(0.0),
             runs_seen=gr.State([]))
    with gr.Tabs():
        with gr.Tab("Make a video", id="video", elem_id="tab-video"):
            _video_tab(app, c)
        with gr.Tab("Live", id="live", elem_id="tab-live"):
            c.update(_live_tab())
    return SimpleNamespace(**c)


def _video_tab(app: App, c: dict[str, Any]) -> None:
    import gradio as gr

    for role, title, synth in (("target", "1. Target: a video of you", "Use the built-in synthetic dancer"),
                               ("source", "3. Source: the dance", "Use a built-in synthetic dance")):
        if role == "source":
            c.update(_training(app))
        gr.Markdown(f"## {title}")
        with gr.Row():
            c[f"{role}_file"] = gr.File(label=f"{role} video", file_count="single", elem_id=f"{role}-file")
            c[f"{role}_synth"] = gr.Button(synth, elem_id="use-synthetic" + ("-source" if role == "source" else ""))
        c[f"{role}_msg"] = gr.Markdown(elem_id=f"{role}-status")
        c[f"{role}_gallery"] = gr.Gallery(label="detected skeleton", columns=4, height=220, elem_id=f"{role}-skeleton")
    with gr.Row():
        c["run_choice"] = gr.Dropdown(choices=[], label="trained model (run)", elem_id="run-choice")
        c["go"] = gr.Button("Transfer", variant="primary", elem_id="start-transfer")
    c["transfer_msg"] = gr.Markdown(elem_id="transfer-status")
    gr.Markdown("## 4. Result")
    with gr.Row():
        c["video"] = gr.Video(label="result", interactive=False, elem_id="result-video")
        c["download"] = gr.File(label="download", interactive=False, elem_id="result-download")
    gr.Markdown("## Previous runs")
    c["runs_md"] = gr.Markdown(elem_id="runs")
    c["report_md"] = gr.Markdown(elem_id="report")
    c["sheet"] = gr.Image(label="contact sheet (held-out frames)", interactive=False, elem_id="contact-sheet")


def _live_tab() -> dict[str, Any]:
    import gradio as gr

    gr.Markdown("## Live mirror\nPick a trained model, start the camera, and the person you trained dances as you "
                "move. First a few seconds of calibration: stand where you will dance, step forward and back.")
    run = gr.Dropdown(choices=[], label="trained model (run)", elem_id="live-run")
    with gr.Row():
        cam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="your camera", elem_id="live-camera")
        with gr.Column():
            out = gr.HTML("<p>The generated person appears here.</p>", elem_id="live-output")
            status = gr.Markdown("Start the camera to begin.", elem_id="live-status")
    return {"live_run": run, "live_cam": cam, "live_out": out, "live_status": status}


def _training(app: App) -> dict[str, Any]:
    import gradio as gr

    gr.Markdown("## 2. Train your personal model")
    with gr.Row():
        minutes = gr.Number(value=app.cfg.minutes, label="training time (minutes)", minimum=0.01, elem_id="minutes")
        start = gr.Button("Start training", variant="primary", elem_id="start-training")
    start_msg = gr.Markdown(elem_id="start-status")
    with gr.Row():
        progress = gr.Markdown(elem_id="progress")
        sample = gr.Image(label="latest sample: pose | real | generated", interactive=False, elem_id="sample")
    return {"minutes": minutes, "start": start, "start_msg": start_msg, "progress": progress, "sample": sample}


def _pick(chosen: str | None, trained: list[str]) -> str | None:
    return chosen if chosen in trained else (trained[0] if trained else None)


def _tick(app: App, shown_video: str, seen: float, runs_seen: list[str], chosen: str | None,
          live_chosen: str | None) -> tuple:
    """The timer's refresh: progress, sample grid, runs (and the chosen run's report when they change), result."""
    import gradio as gr

    text, sample_path = app.progress()
    img, seen = _sample_image(sample_path, seen)
    table, trained = app.runs()
    dd = live_dd = report = sheet = gr.skip()
    if trained != runs_seen[1:]:
        chosen = _pick(chosen, trained)
        dd = gr.update(choices=trained, value=chosen)
        live_dd = gr.update(choices=trained, value=_pick(live_chosen, trained))
    if [table, *trained] != runs_seen:  # a run changed: its report may have too
        report, sheet = app.report(chosen)
    result = app.latest_result()
    vid = file = gr.skip()
    if result is not None and str(result) != shown_video:
        vid, file, shown_video = str(result), str(result), str(result)
    return text, img, table, dd, live_dd, report, sheet, vid, file, shown_video, seen, [table, *trained]


def build_ui(app: App):
    """The page (a gr.Blocks); the handlers are App's methods."""
    import gradio as gr

    with gr.Blocks(title="dancenow") as ui:
        p = _layout(app)
        for role in ("target", "source"):
            outs = [getattr(p, role), getattr(p, f"{role}_gallery"), getattr(p, f"{role}_msg")]
            handler = app.target_upload if role == "target" else app.source_upload
            getattr(p, f"{role}_file").upload(handler, getattr(p, f"{role}_file"), outs)
            getattr(p, f"{role}_synth").click(lambda role=role: app.synthetic(role), None, outs)
        p.start.click(app.start_training, [p.target, p.minutes], p.start_msg)
        p.go.click(app.start_transfer, [p.source, p.run_choice], p.transfer_msg)
        p.run_choice.change(app.report, p.run_choice, [p.report_md, p.sheet])
        ins = [p.shown, p.sample_seen, p.runs_seen, p.run_choice, p.live_run]
        outs = [p.progress, p.sample, p.runs_md, p.run_choice, p.live_run, p.report_md, p.sheet, p.video, p.download,
                p.shown, p.sample_seen, p.runs_seen]
        gr.Timer(1.0).tick(lambda *a: _tick(app, *a), ins, outs, show_progress="hidden")
        ui.load(lambda *a: _tick(app, *a), ins, outs, show_progress="hidden")
        _wire_live(app, ui, p)
    return ui


def _wire_live(app: App, ui: Any, p: SimpleNamespace) -> None:
    """Webcam frames -> `App.live_frame`, one stream at a time; the engine closes with its page."""
    import gradio as gr

    def frame(image: Any, run_id: str | None, request: gr.Request) -> tuple[Any, str]:
        html, text = app.live_frame(image, run_id, request.session_hash or "")
        return (gr.skip() if html is None else html), text

    def unload(request: gr.Request) -> None:
        app.live_stop(request.session_hash)

    # this module's annotations are strings (PEP 563): give Gradio the real class to inject the request
    frame.__annotations__["request"] = unload.__annotations__["request"] = gr.Request
    p.live_cam.stream(frame, [p.live_cam, p.live_run], [p.live_out, p.live_status], stream_every=0.1,
                      concurrency_limit=1, show_progress="hidden", time_limit=None)
    ui.unload(unload)


def host_warning(host: str, port: int) -> str | None:
    """The warning printed when the app listens beyond this machine (None for loopback)."""
    if host in ("127.0.0.1", "localhost", "::1"):
        return None
    return (f"dancenow app: warning: listening on {host}: anyone who can reach this machine on port {port} "
            "can use the app, upload files and start trainings")


def serve(cfg: AppConfig, *, block: bool = True):
    """Start the job runner and the page on cfg.host:cfg.port. Returns 0 when stopped (Ctrl-C)."""
    root = cfg.data_dir.resolve()
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"   # no calls home
    os.environ["GRADIO_TEMP_DIR"] = str(root / "tmp")  # uploads land in the app's own folder
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gradio as gr

    warning = host_warning(cfg.host, cfg.port)
    if warning:
        print(warning, file=sys.stderr)
    runner = JobRunner(root).start()
    app = App(cfg, runner)
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])
    ui = build_ui(app)
    ui.queue(default_concurrency_limit=4)
    ui.launch(server_name=cfg.host, server_port=cfg.port, share=False, inbrowser=False, theme=theme, css=CSS,
              allowed_paths=[str(root)], max_file_size=cfg.max_bytes, footer_links=[], prevent_thread_lock=True,
              quiet=True, ssr_mode=False, pwa=False, mcp_server=False, enable_monitoring=False)
    print(f"dancenow app: http://{cfg.host}:{cfg.port}  (data in {root}; Ctrl-C stops it, jobs resume on restart)",
          flush=True)
    if not block:
        return ui
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        app.live_stop()
        runner.stop()
        ui.close()
    return 0
