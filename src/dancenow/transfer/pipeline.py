"""`dancenow transfer`: a source dance in, the target person dancing out.

Stages: source poses (detector, or a poses file / OpenPose folder) -> scene segments ->
per-segment smoothing -> global normalization against the target statistics saved in
the run -> stick figures rendered as in training -> generation in order with temporal
feedback -> face GAN residual on the face crop -> H.264 video with the source's audio.
As code: `TransferPipeline(model, cfg).plan(poses) -> SourcePlan` (segments, smoothing,
normalization, resampling), `.frames(plan) -> TransferFrame...` (generation), and
`TransferVideo` (the video); `transfer`, the synthetic benchmark and `evaluate` (through
`.frames_for(poses)`) consume the same frame generator.

Frames with no person and scene cuts are handled on purpose:
- a scene cut (all body points jump by more than `cut_threshold` x the person's
  height between two frames, or the person reappears after a gap) starts a new
  segment: smoothing never blends across it and the temporal chain restarts (the
  generator's "previous frame" input is reset to zeros, as for a video's first frame);
- gaps of up to `SmoothingConfig.max_gap_s` are filled by interpolated poses; in
  longer gaps the output shows the target's empty background plate, cross-faded over
  `fade_s` seconds from the last generated frame (the target "leaves the stage").
Memory is bounded: poses are held for the whole video (small), frames are streamed.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from dancenow.device import pick_device
from dancenow.errors import InputError
from dancenow.models.face import FEATHER
from dancenow.pose.geometry import person_present, resample_indices
from dancenow.pose.normalize import NormStats, compute_stats, normalize_poses, source_transforms
from dancenow.pose.pipeline import load_poses_for
from dancenow.pose.render import STICK_CHANNELS
from dancenow.pose.schema import BODY, PoseSequence
from dancenow.run import TrainedModel, load_trained
from dancenow.tensors import feather_mask
from dancenow.transfer.backend import BackendChoice, Chain, Generator, face_boxes_for, face_label_for, make_generator  # noqa: F401 (Generator: re-export)
from dancenow.video import VideoWriter, probe, read_frames
from dancenow.pose.smoothing import SmoothingConfig, smooth_keypoints


# ------------------------------------------------------------------ segments
def scene_segments(keypoints: np.ndarray, cut_threshold: float = 0.5, min_conf: float = 0.1) -> np.ndarray:
    """(T, 137, 3) -> (T,) int segment id; a new segment starts at a scene cut.

    A cut is declared between frames t-1 and t when both show a person and the median
    displacement of the body points seen in both exceeds `cut_threshold` x the person's
    height (the whole skeleton jumped), or when fewer than 3 points are shared while
    both frames have a person (another shot, another person).
    """
    T = len(keypoints)
    seg = np.zeros(T, dtype=np.int64)
    body = keypoints[:, BODY]
    ok = body[:, :, 2] > min_conf
    cur = 0
    for t in range(1, T):
        if ok[t].sum() >= 3 and ok[t - 1].sum() >= 3:
            both = ok[t] & ok[t - 1]
            ys = body[t - 1, ok[t - 1], 1]
            height = max(1.0, float(ys.max() - ys.min()))
            if both.sum() < 3:
                cur += 1
            else:
                d = np.linalg.norm(body[t, both, :2] - body[t - 1, both, :2], axis=1)
                if float(np.median(d)) > cut_threshold * height:
                    cur += 1
        seg[t] = cur
    return seg


def smooth_by_segment(seq: PoseSequence, segments: np.ndarray, cfg: SmoothingConfig = SmoothingConfig()) -> PoseSequence:
    """Smooth each segment on its own (nothing is blended across a scene cut)."""
    kp = seq.keypoints.copy()
    for s in np.unique(segments):
        idx = np.flatnonzero(segments == s)
        kp[idx] = smooth_keypoints(seq.keypoints[idx], seq.fps, cfg)
    return seq.with_keypoints(kp)


# ------------------------------------------------------------------ the command
@dataclass(frozen=True)
class TransferConfig:
    fps: float | None = None
    audio: bool = True
    side_by_side: bool = False
    start: float | None = None
    end: float | None = None
    cut_threshold: float = 0.5
    fade_s: float = 0.25
    precision: str = "fp32"
    backend: str = "torch"  # auto | torch | onnx | openvino (see dancenow.transfer.backend)
    output_long_side: int | None = None  # the output's long side in pixels (None: see `output_frame_size`)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)


@dataclass(frozen=True)
class TransferResult:
    output: Path
    frames: int
    fps: float
    segments: int
    frames_without_person: int
    seconds: dict
    backend: str = ""  # which backend generated, and why (BackendChoice.describe())


@dataclass(frozen=True, eq=False)
class SourcePlan:
    """The source's poses made ready for generation: stage `TransferPipeline.plan`'s output.

    Per source frame (T): segments, the scene-segment id; smooth, the per-segment smoothed
    poses (source pixels); stats, the source's normalization statistics; normalized, `smooth`
    in the target's pixels; transforms, (scale (T,), anchor_src (T, 2), anchor_tgt (T, 2)), the
    per-frame similarity that maps source pixels to target pixels (it maps any keypoints of
    the source frame the same way, e.g. the exact skeleton of a synthetic source).
    Per output frame (N, after resampling to `fps` and cutting to [start, end]): indices, the
    source frame shown; present, whether it has a person. fade_frames: output frames of the
    cross-fade to the background plate when the person leaves.
    """

    segments: np.ndarray
    smooth: PoseSequence
    stats: NormStats
    normalized: PoseSequence
    transforms: tuple[np.ndarray, np.ndarray, np.ndarray]
    indices: np.ndarray
    fps: float
    present: np.ndarray
    fade_frames: int

    def __len__(self) -> int:
        """The number of output frames."""
        return len(self.indices)

    @property
    def poses(self) -> PoseSequence:
        """The normalized poses of the output frames (N, 137, 3), at the output fps."""
        n, idx = self.normalized, self.indices
        return PoseSequence(n.keypoints[idx], n.width, n.height, self.fps, n.timestamps[idx], n.meta)

    @property
    def output_segments(self) -> np.ndarray:
        """(N,) scene-segment id of each output frame."""
        return self.segments[self.indices]

    @property
    def audio_start(self) -> float:
        """The source time (s) of the first output frame: where its audio starts."""
        return float(self.smooth.timestamps[self.indices[0]])


@dataclass(frozen=True, eq=False)
class TransferFrame:
    """One generated frame: stage `TransferPipeline.frames`'s output.

    index: output frame j. source_index: the source frame it shows (j itself for
    `frames_for`). keypoints: (137, 3) the pose drawn, in the target's pixels. label:
    (H, W, 3) uint8 stick figure given to the generator. image: (H, W, 3) uint8 result.
    face: (S, S, 3) uint8 the face at its full resolution (models trained with full-resolution
    faces), else None; face_box: (4,) int x0, y0, x1, y1 of the face in `image`, or None.
    """

    index: int
    source_index: int
    keypoints: np.ndarray
    label: np.ndarray
    image: np.ndarray
    face: np.ndarray | None = None
    face_box: np.ndarray | None = None


class TransferPipeline:
    """The transfer's named stages: `plan(source poses) -> SourcePlan`, `frames(plan) -> TransferFrame...`.

    `transfer` (a video), the synthetic benchmark and `evaluate` (via `frames_for`, on poses
    already in the target's pixels) all consume the same frame generator.
    """

    def __init__(self, model: TrainedModel, cfg: TransferConfig = TransferConfig()):
        self.model = model
        self.cfg = cfg
        self.choice: BackendChoice | None = None  # set by the first frames(): which backend generates
        self._gen = None

    def _generator(self, poses: PoseSequence, present: np.ndarray):
        """The frame generator of `cfg.backend`, made once; "auto" measures on up to 10 of these poses."""
        if self._gen is None:
            chain = Chain.of(self.model, poses.keypoints[np.flatnonzero(present)[:10]])
            self._gen = make_generator(self.model, self.cfg.backend, self.cfg.precision, chain)
            self.choice = self._gen.choice
        self._gen.reset()
        return self._gen

    def plan(self, seq: PoseSequence, source: Path | str = "source") -> SourcePlan:
        """Scene segments, per-segment smoothing, global normalization and resampling of `seq`.

        Raises InputError (naming `source`) when no frame has a person, the poses cannot be
        normalized, or no frame lies between the config's start and end.
        """
        cfg = self.cfg
        if not person_present(seq.keypoints).any():
            raise InputError(source, "no person detected in any frame: nothing to transfer")
        segments = scene_segments(seq.keypoints, cfg.cut_threshold)
        smooth = smooth_by_segment(seq, segments, cfg.smoothing)
        target = self.model.target_stats
        try:
            stats = compute_stats(smooth)
            normalized = normalize_poses(smooth, stats, target)
        except ValueError as exc:
            raise InputError(source, f"cannot normalize the source: {exc}") from None
        idx, fps = resample_indices(seq.timestamps, cfg.fps, cfg.start, cfg.end)
        if len(idx) == 0:
            raise InputError(source, f"no frames between --start {cfg.start} and --end {cfg.end}")
        return SourcePlan(segments, smooth, stats, normalized, source_transforms(smooth, stats, target),
                          idx, fps, person_present(smooth.keypoints[idx]), max(0, int(round(cfg.fade_s * fps))))

    def frames(self, plan: SourcePlan) -> Iterator[TransferFrame]:
        """Generate the plan's output frames in order (len(plan) of them)."""
        return self._generate(plan.poses, plan.output_segments, plan.present, plan.fade_frames, plan.indices)

    def frames_for(self, poses: PoseSequence, fade_frames: int = 4) -> Iterator[TransferFrame]:
        """Generate a frame for every pose of `poses` (already in the target's pixels; one segment)."""
        return self._generate(poses, np.zeros(len(poses), np.int64), person_present(poses.keypoints), fade_frames,
                              np.arange(len(poses)))

    def _generate(self, poses: PoseSequence, segments: np.ndarray, present: np.ndarray, fade_frames: int,
                  source_index: np.ndarray) -> Iterator[TransferFrame]:
        """The one generation loop.

        The temporal chain restarts where the segment id changes and after frames without a
        person; frames without a person show the background plate, faded in from the last frame.
        """
        model = self.model
        w, h = model.size
        boxes = face_boxes_for(model, poses.keypoints)
        gen = self._generator(poses, present)
        bg = model.background if model.background is not None else np.zeros((h, w, 3), np.uint8)
        last, since_gone = None, 0
        for t in range(len(poses)):
            kp = poses.keypoints[t]
            label = model.render_label(kp)
            if t > 0 and segments[t] != segments[t - 1]:
                gen.reset()
            face, box = None, boxes[t]
            if present[t]:
                since_gone = 0
                image, face = gen(label, box, face_label_for(model, kp, box))
                last = image
            else:
                gen.reset()
                since_gone += 1
                image, box = _fade(last, bg, since_gone, fade_frames), None
            yield TransferFrame(t, int(source_index[t]), kp, label[:, :, :STICK_CHANNELS], image, face,
                                box if face is not None else None)


MAX_AUTO_LONG_SIDE = 2048


def output_frame_size(model: TrainedModel, long_side: int | None) -> tuple[int, int]:
    """(width, height) of the output: the model's frames scaled to `long_side` (even sides, as
    H.264 needs). None: where the model makes full-resolution faces, the scale that shows them
    at full detail (long side at most MAX_AUTO_LONG_SIDE); else the model's own size."""
    w, h = model.size
    if long_side is None:
        if not model.face_hr_size:
            return w, h
        long_side = min(MAX_AUTO_LONG_SIDE, int(round(max(w, h) * model.face_hr_size / model.face_box_size)))
    s = long_side / max(w, h)
    return max(2, 2 * int(round(w * s / 2))), max(2, 2 * int(round(h * s / 2)))


def upscale_frame(frame: TransferFrame, size: tuple[int, int]) -> np.ndarray:
    """`frame.image` at (width, height): resized (Lanczos up, area down), with the full-resolution
    face (where the model makes one) pasted over its box at the new scale, feathered at the edges."""
    w, h = size
    H, W = frame.image.shape[:2]
    if (w, h) == (W, H) and frame.face is None:
        return frame.image
    img = cv2.resize(frame.image, (w, h), interpolation=cv2.INTER_LANCZOS4 if w > W else cv2.INTER_AREA)
    if frame.face is None or frame.face_box is None or w <= W:
        return img
    x0, y0, x1, _ = (float(v) for v in frame.face_box)
    side = max(2, int(round((x1 - x0) * w / W)))
    X0, Y0 = int(round(x0 * w / W)), int(round(y0 * h / H))
    interp = cv2.INTER_AREA if side < frame.face.shape[0] else cv2.INTER_LANCZOS4
    face = cv2.resize(frame.face, (side, side), interpolation=interp).astype(np.float32)
    m = feather_mask(side, max(1, side // FEATHER)).numpy()[..., None]
    ys, xs = slice(max(0, Y0), min(h, Y0 + side)), slice(max(0, X0), min(w, X0 + side))
    fy, fx = slice(ys.start - Y0, ys.stop - Y0), slice(xs.start - X0, xs.stop - X0)
    region = img[ys, xs].astype(np.float32)
    img[ys, xs] = (m[fy, fx] * face[fy, fx] + (1 - m[fy, fx]) * region).round().clip(0, 255).astype(np.uint8)
    return img


def _fade(last: np.ndarray | None, bg: np.ndarray, since_gone: int, fade_frames: int) -> np.ndarray:
    """The frame `since_gone` frames after the person left: `last` cross-faded into the plate `bg`."""
    if last is None or since_gone > fade_frames:
        return bg.copy()
    a = since_gone / (fade_frames + 1)
    return ((1 - a) * last.astype(np.float32) + a * bg.astype(np.float32)).round().astype(np.uint8)


# ------------------------------------------------------------------ the video
class TransferVideo:
    """The transfer's H.264 video with the source's audio: the result frames, or side-by-side
    rows source | label | result [| extra panels]. A context manager, like `VideoWriter`.

    `seconds` holds the time spent composing and encoding.
    """

    def __init__(self, output: Path | str, plan: SourcePlan, source: Path | str, *, side_by_side: bool = False,
                 audio: bool = True, progress: bool = False, size: tuple[int, int] | None = None):
        source = Path(source)
        has_audio = audio and probe(source).has_audio
        self.side_by_side = side_by_side
        self.size = size  # the result's (width, height); None: the generated frames' own
        self.seconds = 0.0
        self._sources = _source_frames(source, plan.indices) if side_by_side else None
        self._writer = VideoWriter(output, fps=plan.fps, audio_from=source if has_audio else None,
                                   audio_start=plan.audio_start)
        self._bar = tqdm(total=len(plan), desc="transfer", unit="frame", disable=not progress)

    def __enter__(self) -> "TransferVideo":
        return self

    def __exit__(self, *exc) -> None:
        self._bar.close()
        self._writer.__exit__(*exc)

    def write(self, frame: TransferFrame, extra_panels: Sequence[np.ndarray] = ()) -> None:
        """Append one frame; side by side, `extra_panels` (images of the frame's height) go right of the result."""
        t = time.time()
        image = upscale_frame(frame, self.size) if self.size is not None else frame.image
        if self.side_by_side:
            h = image.shape[0]
            panels = [_fit(p, h) for p in (next(self._sources), frame.label, image, *extra_panels)]
            image = np.concatenate(panels, axis=1)
        self._writer.write(image)
        self._bar.update()
        self.seconds += time.time() - t


# ------------------------------------------------------------------ the command
def load_source_poses(source: Path, poses: str | Path | None, progress: bool) -> PoseSequence:
    if poses is None:
        from dancenow.pose.detect import detect_video

        return detect_video(source, progress=progress)
    return load_poses_for(source, poses)


def transfer(source: str | Path, run_dir: str | Path, output: str | Path, cfg: TransferConfig = TransferConfig(), *,
             poses: str | Path | PoseSequence | None = None, device: str | None = None,
             progress: bool = True, side_by_side_output: str | Path | None = None) -> TransferResult:
    """Make `output`: the trained target dancing the source's moves.

    side_by_side_output: also write the side-by-side view (source | pose | result) there, from
    the same generated frames (one generation pass for both videos)."""
    source, output = Path(source), Path(output)
    times: dict[str, float] = {}
    probe(source)  # clear error for a bad source
    pipe = TransferPipeline(load_trained(run_dir, pick_device(device)), cfg)
    t = time.time()
    seq = poses if isinstance(poses, PoseSequence) else load_source_poses(source, poses, progress)
    times["detect_s"] = time.time() - t
    t = time.time()
    plan = pipe.plan(seq, source)
    times["normalize_s"] = time.time() - t
    t = time.time()
    size = output_frame_size(pipe.model, cfg.output_long_side)
    with contextlib.ExitStack() as stack:
        video = stack.enter_context(TransferVideo(output, plan, source, side_by_side=cfg.side_by_side,
                                                  audio=cfg.audio, progress=progress, size=size))
        videos = [video]
        if side_by_side_output is not None:
            videos.append(stack.enter_context(TransferVideo(side_by_side_output, plan, source, side_by_side=True,
                                                            audio=cfg.audio, size=size)))
        for frame in pipe.frames(plan):
            for v in videos:
                v.write(frame)
    encode_s = sum(v.seconds for v in videos)
    times["generate_s"] = time.time() - t - encode_s
    times["encode_s"] = encode_s
    return TransferResult(output, len(plan), plan.fps, int(len(np.unique(plan.output_segments))),
                          int((~plan.present).sum()), times, pipe.choice.describe() if pipe.choice else "")


def _fit(image: np.ndarray, height: int) -> np.ndarray:
    if image.shape[0] == height:
        return image
    w = max(2, int(round(image.shape[1] * height / image.shape[0])))
    interp = cv2.INTER_AREA if image.shape[0] > height else cv2.INTER_LINEAR
    return cv2.resize(image, (w, height), interpolation=interp)


def _source_frames(source: Path, idx: np.ndarray) -> Iterator[np.ndarray]:
    """Stream the source frames at the given (non-decreasing) indices, repeating as needed."""
    frames = read_frames(source)
    cur = None
    cur_i = -1
    for want in idx:
        while cur_i < want:
            f = next(frames, None)
            if f is None:  # the container had fewer frames than the poses: hold the last one
                break
            cur, cur_i = f.image, f.index
        yield cur
