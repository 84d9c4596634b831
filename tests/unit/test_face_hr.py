"""The face GAN at the face's own resolution: prepare cuts the faces from the original video,
the face stage trains on them, transfer pastes them (feathered) into a larger output, evaluate
scores them."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from conftest import TINY_SIZE, draw_tiny_frames, make_tiny_poses, tiny_train_config

VIDEO_SIZE = 3 * TINY_SIZE  # filmed at 3x the prepared frames' size


@pytest.fixture(scope="module")
def hr_data(tmp_path_factory):
    from dancenow.data.prepare import PrepareConfig, prepare
    from dancenow.video import write_video

    d = tmp_path_factory.mktemp("hr_clip")
    poses = make_tiny_poses(size=VIDEO_SIZE)
    video = write_video(d / "clip.mp4", draw_tiny_frames(poses), poses.fps)
    out = d / "data"
    prepare(video, out, PrepareConfig(width=TINY_SIZE, height=TINY_SIZE), poses=poses, progress=False)
    return video, out


@pytest.fixture(scope="module")
def hr_run(hr_data, tmp_path_factory):
    from dancenow.train.loop import train

    run = tmp_path_factory.mktemp("hr_run") / "run"
    train(hr_data[1], run, tiny_train_config(), progress=False)
    return run


def test_feather_mask_is_one_inside_and_falls_at_the_edges():
    from dancenow.tensors import feather_mask

    m = feather_mask(32, 4)
    assert m.shape == (32, 32)
    assert torch.all(m[4:28, 4:28] == 1)
    assert 0 < m[0, 16] < m[2, 16] < 1
    assert m[0, 0] <= m[0, 16]


def test_hr_size_rule():
    from dancenow.data.prepare import face_hr_size

    assert face_hr_size(32, (0, 0, 600, 600), 128, 128) == 128   # 4.7x the detail: capped
    assert face_hr_size(32, (0, 0, 192, 192), 64, 128) == 96     # 3x
    assert face_hr_size(32, (0, 0, 150, 150), 128, 128) == 0     # no more detail than the frames
    assert face_hr_size(32, (0, 0, 600, 600), 128, 0) == 0       # turned off


def test_prepare_cuts_faces_from_the_original_video(hr_data):
    from dancenow.data.dataset import PreparedData
    from dancenow.video import read_frames

    from dancenow.data.prepare import face_crop_box, face_hr_size

    video, root = hr_data
    data = PreparedData.load(root)
    box, side = data.manifest["crop_box"], data.manifest["face_box_size"]
    assert box[2] > 2 * TINY_SIZE  # the person's extent in the video is more than twice the frame
    hr = data.face_hr_size
    assert hr == face_hr_size(side, box, TINY_SIZE, 128) and hr >= 1.5 * side
    with_face = [i for i in range(len(data.poses)) if data.has_face(i)]
    assert len(with_face) > 30
    originals = {f.index: f.image for f in read_frames(video)}
    for i in with_face[::10]:
        face = data.read_face(i)
        assert face.shape == (hr, hr, 3)
        x0, y0, w, h = face_crop_box(data.face_boxes[i], box, TINY_SIZE)  # the same place in the video
        orig = cv2.resize(originals[i][y0 : y0 + h, x0 : x0 + w], (hr, hr), interpolation=cv2.INTER_AREA)
        diff = np.abs(face.astype(int) - orig.astype(int)).mean()
        assert diff < 6, f"frame {i}: the face crop is not the video's face box ({diff:.1f})"
        small = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA).astype(int)
        bx0, by0, bx1, by1 = (int(v) for v in data.face_boxes[i])
        assert np.abs(small - data.read_frame(i)[by0:by1, bx0:bx1].astype(int)).mean() < 8
        label = data.face_label(i)
        assert label.shape == (hr, hr, 3) and label.any()


def test_prepare_makes_no_faces_without_more_detail(tiny_data):
    from dancenow.data.dataset import PairDataset, PreparedData

    data = PreparedData.load(tiny_data)
    assert data.face_hr_size == 0 and not (tiny_data / "faces").is_dir() or not any((tiny_data / "faces").iterdir())
    item = PairDataset(data)[0]
    assert item[-1] is None and item[-2] is None


def test_face_stage_trains_at_full_resolution(hr_run, hr_data):
    from dancenow.data.dataset import PairDataset, PreparedData, collate_pairs
    from dancenow.run import load_trained

    data = PreparedData.load(hr_data[1])
    hr = data.face_hr_size
    batch = collate_pairs([PairDataset(data)[k] for k in range(3)])
    assert batch.face_image.shape == (3, 3, hr, hr) and batch.face_label.shape == (3, 3, hr, hr)
    model = load_trained(hr_run)
    assert model.config.data.face_hr_size == hr and model.face_hr_size == hr
    metrics = [json.loads(x) for x in (hr_run / "metrics.jsonl").read_text().splitlines()]
    assert any("F_l1" in m for m in metrics), "the face stage did not train"


def test_transfer_writes_the_face_at_full_detail(hr_run, hr_data, tmp_path):
    from dancenow.data.dataset import PreparedData
    from dancenow.run import load_trained
    from dancenow.transfer.pipeline import TransferPipeline, output_frame_size, upscale_frame
    from dancenow.video import probe

    model = load_trained(hr_run)
    hr, side = model.face_hr_size, model.face_box_size
    k = hr / side
    big_side = 2 * round(TINY_SIZE * k / 2)
    assert output_frame_size(model, None) == (big_side, big_side)  # the face at full detail
    assert output_frame_size(model, 100) == (100, 100)
    data = PreparedData.load(hr_data[1])
    frames = list(TransferPipeline(model).frames_for(data.poses.slice(30, 36)))
    f = next(f for f in frames if f.face is not None)
    assert f.face.shape == (hr, hr, 3) and f.face_box is not None
    big = upscale_frame(f, (big_side, big_side))
    x0, y0 = round(int(f.face_box[0]) * k), round(int(f.face_box[1]) * k)
    b = hr // 8 + 1  # inside the feathered border
    inner = big[y0 + b : y0 + hr - b, x0 + b : x0 + hr - b].astype(int)
    assert np.abs(inner - f.face[b:-b, b:-b].astype(int)).max() <= 1
    from dancenow.transfer.pipeline import TransferConfig, transfer

    out = transfer(hr_data[0], hr_run, tmp_path / "out.mp4", TransferConfig(audio=False),
                   poses=make_tiny_poses(size=VIDEO_SIZE), progress=False).output
    meta = probe(out)
    assert (meta.width, meta.height) == (big_side, big_side)


def test_evaluate_scores_the_full_resolution_face(hr_run, hr_data, tmp_path):
    from dancenow.eval.report import evaluate

    class NoDetector:
        def __call__(self, frames, *, fps, width, height, progress):
            from dancenow.pose.schema import PoseSequence, empty_keypoints

            return PoseSequence(empty_keypoints(sum(1 for _ in frames)), width, height, fps)

    r = evaluate(hr_run, hr_data[1], tmp_path / "rep", detector=NoDetector(), progress=False)
    assert r.face_full is not None and r.face_full.frames > 0
    assert 0 < r.face_full.ssim <= 1
    assert r.identity_on == "full-resolution faces"
    assert "full resolution" in (tmp_path / "rep" / "report.md").read_text()


def test_time_budget_gives_a_full_resolution_face_stage_its_own_share():
    from dancenow.config import preset
    from dancenow.train.schedule import plan_config

    cfg = preset("cpu")
    assert plan_config(cfg, False) is cfg
    g, l, f = plan_config(cfg, True).time_fractions
    assert f == cfg.face_hr_time_fraction and abs(g + l + f - 1) < 1e-9 and l == 0
    assert plan_config(cfg.replace(use_face_gan=False), True) == cfg.replace(use_face_gan=False)
