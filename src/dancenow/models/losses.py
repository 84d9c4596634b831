"""pix2pixHD losses: LSGAN, discriminator feature matching, VGG perceptual loss.

All losses return float32 scalars (computed in float32 even under autocast)
and create their targets on the input's device, never with `.cuda()`.
Loss weights (lambda_feat, lambda_vgg, ...) are applied by the caller.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import nn

from dancenow.models.vgg import VGGTrunk
from dancenow.similarity import SSIM_K1, SSIM_K2, SSIM_RADIUS, SSIM_SIGMA

# pix2pixHD VGGLoss weights, shallow to deep.
PIX2PIXHD_VGG_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)

DiscriminatorOutput = Union[torch.Tensor, Sequence[torch.Tensor], Sequence[Sequence[torch.Tensor]]]


def _predictions(pred: DiscriminatorOutput) -> list[torch.Tensor]:
    """The prediction map(s) of a discriminator output: a tensor, one scale's
    feature list (last item) or a multiscale list of feature lists (last of each)."""
    if isinstance(pred, torch.Tensor):
        return [pred]
    if len(pred) == 0:
        raise ValueError("GANLoss: empty discriminator output")
    if isinstance(pred[0], torch.Tensor):
        return [pred[-1]]
    out = []
    for scale in pred:
        if len(scale) == 0 or not isinstance(scale[-1], torch.Tensor):
            raise ValueError("GANLoss: each scale must be a non-empty list of tensors")
        out.append(scale[-1])
    return out


class GANLoss(nn.Module):
    """Least-squares GAN loss (LSGAN) as pix2pixHD.

    forward(pred, target_is_real): mean squared error of each scale's prediction
    map to 1.0 (real) or 0.0 (fake), summed over scales. `pred` is a tensor,
    one NLayerDiscriminator's feature list, or a MultiscaleDiscriminator's
    list of lists (the last feature of each scale is used).
    """

    def __init__(self, target_real: float = 1.0, target_fake: float = 0.0):
        super().__init__()
        self.target_real = float(target_real)
        self.target_fake = float(target_fake)

    def forward(self, pred: DiscriminatorOutput, target_is_real: bool) -> torch.Tensor:
        target = self.target_real if target_is_real else self.target_fake
        loss = None
        for p in _predictions(pred):
            p = p.float()
            term = nn.functional.mse_loss(p, torch.full_like(p, target))
            loss = term if loss is None else loss + term
        return loss


def feature_matching_loss(
    fake_feats: Sequence[Sequence[torch.Tensor]],
    real_feats: Sequence[Sequence[torch.Tensor]],
    n_layers: int,
    num_D: int,
) -> torch.Tensor:
    """pix2pixHD discriminator feature matching (before lambda_feat).

    Sum over scales and over all features but the final prediction of
    (4 / (n_layers + 1)) * (1 / num_D) * L1(fake, real.detach()).
    Inputs are MultiscaleDiscriminator outputs (num_D lists of n_layers + 2 maps).
    """
    if len(fake_feats) != num_D or len(real_feats) != num_D:
        raise ValueError(
            f"feature_matching_loss: expected {num_D} scales, got {len(fake_feats)} fake / {len(real_feats)} real"
        )
    weight = (4.0 / (n_layers + 1)) * (1.0 / num_D)
    loss = None
    for fake, real in zip(fake_feats, real_feats):
        if len(fake) != n_layers + 2 or len(real) != n_layers + 2:
            raise ValueError(
                f"feature_matching_loss: expected {n_layers + 2} features per scale, "
                f"got {len(fake)} fake / {len(real)} real"
            )
        for f, r in zip(fake[:-1], real[:-1]):
            term = weight * nn.functional.l1_loss(f.float(), r.detach().float())
            loss = term if loss is None else loss + term
    return loss


class VGGPerceptualLoss(nn.Module):
    """pix2pixHD VGG loss on a frozen trunk: sum_i w_i * L1(f_i(x), f_i(y).detach()).

    weights default to pix2pixHD's (1/32, 1/16, 1/8, 1/4, 1) over the trunk's 5
    layers (see `dancenow.models.vgg` for which layers each trunk taps).
    x, y: RGB (B, 3, H, W) in [-1, 1]; the target y's features are computed
    without gradients. Build the trunk with `load_vgg_trunk`.
    """

    def __init__(self, trunk: VGGTrunk, weights: Sequence[float] = PIX2PIXHD_VGG_WEIGHTS):
        super().__init__()
        if len(weights) != len(trunk.layer_names):
            raise ValueError(
                f"VGGPerceptualLoss: {len(weights)} weights for {len(trunk.layer_names)} layers"
            )
        self.trunk = trunk
        self.weights = tuple(float(w) for w in weights)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape:
            raise ValueError(f"VGGPerceptualLoss: shapes differ {tuple(x.shape)} vs {tuple(y.shape)}")
        with torch.no_grad():
            fys = self.trunk(y)
        fxs = self.trunk(x)
        loss = None
        for w, fx, fy in zip(self.weights, fxs, fys):
            term = w * nn.functional.l1_loss(fx.float(), fy.float())
            loss = term if loss is None else loss + term
        return loss


def _gaussian_kernel(channels: int, like: torch.Tensor) -> torch.Tensor:
    """The evaluation's SSIM window (`dancenow.similarity`) as a (channels, 1, 1, taps) row kernel."""
    x = torch.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=torch.float32, device=like.device)
    g = torch.exp(-(x * x) / (2.0 * SSIM_SIGMA * SSIM_SIGMA))
    return (g / g.sum()).view(1, 1, 1, -1).expand(channels, 1, 1, -1).contiguous()


def ssim_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 - mean SSIM of two batches (B, C, H, W) in [-1, 1], per channel, with the window and
    constants of `dancenow.similarity.ssim`, valid region only. 0 for identical images; float32,
    computed outside autocast (variances are differences of means: bf16 cancels them into
    garbage). The target y gets no gradient. H, W >= 11."""
    win = 2 * SSIM_RADIUS + 1
    if x.shape != y.shape:
        raise ValueError(f"ssim_loss: shapes differ {tuple(x.shape)} vs {tuple(y.shape)}")
    if min(x.shape[-2:]) < win:
        raise ValueError(f"ssim_loss: images must be at least {win} pixels, got {tuple(x.shape[-2:])}")
    with torch.autocast(x.device.type, enabled=False):
        a, b = (x.float() + 1.0) * 0.5, (y.detach().float() + 1.0) * 0.5
        c = a.shape[1]
        kx = _gaussian_kernel(c, a)
        ky = kx.transpose(-1, -2)

        def blur(t: torch.Tensor) -> torch.Tensor:
            return nn.functional.conv2d(nn.functional.conv2d(t, kx, groups=c), ky, groups=c)

        ua, ub = blur(a), blur(b)
        va, vb, vab = blur(a * a) - ua * ua, blur(b * b) - ub * ub, blur(a * b) - ua * ub
        c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
        s = ((2 * ua * ub + c1) * (2 * vab + c2)) / ((ua * ua + ub * ub + c1) * (va + vb + c2))
        return 1.0 - s.mean()


def detail_loss(x: torch.Tensor, y: torch.Tensor, patch: int = 8) -> torch.Tensor:
    """How unlike the target's local detail x's is, position-tolerant: the root mean square
    4-neighbour Laplacian of the grey levels (in [0, 1]) over `patch` x `patch` tiles, L1
    between the two images' tile maps. A blurred x scores above 0 even where it is in place;
    an x shifted by a pixel or two scores little (unlike L1, which then prefers the blur).
    Matches what `eval.metrics.sharpness` measures, tile by tile. (B, C, H, W) in [-1, 1];
    float32 outside autocast; the target y gets no gradient; H, W >= 3."""
    if x.shape != y.shape:
        raise ValueError(f"detail_loss: shapes differ {tuple(x.shape)} vs {tuple(y.shape)}")
    if min(x.shape[-2:]) < 3:
        raise ValueError(f"detail_loss: images must be at least 3 pixels, got {tuple(x.shape[-2:])}")
    with torch.autocast(x.device.type, enabled=False):
        k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], device=x.device).view(1, 1, 3, 3)

        def tiles(t: torch.Tensor) -> torch.Tensor:
            grey = (t.float().mean(dim=1, keepdim=True) + 1.0) * 0.5
            lap = nn.functional.conv2d(grey, k)
            return (nn.functional.avg_pool2d(lap * lap, patch, stride=patch, ceil_mode=True) + 1e-6).sqrt()

        return nn.functional.l1_loss(tiles(x), tiles(y.detach()))
