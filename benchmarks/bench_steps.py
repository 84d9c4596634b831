"""Seconds per training step inside a real run: precision x person-window rounding.

    python benchmarks/bench_steps.py --data DATA_DIR [--steps 60] [--rounds 2]
        [--variants fp32/16 bf16/16 bf16/32 bf16/64]

A variant is PRECISION/WINDOW_MULTIPLE, optionally +cache (ONEDNN_PRIMITIVE_CACHE_CAPACITY=8192).
Each run is the `cpu` preset's global stage on the given prepared data, in its own process
(oneDNN's kernel cache starts empty, as in a real run), for --steps steps; the figure is the
median seconds per step after the first 10. Variants run in turn, --rounds times, so a load
that comes and goes hits them alike. Why: the person window's size changes from batch to
batch and every new shape costs oneDNN new kernels; coarser rounding means fewer shapes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
from dancenow.config import preset
from dancenow.train.loop import train
data, out, precision, multiple, steps = sys.argv[1:6]
cfg = preset("cpu").replace(precision=precision, window_multiple=int(multiple), global_steps=int(steps),
                            use_face_gan=False, val_every=10**9, sample_every=10**9, checkpoint_every=10**9,
                            log_every=1)
train(data, out, cfg, progress=False)
"""


def run_variant(data: Path, variant: str, steps: int) -> list[float]:
    spec, _, extra = variant.partition("+")
    precision, multiple = spec.split("/")
    env = dict(os.environ)
    if extra == "cache":
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = "8192"
    with tempfile.TemporaryDirectory(prefix="dancenow-steps-") as tmp:
        out = Path(tmp) / "run"
        subprocess.run([sys.executable, "-c", CHILD, str(data), str(out), precision, multiple, str(steps)],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    t = [r["time_s"] for r in rows if r.get("stage") == "global" and "time_s" in r]
    return [b - a for a, b in zip(t[10:], t[11:])]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--variants", nargs="+", default=["fp32/16", "bf16/16", "bf16/32", "bf16/64", "bf16/16+cache"])
    a = ap.parse_args()
    times: dict[str, list[float]] = {v: [] for v in a.variants}
    for r in range(a.rounds):
        for v in a.variants:
            times[v] += run_variant(a.data, v, a.steps)
            print(f"round {r + 1} {v}: {statistics.median(times[v]):.3f} s/step so far", flush=True)
    base = statistics.median(times[a.variants[0]])
    print(f"\n{'variant':<16} {'s/step':>7} {'vs ' + a.variants[0]:>12}")
    for v, t in times.items():
        m = statistics.median(t)
        print(f"{v:<16} {m:7.3f} {base / m:11.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
