"""The background plate: person masks from the pose, the median of the free pixels, the row fill."""

from __future__ import annotations

import numpy as np

from dancenow.data.prepare import estimate_background
from dancenow.pose.geometry import person_boxes
from dancenow.pose.render import render_person_mask, render_pose
from dancenow.pose.schema import B

from conftest import draw_tiny_frames, make_tiny_poses


def _tiny_background(size: int = 64) -> np.ndarray:
    """The wall, floor and checks `draw_tiny_frames` draws behind its person."""
    bg = np.zeros((size, size, 3), np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    bg[:] = (150, 140, 120)
    bg[yy > 0.62 * size] = (110, 80, 60)
    bg[(xx // 8 + yy // 8) % 2 == 0] += 8
    return bg


def test_the_mask_covers_the_person_and_much_less_than_the_box():
    poses = make_tiny_poses(20, size=64)
    frames = draw_tiny_frames(poses)
    bg = _tiny_background()
    for kp, frame in zip(poses.keypoints, frames):
        mask = render_person_mask(kp, 64, 64)
        person = np.abs(frame.astype(int) - bg.astype(int)).sum(axis=2) > 0
        assert mask[person].mean() > 0.99  # (this test's figure has strokes thicker than a real limb's)
    # arms spread: the box is mostly background, the mask is not
    kp = poses.keypoints[0].copy()
    for name, dx in (("RElbow", -12), ("RWrist", -20), ("LElbow", 12), ("LWrist", 20)):
        kp[B[name], :2] = kp[B["Neck"], 0] + dx, kp[B["Neck"], 1] + 2
    x0, y0, x1, y1 = person_boxes(kp[None])[0]
    g = 0.15 * (y1 - y0)  # the box grown as the plate's old rule grew it
    assert render_person_mask(kp, 64, 64).sum() < 0.6 * (x1 - x0 + 2 * g) * (y1 - y0 + 2 * g)
    assert not render_person_mask(np.zeros_like(poses.keypoints[0]), 64, 64).any()
    assert render_person_mask(poses.keypoints[0], 64, 64).dtype == bool
    assert render_pose(poses.keypoints[0], 64, 64).shape == (64, 64, 3)


def test_the_plate_is_the_true_background_where_it_was_seen():
    poses = make_tiny_poses(40, size=64)
    frames = np.stack(draw_tiny_frames(poses))
    masks = np.stack([render_person_mask(k, 64, 64) for k in poses.keypoints])
    bg = _tiny_background()
    plate = estimate_background(frames, masks)
    seen = (~masks).sum(axis=0) >= 4
    assert seen.mean() > 0.9
    assert np.array_equal(plate[seen], bg[seen])
    assert np.abs(plate.astype(int) - bg.astype(int)).mean() < 2.0


def test_holes_are_filled_along_the_rows():
    """A skirting line behind a person who never moves runs on through the hole."""
    frames = np.full((5, 40, 60, 3), 200, np.uint8)
    frames[:, 20:22] = (90, 40, 30)          # a dark horizontal line
    frames[:, :, 25:35] = 0                  # the person, always there
    masks = np.zeros((5, 40, 60), bool)
    masks[:, :, 24:36] = True
    plate = estimate_background(frames, masks)
    assert (plate[20:22, 24:36] == (90, 40, 30)).all()
    assert (plate[:20, 24:36] == 200).all() and (plate[22:, 24:36] == 200).all()


def test_prepare_remakes_the_plate_of_older_data_and_nothing_else(tiny_clip, tiny_data, tmp_path):
    import json
    import shutil

    from dancenow.data.prepare import PLATE_METHOD, PrepareConfig, prepare
    from dancenow.video import read_image, write_image

    video, poses = tiny_clip
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    good = read_image(data / "background.png")
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["plate"] == PLATE_METHOD
    del manifest["plate"]  # data prepared before the plate had a method
    (data / "manifest.json").write_text(json.dumps(manifest))
    write_image(data / "background.png", np.zeros_like(good))
    frame_time = (data / "frames" / "000000.png").stat().st_mtime_ns
    prepare(video, data, PrepareConfig(width=64, height=64), poses=poses, progress=False)
    assert np.array_equal(read_image(data / "background.png"), good)
    assert json.loads((data / "manifest.json").read_text())["plate"] == PLATE_METHOD
    assert (data / "frames" / "000000.png").stat().st_mtime_ns == frame_time


def test_resuming_on_a_remade_plate_is_refused(tiny_data, tmp_path):
    import shutil

    import pytest

    from dancenow.errors import InputError
    from dancenow.train.loop import train
    from dancenow.video import read_image, write_image

    from conftest import tiny_train_config

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    run = tmp_path / "run"
    train(data, run, tiny_train_config(), max_steps=2, progress=False)
    write_image(data / "background.png", 255 - read_image(data / "background.png"))
    with pytest.raises(InputError, match="another background plate"):
        train(data, run, tiny_train_config(), resume=True, progress=False)
