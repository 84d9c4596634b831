"""End-to-end transfer throughput on this machine, split into detection, rendering,
generation and encoding, for the `cpu` preset's generator (256 px) and optionally the
paper's 1024x512 generator.

    python benchmarks/bench_transfer.py [--frames 120] [--device auto] [--paper]

The generator's speed does not depend on its training, so an untrained network of the
preset's architecture is timed. The source is the real mustard clip when ../shared/data
is present, else a synthetic one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import shared_data, synthetic_data_dir  # noqa: E402

from dancenow.tensors import to_tensor  # noqa: E402
from dancenow.pose.normalize import compute_stats, normalize_poses  # noqa: E402
from dancenow.config import preset  # noqa: E402
from dancenow.device import pick_device  # noqa: E402
from dancenow.train.loop import train  # noqa: E402
from dancenow.run import load_trained  # noqa: E402
from dancenow.transfer.pipeline import Generator  # noqa: E402
from dancenow.video import VideoWriter, read_frames  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--paper", action="store_true", help="also time the paper preset's 1024x512 generator")
    a = ap.parse_args()
    device = pick_device(a.device)
    tmp = Path(tempfile.mkdtemp(prefix="dancenow-bench-transfer-"))

    shared = shared_data()
    if shared is not None:
        src = shared / "source" / "dancer_mustard_692x1108.mp4"
    else:
        from dancenow.synthetic import make_clip, write_clip

        src = write_clip(make_clip(4, 3, a.frames / 15.0, 15.0, 256), tmp / "source.mp4")
    from dancenow.pose.detect import detect_frames

    frames = [f.image for _, f in zip(range(a.frames), read_frames(src))]
    t = time.perf_counter()
    seq = detect_frames(frames, fps=15.0, width=frames[0].shape[1], height=frames[0].shape[0], progress=False)
    det_fps = len(frames) / (time.perf_counter() - t)
    print(f"device: {device}; source: {src.name} {frames[0].shape[1]}x{frames[0].shape[0]}, {len(frames)} frames")
    print(f"detection   {det_fps:8.1f} frames/s")

    # bf16 autocast is ~2x slower on CPUs without bf16 units
    cases = [("cpu", 256, 256, "fp32", {}), ("cpu --no-window", 256, 256, "fp32", {"person_window": False})]
    if a.paper:
        cases.append(("paper", 1024, 512, "bf16" if device.type == "cuda" else "fp32", {}))
    for name, w, h, precision, changes in cases:
        key = name.replace(" ", "").replace("-", "_")
        data = synthetic_data_dir(w, h, root=tmp / key)
        cfg = preset(name.split()[0]).replace(**changes).replace(global_steps=1, local_steps=1 if name == "paper" else 0, face_steps=1,
                                   local_fix_global_steps=0, use_vgg_loss=False, val_every=10**6,
                                   sample_every=10**6, num_workers=0, channels_last=device.type == "cuda")
        train(data, tmp / f"run_{key}", cfg, device=str(device), progress=False)
        model = load_trained(tmp / f"run_{key}", device)
        # the source's poses normalized into the target's frame, as `dancenow transfer` draws them
        kp = normalize_poses(seq, compute_stats(seq), model.target_stats).keypoints
        t = time.perf_counter()
        labels = [model.render_label(k) for k in kp]
        render_fps = len(labels) / (time.perf_counter() - t)
        if model.generator.spec.use_window:
            wins = [model.generator.windows_for(to_tensor(lab)[None])[0] for lab in labels]
            frac = float(np.mean([(x1 - x0) * (y1 - y0) / (w * h) for x0, y0, x1, y1 in wins]))
            print(f"[{name}] person window: {frac:.0%} of the frame on average")
        gen = Generator(model, precision)
        for lab in labels[:3]:
            gen(lab, None)  # warm-up
        gen.reset()
        box = np.array([w // 2 - 32, h // 8, w // 2 + 32, h // 8 + 64])
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        outs = [gen(lab, box) for lab in labels]
        if device.type == "cuda":
            torch.cuda.synchronize()
        gen_fps = len(outs) / (time.perf_counter() - t)
        t = time.perf_counter()
        with VideoWriter(tmp / f"out_{key}.mp4", fps=15.0) as wr:
            for o in outs:
                wr.write(o)
        enc_fps = len(outs) / (time.perf_counter() - t)
        total = 1.0 / (1 / det_fps + 1 / render_fps + 1 / gen_fps + 1 / enc_fps)
        print(f"[{name} {w}x{h}, {precision}] rendering {render_fps:8.1f}  generation {gen_fps:8.1f}  "
              f"encoding {enc_fps:8.1f}  end-to-end {total:6.1f} frames/s")


if __name__ == "__main__":
    main()
