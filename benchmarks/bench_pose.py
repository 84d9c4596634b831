"""Benchmark dancenow.pose.detect: detection frames/s and face/hand detection rates.

Clips (from ../shared/data or $DANCENOW_DATA):
  target@512     target/dancer_black_256.avi upscaled 256 -> 512 (bilinear) before detection
  target@native  the same clip at its own 256x256, as `dancenow prepare` sees it
  squats@512     keypoints/squats_720x1280_5fps.mp4 shrunk to 288x512
Upscaling adds no detail but blurs (bilinear twice), so face/hand rates are lower at 512
than at native size; the 512 runs are there for speed on 512-pixel frames.
Each clip runs through mediapipe.solutions.holistic on the whole frame (the baseline) and
through dancenow's HolisticDetector (pose on the frame, face and hands on crops).
Frames are decoded before timing; frames/s covers detection only. This machine is shared,
so run it when it is otherwise idle and read the numbers as indicative.

Usage: python benchmarks/bench_pose.py [--frames N] [--clips target@512 target@native squats@512]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np

from dancenow.pose.detect import DetectorConfig, HolisticDetector
from dancenow.video import read_frames

CLIPS = {
    "target@512": ("target/dancer_black_256.avi", 512),
    "target@native": ("target/dancer_black_256.avi", None),
    "squats@512": ("keypoints/squats_720x1280_5fps.mp4", 512),
}


def _data_dir() -> Path:
    return Path(os.environ.get("DANCENOW_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _load(name: str, n: int | None) -> list[np.ndarray]:
    rel, side = CLIPS[name]
    frames = [f.image for f in read_frames(_data_dir() / rel, end=n)]
    if side is None:
        return frames
    h, w = frames[0].shape[:2]
    s = side / max(h, w)
    size = (round(w * s), round(h * s))
    interp = cv2.INTER_LINEAR if s > 1 else cv2.INTER_AREA
    return [cv2.resize(f, size, interpolation=interp) for f in frames]


def _run_both(frames: list[np.ndarray], cfg: DetectorConfig) -> dict[str, tuple[float, dict[str, float]]]:
    """Both detectors on the same frames, interleaved frame by frame so that a busy
    machine slows both alike. -> {label: (frames/s, rates)}."""
    import mediapipe as mp

    n = dict.fromkeys(("person", "face", "left_hand", "right_hand"), 0)
    t_hol = t_ours = 0.0
    with mp.solutions.holistic.Holistic(static_image_mode=False, model_complexity=1) as hol, \
            HolisticDetector(cfg) as det:
        for f in frames:
            t0 = time.perf_counter()
            r = hol.process(f)
            t1 = time.perf_counter()
            det.detect(f)
            t2 = time.perf_counter()
            t_hol += t1 - t0
            t_ours += t2 - t1
            n["person"] += r.pose_landmarks is not None
            n["face"] += r.face_landmarks is not None
            n["left_hand"] += r.left_hand_landmarks is not None
            n["right_hand"] += r.right_hand_landmarks is not None
    return {
        "mp holistic": (len(frames) / t_hol, {k: v / len(frames) for k, v in n.items()}),
        "HolisticDetector": (len(frames) / t_ours, det.stats.rates()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=None, help="first N frames of each clip (default: all)")
    ap.add_argument("--clips", nargs="+", default=list(CLIPS), choices=list(CLIPS))
    ap.add_argument("--hand-model", default=DetectorConfig().hand_model, choices=["full", "lite"])
    a = ap.parse_args()
    cfg = DetectorConfig(hand_model=a.hand_model)
    print(f"cpu cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    for name in a.clips:
        frames = _load(name, a.frames)
        h, w = frames[0].shape[:2]
        print(f"\n{name}: {len(frames)} frames at {w}x{h}")
        for label, (fps, r) in _run_both(frames, cfg).items():
            print(f"  {label:16s} {fps:5.1f} frames/s | person {r['person']:6.1%}  face {r['face']:6.1%}"
                  f"  left hand {r['left_hand']:6.1%}  right hand {r['right_hand']:6.1%}")


if __name__ == "__main__":
    main()
