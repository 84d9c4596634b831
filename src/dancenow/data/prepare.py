"""`dancenow prepare`: target video -> DATA_DIR with frames, poses, face boxes and a manifest.

Layout of DATA_DIR:
    manifest.json       written last: its presence means the folder is complete
    target_stats.json   normalization statistics of the target (ankle range, heights)
    poses.npz           keypoints in output pixels (PoseSequence): gaps filled, a 3-frame
                        median, refined along the frames' optical flow
    poses_raw.npz       detector output in original video pixels (reused on re-runs)
    background.png      static background plate (median of frames with the person masked out)
    face_boxes.npy      (T, 4) int32 x0, y0, x1, y1 in output pixels; all -1 where no face
    frames/000000.png   cropped, resized RGB frames
    faces/000000.png    the face box cut from the original video at the face's own resolution
                        (face_hr_size x face_hr_size), for frames with a face; only when the
                        video has at least 1.5x the prepared frames' detail there
    mattes/000000.png   the person's matte in each frame (grey PNG, 255 on the person), from
                        MediaPipe Pose's segmentation (`pose.segment`; with `plate_matte`,
                        corrected by the background plate): supervises the alpha

One fixed crop box is used for the whole video, so the person's scale and position stay real:
the person's extent over the video (the union of their boxes, with a margin) in the output's
aspect ratio. The output's aspect follows that extent (a portrait video gives portrait frames)
unless a fixed WxH is asked for, and the box never cuts the person: where the extent reaches
past the video's edge, the frames are padded (the edge pixels repeated). A video whose edge
cuts the person off in most frames is refused.
The last `val_fraction` of frames (contiguous) are the validation split.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from dancenow.atomic import atomic_path, write_json
from dancenow.errors import InputError
from dancenow.pose.normalize import NormStats, compute_stats
from dancenow.pose.pipeline import TARGET_STATS_FILE
from dancenow.pose.flow import refine_with_flow
from dancenow.pose.geometry import face_boxes, person_boxes, person_present, resample_indices
from dancenow.pose.render import render_person_mask
from dancenow.pose.schema import BODY, FACE, PoseSequence
from dancenow.pose.segment import PLATE_MATTE_VERSION, SEGMENTER_VERSION, PersonSegmenter, plate_matte
from dancenow.video import VideoMeta, probe, read_frames, read_image, write_image, write_mask
from dancenow.pose.smoothing import SmoothingConfig, smooth_poses

MANIFEST_VERSION = 1
PLATE_METHOD = "limb-masks-2"  # how background.png was made; older data gets a new plate on re-running prepare
MATTE_METHOD = SEGMENTER_VERSION  # how mattes/ were made; older data gets them on re-running prepare


@dataclass(frozen=True)
class PrepareConfig:
    """size: the prepared frames' long side; their aspect follows the person's extent over the
    whole video (a portrait video gives portrait frames). width and height (both): a fixed
    frame size instead. Either way the whole person is kept: the frame is padded where the
    person's extent reaches past the video's edge."""

    size: int = 256
    width: int | None = None
    height: int | None = None
    multiple: int = 16                # frame sides are multiples of this (the generators need it)
    fps: float | None = None          # subsample to this frame rate (None: keep every frame)
    margin: float = 0.12              # crop margin, fraction of the person box's height
    val_fraction: float = 0.1
    min_detected_fraction: float = 0.5
    conf_threshold: float = 0.1
    max_cut_fraction: float = 0.5     # fail when the video's edge cuts the person in more frames than this
    face_size: int = 128              # largest side of the full-resolution face crops (0: none)
    # The target's poses are labels of the frames they came from, so they stay where the detector
    # put them: gaps filled and a 3-frame median against one-frame spikes, no Gaussian (it moved
    # them 2.2 px on the fast third of the real dancer's frames, off the limbs the frames show).
    # At 1000 equal steps: held-out body SSIM 0.767 -> 0.778, flicker ratio 1.83 both (without
    # the median too: 0.785 but flicker 1.95). Sources are still smoothed in transfer.
    smoothing: SmoothingConfig = field(default_factory=lambda: SmoothingConfig(sigma_s=0.0))
    # Then each detection is averaged with its neighbours' carried along the video's optical flow
    # (`pose.flow`; the weight of its own detection, 1: off): the jitter falls without the lag. At
    # 1000 equal steps on the real target, weights 1 / 0.7 / 0.5 / 0.3: held-out body SSIM 0.777 /
    # 0.779 / 0.785 / 0.783, face SSIM 0.607 / 0.613 / 0.617 / 0.641, flicker ratio 1.89 / 1.71 /
    # 1.59 / 1.38. Session 10, the same screen: 0.3 0.785 / 0.644 / 1.39, 0.2 0.783 / 0.652 / 1.32
    # (body sharpness 0.54 -> 0.57); with the cpu preset's matte loss, 30 minutes: see PRESETS.
    flow_weight: float = 0.2
    # The mattes corrected by the background plate (`pose.segment.plate_matte`: a motion-blurred
    # kicked foot put in, a blob of wall the segmenter took dropped). Session 11, 30 minutes alone
    # each, cpu preset: held-out body SSIM 0.798 -> 0.796, face 0.691 -> 0.676, flicker ratio
    # 1.45 -> 1.51, body sharpness 0.91 -> 0.96; by eye the held-out kicks are drawn closer to the
    # real leg. One run each, mixed: off by default until a second comparison settles it.
    plate_matte: bool = False

    def __post_init__(self) -> None:
        if (self.width is None) != (self.height is None):
            raise ValueError("PrepareConfig: give both width and height, or neither (then size is the long side)")
        for name in ("size", "width", "height"):
            v = getattr(self, name)
            if v is not None and (v < self.multiple or v % self.multiple):
                raise ValueError(f"PrepareConfig: {name} {v} must be a positive multiple of {self.multiple}")
        if not 0.0 < self.flow_weight <= 1.0:
            raise ValueError(f"PrepareConfig: flow_weight {self.flow_weight} must be in (0, 1]")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- the crop
def person_extent(boxes: np.ndarray, margin: float) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) the person covers over the whole video, in frame pixels.

    boxes: (T, 4) per-frame person boxes (NaN rows: no person). The union of their robust
    edges (1st/99th percentiles), grown by `margin` x the person's median height, twice that
    above the head (hair is above the eyes)."""
    b = boxes[np.isfinite(boxes).all(axis=1)]
    x0, y0 = np.percentile(b[:, 0], 1), np.percentile(b[:, 1], 1)
    x1, y1 = np.percentile(b[:, 2], 99), np.percentile(b[:, 3], 99)
    ph = float(np.median(b[:, 3] - b[:, 1]))
    return x0 - margin * ph, y0 - 2.0 * margin * ph, x1 + margin * ph, y1 + margin * ph


def output_size(extent: tuple[float, float, float, float], cfg: PrepareConfig) -> tuple[int, int]:
    """(width, height) of the prepared frames: cfg's fixed size, or `size` on the long side of
    the person's extent and the short side rounded up to `multiple` (never below it)."""
    if cfg.width is not None:
        return int(cfg.width), int(cfg.height)
    w, h = extent[2] - extent[0], extent[3] - extent[1]
    short = max(cfg.multiple, int(np.ceil(cfg.size * min(w, h) / max(w, h) / cfg.multiple)) * cfg.multiple)
    return (cfg.size, short) if w >= h else (short, cfg.size)


def _place(lo: float, hi: float, side: int, frame: int) -> int:
    """Start of a span of `side` pixels that contains [lo, hi], inside [0, frame) where it fits."""
    start = (lo + hi) / 2 - side / 2
    start = min(max(start, min(0, frame - side)), max(0, frame - side))  # inside the frame if it can be
    return int(round(min(max(start, hi - side), lo)))  # but always around the person


def crop_box(extent: tuple[float, float, float, float], frame_w: int, frame_h: int, out_w: int,
             out_h: int) -> tuple[int, int, int, int]:
    """One crop box (x0, y0, w, h) in frame pixels for the whole video.

    The person's `extent`, widened or heightened to the output aspect around its centre, and
    moved inside the frame where it fits. It never cuts the person: where the extent reaches
    past the video's edge the box does too, and `crop_resize` pads there.
    """
    x0, y0, x1, y1 = extent
    w, h = x1 - x0, y1 - y0
    aspect = out_w / out_h
    w, h = (h * aspect, h) if w / h < aspect else (w, w / aspect)
    w, h = int(np.ceil(w)), int(np.ceil(h))
    return _place(x0, x1, w, frame_w), _place(y0, y1, h, frame_h), w, h


def face_hr_size(side: int, box: tuple[int, int, int, int], out_w: int, max_size: int) -> int:
    """Side of the full-resolution face crops: the prepared face box's side in video pixels,
    rounded down to a multiple of 16 and capped at `max_size`; 0 (none) where that is not at
    least 1.5x the prepared side (the video has no more detail than the prepared frames)."""
    hr = min(int(max_size), 16 * int(side * box[2] / out_w // 16))
    return hr if hr >= 1.5 * side else 0


def face_crop_box(face_box: np.ndarray, box: tuple[int, int, int, int], out_w: int) -> tuple[int, int, int, int]:
    """A prepared frame's face box (x0, y0, x1, y1, output pixels) as a crop (x0, y0, w, h) of the video."""
    s = box[2] / out_w
    x0, y0 = box[0] + face_box[0] * s, box[1] + face_box[1] * s
    side = int(round((face_box[2] - face_box[0]) * s))
    return int(round(x0)), int(round(y0)), side, side


def cut_by_frame(keypoints: np.ndarray, width: int, height: int, conf: float) -> np.ndarray:
    """(T,) bool: frames where a seen body point lies on or past the video's edge."""
    body = keypoints[:, BODY]
    ok = body[:, :, 2] > conf
    x, y = body[:, :, 0], body[:, :, 1]
    out = (x <= 0) | (y <= 0) | (x >= width - 1) | (y >= height - 1)
    return (ok & out).any(axis=1)


def crop_resize(image: np.ndarray, box: tuple[int, int, int, int], out_w: int, out_h: int) -> np.ndarray:
    """Cut `box` (x0, y0, w, h) out of an (H, W, 3) image (replicating the border where the
    box leaves the frame) and resize it to (out_h, out_w) with area interpolation."""
    x0, y0, w, h = box
    H, W = image.shape[:2]
    pad_l, pad_t = max(0, -x0), max(0, -y0)
    pad_r, pad_b = max(0, x0 + w - W), max(0, y0 + h - H)
    if pad_l or pad_t or pad_r or pad_b:
        image = cv2.copyMakeBorder(image, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_REPLICATE)
        x0, y0 = x0 + pad_l, y0 + pad_t
    crop = image[y0 : y0 + h, x0 : x0 + w]
    interp = cv2.INTER_AREA if w >= out_w else cv2.INTER_LINEAR
    return cv2.resize(crop, (out_w, out_h), interpolation=interp)


def transform_keypoints(keypoints: np.ndarray, box: tuple[int, int, int, int], out_w: int, out_h: int) -> np.ndarray:
    """Map (T, K, 3) frame pixels into the crop's output pixels; missing points stay zero."""
    x0, y0, w, h = box
    sx, sy = out_w / w, out_h / h
    kp = keypoints.copy()
    present = kp[:, :, 2] > 0
    kp[:, :, 0] = np.where(present, (kp[:, :, 0] - x0) * sx, 0.0)
    kp[:, :, 1] = np.where(present, (kp[:, :, 1] - y0) * sy, 0.0)
    return kp


def estimate_background(frames: np.ndarray, masks: np.ndarray, min_count: int = 4) -> np.ndarray:
    """Static-camera background plate from frames with the person masked out.

    frames: (N, H, W, 3) uint8; masks: (N, H, W) bool, where the person may be in each frame
    (`render_person_mask`: strokes along the limbs, so the gaps between the legs and beside
    the arms count as seen). Each pixel is the median of the frames whose mask leaves it free;
    pixels free in fewer than `min_count` frames are filled row by row, linearly between the
    nearest trusted pixels left and right (the person is upright, so the holes are tall and
    narrow, and a wall's skirting line or the floor's edge runs on through them), or by
    inpainting where a row has no trusted pixel on one side. Returns (H, W, 3) uint8.
    """
    data = np.where(masks[..., None], np.nan, frames.astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        bg = np.nanmedian(data, axis=0)
    hole = ~np.isfinite(bg).all(axis=-1) | ((~masks).sum(axis=0) < min_count)
    bg = np.nan_to_num(bg, nan=0.0).clip(0, 255)
    if hole.any():
        bg, rest = _fill_rows(bg, hole)
        bg = bg.round().clip(0, 255).astype(np.uint8)
        if rest.any():
            bg = cv2.inpaint(bg, rest.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)
        return bg
    return bg.round().astype(np.uint8)


def _fill_rows(bg: np.ndarray, hole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's holes filled linearly between the trusted pixels on either side; returns the
    image (float) and the holes left (rows' ends, where one side has no trusted pixel)."""
    out, rest = bg.copy(), np.zeros_like(hole)
    for y in np.flatnonzero(hole.any(axis=1)):
        good = np.flatnonzero(~hole[y])
        if len(good) == 0:
            rest[y] = True
            continue
        bad = np.flatnonzero(hole[y])
        inside = (bad > good[0]) & (bad < good[-1])
        for c in range(bg.shape[2]):
            out[y, bad[inside], c] = np.interp(bad[inside], good, bg[y, good, c])
        rest[y, bad[~inside]] = True
    return out, rest


# ---------------------------------------------------------------- the step
def prepare(video: str | Path, out_dir: str | Path, cfg: PrepareConfig = PrepareConfig(), *,
            poses: PoseSequence | None = None, progress: bool = True) -> Path:
    """Prepare a target video for training; re-running skips finished work. Returns out_dir.

    poses: keypoints of the video (in its pixels) that the user already has (OpenPose,
    or the synthetic dancer's exact ones); the detector runs when None.
    """
    video, out = Path(video), Path(out_dir)
    meta = probe(video)  # raises InputError on bad input
    digest = file_sha256(video)
    manifest_path = out / "manifest.json"
    old_matte = None
    if manifest_path.is_file():
        m = json.loads(manifest_path.read_text())
        if m.get("source", {}).get("sha256") == digest and m.get("config") == config_record(cfg):
            _update(out, m, cfg, progress, video.name)
            return out
        old_matte = m.get("matte")
        manifest_path.unlink()  # the folder is incomplete until a new manifest is written last
    out.mkdir(parents=True, exist_ok=True)
    raw = _raw_poses(video, out, meta, digest, poses, progress)
    detected = _check_person(video, raw, cfg)
    keep = np.unique(resample_indices(raw.timestamps, cfg.fps)[0])
    fps = float(cfg.fps) if cfg.fps else raw.fps
    sub = PoseSequence(raw.keypoints[keep], raw.width, raw.height, fps, raw.timestamps[keep], raw.meta)
    smooth = smooth_poses(sub, cfg.smoothing)
    extent = person_extent(person_boxes(smooth.keypoints, cfg.conf_threshold), cfg.margin)
    out_w, out_h = output_size(extent, cfg)
    box = crop_box(extent, raw.width, raw.height, out_w, out_h)
    kp = transform_keypoints(smooth.keypoints, box, out_w, out_h)
    poses = PoseSequence(kp, out_w, out_h, fps, sub.timestamps,
                         {"source": str(video), "source_sha256": digest, "crop_box": list(box)})
    fboxes, side = face_boxes(kp, out_w, out_h, cfg.conf_threshold)
    hr = face_hr_size(side, box, out_w, cfg.face_size)
    _write_frames(video, out, digest, keep, box, (out_w, out_h), (fboxes, hr), progress)
    poses = _refine(out, poses, cfg, progress)
    _write_plate(out, poses, cfg)
    _write_mattes(out, poses, cfg, progress, fresh=old_matte not in (None, matte_method(cfg)))
    with atomic_path(out / "face_boxes.npy") as tmp:
        np.save(tmp, fboxes, allow_pickle=False)
    poses.save(out / "poses.npz")
    stats = compute_stats(poses)
    write_json(out / TARGET_STATS_FILE, stats.to_dict())
    write_json(manifest_path, _manifest(video, meta, digest, cfg, poses, box, (side, hr), detected, len(raw), stats))
    return out


# Options added after data was first prepared, left out of the recorded config at their default
# (which makes what the versions before them made): adding one does not re-prepare every folder.
LATER_OPTIONS: dict[str, Any] = {"plate_matte": False}


def config_record(cfg: PrepareConfig) -> dict[str, Any]:
    """`cfg` as the manifest records it (and as re-runs compare it)."""
    d = asdict(cfg)
    for k, default in LATER_OPTIONS.items():
        if d[k] == default:
            del d[k]
    return d


def matte_method(cfg: PrepareConfig) -> str:
    """How `cfg` makes mattes/ (recorded in the manifest; a change remakes them)."""
    return f"{MATTE_METHOD}+{PLATE_MATTE_VERSION}" if cfg.plate_matte else MATTE_METHOD


def _refine(out: Path, poses: PoseSequence, cfg: PrepareConfig, progress: bool) -> PoseSequence:
    """The poses refined along the prepared frames' optical flow (`pose.flow`). The face boxes
    stay those of the unrefined poses: the face crops were cut with them."""
    if cfg.flow_weight >= 1.0 or len(poses) < 2:
        return poses
    bar = tqdm(total=2 * len(poses), desc="pose flow", unit="frame", disable=not progress)

    def frame(j: int) -> np.ndarray:
        bar.update()
        return read_image(out / "frames" / f"{j:06d}.png")

    try:
        kp = refine_with_flow(poses.keypoints, frame, cfg.flow_weight, cfg.smoothing.min_confidence)
    finally:
        bar.close()
    return poses.with_keypoints(kp, meta={**poses.meta, "flow_weight": cfg.flow_weight})


def _update(out: Path, m: dict, cfg: PrepareConfig, progress: bool, name: str) -> None:
    """Data prepared before: remake what a newer method makes (plate, mattes), keep the rest."""
    done = []
    poses = PoseSequence.load(out / "poses.npz")
    new_plate = m.get("plate") != PLATE_METHOD
    if new_plate:
        _write_plate(out, poses, cfg)
        done.append(f"background plate remade ({PLATE_METHOD})")
    if _write_mattes(out, poses, cfg, progress, fresh=(new_plate and cfg.plate_matte) or m.get("matte") != matte_method(cfg)):
        done.append(f"mattes made ({matte_method(cfg)})")
    if done:
        write_json(out / "manifest.json", {**m, "plate": PLATE_METHOD, "matte": matte_method(cfg)})
    if progress:
        print(f"{out}: already prepared from {name}; " + ("; ".join(done) if done else "nothing to do"))


def _write_mattes(out: Path, poses: PoseSequence, cfg: PrepareConfig, progress: bool, fresh: bool = False) -> bool:
    """mattes/NNNNNN.png for the prepared frames (with `cfg.plate_matte`, corrected by
    background.png, written before); False when all were there already. The segmenter tracks
    the clip, so it sees every frame in order; a re-run writes the missing ones (all of them
    when `fresh`)."""
    n = len(poses)
    d = out / "mattes"
    if fresh and d.is_dir():
        for f in d.glob("*.png"):
            f.unlink()
    d.mkdir(exist_ok=True)
    if all((d / f"{j:06d}.png").is_file() for j in range(n)):
        return False
    plate = read_image(out / "background.png") if cfg.plate_matte else None
    with PersonSegmenter() as seg:
        for j in tqdm(range(n), desc="mattes", unit="frame", disable=not progress):
            path = d / f"{j:06d}.png"
            image = read_image(out / "frames" / f"{j:06d}.png")
            matte = seg.matte(image)
            if path.is_file():
                continue
            if plate is not None:
                region = render_person_mask(poses.keypoints[j], poses.width, poses.height, cfg.conf_threshold)
                matte = plate_matte(image, plate, matte, region)
            write_mask(path, matte)
    return True


def _write_plate(out: Path, poses: PoseSequence, cfg: PrepareConfig) -> None:
    """background.png from up to 150 frames spread over the prepared video."""
    n = len(poses)
    sample = np.unique(np.linspace(0, n - 1, min(n, 150)).round().astype(int))
    frames = np.stack([read_image(out / "frames" / f"{j:06d}.png") for j in sample])
    masks = np.stack([render_person_mask(k, poses.width, poses.height, cfg.conf_threshold)
                      for k in poses.keypoints[sample]])
    write_image(out / "background.png", estimate_background(frames, masks))


def _raw_poses(video: Path, out: Path, meta: VideoMeta, digest: str, given: PoseSequence | None,
               progress: bool) -> PoseSequence:
    """The video's keypoints in its pixels: saved from an earlier run, given, or detected (then saved)."""
    raw_path = out / "poses_raw.npz"
    if raw_path.is_file():
        cand = PoseSequence.load(raw_path)
        if cand.meta.get("source_sha256") == digest:
            return cand
    if given is not None:
        if abs(len(given) - max(meta.n_frames, 1)) > max(2, 0.02 * len(given)):
            raise InputError(video, f"has about {meta.n_frames} frames but the poses given have {len(given)}")
        raw = given
    else:
        from dancenow.pose.detect import detect_video

        raw = detect_video(video, progress=progress)
    raw = raw.with_keypoints(raw.keypoints, meta={**raw.meta, "source_sha256": digest})
    raw.save(raw_path)
    return raw


def _check_person(video: Path, raw: PoseSequence, cfg: PrepareConfig) -> np.ndarray:
    """(T,) frames with a person; InputError when too few have one, or when the video's edge cuts
    the person in most of them (training would learn a person without feet or a forehead)."""
    detected = person_present(raw.keypoints)
    frac = float(detected.mean()) if len(raw) else 0.0
    if frac < cfg.min_detected_fraction:
        raise InputError(video, f"a person was detected in only {detected.sum()} of {len(raw)} frames "
                                f"({frac:.0%}); at least {cfg.min_detected_fraction:.0%} are needed: "
                                "is one person fully in view?")
    cut = cut_by_frame(raw.keypoints, raw.width, raw.height, cfg.conf_threshold) & detected
    if cut.sum() > cfg.max_cut_fraction * detected.sum():
        raise InputError(video, f"the edge of the picture cuts the person off in {cut.sum()} of the "
                                f"{detected.sum()} frames with a person: film with the whole body in view")
    return detected


def _write_frames(video: Path, out: Path, digest: str, keep: np.ndarray, box: tuple[int, int, int, int],
                  size: tuple[int, int], faces: tuple[np.ndarray, int], progress: bool) -> None:
    """frames/NNNNNN.png and faces/NNNNNN.png (face boxes at `hr` pixels, hr 0: none) in one
    decoding pass, resumable: a state file pins the crops; files with the same crops are kept
    (mattes/ goes with frames/: other crops remove both)."""
    frames_dir, faces_dir = out / "frames", out / "faces"
    fboxes, hr = faces
    state = {"sha256": digest, "crop_box": list(box), "size": list(size), "keep": len(keep),
             "face_hr_size": hr, "face_boxes": hashlib.sha256(fboxes.tobytes()).hexdigest()}
    state_path = out / "prepare_state.json"
    old = json.loads(state_path.read_text()) if state_path.is_file() else None
    same_frames = old is not None and all(old.get(k) == state[k] for k in list(state)[:4])
    for d, same in ((frames_dir, same_frames), (faces_dir, old == state), (out / "mattes", same_frames)):
        if d.is_dir() and not same:
            for f in d.glob("*.png"):
                f.unlink()
        d.mkdir(exist_ok=True)
    write_json(state_path, state)
    keep_set = {int(i): j for j, i in enumerate(keep)}
    bar = tqdm(total=len(keep), desc="frames", unit="frame", disable=not progress)
    for frame in read_frames(video):
        j = keep_set.get(frame.index)
        if j is None:
            continue
        path = frames_dir / f"{j:06d}.png"
        if not path.is_file():
            write_image(path, crop_resize(frame.image, box, *size))
        face_path = faces_dir / f"{j:06d}.png"
        if hr and fboxes[j, 0] >= 0 and not face_path.is_file():
            write_image(face_path, crop_resize(frame.image, face_crop_box(fboxes[j], box, size[0]), hr, hr))
        bar.update()
    bar.close()
    n = len(keep)
    missing = [j for j in range(n) if not (frames_dir / f"{j:06d}.png").is_file()
               or (hr and fboxes[j, 0] >= 0 and not (faces_dir / f"{j:06d}.png").is_file())]
    if missing:
        raise InputError(video, f"decoded fewer frames than detected ({n - len(missing)} of {n})")


def _manifest(video: Path, meta: VideoMeta, digest: str, cfg: PrepareConfig, poses: PoseSequence,
              box: tuple[int, int, int, int], face: tuple[int, int], detected: np.ndarray, n_raw: int,
              stats: NormStats) -> dict:
    kp, n = poses.keypoints, len(poses)
    n_val = max(1, int(round(cfg.val_fraction * n))) if n >= 10 else 0
    face_found = (kp[:, FACE, 2] > cfg.conf_threshold).sum(axis=1) >= 20
    hands_found = (kp[:, FACE.stop :, 2] > cfg.conf_threshold).any(axis=1)
    return {
        "version": MANIFEST_VERSION,
        "plate": PLATE_METHOD,
        "matte": matte_method(cfg),
        "source": {"path": str(video.resolve()), "sha256": digest, "width": meta.width, "height": meta.height,
                   "fps": meta.fps, "rotation": meta.rotation},
        "fps": poses.fps,
        "size": [poses.width, poses.height],
        "crop_box": list(box),
        "n_frames": n,
        "split": {"train": [0, n - n_val], "val": [n - n_val, n]},
        "face_box_size": face[0],
        "face_hr_size": face[1],
        "detection": {"frames_without_person": int((~detected).sum()), "frames": n_raw,
                      "face_rate": float(face_found.mean()), "hand_rate": float(hands_found.mean())},
        "normalization": stats.to_dict(),
        "config": config_record(cfg),
    }
