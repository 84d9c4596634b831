"""Seconds per training step for each preset at its resolution (and `paper` at 256 for comparison).

    python benchmarks/bench_train.py [--steps 3] [--device auto] [--quick]

One step = the whole body-stage update: two generator passes (temporal pair), the
multiscale discriminator on real and generated pairs, feature matching, VGG and L1.
The data is the built-in synthetic dancer, whose size in the frame is like a real
target's, so the person window covers about as much of the frame as it would there.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import synthetic_data_dir  # noqa: E402

from dancenow.data.dataset import PairDataset, PreparedData, collate_pairs  # noqa: E402
from dancenow.config import preset  # noqa: E402
from dancenow.device import pick_device  # noqa: E402
from dancenow.train.distributed import DistInfo  # noqa: E402
from dancenow.models.losses import GANLoss, VGGPerceptualLoss  # noqa: E402
from dancenow.models.vgg import load_vgg_trunk  # noqa: E402
from dancenow.tensors import to_tensor  # noqa: E402
from dancenow.train.stages import Builder, person_spec  # noqa: E402
from dancenow.train.steps import StepContext, body_step, face_step  # noqa: E402


def time_stage(data_dir: Path, cfg, stage: str, steps: int, device: torch.device) -> float:
    run = Path(tempfile.mkdtemp(prefix="dancenow-bench-run-"))
    data = PreparedData.load(data_dir)
    bg = to_tensor(data.background())[None].to(device) if cfg.use_background else None
    builder = Builder(cfg, person_spec(cfg), device, DistInfo(), bg)
    vgg = VGGPerceptualLoss(load_vgg_trunk(cfg.vgg_weights, device=device)) if cfg.use_vgg_loss else None
    ctx = StepContext(cfg, device, DistInfo(), GANLoss(), vgg, int(data.manifest["face_box_size"]))
    prev = None
    if stage == "local":
        prev = run / "ckpt"
        builder.build("global", 0, None).save(prev, {})
    st = builder.build(stage, 1 if stage != "global" else 0, prev)
    ds = PairDataset(data, "train")
    batch = collate_pairs([ds[i % len(ds)] for i in range(cfg.batch_size)])
    step = face_step if stage == "face" else body_step

    def fn(b, lr):
        return step(ctx, st, b, lr)

    fn(batch, cfg.lr)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        fn(batch, cfg.lr)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true", help="skip the 1024x512 local-enhancer measurement")
    a = ap.parse_args()
    device = pick_device(a.device)
    print(f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{torch.get_num_threads()} CPU threads'})")
    cases = [
        ("cpu", "global", 256, 256, {}),
        ("cpu --no-window", "global", 256, 256, {"person_window": False}),
        ("cpu", "face", 256, 256, {}),
        ("demo", "global", 128, 128, {}),
        ("paper @256 (comparison)", "global", 256, 256, {"use_local_enhancer": False, "ngf": 64, "local_steps": 0}),
        ("paper", "global", 1024, 512, {}),  # the global stage runs at 512x256 (inputs downsampled 2x)
    ]
    if not a.quick:
        cases.append(("paper", "local", 1024, 512, {}))
    data_dirs: dict[tuple[int, int], Path] = {}
    print(f"{'preset':28s} {'stage':7s} {'resolution':>11s} {'precision':>9s} {'s/step':>8s}")
    for name, stage, w, h, changes in cases:
        cfg = preset(name.split()[0]).replace(**changes)
        if device.type == "cpu":
            cfg = cfg.replace(channels_last=False)
        if (w, h) not in data_dirs:
            data_dirs[(w, h)] = synthetic_data_dir(w, h)
        res = f"{w // 2}x{h // 2}" if (stage == "global" and cfg.use_local_enhancer) else f"{w}x{h}"
        for precision in (["fp32", "bf16"] if stage == "global" and name == "cpu" else [cfg.precision]):
            s = time_stage(data_dirs[(w, h)], cfg.replace(precision=precision), stage, a.steps, device)
            print(f"{name:28s} {stage:7s} {res:>11s} {precision:>9s} {s:8.3f}", flush=True)


if __name__ == "__main__":
    main()
