"""One optimisation step of each kind: (stage, batch, learning rate) -> losses.

body_step (temporal smoothing as in the paper):
    fake_{t-1} = G(pose_{t-1}, 0);  fake_t = G(pose_t, fake_{t-1})      (gradient through both)
    D judges (pose_{t-1}, pose_t, frame_{t-1}, frame_t), real vs generated;
    G loss = LSGAN + lambda_feat * feature matching + lambda_vgg * VGG (+ lambda_l1 * L1
    + lambda_ssim * (1 - SSIM) + lambda_temporal * L1 of the frame-to-frame change
    + lambda_matte * L1 of the alpha against the real frames' person mattes + lambda_detail *
    the tile-wise difference of fine detail; the L1 weight may fall over the LR decay); with
    prev_dropout, some steps make frame t from a blank previous frame instead of fake_{t-1}.
face_step: G frozen; a residual face generator refines the face crop of fake_t and a
70x70 PatchGAN judges (pose crop, face crop). Where the data has full-resolution faces, the
crops are the face box at that resolution: the stick figure drawn at it, fake_t's crop
upsampled to it, and the real crop cut from the original video.

Where to add a new loss: a term of `_generator_losses` (body) or of `face_step` (face),
weighted by a new `TrainConfig` field, and reported in the returned dict.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dancenow.config import TrainConfig
from dancenow.data.dataset import PairSample
from dancenow.device import autocast
from dancenow.models.face import upsample_face
from dancenow.models.losses import GANLoss, VGGPerceptualLoss, detail_loss, feature_matching_loss, ssim_loss
from dancenow.models.person import crop_windows, person_windows
from dancenow.pose.reference import ReferenceBank
from dancenow.pose.render import STICK_CHANNELS
from dancenow.tensors import crop_faces
from dancenow.train.distributed import DistInfo, all_reduce_sum
from dancenow.train.schedule import l1_weight_at
from dancenow.train.stages import Stage


@dataclass(frozen=True, eq=False)
class StepContext:
    """What every step needs besides the stage and the batch."""

    cfg: TrainConfig
    device: torch.device
    info: DistInfo
    gan: GANLoss
    vgg: VGGPerceptualLoss | None
    face_side: int  # the data's face box size (a stand-in crop when a rank has no face)
    face_hr: bool = False  # train the face GAN on full-resolution crops where the batch has them
    reference: ReferenceBank | None = None  # the run's reference frames (validation draws with them)

    def autocast(self):
        return autocast(self.device, self.cfg.precision)


def _unwrap(m: nn.Module) -> nn.Module:
    return m.module if isinstance(m, nn.parallel.DistributedDataParallel) else m


def _map(b: PairSample, f) -> PairSample:
    keep = lambda t: None if t is None else f(t)  # noqa: E731
    return dataclasses.replace(b, label_prev=f(b.label_prev), label=f(b.label), image_prev=f(b.image_prev),
                               image=f(b.image), matte_prev=keep(b.matte_prev), matte=keep(b.matte))


def stage_inputs(ctx: StepContext, stage: Stage, batch: PairSample) -> PairSample:
    """The batch on the device, at the stage's resolution, in the configured memory format."""
    b = batch.to(ctx.device)
    if stage.scale_down:
        b = _map(b, lambda t: nn.functional.avg_pool2d(t, 2))
        b = dataclasses.replace(b, face_box=b.face_box // 2)
    if ctx.cfg.channels_last:
        b = _map(b, lambda t: t.contiguous(memory_format=torch.channels_last))
    return b


def _vgg(ctx: StepContext, stage: Stage, fake: torch.Tensor, real: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    if not ctx.cfg.vgg_on_person_crop or stage.G.spec.use_window:  # a window is already the person's box
        return ctx.vgg(fake, real)
    margin = max(4, label.shape[-1] // 32)
    stick = label[:, :STICK_CHANNELS]
    boxes = [person_windows([stick[i : i + 1]], stage.G.size_multiple, margin)[0] for i in range(label.shape[0])]
    total = 0.0
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        total = total + ctx.vgg(fake[i : i + 1, :, y0:y1, x0:x1], real[i : i + 1, :, y0:y1, x0:x1])
    return total / len(boxes)


def _matte_loss(b: PairSample, alphas: tuple[torch.Tensor | None, torch.Tensor | None]) -> torch.Tensor | None:
    """L1 between the generator's alpha and the real frames' mattes (frames t and t-1 where made)."""
    pairs = [(a, m) for a, m in zip(alphas, (b.matte_prev, b.matte)) if a is not None and m is not None]
    if not pairs:
        return None
    return sum(nn.functional.l1_loss(a.float(), m.float()) for a, m in pairs) / len(pairs)


def _generator_losses(ctx: StepContext, stage: Stage, b: PairSample, fake_prev: torch.Tensor | None,
                      fake: torch.Tensor, fake_pair: torch.Tensor, real_pair: torch.Tensor,
                      alphas: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None),
                      lambda_l1: float | None = None) -> dict[str, torch.Tensor]:
    """The G losses, weighted; lambda_l1: this step's L1 weight (None: cfg.lambda_l1)."""
    cfg, D = ctx.cfg, _unwrap(stage.train_views["D"])
    D.requires_grad_(False)
    pred_fake = D(fake_pair)
    with torch.no_grad():
        pred_real = D(real_pair)
    zero = torch.zeros((), device=ctx.device)
    losses = {"G_gan": ctx.gan(pred_fake, True),
              "G_feat": feature_matching_loss(pred_fake, pred_real, cfg.n_layers_D, cfg.num_D) * cfg.lambda_feat,
              "G_vgg": zero, "G_l1": zero, "G_ssim": zero, "G_temporal": zero, "G_matte": zero, "G_detail": zero}
    pairs = [(fake, b.image, b.label)] + ([(fake_prev, b.image_prev, b.label_prev)] if fake_prev is not None else [])
    if ctx.vgg is not None and cfg.lambda_vgg > 0:
        vp = pairs if cfg.vgg_on_both_frames else pairs[:1]
        losses["G_vgg"] = sum(_vgg(ctx, stage, f, r, lab) for f, r, lab in vp) / len(vp) * cfg.lambda_vgg
    l1 = cfg.lambda_l1 if lambda_l1 is None else lambda_l1
    if l1 > 0:
        losses["G_l1"] = sum(nn.functional.l1_loss(f.float(), r.float()) for f, r, _ in pairs) / len(pairs) * l1
    if cfg.lambda_detail > 0:  # as much fine detail as the real frame, tile by tile (not pixel by pixel)
        losses["G_detail"] = sum(detail_loss(f, r) for f, r, _ in pairs) / len(pairs) * cfg.lambda_detail
    if cfg.lambda_ssim > 0:  # the structure term of the evaluation's SSIM (MS-SSIM + L1 mixes: Zhao et al. 2017)
        losses["G_ssim"] = sum(ssim_loss(f, r) for f, r, _ in pairs) / len(pairs) * cfg.lambda_ssim
    if cfg.lambda_temporal > 0 and fake_prev is not None:  # change like the real frames change (less flicker)
        losses["G_temporal"] = nn.functional.l1_loss((fake - fake_prev).float(),
                                                     (b.image - b.image_prev).float()) * cfg.lambda_temporal
    if cfg.lambda_matte > 0 and (matte := _matte_loss(b, alphas)) is not None:  # a sharp, whole outline
        losses["G_matte"] = matte * cfg.lambda_matte
    return losses


def _d_loss(ctx: StepContext, D_train: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """LSGAN loss of a discriminator on real and (detached) generated inputs, one forward."""
    both = D_train(torch.cat([real, fake.detach()], dim=0))
    n = real.shape[0]
    return 0.5 * (ctx.gan([[f[:n] for f in s] for s in both], True) + ctx.gan([[f[n:] for f in s] for s in both], False))


def drop_previous(cfg: TrainConfig, step: int) -> bool:
    """Previous-frame dropout at this step: a draw from (seed, step), the same on every rank and resume."""
    return cfg.prev_dropout > 0 and float(np.random.default_rng([cfg.seed, step]).random()) < cfg.prev_dropout


def body_step(ctx: StepContext, stage: Stage, batch: PairSample, lr: float, step: int = 0) -> dict[str, float]:
    """One step of the global or local stage: G then D."""
    b = stage_inputs(ctx, stage, batch)
    for o in stage.optims.values():
        o.set_lr(lr)
    windows = stage.G.windows_for(b.label)  # frame t's person window (None: whole frames)
    with ctx.autocast():
        fake_prev, fake, *alphas = stage.train_views["G"](b.label_prev, b.label, drop_previous(ctx.cfg, step))
        if windows is not None:  # D and the losses see frames t-1 and t at frame t's window
            cut = lambda t: None if t is None else crop_windows(t, windows)  # noqa: E731
            b = _map(b, cut)
            fake, fake_prev, alphas = cut(fake), cut(fake_prev), [cut(a) for a in alphas]
        if ctx.cfg.use_temporal:  # (frame t-1, frame t); otherwise frame t alone
            fake_pair = torch.cat([b.label_prev, b.label, fake_prev, fake], dim=1)
            real_pair = torch.cat([b.label_prev, b.label, b.image_prev, b.image], dim=1)
        else:
            fake_pair = torch.cat([b.label, fake], dim=1)
            real_pair = torch.cat([b.label, b.image], dim=1)
        losses = _generator_losses(ctx, stage, b, fake_prev, fake, fake_pair, real_pair, tuple(alphas),
                                   l1_weight_at(ctx.cfg, lr))
        loss_g = sum(losses.values())
    stage.optims["G"].step(loss_g)
    _unwrap(stage.train_views["D"]).requires_grad_(True)
    with ctx.autocast():
        loss_d = _d_loss(ctx, stage.train_views["D"], real_pair, fake_pair)
    stage.optims["D"].step(loss_d)
    return {**{k: v.item() for k, v in losses.items()}, "D": loss_d.item()}


def _face_crops(ctx: StepContext, stage: Stage, b: PairSample) -> tuple[int, float, list[torch.Tensor]] | None:
    """(faces in this rank's batch, loss weight, [label, generated, real crops]); None when no rank
    has a face. Every rank runs the same passes (DistributedDataParallel needs it): a rank whose
    batch has no face trains on a stand-in crop at weight 0 while the others have faces."""
    with torch.no_grad(), ctx.autocast():  # whole frames, exactly as transfer generates them
        prev = stage.G.step(b.label_prev, None) if ctx.cfg.use_temporal else None
        fake = stage.G.step(b.label, prev)
    keep, crops = crop_faces(b.face_box, b.label[:, :STICK_CHANNELS], fake.float(), b.image)
    if all_reduce_sum(len(keep), ctx.info, ctx.device) == 0:
        return None
    weight = 1.0
    if len(keep) == 0:
        s = ctx.face_side // (2 if stage.scale_down else 1)
        stand_in = torch.tensor([[0, 0, s, s]], dtype=b.face_box.dtype, device=b.face_box.device)
        keep, crops = crop_faces(stand_in, b.label[:1, :STICK_CHANNELS], fake[:1].float(), b.image[:1])
        weight = 0.0
    if ctx.face_hr and b.face_image is not None:  # the face's own resolution, from the original video
        crops = [b.face_label[keep], upsample_face(crops[1], b.face_image.shape[-1]), b.face_image[keep]]
    return len(keep), weight, crops


def face_step(ctx: StepContext, stage: Stage, batch: PairSample, lr: float, step: int = 0) -> dict[str, float]:
    """One step of the face GAN: FG then FD. Returns {} when this rank's batch has no face."""
    cfg, b = ctx.cfg, stage_inputs(ctx, stage, batch)
    for o in stage.optims.values():
        o.set_lr(lr)
    got = _face_crops(ctx, stage, b)
    if got is None:
        return {}
    _, weight, (lab_c, fake_c, real_c) = got
    FD = _unwrap(stage.train_views["FD"])
    with ctx.autocast():
        refined = stage.train_views["FG"](lab_c, fake_c)
        FD.requires_grad_(False)
        pf = FD(torch.cat([lab_c, refined], 1))
        with torch.no_grad():
            pr = FD(torch.cat([lab_c, real_c], 1))
        losses = {"F_gan": ctx.gan(pf, True),
                  "F_feat": feature_matching_loss(pf, pr, FD.config.n_layers, FD.config.num_D) * cfg.lambda_feat,
                  "F_vgg": (ctx.vgg(refined, real_c) * cfg.lambda_face_vgg if ctx.vgg is not None
                            else torch.zeros((), device=ctx.device)),
                  "F_l1": nn.functional.l1_loss(refined.float(), real_c.float()) * cfg.lambda_face_l1}
        loss = (losses["F_gan"] + losses["F_feat"] + losses["F_vgg"] + losses["F_l1"]) * weight
    stage.optims["FG"].step(loss)
    FD.requires_grad_(True)
    with ctx.autocast():
        loss_d = _d_loss(ctx, stage.train_views["FD"], torch.cat([lab_c, real_c], 1),
                         torch.cat([lab_c, refined], 1)) * weight
    stage.optims["FD"].step(loss_d)
    if weight == 0.0:  # this rank only kept the others company: nothing of its own to report
        return {}
    return {**{k: v.item() for k, v in losses.items()}, "FD": loss_d.item()}
