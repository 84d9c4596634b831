"""CUDA checks (auto-skipped without a GPU): AMP training steps, channels_last, inference."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_train_config

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_train_steps_on_cuda(tiny_data, tmp_path, precision):
    from dancenow.train.loop import train

    cfg = tiny_train_config(precision=precision, channels_last=True, use_vgg_loss=True, global_steps=4, face_steps=2)
    r = train(tiny_data, tmp_path / "run", cfg, device="cuda", progress=False)
    assert r.finished and r.weights_digest


def test_transfer_on_cuda_matches_cpu(tiny_clip, tiny_run, tmp_path):
    import numpy as np

    from dancenow.run import load_trained
    from dancenow.transfer.pipeline import TransferPipeline

    _, poses = tiny_clip
    p = poses.slice(0, 5)
    cpu = [f.image for f in TransferPipeline(load_trained(tiny_run, "cpu")).frames_for(p)]
    gpu = [f.image for f in TransferPipeline(load_trained(tiny_run, "cuda")).frames_for(p)]
    assert all(np.abs(a.astype(int) - b.astype(int)).mean() < 2.0 for a, b in zip(cpu, gpu))
