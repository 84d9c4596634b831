"""The capped generator, the SSIM loss, previous-frame dropout and the divergence stop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dancenow.config import PRESETS
from dancenow.models.generator import GeneratorConfig, GlobalGenerator
from dancenow.models.losses import ssim_loss
from dancenow.similarity import ssim
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
