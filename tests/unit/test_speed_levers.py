"""The capped generator, the SSIM loss, previous-frame dropout and the divergence stop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dancenow.config import PRESETS
from dancenow.models.generator import GeneratorConfig, GlobalGenerator
from dancenow.models.losses import detail_loss, ssim_loss
from dancenow.similarity import ssim
from dancenow.train.schedule import l1_weight_at, lr_at
from dancenow.train.steps import drop_previous


def test_max_width_caps_the_filters():
    cfg = GeneratorConfig(in_channels=6, out_channels=4, ngf=8, n_down=4, n_blocks=2, skips=True, upsample="resize",
                          max_width=32)
    assert [cfg.width(i) for i in range(5)] == [8, 16, 32, 32, 32]
    g = GlobalGenerator(cfg)
    assert g.features.blocks[0].body[1].weight.shape[:2] == (32, 32)
    out = g(torch.zeros(1, 6, 32, 48))
    assert out.shape == (1, 4, 32, 48)
    uncapped = GlobalGenerator(GeneratorConfig(**{**cfg.__dict__, "max_width": 0}))
    assert sum(p.numel() for p in g.parameters()) < sum(p.numel() for p in uncapped.parameters())


def test_ssim_loss_matches_the_evaluation_ssim():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 50, 3)).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    t = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None].float() / 127.5 - 1  # noqa: E731
    assert 1.0 - ssim_loss(t(a), t(b)).item() == pytest.approx(ssim(a, b), abs=1e-4)
    assert ssim_loss(t(a), t(a)).item() == pytest.approx(0.0, abs=1e-6)


def test_ssim_loss_stays_finite_under_bf16_autocast():
    """Variances as differences of means cancel badly in bf16: the loss must leave autocast."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 48) * 2 - 1
    y = (x + 0.1 * torch.randn_like(x)).clamp(-1, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        v = ssim_loss(x.bfloat16(), y.bfloat16())
    assert v.dtype == torch.float32 and 0.0 < v.item() < 0.1
    assert v.item() == pytest.approx(ssim_loss(x.bfloat16().float(), y.bfloat16().float()).item(), abs=1e-4)


def _textured(seed: int = 0) -> torch.Tensor:
    """A smooth image with fine stripes and speckle: detail that a blur removes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:64, 0:48]
    grey = 0.5 + 0.3 * np.sin(xx * 1.3) * np.cos(yy * 0.9) + 0.1 * rng.standard_normal((64, 48))
    return torch.from_numpy(np.clip(grey, 0, 1)).float().expand(1, 3, 64, 48) * 2 - 1


def test_detail_loss_sees_blur_and_tolerates_a_shift():
    x = _textured()
    blurred = nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    shifted = torch.roll(x, 1, dims=3)
    assert detail_loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    d_blur, d_shift = detail_loss(blurred, x).item(), detail_loss(shifted, x).item()
    l1_blur, l1_shift = (blurred - x).abs().mean().item(), (shifted - x).abs().mean().item()
    assert d_blur > 4 * d_shift  # detail: the blur is far worse than the shift ...
    assert l1_shift > l1_blur    # ... where L1 prefers the blur
    blurred.requires_grad_(True)
    detail_loss(blurred, x).backward()
    assert blurred.grad is not None and blurred.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="shapes differ"):
        detail_loss(x, x[..., :40])


def test_l1_weight_falls_with_the_learning_rate_to_its_end_fraction():
    cfg = PRESETS["cpu"].replace(lambda_l1=50.0, l1_end_fraction=0.2, decay_fraction=0.5)
    w = [l1_weight_at(cfg, lr_at(cfg, s, 100)) for s in range(101)]
    assert w[0] == w[50] == 50.0 and w[100] == pytest.approx(10.0)
    assert all(a >= b for a, b in zip(w, w[1:]))
    const = PRESETS["cpu"].replace(l1_end_fraction=1.0)
    assert {l1_weight_at(const, lr_at(const, s, 100)) for s in range(101)} == {const.lambda_l1}
    with pytest.raises(ValueError, match="l1_end_fraction"):
        PRESETS["cpu"].replace(l1_end_fraction=1.5)


def test_previous_frame_dropout_is_a_fixed_draw_per_step():
    cfg = PRESETS["cpu"].replace(prev_dropout=0.3)
    draws = [drop_previous(cfg, s) for s in range(2000)]
    assert draws == [drop_previous(cfg, s) for s in range(2000)]
    assert 0.25 < np.mean(draws) < 0.35
    assert not any(drop_previous(PRESETS["cpu"].replace(prev_dropout=0.0), s) for s in range(200))


def test_diverged_training_stops_and_keeps_the_last_checkpoint(tiny_data, tmp_path, monkeypatch):
    import json

    from dancenow.errors import DancenowError
    from dancenow.train import loop
    from conftest import tiny_train_config

    real_step = loop.body_step

    def nan_after_three(ctx, stage, batch, lr, step=0):
        losses = real_step(ctx, stage, batch, lr, step)
        return {**losses, "G_l1": float("nan")} if step >= 3 else losses

    monkeypatch.setattr(loop, "body_step", nan_after_three)
    with pytest.raises(DancenowError, match="diverged: global step 4 gave non-finite G_l1"):
        loop.train(tiny_data, tmp_path / "run", tiny_train_config(global_steps=6, checkpoint_every=3), progress=False)
    state = json.loads((tmp_path / "run" / "checkpoints" / "latest" / "state.json").read_text())
    assert state["stage_step"] == 3
