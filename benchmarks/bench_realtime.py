"""Real-time figures (issue 14): generation backends, pose tracking mode, end-to-end and live mode,
each as a ratio to today's eager path measured in the same run (interleaved in rounds, so a
load that comes and goes on a shared machine hits every case alike).

    python benchmarks/bench_realtime.py [--frames 60] [--rounds 4] [--run RUN_DIR]
                                        [--sections detection generation end-to-end memory]

1. generation, `cpu` preset, 256 px and 512 px frames (an untrained network: speed does not
   depend on training): eager fp32 of the generator before session 6 (an untrained copy with the
   old architecture, see `_before_model`), eager fp32 (today), eager bf16 autocast, ONNX Runtime
   fp32, OpenVINO fp32, bf16 and int8; frames/s, x before, x eager, and the largest pixel difference to eager fp32 over the
   whole temporal chain. `--run` adds the differences on a trained run (they depend on weights).
2. pose detection at 512 px: the offline mode (every part every frame) vs tracking mode, each
   frame by frame and streamed (`HolisticDetector.detect_stream`: the next frame's body model runs
   while this frame's face and hands do; the same keypoints).
3. end-to-end, frame by frame (detect + normalize + render + generate; encoding separate):
   today's (offline detector, eager fp32) vs live's engine (tracking, the auto backend; and with
   OpenVINO int8 where OpenVINO and ONNX Runtime are installed), on
   `--run` when given (its weights decide whether bf16 is within tolerance), else untrained.
4. live mode: the source's frames (forwards, backwards, forwards) played as a 30 frames/s camera
   into `drive` (drops instead of queueing), one stage after the other and pipelined (pose ||
   generation), in rounds: frames/s shown and latency from a frame's capture to its generated frame.
5. memory: peak RSS of `transfer` on a source and on one 10x longer (separate processes).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import shared_data, synthetic_data_dir  # noqa: E402

from dancenow.config import preset  # noqa: E402
from dancenow.pose.detect import DetectorConfig, HolisticDetector  # noqa: E402
from dancenow.pose.normalize import compute_stats, normalize_poses  # noqa: E402
from dancenow.run import load_trained  # noqa: E402
from dancenow.train.loop import train  # noqa: E402
from dancenow.transfer.backend import Chain, available_backends, build_generator_for, openvino_has_bf16  # noqa: E402
from dancenow.transfer.live import LiveConfig, LiveEngine, drive  # noqa: E402
from dancenow.video import VideoWriter, read_frames  # noqa: E402


def untrained_run(tmp: Path, w: int, h: int) -> Path:
    data = synthetic_data_dir(w, h, root=tmp / f"data{w}")
    cfg = preset("cpu").replace(global_steps=1, face_steps=1, use_vgg_loss=False, val_every=10**6,
                                sample_every=10**6, num_workers=0, precision="fp32")
    train(data, tmp / f"run{w}", cfg, device="cpu", progress=False)
    return tmp / f"run{w}"


def source_frames(n: int, tmp: Path) -> tuple[list[np.ndarray], float, str]:
    shared = shared_data()
    if shared is not None:
        src = shared / "source" / "dancer_mustard_692x1108.mp4"
    else:
        from dancenow.synthetic import make_clip, write_clip

        src = write_clip(make_clip(4, 3, n / 15.0, 15.0, 512), tmp / "source.mp4")
    frames = [f.image for _, f in zip(range(n), read_frames(src, max_size=512))]
    from dancenow.video import probe

    return frames, probe(src).fps, src.name


def chain_for(model, keypoints: np.ndarray) -> Chain:
    return Chain.of(model, normalize_poses_array(keypoints, model))


def normalize_poses_array(keypoints: np.ndarray, model) -> np.ndarray:
    from dancenow.pose.schema import PoseSequence

    seq = PoseSequence(keypoints, 512, 512, 15.0)
    return normalize_poses(seq, compute_stats(seq), model.target_stats).keypoints


def interleaved(cases: dict, items: list, rounds: int, fn) -> dict[str, float]:
    """Frames/s of each case, the items split into `rounds` chunks, every case running each chunk in turn."""
    return interleaved_chunks(cases, items, rounds, lambda k, obj, idx: [fn(k, obj, i) for i in idx])


def interleaved_chunks(cases: dict, items: list, rounds: int, fn) -> dict[str, float]:
    """`interleaved`, fn(case, obj, indices) doing a whole chunk (for streamed cases)."""
    spent = {k: 0.0 for k in cases}
    for chunk in np.array_split(np.arange(len(items)), rounds):
        for k, obj in cases.items():
            t = time.perf_counter()
            fn(k, obj, [int(i) for i in chunk])
            spent[k] += time.perf_counter() - t
    return {k: len(items) / v for k, v in spent.items()}


# The cpu preset's generator before session 6: every level doubling its filters (384 in the bottleneck).
BEFORE = {"max_width": 0}


def _before_model(model):
    """The same run (plate, spec, windows) with the session-5 generator architecture, untrained:
    speed does not depend on weights."""
    import dataclasses

    from dancenow.models.person import PersonGenerator, PersonGeneratorConfig

    g = model.generator
    cfg = dataclasses.replace(g.config.generator, **BEFORE)
    old = PersonGenerator.from_config(PersonGeneratorConfig(cfg, g.spec), torch.Generator().manual_seed(0))
    if g.background is not None:
        old.set_background(g.background)
    return dataclasses.replace(model, generator=old.eval())


def bench_generation(run: Path, keypoints: np.ndarray, rounds: int, title: str) -> None:
    model = load_trained(run)
    chain = chain_for(model, keypoints)
    args = list(zip(chain.labels, chain.boxes, chain.face_labels))
    have = available_backends()
    bf16_units = "openvino" in have and openvino_has_bf16()
    cases = {"eager fp32, before (session 5 generator)": build_generator_for(_before_model(model), "torch", "fp32"),
             "eager fp32 (today)": build_generator_for(model, "torch", "fp32")}
    if bf16_units:  # without bf16 units autocast emulates it: 0.3 frames/s at 256 px on an AVX2-only CPU
        cases["eager bf16 autocast"] = build_generator_for(model, "torch", "bf16")
    if "onnx" in have:
        cases["onnxruntime fp32"] = build_generator_for(model, "onnx", "fp32")
    if "openvino" in have:
        cases["openvino fp32"] = build_generator_for(model, "openvino", "fp32")
        if bf16_units:
            cases["openvino bf16"] = build_generator_for(model, "openvino", "bf16")
        if "onnx" in have:  # int8: asked for only (auto never picks it); quantized with ORT's tools
            cases["openvino int8 (body)"] = build_generator_for(model, "openvino", "int8")
    for g in cases.values():
        for a in args[:3]:
            g(*a)  # warm-up (graph compilation, first shapes)
        g.reset()
    outs = {k: [None] * len(args) for k in cases}

    def step(k, g, i):
        outs[k][i] = g(*args[i])[0]

    fps = interleaved(cases, args, rounds, step)
    before, base = fps["eager fp32, before (session 5 generator)"], fps["eager fp32 (today)"]
    ref = outs["eager fp32 (today)"]
    print(f"\n[generation, {title}, {model.size[0]}x{model.size[1]}, {len(args)} frames, "
          f"{torch.get_num_threads()} threads]")
    if not bf16_units:
        print("  bf16 left out: this CPU has no bf16 units (autocast emulates it, 0.3 frames/s at 256 px)")
    for k in cases:
        d = [np.abs(a.astype(int) - b.astype(int)) for a, b in zip(outs[k], ref)]
        diff = ("(other network)" if "before" in k else
                f"{max(int(x.max()) for x in d)}/255 (mean {np.mean([x.mean() for x in d]):.2f})")
        print(f"  {k:40s} {fps[k]:7.1f} frames/s  x{fps[k] / before:5.2f} before  x{fps[k] / base:5.2f} eager  "
              f"max diff to eager fp32 {diff}")


def detect_all(cfg: DetectorConfig, frames: list[np.ndarray]) -> np.ndarray:
    with HolisticDetector(cfg) as det:
        return np.stack([det.detect(f) for f in frames])


def bench_detection(frames: list[np.ndarray], rounds: int) -> np.ndarray:
    cases = {"offline (every part)": HolisticDetector(DetectorConfig()),
             "offline, streamed": HolisticDetector(DetectorConfig()),
             "tracking (live)": HolisticDetector(DetectorConfig.tracking()),
             "tracking, streamed": HolisticDetector(DetectorConfig.tracking())}
    kps = {k: [None] * len(frames) for k in cases}

    def chunk(k, det, idx):
        if "streamed" in k:  # the next frame's body model runs while this one's face and hands do
            for i, kp in zip(idx, det.detect_stream(frames[i] for i in idx)):
                kps[k][i] = kp
        else:
            for i in idx:
                kps[k][i] = det.detect(frames[i])

    fps = interleaved_chunks(cases, frames, rounds, chunk)
    h, w = frames[0].shape[:2]
    print(f"\n[pose detection, {w}x{h} frames, {len(frames)} frames]")
    base = fps["offline (every part)"]
    for k, det in cases.items():
        r = det.stats.rates()
        print(f"  {k:22s} {fps[k]:7.1f} frames/s  x{fps[k] / base:5.2f}  face {r['face']:.0%}, "
              f"hands {r['left_hand']:.0%}/{r['right_hand']:.0%}")
        det.close()
    for serial, streamed in (("offline (every part)", "offline, streamed"), ("tracking (live)", "tracking, streamed")):
        same = all(np.array_equal(a, b) for a, b in zip(kps[serial], kps[streamed]))
        print(f"  {streamed}: the same keypoints as frame by frame: {same}")
    return np.stack(kps["offline (every part)"])


class TodayEngine:
    """Today's per-frame path: the offline detector, the normalization, eager fp32 generation."""

    def __init__(self, model, keypoints_all: np.ndarray, fps: float):
        self.model, self.det, self.fps = model, HolisticDetector(DetectorConfig()), fps
        self.gen = build_generator_for(model, "torch", "fp32")
        self.kp = normalize_poses_array(keypoints_all, model)  # offline: needs the whole video

    def process(self, image, t):
        i = int(round(t * self.fps))
        self.det.detect(image)
        c = Chain.of(self.model, self.kp[i:i + 1])  # drawn per frame, as transfer does
        return self.gen(c.labels[0], c.boxes[0], c.face_labels[0])[0]


def bench_end_to_end(run: Path, frames: list[np.ndarray], kp_all: np.ndarray, fps_src: float, rounds: int) -> None:
    model = load_trained(run)
    live = LiveEngine(model, LiveConfig(calibration_s=0.0, backend="auto"))
    w, h = model.size
    print(f"\n[end to end, {w}x{h} {run.name}, {len(frames)} frames] live's backend: {live.generator.choice.describe()}")
    cases = {"today (offline, eager)": TodayEngine(model, kp_all, fps_src), "live engine": live}
    if {"onnx", "openvino"} <= set(available_backends()):  # int8: asked for only, never auto's choice
        cases["live engine, int8"] = LiveEngine(model, LiveConfig(calibration_s=0.0, backend="openvino",
                                                                  precision="int8"))
    outs = []

    def step(k, eng, i):
        out = eng.process(frames[i], i / fps_src)
        if k == "live engine":
            outs.append(out.image)

    fps = interleaved(cases, frames, rounds, step)
    base = fps["today (offline, eager)"]
    for k in cases:
        print(f"  {k:22s} {fps[k]:7.1f} frames/s  x{fps[k] / base:5.2f}  (detect + normalize + render + generate)")
    t = time.perf_counter()
    with VideoWriter(Path(tempfile.mkdtemp()) / "enc.mp4", fps=fps_src) as wr:
        for o in outs:
            wr.write(o)
    enc = len(outs) / (time.perf_counter() - t)
    print(f"  encoding alone         {enc:7.1f} frames/s; live engine + encoding {1 / (1 / fps['live engine'] + 1 / enc):.1f}")
    for k, eng in cases.items():
        (eng.det if k.startswith("today") else eng.detector).close()

    camera_fps = 30.0  # the clip's frames played as a 30 frames/s camera: more than the engine makes
    played = frames + frames[::-1] + frames  # 3x as long, no jump at the joins
    for rnd in range(rounds):
        for pipelined in (False, True):
            live2 = LiveEngine(model, LiveConfig(calibration_s=0.5, backend=live.generator.choice.backend,
                                                 precision=live.generator.choice.precision, pipelined=pipelined))
            stats = drive(live2, ((f, i / camera_fps) for i, f in enumerate(played)), lambda f: None, realtime=True)
            how = "pose || generation (default)" if pipelined else "one stage after the other (--one-stage)"
            print(f"\n[live mode round {rnd}, {how}, {len(played)} frames played at {camera_fps:g} frames/s] "
                  f"{stats.frames_shown} shown ({stats.frames_dropped} dropped), {stats.fps:.1f} frames/s, latency "
                  f"median {1000 * stats.latency_median_s:.0f} ms, p95 {1000 * stats.latency_p95_s:.0f} ms, lag "
                  f"at most {stats.max_lag_frames} frame(s)")
            live2.close()


_MEM = """
import sys
from dancenow.synthetic import make_clip, write_clip
from dancenow.transfer.pipeline import TransferConfig, transfer
clip = make_clip(4, 3, float(sys.argv[2]), 15.0, 256)
src = write_clip(clip, sys.argv[1] + '/src.mp4')
transfer(src, sys.argv[3], sys.argv[1] + '/out.mp4', TransferConfig(backend=sys.argv[4], audio=False),
         poses=clip.poses, progress=False)
# VmHWM: this process's own peak (ru_maxrss would carry the parent's peak across exec)
print([int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0])
"""


def bench_memory(run: Path, backend: str, seconds: float = 4.0) -> None:
    """Peak RSS of `transfer` (exact synthetic poses given, no detector) on two source lengths."""
    rss = []
    for s in (seconds, 10 * seconds):
        d = tempfile.mkdtemp()
        out = subprocess.run([sys.executable, "-c", _MEM, d, str(s), str(run), backend], capture_output=True,
                             text=True, check=True)
        rss.append(int(out.stdout.strip().splitlines()[-1]) / 1024)
    print(f"\n[memory, transfer with backend {backend}] peak RSS {rss[0]:.0f} MiB for {seconds * 15:.0f} frames, "
          f"{rss[1]:.0f} MiB for {seconds * 150:.0f} frames (x{rss[1] / rss[0]:.2f})")


SECTIONS = ["detection", "generation", "end-to-end", "memory"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--run", help="a trained run: also report the backends' differences on its weights")
    ap.add_argument("--sections", nargs="+", default=SECTIONS, choices=SECTIONS)
    a = ap.parse_args()
    todo = set(a.sections)
    tmp = Path(tempfile.mkdtemp(prefix="dancenow-bench-realtime-"))
    frames, fps_src, name = source_frames(a.frames, tmp)
    print(f"source {name}, {frames[0].shape[1]}x{frames[0].shape[0]}, {len(frames)} frames; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; backends {available_backends()}")
    if "detection" in todo:
        kp_all = bench_detection(frames, a.rounds)
    elif todo & {"generation", "end-to-end"}:
        kp_all = detect_all(DetectorConfig(), frames)
    run256 = untrained_run(tmp, 256, 256)
    if "generation" in todo:
        bench_generation(run256, kp_all, a.rounds, "cpu preset, untrained")
        bench_generation(untrained_run(tmp, 512, 512), kp_all, a.rounds, "cpu preset, untrained")
        if a.run:
            bench_generation(Path(a.run), kp_all, a.rounds, f"trained {a.run}")
    if "end-to-end" in todo:  # a trained run's weights decide whether bf16 is within tolerance
        bench_end_to_end(Path(a.run) if a.run else run256, frames, kp_all, fps_src, a.rounds)
    if "memory" in todo:
        bench_memory(run256, "auto")
    print(json.dumps({"peak_rss_mib_this_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
