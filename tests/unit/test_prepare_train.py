"""Preparation, learning, resume and DDP on tiny data (CPU, seconds)."""

from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest
import torch

from conftest import TINY_SIZE, draw_tiny_frames, make_tiny_poses, tiny_train_config
from dancenow.config import TrainConfig
from dancenow.data.dataset import PairDataset, PreparedData, collate_pairs
from dancenow.data.prepare import PrepareConfig, crop_box, person_extent, prepare
from dancenow.errors import InputError
from dancenow.pose.schema import PoseSequence, empty_keypoints
from dancenow.pose.geometry import body_motion
from dancenow.train.distributed import DistInfo
from dancenow.train.loop import train, weights_digest
from dancenow.train.schedule import StepSampler, fast_repeats, lr_at, plan_stage_steps


def test_prepare_layout_split_and_rerun(tiny_data, tiny_clip, capsys):
    data = PreparedData.load(tiny_data)
    m = data.manifest
    assert m["n_frames"] == 40 and m["size"] == [TINY_SIZE, TINY_SIZE]
    assert m["split"] == {"train": [0, 36], "val": [36, 40]}  # last 10%, contiguous
    assert len(list((tiny_data / "frames").glob("*.png"))) == 40
    assert data.read_frame(0).shape == (TINY_SIZE, TINY_SIZE, 3)
    assert data.face_boxes.shape == (40, 4)
    assert (tiny_data / "background.png").is_file() and (tiny_data / "target_stats.json").is_file()
    stats = json.loads((tiny_data / "target_stats.json").read_text())
    assert stats["ankle_close"] > stats["ankle_far"]  # the tiny person walks toward the camera
    # keypoints moved into the crop: the feet stay inside the frame
    kp = data.poses.keypoints
    assert kp[:, :, 0][kp[:, :, 2] > 0].min() >= 0 and kp[:, :, 1][kp[:, :, 2] > 0].max() <= TINY_SIZE
    video, poses = tiny_clip
    prepare(video, tiny_data, PrepareConfig(width=TINY_SIZE, height=TINY_SIZE), poses=poses, progress=True)
    assert "nothing to do" in capsys.readouterr().out


def test_prepare_rejects_video_without_person(tiny_clip, tmp_path):
    video, poses = tiny_clip
    nobody = PoseSequence(empty_keypoints(len(poses)), poses.width, poses.height, poses.fps)
    with pytest.raises(InputError, match="detected in only 0 of 40"):
        prepare(video, tmp_path / "d", PrepareConfig(width=64, height=64), poses=nobody, progress=False)
    assert not (tmp_path / "d" / "manifest.json").exists()


def test_crop_box_keeps_aspect_and_frame():
    boxes = np.array([[100, 50, 140, 200], [300, 60, 340, 210]], float)
    x, y, w, h = crop_box(person_extent(np.repeat(boxes, 50, axis=0), 0.1), 640, 360, 512, 256)
    assert abs(w / h - 2.0) < 0.02
    assert 0 <= x and x + w <= 640 and 0 <= y and y + h <= 360


def test_pair_dataset_pairs_are_consecutive(tiny_data):
    ds = PairDataset(PreparedData.load(tiny_data), "train")
    assert len(ds) == 35
    b = collate_pairs([ds[0], ds[5]])
    assert b.label.shape == (2, 3, TINY_SIZE, TINY_SIZE) and b.image.min() >= -1 and b.image.max() <= 1
    assert b.index.tolist() == [1, 6]
    assert not torch.equal(b.label_prev[0], b.label[0])


def test_step_sampler_is_a_function_of_the_step():
    info = DistInfo()
    full = list(StepSampler(10, 3, 0, 0, 25, 2, info))
    tail = list(StepSampler(10, 3, 0, 10, 25, 2, info))
    assert full[20:] == tail
    assert sorted(full[:10]) == list(range(10))  # one epoch is a permutation
    r0 = list(StepSampler(10, 3, 0, 0, 5, 1, DistInfo(0, 2, 0)))
    r1 = list(StepSampler(10, 3, 0, 0, 5, 1, DistInfo(1, 2, 0)))
    assert sorted(r0 + r1) == list(range(10))  # ranks split the data


def test_fast_pairs_are_repeated_in_every_epoch():
    reps = fast_repeats([0.0, 5.0, 1.0, 6.0, 2.0, 3.0], 3)
    assert reps.tolist() == [1, 3, 1, 3, 1, 1]           # the fastest third, 3 times
    assert fast_repeats([5.0, 1.0, 6.0], 1).tolist() == [1, 1, 1]
    info = DistInfo()
    epoch = list(StepSampler(6, 3, 0, 0, 10, 1, info, reps))
    assert np.bincount(epoch, minlength=6).tolist() == reps.tolist()   # 10 steps = one epoch
    once = list(StepSampler(6, 3, 0, 0, 12, 1, info, np.ones(6, int)))
    assert once == list(StepSampler(6, 3, 0, 0, 12, 1, info))           # repeats of 1: the same order
    with pytest.raises(ValueError, match="repeats"):
        StepSampler(6, 3, 0, 0, 1, 1, info, np.zeros(6, int))


def test_the_repeated_order_resumes_mid_epoch():
    reps = fast_repeats([0.0, 5.0, 1.0, 6.0, 2.0, 3.0], 2)  # 8 items an epoch
    full = list(StepSampler(6, 3, 0, 0, 25, 1, DistInfo(), reps))
    assert full[13:] == list(StepSampler(6, 3, 0, 13, 25, 1, DistInfo(), reps))  # from the middle of epoch 2
    assert full[:8] != full[8:16] and sorted(full[:8]) == sorted(full[8:16])    # a fresh order, the same counts


def test_pair_dataset_motion_is_each_pairs_own_frame(tiny_data):
    data = PreparedData.load(tiny_data)
    ds = PairDataset(data, "train")
    whole = body_motion(data.poses.keypoints)
    firsts = [int(collate_pairs([ds[k]]).index[0]) for k in (0, len(ds) - 1)]   # the frames items make
    assert ds.motion().tolist() == whole[firsts[0]:firsts[1] + 1].tolist()
    assert len(ds.motion()) == len(ds) and ds.motion().max() > 0


def test_lr_schedule_constant_then_linear_decay():
    cfg = tiny_train_config(lr=1.0, decay_fraction=0.5)
    assert lr_at(cfg, 0, 100) == 1.0 and lr_at(cfg, 49, 100) == 1.0
    assert lr_at(cfg, 75, 100) == pytest.approx(0.5)
    assert lr_at(cfg, 100, 100) == 0.0


def test_time_budget_plan_keeps_each_stage_to_its_share():
    cfg = tiny_train_config(time_fractions=(0.85, 0.0, 0.15))
    # global starts at t=0 of a 600 s budget: it must end at 510 s whenever it re-plans
    assert plan_stage_steps(cfg, "global", ["global", "face"], 3, 1.0, 0.0, 3.0, 600.0) == 3 + 507
    assert plan_stage_steps(cfg, "global", ["global", "face"], 400, 1.0, 0.0, 400.0, 600.0) == 400 + 110
    # running late: one more step, never a negative plan
    assert plan_stage_steps(cfg, "global", ["global", "face"], 600, 1.0, 0.0, 600.0, 600.0) == 601
    # the last stage gets all the time left
    assert plan_stage_steps(cfg, "face", ["face"], 10, 0.5, 520.0, 525.0, 600.0) == 10 + 150


def test_tiny_model_learns_to_reconstruct(tmp_path):
    """Reconstruction SSIM on the person crop rises above 0.9 within a bounded number of steps."""
    from dancenow.data.prepare import prepare as prep
    from dancenow.eval.metrics import body_box, crop, ssim
    from dancenow.run import load_trained
    from dancenow.transfer.pipeline import TransferPipeline
    from dancenow.video import write_video

    poses = make_tiny_poses(n_frames=8)
    video = write_video(tmp_path / "v.mp4", draw_tiny_frames(poses), poses.fps)
    data_dir = prep(video, tmp_path / "d", PrepareConfig(width=64, height=64, val_fraction=0.0), poses=poses, progress=False)
    cfg = tiny_train_config(ngf=16, n_blocks=2, global_steps=400, use_face_gan=False, checkpoint_every=1000,
                            decay_fraction=0.25, lr=1e-3, log_every=50)
    train(data_dir, tmp_path / "run", cfg, progress=False)
    data = PreparedData.load(data_dir)
    model = load_trained(tmp_path / "run")
    scores = []
    for f in TransferPipeline(model).frames_for(data.poses):
        i, gen = f.index, f.image
        box = body_box(data.poses.keypoints[i], 64, 64)
        scores.append(ssim(crop(gen, box), crop(data.read_frame(i), box)))
    assert np.mean(scores) > 0.9, scores


@pytest.mark.parametrize("ema, fast", [(0.0, 1), (0.9, 2)])
def test_resume_equals_uninterrupted(tiny_data, tmp_path, ema, fast):
    cfg = tiny_train_config(global_steps=6, face_steps=4, checkpoint_every=100, ema_decay=ema, fast_repeat=fast)
    a = train(tiny_data, tmp_path / "a", cfg, progress=False)
    part = train(tiny_data, tmp_path / "b", cfg, max_steps=4, progress=False)
    assert not part.finished
    state = json.loads((tmp_path / "b" / "checkpoints" / "latest" / "state.json").read_text())
    assert (state["stage"], state["stage_step"]) == ("global", 4)
    part2 = train(tiny_data, tmp_path / "b", cfg, resume=True, max_steps=3, progress=False)  # crosses into face
    assert not part2.finished
    b = train(tiny_data, tmp_path / "b", cfg, resume=True, progress=False)
    assert a.finished and b.finished
    assert a.weights_digest == b.weights_digest
    from safetensors.torch import load_file

    for comp in ("generator", "face_generator"):
        wa = load_file(str(tmp_path / "a" / "checkpoints" / "latest" / comp / "model.safetensors"))
        wb = load_file(str(tmp_path / "b" / "checkpoints" / "latest" / comp / "model.safetensors"))
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    # and the checkpoint files are byte-identical (state.json holds the wall-clock time)
    ca, cb = (tmp_path / r / "checkpoints" / "latest" for r in ("a", "b"))
    files = sorted(str(p.relative_to(ca)) for p in ca.rglob("*") if p.is_file() and p.name != "state.json")
    assert files == sorted(str(p.relative_to(cb)) for p in cb.rglob("*") if p.is_file() and p.name != "state.json")
    assert [f for f in files if (ca / f).read_bytes() != (cb / f).read_bytes()] == []
    # with an average, the checkpoint keeps the trained weights beside it (and they differ)
    assert any(f.startswith("face_generator_train/") for f in files) == (ema > 0)
    if ema > 0:
        avg, trained = (load_file(str(ca / c / "model.safetensors")) for c in ("face_generator", "face_generator_train"))
        assert not all(torch.equal(avg[k], trained[k]) for k in avg)


def test_existing_run_needs_resume(tiny_data, tiny_run):
    with pytest.raises(InputError, match="--resume"):
        train(tiny_data, tiny_run, tiny_train_config(), progress=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, data: str, run: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    res = train(data, run, tiny_train_config(global_steps=3, use_face_gan=False), device="cpu", progress=False)
    with open(f"{out}/rank{rank}.txt", "w") as fh:
        fh.write(res.weights_digest)


def test_ddp_two_cpu_processes_end_identical(tiny_data, tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tiny_data), str(tmp_path / "run"), str(tmp_path)), nprocs=2)
    d0, d1 = (tmp_path / "rank0.txt").read_text(), (tmp_path / "rank1.txt").read_text()
    assert d0 == d1
    # and the ranks did see different data: a single process on rank 0's share ends elsewhere
    single = train(tiny_data, tmp_path / "single", tiny_train_config(global_steps=3, use_face_gan=False), progress=False)
    assert single.weights_digest != d0
    assert (tmp_path / "run" / "checkpoints" / "latest" / "generator" / "model.safetensors").is_file()


def test_prepared_poses_stay_where_the_detector_put_them():
    """The target's poses label their own frames: a point moving steadily stays exactly where it
    was detected (no lag behind a fast limb), and a one-frame detector spike is removed."""
    from dancenow.pose.smoothing import smooth_poses

    kp = empty_keypoints(12)
    t = np.arange(12, dtype=np.float32)
    kp[:, :25, 0] = 20 + 6 * t[:, None]  # a fast, steady limb: 6 px per frame
    kp[:, :25, 1] = 50 + 0.5 * t[:, None] ** 2
    kp[:, :25, 2] = 0.9
    spiky = kp.copy()
    spiky[5, 3, :2] += 40  # the detector jumps away for one frame
    out = smooth_poses(PoseSequence(spiky, 100, 100, 24.0), PrepareConfig().smoothing).keypoints
    steady = np.ones((12, 25), bool)
    steady[[0, 11]] = False  # the ends keep their own value under a 3-frame median anyway
    steady[4:7, 3] = False
    assert np.abs(out[:, :25][steady][:, :2] - kp[:, :25][steady][:, :2]).max() < 1e-4
    assert np.abs(out[5, 3, :2] - kp[5, 3, :2]).max() < 7  # a neighbour's value, not the spike


def test_an_interrupted_re_prepare_leaves_no_manifest(tiny_clip, tiny_data, tmp_path, monkeypatch):
    """Re-preparing with other settings removes the old manifest first: a folder interrupted
    half-way is never taken for a finished one."""
    import shutil

    from dancenow.data import prepare as prep_mod

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    video, poses = tiny_clip

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prep_mod, "_write_plate", boom)
    with pytest.raises(KeyboardInterrupt):
        prepare(video, data, PrepareConfig(width=TINY_SIZE, height=TINY_SIZE, val_fraction=0.2), poses=poses,
                progress=False)
    assert not (data / "manifest.json").exists()
    with pytest.raises(InputError, match="prepare"):
        PreparedData.load(data)


def test_prepare_refines_jittery_poses_along_the_flow(tmp_path):
    """Poses with detector-like jitter (1 px) on the synthetic dancer come out of prepare closer
    to the exact ones than without the flow refinement (`PrepareConfig.flow_weight`)."""
    from dancenow.data.prepare import transform_keypoints
    from dancenow.synthetic import make_clip, write_clip

    clip = make_clip(2, 5, 3.0, 24.0, 160, varied=True)
    video = write_clip(clip, tmp_path / "dancer.mp4")
    truth = clip.poses
    rng = np.random.default_rng(0)
    noisy_kp = truth.keypoints.copy()
    seen = noisy_kp[:, :, 2] > 0
    noisy_kp[:, :, :2] += np.where(seen[:, :, None], rng.normal(0, 1.0, noisy_kp[:, :, :2].shape), 0)
    noisy = truth.with_keypoints(noisy_kp.astype(np.float32))
    errors = {}
    for weight in (1.0, PrepareConfig().flow_weight):
        out = prepare(video, tmp_path / f"data{weight}", PrepareConfig(width=160, height=160, flow_weight=weight),
                      poses=noisy, progress=False)
        data = PreparedData.load(out)
        exact = transform_keypoints(truth.keypoints, tuple(data.manifest["crop_box"]), 160, 160)
        kp = data.poses.keypoints
        both = (kp[:, :25, 2] > 0.1) & (exact[:, :25, 2] > 0.1)
        errors[weight] = float(np.linalg.norm(kp[:, :25, :2] - exact[:, :25, :2], axis=2)[both].mean())
    assert data.poses.meta["flow_weight"] == PrepareConfig().flow_weight
    assert errors[PrepareConfig().flow_weight] < 0.9 * errors[1.0], errors  # measured 1.38 -> 1.16 px


def test_prepare_cli_flow_weight(tiny_clip, tmp_path, capsys):
    """`prepare --flow-weight 1` keeps the given poses exactly; a weight outside (0, 1] is one
    clear error and a non-zero exit, with nothing written."""
    from dancenow.cli import main

    video, poses = tiny_clip
    given = poses.save(tmp_path / "given.npz")
    out = tmp_path / "d1"
    assert main(["prepare", str(video), "-o", str(out), "--size", f"{TINY_SIZE}x{TINY_SIZE}", "--poses", str(given),
                 "--flow-weight", "1", "-q"]) == 0
    kept = PreparedData.load(out).poses
    assert "flow_weight" not in kept.meta
    assert main(["prepare", str(video), "-o", str(tmp_path / "d2"), "--size", "64", "--flow-weight", "1.5",
                 "-q"]) != 0
    err = capsys.readouterr().err
    assert "flow_weight 1.5 must be in (0, 1]" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d2").exists()
