"""Command line: parse arguments, call one function, turn user errors into one line.

Every command's work lives in the package (`dancenow.<stage>`); this module only parses.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from dancenow.errors import DancenowError


def _size(text: str) -> tuple[int, int]:
    """'256' -> (256, 256); '512x256' -> (512, 256) as (width, height)."""
    try:
        if "x" in text.lower():
            w, h = text.lower().split("x")
            return int(w), int(h)
        return int(text), int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be N or WxH, got {text!r}") from None


# ------------------------------------------------------------------ commands
def cmd_pose(a: argparse.Namespace) -> int:
    from dancenow.pose.detect import detect_video
    from dancenow.pose.openpose_io import write_openpose_json

    seq = detect_video(a.video, progress=not a.quiet, max_frames=a.max_frames)
    seq.save(a.output)
    if a.openpose_json:
        write_openpose_json(seq, a.openpose_json, Path(a.video).stem)
    missed = int((~seq.detected()).sum())
    print(f"{a.output}: {len(seq)} frames, {missed} without a detected person")
    return 0


def cmd_smooth(a: argparse.Namespace) -> int:
    from dancenow.pose.schema import PoseSequence
    from dancenow.pose.smoothing import SmoothingConfig, smooth_poses

    seq = PoseSequence.load(a.poses)
    smooth_poses(seq, SmoothingConfig(max_gap_s=a.max_gap, sigma_s=a.sigma)).save(a.output)
    print(f"{a.output}: {len(seq)} frames smoothed")
    return 0


def cmd_normalize(a: argparse.Namespace) -> int:
    from dancenow.pose.pipeline import normalize_files

    out = normalize_files(a.source, a.target, a.output, smooth=not a.no_smooth)
    print(f"{out}: normalized into the target's frame")
    return 0


def cmd_render(a: argparse.Namespace) -> int:
    from dancenow.pose.pipeline import render_file

    out = render_file(a.poses, a.output, overlay=a.overlay, progress=not a.quiet)
    print(f"{out}: written")
    return 0


def cmd_synth(a: argparse.Namespace) -> int:
    from dancenow.synthetic import synth_to_files

    synth_to_files(a.subject, a.dance, a.seconds, a.fps, a.size, a.output, a.poses, varied=a.varied)
    print(f"{a.output}: synthetic subject {a.subject}, dance {a.dance}, {a.seconds:g} s at {a.fps:g} fps")
    return 0


def _prepare_config(size_text: str, fps: float | None, face_size: int = 128, flow_weight: float | None = None,
                    plate_matte: bool = False):
    from dancenow.data.prepare import PrepareConfig

    try:
        w, h = _size(size_text)
    except argparse.ArgumentTypeError as exc:
        raise DancenowError(str(exc)) from None
    fixed = {"width": w, "height": h} if "x" in size_text.lower() else {"size": w}
    try:
        if flow_weight is not None:
            fixed["flow_weight"] = flow_weight
        return PrepareConfig(fps=fps, face_size=face_size, plate_matte=plate_matte, **fixed)
    except ValueError as exc:
        raise DancenowError(f"prepare options (--size {size_text}): {exc}") from None


def cmd_prepare(a: argparse.Namespace) -> int:
    from dancenow.data.prepare import prepare
    from dancenow.pose.pipeline import load_poses_for

    cfg = _prepare_config(a.size_text, a.fps, a.face_size, a.flow_weight, a.plate_matte)
    poses = load_poses_for(a.video, a.poses) if a.poses else None
    out = prepare(a.video, a.output, cfg, poses=poses, progress=not a.quiet)
    print(f"{out}: prepared")
    return 0


def _parse_sets(items: list[str]) -> dict[str, object]:
    import json

    out: dict[str, object] = {}
    for item in items:
        if "=" not in item:
            raise DancenowError(f"--set {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out


def cmd_train(a: argparse.Namespace) -> int:
    from dancenow.config import load_config_file, preset
    from dancenow.train.loop import train

    cfg = load_config_file(a.config) if a.config else preset(a.preset)
    changes = _parse_sets(a.set)
    for flag, field in (("temporal", "use_temporal"), ("face_gan", "use_face_gan"), ("vgg_loss", "use_vgg_loss"),
                        ("background", "use_background"), ("window", "person_window"),
                        ("local_enhancer", "use_local_enhancer")):
        if getattr(a, flag) is not None:
            changes[field] = getattr(a, flag)
    for name in ("seed", "precision", "batch_size", "vgg_weights"):
        if getattr(a, name) is not None:
            changes[name] = getattr(a, name)
    if a.vgg_weights is not None and a.vgg_loss is None:  # naming weights means using them
        changes["use_vgg_loss"] = True
    if a.background is False and "lambda_matte" not in changes:  # the matte supervises the plate's alpha
        changes["lambda_matte"] = 0.0
    try:
        cfg = cfg.replace(**changes)
    except (TypeError, ValueError) as exc:
        raise DancenowError(f"invalid training options: {exc}") from None
    res = train(a.data, a.output, cfg, resume=a.resume, max_minutes=a.max_minutes, max_steps=a.max_steps,
                device=a.device, progress=not a.quiet)
    return 0 if res.finished or a.max_steps or a.max_minutes else 1


def cmd_transfer(a: argparse.Namespace) -> int:
    from dancenow.transfer.pipeline import TransferConfig, transfer

    cfg = TransferConfig(fps=a.fps, audio=not a.no_audio, side_by_side=a.side_by_side, start=a.start, end=a.end,
                         precision=a.precision, backend=a.backend, output_long_side=a.output_size)
    r = transfer(a.source, a.model, a.output, cfg, poses=a.poses, device=a.device, progress=not a.quiet)
    print(f"{r.output}: {r.frames} frames at {r.fps:g} fps, {r.segments} scene segment(s), "
          f"{r.frames_without_person} frame(s) without a person; {r.backend}")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from dancenow.transfer.export import export_onnx

    r = export_onnx(a.model, a.output, a.precision)
    face = f" and {r.face_model}" if r.face_model else ""
    print(f"{r.model}{face}: written, {a.precision} (person spec, render style and plate in the ONNX metadata)")
    return 0


def cmd_live(a: argparse.Namespace) -> int:
    from dancenow.transfer.live import LiveConfig, run_live

    cfg = LiveConfig(calibration_s=a.calibration, backend=a.backend, precision=a.precision,
                     pipelined=not a.one_stage)
    r = run_live(a.model, a.camera if a.input is None else a.input, cfg, window=a.window, serve=a.serve,
                 port=a.port, output=a.output, max_seconds=a.seconds)
    print(r.describe())
    return 0


def cmd_run(a: argparse.Namespace) -> int:
    from dancenow.app.chain import ChainConfig, run_chain, sources_of

    if not a.source_video and not a.source:
        print("dancenow run: no source dance given: preparing, training and evaluating only", file=sys.stderr)
    cfg = ChainConfig(minutes=a.minutes, preset=a.preset, train_changes=tuple(_parse_sets(a.set).items()),
                      prepare=_prepare_config(a.size_text, a.fps), eval_frames=a.eval_frames or None,
                      device=a.device, progress=not a.quiet)
    cfg.train_config()  # bad --set values fail here, before any work
    run_chain(a.target_video, sources_of(a.source_video, a.source), a.output, cfg)
    return 0


def cmd_app(a: argparse.Namespace) -> int:
    from dancenow.app.chain import ChainConfig
    from dancenow.app.web import AppConfig, serve

    _prepare_config(a.size_text, None)  # bad --size / --set fail now, not in every job
    ChainConfig(preset=a.preset, train_changes=tuple(_parse_sets(a.set).items())).train_config()
    return serve(AppConfig(data_dir=Path(a.data_dir), host=a.host, port=a.port, max_upload_mb=a.max_upload_mb,
                           minutes=a.minutes, preset=a.preset, size_text=a.size_text,
                           train_sets=tuple(a.set), synthetic_seconds=a.synthetic_seconds,
                           synthetic_size=a.synthetic_size, eval_frames=a.eval_frames,
                           live_calibration_s=a.live_calibration, live_backend=a.live_backend))


def _synthetic(a: argparse.Namespace, title: str) -> int:
    from dancenow.eval.synthetic_benchmark import SyntheticBenchmarkConfig, run_synthetic

    cfg = SyntheticBenchmarkConfig(train_minutes=a.train_minutes, target_seconds=a.seconds, size=a.size,
                                   video_size=a.video_size,
                                   seed=a.seed, pose_eval=not a.no_pose_eval, preset=a.preset)
    m = run_synthetic(a.output, cfg, device=a.device, progress=not a.quiet)
    g = m["ground_truth"]
    print(f"{title}: {a.output}/transfer.mp4 and {a.output}/report.md written; ground truth SSIM "
          f"person crop {g['ssim_person']:.3f}, full frame {g['ssim_full_frame']:.3f}; "
          f"{g['perceptual_metric']} {g['perceptual_person']:.4f}")
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    return _synthetic(a, "demo")


def cmd_benchmark(a: argparse.Namespace) -> int:
    return _synthetic(a, "synthetic benchmark")


def cmd_evaluate(a: argparse.Namespace) -> int:
    from dancenow.eval.report import run_evaluate

    return run_evaluate(a.model, a.data, a.output, a.device, a.max_frames, progress=not a.quiet)


def cmd_compare(a: argparse.Namespace) -> int:
    from dancenow.eval.report import run_compare

    return run_compare(a.runs, a.data, a.output, a.device, a.max_frames, progress=not a.quiet)


def _run_and_app_args(add: Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]) -> None:
    """`dancenow run` and `dancenow app`: the creator's front door."""
    sp = add("run", cmd_run, "the whole chain: prepare the target, train, evaluate, transfer each source, report "
                             "(re-run to continue after an interruption)")
    sp.add_argument("target_video", help="the target: a video of the person who will dance")
    sp.add_argument("source_video", nargs="?", help="the source dance (its audio is kept) -> OUT/result.mp4")
    sp.add_argument("--source", action="append", default=[], metavar="VIDEO",
                    help="a further source dance -> OUT/result-NAME.mp4 (repeatable)")
    sp.add_argument("-o", "--output", required=True, help="output folder (data, run, results, report.md)")
    sp.add_argument("--minutes", type=float, default=10.0, help="training time budget (default 10)")
    sp.add_argument("--preset", default="cpu", choices=["cpu", "paper", "demo"])
    sp.add_argument("--size", dest="size_text", default="256", help="prepare --size: N (long side) or WxH")
    sp.add_argument("--fps", type=float, default=None, help="prepare --fps: resample the target")
    sp.add_argument("--eval-frames", type=int, default=48, help="held-out frames evaluated (0: all; default 48)")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any TrainConfig field")
    sp.add_argument("--device", default="auto")
    sp.add_argument("-q", "--quiet", action="store_true")

    sp = add("app", cmd_app, "the local web app: two videos in, the result to watch and download")
    sp.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: the network)")
    sp.add_argument("--port", type=int, default=7860)
    sp.add_argument("--data-dir", default="dancenow-app", help="the app's folder: uploads, runs, jobs (default ./dancenow-app)")
    sp.add_argument("--max-upload-mb", type=float, default=2000.0, help="largest upload accepted (default 2000 MB)")
    sp.add_argument("--minutes", type=float, default=10.0, help="the training time offered first (default 10)")
    sp.add_argument("--preset", default="cpu", choices=["cpu", "paper", "demo"], help="preset of the app's trainings")
    sp.add_argument("--size", dest="size_text", default="256", help="prepare --size of the app's trainings")
    sp.add_argument("--eval-frames", type=int, default=48, help="held-out frames evaluated after training")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="TrainConfig fields for the app's trainings (tests use tiny networks this way)")
    sp.add_argument("--synthetic-seconds", type=float, default=20.0, help="length of the built-in synthetic dancer")
    sp.add_argument("--synthetic-size", type=int, default=256, help="frame size of the built-in synthetic dancer")
    sp.add_argument("--live-calibration", type=float, default=4.0,
                    help="seconds of calibration in the Live tab (default 4)")
    sp.add_argument("--live-backend", default="auto", choices=["auto", "torch", "onnx", "openvino"],
                    help="inference backend of the Live tab (default auto: measured on the first frames)")


def _pose_args(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The parsers of detection, smoothing, normalization and stick figures of keypoint files."""
    sp = add("pose", cmd_pose, "detect body, face and hand keypoints in every frame of a video")
    sp.add_argument("video")
    sp.add_argument("-o", "--output", required=True, help="poses file (.npz)")
    sp.add_argument("--openpose-json", metavar="DIR", help="also write OpenPose per-frame JSON files here")
    sp.add_argument("--max-frames", type=int, default=None)
    sp.add_argument("-q", "--quiet", action="store_true")

    sp = add("smooth", cmd_smooth, "smooth keypoints over time and fill short gaps")
    sp.add_argument("poses")
    sp.add_argument("-o", "--output", required=True)
    sp.add_argument("--max-gap", type=float, default=0.25, help="longest gap filled, seconds (default 0.25)")
    sp.add_argument("--sigma", type=float, default=0.04, help="Gaussian sigma, seconds (default 0.04)")

    sp = add("normalize", cmd_normalize, "map a source's poses into the target's frame (global pose normalization)")
    sp.add_argument("source", help="source poses (.npz)")
    sp.add_argument("--target", required=True, help="target poses (.npz), a prepared data dir or a trained run dir")
    sp.add_argument("-o", "--output", required=True)
    sp.add_argument("--no-smooth", action="store_true", help="skip temporal smoothing of the source")

    sp = add("render", cmd_render, "draw stick figures of a poses file into a video")
    sp.add_argument("poses")
    sp.add_argument("-o", "--output", required=True, help="video (.mp4)")
    sp.add_argument("--overlay", metavar="VIDEO", help="draw on this video's frames instead of black")
    sp.add_argument("-q", "--quiet", action="store_true")


def _prepare_train_args(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The parsers of prepare and train."""
    sp = add("prepare", cmd_prepare, "turn a target video into training data (frames, poses, face boxes, manifest)")
    sp.add_argument("video")
    sp.add_argument("-o", "--output", required=True, help="data folder")
    sp.add_argument("--size", dest="size_text", default="256",
                    help="N: the frames' long side, their aspect following the person (a portrait video gives "
                         "portrait frames); WxH: a fixed size (default 256)")
    sp.add_argument("--fps", type=float, default=None, help="resample to this frame rate")
    sp.add_argument("--face-size", type=int, default=128, metavar="N",
                    help="largest side of the faces cut at full resolution from the video for the face GAN "
                         "(default 128; 0: none)")
    sp.add_argument("--poses", help="use these keypoints (.npz or an OpenPose JSON folder) instead of detecting")
    sp.add_argument("--flow-weight", type=float, default=None, metavar="W",
                    help="refine the poses along the video's optical flow, W the weight of each frame's own "
                         "detection (default 0.2; 1: keep the poses as detected or given)")
    sp.add_argument("--plate-matte", action="store_true",
                    help="correct the person mattes by the background plate (static camera: fast limbs kept)")
    sp.add_argument("-q", "--quiet", action="store_true")

    sp = add("train", cmd_train, "train the target's personal generator on a prepared data folder")
    sp.add_argument("data", help="prepared data folder")
    sp.add_argument("-o", "--output", required=True, help="run folder (checkpoints, samples, config)")
    sp.add_argument("--preset", default="cpu", choices=["cpu", "paper", "demo"])
    sp.add_argument("--config", help="JSON/TOML file of training options (overrides the preset)")
    sp.add_argument("--max-minutes", type=float, default=None, help="fit the whole schedule into this many minutes")
    sp.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (checkpointed)")
    sp.add_argument("--resume", action="store_true", help="continue the run in --output")
    sp.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    sp.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"],
                    help="auto: measure fp32 and bf16 steps at the start and keep the faster (saved in the run)")
    sp.add_argument("--seed", type=int)
    sp.add_argument("--batch-size", type=int)
    sp.add_argument("--vgg-weights", help="'hed' (default) or a torchvision VGG19 state dict file")
    B = argparse.BooleanOptionalAction
    sp.add_argument("--temporal", action=B, default=None, help="temporal smoothing (paper; default on)")
    sp.add_argument("--face-gan", action=B, default=None, help="face GAN stage (paper; default on)")
    sp.add_argument("--vgg-loss", action=B, default=None,
                    help="perceptual loss (default: on in the paper preset, off in cpu and demo; --vgg-weights turns it on)")
    sp.add_argument("--background", action=B, default=None, help="composite over the background plate (default on)")
    sp.add_argument("--window", action=B, default=None,
                    help="run the generator on a window around the person only (default on; needs --background)")
    sp.add_argument("--local-enhancer", action=B, default=None, help="pix2pixHD local enhancer stage")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any TrainConfig field")
    sp.add_argument("-q", "--quiet", action="store_true")


def _transfer_args(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The parsers of transfer, export and live."""
    sp = add("transfer", cmd_transfer, "make a video of the trained target performing a source video's dance")
    sp.add_argument("source", help="source video (its audio is kept)")
    sp.add_argument("--model", required=True, help="trained run folder")
    sp.add_argument("-o", "--output", required=True, help="output video (.mp4)")
    sp.add_argument("--poses", help="source keypoints (.npz or OpenPose JSON folder) instead of detecting")
    sp.add_argument("--fps", type=float, help="output frame rate (default: the source's)")
    sp.add_argument("--no-audio", action="store_true", help="drop the source's audio")
    sp.add_argument("--side-by-side", action="store_true", help="source | normalized pose | result")
    sp.add_argument("--output-size", type=int, metavar="N",
                    help="the result's long side in pixels (default: large enough to show a model's "
                         "full-resolution face at full detail, else the model's frame size)")
    sp.add_argument("--start", type=float, help="start time in the source, seconds")
    sp.add_argument("--end", type=float, help="end time in the source, seconds")
    sp.add_argument("--device", default="auto")
    sp.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16", "int8"],
                    help="torch: autocast precision; openvino: fp32, bf16 or int8; onnx: fp32 or int8 "
                         "(auto chooses its own and never int8)")
    sp.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx", "openvino"],
                    help="auto (default): measure the installed backends on the first frames and keep the "
                         "fastest whose frames stay within 2/255 of eager PyTorch fp32")
    sp.add_argument("-q", "--quiet", action="store_true")

    sp = add("export", cmd_export, "write a trained run as ONNX (person spec, render style, plate in its metadata)")
    sp.add_argument("model", help="trained run folder")
    sp.add_argument("-o", "--output", required=True, help="model.onnx (a face GAN goes to model.face.onnx)")
    sp.add_argument("--precision", choices=["fp32", "int8"], default="fp32",
                    help="int8: the body graph quantized (faster on CPU, frames within a few levels of fp32)")

    sp = add("live", cmd_live, "live mirror: camera or stream -> pose -> the target dancing, frame by frame")
    sp.add_argument("--model", required=True, help="trained run folder")
    src = sp.add_mutually_exclusive_group()
    src.add_argument("--camera", type=int, default=0, help="camera index (default 0)")
    src.add_argument("--input", help="a video file (played at its frame rate) or a stream URL")
    sp.add_argument("--window", action="store_true", help="show in an OpenCV window (needs highgui)")
    sp.add_argument("--serve", action="store_true", help="serve an MJPEG page on 127.0.0.1:PORT")
    sp.add_argument("--port", type=int, default=8765)
    sp.add_argument("--output", help="also record to this .mp4")
    sp.add_argument("--seconds", type=float, help="stop after this many seconds")
    sp.add_argument("--calibration", type=float, default=4.0,
                    help="seconds of calibration: stand where you will dance, step forward and back (default 4)")
    sp.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx", "openvino"])
    sp.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "int8"],
                    help="with --backend openvino (or onnx, fp32 / int8): int8 quantizes the body generator "
                         "(faster, a little off the fp32 frames; auto never chooses it)")
    sp.add_argument("--one-stage", action="store_true",
                    help="pose and generation one after the other on one thread: less latency, fewer "
                         "frames/s (default: the two overlap on two threads)")


def _eval_args(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The parsers of evaluate and compare."""
    sp = add("evaluate", cmd_evaluate, "the paper's metrics on the target's held-out frames")
    sp.add_argument("--model", required=True, help="trained run folder")
    sp.add_argument("--data", required=True, help="the prepared data folder it was trained on")
    sp.add_argument("-o", "--output", required=True, help="report folder")
    sp.add_argument("--max-frames", type=int, help="evaluate only the first N held-out frames")
    sp.add_argument("--device", default="auto")
    sp.add_argument("-q", "--quiet", action="store_true")

    sp = add("compare", cmd_compare, "evaluate several runs on the same frames and write one table")
    sp.add_argument("runs", nargs="+", help="trained run folders")
    sp.add_argument("--data", required=True)
    sp.add_argument("-o", "--output", required=True)
    sp.add_argument("--max-frames", type=int)
    sp.add_argument("--device", default="auto")
    sp.add_argument("-q", "--quiet", action="store_true")


def _synthetic_cmds(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The parsers of demo, benchmark and synth: the built-in synthetic dancer."""
    def synthetic_args(sp: argparse.ArgumentParser, minutes: float, out: str | None, size: int, preset: str) -> None:
        sp.add_argument("-o", "--output", required=out is None, default=out, help="output folder")
        sp.add_argument("--preset", default=preset, choices=["demo", "cpu", "paper"])
        sp.add_argument("--train-minutes", type=float, default=minutes, help=f"training time (default {minutes:g})")
        sp.add_argument("--seconds", type=float, default=20.0, help="length of the synthetic target video")
        sp.add_argument("--size", type=int, default=size, help=f"the model's frame size (default {size})")
        sp.add_argument("--video-size", type=int, default=256,
                        help="frame size of the synthetic videos, what the camera films (default 256)")
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--no-pose-eval", action="store_true", help="skip re-running the detector on the output")
        sp.add_argument("--device", default="auto")
        sp.add_argument("-q", "--quiet", action="store_true")

    sp = add("demo", cmd_demo, "the whole pipeline on the built-in synthetic dancer (no files needed)")
    synthetic_args(sp, 6.0, "outputs/demo", 128, "demo")

    sp = add("benchmark", cmd_benchmark, "benchmarks with an exact answer")
    bsub = sp.add_subparsers(dest="which", required=True, metavar="WHICH")
    bp = bsub.add_parser("synthetic", help="train on a synthetic target, transfer a synthetic source, score vs truth")
    bp.set_defaults(func=cmd_benchmark)
    synthetic_args(bp, 10.0, None, 256, "cpu")

    sp = add("synth", cmd_synth, "make a synthetic dancer clip with exact keypoints")
    sp.add_argument("--subject", type=int, default=1)
    sp.add_argument("--dance", type=int, default=7)
    sp.add_argument("--seconds", type=float, default=20.0)
    sp.add_argument("--fps", type=float, default=15.0)
    sp.add_argument("--varied", action="store_true",
                    help="a range-of-motion routine (every arm move before any repeats), as a target video should be")
    sp.add_argument("--size", type=_size, default=(256, 256))
    sp.add_argument("-o", "--output", required=True, help="video (.mp4)")
    sp.add_argument("--poses", required=True, help="exact keypoints (.npz)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dancenow", description="Do-as-I-do motion transfer (Everybody Dance Now).")
    p.add_argument("--version", action="version", version=f"dancenow {__import__('dancenow').__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(func=fn)
        return sp

    _pose_args(add)
    _prepare_train_args(add)
    _transfer_args(add)
    _eval_args(add)
    _run_and_app_args(add)
    _synthetic_cmds(add)
    return p


# oneDNN keeps 1024 compiled kernels by default; the person window's size changes from batch to batch
# and each size needs its own, so a run kept rebuilding them (benchmarks/bench_steps.py on the real
# target, Xeon with AMX: bf16 0.380 -> 0.310 s/step with 8192). Read before torch starts.
ONEDNN_CACHE = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8192")


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault(*ONEDNN_CACHE)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DancenowError as exc:
        print(f"dancenow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dancenow: interrupted", file=sys.stderr)
        return 130
