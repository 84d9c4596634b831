"""Validation during training: generate held-out frames in order, score them, save sample grids."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import torch
from torch import nn

from dancenow.data.dataset import PreparedData
from dancenow.models.face import refine_faces, refine_faces_hr
from dancenow.pose.geometry import body_box
from dancenow.pose.render import STICK_CHANNELS, RenderStyle
from dancenow.run import RunDir
from dancenow.similarity import crop, ssim
from dancenow.tensors import face_box_tensor, to_image, to_tensor
from dancenow.train.metrics import MetricsSink
from dancenow.train.stages import Stage
from dancenow.train.steps import StepContext
from dancenow.video import write_image


@torch.no_grad()
def generate_chain(ctx: StepContext, stage: Stage, data: PreparedData, indices: list[int],
                   style: RenderStyle) -> list[np.ndarray]:
    """Generate consecutive frames in order (temporal feedback), with face refinement if trained."""
    outs, prev = [], None
    face_g = stage.averaged("FG") if stage.is_face else None
    G = stage.averaged("G")
    for i in indices:
        label = to_tensor(data.model_input(i, style, ctx.reference))[None].to(ctx.device)
        if stage.scale_down:
            label = nn.functional.avg_pool2d(label, 2)
        with ctx.autocast():
            fake = G.step(label, prev).float()
        prev = fake
        if face_g is not None and ctx.face_hr and data.has_face(i):
            face_label = to_tensor(data.face_label(i, style))[None].to(ctx.device)
            with ctx.autocast():
                fake, _, _ = refine_faces_hr(face_g, face_label, fake, face_box_tensor(data.face_boxes[i]))
        elif face_g is not None:
            with ctx.autocast():
                fake = refine_faces(face_g, label[:, :STICK_CHANNELS], fake, face_box_tensor(data.face_boxes[i]))
        outs.append(to_image(fake[0]))
    return outs


def validation_indices(data: PreparedData, n: int) -> list[int]:
    start, stop = data.split("val")
    return list(range(start, min(stop, start + n)))


def validate(ctx: StepContext, stage: Stage, data: PreparedData, style: RenderStyle, run: RunDir, sink: MetricsSink,
             step_label: str) -> float | None:
    """Mean SSIM of the person crop over the first `val_frames` held-out frames; saves a sample grid."""
    start, stop = data.split("val")
    if stop - start < 2:
        return None
    idx = validation_indices(data, ctx.cfg.val_frames)
    gen = generate_chain(ctx, stage, data, idx, style)
    scores = []
    for i, g in zip(idx, gen):
        real = data.read_frame(i)
        kp = data.poses.keypoints[i]
        if g.shape != real.shape:  # a half-resolution stage
            real = to_image(nn.functional.avg_pool2d(to_tensor(real)[None], 2)[0])
            kp = kp * np.array([0.5, 0.5, 1], np.float32)
        box = body_box(kp, real.shape[1], real.shape[0])
        scores.append(ssim(crop(g, box), crop(real, box)))
    save_samples(data, style, run, sink, idx, gen, step_label)
    return float(np.mean(scores))


def save_samples(data: PreparedData, style: RenderStyle, run: RunDir, sink: MetricsSink, idx: list[int],
                 gen: list[np.ndarray], step_label: str) -> None:
    """A grid of up to 4 rows (pose | real | generated) to samples/<label>.png and latest.png."""
    picks = np.unique(np.linspace(0, len(idx) - 1, min(4, len(idx))).round().astype(int))
    rows = []
    for p in picks:
        h, w = gen[p].shape[:2]
        real = cv2.resize(data.read_frame(idx[p]), (w, h), interpolation=cv2.INTER_AREA)
        label = cv2.resize(data.label(idx[p], style), (w, h), interpolation=cv2.INTER_AREA)
        rows.append(np.concatenate([label, real, gen[p]], axis=1))
    grid = np.concatenate(rows, axis=0)
    path = write_image(run.samples / f"{step_label}.png", grid)
    shutil.copyfile(path, run.samples / "latest.png")
    tail = step_label.split("_")[-1]
    sink.image("samples/pose|real|generated", grid, int(tail) if tail.isdigit() else 0)


def save_preview(ctx: StepContext, stage: Stage, data: PreparedData, style: RenderStyle, run: RunDir,
                 sink: MetricsSink, step_label: str) -> None:
    """A sample grid of the first 4 held-out frames (between validations)."""
    idx = validation_indices(data, 4)
    save_samples(data, style, run, sink, idx, generate_chain(ctx, stage, data, idx, style), step_label)
