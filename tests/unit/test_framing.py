"""prepare never cuts the person off: the frame's aspect follows the person, and it pads where the
person reaches past the video's edge."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from dancenow.data.dataset import PreparedData
from dancenow.data.prepare import PrepareConfig, crop_box, output_size, prepare
from dancenow.errors import InputError
from dancenow.synthetic import make_clip, write_clip

DATA = Path(os.environ.get("DANCENOW_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


def _inside(data: PreparedData) -> tuple[int, int]:
    """(visible keypoints outside the prepared frame, visible keypoints)."""
    kp = data.poses.keypoints
    ok = kp[:, :, 2] > 0.1
    x, y = kp[:, :, 0][ok], kp[:, :, 1][ok]
    w, h = data.size
    return int(((x < 0) | (y < 0) | (x > w) | (y > h)).sum()), int(ok.sum())


def test_output_size_follows_the_person():
    assert output_size((0, 0, 100, 300), PrepareConfig(size=256)) == (96, 256)   # portrait: 85.3 -> 96
    assert output_size((0, 0, 300, 100), PrepareConfig(size=256)) == (256, 96)
    assert output_size((0, 0, 10, 300), PrepareConfig(size=256)) == (16, 256)    # never below the multiple
    assert output_size((0, 0, 100, 300), PrepareConfig(width=512, height=256)) == (512, 256)
    with pytest.raises(ValueError, match="multiple of 16"):
        PrepareConfig(size=250)
    with pytest.raises(ValueError, match="both width and height"):
        PrepareConfig(width=256)


def test_crop_box_pads_instead_of_cutting():
    # a square output for a person taller than the 200 px high video: the box reaches past its edges
    x, y, w, h = crop_box((40.0, -30.0, 120.0, 230.0), 320, 200, 256, 256)
    assert w == h == 260 and y <= -30 and y + h >= 230 and x <= 40 and x + w >= 120
    # where it fits, the box stays inside the video
    x, y, w, h = crop_box((40.0, 20.0, 120.0, 180.0), 320, 200, 128, 256)
    assert (w, h) == (80, 160) and 0 <= x and x + w <= 320 and 0 <= y and y + h <= 200


def test_portrait_video_gives_portrait_frames_with_the_whole_person(tmp_path):
    clip = make_clip(2, 5, 3.0, 10, (144, 256))
    video = write_clip(clip, tmp_path / "portrait.mp4")
    data = PreparedData.load(prepare(video, tmp_path / "d", PrepareConfig(size=128), poses=clip.poses,
                                     progress=False))
    w, h = data.size
    assert h == 128 and w < h and w % 16 == 0
    outside, seen = _inside(data)
    assert seen > 0 and outside == 0
    assert data.read_frame(0).shape == (h, w, 3)


def test_a_video_that_cuts_the_person_off_is_refused(tmp_path):
    clip = make_clip(2, 5, 2.0, 10, (144, 256))
    video = write_clip(clip, tmp_path / "v.mp4")
    kp = clip.poses.keypoints.copy()
    kp[:, :, 1] += 0.45 * 256 * (kp[:, :, 2] > 0)  # the feet below the bottom edge in every frame
    cut = clip.poses.with_keypoints(kp)
    with pytest.raises(InputError, match="cuts the person off in 20 of the 20 frames"):
        prepare(video, tmp_path / "d", PrepareConfig(size=128), poses=cut, progress=False)
    assert not (tmp_path / "d" / "manifest.json").exists()


@pytest.mark.skipif(not (DATA / "target" / "fashion_turn_960x1254.mp4").is_file(),
                    reason="real footage ../shared/data/target/fashion_turn_960x1254.mp4 not present")
def test_real_portrait_clip_keeps_head_and_feet(tmp_path):
    data = PreparedData.load(prepare(DATA / "target" / "fashion_turn_960x1254.mp4", tmp_path / "d",
                                     PrepareConfig(size=256), progress=False))
    w, h = data.size
    assert h == 256 and w < h
    outside, seen = _inside(data)
    assert seen > 1000 and outside == 0, (outside, seen)
