"""Reference frames: the bank, retrieval, the per-part warp, and a run that trains and generates with them."""

from __future__ import annotations

import numpy as np
import pytest

from dancenow.pose.reference import (
    ReferenceBank,
    bone_affine,
    choose_bank,
    fit_similarity,
    pose_features,
    warp_parts,
)
from dancenow.pose.render import render_input, render_pose
from dancenow.pose.schema import B

from conftest import draw_tiny_frames, make_tiny_poses, tiny_train_config


def test_bone_affine_takes_one_bone_onto_the_other():
    pa, pb, qa, qb = np.array([10.0, 5.0]), np.array([10.0, 25.0]), np.array([40.0, 30.0]), np.array([70.0, 30.0])
    m = bone_affine(pa, pb, qa, qb)
    apply = lambda p: m[:, :2] @ p + m[:, 2]  # noqa: E731
    assert np.allclose(apply(pa), qa) and np.allclose(apply(pb), qb)
    # across the bone nothing is stretched: a point 3 px beside pa stays 3 px beside qa
    assert np.hypot(*(apply(pa + [3.0, 0.0]) - qa)) == pytest.approx(3.0)


def test_fit_similarity_recovers_a_rotation_scale_and_shift():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (12, 2))
    a = 1.3 * np.array([[np.cos(0.4), -np.sin(0.4)], [np.sin(0.4), np.cos(0.4)]])
    dst = src @ a.T + [5.0, -7.0]
    m = fit_similarity(src, dst)
    assert np.allclose(m[:, :2], a) and np.allclose(m[:, 2], [5.0, -7.0])
    assert fit_similarity(src[:1], dst[:1]) is None


def test_warping_a_frame_onto_its_own_pose_copies_it_and_a_shift_moves_it():
    poses = make_tiny_poses(4, size=64)
    frame = draw_tiny_frames(poses)[0]
    kp = poses.keypoints[0]
    same = warp_parts(frame, kp, kp)
    drawn = same.any(axis=2)
    assert drawn.sum() > 300  # the parts cover the person
    assert np.array_equal(same[drawn], frame[drawn])
    # the person's own pixels are inside the parts: every stick-figure pixel is covered
    fig = render_pose(kp, 64, 64).any(axis=2)
    assert drawn[fig].mean() > 0.9
    moved = kp.copy()
    moved[:, :2] += (6, 3)
    shifted = warp_parts(frame, kp, moved)
    assert np.array_equal(shifted[3:, 6:][drawn[:-3, :-6]], frame[:-3, :-6][drawn[:-3, :-6]])


def test_parts_unseen_in_either_pose_are_left_black():
    poses = make_tiny_poses(4, size=64)
    frame = draw_tiny_frames(poses)[0]
    kp = poses.keypoints[0].copy()
    no_arm = kp.copy()
    no_arm[[B["RElbow"], B["RWrist"]], 2] = 0.0
    a, b = warp_parts(frame, kp, kp), warp_parts(frame, kp, no_arm)
    assert b.any(axis=2).sum() < a.any(axis=2).sum()


def test_the_bank_is_diverse_deterministic_and_retrieval_skips_near_frames():
    poses = make_tiny_poses(60, size=64)
    idx = choose_bank(poses.keypoints, 6)
    assert len(set(idx.tolist())) == 6 and list(idx) == sorted(idx)
    assert np.array_equal(idx, choose_bank(poses.keypoints, 6))
    feats = pose_features(poses.keypoints)
    spread = lambda ii: np.mean([np.linalg.norm(feats[i] - feats[j]) for i in ii for j in ii])  # noqa: E731
    assert spread(idx) > spread(np.arange(6))  # farther apart than six consecutive frames
    frames = draw_tiny_frames(poses)
    bank = ReferenceBank(np.stack([frames[i] for i in idx]), poses.keypoints[idx], idx)
    t = int(idx[2])
    assert bank.frames[bank.nearest(poses.keypoints[t])] == t  # its own pose is nearest
    far = bank.frames[bank.nearest(poses.keypoints[t], frame=t, gap=5)]
    assert abs(int(far) - t) >= 5
    label = render_input(poses.keypoints[t], 64, 64, reference=bank, frame=t, gap=5)
    assert label.shape == (64, 64, 6) and np.array_equal(label[:, :, :3], render_pose(poses.keypoints[t], 64, 64))
    with pytest.raises(ValueError, match="reference bank"):
        render_input(poses.keypoints[t], 32, 32, reference=bank)


def test_a_run_with_references_saves_them_and_generates_alike_on_every_backend(tiny_data, tmp_path):
    from dancenow.run import RunDir, load_trained
    from dancenow.train.loop import train
    from dancenow.transfer.backend import (
        Chain,
        available_backends,
        build_generator_for,
        max_difference,
        _run_chain,
    )

    run = tmp_path / "run"
    train(tiny_data, run, tiny_train_config(use_reference=True, reference_frames=5, reference_gap_s=0.5),
          progress=False)
    bank = RunDir(run).load_references()
    assert len(bank.images) == 5 and bank.images.shape[1:] == (64, 64, 3)
    model = load_trained(run)
    assert model.generator.spec.label_channels == 6 and model.reference is not None
    poses = make_tiny_poses(12, size=64, phase=1.0)
    chain = Chain.of(model, poses.keypoints)
    assert chain.labels[0].shape == (64, 64, 6) and chain.labels[0][:, :, 3:].any()
    ref, _ = _run_chain(build_generator_for(model, "torch"), chain)
    for backend in [b for b in available_backends() if b != "torch"]:
        outs, _ = _run_chain(build_generator_for(model, backend), chain)
        assert max_difference(outs, ref) <= 2, backend
    from dancenow.transfer.export import export_onnx, load_onnx

    res = export_onnx(run, tmp_path / "me.onnx")
    assert res.metadata["dancenow.references"] == "me.references.npz"
    exported = load_onnx(res.model)
    labels = [exported.render_label(k) for k in poses.keypoints]
    assert all(np.array_equal(a, b) for a, b in zip(labels, chain.labels))
    gen = exported.generator
    outs = [gen(lab, box)[0] for lab, box in zip(labels, chain.boxes)]
    assert max_difference(outs, ref) <= 2


def test_degenerate_bones_and_collinear_torsos_do_not_smear_or_shear():
    p = np.array([10.0, 10.0])
    assert bone_affine(p, p, np.array([0.0, 0.0]), np.array([5.0, 5.0])) is None
    from dancenow.pose.reference import fit_affine

    rng = np.random.default_rng(1)
    line = np.stack([np.linspace(0, 40, 6), 50 + rng.normal(0, 0.7, 6)], axis=1)  # a side view's torso
    m = fit_affine(line, line + [3.0, 4.0])
    assert np.allclose(m[:, :2], np.eye(2), atol=0.05)  # a shift, not a shear
    poses = make_tiny_poses(2, size=64)
    frame = draw_tiny_frames(poses)[0]
    kp = poses.keypoints[0].copy()
    kp[B["RWrist"], :2] = kp[B["RElbow"], :2]  # a forearm of zero length in the reference
    out = warp_parts(frame, kp, poses.keypoints[1])
    assert out.any()


def test_the_bank_keeps_clear_of_the_held_out_frames(tiny_data):
    from dancenow.data.dataset import PreparedData

    data = PreparedData.load(tiny_data)
    a, b = data.split("train")
    bank = data.reference_bank(5, margin=6)
    assert len(bank.frames) == 5 and bank.frames.max() < b - 6 and bank.frames.min() >= a
