"""Inference backends for a trained model: eager PyTorch (the reference), ONNX Runtime, OpenVINO.

Every backend makes the same frames as `dancenow.transfer.pipeline.Generator` (eager PyTorch):
the person window around the stick figure, the generator on the window (label + previous output
+ the plate's window + the feather, composed in the graph), the window pasted into the plate,
the face generator's refinement of the face crop. The accelerated backends run the two networks
as exported ONNX graphs (`export_window_net`, `export_face_net`) and do the rest in numpy with
buffers kept between frames (the plate as floats, the feather of each window size).

    gen = make_generator(model, "auto")   # BackendChoice in gen.choice: which one, and why
    image = gen(label, face_box)          # (H, W, 3) uint8, like Generator

"auto" measures (`choose_backend`): each available candidate (torch fp32, onnx fp32, openvino
fp32 and, on CPUs with bf16 units, openvino bf16) generates the same short chain of frames; a
candidate whose frames differ from eager fp32 by more than `TOLERANCE` (2/255 per pixel) is
refused (a bf16 one by more than 1/255: its error grows along the temporal chain), and the
fastest of the others is picked. bf16 is never taken on trust: its error
depends on the trained weights, so it is measured on this model.

int8 (`precision="int8"`, onnx or openvino backends, asked for, never chosen by "auto"): the body's
window graph quantized after training (`quantize_window_net`: uint8 activations, int8 weights per
output channel, QDQ form, activation ranges from the fp32 graph's own inputs on
`calibration_chain`); the face graph stays fp32. Its frames are not the eager frames within
`TOLERANCE` (a few pixels differ by tens of levels), so "auto" leaves it out.
"""

from __future__ import annotations

import importlib.util
import io
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from dancenow.device import autocast
from dancenow.errors import DancenowError
from dancenow.models.face import refine_faces, refine_faces_hr
from dancenow.models.person import PersonGenerator, PersonSpec, Window, window_feather, window_margin
from dancenow.pose.render import STICK_CHANNELS
from dancenow.run import TrainedModel
from dancenow.tensors import face_box_tensor, to_image, to_tensor

BACKENDS = ("auto", "torch", "onnx", "openvino")
TOLERANCE = 2  # largest per-pixel difference (of 255) a backend may have against eager fp32
OPSET = 17


# ------------------------------------------------------------------ the exported graphs
class WindowNet(nn.Module):
    """The person generator on one window, composed: the graph that is exported.

    label (1, 3, h, w), previous (1, 3, h, w) output of the last frame (zeros to start a
    chain; only with use_temporal), background (1, 3, h, w) the plate's window and feather
    (1, 1, h, w) (only with use_background) -> image (1, 3, h, w) in [-1, 1] (unclamped).
    """

    def __init__(self, person: PersonGenerator):
        super().__init__()
        self.person = person

    def forward(self, label: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        spec = self.person.spec
        previous = rest[0] if spec.use_temporal else None
        bg, feather = (rest[-2], rest[-1]) if spec.use_background else (None, None)
        return self.person._run(label, previous, bg, feather)[0]


def window_net_inputs(person: PersonGenerator) -> list[str]:
    """The input names of the exported window graph, in order."""
    spec = person.spec
    return ["label"] + (["previous"] if spec.use_temporal else []) + (
        ["background", "feather"] if spec.use_background else [])


class FaceNet(nn.Module):
    """The face generator's refinement: (label crop, image crop) (1, 3, s, s) -> refined crop, clamped."""

    def __init__(self, face: nn.Module):
        super().__init__()
        self.face = face

    def forward(self, label: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.face(label, image).clamp(-1.0, 1.0)


def _onnx_bytes(module: nn.Module, example: tuple[torch.Tensor, ...], names: list[str]) -> bytes:
    """`module` as an ONNX graph (opset 17, TorchScript exporter) with dynamic height and width."""
    dyn = {n: {2: "height", 3: "width"} for n in [*names, "image"]}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), example, buf, dynamo=False, input_names=names, output_names=["image"],
                          opset_version=OPSET, dynamic_axes=dyn, do_constant_folding=True)
    return buf.getvalue()


def export_window_net(model: TrainedModel) -> bytes:
    """The body generator's window graph (`WindowNet`) as ONNX bytes (CPU, fp32)."""
    person = _cpu_copy(model.generator)
    m = person.size_multiple
    names = window_net_inputs(person)
    chans = {"feather": 1, "label": person.spec.label_channels}
    ex = tuple(torch.zeros(1, chans.get(n, 3), 2 * m, 2 * m) for n in names)
    return _onnx_bytes(WindowNet(person), ex, names)


def export_face_net(model: TrainedModel) -> bytes | None:
    """The face generator (`FaceNet`) as ONNX bytes, None for a run without one."""
    if model.face_generator is None:
        return None
    s = model.face_box_size
    ex = (torch.zeros(1, 3, s, s), torch.zeros(1, 3, s, s))
    return _onnx_bytes(FaceNet(_cpu_copy(model.face_generator)), ex, ["label", "image"])


def _cpu_copy(module: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(module).to("cpu", torch.float32).eval()


# ------------------------------------------------------------------ runners: graph in, array out
Runner = Callable[[Sequence[np.ndarray]], np.ndarray]


def available_backends() -> list[str]:
    """The backends whose runtime is installed here (torch always)."""
    have = {"onnx": "onnxruntime", "openvino": "openvino"}
    return ["torch"] + [b for b, mod in have.items() if importlib.util.find_spec(mod) is not None]


def openvino_has_bf16() -> bool:
    """Whether OpenVINO's CPU plugin reports bf16 units (AMX / AVX512-BF16) on this CPU."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def onnx_runner(graph: bytes, threads: int | None = None) -> Runner:
    """An ONNX Runtime session (CPU) for `graph`: runner(inputs in graph order) -> first output."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or torch.get_num_threads()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(graph, so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]

    def run(inputs: Sequence[np.ndarray]) -> np.ndarray:
        return sess.run(None, dict(zip(names, inputs)))[0]

    return run


def openvino_runner(graph: bytes, precision: str = "fp32", threads: int | None = None) -> Runner:
    """An OpenVINO CPU compiled model for `graph` at `precision` ("fp32" or "bf16"; "int8": a
    quantized (QDQ) graph, its quantized convolutions in int8, the rest fp32)."""
    import openvino as ov

    if precision not in ("fp32", "bf16", "int8"):
        raise DancenowError(f"openvino precision must be fp32, bf16 or int8, got {precision!r}")
    core = ov.Core()
    compiled = core.compile_model(core.read_model(graph), "CPU", {
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
    })
    request = compiled.create_infer_request()

    def run(inputs: Sequence[np.ndarray]) -> np.ndarray:
        return request.infer(list(inputs), share_inputs=True)[0].copy()

    return run


def make_runner(graph: bytes, backend: str, precision: str = "fp32", threads: int | None = None) -> Runner:
    if backend == "onnx":
        if precision not in ("fp32", "int8"):
            raise DancenowError("the onnx backend runs fp32 or int8 (ONNX Runtime has no bf16 CPU kernels)")
        return onnx_runner(graph, threads)
    if backend == "openvino":
        return openvino_runner(graph, precision, threads)
    raise DancenowError(f"no graph runner for backend {backend!r}")


def quantize_window_net(graph: bytes, samples: Sequence[Sequence[np.ndarray]], names: Sequence[str]) -> bytes:
    """An int8 copy of the window graph `graph` (ONNX Runtime's static quantization, QDQ form:
    uint8 activations, int8 weights per output channel), the activations' ranges the min-max
    over `samples` (the graph's inputs, in `names` order, on a few representative frames)."""
    import logging
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    if not samples:
        raise DancenowError("int8 quantization needs at least one calibration frame")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(samples)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else dict(zip(names, x))

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice on pre-processing and constant biases, per layer
    try:
        with tempfile.TemporaryDirectory() as tmp:
            src, out = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
            src.write_bytes(graph)
            quantize_static(str(src), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
            return out.read_bytes()
    finally:
        root.setLevel(level)


# ------------------------------------------------------------------ frames around the graphs (numpy)
def label_window(label: np.ndarray, multiple: int, margin: int | None = None) -> Window:
    """The person window of one stick figure (H, W, 3) uint8: `person_windows`'s rule in numpy.

    A pixel counts as drawn where a channel is >= 2 (above -0.99 once scaled to [-1, 1]).
    """
    h, w = label.shape[:2]
    margin = window_margin(w, h) if margin is None else margin
    drawn = label[:, :, :STICK_CHANNELS].max(axis=2) >= 2
    rows, cols = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))
    if len(rows) == 0:
        return (0, 0, w, h)
    x0, y0, x1, y1 = cols[0] - margin, rows[0] - margin, cols[-1] + 1 + margin, rows[-1] + 1 + margin
    bw = min(w, max(multiple, -(-(x1 - x0) // multiple) * multiple))
    bh = min(h, max(multiple, -(-(y1 - y0) // multiple) * multiple))
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    wx, wy = min(max(0, cx - bw // 2), w - bw), min(max(0, cy - bh // 2), h - bh)
    return (int(wx), int(wy), int(wx + bw), int(wy + bh))


def _scaled(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [-1, 1], as `dancenow.tensors.to_tensor`."""
    return (image.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(127.5) - np.float32(1.0))


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> (H, W, 3) uint8, as `dancenow.tensors.to_image`."""
    return np.rint((np.clip(frame[0], -1, 1) + 1) * np.float32(127.5)).astype(np.uint8).transpose(1, 2, 0)


FaceHr = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray | None]]


def window_round(multiple: int, window_multiple: int) -> int:
    """What window sides are rounded up to: `PersonGenerator.windows_for`'s rule."""
    return max(multiple, -(-window_multiple // multiple) * multiple)


def _torch_face_hr(model: TrainedModel) -> FaceHr:
    """The full-resolution face step in eager PyTorch (its crops are small; the body is what costs):
    (frame (1, 3, H, W) in [-1, 1], face label (S, S, 3) uint8, box) -> (frame, face (S, S, 3) or None)."""

    @torch.inference_mode()
    def run(frame: np.ndarray, face_label: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        fl = to_tensor(face_label)[None].to(model.device)
        out, faces, keep = refine_faces_hr(model.face_generator, fl, torch.from_numpy(frame).to(model.device),
                                           face_box_tensor(box))
        return out.float().cpu().numpy(), (to_image(faces[0]) if len(keep) else None)

    return run


class ArrayGenerator:
    """Frame-by-frame generation around graph runners: `Generator`'s frames, numpy glue.

    body: the window graph (`WindowNet`'s inputs); face: the face graph or None. Kept between
    frames: the previous output (the temporal chain), the plate as floats, each window size's
    feather. `reset()` restarts the chain.
    """

    def __init__(self, spec: PersonSpec, size: tuple[int, int], multiple: int, plate: np.ndarray | None,
                 body: Runner, face: Runner | None, face_hr: FaceHr | None = None):
        """spec, size (W, H), multiple (what window sides are rounded up to) and plate ((H, W, 3)
        uint8, with use_background) describe the model; a run folder is not needed (see
        `export.load_onnx`). face_hr: the full-resolution face step, for models that have one."""
        self.spec, self.size, self.multiple, self.body, self.face = spec, tuple(size), int(multiple), body, face
        self.face_hr = face_hr
        w, h = self.size
        if spec.use_background and (plate is None or plate.shape[:2] != (h, w)):
            raise DancenowError(f"the model needs a {w}x{h} background plate")
        self.plate = _scaled(plate) if spec.use_background else None
        self.blank = np.full((1, 3, h, w), -1.0, np.float32)
        self.prev: np.ndarray | None = None
        self._feathers: dict[Window, np.ndarray] = {}
        self.choice: BackendChoice | None = None  # set by make_generator

    @classmethod
    def for_model(cls, model: TrainedModel, body: Runner, face: Runner | None) -> "ArrayGenerator":
        g = model.generator
        hr = _torch_face_hr(model) if model.face_hr_size else None
        return cls(g.spec, model.size, window_round(g.size_multiple, g.spec.window_multiple), model.background,
                   body, None if hr else face, hr)

    def reset(self) -> None:
        self.prev = None

    def _feather(self, win: Window) -> np.ndarray:
        if win not in self._feathers:
            w, h = self.size
            self._feathers[win] = window_feather([win], (h, w)).numpy()
        return self._feathers[win]

    def _body(self, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the whole frame (1, 3, H, W) before the face: the window generated, the plate around
        it; the label scaled to [-1, 1])."""
        x = _scaled(label)
        win = label_window(label, self.multiple) if self.spec.use_window else (
            0, 0, x.shape[3], x.shape[2])
        x0, y0, x1, y1 = win
        inputs = [x[:, :, y0:y1, x0:x1]]
        if self.spec.use_temporal:
            prev = self.prev if self.prev is not None else np.zeros((1, 3, *x.shape[2:]), np.float32)
            inputs.append(np.ascontiguousarray(prev[:, :, y0:y1, x0:x1]))
        if self.spec.use_background:
            inputs += [np.ascontiguousarray(self.plate[:, :, y0:y1, x0:x1]), self._feather(win) if
                       self.spec.use_window else np.ones((1, 1, y1 - y0, x1 - x0), np.float32)]
        out = self.body([np.ascontiguousarray(a) for a in inputs])
        frame = (self.plate if self.spec.use_background else self.blank).copy()
        frame[:, :, y0:y1, x0:x1] = out
        return frame, x

    def __call__(self, label: np.ndarray, face_box: np.ndarray | None,
                 face_label: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """(frame, full-resolution face or None), as `Generator`."""
        frame, x = self._body(label)
        self.prev = frame
        has_face = face_box is not None and int(face_box[0]) >= 0
        if self.face_hr is not None and face_label is not None and has_face:
            frame, face = self.face_hr(frame, face_label, face_box)
            return _to_uint8(frame), face
        if self.face is not None and has_face:
            x0, y0, x1, y1 = (int(v) for v in face_box)
            crops = [np.ascontiguousarray(a[:, :, y0:y1, x0:x1]) for a in (x[:, :STICK_CHANNELS], frame)]
            frame = frame.copy()
            frame[:, :, y0:y1, x0:x1] = self.face(crops)
        return _to_uint8(frame), None


class Generator:
    """Eager PyTorch generation, frame by frame, with temporal feedback and the face residual:
    the reference every other backend is held to."""

    def __init__(self, model: TrainedModel, precision: str = "fp32"):
        self.model = model
        self.prev: torch.Tensor | None = None
        self.precision = precision
        self.choice: BackendChoice | None = None  # set by make_generator

    def reset(self) -> None:
        self.prev = None

    @torch.inference_mode()
    def __call__(self, label: np.ndarray, face_box: np.ndarray | None,
                 face_label: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """(frame, full-resolution face or None). face_label: the stick figure inside the face box
        drawn at the model's `face_hr_size` (needed where the model has full-resolution faces)."""
        m = self.model
        x = to_tensor(label)[None].to(m.device)
        face = None
        with autocast(m.device, self.precision):
            out = m.generator.step(x, self.prev).float()
            self.prev = out
            if m.face_generator is not None and face_label is not None and m.face_hr_size:
                fl = to_tensor(face_label)[None].to(m.device)
                out, faces, keep = refine_faces_hr(m.face_generator, fl, out, face_box_tensor(face_box))
                face = to_image(faces[0]) if len(keep) else None
            elif m.face_generator is not None:
                out = refine_faces(m.face_generator, x[:, :STICK_CHANNELS], out, face_box_tensor(face_box))
        return to_image(out[0]), face


# ------------------------------------------------------------------ choosing
@dataclass(frozen=True)
class BackendChoice:
    """Which backend generates, at which precision, and why. measured: per candidate
    "backend/precision" -> {"fps": frames/s, "max_diff": largest pixel difference (of 255)
    against eager fp32 on the same chain of frames} (empty when nothing was measured)."""

    backend: str
    precision: str
    reason: str
    measured: dict[str, dict[str, float]] = field(default_factory=dict)

    def describe(self) -> str:
        return f"backend {self.backend} ({self.precision}): {self.reason}"


def build_generator_for(model: TrainedModel, backend: str, precision: str = "fp32",
                        graphs: tuple[bytes, bytes | None] | None = None, threads: int | None = None):
    """A frame generator (`Generator` or `ArrayGenerator`) of one backend and precision. threads:
    the graph runtimes' threads (None: torch's count; eager PyTorch always uses torch's count)."""
    if backend == "torch":
        if precision == "int8":
            raise DancenowError("int8 runs on the onnx or openvino backend (--backend openvino --precision int8)")
        return Generator(model, precision)
    if backend not in available_backends():
        raise DancenowError(f"backend {backend} is not installed (pip install "
                            f"{'onnxruntime' if backend == 'onnx' else 'openvino'})")
    if model.device.type != "cpu":
        raise DancenowError(f"backend {backend} runs on the CPU; the model is on {model.device}")
    body, face = graphs or (export_window_net(model), export_face_net(model))
    face_precision = precision
    if precision == "int8":
        body, face_precision = int8_window_net(model, body, face), "fp32"
    return ArrayGenerator.for_model(model, make_runner(body, backend, precision, threads),
                                    None if face is None else make_runner(face, backend, face_precision, threads))


def int8_window_net(model: TrainedModel, body: bytes, face: bytes | None) -> bytes:
    """The model's fp32 window graph `body` quantized to int8, calibrated on its own chain."""
    if "onnx" not in available_backends():
        raise DancenowError("int8 needs ONNX Runtime's quantization (pip install onnxruntime)")
    return quantize_window_net(body, _window_inputs(model, body, face), window_net_inputs(model.generator))


def _window_inputs(model: TrainedModel, body: bytes, face: bytes | None, n: int = 16) -> list[list[np.ndarray]]:
    """The window graph's inputs on `calibration_chain(model, n)`, generated in fp32 (ONNX Runtime)."""
    fp32 = onnx_runner(body)
    seen: list[list[np.ndarray]] = []

    def recording(inputs: Sequence[np.ndarray]) -> np.ndarray:
        seen.append([a.copy() for a in inputs])
        return fp32(inputs)

    gen = ArrayGenerator.for_model(model, recording, None if face is None else onnx_runner(face))
    chain = calibration_chain(model, n)
    for args in zip(chain.labels, chain.boxes, chain.face_labels):
        gen(*args)
    return seen


def candidates(model: TrainedModel) -> list[tuple[str, str]]:
    """(backend, precision) pairs worth measuring on this machine, eager fp32 first."""
    out = [("torch", "fp32")]
    if model.device.type != "cpu":
        return out
    have = available_backends()
    if "onnx" in have:
        out.append(("onnx", "fp32"))
    if "openvino" in have:
        out.append(("openvino", "fp32"))
        if openvino_has_bf16():
            out.append(("openvino", "bf16"))
    return out


def face_boxes_for(model: TrainedModel, keypoints: np.ndarray) -> list[np.ndarray | None]:
    """(T, 137, 3) keypoints in the target's pixels -> each frame's face box (4,), or None: the
    boxes of the size the face GAN was trained with."""
    from dancenow.pose.geometry import face_boxes

    w, h = model.size
    return [b if b[0] >= 0 else None for b in face_boxes(keypoints, w, h, side=model.face_box_size)[0]]


def face_label_for(model: TrainedModel, keypoints: np.ndarray, box: np.ndarray | None) -> np.ndarray | None:
    """The stick figure inside `box` drawn at the model's full-resolution face size (S, S, 3), or
    None where the model has no full-resolution faces or the frame no face."""
    from dancenow.pose.render import render_crop

    hr = model.face_hr_size
    return render_crop(keypoints, box, hr, model.config.render) if hr and box is not None else None


@dataclass(frozen=True, eq=False)
class Chain:
    """Consecutive frames' generator inputs: stick figures (H, W, 3), face boxes (4,) or None,
    and full-resolution face labels (S, S, 3) or None (models with full-resolution faces)."""

    labels: Sequence[np.ndarray]
    boxes: Sequence[np.ndarray | None]
    face_labels: Sequence[np.ndarray | None]

    @classmethod
    def of(cls, model: TrainedModel, keypoints: np.ndarray) -> "Chain":
        """The inputs for (T, 137, 3) keypoints in the target's pixels, drawn as transfer draws them."""
        boxes = face_boxes_for(model, keypoints)
        return cls([model.render_label(k) for k in keypoints], boxes,
                   [face_label_for(model, k, b) for k, b in zip(keypoints, boxes)])

    def __len__(self) -> int:
        return len(self.labels)


def _run_chain(gen, chain: Chain) -> tuple[list[np.ndarray], float]:
    """The frames of one temporal chain, and the frames/s of its second half (the first warms up)."""
    gen.reset()
    outs, t0, half = [], 0.0, len(chain) // 2
    for i, args in enumerate(zip(chain.labels, chain.boxes, chain.face_labels)):
        if i == half:
            t0 = time.perf_counter()
        outs.append(gen(*args)[0])
    return outs, (len(chain) - half) / max(time.perf_counter() - t0, 1e-9)


def max_difference(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> int:
    """The largest per-pixel difference between two lists of uint8 frames."""
    return max(int(np.abs(x.astype(np.int16) - y.astype(np.int16)).max()) for x, y in zip(a, b))


def choose_backend(model: TrainedModel, chain: Chain, tolerance: int = TOLERANCE,
                   threads: int | None = None) -> tuple[BackendChoice, object]:
    """"auto": measure every candidate on `chain` (e.g. 8-12 frames) and keep the
    fastest whose frames stay within `tolerance` of eager fp32 (eager fp32 itself always
    qualifies). Returns (choice, its generator)."""
    graphs = (export_window_net(model), export_face_net(model)) if len(candidates(model)) > 1 else None
    ref, measured, gens = None, {}, {}
    for backend, precision in candidates(model):
        gen = build_generator_for(model, backend, precision, graphs, threads)
        outs, fps = _run_chain(gen, chain)
        ref = outs if ref is None else ref
        key = f"{backend}/{precision}"
        measured[key] = {"fps": round(fps, 2), "max_diff": max_difference(outs, ref)}
        gens[key] = gen
    # bf16's error grows along the temporal chain (2/255 on 10 frames became 3/255 on 36): it must
    # stay a step inside the tolerance on the short chain to stay within it on a whole video
    ok = {k: v for k, v in measured.items()
          if v["max_diff"] <= tolerance - (1 if k.endswith("/bf16") else 0) or k == "torch/fp32"}
    best = max(ok, key=lambda k: ok[k]["fps"])
    refused = sorted(set(measured) - set(ok))
    backend, precision = best.split("/")
    reason = (f"fastest within {tolerance}/255 of eager fp32 on {len(chain)} frames ("
              + ", ".join(f"{k} {v['fps']:.1f} frames/s, diff {v['max_diff']}" for k, v in measured.items()) + ")"
              + (f"; refused for their difference: {', '.join(refused)}" if refused else ""))
    gen = gens[best]
    gen.reset()
    return BackendChoice(backend, precision, reason, measured), gen


def make_generator(model: TrainedModel, backend: str = "auto", precision: str = "fp32", chain: Chain | None = None,
                   threads: int | None = None):
    """A frame generator of `backend` with `.choice` (a `BackendChoice`) set.

    "auto" measures on `chain` (a short chain of this job's frames; None or empty:
    `calibration_chain(model)`); the others are taken as asked. threads: see `build_generator_for`.
    """
    if backend not in BACKENDS:
        raise DancenowError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        choice, gen = choose_backend(model, chain if chain is not None and len(chain) else calibration_chain(model),
                                     threads=threads)
    else:
        gen = build_generator_for(model, backend, precision, threads=threads)
        choice = BackendChoice(backend, precision, "asked for")
    gen.choice = choice
    return gen


def calibration_chain(model: TrainedModel, n: int = 10) -> Chain:
    """A short chain in the target's frame: a synthetic dancer's exact poses normalized onto the
    target's statistics (no source needed, deterministic)."""
    from dancenow.pose.normalize import compute_stats, normalize_poses
    from dancenow.synthetic import make_dance, make_subject, pose_subject

    seq = pose_subject(make_subject(2), make_dance(3, seconds=n / 10.0 + 2.0, fps=10.0), model.size)
    return Chain.of(model, normalize_poses(seq, compute_stats(seq), model.target_stats).keypoints[10:10 + n])
