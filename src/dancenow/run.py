"""The run folder: its one owner. Training writes it through here; transfer, evaluation and
the benchmarks read it back through `load_trained` and `RunDir`.

    RUN_DIR/
        config.json         RunConfig: schema, dancenow version, training config, person spec,
                            render style, target statistics, data info, stages, time budget
        manifest.json       the prepared data's manifest (frames, split, crop)
        target_stats.json   the target's normalization statistics (also in config.json;
                            kept as a file for `dancenow normalize --target RUN_DIR`)
        background.png      the target's background plate (runs with use_background)
        references.npz      the reference frames (runs with use_reference): images (K, H, W, 3)
                            uint8, keypoints (K, 137, 3), frames (K,) (numpy, no pickles)
        checkpoints/latest/ generator/ (a PersonGenerator component), discriminator/ or
                            face_generator/ + face_discriminator/, optimizer and loop state
        samples/            validation grids (pose | real | generated), latest.png
        metrics.jsonl       one JSON record per logged step and per validation
        summary.json        written when training stops: steps, validation SSIM, seconds
        tb/                 TensorBoard events

A `config.json` of another schema, or of another dancenow major.minor, is refused with one
clear error naming the file.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dancenow import __version__
from dancenow.atomic import atomic_path, write_json
from dancenow.config import TrainConfig
from dancenow.data.dataset import PreparedData
from dancenow.errors import InputError
from dancenow.models.io import config_from_fields, load_component
from dancenow.models.person import PersonGenerator, PersonSpec
from dancenow.pose.normalize import NormStats
from dancenow.pose.pipeline import TARGET_STATS_FILE
from dancenow.pose.reference import ReferenceBank
from dancenow.pose.render import RenderStyle, render_input
from dancenow.tensors import to_tensor
from dancenow.video import read_image

RUN_SCHEMA = 2  # 1: the untyped config.json of dancenow before the run folder had an owner
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class DataInfo:
    """What a run knows of the prepared data it was trained on."""

    root: str
    size: tuple[int, int]   # (width, height) of the prepared frames
    fps: float
    face_box_size: int
    sha256: str             # of the target video: a resumed run must train on the same one
    face_hr_size: int = 0   # side of the full-resolution face crops the face GAN trained on (0: none)

    @classmethod
    def of(cls, data: PreparedData) -> "DataInfo":
        m = data.manifest
        return cls(str(data.root.resolve()), data.size, float(m["fps"]), int(m["face_box_size"]),
                   str(m["source"]["sha256"]), data.face_hr_size)


@dataclass(frozen=True)
class RunConfig:
    """Everything a run folder says about how its model was made (config.json)."""

    train: TrainConfig
    person: PersonSpec
    data: DataInfo
    render: RenderStyle
    target_stats: NormStats
    stages: tuple[str, ...]
    max_minutes: float | None = None
    schema: int = RUN_SCHEMA
    dancenow_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: Path) -> "RunConfig":
        """Checked: a clear InputError naming `path` for another schema, version or bad fields."""
        if not isinstance(d, dict):
            raise InputError(path, "is not a run config (a JSON object)")
        schema, ver = d.get("schema", 1), str(d.get("dancenow_version", "?"))
        if ver.split(".")[:2] != __version__.split(".")[:2]:
            raise InputError(path, f"was written by dancenow {ver}, incompatible with {__version__}: "
                                   "use that version or train again")
        if schema != RUN_SCHEMA:
            raise InputError(path, f"run folder schema {schema} is not {RUN_SCHEMA} (this dancenow): "
                                   "train again with this version")
        try:
            return config_from_fields(cls, d)
        except (TypeError, ValueError, KeyError) as exc:
            raise InputError(path, f"invalid run config: {exc}") from None


def save_references(path: Path, bank: ReferenceBank) -> None:
    """A reference bank as one .npz (images, keypoints, frames), written atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, images=bank.images, keypoints=bank.keypoints, frames=bank.frames)


def load_references(path: Path) -> ReferenceBank:
    """A saved reference bank (no pickles); InputError naming the file when it is missing or bad."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return ReferenceBank(z["images"], z["keypoints"], z["frames"])
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(path, f"missing or unreadable reference frames ({exc})") from None


@dataclass(frozen=True)
class RunDir:
    """The paths of a run folder, and its reads and writes."""

    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoints" / "latest"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tb"

    @property
    def background_path(self) -> Path:
        return self.root / "background.png"

    @property
    def references_path(self) -> Path:
        return self.root / "references.npz"

    def save_references(self, bank: ReferenceBank) -> None:
        save_references(self.references_path, bank)

    def load_references(self) -> ReferenceBank:
        return load_references(self.references_path)

    def exists(self) -> bool:
        return self.config_path.is_file()

    def create(self, data: PreparedData, use_background: bool) -> None:
        """A new run folder for `data`: the files copied from the prepared data."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.samples.mkdir(exist_ok=True)
        shutil.copyfile(data.root / TARGET_STATS_FILE, self.root / TARGET_STATS_FILE)
        if use_background:
            shutil.copyfile(data.root / "background.png", self.background_path)
        write_json(self.root / "manifest.json", data.manifest)

    def save_config(self, cfg: RunConfig) -> None:
        write_json(self.config_path, cfg.to_dict())

    def load_config(self) -> RunConfig:
        if not self.root.is_dir():
            raise InputError(self.root, "run folder not found: not a trained run (train one with `dancenow train`)")
        if not self.config_path.is_file():
            raise InputError(self.root, f"not a trained run (no {CONFIG_FILE}): train one with `dancenow train`")
        try:
            d = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(self.config_path, f"unreadable run config: {exc}") from None
        return RunConfig.from_dict(d, self.config_path)

    def check_trained(self) -> RunConfig:
        """The run's config, after checking the files a trained model needs (cheap, no weights)."""
        cfg = self.load_config()
        if not (self.checkpoint / "generator").is_dir():
            raise InputError(self.root, "incomplete run: no checkpoints/latest/generator (was training started?)")
        if cfg.person.use_background and not self.background_path.is_file():
            raise InputError(self.root, "incomplete run: background.png missing")
        return cfg

    def manifest(self) -> dict[str, Any] | None:
        """The prepared data's manifest as copied at training time (None for runs without one)."""
        p = self.root / "manifest.json"
        return json.loads(p.read_text()) if p.is_file() else None

    def append_metrics(self, record: dict[str, Any]) -> None:
        with open(self.metrics, "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.summary, summary)


@dataclass(eq=False)
class TrainedModel:
    """A trained run loaded for generation: what transfer and evaluation need."""

    run: RunDir
    config: RunConfig
    generator: PersonGenerator
    face_generator: nn.Module | None
    background: np.ndarray | None  # (H, W, 3) uint8
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    reference: ReferenceBank | None = None  # runs with use_reference

    def render_label(self, keypoints: np.ndarray) -> np.ndarray:
        """The generator's input for one pose (137, 3) in the target's pixels (`render_input`)."""
        w, h = self.size
        return render_input(keypoints, w, h, self.config.render, self.reference)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames the model generates."""
        return self.config.data.size

    @property
    def face_box_size(self) -> int:
        return self.config.data.face_box_size

    @property
    def face_hr_size(self) -> int:
        """Side of the full-resolution faces the face generator makes (0: it works at the frame's scale)."""
        if self.face_generator is None or not self.config.train.use_face_hr:
            return 0
        return self.config.data.face_hr_size

    @property
    def target_stats(self) -> NormStats:
        return self.config.target_stats


def load_trained(run_dir: str | Path, device: torch.device | str = "cpu") -> TrainedModel:
    """The run's generator (with its plate) and face generator, in eval mode on `device`."""
    run, device = RunDir(Path(run_dir)), torch.device(device)
    cfg = run.check_trained()
    gen, gcfg = load_component(run.checkpoint / "generator", device=device)
    if not isinstance(gen, PersonGenerator) or gcfg.spec != cfg.person:
        raise InputError(run.checkpoint / "generator", "generator does not match the run's config (person spec)")
    background = None
    if cfg.person.use_background:
        background = read_image(run.background_path)
        gen.set_background(to_tensor(background)[None].to(device))
    face = None
    if (run.checkpoint / "face_generator").is_dir():
        face, _ = load_component(run.checkpoint / "face_generator", device=device)
    reference = run.load_references() if cfg.train.use_reference else None
    return TrainedModel(run, cfg, gen.eval(), face, background, device, reference)
