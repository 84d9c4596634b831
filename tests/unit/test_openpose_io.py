"""Keypoint formats: OpenPose JSON/YAML import-export and the MediaPipe -> schema tables."""

from __future__ import annotations

import builtins
import json

import cv2
import numpy as np
import pytest

from dancenow.errors import DancenowError, InputError
from dancenow.pose.mediapipe_map import (
    BODY25_FROM_MP_POSE,
    FACE70_FROM_MP_FACE,
    MP_LEFT_EYE_CONTOUR,
    MP_RIGHT_EYE_CONTOUR,
    estimate_small_toes,
    mediapipe_to_schema,
    pose33_to_body25,
)
from dancenow.pose.openpose_io import (
    BODY25_OF_BODY23,
    body23_to_body25,
    coco18_to_body25,
    read_opencv_yaml_matrix,
    read_openpose_json,
    read_openpose_json_frame,
    read_openpose_yaml,
    read_openpose_yaml_frame,
    write_openpose_json,
)
from dancenow.pose.schema import B, FACE, LEFT_HAND, N_KEYPOINTS, RIGHT_HAND, PoseSequence, empty_keypoints

# The forward map published by the paper's code (renderopenpose.py, map_25_to_23).
PUBLISHED_25_TO_23 = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 22, 23, 12, 13, 14, 19, 20, 0, 15, 17, 16, 18]


def _random_seq(rng: np.random.Generator, n: int = 6) -> PoseSequence:
    kp = rng.uniform(0, 500, size=(n, N_KEYPOINTS, 3)).astype(np.float32)
    kp[..., 2] = rng.uniform(0, 1, size=(n, N_KEYPOINTS)).astype(np.float32)
    kp[rng.uniform(size=(n, N_KEYPOINTS)) < 0.2] = 0.0  # missing points
    kp[2] = 0.0  # a frame without anybody
    return PoseSequence(kp, width=640, height=480, fps=25.0)


# ------------------------------------------------------------------ JSON
def test_json_roundtrip_is_bit_exact(tmp_path):
    seq = _random_seq(np.random.default_rng(0))
    paths = write_openpose_json(seq, tmp_path / "json", "clip")
    assert [p.name for p in paths[:2]] == ["clip_000000000000_keypoints.json", "clip_000000000001_keypoints.json"]
    doc = json.loads(paths[0].read_text())
    person = doc["people"][0]
    assert len(person["pose_keypoints_2d"]) == 75 and len(person["face_keypoints_2d"]) == 210
    assert len(person["hand_left_keypoints_2d"]) == 63 and len(person["hand_right_keypoints_2d"]) == 63
    assert json.loads(paths[2].read_text())["people"] == []
    back = read_openpose_json(tmp_path / "json", 640, 480, 25.0)
    assert back.keypoints.dtype == np.float32
    assert np.array_equal(back.keypoints.view(np.uint32), seq.keypoints.view(np.uint32))
    assert np.allclose(back.timestamps, np.arange(6) / 25.0)
    assert (back.width, back.height, back.fps) == (640, 480, 25.0)
    assert back.meta["missing_files"] == 0
    assert not list((tmp_path / "json").glob(".*tmp*"))


def test_json_first_person_layouts_and_gaps(tmp_path):
    body25 = np.arange(75, dtype=np.float32).reshape(25, 3) + 1
    people = [{"pose_keypoints_2d": body25.ravel().tolist(), "face_keypoints_2d": [],
               "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": [5.0] * 63},
              {"pose_keypoints_2d": [9.0] * 75}]
    (tmp_path / "v_000000000000_keypoints.json").write_text(json.dumps({"people": people}))
    # an old OpenPose (v1.0 key names) with the COCO-18 body, three frames later
    coco = np.arange(54, dtype=np.float32).reshape(18, 3) + 1
    (tmp_path / "v_000000000003_keypoints.json").write_text(json.dumps({"people": [{"pose_keypoints": coco.ravel().tolist()}]}))
    seq = read_openpose_json(tmp_path, 100, 100, 10.0)
    assert len(seq) == 4 and seq.meta["missing_files"] == 2
    assert np.array_equal(seq.body[0], body25)  # first person only
    assert (seq.face[0] == 0).all() and (seq.left_hand[0] == 0).all() and (seq.right_hand[0] == 5).all()
    assert (seq.keypoints[1:3] == 0).all()
    assert np.array_equal(seq.body[3, B["LEar"]], coco[17])
    assert np.allclose(seq.body[3, B["MidHip"], :2], (coco[8, :2] + coco[11, :2]) / 2)
    assert (seq.body[3, [B["LHeel"], B["RBigToe"]]] == 0).all()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not a readable OpenPose JSON"),
        ('{"persons": []}', 'no "people" list'),
        ('{"people": [{"pose_keypoints_2d": [1, 2]}]}', "not a multiple of 3"),
        ('{"people": [{"pose_keypoints_2d": [1.0, "a", 3]}]}', "not a list of numbers"),
        ('{"people": [{"pose_keypoints_2d": [], "face_keypoints_2d": [1, 2, 3]}]}', "has 3 values, expected 210"),
        ('{"people": [{"pose_keypoints_2d": ' + json.dumps([1.0] * 60) + "}]}", "body has 20 points"),
    ],
)
def test_json_bad_files_name_the_file(tmp_path, text, problem):
    p = tmp_path / "x_000000000000_keypoints.json"
    p.write_text(text)
    with pytest.raises(InputError, match=problem) as e:
        read_openpose_json_frame(p)
    assert str(p) in str(e.value)


def test_json_folder_errors(tmp_path):
    with pytest.raises(InputError, match="folder not found"):
        read_openpose_json(tmp_path / "nope", 10, 10, 1.0)
    with pytest.raises(InputError, match="no OpenPose files"):
        read_openpose_json(tmp_path, 10, 10, 1.0)
    empty = {"people": []}
    (tmp_path / "a_000000000000_keypoints.json").write_text(json.dumps(empty))
    (tmp_path / "b_000000000000_keypoints.json").write_text(json.dumps(empty))
    with pytest.raises(InputError, match="several videos"):
        read_openpose_json(tmp_path, 10, 10, 1.0)
    assert len(read_openpose_json(tmp_path, 10, 10, 1.0, stem="b")) == 1
    with pytest.raises(ValueError, match="non-finite"):
        kp = empty_keypoints(1)
        kp[0, 0, 0] = np.nan
        write_openpose_json(PoseSequence(kp, 10, 10, 1.0), tmp_path / "o", "c")


def _person_at(x: float) -> str:
    body = np.zeros((25, 3))
    body[0] = (x, 5.0, 0.9)
    return json.dumps({"people": [{"pose_keypoints_2d": body.reshape(-1).tolist()}]})


def test_json_image_folder_names_in_frame_number_order(tmp_path):
    # OpenPose on an image folder names files after the images; 2 comes before 10
    for number in (10, 2, 1):
        (tmp_path / f"frame{number}_keypoints.json").write_text(_person_at(number))
    (tmp_path / "notes.txt").write_text("not keypoints")
    seq = read_openpose_json(tmp_path, 100, 100, 10.0)
    assert seq.keypoints[:, 0, 0].tolist() == [1.0, 2.0, 10.0]
    assert seq.meta["naming"] == "images" and seq.meta["stem"] == "frame" and seq.meta["missing_files"] == 0
    # the paper's zero-padded names, and the video naming still frame-indexed
    padded = tmp_path / "padded"
    padded.mkdir()
    for number in (3, 1, 2):
        (padded / f"frame{number:06d}_keypoints.json").write_text(_person_at(number))
    assert read_openpose_json(padded, 100, 100, 10.0).keypoints[:, 0, 0].tolist() == [1.0, 2.0, 3.0]
    video = tmp_path / "video"
    video.mkdir()
    for number in (0, 2):
        (video / f"clip_{number:012d}_keypoints.json").write_text(_person_at(number + 1))
    seq = read_openpose_json(video, 100, 100, 10.0)
    assert seq.keypoints[:, 0, 0].tolist() == [1.0, 0.0, 3.0] and seq.meta["naming"] == "video"


def test_json_image_names_without_or_with_repeated_numbers(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "frame1_keypoints.json").write_text(_person_at(1))
    (tmp_path / "a" / "cover_keypoints.json").write_text(_person_at(2))
    with pytest.raises(InputError, match="no frame number") as e:
        read_openpose_json(tmp_path / "a", 10, 10, 1.0)
    assert e.value.path == tmp_path / "a" and "cover_keypoints.json" in str(e.value)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "frame1_keypoints.json").write_text(_person_at(1))
    (tmp_path / "b" / "frame001_keypoints.json").write_text(_person_at(2))
    with pytest.raises(InputError, match="same frame number 1") as e:
        read_openpose_json(tmp_path / "b", 10, 10, 1.0)
    assert e.value.path == tmp_path / "b"


# ------------------------------------------------------------------ body layouts
def test_body23_is_the_inverse_of_the_published_map():
    assert list(BODY25_OF_BODY23) == PUBLISHED_25_TO_23
    rng = np.random.default_rng(1)
    b25 = rng.uniform(1, 100, size=(25, 3)).astype(np.float32)
    b23 = b25[PUBLISHED_25_TO_23]
    back = body23_to_body25(b23)
    kept = [i for i in range(25) if i not in (B["LHeel"], B["RHeel"])]
    assert np.array_equal(back[kept], b25[kept])
    assert (back[[B["LHeel"], B["RHeel"]]] == 0).all()
    with pytest.raises(ValueError):
        body23_to_body25(np.zeros((25, 3)))


def test_coco18_midhip_needs_both_hips():
    c = np.ones((18, 3), np.float32)
    c[11, 2] = 0  # LHip missing
    assert coco18_to_body25(c)[B["MidHip"], 2] == 0


# ------------------------------------------------------------------ OpenCV YAML
def test_yaml_sample_frames_match_the_files(shared_data):
    d = shared_data / "openpose_sample" / "train" / "keypoints"
    seq = read_openpose_yaml(d, 1920, 1080, 30.0)
    assert seq.keypoints.shape == (3, N_KEYPOINTS, 3)
    assert seq.meta["frames"] == ["frame020001", "frame020005", "frame020009"]
    kp = seq.keypoints[0]
    # frame020001_pose.yml starts "9.80697754e+02, 2.47778152e+02, 7.19993412e-01" (Neck,
    # 23-layout index 0); index 18 (Nose) is "1.06593713e+03, 1.59440704e+02, 9.08644736e-01".
    assert np.array_equal(kp[B["Neck"]], np.float32([9.80697754e02, 2.47778152e02, 7.19993412e-01]))
    assert np.array_equal(kp[B["Nose"]], np.float32([1.06593713e03, 1.59440704e02, 9.08644736e-01]))
    assert (kp[[B["LElbow"], B["LWrist"], B["LHeel"], B["RHeel"]]] == 0).all()  # missing in the file / layout
    assert (kp[LEFT_HAND] == 0).all()  # frame020001_hand_left.yml is all zeros
    assert np.array_equal(kp[RIGHT_HAND][0], np.float32([1.02683789e03, 5.25603943e02, 5.92533231e-01]))
    # Every matrix equals OpenCV's own reader.
    for i, name in enumerate(seq.meta["frames"]):
        for part, sl, key in (("face", FACE, "face_0"), ("hand_left", LEFT_HAND, "hand_left_0"),
                              ("hand_right", RIGHT_HAND, "hand_right_0"), ("pose", None, "pose_0")):
            fs = cv2.FileStorage(str(d / f"{name}_{part}.yml"), cv2.FILE_STORAGE_READ)
            ref = fs.getNode(key).mat()[0]
            fs.release()
            got = seq.keypoints[i, sl] if sl is not None else seq.body[i][PUBLISHED_25_TO_23]
            assert np.array_equal(got, ref), (name, part)


_MAT = "%YAML:1.0\npose_0: !!opencv-matrix\n   rows: {r}\n   cols: 3\n   dt: f\n   data: [ {data} ]\n"


def test_yaml_opencv_matrix_body25_and_empty_files(tmp_path):
    vals = np.arange(75, dtype=np.float32) / 4
    (tmp_path / "f1_pose.yml").write_text(_MAT.format(r=25, data=",\n      ".join(f"{v:.6e}" for v in vals)))
    (tmp_path / "f2_pose.yml").write_text("%YAML:1.0\n")  # OpenPose's file for a frame without people
    seq = read_openpose_yaml(tmp_path, 64, 64, 5.0)
    assert np.array_equal(seq.body[0].ravel(), vals)
    assert (seq.keypoints[0, FACE] == 0).all()  # no face file
    assert (seq.keypoints[1] == 0).all()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("pose_0: [1, 2]\n", "no \"%YAML\" header"),
        (_MAT.format(r=23, data="1, 2, 3"), "has 3 values, sizes \\[23, 3\\] need 69"),
        (_MAT.format(r=1, data="1, x, 3"), "not numbers"),
        (_MAT.format(r=1, data="1, 2, 3"), "shape \\[1, 3\\]"),
        ("%YAML:1.0\npose_0: !!opencv-matrix\n   rows: 25\n", "malformed OpenCV matrix"),
        ("%YAML:1.0\npose_0: !!opencv-thing\n", "unknown OpenCV YAML type"),
    ],
)
def test_yaml_bad_files_name_the_file(tmp_path, text, problem):
    p = tmp_path / "f_pose.yml"
    p.write_text(text)
    with pytest.raises(InputError, match=problem) as e:
        read_openpose_yaml_frame(tmp_path, "f")
    assert str(p) in str(e.value)


def test_yaml_missing_pose_file(tmp_path):
    with pytest.raises(InputError, match="pose file not found"):
        read_openpose_yaml_frame(tmp_path, "frame000001")
    with pytest.raises(InputError, match="no \\*_pose.yml"):
        read_openpose_yaml(tmp_path, 1, 1, 1.0)
    assert read_opencv_yaml_matrix(_write(tmp_path / "e.yml", "%YAML:1.0\n")) is None


def _write(p, text):
    p.write_text(text)
    return p


# ------------------------------------------------------------------ MediaPipe tables
def test_pose33_to_body25_table():
    pose = np.zeros((33, 3))
    pose[:, 0] = np.arange(33) * 10.0
    pose[:, 1] = np.arange(33) + 100.0
    pose[:, 2] = np.linspace(0.5, 1.0, 33)
    b = pose33_to_body25(pose)
    assert np.allclose(b[B["LWrist"], :2], pose[15, :2]) and np.allclose(b[B["RWrist"], :2], pose[16, :2])
    assert np.allclose(b[B["LEye"], :2], pose[2, :2]) and np.allclose(b[B["REar"], :2], pose[8, :2])
    assert np.allclose(b[B["Neck"], :2], (pose[11, :2] + pose[12, :2]) / 2)
    assert b[B["Neck"], 2] == pose[11, 2]  # the less confident shoulder
    assert np.allclose(b[B["MidHip"], :2], (pose[23, :2] + pose[24, :2]) / 2)
    assert np.allclose(b[B["LBigToe"], :2], pose[31, :2]) and np.allclose(b[B["RHeel"], :2], pose[30, :2])
    assert np.allclose(b[B["LSmallToe"]], estimate_small_toes(b)[B["LSmallToe"]])
    assert 0 < b[B["LSmallToe"], 2] < b[B["LBigToe"], 2] and 0 < b[B["RSmallToe"], 2] < b[B["RBigToe"], 2]
    # each MediaPipe point is used once, except the shoulders/hips shared with Neck/MidHip
    used = [i for src in BODY25_FROM_MP_POSE for i in src]
    assert sorted(set(used)) == sorted([0, 2, 5, 7, 8, *range(11, 17), *range(23, 33)])


def test_small_toes_estimated_outside_the_big_toes():
    from dancenow.synthetic import make_clip

    kp = make_clip(3, 7, 4.0, 10.0, 256).poses.keypoints.astype(np.float64)
    est = np.stack([estimate_small_toes(k) for k in kp])
    for s, o in (("L", "R"), ("R", "L")):
        big, small, ok = kp[:, B[f"{s}BigToe"], :2], kp[:, B[f"{s}SmallToe"], :2], kp[:, B[f"{s}SmallToe"], 2] > 0
        err = np.linalg.norm(est[:, B[f"{s}SmallToe"], :2] - small, axis=1)[ok]
        gap = np.linalg.norm(big - small, axis=1)[ok]
        # against the synthetic dancer's true small toe: far closer than the big toe is
        assert np.median(err) < 0.2 * np.median(gap), (s, np.median(err), np.median(gap))
        # lateral: on the own-hip side of the big toe, along the hip line
        out = (kp[:, B[f"{s}Hip"], :2] - kp[:, B[f"{o}Hip"], :2])[ok]
        assert ((est[ok, B[f"{s}SmallToe"], :2] - big[ok]) * out).sum(1).mean() > 0
    one = kp[0].copy()
    one[B["LHeel"]] = 0  # a point missing -> no estimate
    e = estimate_small_toes(one)
    assert (e[B["LSmallToe"]] == 0).all() and e[B["RSmallToe"], 2] == pytest.approx(
        0.5 * one[[B["RBigToe"], B["RHeel"], B["RHip"], B["LHip"]], 2].min())


def test_face_table_and_pupils():
    assert len(set(FACE70_FROM_MP_FACE)) == 68 and max(FACE70_FROM_MP_FACE) < 468
    rng = np.random.default_rng(2)
    mesh = np.c_[rng.uniform(0.2, 0.8, size=(468, 2)), np.zeros(468), np.ones(468)]
    kp = mediapipe_to_schema(None, mesh, None, None, 200, 100, face_score=0.7)
    face = kp[FACE]
    assert np.allclose(face[:68, 0], mesh[list(FACE70_FROM_MP_FACE), 0] * 200, atol=1e-4)
    assert np.allclose(face[68, :2], mesh[list(MP_RIGHT_EYE_CONTOUR), :2].mean(0) * (200, 100), atol=1e-4)
    assert np.allclose(face[69, :2], mesh[list(MP_LEFT_EYE_CONTOUR), :2].mean(0) * (200, 100), atol=1e-4)
    assert np.allclose(face[:, 2], 1.0)  # a 4th column (visibility) wins over face_score
    refined = np.r_[mesh[:, :2], rng.uniform(0.2, 0.8, size=(10, 2))]
    kp = mediapipe_to_schema(None, refined, None, None, 200, 100, face_score=0.7)
    assert np.allclose(kp[FACE][68, :2], refined[468] * (200, 100), atol=1e-4)
    assert np.allclose(kp[FACE][69, :2], refined[473] * (200, 100), atol=1e-4)
    assert np.allclose(kp[FACE][:, 2], 0.7)
    assert (kp[:25] == 0).all() and (kp[LEFT_HAND] == 0).all()


def test_mediapipe_to_schema_pixels_visibility_and_frame_edges():
    pose = np.zeros((33, 4))
    pose[:, :2] = 0.5
    pose[:, 3] = 0.9
    pose[15] = [1.2, 0.5, 0, 0.9]  # left wrist outside the frame
    pose[16, 3] = 0.2  # right wrist barely visible
    hand = np.c_[np.linspace(0.1, 0.3, 21), np.full(21, 0.5)]
    kp = mediapipe_to_schema(pose, None, hand, None, 640, 480, lhand_score=0.4, min_visibility=0.3)
    assert kp.shape == (N_KEYPOINTS, 3) and kp.dtype == np.float32
    assert np.allclose(kp[B["Nose"]], [320, 240, 0.9])
    assert (kp[B["LWrist"]] == 0).all() and (kp[B["RWrist"]] == 0).all()
    assert np.allclose(kp[LEFT_HAND][:, 0], hand[:, 0] * 640) and np.allclose(kp[LEFT_HAND][:, 2], 0.4)
    assert (kp[RIGHT_HAND] == 0).all()
    with pytest.raises(ValueError, match="pose landmarks"):
        mediapipe_to_schema(np.zeros((25, 3)), None, None, None, 10, 10)
    assert (mediapipe_to_schema(None, None, None, None, 10, 10) == 0).all()


def test_detector_without_mediapipe_says_how_to_install(monkeypatch):
    from dancenow.pose import detect

    real_import = builtins.__import__

    def no_mediapipe(name, *args, **kwargs):
        if name == "mediapipe" or name.startswith("mediapipe."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mediapipe)
    with pytest.raises(DancenowError, match="pip install --no-deps mediapipe==0.10.21"):
        detect.HolisticDetector()
