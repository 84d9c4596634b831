"""Quality levers at equal wall-clock time: train each variant of a preset for the same minutes on
the same prepared data (same seed), evaluate it on the held-out frames, print one row each.

    python benchmarks/bench_quality.py --data runs/data_black --minutes 6 -o runs/levers \
        --variants baseline bf16 bf16+l1 bf16+unet

Run it alone on the machine: the time budget turns other load into fewer steps. Variants already
evaluated in OUT are read back, not retrained (delete a folder to redo it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from dancenow.config import preset
from dancenow.eval.report import evaluate
from dancenow.train.loop import train

# Each variant: TrainConfig changes over the preset.
VARIANTS: dict[str, dict] = {
    "baseline": {},
    "bf16": {"precision": "bf16"},
    "auto": {"precision": "auto"},
    "l1": {"lambda_l1": 50.0, "lr": 5e-4},
    "bf16+l1": {"precision": "bf16", "lambda_l1": 50.0, "lr": 5e-4},
    "resize": {"upsample": "resize"},
    "unet": {"skips": True},
    "bf16+unet": {"precision": "bf16", "upsample": "resize", "skips": True},
    "bf16+unet+l1": {"precision": "bf16", "upsample": "resize", "skips": True, "lambda_l1": 50.0, "lr": 5e-4},
    "fast1": {"fast_repeat": 1},   # the cpu preset before session 12 (each pair once per epoch)
    "fast2": {"fast_repeat": 2},   # the fastest third of the training pairs twice per epoch (cpu preset now)
    "fast3": {"fast_repeat": 3},
    "detail50": {"lambda_detail": 50.0},     # session 15: tile-wise fine-detail loss
    "l1end0.2": {"l1_end_fraction": 0.2},    # session 15: L1 falls to a fifth of itself over the LR decay
}


def run_variant(name: str, data: Path, out: Path, base: str, minutes: float, seed: int) -> dict:
    folder = out / name
    done = folder / "row.json"
    if done.is_file():
        return json.loads(done.read_text())
    cfg = preset(base).replace(seed=seed, **VARIANTS[name])
    t = time.time()
    res = train(data, folder / "run", cfg, max_minutes=minutes, progress=False)
    train_s = time.time() - t
    r = evaluate(folder / "run", data, folder / "eval", progress=False)
    row = {"variant": name, "steps": res.steps, "train_s": round(train_s, 1), "body_ssim": r.body.ssim,
           "face_ssim": r.face.ssim, "flicker_ratio": r.flicker_generated / r.flicker_real,
           "sharp_body": r.sharpness_body, "sharp_face": r.sharpness_face,
           "same_person": r.identity.same_person if r.identity else None,
           "id_dist": r.identity.distance if r.identity else None, "pose_dist": r.pose_generated.distance["all"],
           **{f"body_{k}": v for k, v in r.body_ssim_by_motion.items()},
           "precision": json.loads((folder / "run" / "config.json").read_text())["train"]["precision"]}
    done.write_text(json.dumps(row, indent=2))
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, type=Path, help="a prepared data folder")
    ap.add_argument("-o", "--output", required=True, type=Path)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", nargs="+", default=["baseline", "bf16"], choices=sorted(VARIANTS))
    a = ap.parse_args()
    a.output.mkdir(parents=True, exist_ok=True)
    cols = ("variant", "precision", "steps", "body_ssim", "face_ssim", "flicker_ratio", "sharp_body", "sharp_face",
            "same_person", "id_dist", "pose_dist", "body_slow", "body_middle", "body_fast")
    print(" | ".join(cols), flush=True)
    for name in a.variants:
        row = run_variant(name, a.data, a.output, a.preset, a.minutes, a.seed)
        cells = [str(row.get(c)) if not isinstance(row.get(c), float) else f"{row[c]:.4f}" for c in cols]
        print(" | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
