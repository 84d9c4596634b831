"""The built-in synthetic dancer: determinism, geometry, drawing, files, and MediaPipe's view of it."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from dancenow.pose.schema import B, N_KEYPOINTS, PoseSequence
from dancenow.synthetic import (
    Camera,
    make_clip,
    make_dance,
    make_subject,
    pose_subject,
    pose_world,
    render,
    render_background,
    synth_to_files,
)
from dancenow.synthetic.dance import CHANNELS, DEPTH_RANGE

SOLES = {"R": (B["RHeel"], B["RBigToe"], B["RSmallToe"]), "L": (B["LHeel"], B["LBigToe"], B["LSmallToe"])}


@pytest.fixture(scope="module")
def dance():
    return make_dance(7, 12.0, 15.0)


def test_same_seeds_give_identical_frames_and_keypoints():
    a = make_clip(3, 5, 1.0, 10.0, 96)
    b = make_clip(3, 5, 1.0, 10.0, 96)
    assert a.subject == b.subject
    assert a.poses.keypoints.tobytes() == b.poses.keypoints.tobytes()
    fa, fb = a.frames(), b.frames()
    assert fa.dtype == np.uint8 and fa.shape == (10, 96, 96, 3)
    assert fa.tobytes() == fb.tobytes()
    assert a.masks().tobytes() == b.masks().tobytes()
    # and a different dance seed moves differently
    c = make_clip(3, 6, 1.0, 10.0, 96)
    assert np.abs(c.poses.keypoints[5:, :, :2] - a.poses.keypoints[5:, :, :2]).mean() > 1.0


def test_subjects_differ_and_contact_sheet(dance, artifacts_dir):
    """Four subjects in the same pose: different proportions, colours and pixels. Saves a contact sheet."""
    subjects = [make_subject(s) for s in range(4)]
    assert len({s.height for s in subjects}) == 4
    assert len({(s.skin, s.top, s.bottom) for s in subjects}) == 4
    frame = 40
    tiles, masks, heights = [], [], []
    for s in subjects:
        kp = pose_subject(s, dance, 256).keypoints[frame]
        res = render(s, kp, 256)
        assert res.image.shape == (256, 256, 3) and res.image.dtype == np.uint8
        assert res.mask.shape == (256, 256) and res.mask.dtype == bool
        tiles.append(res.image)
        masks.append(res.mask)
        heights.append(kp[B["Nose"], 1] - kp[[B["RHeel"], B["LHeel"]], 1].max())
    sheet = np.hstack(tiles)
    cv2.imwrite(str(artifacts_dir / "synthetic_subjects.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    # the body proportions shape the keypoints of the same motion
    assert np.ptp(heights) > 3.0
    for i in range(4):
        for j in range(i + 1, 4):
            both = masks[i] & masks[j]
            assert both.sum() > 300
            diff = np.abs(tiles[i].astype(int) - tiles[j].astype(int)).sum(-1)[both]
            assert np.median(diff) > 40, (i, j)  # clothes/skin colours differ where both people are


def test_person_is_a_plausible_figure(dance):
    s = make_subject(1)
    poses = pose_subject(s, dance, 256)
    res = next(iter(render(s, poses)))
    area = res.mask.sum()
    ys, xs = np.nonzero(res.mask)
    assert 1500 < area < 0.25 * 256 * 256
    assert np.ptp(ys) > 90  # a standing person fills a good part of the frame height
    # the person differs from the background where the mask is set, and only there (anti-aliased
    # rims aside), apart from the contact shadow on the floor around the feet
    bg = render_background(s.scene, 256)
    changed = np.abs(res.image.astype(int) - bg.astype(int)).sum(-1) > 0
    assert changed[res.mask].mean() > 0.98
    rim = cv2.dilate(res.mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    ys_out, _ = np.nonzero(changed & ~rim)
    kp = poses.keypoints[0]
    soles = kp[list(SOLES["R"] + SOLES["L"]), 1]
    assert ys_out.size > 20  # there is a shadow
    assert ys_out.min() >= soles.min() - 6 and ys_out.max() <= soles.max() + 12


def test_forward_kinematics_keeps_bone_lengths(dance):
    s = make_subject(4)
    w = pose_world(s, dance)
    assert w.shape == (len(dance), N_KEYPOINTS, 3)
    for a, b, length in (("RHip", "RKnee", s.thigh), ("LKnee", "LAnkle", s.shin), ("RShoulder", "RElbow", s.upper_arm),
                         ("LElbow", "LWrist", s.forearm), ("Neck", "MidHip", s.torso)):
        d = np.linalg.norm(w[:, B[a]] - w[:, B[b]], axis=-1)
        np.testing.assert_allclose(d, length, rtol=1e-6, err_msg=f"{a}-{b}")
    np.testing.assert_allclose(np.linalg.norm(w[:, B["LShoulder"]] - w[:, B["RShoulder"]], axis=-1),
                               2 * s.shoulder_half, rtol=1e-6)
    # head above the neck; at rest, facing the camera: OpenPose layout (person's left = image right),
    # jaw from image left to right, thumbs outward with the palms forward
    assert (w[:, B["Nose"], 1] > w[:, B["Neck"], 1]).all()
    k0 = pose_subject(s, dance, 256).keypoints[0]
    assert k0[B["RShoulder"], 0] < k0[B["Neck"], 0] < k0[B["LShoulder"], 0]
    assert k0[B["REye"], 0] < k0[B["Nose"], 0] < k0[B["LEye"], 0]
    assert k0[25 + 0, 0] < k0[25 + 8, 0] < k0[25 + 16, 0] and k0[25 + 8, 1] > k0[25 + 27, 1]
    rh, lh = k0[95 + 21:95 + 42], k0[95:95 + 21]
    assert rh[4, 0] < rh[20, 0] and lh[4, 0] > lh[20, 0]
    assert rh[12, 1] > rh[0, 1] and lh[12, 1] > lh[0, 1]  # hanging hands: fingertips below the wrists


def test_every_visible_keypoint_is_on_the_person():
    kernel = np.ones((5, 5), np.uint8)  # 2 px tolerance
    for subject_seed, dance_seed in ((0, 3), (2, 11), (5, 4)):
        clip = make_clip(subject_seed, dance_seed, 6.0, 8.0, 256)
        kp = clip.poses.keypoints
        for i, res in enumerate(clip):
            near = cv2.dilate(res.mask.astype(np.uint8), kernel) > 0
            vis = kp[i, :, 2] > 0
            assert vis.sum() > 100
            x = np.clip(np.rint(kp[i, vis, 0]).astype(int), 0, 255)
            y = np.clip(np.rint(kp[i, vis, 1]).astype(int), 0, 255)
            missed = np.nonzero(~near[y, x])[0]
            assert missed.size == 0, f"clip {subject_seed}/{dance_seed} frame {i}: points {np.nonzero(vis)[0][missed]}"


def test_feet_touch_the_floor_when_standing(dance):
    s = make_subject(2)
    cam = Camera()
    world = pose_world(s, dance)
    poses = pose_subject(s, dance, 256, camera=cam)
    standing = dance.standing
    assert 0.2 < standing.mean() < 1.0 and standing[0]
    for side, idx in SOLES.items():
        f = 0 if side == "R" else 1
        on = dance.contact[:, f]
        # soles on the floor (world height 0) whenever that foot is planted, and above it in flight
        np.testing.assert_allclose(world[on][:, idx, 1], 0.0, atol=1e-9)
        assert (world[~on][:, idx, 1].max(axis=1) > 0.01).mean() > 0.5
        # a planted ankle does not slide
        ank = world[:, B[f"{side}Ankle"]][:, [0, 2]]
        still = on[1:] & on[:-1]
        assert np.abs(np.diff(ank, axis=0)[still]).max() < 1e-9
        # in the image: the sole points lie on the floor row of their depth
        rows = cam.floor_row(world[standing][:, idx, 2], (256, 256))
        np.testing.assert_allclose(poses.keypoints[standing][:, idx, 1], rows, atol=1e-3)
    # and the rendered shadow darkens the floor right under the feet
    bg = render_background(s.scene, 256, cam).astype(int)
    frames = np.nonzero(standing)[0][::10]
    darker = []
    for i in frames:
        res = render(s, poses.keypoints[i], 256)
        for idx in SOLES.values():
            x = int(round(poses.keypoints[i, idx, 0].mean()))
            y = int(round(poses.keypoints[i, idx, 1].max()))
            while res.mask[y, x] and y < 255:  # first floor pixel below the shoe
                y += 1
            darker.append(res.image[y, x].astype(int).sum() < bg[y, x].sum() - 15)
    assert len(darker) >= 4 and np.mean(darker) > 0.9


def test_perspective_closer_is_lower_and_larger():
    d = make_dance(8, 20.0, 15.0)
    s = make_subject(0)
    w = pose_world(s, d)
    depth = w[:, B["MidHip"], 2]
    assert np.ptp(depth) > 0.6 and depth.min() >= DEPTH_RANGE[0] - 0.05
    kp = pose_subject(s, d, 256).keypoints
    stand = d.standing
    feet_y = kp[stand][:, [B["RHeel"], B["LHeel"]], 1].max(axis=1)
    height = feet_y - kp[stand][:, B["Nose"], 1]
    assert np.ptp(feet_y) > 10  # the dancer really moves in depth
    assert np.corrcoef(feet_y, height)[0, 1] > 0.9  # lower in the frame = closer = larger


def test_dance_is_smooth_on_the_beat_and_subject_independent():
    d = make_dance(2, 10.0, 30.0, bpm=120.0)
    assert d.bpm == 120.0 and len(d) == 300 and d.angles.shape == (300, len(CHANNELS))
    np.testing.assert_allclose(d.beats[30], 2.0)
    step = np.abs(np.diff(d.angles, axis=0))
    assert step.max() < 0.5  # no jumps between frames at 30 fps
    assert np.isfinite(d.angles).all() and np.isfinite(d.feet).all()
    # at most one foot in the air at a time
    assert d.contact.any(axis=1).all()
    # a short and a tall subject on one dance: same angles, keypoints shaped by their proportions
    subjects = sorted((make_subject(i) for i in range(8)), key=lambda s: s.height)
    short, tall = subjects[0], subjects[-1]
    assert tall.height - short.height > 0.1
    k1 = pose_subject(short, d, 256).keypoints
    k2 = pose_subject(tall, d, 256).keypoints
    h1 = k1[:, [B["RHeel"], B["LHeel"]], 1].max(1) - k1[:, B["Nose"], 1]
    h2 = k2[:, [B["RHeel"], B["LHeel"]], 1].max(1) - k2[:, B["Nose"], 1]
    assert np.median(h2 / h1) > 1.04
    with pytest.raises(ValueError):
        make_dance(1, 0.0, 15.0)
    with pytest.raises(ValueError):
        make_dance(1, 2.0, 15.0, bpm=1000.0)


def test_a_seed_gives_the_same_dance_across_versions():
    """Seeds are part of the interface (the demo, benchmarks and users' configs name them):
    a change to the generator must not silently change the dance a seed makes."""
    d = make_dance(3, 10.0, 15.0)
    assert d.moves == (("punch", "bounce"), ("disco", "travel"), ("punch", "march"))
    assert d.bpm == pytest.approx(118.39155789078073, rel=1e-12)
    assert d.angles[[10, 70, 140]].sum(axis=1) == pytest.approx([9.980665, 10.370019, 10.038525], abs=1e-5)
    assert d.feet[[10, 70, 140]].sum(axis=(1, 2)) == pytest.approx([9.2, 9.290646, 10.633501], abs=1e-5)


def test_varied_routine_shows_every_arm_move_and_stays_smooth():
    from dancenow.synthetic.dance import ARM_MOVES

    plain, varied = make_dance(7, 20.0, 15.0), make_dance(7, 20.0, 15.0, varied=True)
    shown = {m for arm, _ in varied.moves for m in arm.split("+")}
    assert shown == set(ARM_MOVES)  # 20 s at this seed's tempo: every arm move
    assert len({arm for arm, _ in plain.moves}) < len(ARM_MOVES)
    assert varied.bpm == plain.bpm and len(varied) == len(plain)
    joints = [i for i, c in enumerate(CHANNELS) if c != "blink"]
    # no jumps at 15 fps where moves change: joint speeds like those of the seed's plain dance
    assert np.abs(np.diff(varied.angles[:, joints], axis=0)).max() < 1.3 * np.abs(np.diff(plain.angles[:, joints], axis=0)).max()
    assert varied.contact.any(axis=1).all()
    np.testing.assert_array_equal(make_dance(7, 20.0, 15.0, varied=True).angles, varied.angles)


def test_offset_and_scale_place_the_subject(dance):
    s = make_subject(1)
    cam = Camera()
    base = pose_subject(s, dance, (320, 240), camera=cam).keypoints
    moved = pose_subject(s, dance, (320, 240), offset=(-40.0, 10.0), camera=cam).keypoints
    vis = (base[..., 2] > 0) & (moved[..., 2] > 0)
    np.testing.assert_allclose((moved[..., :2] - base[..., :2])[vis], np.broadcast_to([-40.0, 10.0], (vis.sum(), 2)),
                               atol=1e-3)
    small = pose_subject(s, dance, (320, 240), scale=0.5, camera=cam).keypoints
    anchor = np.array([160.0, cam.horizon * 240])
    np.testing.assert_allclose(small[..., :2], (base[..., :2] - anchor) * 0.5 + anchor, atol=1e-3)
    # points pushed out of the frame are marked missing
    off = pose_subject(s, dance, (320, 240), offset=(400.0, 0.0), camera=cam)
    assert (off.keypoints[..., 2] == 0).all()
    assert off.width == 320 and off.height == 240


def test_missing_points_are_skipped_gracefully(dance):
    s = make_subject(6)
    kp = pose_subject(s, dance, 256).keypoints[30].copy()
    bg = render_background(s.scene, 256)
    # nothing visible: just the room
    empty = kp.copy()
    empty[:, 2] = 0
    res = render(s, empty, 256)
    assert not res.mask.any() and np.array_equal(res.image, bg)
    # a detector-like skeleton: no face, no hands, one leg lost, NaNs where missing
    partial = kp.copy()
    partial[25:, 2] = 0
    for name in ("LKnee", "LAnkle", "LHeel", "LBigToe", "LSmallToe"):
        partial[B[name]] = (np.nan, np.nan, 0.0)
    res2 = render(s, partial, 256)
    assert res2.mask.sum() > 0.6 * render(s, kp, 256).mask.sum()
    vis = partial[:, 2] > 0
    xy = np.rint(partial[vis, :2]).astype(int)
    near = cv2.dilate(res2.mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert near[xy[:, 1], xy[:, 0]].all()
    # only a head and shoulders
    bust = np.zeros_like(kp)
    for name in ("Nose", "Neck", "REye", "LEye", "REar", "LEar", "RShoulder", "LShoulder"):
        bust[B[name]] = kp[B[name]]
    assert render(s, bust, 256).mask.sum() > 50
    with pytest.raises(ValueError):
        render(s, kp[:25], 256)
    with pytest.raises(ValueError):
        render(s, kp)  # a single frame needs a size


def test_any_subject_on_any_skeleton_and_resizing(dance):
    source = make_subject(1)
    poses = pose_subject(source, dance, 128).slice(0, 3)
    frames = list(render(make_subject(2), poses, 256))  # subject 2 on subject 1's skeleton, twice the size
    assert len(frames) == 3 and frames[0].image.shape == (256, 256, 3)
    nose = poses.keypoints[0, B["Nose"], :2] * 2
    assert frames[0].mask[int(round(nose[1])), int(round(nose[0]))]


def test_synth_to_files_writes_video_and_poses(tmp_path):
    pytest.importorskip("dancenow.video", reason="dancenow.video (write_video) not available")
    from dancenow.video import probe, read_frames

    video, poses_path = tmp_path / "clip.mp4", tmp_path / "clip.npz"
    clip = synth_to_files(1, 7, 1.0, 8.0, 64, video, poses_path)
    assert video.is_file() and poses_path.is_file()
    meta = probe(video)
    assert (meta.width, meta.height) == (64, 64) and meta.n_frames == 8
    loaded = PoseSequence.load(poses_path)
    assert np.array_equal(loaded.keypoints, clip.poses.keypoints)
    assert loaded.meta["synthetic"]["subject_seed"] == 1 and loaded.meta["synthetic"]["dance_seed"] == 7
    img = next(iter(read_frames(video))).image
    ref = next(iter(clip)).image
    assert np.abs(img.astype(int) - ref.astype(int)).mean() < 8  # H.264, but the same picture


def test_synth_to_files_reports_bad_arguments(tmp_path):
    pytest.importorskip("dancenow.video", reason="dancenow.video (write_video) not available")
    from dancenow.errors import DancenowError, InputError

    with pytest.raises(DancenowError, match="seed"):
        synth_to_files(-1, 7, 1.0, 8.0, 64, tmp_path / "a.mp4", tmp_path / "a.npz")
    with pytest.raises(DancenowError, match="seconds"):
        synth_to_files(1, 7, 0.0, 8.0, 64, tmp_path / "a.mp4", tmp_path / "a.npz")
    with pytest.raises(InputError):
        synth_to_files(1, 7, 0.5, 8.0, 64, tmp_path / "a.avi", tmp_path / "a.npz")
    assert not (tmp_path / "a.npz").exists()


def test_mediapipe_sees_a_person():
    """MediaPipe Holistic finds the body in most frames and lands near the true keypoints (PCK@0.05)."""
    mp = pytest.importorskip("mediapipe")
    pairs = {0: "Nose", 11: "LShoulder", 12: "RShoulder", 13: "LElbow", 14: "RElbow", 15: "LWrist", 16: "RWrist",
             23: "LHip", 24: "RHip", 25: "LKnee", 26: "RKnee", 27: "LAnkle", 28: "RAnkle"}
    clip = make_clip(1, 7, 4.0, 15.0, 256)  # 60 frames
    hits, found = [], 0
    with mp.solutions.holistic.Holistic(model_complexity=1) as holistic:
        for res, kp in zip(clip, clip.poses.keypoints):
            out = holistic.process(cv2.resize(res.image, (512, 512), interpolation=cv2.INTER_LINEAR))
            if out.pose_landmarks is None:
                continue
            found += 1
            lm = out.pose_landmarks.landmark
            body = kp[:25][kp[:25, 2] > 0, :2]
            diag = float(np.hypot(*(body.max(0) - body.min(0))))
            for m, name in pairs.items():
                err = np.hypot(lm[m].x * 256 - kp[B[name], 0], lm[m].y * 256 - kp[B[name], 1])
                hits.append(err <= 0.05 * diag)
    pck = float(np.mean(hits)) if hits else 0.0
    print(f"MediaPipe: body found in {found}/{len(clip)} frames, PCK@0.05 = {pck:.3f}", file=sys.stderr)
    assert found >= 0.9 * len(clip)
    assert pck >= 0.8
