"""Person mattes: the segmenter, prepare's mattes/, and the alpha loss that they supervise."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from dancenow.data.dataset import PairDataset, PreparedData, collate_pairs
from dancenow.errors import InputError

from conftest import TINY_SIZE, make_tiny_poses, tiny_train_config


def test_the_segmenter_finds_the_synthetic_dancer():
    """Against the synthetic dancer's exact mask: most of the person, little else; nobody: empty."""
    from dancenow.pose.segment import PersonSegmenter
    from dancenow.synthetic.clip import make_clip

    clip = make_clip(1, 7, 2.0, 15.0, 256)  # 30 frames
    masks = clip.masks()
    ious = []
    with PersonSegmenter() as seg:
        for frame, truth in zip(clip.frames(), masks):
            m = seg.matte(frame) > 127
            ious.append((m & truth).sum() / max(1, (m | truth).sum()))
        empty = seg.matte(np.full((256, 256, 3), 128, np.uint8))
    assert np.mean(ious) > 0.6, ious
    assert (empty > 127).mean() < 0.01
    assert empty.dtype == np.uint8 and empty.shape == (256, 256)


def test_prepare_makes_a_matte_per_frame_and_adds_them_to_older_data(tiny_clip, tiny_data, tmp_path):
    from dancenow.data.prepare import MATTE_METHOD, PrepareConfig, prepare

    data = PreparedData.load(tiny_data)
    assert data.has_mattes and data.manifest["matte"] == MATTE_METHOD
    assert data.read_matte(len(data.poses) - 1).shape == (TINY_SIZE, TINY_SIZE)
    old = tmp_path / "data"
    shutil.copytree(tiny_data, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["matte"]  # data prepared before mattes existed
    (old / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(old / "mattes")
    with pytest.raises(InputError, match="re-run prepare"):
        PairDataset(PreparedData.load(old), mattes=True)
    frame_time = (old / "frames" / "000000.png").stat().st_mtime_ns
    video, poses = tiny_clip
    prepare(video, old, PrepareConfig(width=TINY_SIZE, height=TINY_SIZE), poses=poses, progress=False)
    again = PreparedData.load(old)
    assert again.has_mattes and (old / "frames" / "000000.png").stat().st_mtime_ns == frame_time
    for i in (0, len(again.poses) - 1):
        assert np.array_equal(again.read_matte(i), data.read_matte(i))
    item = collate_pairs([PairDataset(again, mattes=True)[0]])
    assert item.matte.shape == (1, 1, TINY_SIZE, TINY_SIZE) and 0 <= item.matte.min() <= item.matte.max() <= 1
    # a matte lost from a complete folder: the error says to re-run prepare, and that brings it back
    (old / "mattes" / "000003.png").unlink()
    with pytest.raises(InputError, match="re-run prepare"):
        again.read_matte(3)
    prepare(video, old, PrepareConfig(width=TINY_SIZE, height=TINY_SIZE), poses=poses, progress=False)
    assert np.array_equal(again.read_matte(3), data.read_matte(3))
    from dancenow.video import write_mask

    write_mask(old / "mattes" / "000004.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(InputError, match="000004.png"):
        again.read_matte(4)


def test_options_that_cannot_work_are_refused():
    from dancenow.config import TrainConfig

    with pytest.raises(ValueError, match="use_background"):
        TrainConfig(lambda_matte=1.0, use_background=False)
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="ema_decay"):
            TrainConfig(ema_decay=bad)


def test_step_alpha_is_the_composite_and_zero_outside_the_window():
    from dancenow.models.generator import GeneratorConfig
    from dancenow.models.person import PersonGenerator, PersonGeneratorConfig, PersonSpec
    from dancenow.pose.render import render_pose
    from dancenow.tensors import to_tensor

    spec = PersonSpec(use_window=True)
    gcfg = GeneratorConfig(in_channels=spec.in_channels, out_channels=4, ngf=8, n_down=2, n_blocks=1)
    G = PersonGenerator.from_config(PersonGeneratorConfig(gcfg, spec), torch.Generator().manual_seed(0)).eval()
    G.set_background(torch.rand(1, 3, 64, 64) * 2 - 1)
    label = to_tensor(render_pose(make_tiny_poses(1).keypoints[0], 64, 64))[None]
    with torch.no_grad():
        frame, alpha = G.step_alpha(label, None)
        assert torch.equal(frame, G.step(label, None))
    (x0, y0, x1, y1), = G.windows_for(label)
    outside = torch.ones(64, 64, dtype=torch.bool)
    outside[y0:y1, x0:x1] = False
    assert (x1 - x0) * (y1 - y0) < 64 * 64
    assert alpha.shape == (1, 1, 64, 64) and (alpha[0, 0][outside] == 0).all()
    assert 0 <= alpha.min() and alpha.max() <= 1 and alpha[0, 0][~outside].max() > 0
    assert torch.equal(frame[0][:, outside], G.background[0][:, outside])


def _exact_mattes(data_dir):
    """Overwrite the tiny data's mattes with the exact person (where the frame is not the wall)."""
    from dancenow.video import write_mask

    bg = np.zeros((TINY_SIZE, TINY_SIZE, 3), np.uint8)  # the wall and floor `draw_tiny_frames` draws
    yy, xx = np.mgrid[0:TINY_SIZE, 0:TINY_SIZE]
    bg[:] = (150, 140, 120)
    bg[yy > 0.62 * TINY_SIZE] = (110, 80, 60)
    bg[(xx // 8 + yy // 8) % 2 == 0] += 8
    data = PreparedData.load(data_dir)
    for i in range(len(data.poses)):
        person = np.abs(data.read_frame(i).astype(int) - bg.astype(int)).sum(-1) > 40
        write_mask(data_dir / "mattes" / f"{i:06d}.png", (person * 255).astype(np.uint8))


def _alpha_error(run, data_dir) -> float:
    from dancenow.run import load_trained

    model, data = load_trained(run), PreparedData.load(data_dir)
    batch = collate_pairs([PairDataset(data, mattes=True)[k] for k in range(0, 30, 3)])
    with torch.no_grad():
        _, alpha = model.generator.step_alpha(batch.label, None)
    return float((alpha - batch.matte).abs().mean())


def test_the_matte_loss_pulls_the_alpha_to_the_person(tiny_data, tmp_path):
    from dancenow.train.loop import train

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    _exact_mattes(data)
    errors = {}
    for lam in (0.0, 20.0):
        run = tmp_path / f"run{lam:g}"
        train(data, run, tiny_train_config(use_temporal=False, use_face_gan=False, global_steps=40, lr=2e-3,
                                           lambda_matte=lam, checkpoint_every=40), progress=False)
        errors[lam] = _alpha_error(run, data)
        log = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        assert any(r.get("G_matte", 0) > 0 for r in log) == (lam > 0)
    print("alpha error against the matte", errors)
    assert errors[20.0] < 0.7 * errors[0.0], errors


def test_the_plate_puts_back_a_blurred_limb_and_drops_wall_the_segmenter_took():
    """Known answer: a grey plate, a person (a dark torso and a faint, motion-blurred foot the
    segmenter left out), and a blob of wall the segmenter took where the foot was a frame before."""
    from dancenow.pose.segment import plate_matte

    plate = np.full((64, 64, 3), 200, np.uint8)
    image = plate.copy()
    image[10:50, 20:30] = 40                  # torso
    image[40:46, 34:40] = 140                 # blurred foot: 60 from the plate
    seg = np.zeros((64, 64), np.uint8)
    seg[10:50, 20:30] = 255
    seg[30:38, 30:34] = 255                   # wall, identical to the plate
    region = np.zeros((64, 64), bool)
    region[5:55, 15:45] = True
    out = plate_matte(image, plate, seg, region)
    assert (out[12:48, 22:28] == 255).all()   # the torso stays
    assert (out[41:45, 35:39] == 255).all()   # the foot comes in
    assert (out[31:37, 31:33] == 0).all()     # the wall goes
    assert (out[:, 50:] == 0).all()           # nothing outside the region
    # a plate that does not fit the frame (the camera moved): the segmenter's mask as it was
    moved = np.roll(np.where(np.arange(64)[None, :, None] % 8 < 4, 0, 255), 3, axis=1).astype(np.uint8)
    assert np.array_equal(plate_matte(image, np.broadcast_to(moved, image.shape).copy(), seg, region), seg)
    with pytest.raises(ValueError, match="shapes differ"):
        plate_matte(image, plate[:32], seg, region)


def test_prepare_with_plate_mattes_records_it_and_remakes_the_mattes(tiny_clip, tiny_data, tmp_path):
    from dancenow.data.prepare import MATTE_METHOD, PrepareConfig, config_record, matte_method, prepare

    cfg = PrepareConfig(width=TINY_SIZE, height=TINY_SIZE, plate_matte=True)
    assert matte_method(cfg) != MATTE_METHOD
    # data prepared before the option existed records no plate_matte: it stays prepared
    assert "plate_matte" not in config_record(PrepareConfig()) and config_record(cfg)["plate_matte"] is True
    assert PreparedData.load(tiny_data).manifest["config"] == config_record(PrepareConfig(width=TINY_SIZE,
                                                                                          height=TINY_SIZE))
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    video, poses = tiny_clip
    prepare(video, data, cfg, poses=poses, progress=False)
    again = PreparedData.load(data)
    assert again.manifest["matte"] == matte_method(cfg) and again.has_mattes
    old = PreparedData.load(tiny_data)
    assert any(not np.array_equal(again.read_matte(i), old.read_matte(i)) for i in range(len(old.poses)))
