"""`dancenow transfer`: a source dance in, the target person dancing out.

Stages: source poses (detector, or a poses file / OpenPose folder) -> scene segments ->
per-segment smoothing -> global normalization against the target statistics saved in
the run -> stick figures rendered as in training -> generation in order with temporal
feedback -> face GAN residual on the face crop -> H.264 video with the source's audio.

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

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from dancenow.device import autocast, pick_device
from dancenow.errors import InputError
from dancenow.models.face import refine_faces
from dancenow.pose.geometry import face_boxes, person_present, resample_indices
from dancenow.pose.normalize import NormStats, compute_stats, normalize_poses, source_transforms
from dancenow.pose.render import render_pose
from dancenow.run import TrainedModel, load_trained
from dancenow.tensors import face_box_tensor, to_image, to_tensor
from dancenow.pose.schema import BODY, PoseSequence
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


# ------------------------------------------------------------------ generation
class Generator:
    """Frame-by-frame generation with temporal feedback and the face residual."""

    def __init__(self, model: TrainedModel, precision: str = "fp32"):
        self.model = model
        self.prev: torch.Tensor | None = None
        self.precision = precision

    def reset(self) -> None:
        self.prev = None

    @torch.inference_mode()
    def __call__(self, label: np.ndarray, face_box: np.ndarray | None) -> np.ndarray:
        m = self.model
        x = to_tensor(label)[None].to(m.device)
        with autocast(m.device, self.precision):
            out = m.generator.step(x, self.prev).float()
            self.prev = out
            if m.face_generator is not None:
                out = refine_faces(m.face_generator, x, out, face_box_tensor(face_box))
        return to_image(out[0])


def generate_frames(model: TrainedModel, poses: PoseSequence, segments: np.ndarray | None = None,
                    present: np.ndarray | None = None, fade_frames: int = 4, precision: str = "fp32",
                    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (label, generated frame) for every frame of `poses` (already in target pixels).

    The chain restarts where the segment id changes and after frames without a person;
    frames without a person show the background plate, faded in from the last frame.
    """
    w, h = model.size
    T = len(poses)
    segments = np.zeros(T, np.int64) if segments is None else segments
    present = person_present(poses.keypoints) if present is None else present
    boxes, _ = face_boxes(poses.keypoints, w, h, side=model.face_box_size)
    gen = Generator(model, precision)
    bg = model.background if model.background is not None else np.zeros((h, w, 3), np.uint8)
    last, since_gone = None, 0
    for t in range(T):
        label = render_pose(poses.keypoints[t], w, h, model.config.render)
        if t > 0 and segments[t] != segments[t - 1]:
            gen.reset()
        if not present[t]:
            gen.reset()
            since_gone += 1
            if last is not None and since_gone <= fade_frames:
                a = since_gone / (fade_frames + 1)
                frame = ((1 - a) * last.astype(np.float32) + a * bg.astype(np.float32)).round().astype(np.uint8)
            else:
                frame = bg.copy()
            yield label, frame
            continue
        since_gone = 0
        last = gen(label, boxes[t])
        yield label, last


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
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)


@dataclass(frozen=True)
class TransferResult:
    output: Path
    frames: int
    fps: float
    segments: int
    frames_without_person: int
    seconds: dict


@dataclass(frozen=True, eq=False)
class SourcePlan:
    """The source's poses made ready for generation (before resampling and cutting).

    segments: (T,) scene-segment id per source frame. smooth: the per-segment smoothed poses
    (source pixels). stats: the source's normalization statistics. normalized: `smooth` in
    the target's pixels. transforms: (scale (T,), anchor_src (T, 2), anchor_tgt (T, 2)), the
    per-frame similarity that maps source pixels to target pixels (it maps any keypoints of
    the source frame the same way, e.g. the exact skeleton of a synthetic source).
    """

    segments: np.ndarray
    smooth: PoseSequence
    stats: NormStats
    normalized: PoseSequence
    transforms: tuple[np.ndarray, np.ndarray, np.ndarray]


def plan_source(seq: PoseSequence, target_stats: NormStats, cfg: "TransferConfig", source: Path | str = "source"
                ) -> SourcePlan:
    """Scene segments, per-segment smoothing and global normalization of the source's poses."""
    segments = scene_segments(seq.keypoints, cfg.cut_threshold)
    smooth = smooth_by_segment(seq, segments, cfg.smoothing)
    try:
        stats = compute_stats(smooth)
        normalized = normalize_poses(smooth, stats, target_stats)
    except ValueError as exc:
        raise InputError(source, f"cannot normalize the source: {exc}") from None
    return SourcePlan(segments, smooth, stats, normalized, source_transforms(smooth, stats, target_stats))


def load_source_poses(source: Path, poses: str | Path | None, progress: bool) -> PoseSequence:
    if poses is None:
        from dancenow.pose.detect import detect_video

        return detect_video(source, progress=progress)
    from dancenow.pose.pipeline import load_poses_for

    return load_poses_for(source, poses)


def transfer(source: str | Path, run_dir: str | Path, output: str | Path, cfg: TransferConfig = TransferConfig(), *,
             poses: str | Path | PoseSequence | None = None, device: str | None = None, progress: bool = True,
             extra_panels: Callable[[int, np.ndarray, np.ndarray], list[np.ndarray]] | None = None,
             on_frame: Callable[[int, np.ndarray, np.ndarray], None] | None = None) -> TransferResult:
    """Make `output`: the trained target dancing the source's moves.

    extra_panels(source_index, normalized keypoints (137, 3), result) -> more images appended
    to the side-by-side row (the demo adds the ground truth this way).
    on_frame(source_index, normalized keypoints, result) is called for every output frame
    (benchmarks score frames this way without reading the video back).
    """
    from dancenow.video import VideoWriter, probe, read_frames

    source, output = Path(source), Path(output)
    times: dict[str, float] = {}
    meta = probe(source)  # clear error for a bad source
    model = load_trained(run_dir, pick_device(device))
    t = time.time()
    seq = poses if isinstance(poses, PoseSequence) else load_source_poses(source, poses, progress)
    times["detect_s"] = time.time() - t
    if not person_present(seq.keypoints).any():
        raise InputError(source, "no person detected in any frame: nothing to transfer")
    t = time.time()
    plan = plan_source(seq, model.target_stats, cfg, source)
    norm, segments = plan.normalized, plan.segments
    idx, fps = resample_indices(seq.timestamps, cfg.fps, cfg.start, cfg.end)
    if len(idx) == 0:
        raise InputError(source, f"no frames between --start {cfg.start} and --end {cfg.end}")
    sub = PoseSequence(norm.keypoints[idx], norm.width, norm.height, fps, norm.timestamps[idx], norm.meta)
    sub_seg = segments[idx]
    present = person_present(plan.smooth.keypoints[idx])
    times["normalize_s"] = time.time() - t

    need_source = cfg.side_by_side
    src_frames = _source_frames(source, idx, read_frames) if need_source else None
    fade = max(0, int(round(cfg.fade_s * fps)))
    audio_start = float(seq.timestamps[idx[0]])
    gen_t, enc_t = 0.0, 0.0
    bar = tqdm(total=len(idx), desc="transfer", unit="frame", disable=not progress)
    w, h = model.size
    with VideoWriter(output, fps=fps, audio_from=source if (cfg.audio and meta.has_audio) else None,
                     audio_start=audio_start) as writer:
        t = time.time()
        for j, (label, frame) in enumerate(generate_frames(model, sub, sub_seg, present, fade, cfg.precision)):
            t1 = time.time()
            gen_t += t1 - t
            if on_frame is not None:
                on_frame(int(idx[j]), sub.keypoints[j], frame)
            if cfg.side_by_side:
                panels = [_fit(next(src_frames), h), label, frame]
                if extra_panels is not None:
                    panels += extra_panels(int(idx[j]), sub.keypoints[j], frame)
                frame = np.concatenate(panels, axis=1)
            writer.write(frame)
            bar.update()
            t = time.time()
            enc_t += t - t1
    bar.close()
    times["generate_s"] = gen_t
    times["encode_s"] = enc_t
    return TransferResult(output, len(idx), fps, int(len(np.unique(sub_seg))), int((~present).sum()), times)


def _fit(image: np.ndarray, height: int) -> np.ndarray:
    import cv2

    w = max(2, int(round(image.shape[1] * height / image.shape[0])))
    interp = cv2.INTER_AREA if image.shape[0] > height else cv2.INTER_LINEAR
    return cv2.resize(image, (w, height), interpolation=interp)


def _source_frames(source: Path, idx: np.ndarray, read_frames) -> Iterator[np.ndarray]:
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
