"""`dancenow evaluate` / `dancenow compare`: score trained runs on the target's held-out frames.

The evaluation follows the paper (Chan et al. 2019, Sec. 6): the validation split of the
prepared target video (frames never trained on) is regenerated in order from its own
poses, with the temporal chain and the face residual exactly as `dancenow transfer` runs
them, and each generated frame is compared with the real one:

- SSIM, PSNR and a perceptual distance on the body crop (`body_box` of the input pose,
  grown by `BODY_MARGIN` x its height) and on the face crop (the prepared data's fixed-size
  face boxes; frames without a face box are skipped and counted). PSNR is capped at
  `PSNR_CAP_DB` = 60 dB per frame before averaging (a perfect crop would be +inf).
  The perceptual distance is LPIPS (AlexNet, v0.1) when its weights are installed, else
  the unlearned VGG16-HED feature distance, named "VGG16-HED-dist" in every output: the
  two are different metrics and their values must not be compared.
- Pose distance and missed detections (paper Table 2): the pose detector runs on the
  generated frames and on the real held-out frames; the mean L2 distance of the detected
  keypoints to the input keypoints (the poses the frames were generated from) is reported
  per part (body, face, hands, overall), in pixels at the evaluated size and divided by the
  person's height, over points detected in both. Missed detections: input points the
  detector did not find, per image. The "real" row (detector on the real frames) is the
  reference: the detector's own error on real footage.
- Temporal flicker: mean |frame_t - warp(frame_{t-1})| with the real frames' DIS optical
  flow (`dancenow.eval.metrics.flicker_series`), for the generated frames and, as the
  floor, for the real frames themselves.

Outputs (written atomically): OUT/metrics.json (NaN -> null), OUT/report.md and
OUT/contact_sheet.png (rows of real | pose | generated | face close-ups). `compare` evaluates several runs
on the same frames (the real frames are detected once) into OUT/<run name>/ and writes
OUT/compare.md and OUT/compare.json with one row per run.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol, Sequence

import cv2
import numpy as np

from dancenow.atomic import atomic_path, write_json
from dancenow.data.dataset import PreparedData
from dancenow.device import pick_device
from dancenow.errors import DancenowError, InputError
from dancenow.eval.identity import SAME_PERSON, FaceIdentity, IdentityAccumulator, IdentityScores
from dancenow.eval.lpips import LPIPS_NAME, lpips_status, perceptual_metric
from dancenow.eval.metrics import (
    MOTION_THIRDS,
    by_motion,
    sharpness,
    POSE_PARTS,
    backward_flows,
    body_box,
    clamp_box,
    flicker_series,
    missed_detections,
    pose_distance,
    psnr,
    ssim,
)
from dancenow.pose.geometry import body_motion_in
from dancenow.pose.render import crop_keypoints
from dancenow.pose.schema import BODY, PoseSequence
from dancenow.run import RunConfig, RunDir, load_trained
from dancenow.transfer.pipeline import TransferPipeline
from dancenow.video import write_image

PSNR_CAP_DB = 60.0           # per-frame PSNR cap before averaging (identical crops would be +inf)
BODY_MARGIN = 0.1            # body crop: tight box of the input body points grown by this x its height
CONF_THRESHOLD = 0.1         # a keypoint counts as detected above this confidence
CONTACT_ROWS = 6             # frames shown in contact_sheet.png
MIN_CROP_SIDE = 11           # SSIM's window: smaller crops are skipped (and counted)
PART_LABELS = {"body": "Body", "face": "Face", "hands": "Hands", "all": "Overall"}
FLAG_KEYS = ("preset", "use_temporal", "use_face_gan", "use_background", "use_vgg_loss", "use_local_enhancer")


class Detector(Protocol):
    """The pose detector's call (`dancenow.pose.detect.detect_frames`)."""

    def __call__(self, frames: Iterable[np.ndarray], *, fps: float, width: int, height: int,
                 progress: bool = True) -> PoseSequence: ...


# ------------------------------------------------------------------ results
@dataclass(frozen=True)
class CropScores:
    """Mean image similarity over the frames whose crop could be scored.

    psnr is in dB, each frame capped at `PSNR_CAP_DB`; perceptual is the distance of the
    report's `perceptual_metric` (lower is better). frames: scored; skipped: not scored
    (no box, or a crop under 11 px).
    """

    ssim: float
    psnr: float
    perceptual: float
    frames: int
    skipped: int


@dataclass(frozen=True)
class PoseScores:
    """Detector output on some frames against the input keypoints, per part
    (body, face, hands, all).

    distance: mean L2 in pixels at the evaluated size; distance_norm: the same divided by
    the person's height (from the input keypoints); pairs: point pairs counted (detected in
    both); missed: input points the detector did not find, per image; missed_rate: those
    over all input points; frames_with_person: frames where the detector found any body point.
    """

    distance: dict[str, float]
    distance_norm: dict[str, float]
    pairs: dict[str, int]
    missed: dict[str, float]
    missed_rate: dict[str, float]
    frames_with_person: int


@dataclass(frozen=True, eq=False)
class EvalReport:
    """Scores of one trained run on held-out frames of the target.

    frames: frame indices [start, stop) of the prepared data that were evaluated, in order.
    size: (width, height) of the evaluated frames. flags: the run's key training options
    (from run_dir/config.json "train") plus `face_generator` (a face GAN was loaded).
    perceptual_metric: the name of the perceptual distance in body/face ("LPIPS-alex-v0.1",
    or "VGG16-HED-dist" when LPIPS' weights are absent; `lpips_status` says why).
    flicker_generated / flicker_real: mean flicker (intensity 0-255) of the generated / real
    frames along the real frames' optical flow. sharpness_*: the generated crops' high-frequency
    energy over the real crops' (`eval.metrics.sharpness_ratio`, 1 = as sharp). identity: the
    generated face against the real one (`eval.identity`), over frames with a placeable real face.
    face_full: where the data holds the faces at full resolution (cut from the original video),
    the generated face at that resolution against them: the model's own full-resolution face, or
    its face crop upsampled (bicubic) when it makes none; identity is then measured on these.
    body_ssim_by_motion: body SSIM over the slowest, middle and fastest third of the frames, by how
    far the fastest body point of the input pose moved from the frame before (`body_motion`).
    """

    name: str
    run: str
    data: str
    frames: tuple[int, int]
    size: tuple[int, int]
    flags: dict[str, Any]
    perceptual_metric: str
    lpips_status: str | None
    psnr_cap_db: float
    body: CropScores
    face: CropScores
    pose_generated: PoseScores
    pose_real: PoseScores
    flicker_generated: float
    flicker_real: float
    sharpness_body: float = math.nan      # generated / real high-frequency energy of the body crops
    sharpness_face: float = math.nan
    identity: IdentityScores | None = None  # None: dlib not installed
    face_full: CropScores | None = None     # the face at full resolution (data with faces/), else None
    sharpness_face_full: float = math.nan
    body_ssim_by_motion: dict[str, float] = field(default_factory=dict)  # slow / middle / fast third of frames
    identity_on: str = "frames"             # "frames" or "full-resolution faces": what identity compared
    notes: tuple[str, ...] = ()
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return self.frames[1] - self.frames[0]

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready dict (NaN stays float NaN; `json_safe` turns it into None)."""
        d = asdict(self)
        d["frames"] = {"start": self.frames[0], "stop": self.frames[1], "count": self.n_frames}
        d["size"] = list(self.size)
        d["notes"] = list(self.notes)
        return d


def json_safe(obj: Any) -> Any:
    """Recursively replace NaN/inf floats by None and tuples by lists (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.floating):
        return json_safe(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


# ------------------------------------------------------------------ shared reference
@dataclass(eq=False)
class _Reference:
    """What every run is compared against: the held-out frames, their input keypoints,
    the detector's output on the real frames, and the perceptual metric."""

    data: Any                       # PreparedData
    start: int
    stop: int
    inputs: np.ndarray              # (n, 137, 3) input keypoints in output pixels
    real_detected: np.ndarray       # (n, 137, 3) detector on the real frames
    real_scores: "PoseScores"       # real_detected against inputs (the reference row)
    metric_name: str
    metric: Any                     # (a, b) -> float
    lpips_note: str | None
    detector: Detector
    detect_real_s: float


def _default_detector() -> Detector:
    try:
        from dancenow.pose.detect import detect_frames
    except ImportError as exc:
        raise DancenowError(f"the pose detector is not available ({exc}); pose metrics need it") from None
    return detect_frames


def _detect(detector: Detector, frames: Iterable[np.ndarray], n: int, fps: float, size: tuple[int, int],
            progress: bool, what: str) -> np.ndarray:
    """Run the detector; (n, 137, 3) keypoints in pixels of `size`."""
    w, h = size
    seq = detector(frames, fps=fps, width=w, height=h, progress=progress)
    if not isinstance(seq, PoseSequence):
        raise DancenowError(f"pose detector returned {type(seq).__name__}, not a PoseSequence ({what})")
    if len(seq) != n:
        raise DancenowError(f"pose detector returned {len(seq)} frames for the {n} {what}")
    kp = seq.keypoints.copy()
    if (seq.width, seq.height) != (w, h):  # rescale to the evaluated size
        present = kp[:, :, 2] > 0
        kp[:, :, 0] = np.where(present, kp[:, :, 0] * (w / seq.width), 0.0)
        kp[:, :, 1] = np.where(present, kp[:, :, 1] * (h / seq.height), 0.0)
    return kp


def _make_reference(data_dir: str | Path, device: Any, max_frames: int | None, detector: Detector | None,
                    progress: bool) -> _Reference:

    data = PreparedData.load(data_dir)
    start, stop = data.split("val")
    if stop - start < 1:
        raise InputError(data_dir, "has no held-out (validation) frames to evaluate on: "
                                   "prepare a video of at least 10 frames")
    if max_frames is not None:
        if max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        stop = min(stop, start + int(max_frames))
    det = detector if detector is not None else _default_detector()
    name, fn = perceptual_metric(device)
    note = None if name.startswith(LPIPS_NAME) else lpips_status()
    t = time.time()
    n = stop - start
    real = _detect(det, (data.read_frame(i) for i in range(start, stop)), n, float(data.manifest["fps"]),
                   data.size, progress, "real held-out frames")
    inputs = data.poses.keypoints[start:stop].copy()
    return _Reference(data, start, stop, inputs, real, pose_scores(real, inputs), name, fn, note, det,
                      time.time() - t)


# ------------------------------------------------------------------ per-run evaluation
def _run_flags(config: RunConfig, face_loaded: bool) -> dict[str, Any]:
    train = config.train.to_dict()
    flags = {k: train[k] for k in FLAG_KEYS if k in train}
    flags["face_generator"] = face_loaded
    return flags


def _crop_pair(real: np.ndarray, gen: np.ndarray,
               box: Sequence[float] | None) -> tuple[np.ndarray, np.ndarray] | None:
    if box is None:
        return None
    h, w = real.shape[:2]
    b = clamp_box(box, w, h)
    if b is None:
        return None
    x0, y0, x1, y1 = b
    if min(x1 - x0, y1 - y0) < MIN_CROP_SIDE:
        return None
    return real[y0:y1, x0:x1], gen[y0:y1, x0:x1]


def _face_closeups(real: np.ndarray, gen: np.ndarray, box: np.ndarray,
                   full: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Face close-ups (real | generated) enlarged to the frame's height (grey where no face); at
    full resolution where `full` (real, generated) faces are given."""
    h = real.shape[0]
    if box[0] < 0:
        return np.full((h, h, 3), 128, np.uint8)
    x0, y0, x1, y1 = (int(v) for v in box)
    side = h // 2
    crops = full if full is not None else (real[y0:y1, x0:x1], gen[y0:y1, x0:x1])
    interp = cv2.INTER_AREA if full is not None and full[0].shape[0] > side else cv2.INTER_NEAREST
    ups = [cv2.resize(np.ascontiguousarray(img), (side, side), interpolation=interp) for img in crops]
    tile = np.full((h, side, 3), 128, np.uint8)
    tiles = []
    for u in ups:
        t = tile.copy()
        t[(h - side) // 2:(h - side) // 2 + side] = u
        tiles.append(t)
    return np.concatenate(tiles, axis=1)


class _Accumulator:
    """Per-frame image metrics, flicker and contact-sheet rows, fed in frame order."""

    def __init__(self, ref: _Reference, contact: set[int], identity: IdentityAccumulator | None):
        self.ref = ref
        self.contact = contact
        self.identity = identity
        parts = ("body", "face", "face_full")
        self.energy = {part: [0.0, 0.0] for part in parts}  # generated, real high-frequency energy
        self.rows: list[np.ndarray] = []
        self.scores: dict[str, dict[str, list[float]]] = {
            part: {"ssim": [], "psnr": [], "perceptual": []} for part in parts
        }
        self.skipped = {part: 0 for part in parts}
        self.body_ssim: dict[int, float] = {}  # held-out frame k -> its body SSIM
        self.flicker_gen: list[float] = []
        self.flicker_real: list[float] = []
        self.prev: tuple[np.ndarray, np.ndarray] | None = None
        self.count = 0

    def _score(self, part: str, pair: tuple[np.ndarray, np.ndarray] | None) -> float:
        """Scores one crop pair; its SSIM (NaN when there is no pair)."""
        if pair is None:
            self.skipped[part] += 1
            return math.nan
        real, gen = pair
        e = self.energy[part]
        e[0] += sharpness(gen)
        e[1] += sharpness(real)
        s = self.scores[part]
        s["ssim"].append(ssim(gen, real))
        s["psnr"].append(psnr(gen, real, cap=PSNR_CAP_DB))
        s["perceptual"].append(self.ref.metric(gen, real))
        return s["ssim"][-1]

    def _full_faces(self, k: int, gen: np.ndarray, face: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
        """(real, generated) faces at the data's full resolution for held-out frame k, or None."""
        data, i = self.ref.data, self.ref.start + k
        if not data.face_hr_size or not data.has_face(i):
            return None
        s = data.face_hr_size
        if face is None:
            x0, y0, x1, y1 = (int(v) for v in data.face_boxes[i])
            face = cv2.resize(np.ascontiguousarray(gen[y0:y1, x0:x1]), (s, s), interpolation=cv2.INTER_CUBIC)
        return data.read_face(i), face

    def add(self, k: int, real: np.ndarray, label: np.ndarray, gen: np.ndarray, face: np.ndarray | None = None) -> None:
        """Score held-out frame k: real and generated frames, and the model's full-resolution face if any."""
        if real.shape != gen.shape:
            raise DancenowError(f"generated frame {gen.shape} and real frame {real.shape} differ in size")
        h, w = real.shape[:2]
        self.body_ssim[k] = self._score("body", _crop_pair(real, gen, body_box(self.ref.inputs[k], w, h, BODY_MARGIN,
                                                                               CONF_THRESHOLD)))
        fb = self.ref.data.face_boxes[self.ref.start + k]
        self._score("face", _crop_pair(real, gen, None if fb[0] < 0 else fb))
        full = self._full_faces(k, gen, face)
        if self.ref.data.face_hr_size:
            self._score("face_full", full)
        if self.identity is not None and self.ref.data.face_hr_size:
            if full is None:
                self.identity.skipped += 1
            else:
                self.identity.add(*full, crop_keypoints(self.ref.inputs[k], fb, self.ref.data.face_hr_size))
        elif self.identity is not None:
            self.identity.add(real, gen, self.ref.inputs[k])
        if self.prev is not None:
            prev_real, prev_gen = self.prev
            flows = backward_flows([prev_real, real])
            self.flicker_gen.append(float(flicker_series([prev_gen, gen], flows)[0]))
            self.flicker_real.append(float(flicker_series([prev_real, real], flows)[0]))
        self.prev = (real, gen)
        if k in self.contact:
            self.rows.append(np.concatenate([real, label, gen, _face_closeups(real, gen, fb, full)], axis=1))
        self.count += 1

    def sharpness(self, part: str) -> float:
        """Generated over real energy, summed over the scored crops (`eval.metrics.sharpness_ratio`)."""
        gen, real = self.energy[part]
        return gen / real if real > 0 else math.nan

    def body_by_motion(self) -> dict[str, float]:
        """Body SSIM over the held-out frames' thirds by body motion (`eval.metrics.by_motion`)."""
        data, a, b = self.ref.data, self.ref.start, self.ref.stop
        motion = body_motion_in(data.poses.keypoints, a, b)
        return by_motion([self.body_ssim.get(k, math.nan) for k in range(b - a)], motion)

    def crop_scores(self, part: str) -> CropScores:
        s = self.scores[part]
        return CropScores(_mean(s["ssim"]), _mean(s["psnr"]), _mean(s["perceptual"]), len(s["ssim"]),
                          self.skipped[part])


def _mean(values: Sequence[float]) -> float:
    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else math.nan


def pose_scores(detected: np.ndarray, inputs: np.ndarray, conf_thr: float = CONF_THRESHOLD) -> PoseScores:
    """Detector output (T, 137, 3) against the input keypoints (T, 137, 3), per part."""
    dist = pose_distance(detected, inputs, conf_thr=conf_thr)
    miss = missed_detections(detected, inputs, conf_thr=conf_thr)
    parts = tuple(POSE_PARTS)
    found = int(((np.asarray(detected)[:, BODY, 2] > conf_thr).sum(axis=1) >= 1).sum())
    return PoseScores(
        distance={p: dist[p] for p in parts},
        distance_norm={p: dist[f"{p}_norm"] for p in parts},
        pairs={p: int(dist[f"{p}_n"]) for p in parts},
        missed={p: miss[p] for p in parts},
        missed_rate={p: miss[f"{p}_rate"] for p in parts},
        frames_with_person=found,
    )


def _held_out_notes(run: RunDir, config: RunConfig, ref: _Reference) -> list[str]:
    notes = []
    data = ref.data
    if config.data.sha256 != data.manifest["source"]["sha256"]:
        raise InputError(run.root, f"was trained on another video than {data.root}: evaluation needs the "
                                   "target's own prepared data")
    manifest = run.manifest()
    if manifest is not None:
        try:
            train_split = manifest["split"]["train"]
            t0, t1 = int(train_split[0]), int(train_split[1])
        except (ValueError, KeyError, TypeError, IndexError):
            t0 = t1 = 0
        overlap = max(0, min(t1, ref.stop) - max(t0, ref.start))
        if overlap:
            notes.append(f"{overlap} evaluated frames were in this run's training split "
                         f"[{t0}, {t1}): they are not held out")
    return notes


def _identity() -> IdentityAccumulator | None:
    """The face-identity scorer, or None (said in the report) when dlib is not installed."""
    try:
        return IdentityAccumulator(FaceIdentity())
    except DancenowError:
        return None


def _evaluate_run(ref: _Reference, run_dir: Path, out_dir: Path, name: str, device: Any,
                  progress: bool) -> EvalReport:
    from tqdm import tqdm

    run = RunDir(run_dir)
    config = run.check_trained()
    notes = _held_out_notes(run, config, ref)
    model = load_trained(run_dir, device)
    data = ref.data
    if tuple(model.size) != tuple(data.size):
        raise InputError(run_dir, f"generates {model.size[0]}x{model.size[1]} frames but {data.root} holds "
                                  f"{data.size[0]}x{data.size[1]}")
    n = ref.stop - ref.start
    poses = data.poses.slice(ref.start, ref.stop)
    contact = set(np.unique(np.linspace(0, n - 1, min(CONTACT_ROWS, n)).round().astype(int)).tolist())
    acc = _Accumulator(ref, contact, _identity())
    gen_s = [0.0]
    metric_s = [0.0]

    def stream() -> Iterator[np.ndarray]:
        bar = tqdm(total=n, desc=f"evaluate {name}", unit="frame", disable=not progress)
        t = time.time()
        for f in TransferPipeline(model).frames_for(poses):
            t1 = time.time()
            gen_s[0] += t1 - t
            acc.add(f.index, data.read_frame(ref.start + f.index), f.label, f.image, f.face)
            t = time.time()
            metric_s[0] += t - t1
            bar.update()
            yield f.image
            t = time.time()
        bar.close()

    t0 = time.time()
    frames = stream()
    detected = _detect(ref.detector, frames, n, float(data.manifest["fps"]), data.size, False, "generated frames")
    for _ in frames:  # a detector that stopped early still gets every frame scored
        pass
    total = time.time() - t0
    if acc.count != n:
        raise DancenowError(f"generated {acc.count} of {n} frames")
    report = EvalReport(
        name=name,
        run=str(run_dir),
        data=str(data.root),
        frames=(ref.start, ref.stop),
        size=tuple(int(v) for v in data.size),
        flags=_run_flags(config, model.face_generator is not None),
        perceptual_metric=ref.metric_name,
        lpips_status=ref.lpips_note,
        psnr_cap_db=PSNR_CAP_DB,
        body=acc.crop_scores("body"),
        face=acc.crop_scores("face"),
        pose_generated=pose_scores(detected, ref.inputs),
        pose_real=ref.real_scores,
        flicker_generated=_mean(acc.flicker_gen),
        flicker_real=_mean(acc.flicker_real),
        sharpness_body=acc.sharpness("body"),
        sharpness_face=acc.sharpness("face"),
        identity=acc.identity.scores() if acc.identity is not None else None,
        face_full=acc.crop_scores("face_full") if data.face_hr_size else None,
        sharpness_face_full=acc.sharpness("face_full"),
        body_ssim_by_motion=acc.body_by_motion(),
        identity_on="full-resolution faces" if data.face_hr_size else "frames",
        notes=tuple(notes),
        seconds={"generate": round(gen_s[0], 3), "image_metrics": round(metric_s[0], 3),
                 "detect_generated": round(total - gen_s[0] - metric_s[0], 3),
                 "detect_real": round(ref.detect_real_s, 3)},
    )
    _write_outputs(report, out_dir, acc.rows)
    return report


# ------------------------------------------------------------------ outputs
def _fmt(v: Any, digits: int) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{float(v):.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _pose_rows(reports: Sequence[EvalReport], attr: str, digits: int) -> list[list[str]]:
    rows = [[r.name] + [_fmt(getattr(r.pose_generated, attr)[p], digits) for p in PART_LABELS] for r in reports]
    real = reports[0].pose_real
    rows.append(["real"] + [_fmt(getattr(real, attr)[p], digits) for p in PART_LABELS])
    return rows


def _tables(reports: Sequence[EvalReport]) -> list[str]:
    """The paper-shaped tables, one row per report (plus the real row where it applies)."""
    r0 = reports[0]
    m = r0.perceptual_metric
    w, h = r0.size
    lines = ["## Image quality (held-out frames)", ""]
    lines += _table(["", "Body SSIM ↑", f"Body {m} ↓", "Face SSIM ↑", f"Face {m} ↓"],
                    [[r.name, _fmt(r.body.ssim, 4), _fmt(r.body.perceptual, 4), _fmt(r.face.ssim, 4),
                      _fmt(r.face.perceptual, 4)] for r in reports])
    lines += ["", f"PSNR in dB, each frame capped at {r0.psnr_cap_db:g} dB before averaging:", ""]
    lines += _table(["", "Body PSNR ↑", "Face PSNR ↑", "Body frames (skipped)", "Face frames (skipped)"],
                    [[r.name, _fmt(r.body.psnr, 2), _fmt(r.face.psnr, 2), f"{r.body.frames} ({r.body.skipped})",
                      f"{r.face.frames} ({r.face.skipped})"] for r in reports])
    if r0.body_ssim_by_motion:
        lines += ["", "Body SSIM by motion: the held-out frames in thirds by how far the fastest body point of "
                      "the pose moved from the frame before ↑:", ""]
        lines += _table(["", *(f"{t} third" for t in MOTION_THIRDS)],
                        [[r.name] + [_fmt(r.body_ssim_by_motion.get(t), 4) for t in MOTION_THIRDS] for r in reports])
    lines += ["", "## Pose distance (detector on the frames vs the input keypoints)", "",
              f"Mean L2 distance in pixels at {w}x{h}, over points detected in both ↓:", ""]
    lines += _table(["", *PART_LABELS.values()], _pose_rows(reports, "distance", 2))
    lines += ["", "Divided by the person's height ↓:", ""]
    lines += _table(["", *PART_LABELS.values()], _pose_rows(reports, "distance_norm", 4))
    lines += ["", "## Missed detections (input points not detected, per image ↓)", ""]
    lines += _table(["", *PART_LABELS.values()], _pose_rows(reports, "missed", 2))
    lines += ["", "## Temporal flicker", "",
              "Mean |frame_t − warp(frame_t−1)| along the real frames' optical flow, intensity 0–255 ↓:", ""]
    lines += _table(["", "Flicker ↓", "Flicker / real ↓"],
                    [[r.name, _fmt(r.flicker_generated, 3), _fmt(r.flicker_generated / r.flicker_real, 2)]
                     for r in reports] + [["real", _fmt(r0.flicker_real, 3), "1.00"]])
    lines += ["", "## Sharpness and identity", "",
              "Sharpness: the generated crops' high-frequency energy (mean squared Laplacian) over the real "
              "crops' (1 = as sharp ↑). Identity: dlib's face-recognition distance between the generated and "
              f"the real face (↓), and the share of frames below {SAME_PERSON} (same person ↑), over frames "
              "where the real face could be placed:", ""]
    lines += _table(["", "Body sharpness", "Face sharpness", "Identity distance", "Same person", "Faces (skipped)"],
                    [[r.name, _fmt(r.sharpness_body, 3), _fmt(r.sharpness_face, 3)] + _identity_cells(r.identity)
                     for r in reports])
    if r0.face_full is not None:
        lines += ["", f"Identity was measured on the faces at full resolution. The face at full resolution "
                      "(the face box cut from the original video; a model without full-resolution faces is "
                      "scored on its face crop upsampled, bicubic):", ""]
        lines += _table(["", "Face SSIM ↑", f"Face {m} ↓", "Face PSNR ↑", "Face sharpness", "Faces (skipped)"],
                        [[r.name] + _full_face_cells(r) for r in reports])
    return lines


def _full_face_cells(r: EvalReport) -> list[str]:
    f = r.face_full
    if f is None:
        return ["–"] * 5
    return [_fmt(f.ssim, 4), _fmt(f.perceptual, 4), _fmt(f.psnr, 2), _fmt(r.sharpness_face_full, 3),
            f"{f.frames} ({f.skipped})"]


def _identity_cells(s: IdentityScores | None) -> list[str]:
    if s is None:
        return ["– (dlib not installed)", "–", "–"]
    return [_fmt(s.distance, 3), _fmt(s.same_person, 3), f"{s.frames} ({s.skipped})"]


def _metric_note(report: EvalReport) -> list[str]:
    lines = [f"Perceptual metric: **{report.perceptual_metric}**."]
    if report.lpips_status:
        lines += ["This is not LPIPS; its values are not comparable with the paper's LPIPS figures.",
                  "", "```", report.lpips_status, "```"]
    return lines


def report_markdown(report: EvalReport) -> str:
    """report.md of one run."""
    r = report
    w, h = r.size
    flags = ", ".join(f"{k}={_fmt(v, 0) if isinstance(v, bool) else v}" for k, v in r.flags.items())
    lines = [f"# Evaluation of {r.name}", "",
             f"- run: `{r.run}`", f"- data: `{r.data}`",
             f"- frames: held-out frames {r.frames[0]}–{r.frames[1] - 1} ({r.n_frames}) at {w}x{h}, "
             "regenerated in order from their own poses",
             f"- flags: {flags}", ""]
    lines += _metric_note(r) + [""]
    lines += _tables([r])
    lines += ["", "Rows: the run's generated frames; \"real\": the detector on the real frames (its own error)."]
    if r.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in r.notes]
    lines += ["", "Contact sheet (`contact_sheet.png`): rows of real | pose | generated | face close-ups (real | generated).",
              "", f"Seconds: {', '.join(f'{k} {v:g}' for k, v in r.seconds.items())}", ""]
    return "\n".join(lines)


def compare_markdown(reports: Sequence[EvalReport]) -> str:
    """compare.md: one row per run, on the same frames."""
    r0 = reports[0]
    w, h = r0.size
    lines = ["# Comparison of runs", "",
             f"- data: `{r0.data}`",
             f"- frames: held-out frames {r0.frames[0]}–{r0.frames[1] - 1} ({r0.n_frames}) at {w}x{h}", ""]
    flag_keys = ["use_temporal", "use_face_gan", "face_generator"]
    lines += _table(["run", "temporal", "face GAN", "face generator loaded", "folder"],
                    [[r.name] + [_fmt(r.flags.get(k), 0) for k in flag_keys] + [f"`{r.run}`"] for r in reports])
    lines += [""] + _metric_note(r0) + [""]
    lines += _tables(reports)
    notes = [f"{r.name}: {n}" for r in reports for n in r.notes]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    lines += [""]
    return "\n".join(lines)


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _write_outputs(report: EvalReport, out_dir: Path, rows: list[np.ndarray]) -> None:

    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "metrics.json", json_safe(report.to_dict()))
    _write_text(out_dir / "report.md", report_markdown(report))
    if rows:
        sep = np.full((2, rows[0].shape[1], 3), 255, np.uint8)
        sheet = np.concatenate([x for row in rows for x in (row, sep)][:-1], axis=0)
        write_image(out_dir / "contact_sheet.png", sheet)


# ------------------------------------------------------------------ entry points
def evaluate(run_dir: str | Path, data_dir: str | Path, out_dir: str | Path, *, device: str | None = None,
             max_frames: int | None = None, detector: Detector | None = None, progress: bool = True) -> EvalReport:
    """Evaluate one trained run on the held-out frames of its target; write OUT's report.

    max_frames: evaluate only the first N held-out frames (contiguous, so the temporal
    chain and flicker stay meaningful). detector: the pose detector (default
    `dancenow.pose.detect.detect_frames`). Raises InputError for a missing or incomplete
    run or data folder.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    RunDir(run_dir).check_trained()
    dev = pick_device(device)
    ref = _make_reference(data_dir, dev, max_frames, detector, progress)
    return _evaluate_run(ref, run_dir, out_dir, run_dir.resolve().name, dev, progress)


def _unique_names(run_dirs: Sequence[Path]) -> list[str]:
    names: list[str] = []
    for d in run_dirs:
        base = d.resolve().name or "run"
        name, i = base, 2
        while name in names:
            name, i = f"{base}-{i}", i + 1
        names.append(name)
    return names


def compare(run_dirs: Sequence[str | Path], data_dir: str | Path, out_dir: str | Path, *,
            device: str | None = None, max_frames: int | None = None, detector: Detector | None = None,
            progress: bool = True) -> list[EvalReport]:
    """Evaluate several runs on the same held-out frames (the real frames are detected once).

    Each run's report goes to OUT/<run folder name>/; OUT/compare.md and OUT/compare.json
    hold one row per run. The paper's ablation: three `dancenow train` runs (full,
    use_temporal=false, use_face_gan=false) and one `compare`.
    """
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise ValueError("compare needs at least one run folder")
    out_dir = Path(out_dir)
    for d in dirs:  # fail on a bad run before any slow work
        RunDir(d).check_trained()
    dev = pick_device(device)
    ref = _make_reference(data_dir, dev, max_frames, detector, progress)
    names = _unique_names(dirs)
    reports = [_evaluate_run(ref, d, out_dir / name, name, dev, progress) for d, name in zip(dirs, names)]
    write_json(out_dir / "compare.json", json_safe({
        "data": str(ref.data.root),
        "frames": {"start": ref.start, "stop": ref.stop, "count": ref.stop - ref.start},
        "perceptual_metric": ref.metric_name,
        "psnr_cap_db": PSNR_CAP_DB,
        "runs": [r.to_dict() for r in reports],
    }))
    _write_text(out_dir / "compare.md", compare_markdown(reports))
    return reports


def summary_line(r: EvalReport) -> str:
    """One line of the main figures of a report."""
    return (f"{r.name}: body SSIM {_fmt(r.body.ssim, 4)}, {r.perceptual_metric} {_fmt(r.body.perceptual, 4)}; "
            f"face SSIM {_fmt(r.face.ssim, 4)}; pose dist {_fmt(r.pose_generated.distance['all'], 2)} px "
            f"(real {_fmt(r.pose_real.distance['all'], 2)}); flicker {_fmt(r.flicker_generated, 2)} "
            f"(real {_fmt(r.flicker_real, 2)}); sharpness body {_fmt(r.sharpness_body, 3)}, face "
            f"{_fmt(r.sharpness_face, 3)}; same person "
            f"{_fmt(r.identity.same_person, 3) if r.identity is not None else '–'}")


def run_evaluate(model: str | Path, data: str | Path, output: str | Path, device: str | None = None,
                 max_frames: int | None = None, progress: bool = True) -> int:
    """CLI body of `dancenow evaluate`: evaluate, print a short summary; returns the exit code."""
    r = evaluate(model, data, output, device=device, max_frames=max_frames, progress=progress)
    print(summary_line(r))
    if r.lpips_status:
        print(f"note: {r.perceptual_metric} is not LPIPS (LPIPS weights not installed; see report.md)")
    print(f"{output}: report.md, metrics.json, contact_sheet.png ({r.n_frames} held-out frames)")
    return 0


def run_compare(runs: Sequence[str | Path], data: str | Path, output: str | Path, device: str | None = None,
                max_frames: int | None = None, progress: bool = True) -> int:
    """CLI body of `dancenow compare`: evaluate every run on the same frames, print one line each."""
    reports = compare(runs, data, output, device=device, max_frames=max_frames, progress=progress)
    for r in reports:
        print(summary_line(r))
    if reports and reports[0].lpips_status:
        print(f"note: {reports[0].perceptual_metric} is not LPIPS (LPIPS weights not installed; see compare.md)")
    print(f"{output}: compare.md, compare.json ({len(reports)} runs, {reports[0].n_frames} held-out frames)")
    return 0
