"""The MediaPipe detector on real footage: accuracy against reference keypoints, the
person's left/right, the face/hand crop stage, and videos without anybody."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from dancenow.errors import InputError
from dancenow.pose.detect import DetectorConfig, HolisticDetector, detect_frames, detect_video
from dancenow.pose.mediapipe_map import pose33_to_body25
from dancenow.pose.openpose_io import read_openpose_yaml
from dancenow.pose.schema import BODY, BODY_NAMES, FACE, LEFT_HAND, RIGHT_HAND, B, PoseSequence
from dancenow.video import Frame, read_frames, read_image, write_video

pytest.importorskip("mediapipe")
pytestmark = pytest.mark.realdata

# BODY_25 indices with their left/right counterparts swapped.
_MIRROR = [BODY_NAMES.index({"L": "R", "R": "L"}[n[0]] + n[1:]) if n[0] in "LR" else i
           for i, n in enumerate(BODY_NAMES)]


def _pck(pred: np.ndarray, ref: np.ndarray, frac: float) -> tuple[float, float, int]:
    """pred, ref: (T, 25, 3). Fraction of points both have within frac x the reference
    body box diagonal, their mean pixel error, and how many points were compared."""
    both = (pred[..., 2] > 0) & (ref[..., 2] > 0)
    lo = np.where(ref[..., 2:] > 0, ref[..., :2], np.inf).min(1)
    hi = np.where(ref[..., 2:] > 0, ref[..., :2], -np.inf).max(1)
    diag = np.linalg.norm(hi - lo, axis=1)[:, None].repeat(ref.shape[1], 1)
    err = np.linalg.norm(pred[..., :2] - ref[..., :2], axis=-1)
    return float((err[both] < frac * diag[both]).mean()), float(err[both].mean()), int(both.sum())


def test_squats_body_matches_blazepose_reference(shared_data):
    d = shared_data / "keypoints"
    ref33 = np.asarray(json.loads((d / "squats_blazepose33_px.json").read_text()), np.float64)
    assert ref33.shape == (65, 33, 3)
    ref = np.stack([pose33_to_body25(np.c_[r[:, :2], np.ones(33)]) for r in ref33])
    seq = detect_video(d / "squats_720x1280_5fps.mp4", progress=False)
    assert (len(seq), seq.width, seq.height, seq.fps) == (65, 720, 1280, 5.0)
    assert np.allclose(seq.timestamps[:3], [0.0, 0.2, 0.4])
    assert seq.meta["missed_frames"] == [] and seq.meta["source"].endswith("squats_720x1280_5fps.mp4")
    assert seq.meta["detector"] == HolisticDetector.name
    pck, mean_px, n = _pck(seq.body, ref, 0.05)
    print(f"squats: PCK@0.05 {pck:.3f} over {n} body points, mean error {mean_px:.1f} px")
    assert n >= 0.9 * 65 * 23  # 23 of 25 BODY_25 points have a MediaPipe counterpart
    assert pck >= 0.95
    # A large, frontal person: the face and both hands are found in (nearly) every frame.
    det = seq.meta["detection"]
    assert det["frames"] == 65 and det["missed_frames"] == 0
    assert det["face_frames"] >= 60 and det["left_hand_frames"] >= 45 and det["right_hand_frames"] >= 60


@pytest.fixture(scope="module")
def openpose_sample(shared_data):
    d = shared_data / "openpose_sample" / "train"
    ref = read_openpose_yaml(d / "keypoints", 1920, 1080, 30.0)
    images = [read_image(d / "original_frames" / f"{name}.jpg") for name in ref.meta["frames"]]
    with HolisticDetector(DetectorConfig(static_image_mode=True)) as det:
        ours = np.stack([det.detect(im) for im in images])
    return d, ref, images, ours


def test_openpose_sample_agrees_with_openpose_left_right_included(openpose_sample):
    _, ref, _, ours = openpose_sample
    pck, mean_px, n = _pck(ours[:, BODY], ref.body, 0.1)
    mirrored = ours[:, BODY][:, _MIRROR]
    pck_swapped, _, _ = _pck(mirrored, ref.body, 0.1)
    print(f"OpenPose sample: PCK@0.1 {pck:.3f} over {n} body points (mean {mean_px:.1f} px); "
          f"with left/right swapped {pck_swapped:.3f}")
    assert n >= 3 * 15
    assert pck >= 0.9
    assert pck_swapped < 0.8  # the man stands side-on with legs apart: swapping sides must fail
    # OpenPose found his right hand in all three frames; ours must sit on it too.
    rh_ref, rh = ref.keypoints[:, RIGHT_HAND], ours[:, RIGHT_HAND]
    assert (rh[..., 2] > 0).all(axis=1).all()
    err = np.linalg.norm(rh[..., :2] - rh_ref[..., :2], axis=-1)
    assert np.median(err) < 10.0, np.median(err)


def test_openpose_sample_side_by_side_with_the_authors_label(openpose_sample, artifacts_dir):
    from dancenow.pose.render import render_pose

    d, ref, images, ours = openpose_sample
    name = ref.meta["frames"][0]
    label = read_image(d / "train_label" / f"{name}.png")  # 1024x512: the 1920x1080 frame scaled to 512 rows, centred
    lh, lw = label.shape[:2]
    s = lh / 1080
    tx = (lw - 1920 * s) / 2

    def to_label(kp: np.ndarray) -> np.ndarray:
        k = kp.copy()
        k[:, 0] = k[:, 0] * s + tx
        k[:, 1] *= s
        k[k[:, 2] <= 0] = 0
        return k

    ours_img = render_pose(to_label(ours[0]), lw, lh)
    theirs_img = render_pose(to_label(ref.keypoints[0]), lw, lh)
    photo = cv2.resize(images[0], (round(1920 * s), lh), interpolation=cv2.INTER_AREA)
    photo = cv2.copyMakeBorder(photo, 0, 0, int(tx), lw - photo.shape[1] - int(tx), cv2.BORDER_CONSTANT)
    top = np.concatenate([photo, ours_img], axis=1)
    bottom = np.concatenate([theirs_img, label], axis=1)
    sheet = np.concatenate([top, bottom], axis=0)
    for text, (x, y) in (("frame", (8, 24)), ("ours (MediaPipe), our renderer", (lw + 8, 24)),
                         ("authors' OpenPose YAML, our renderer", (8, lh + 24)), ("authors' train_label", (lw + 8, lh + 24))):
        cv2.putText(sheet, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 5, cv2.LINE_AA)
        cv2.putText(sheet, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    out = artifacts_dir / "detect_vs_authors_label.png"
    cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    assert out.is_file()
    assert ours_img.any() and (ours_img.reshape(-1, 3).any(axis=1).mean() > 0.005)


def test_small_target_face_and_hands_from_crops(shared_data):
    """The 256x256 target's 20-pixel face: whole-frame mp.solutions.holistic finds it in
    about a quarter of the frames; the crop stage must do clearly better."""
    seq = detect_video(shared_data / "target" / "dancer_black_256.avi", progress=False, max_frames=100)
    assert len(seq) == 100 and seq.meta["missed_frames"] == []
    face = (seq.keypoints[:, FACE, 2] > 0).any(axis=1)
    hands = (seq.keypoints[:, LEFT_HAND, 2] > 0).any(axis=1) | (seq.keypoints[:, RIGHT_HAND, 2] > 0).any(axis=1)
    print(f"target, first 100 frames: face {face.mean():.0%}, a hand {hands.mean():.0%}")
    assert face.mean() >= 0.4
    assert hands.sum() >= 3
    # Face points lie on the head: between the ears' height band and above the neck.
    body = seq.body
    f = seq.keypoints[face][:, FACE]
    neck_y = body[face][:, B["Neck"], 1]
    nose = body[face][:, B["Nose"], :2]
    centre = f[:, :, :2].mean(axis=1)
    assert (centre[:, 1] < neck_y).all()
    assert np.median(np.linalg.norm(centre - nose, axis=1)) < 10.0  # pixels, in a 256-pixel frame


def test_frames_as_arrays_or_frames_and_rescaled(openpose_sample):
    _, ref, images, ours = openpose_sample
    half = [cv2.resize(im, (960, 540), interpolation=cv2.INTER_AREA) for im in images]
    frames = [Frame(index=i, time=0.5 * i, image=im) for i, im in enumerate(half)]
    with HolisticDetector(DetectorConfig(static_image_mode=True)) as det:
        seq = detect_frames(frames, fps=2.0, width=1920, height=1080, progress=False, detector=det)
    assert np.allclose(seq.timestamps, [0.0, 0.5, 1.0]) and (seq.width, seq.height) == (1920, 1080)
    both = (seq.body[..., 2] > 0) & (ours[:, BODY, 2] > 0)
    err = np.linalg.norm(seq.body[..., :2] - ours[:, BODY, :2], axis=-1)[both]
    assert both.sum() >= 3 * 15 and np.median(err) < 15.0  # full-frame pixels
    with HolisticDetector(DetectorConfig(static_image_mode=True)) as det:
        seq2 = detect_frames(half, fps=2.0, width=960, height=540, progress=False, detector=det)
    assert np.allclose(seq2.timestamps, [0.0, 0.5, 1.0])
    assert np.allclose(seq2.body[..., :2] * 2, seq.body[..., :2], atol=1e-3)


def test_threads_do_not_change_results(shared_data):
    frames = [f.image for f in read_frames(shared_data / "keypoints" / "squats_720x1280_5fps.mp4", end=12)]
    out = []
    for threads in (1, 2):
        with HolisticDetector(DetectorConfig(threads=threads)) as det:
            out.append(np.stack([det.detect(f) for f in frames]))
    assert (out[0][:, FACE, 2] > 0).any() and (out[0][:, RIGHT_HAND, 2] > 0).any()
    assert np.array_equal(out[0], out[1])


@pytest.mark.parametrize("cfg", [DetectorConfig(), DetectorConfig.tracking()], ids=["offline", "tracking"])
def test_stream_gives_the_same_keypoints_as_frame_by_frame(shared_data, cfg):
    """detect_stream overlaps the next frame's body model with this frame's face and hands:
    the same keypoints, the same counts, frame for frame (a frame without anybody included)."""
    frames = [f.image for f in read_frames(shared_data / "keypoints" / "squats_720x1280_5fps.mp4", end=10)]
    frames.insert(4, np.full_like(frames[0], 255))
    with HolisticDetector(cfg) as det:
        serial = np.stack([det.detect(f) for f in frames])
        serial_stats = (det.stats.missed_frames, det.stats.face_frames, det.stats.right_hand_frames)
    with HolisticDetector(cfg) as det:
        streamed = np.stack(list(det.detect_stream(iter(frames))))
        stats = (det.stats.missed_frames, det.stats.face_frames, det.stats.right_hand_frames)
    assert (serial[:, FACE, 2] > 0).any() and (serial[:, RIGHT_HAND, 2] > 0).any()
    assert serial_stats[0] == [4]
    assert np.array_equal(serial, streamed) and serial_stats == stats


def test_video_without_anybody_is_all_missed(tmp_path):
    rng = np.random.default_rng(0)
    frames = [np.full((128, 160, 3), 255, np.uint8) for _ in range(4)]
    frames += [rng.integers(0, 256, size=(128, 160, 3), dtype=np.uint8) for _ in range(4)]
    video = write_video(tmp_path / "nobody.mp4", frames, fps=8.0)
    seq = detect_video(video, progress=False)
    assert len(seq) == 8 and (seq.width, seq.height) == (160, 128)
    assert (seq.keypoints == 0).all()
    assert seq.meta["missed_frames"] == list(range(8))
    assert not seq.detected().any()
    assert seq.meta["detection"]["missed_frames"] == 8 and seq.meta["detection"]["face_frames"] == 0
    assert PoseSequence.load(seq.save(tmp_path / "p.npz")).meta == seq.meta  # JSON-clean meta
    assert len(detect_video(video, progress=False, max_frames=3)) == 3


def test_unreadable_video_names_the_file(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 10)
    with pytest.raises(InputError) as e:
        detect_video(bad, progress=False)
    assert "broken.mp4" in str(e.value)


class _Counting:
    """Wraps a crop landmarker and counts its calls."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def __call__(self, image, roi):
        self.calls += 1
        return self.inner(image, roi)

    def close(self):
        self.inner.close()


def test_tracking_mode_runs_parts_every_other_frame_and_keeps_them_close(shared_data):
    frames = [f.image for f in read_frames(shared_data / "keypoints" / "squats_720x1280_5fps.mp4", end=12)]
    out, calls = [], []
    for cfg in (DetectorConfig(), DetectorConfig.tracking()):
        with HolisticDetector(cfg) as det:
            det._face = _Counting(det._face)
            det._hands = {k: _Counting(v) for k, v in det._hands.items()}
            out.append(np.stack([det.detect(f) for f in frames]))
            calls.append((det._face.calls, sum(h.calls for h in det._hands.values())))
    offline, tracking = out
    assert np.array_equal(offline[:, BODY], tracking[:, BODY])  # the body is the same model, same tracking
    assert calls[1][0] <= (calls[0][0] + 1) // 2 + 1 and calls[1][1] <= (calls[0][1] + 1) // 2 + 2
    for part in (FACE, RIGHT_HAND):
        both = (offline[:, part, 2] > 0) & (tracking[:, part, 2] > 0)
        assert both.sum() >= 0.5 * (offline[:, part, 2] > 0).sum()  # found about as often
        err = np.linalg.norm(offline[:, part, :2] - tracking[:, part, :2], axis=-1)[both]
        height = float(np.ptp(offline[:, BODY, 1][offline[:, BODY, 2] > 0]))
        assert np.median(err) < 0.03 * height  # moved with the body between detections: a few pixels
