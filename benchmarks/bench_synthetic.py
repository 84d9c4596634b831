"""Synthetic dancer speed (and optionally MediaPipe's view of it).

    python benchmarks/bench_synthetic.py                 # render speed at 256x256 and 512x512
    python benchmarks/bench_synthetic.py --mediapipe     # + detection rate and PCK@0.05 of MediaPipe Holistic

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dancenow.synthetic import Renderer, make_dance, make_subject, pose_subject


def bench_render(size: int, seconds: float, fps: float, subjects: list[int], dance_seed: int) -> None:
    dance = make_dance(dance_seed, seconds, fps)
    for seed in subjects:
        subject = make_subject(seed)
        t0 = time.perf_counter()
        poses = pose_subject(subject, dance, size)
        t_pose = time.perf_counter() - t0
        t0 = time.perf_counter()
        renderer = Renderer(subject, size)
        t_bg = time.perf_counter() - t0
        kp = poses.keypoints
        renderer(kp[0])  # warm-up
        t0 = time.perf_counter()
        for k in kp:
            renderer(k)
        dt = time.perf_counter() - t0
        print(f"size {size}x{size} subject {seed}: {len(kp) / dt:7.1f} frames/s rendered "
              f"({1e3 * dt / len(kp):.2f} ms/frame, {len(kp)} frames), posing {len(kp) / t_pose:,.0f} frames/s, "
              f"background {1e3 * t_bg:.1f} ms once")


def bench_mediapipe(subject_seed: int, dance_seed: int, n_frames: int) -> None:
    import cv2
    import mediapipe as mp

    from dancenow.pose.schema import B
    from dancenow.synthetic import make_clip

    pairs = {0: "Nose", 11: "LShoulder", 12: "RShoulder", 13: "LElbow", 14: "RElbow", 15: "LWrist", 16: "RWrist",
             23: "LHip", 24: "RHip", 25: "LKnee", 26: "RKnee", 27: "LAnkle", 28: "RAnkle"}
    clip = make_clip(subject_seed, dance_seed, n_frames / 15.0, 15.0, 256)
    hits, found = [], 0
    with mp.solutions.holistic.Holistic(model_complexity=1) as hol:
        for res, kp in zip(clip, clip.poses.keypoints):
            out = hol.process(cv2.resize(res.image, (512, 512), interpolation=cv2.INTER_LINEAR))
            if out.pose_landmarks is None:
                continue
            found += 1
            lm = out.pose_landmarks.landmark
            body = kp[:25]
            vis = body[:, 2] > 0
            diag = float(np.hypot(*(body[vis, :2].max(0) - body[vis, :2].min(0))))
            for m, name in pairs.items():
                if kp[B[name], 2] > 0:
                    err = np.hypot(lm[m].x * 256 - kp[B[name], 0], lm[m].y * 256 - kp[B[name], 1])
                    hits.append(err <= 0.05 * diag)
    print(f"MediaPipe Holistic on subject {subject_seed} dance {dance_seed} ({len(clip)} frames, 256 upscaled to 512): "
          f"body found in {found}/{len(clip)} frames, PCK@0.05 = {np.mean(hits) if hits else float('nan'):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--subjects", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--dance", type=int, default=7)
    ap.add_argument("--mediapipe", action="store_true", help="also run MediaPipe Holistic (slow)")
    args = ap.parse_args()
    for size in (256, 512):
        bench_render(size, args.seconds, args.fps, args.subjects, args.dance)
    if args.mediapipe:
        for seed in args.subjects:
            bench_mediapipe(seed, args.dance, 150)


if __name__ == "__main__":
    main()
