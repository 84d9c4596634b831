"""`dancenow export`: a trained run as ONNX files another program can use without dancenow's run folder.

    dancenow export runs/me -o me.onnx      # me.onnx (+ me.face.onnx when the run has a face GAN)
    dancenow export runs/me -o me.onnx --precision int8   # the window graph quantized (faster on CPU)

me.onnx is the person generator on one window (`dancenow.transfer.backend.WindowNet`): inputs
`label`, `previous` (temporal runs), `background` and `feather` (runs with a plate), each
(1, C, h, w) float32 in [-1, 1] (feather in [0, 1]), h and w any multiples of
`dancenow.size_multiple`; output `image` (1, 3, h, w), the window composed over the plate.
me.face.onnx refines the face crop: inputs `label`, `image` (1, 3, s, s), output `image`.
A run with reference frames also writes me.references.npz (images, keypoints, frames; numpy,
no pickles): its `label` input has 6 channels, the stick figure and then the nearest reference
frame warped part by part onto the pose (`dancenow.pose.render.render_input`).

Everything else a program needs is in me.onnx's metadata_props (all strings, JSON where
structured): `dancenow.format` (FORMAT), `dancenow.version`, `dancenow.person_spec`,
`dancenow.render_style` (how to draw the stick figures: `dancenow.pose.render`),
`dancenow.frame_size` [W, H], `dancenow.size_multiple` (of the graph's input),
`dancenow.window_multiple` (what window sides are rounded up to), `dancenow.window_margin`,
`dancenow.face_box_size`, `dancenow.face_hr_size` (0, or the side of full-resolution faces),
`dancenow.target_stats` (the normalization statistics to map a source's poses onto),
`dancenow.precision` ("fp32", or "int8": the window graph quantized, QDQ),
`dancenow.background_png` (the plate, base64 PNG), `dancenow.face_model` (the face file's name,
or ""), `dancenow.references` (the reference file's name, or ""), and `dancenow.usage`, the
frame rule in words (USAGE).
`load_onnx` reads all of it back with ONNX Runtime alone and makes the same frames.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from dancenow import __version__
from dancenow.atomic import atomic_path
from dancenow.errors import InputError
from dancenow.models.person import PersonSpec, window_margin
from dancenow.pose.normalize import NormStats
from dancenow.pose.reference import ReferenceBank
from dancenow.pose.render import RenderStyle, render_input
from dancenow.run import TrainedModel, load_references, load_trained, save_references
from dancenow.transfer.backend import (ArrayGenerator, export_face_net, export_window_net, int8_window_net, onnx_runner,
                                      window_round)

FORMAT = "dancenow-onnx/1"
PRECISIONS = ("fp32", "int8")
USAGE = ("Per frame: draw the stick figure (render_style) at frame_size (with references: and beside it, as "
         "channels 4-6, the nearest reference frame's parts warped onto the pose; the window is found on the "
         "stick figure's channels); window = the box of pixels with a "
         "channel >= 2, grown by window_margin, its size rounded up to window_multiple (at most the frame), "
         "centred on the box and moved inside the frame (the whole frame when nothing is drawn); feather = 1 "
         "inside, falling linearly to 0 over window_margin // 2 pixels at window edges inside the frame; run "
         "the graph on the window crops (previous: the last frame's output before the face step, zeros at the "
         "start of a chain); paste the result into the plate; refine the face box (face_box_size, around the "
         "face points) with the face model; clamp to [-1, 1], map to 0..255. Where face_hr_size > 0 the face model "
         "runs at that size instead: label = the stick figure of the face box drawn at face_hr_size, image = the "
         "frame's face crop upsampled (bilinear) to it; its output is that full-resolution face, pasted back "
         "downsampled (antialiased bilinear) and feathered over side // 8 pixels.")


@dataclass(frozen=True)
class ExportResult:
    model: Path
    face_model: Path | None
    metadata: dict[str, str]


def _metadata(model: TrainedModel, face_name: str, references_name: str) -> dict[str, str]:
    cfg, (w, h) = model.config, model.size
    png = b"" if model.background is None else cv2.imencode(".png", cv2.cvtColor(model.background,
                                                                                 cv2.COLOR_RGB2BGR))[1]
    return {
        "dancenow.format": FORMAT,
        "dancenow.version": __version__,
        "dancenow.person_spec": json.dumps(asdict(cfg.person)),
        "dancenow.render_style": json.dumps(asdict(cfg.render)),
        "dancenow.frame_size": json.dumps([w, h]),
        "dancenow.size_multiple": str(model.generator.size_multiple),
        "dancenow.window_multiple": str(window_round(model.generator.size_multiple, cfg.person.window_multiple)),
        "dancenow.face_hr_size": str(model.face_hr_size),
        "dancenow.window_margin": str(window_margin(w, h)),
        "dancenow.face_box_size": str(model.face_box_size),
        "dancenow.target_stats": json.dumps(cfg.target_stats.to_dict()),
        "dancenow.background_png": base64.b64encode(bytes(png)).decode("ascii"),
        "dancenow.face_model": face_name,
        "dancenow.references": references_name,
        "dancenow.usage": USAGE,
    }


def _with_metadata(graph: bytes, meta: dict[str, str]) -> bytes:
    import onnx

    proto = onnx.load_from_string(graph)
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    proto.producer_name, proto.producer_version = "dancenow", __version__
    return proto.SerializeToString()


def export_onnx(run_dir: str | Path, output: str | Path, precision: str = "fp32") -> ExportResult:
    """Write `output` (the window graph with the metadata) and, for runs with a face GAN,
    `<stem>.face.onnx` beside it. precision "int8": the window graph quantized (QDQ; the face
    graph stays fp32), calibrated on the model's own chain as `--precision int8` in transfer.
    Atomic; InputError for an incomplete run, a bad name or precision."""
    run_dir, output = Path(run_dir), Path(output)
    if output.suffix != ".onnx":
        raise InputError(output, "the exported model's name must end in .onnx")
    if precision not in PRECISIONS:
        raise InputError(output, f"export precision must be one of {PRECISIONS}, got {precision!r}")
    model = load_trained(run_dir)
    face_graph = export_face_net(model)
    face_path = output.with_name(output.stem + ".face.onnx") if face_graph is not None else None
    ref_path = output.with_name(output.stem + ".references.npz") if model.reference is not None else None
    meta = _metadata(model, face_path.name if face_path else "", ref_path.name if ref_path else "")
    meta["dancenow.precision"] = precision
    if ref_path is not None:
        save_references(ref_path, model.reference)
    body = export_window_net(model)
    if precision == "int8":
        body = int8_window_net(model, body, face_graph)
    body = _with_metadata(body, meta)
    if face_path is not None:
        with atomic_path(face_path) as tmp:
            Path(tmp).write_bytes(_with_metadata(face_graph, {"dancenow.format": FORMAT, "dancenow.role": "face"}))
    with atomic_path(output) as tmp:
        Path(tmp).write_bytes(body)
    return ExportResult(output, face_path, meta)


@dataclass(frozen=True)
class ExportedModel:
    """An exported model read back: its metadata, parsed, and a frame generator on ONNX Runtime."""

    spec: PersonSpec
    render: RenderStyle
    size: tuple[int, int]
    face_box_size: int
    target_stats: NormStats
    metadata: dict[str, str]
    generator: ArrayGenerator
    reference: ReferenceBank | None = None

    def render_label(self, keypoints: np.ndarray) -> np.ndarray:
        """The window graph's input image for one pose (137, 3) in frame pixels."""
        w, h = self.size
        return render_input(keypoints, w, h, self.render, self.reference)


def load_onnx(path: str | Path) -> ExportedModel:
    """An exported model with ONNX Runtime alone (no run folder, no torch model)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "exported model not found")
    try:
        meta = dict(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta()
                    .custom_metadata_map)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error
        raise InputError(path, f"not an ONNX model: {exc}") from None
    if meta.get("dancenow.format") != FORMAT:
        raise InputError(path, f"not a dancenow export (metadata dancenow.format is not {FORMAT})")
    if int(meta.get("dancenow.face_hr_size", "0")):
        raise InputError(path, "has full-resolution faces: load_onnx reads back exports with frame-scale faces "
                               "only (the face step is described in its dancenow.usage metadata)")
    spec = PersonSpec(**json.loads(meta["dancenow.person_spec"]))
    style = json.loads(meta["dancenow.render_style"])
    style["background"] = tuple(style["background"])
    w, h = json.loads(meta["dancenow.frame_size"])
    png = base64.b64decode(meta["dancenow.background_png"])
    plate = cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) if png else None
    face = path.with_name(meta["dancenow.face_model"]) if meta["dancenow.face_model"] else None
    if face is not None and not face.is_file():
        raise InputError(face, f"the face model that {path.name} names is missing")
    refs = meta.get("dancenow.references", "")
    reference = load_references(path.with_name(refs)) if refs else None
    gen = ArrayGenerator(spec, (w, h), int(meta["dancenow.window_multiple"]), plate, onnx_runner(path.read_bytes()),
                         None if face is None else onnx_runner(face.read_bytes()))
    return ExportedModel(spec, RenderStyle(**style), (w, h), int(meta["dancenow.face_box_size"]),
                         NormStats.from_dict(json.loads(meta["dancenow.target_stats"])), meta, gen, reference)
