"""Benchmark dancenow.models: seconds per GAN training step and generator inference frames/s.

One GAN step (pix2pixHD order) at SIZE x SIZE, batch 1:
  G(pose, previous output) -> fake; D on (pose, fake.detach()) and (pose, real) -> LSGAN D loss;
  D(pose, fake) -> LSGAN G loss + 10 * feature matching + 10 * VGG perceptual loss (HED VGG16 trunk);
  backward + Adam step for G and for D.
G: GlobalGenerator in 6 channels; D: MultiscaleDiscriminator ndf 64, n_layers 3, num_D 2 on 6 channels.
Inference: G alone, eval, torch.inference_mode.
bf16 = torch.autocast(bfloat16); on CPUs without bf16 units (no AVX512_BF16/AMX) it is slower than fp32.

Usage: python benchmarks/bench_models.py [--device cpu|cuda] [--size 256] [--iters 3] [--channels-last]
"""

from __future__ import annotations

import argparse
import time

import torch

from dancenow.device import autocast
from dancenow.models import (
    DiscriminatorConfig,
    GANLoss,
    GeneratorConfig,
    VGGPerceptualLoss,
    build_discriminator,
    build_generator,
    feature_matching_loss,
    load_vgg_trunk,
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_gan_step(
    g_cfg: GeneratorConfig, d_cfg: DiscriminatorConfig, vgg: VGGPerceptualLoss, device: torch.device,
    precision: str, size: int, iters: int, warmup: int, channels_last: bool,
) -> float:
    """Mean seconds per full GAN step (D step + G step)."""
    gen = torch.Generator().manual_seed(0)
    mf = torch.channels_last if channels_last else torch.contiguous_format
    g = build_generator(g_cfg, gen).to(device=device, memory_format=mf)
    d = build_discriminator(d_cfg, gen).to(device=device, memory_format=mf)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    gan = GANLoss()

    def img(seed: int) -> torch.Tensor:
        t = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        return t.to(device=device, memory_format=mf)

    pose, prev, real = img(1), img(2), img(3)

    def step() -> None:
        with autocast(device, precision):
            fake = g(torch.cat([pose, prev], dim=1))
            pred_fake_d = d(torch.cat([pose, fake.detach()], dim=1))
            pred_real = d(torch.cat([pose, real], dim=1))
            loss_d = 0.5 * (gan(pred_fake_d, False) + gan(pred_real, True))
            pred_fake = d(torch.cat([pose, fake], dim=1))
            loss_g = (
                gan(pred_fake, True)
                + 10.0 * feature_matching_loss(pred_fake, pred_real, d_cfg.n_layers, d_cfg.num_D)
                + 10.0 * vgg(fake, real)
            )
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    _sync(device)
    return (time.perf_counter() - t0) / iters


def bench_inference(
    g_cfg: GeneratorConfig, device: torch.device, precision: str, size: int, iters: int, warmup: int,
    channels_last: bool,
) -> float:
    """Generator-only frames per second (batch 1)."""
    mf = torch.channels_last if channels_last else torch.contiguous_format
    g = build_generator(g_cfg, torch.Generator().manual_seed(0)).to(device=device, memory_format=mf).eval()
    x = (torch.rand(1, g_cfg.in_channels, size, size) * 2 - 1).to(device=device, memory_format=mf)
    with torch.inference_mode(), autocast(device, precision):
        for _ in range(warmup):
            g(x)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(iters):
            g(x)
        _sync(device)
    return iters / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iters", type=int, default=3, help="timed GAN steps per setting")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--infer-iters", type=int, default=5)
    ap.add_argument("--channels-last", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {name}; {args.size}x{args.size}, batch 1, "
          f"channels_last={args.channels_last}, {args.iters} timed steps after {args.warmup} warm-up")

    vgg = VGGPerceptualLoss(load_vgg_trunk("hed", device=device))
    d_cfg = DiscriminatorConfig(in_channels=6, ndf=64, n_layers=3, num_D=2)
    gens = {
        "ngf32/4down/9blocks": GeneratorConfig(in_channels=6, ngf=32, n_down=4, n_blocks=9),
        "ngf64/4down/9blocks (paper)": GeneratorConfig(in_channels=6, ngf=64, n_down=4, n_blocks=9),
    }
    print(f"{'generator':30s} {'precision':9s} {'GAN step s':>11s} {'G infer fps':>12s}")
    for label, g_cfg in gens.items():
        for precision in ("fp32", "bf16"):
            s = bench_gan_step(g_cfg, d_cfg, vgg, device, precision, args.size, args.iters, args.warmup,
                               args.channels_last)
            fps = bench_inference(g_cfg, device, precision, args.size, args.infer_iters, args.warmup,
                                  args.channels_last)
            print(f"{label:30s} {precision:9s} {s:11.3f} {fps:12.2f}", flush=True)


if __name__ == "__main__":
    main()
