"""Command line: parse arguments, call one function, turn user errors into one line.

Every command's work lives in the package (`dancenow.<stage>`); this module only parses.
"""

from __future__ import annotations

import argparse
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

    synth_to_files(a.subject, a.dance, a.seconds, a.fps, a.size, a.output, a.poses)
    print(f"{a.output}: synthetic subject {a.subject}, dance {a.dance}, {a.seconds:g} s at {a.fps:g} fps")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dancenow", description="Do-as-I-do motion transfer (Everybody Dance Now).")
    p.add_argument("--version", action="version", version=f"dancenow {__import__('dancenow').__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(func=fn)
        return sp

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

    sp = add("synth", cmd_synth, "make a synthetic dancer clip with exact keypoints")
    sp.add_argument("--subject", type=int, default=1)
    sp.add_argument("--dance", type=int, default=7)
    sp.add_argument("--seconds", type=float, default=20.0)
    sp.add_argument("--fps", type=float, default=15.0)
    sp.add_argument("--size", type=_size, default=(256, 256))
    sp.add_argument("-o", "--output", required=True, help="video (.mp4)")
    sp.add_argument("--poses", required=True, help="exact keypoints (.npz)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DancenowError as exc:
        print(f"dancenow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dancenow: interrupted", file=sys.stderr)
        return 130
