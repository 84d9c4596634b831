"""Schema, smoothing, normalization and rendering: pure functions with hand-computed answers."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dancenow.errors import InputError
from dancenow.pose.geometry import body_motion, body_motion_in, motion_thirds
from dancenow.pose.normalize import NormConfig, apply_transforms, compute_stats, normalize_poses, source_transforms
from dancenow.pose.render import RenderStyle, render_pose, stroke_widths
from dancenow.pose.schema import B, BODY_COLORS, N_KEYPOINTS, NOSE, PoseSequence, empty_keypoints
from dancenow.pose.smoothing import SmoothingConfig, fill_gaps, gaussian_smooth, median_filter, smooth_poses


def test_pose_package_does_not_import_torch():
    code = (
        "import sys, pkgutil, importlib, dancenow.pose as p\n"
        "for m in pkgutil.iter_modules(p.__path__): importlib.import_module('dancenow.pose.' + m.name)\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_posesequence_roundtrip_exact(tmp_path):
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 200, size=(7, N_KEYPOINTS, 3)).astype(np.float32)
    seq = PoseSequence(kp, width=320, height=240, fps=29.97, timestamps=np.cumsum(rng.uniform(0.02, 0.05, 7)),
                       meta={"source": "x.mp4", "stats": {"a": 1.5}})
    back = PoseSequence.load(seq.save(tmp_path / "p.npz"))
    assert np.array_equal(back.keypoints, seq.keypoints)
    assert np.array_equal(back.timestamps, seq.timestamps)
    assert (back.width, back.height, back.fps, back.meta) == (320, 240, 29.97, seq.meta)
    assert not list(tmp_path.glob("*.tmp"))


def test_posesequence_bad_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        PoseSequence.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_text("hello")
    with pytest.raises(InputError, match="bad.npz"):
        PoseSequence.load(bad)
    with pytest.raises(ValueError):
        PoseSequence(np.zeros((3, 25, 3)), width=1, height=1, fps=1)


# ---------------------------------------------------------------- smoothing
def _track(values_xy, conf):
    kp = np.zeros((len(conf), 1, 3), np.float32)
    kp[:, 0, :2] = values_xy
    kp[:, 0, 2] = conf
    return kp


def test_fill_gaps_short_linear_long_stays_missing():
    x = np.arange(12, dtype=np.float32)
    conf = np.ones(12)
    conf[3:5] = 0  # gap of 2
    conf[7:11] = 0  # gap of 4
    kp = _track(np.stack([x * 10, x], 1), conf)
    out = fill_gaps(kp, max_gap=3)
    assert np.allclose(out[3:5, 0, 0], [30, 40])
    assert np.all(out[3:5, 0, 2] > 0)
    assert np.all(out[7:11, 0, 2] == 0)


def test_median_removes_single_frame_outlier():
    y = np.full(9, 50.0)
    y[4] = 500.0
    kp = _track(np.stack([y, y], 1), np.ones(9))
    out = median_filter(kp, 3)
    assert np.allclose(out[:, 0, 0], 50.0)


def test_gaussian_keeps_constant_reduces_noise_and_ignores_missing():
    rng = np.random.default_rng(1)
    n = 200
    x = 100 + rng.normal(0, 2.0, n)
    conf = np.ones(n)
    conf[50:60] = 0
    kp = _track(np.stack([x, np.full(n, 7.0)], 1), conf)
    kp[50:60, 0, :2] = 0.0  # missing points sit at the origin: must not pull neighbours
    out = gaussian_smooth(kp, sigma=2.0)
    assert np.allclose(out[:, 0, 1][conf > 0], 7.0, atol=1e-4)
    assert out[conf > 0, 0, 0].std() < 0.5 * x[conf > 0].std()
    assert np.all(out[50:60, 0, 2] == 0)
    assert abs(out[49, 0, 0] - 100) < 4 and abs(out[60, 0, 0] - 100) < 4


def test_smooth_poses_low_fps_skips_gaussian_keeps_meta():
    kp = empty_keypoints(10)
    kp[:, NOSE] = [[10 + (i % 2), 20, 1] for i in range(10)]
    seq = PoseSequence(kp, 64, 64, fps=5.0)
    out = smooth_poses(seq, SmoothingConfig(median_window=1))
    assert np.array_equal(out.keypoints, seq.keypoints)  # sigma 0.2 frames: no Gaussian at 5 fps
    assert out.meta["smoothing"]["sigma_s"] == SmoothingConfig().sigma_s


# ------------------------------------------------------------ normalization
def _walker(ankle_ys, heights, x=100.0, width=640, height=480, fps=10.0):
    kp = empty_keypoints(len(ankle_ys))
    for t, (y, h) in enumerate(zip(ankle_ys, heights)):
        kp[t, B["RAnkle"]] = [x - 5, y, 1]
        kp[t, B["LAnkle"]] = [x + 5, y, 1]
        kp[t, NOSE] = [x, y - h, 1]
        kp[t, B["Neck"]] = [x, y - 0.85 * h, 1]
    return PoseSequence(kp, width, height, fps)


def _walk(far_y, close_y, far_h, close_h, n_walk=40, dwell=10):
    ys = np.concatenate([np.full(dwell, far_y), np.linspace(far_y, close_y, n_walk), np.full(dwell, close_y)])
    hs = far_h + (ys - far_y) / (close_y - far_y) * (close_h - far_h)
    return ys, hs


CFG = NormConfig(close_percentile=100, far_percentile=0, height_percentile=50, ground_window_s=0)


def test_stats_by_hand():
    ys, hs = _walk(100, 200, 50, 100)
    st = compute_stats(_walker(ys, hs), CFG)
    assert (st.ankle_far, st.ankle_close, st.height_far, st.height_close) == pytest.approx((100, 200, 50, 100))
    assert st.center_x == pytest.approx(100)


def test_source_walking_toward_camera_maps_onto_target_depth_range():
    ys, hs = _walk(100, 200, 50, 100)
    src = _walker(ys, hs, x=100)
    ty, th = _walk(300, 400, 120, 200)
    tgt = _walker(ty, th, x=400, width=800, height=600)
    s_stats, t_stats = compute_stats(src, CFG), compute_stats(tgt, CFG)
    out = normalize_poses(src, s_stats, t_stats, CFG)
    assert (out.width, out.height) == (800, 600)
    nose, ank = out.keypoints[:, NOSE], out.keypoints[:, B["RAnkle"]]
    # far dwell: ankle at 300, height 120; close dwell: ankle at 400, height 200
    assert ank[0, 1] == pytest.approx(300) and (ank[0, 1] - nose[0, 1]) == pytest.approx(120)
    assert ank[-1, 1] == pytest.approx(400) and (ank[-1, 1] - nose[-1, 1]) == pytest.approx(200)
    # midway (ankle y 150, height 75): scale = 2.4 + 0.5 * (2.0 - 2.4) = 2.2, ankle -> 350, nose -> 350 - 2.2*75
    mid = 10 + 20 - 1
    a = (ys[mid] - 100) / 100
    scale = 2.4 + a * (2.0 - 2.4)
    assert nose[mid, 1] == pytest.approx(300 + a * 100 - scale * hs[mid], abs=1e-3)
    # horizontal: the feet straddle the target's centre, 10 px apart scaled
    assert nose[mid, 0] == pytest.approx(400)
    assert out.keypoints[mid, B["LAnkle"], 0] - ank[mid, 0] == pytest.approx(10 * scale, abs=1e-3)
    # missing points stay missing
    assert np.all(out.keypoints[:, B["RWrist"], 2] == 0) and np.all(out.keypoints[:, B["RWrist"], :2] == 0)
    # the normalized source has the target's statistics
    again = compute_stats(out, CFG)
    assert again.ankle_far == pytest.approx(300) and again.height_close == pytest.approx(200)
    assert "normalization" in out.meta


def test_source_transforms_map_other_keypoints_like_the_normalized_poses():
    """The per-frame transforms reproduce normalize_poses, and move any keypoints of the
    source frame (e.g. a synthetic source's exact skeleton) the same way."""
    ys, hs = _walk(100, 200, 50, 100)
    src = _walker(ys, hs, x=100)
    tgt = _walker(*_walk(300, 400, 120, 200), x=400, width=800, height=600)
    s_stats, t_stats = compute_stats(src, CFG), compute_stats(tgt, CFG)
    scale, a_src, a_tgt = source_transforms(src, s_stats, t_stats, CFG)
    assert np.allclose(apply_transforms(src.keypoints, scale, a_src, a_tgt),
                       normalize_poses(src, s_stats, t_stats, CFG).keypoints)
    other = src.keypoints.copy()
    other[:, :, 0] += 7.0 * (other[:, :, 2] > 0)  # 7 source px to the right
    moved = apply_transforms(other, scale, a_src, a_tgt)
    base = apply_transforms(src.keypoints, scale, a_src, a_tgt)
    ok = src.keypoints[:, :, 2] > 0
    assert np.allclose((moved - base)[..., 0][ok], np.broadcast_to(7.0 * scale[:, None], ok.shape)[ok], atol=1e-3)
    assert np.all(moved[~ok] == 0)


def test_jump_is_not_read_as_a_step_back():
    ys = np.full(30, 200.0)
    hs = np.full(30, 100.0)
    ys[14:17] -= 40  # a jump: feet leave the ground, the body rises with them
    src = _walker(ys, hs)
    far_ys, far_hs = _walk(100, 200, 50, 100)
    s_stats = compute_stats(_walker(far_ys, far_hs), NormConfig(close_percentile=100, far_percentile=0, height_percentile=50))
    out = normalize_poses(src, s_stats, s_stats, NormConfig(ground_window_s=1.0))
    h_out = out.keypoints[:, B["RAnkle"], 1] - out.keypoints[:, NOSE, 1]
    assert np.allclose(h_out, 100.0, atol=1e-3)  # same size mid-air
    assert out.keypoints[15, B["RAnkle"], 1] == pytest.approx(160.0, abs=1e-3)  # and still 40 px up


def test_stats_without_feet_raise():
    kp = empty_keypoints(5)
    kp[:, NOSE] = [10, 10, 1]
    with pytest.raises(ValueError, match="ankle"):
        compute_stats(PoseSequence(kp, 64, 64, 10.0))


# ---------------------------------------------------------------- rendering
def _figure(scale=1.0):
    kp = np.zeros((N_KEYPOINTS, 3), np.float32)
    pts = {"Nose": (128, 40), "Neck": (128, 70), "MidHip": (128, 140), "RShoulder": (108, 70),
           "LShoulder": (148, 70), "RHip": (116, 140), "LHip": (140, 140), "RKnee": (114, 190)}
    for name, (x, y) in pts.items():
        kp[B[name]] = [x * scale, y * scale, 1.0]
    return kp


def test_render_deterministic_colours_and_missing_points():
    kp = _figure()
    a, b = render_pose(kp, 256, 256), render_pose(kp, 256, 256)
    assert np.array_equal(a, b)
    assert tuple(a[105, 128]) == BODY_COLORS[B["MidHip"]]  # neck -> mid-hip limb takes mid-hip's colour
    kp2 = kp.copy()
    kp2[B["RKnee"], 2] = 0.0
    c = render_pose(kp2, 256, 256)
    assert c[165, 115].sum() == 0 and a[165, 115].sum() > 0  # the thigh to a missing knee is not drawn
    assert render_pose(np.zeros((N_KEYPOINTS, 3), np.float32), 64, 48).sum() == 0


def test_line_width_scales_with_image_size():
    small = (render_pose(_figure(1.0), 256, 256).sum(-1) > 0).sum()
    big = (render_pose(_figure(2.0), 512, 512).sum(-1) > 0).sum()
    assert 3.0 < big / small < 5.0
    assert stroke_widths(1024, 512)[0] > stroke_widths(256, 256)[0]
    assert render_pose(_figure(), 256, 256, RenderStyle(background=(255, 255, 255)))[0, 0].tolist() == [255, 255, 255]


def test_body_motion_is_the_fastest_point_seen_in_both_frames():
    kp = np.zeros((4, N_KEYPOINTS, 3), np.float32)
    kp[:, :3, 2] = 1.0
    kp[:, 0, :2] = [[0, 0], [3, 4], [3, 4], [3, 10]]   # moves 5, 0, then 6 px
    kp[:, 1, :2] = [[0, 0], [1, 0], [2, 0], [3, 0]]    # 1 px a frame
    kp[2, 2, 2] = 0.0                                  # unseen in frame 2: its jump counts in neither 2 nor 3
    kp[2, 2, :2] = [50, 50]
    assert body_motion(kp).tolist() == [0.0, 5.0, 1.0, 6.0]
    assert body_motion_in(kp, 2, 4).tolist() == [1.0, 6.0]    # frame 2 still measured from frame 1
    assert body_motion_in(kp, 0, 2).tolist() == [0.0, 5.0] and body_motion_in(kp, 3, 3).size == 0
    with pytest.raises(ValueError, match="frames"):
        body_motion_in(kp, 2, 5)


def test_motion_thirds_known_answer():
    assert motion_thirds([0.0, 5.0, 1.0, 6.0, 2.0, 3.0]).tolist() == [0, 2, 0, 2, 1, 1]
    assert motion_thirds([3.0, 1.0, 2.0, 0.0]).tolist() == [2, 0, 1, 0]  # 4 = 2 + 1 + 1
    assert motion_thirds([1.0, 1.0, 1.0]).tolist() == [0, 1, 2]          # ties: the later counts as faster
