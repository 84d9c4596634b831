"""`dancenow run`: a target video and source dances in, the finished videos and a report out.

The same library steps as the four commands (`prepare`, `train`, `transfer`, `evaluate`), in
one folder, resumable by content:

    OUT_DIR/
        chain.json          the ledger: each stage's inputs (hashes of the videos, the options),
                            its key (a hash of those), status and seconds; the chain's status
        data/               the prepared target (`dancenow prepare`)
        run/                the trained model (`dancenow train`), resumed from its checkpoint
        eval/               the held-out evaluation (`dancenow evaluate`)
        result.mp4          the first source's transfer (with its audio), side_by_side.mp4 beside it;
                            result-NAME.mp4 / side_by_side-NAME.mp4 for every further source
        report.md           held-out scores, the time of each step, contact_sheet.png
        previous/           stage outputs set aside because their inputs or options changed

A re-run skips every stage whose key is unchanged and finished, continues an interrupted one
(training from its last checkpoint), and starts a stage afresh, saying why, when its target
video, source or options changed. The web app (`dancenow.app.web`) runs this same chain in a
worker process (`dancenow.app.jobs`) and reads its progress with `chain_progress`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from dancenow.atomic import atomic_path, write_json
from dancenow.config import TrainConfig, preset
from dancenow.data.prepare import PrepareConfig, config_record, file_sha256, prepare
from dancenow.errors import DancenowError, InputError
from dancenow.eval.report import evaluate, summary_line
from dancenow.run import RunDir
from dancenow.train.loop import train
from dancenow.transfer.pipeline import TransferConfig, transfer
from dancenow.video import probe

LEDGER = "chain.json"
Log = Callable[[str], None]


@dataclass(frozen=True)
class ChainConfig:
    """The options of `dancenow run` (every one of them is part of some stage's key)."""

    minutes: float = 10.0
    preset: str = "cpu"
    train_changes: tuple[tuple[str, Any], ...] = ()  # TrainConfig fields set on top of the preset
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    eval_frames: int | None = 48                     # held-out frames evaluated (None: all)
    device: str | None = None
    progress: bool = True

    def train_config(self) -> TrainConfig:
        try:
            return preset(self.preset).replace(**dict(self.train_changes))
        except (TypeError, ValueError) as exc:
            raise DancenowError(f"invalid training options: {exc}") from None


@dataclass(frozen=True)
class ChainSource:
    """A source dance and the name of its outputs ("" -> result.mp4, else result-NAME.mp4)."""

    path: Path
    name: str = ""

    @property
    def result(self) -> str:
        return f"result-{self.name}.mp4" if self.name else "result.mp4"

    @property
    def side_by_side(self) -> str:
        return f"side_by_side-{self.name}.mp4" if self.name else "side_by_side.mp4"


@dataclass(frozen=True)
class ChainResult:
    out_dir: Path
    results: tuple[Path, ...]
    report: Path
    skipped: tuple[str, ...]            # stages found finished and unchanged
    resumed_from: dict[str, Any] | None  # the training checkpoint this run continued, if any


def source_name(path: str | Path, taken: set[str]) -> str:
    """A safe, unique output name from a file's stem: [A-Za-z0-9_-], at most 40 characters."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(path).stem).strip("_")[:40] or "source"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    return name


def sources_of(first: str | Path | None, more: list[str | Path]) -> list[ChainSource]:
    """The positional source (-> result.mp4) and the --source ones (-> result-NAME.mp4)."""
    out = [ChainSource(Path(first))] if first else []
    taken: set[str] = set()
    for p in more:
        name = source_name(p, taken)
        taken.add(name)
        out.append(ChainSource(Path(p), name))
    return out


def stage_key(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


# ------------------------------------------------------------------ the ledger
class Ledger:
    """OUT_DIR/chain.json, rewritten atomically after every change (a kill leaves the last one)."""

    def __init__(self, out: Path):
        self.out, self.path = out, out / LEDGER
        self.data: dict[str, Any] = {"stages": {}}
        if self.path.is_file():
            try:
                self.data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InputError(self.path, f"unreadable chain ledger ({exc}): move it away to start afresh")
            self.data.setdefault("stages", {})

    @property
    def stages(self) -> dict[str, dict[str, Any]]:
        return self.data["stages"]

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        self.data["updated"] = time.time()
        write_json(self.path, self.data)

    def set_stage(self, name: str, record: dict[str, Any]) -> None:
        self.stages[name] = record
        self.update()


def _changed(old: dict[str, Any], new: dict[str, Any]) -> str:
    """'the target video', 'the options (train)', ... : what differs between two stages' inputs."""
    words = {"target": "the target video", "source": "the source video", "data": "the prepared data",
             "run": "the trained model", "preset": "the preset", "train_changes": "the training options",
             "minutes": "the time budget"}
    diff = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return ", ".join(words.get(k, f"the option(s) {k}") for k in diff) or "its inputs"


def _set_aside(out: Path, paths: list[Path], key: str) -> list[Path]:
    """Move existing outputs of a stale stage to OUT/previous/NAME-KEY8 (nothing is deleted)."""
    moved = []
    for p in paths:
        if p.exists():
            dest = out / "previous" / f"{p.stem}-{key[:8]}{p.suffix}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
            os.replace(p, dest)
            moved.append(dest)
    return moved


def run_stage(led: Ledger, name: str, inputs: dict[str, Any], outputs: list[Path],
              work: Callable[[], dict[str, Any]], log: Log) -> tuple[dict[str, Any], bool]:
    """Run one stage unless it finished with the same inputs; returns (its record, skipped).

    Same key, finished: skipped. Same key, unfinished: `work` continues it (each step resumes
    itself). Another key, or outputs the ledger knows nothing of: they are set aside first."""
    key, rec = stage_key(inputs), led.stages.get(name)
    if rec is not None and rec.get("key") == key and rec.get("status") == "done":
        log(f"{name}: unchanged since the last run, skipped")
        return rec, True
    if rec is not None and rec.get("key") != key:
        moved = _set_aside(led.out, outputs, rec.get("key", "old"))
        log(f"{name}: {_changed(rec.get('inputs', {}), inputs)} changed: starting this stage afresh"
            + (f" (the previous output moved to {', '.join(str(m) for m in moved)})" if moved else ""))
    elif rec is None:
        _set_aside(led.out, outputs, "unknown")
    elif rec.get("status") == "running":
        log(f"{name}: continuing where the last run stopped")
    led.set_stage(name, {"key": key, "inputs": inputs, "status": "running", "started": time.time()})
    led.update(current=name)
    t = time.time()
    extra = work()
    rec = {"key": key, "inputs": inputs, "status": "done", "seconds": round(time.time() - t, 2), **extra}
    led.set_stage(name, rec)
    return rec, False


# ------------------------------------------------------------------ the stages
def _checkpoint_state(run: RunDir) -> dict[str, Any] | None:
    """Where the run's last checkpoint stands ({stage, stage_index, stage_step, elapsed_s}), or None."""
    p = run.checkpoint / "state.json"
    try:
        s = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return {k: s.get(k) for k in ("stage", "stage_index", "stage_step", "elapsed_s")}


def _train_work(out: Path, cfg: ChainConfig, log: Log) -> dict[str, Any]:
    run = RunDir(out / "run")
    resumed = _checkpoint_state(run) if run.exists() else None
    if resumed is not None:
        log(f"train: resuming {run.root} from its last checkpoint ({resumed['stage']} step "
            f"{resumed['stage_step']}, {resumed['elapsed_s'] or 0:.0f} s trained)")
    res = train(out / "data", run.root, cfg.train_config(), resume=run.exists(), max_minutes=cfg.minutes,
                device=cfg.device, progress=cfg.progress)
    return {"resumed_from": resumed, "steps": res.steps, "val_ssim": res.val_ssim, "finished": res.finished,
            "train_seconds": round(res.seconds, 2)}


def _evaluate_work(out: Path, cfg: ChainConfig) -> dict[str, Any]:
    r = evaluate(out / "run", out / "data", out / "eval", device=cfg.device, max_frames=cfg.eval_frames,
                 progress=cfg.progress)
    scores = {"frames": r.n_frames, "body_ssim": r.body.ssim, "body_psnr": r.body.psnr,
              "body_perceptual": r.body.perceptual, "perceptual_metric": r.perceptual_metric,
              "face_ssim": r.face.ssim, "pose_distance_px": r.pose_generated.distance["all"],
              "pose_distance_real_px": r.pose_real.distance["all"], "flicker": r.flicker_generated,
              "flicker_real": r.flicker_real}
    sheet = out / "eval" / "contact_sheet.png"
    if sheet.is_file():
        with atomic_path(out / "contact_sheet.png") as tmp:
            shutil.copyfile(sheet, tmp)
    return {"scores": {k: (None if isinstance(v, float) and v != v else v) for k, v in scores.items()},
            "summary": summary_line(r)}


def _transfer_work(out: Path, src: ChainSource, cfg: ChainConfig) -> dict[str, Any]:
    r = transfer(src.path, out / "run", out / src.result, TransferConfig(), device=cfg.device,
                 progress=cfg.progress, side_by_side_output=out / src.side_by_side)
    return {"source": str(src.path), "result": src.result, "side_by_side": src.side_by_side, "frames": r.frames,
            "fps": r.fps, "audio": probe(src.path).has_audio, "frames_without_person": r.frames_without_person,
            "times": {k: round(v, 2) for k, v in r.seconds.items()}}


def run_chain(target: str | Path, sources: list[ChainSource], out_dir: str | Path, cfg: ChainConfig = ChainConfig(),
              *, log: Log = print) -> ChainResult:
    """`dancenow run`: prepare, train (time budget), evaluate, transfer every source, report.

    Every user error is raised as a DancenowError and recorded in the ledger (status failed)."""
    target, out = Path(target), Path(out_dir)
    for p in [target, *(s.path for s in sources)]:
        probe(p)  # a clear error for a missing or broken video before any slow work
    out.mkdir(parents=True, exist_ok=True)
    with _exclusive(out):
        led = Ledger(out)
        led.update(status="running", error=None, pid=os.getpid(), target=str(target.resolve()),
                   options=_options(cfg), sources=[str(s.path.resolve()) for s in sources])
        try:
            result = _stages(led, target, sources, cfg, log)
        except DancenowError as exc:
            led.update(status="failed", error=str(exc), current=None)
            raise
        except KeyboardInterrupt:
            led.update(status="interrupted", current=None)
            raise
        led.update(status="done", current=None, finished=time.time())
    return result


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """One `dancenow run` at a time in a folder (an OS lock: released when the process dies)."""
    with open(out / ".chain.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(out, "another `dancenow run` is working in this folder; wait for it or stop it") from None
        yield


def _options(cfg: ChainConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    d.pop("progress"), d.pop("device")
    d["train_changes"] = dict(cfg.train_changes)
    return d


def _stages(led: Ledger, target: Path, sources: list[ChainSource], cfg: ChainConfig, log: Log) -> ChainResult:
    out, skipped = led.out, []
    cfg.train_config()  # invalid training options fail here, before any slow work
    p_in = {"target": file_sha256(target), "prepare": config_record(cfg.prepare)}
    rec, s = run_stage(led, "prepare", p_in, [out / "data"],
                       lambda: _prepare_work(target, out, cfg), log)
    skipped += ["prepare"] if s else []
    t_in = train_inputs(cfg, rec["key"])
    _adopt_legacy_train(led, t_in)
    t_rec, s = run_stage(led, "train", t_in, [out / "run"], lambda: _train_work(out, cfg, log), log)
    skipped += ["train"] if s else []
    e_in = {"run": t_rec["key"], "eval_frames": cfg.eval_frames}
    _, s = run_stage(led, "evaluate", e_in, [out / "eval", out / "contact_sheet.png"],
                     lambda: _evaluate_work(out, cfg), log)
    skipped += ["evaluate"] if s else []
    results = []
    for src in sources:
        x_in = {"run": t_rec["key"], "source": file_sha256(src.path), "transfer": dataclasses.asdict(TransferConfig())}
        _, s = run_stage(led, f"transfer:{src.name or 'result'}", x_in, [out / src.result, out / src.side_by_side],
                         lambda src=src: _transfer_work(out, src, cfg), log)
        skipped += [f"transfer:{src.name or 'result'}"] if s else []
        results.append(out / src.result)
    report = write_report(led)
    log(f"{out}: " + (", ".join(r.name for r in results) + ", " if results else "") + "report.md written")
    return ChainResult(out, tuple(results), report, tuple(skipped), t_rec.get("resumed_from"))


def train_inputs(cfg: ChainConfig, data_key: str) -> dict[str, Any]:
    """The train stage's inputs: what the user asked for (the preset by name, the options set on
    it, the budget), not the preset's values, so a later version's better preset neither retrains
    a finished run nor restarts an interrupted one (which resumes with the config it began with)."""
    changes = json.loads(json.dumps(dict(cfg.train_changes), default=str))  # as the ledger will read them
    return {"data": data_key, "preset": cfg.preset, "train_changes": changes, "minutes": cfg.minutes}


def _adopt_legacy_train(led: Ledger, inputs: dict[str, Any]) -> None:
    """A ledger from before `train_inputs` keyed its train stage on the whole config: the same data,
    budget and preset name, with every option asked for now found in the recorded config, count as
    unchanged; that stage and the stages made from it are re-keyed, not redone."""
    rec = led.stages.get("train") or {}
    old = rec.get("inputs", {})
    recorded = old.get("train")
    if not isinstance(recorded, dict):
        return
    if (old.get("data"), old.get("minutes"), recorded.get("preset")) != (inputs["data"], inputs["minutes"],
                                                                         inputs["preset"]):
        return
    if any(recorded.get(k) != v for k, v in inputs["train_changes"].items()):
        return
    old_key, new_key = rec["key"], stage_key(inputs)
    led.stages["train"] = {**rec, "key": new_key, "inputs": inputs}
    for r in led.stages.values():
        if r.get("inputs", {}).get("run") == old_key:
            r["inputs"] = {**r["inputs"], "run": new_key}
            r["key"] = stage_key(r["inputs"])
    led.update()


def _prepare_work(target: Path, out: Path, cfg: ChainConfig) -> dict[str, Any]:
    prepare(target, out / "data", cfg.prepare, progress=cfg.progress)
    m = json.loads((out / "data" / "manifest.json").read_text())
    return {"detection": m["detection"], "size": m["size"], "frames": m["n_frames"]}


# ------------------------------------------------------------------ the report
def _fmt(v: Any, digits: int = 3) -> str:
    return "–" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def write_report(led: Ledger) -> Path:
    """OUT/report.md from the ledger: what was made from what, held-out scores, time of each step."""
    st, d = led.stages, led.data
    tr, ev = st.get("train", {}), st.get("evaluate", {})
    o = d.get("options", {})
    lines = ["# dancenow run", "", f"- target: `{d.get('target')}`",
             f"- model: `run/` (preset `{o.get('preset')}`, {o.get('minutes')} min budget, steps {tr.get('steps')}, "
             f"validation SSIM (person crop) {_fmt(tr.get('val_ssim'), 4)})"]
    if tr.get("resumed_from"):
        r = tr["resumed_from"]
        lines.append(f"- training was resumed from its checkpoint at {r['stage']} step {r['stage_step']}")
    for name, rec in sorted(st.items()):
        if name.startswith("transfer:") and rec.get("status") == "done":
            lines.append(f"- `{rec['result']}` and `{rec['side_by_side']}` (source | pose | result): "
                         f"`{rec['source']}`, {rec['frames']} frames at {rec['fps']:g} fps, "
                         + ("with its audio" if rec["audio"] else "silent (the source has no audio)"))
    s = ev.get("scores") or {}
    lines += ["", f"## Held-out scores ({s.get('frames')} target frames never trained on, see `eval/report.md`)", "",
              f"| body SSIM | body PSNR (dB) | body {s.get('perceptual_metric')} | face SSIM | pose distance (px) "
              "| flicker |", "|---|---|---|---|---|---|",
              f"| {_fmt(s.get('body_ssim'))} | {_fmt(s.get('body_psnr'), 2)} | {_fmt(s.get('body_perceptual'), 4)} | "
              f"{_fmt(s.get('face_ssim'))} | {_fmt(s.get('pose_distance_px'), 2)} (real {_fmt(s.get('pose_distance_real_px'), 2)}) | "
              f"{_fmt(s.get('flicker'), 2)} (real {_fmt(s.get('flicker_real'), 2)}) |",
              "", "## Time of each step", "", "| step | seconds |", "|---|---|"]
    lines += [f"| {name} | {_fmt(rec.get('seconds'), 1)} |" for name, rec in st.items() if rec.get("status") == "done"]
    lines += ["", "Skipped stages keep the time of the run that made them. Training time includes every resumed part: "
              f"{_fmt(tr.get('train_seconds'), 1)} s.", "", "## Contact sheet", "",
              "Held-out frames: real | pose | generated | face close-ups.", "", "![contact sheet](contact_sheet.png)",
              "", "## More dances for this model", "", "```bash",
              f"dancenow transfer another_dance.mp4 --model {led.out}/run -o another.mp4 --side-by-side",
              f"dancenow run {d.get('target')} --source another_dance.mp4 -o {led.out}   # same options: "
              "finished stages are skipped", "```", ""]
    path = led.out / "report.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    return path


# ------------------------------------------------------------------ progress (read by the web app)
@dataclass(frozen=True)
class ChainProgress:
    """What a chain in OUT_DIR is doing, from its files (safe to read while it runs)."""

    status: str                 # "new", "running", "done", "failed", "interrupted"
    stage: str | None
    step: int | None = None     # training: the step in the current training stage
    total: int | None = None    # training: its planned steps (once planned)
    train_stage: str | None = None
    elapsed_s: float | None = None
    eta_s: float | None = None
    val_ssim: float | None = None
    sample: Path | None = None  # the latest sample grid (pose | real | generated)
    error: str | None = None


def _last_records(path: Path, nbytes: int = 16384) -> list[dict[str, Any]]:
    """The JSON records in the last `nbytes` of a jsonl file (the first, maybe cut, line dropped)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            fh.seek(max(0, size - nbytes))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    lines = lines[1:] if size > nbytes else lines
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def chain_progress(out_dir: str | Path) -> ChainProgress:
    out = Path(out_dir)
    try:
        d = json.loads((out / LEDGER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ChainProgress("new", None)
    status, stage = d.get("status", "new"), d.get("current")
    run = RunDir(out / "run")
    recs = _last_records(run.metrics)
    steps = [r for r in recs if "time_s" in r and "val_ssim_person" not in r]
    vals = [r["val_ssim_person"] for r in recs if "val_ssim_person" in r]
    last = steps[-1] if steps else None
    ck = _checkpoint_state(run) or {}
    try:
        planned = json.loads((run.checkpoint / "state.json").read_text()).get("planned", {})
    except (OSError, ValueError):
        planned = {}
    elapsed = last["time_s"] if last else None
    budget = (d.get("options") or {}).get("minutes")
    eta = max(0.0, budget * 60 - elapsed) if stage == "train" and budget and elapsed is not None else None
    sample = run.samples / "latest.png"
    return ChainProgress(status, stage, last["step"] if last else ck.get("stage_step"),
                         planned.get(last["stage"]) if last else None, last["stage"] if last else ck.get("stage"),
                         elapsed, eta, vals[-1] if vals else (d.get("stages", {}).get("train") or {}).get("val_ssim"),
                         sample if sample.is_file() else None, d.get("error"))
