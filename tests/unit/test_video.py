"""dancenow.video: round trips, audio, rotation, variable frame rate, damaged input, real footage."""

from __future__ import annotations

import os
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from dancenow.errors import InputError
from dancenow.video import (
    Frame,
    VideoWriter,
    count_frames,
    probe,
    read_frames,
    read_image,
    write_audio,
    write_image,
    write_video,
)

FPS = 24
H, W = 48, 64


# ------------------------------------------------------------------ helpers


def pattern(i: int, h: int = H, w: int = W) -> np.ndarray:
    """A smooth RGB gradient that moves with the frame index (compresses well, survives H.264)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 127.5 + 90 * np.sin(2 * np.pi * (xx / (2 * w) + i / 24))
    g = 127.5 + 100 * np.cos(2 * np.pi * (yy / h))
    b = np.full_like(xx, 40.0 + 4 * (i % 10))
    return np.stack([r, g, b], axis=-1).round().astype(np.uint8)


def make_audio(path: Path, seconds: float, *, rate: int = 44100, silent_until: float = 0.0) -> Path:
    """Write a mono 440 Hz sine WAV (silence before `silent_until` s)."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    x = 0.5 * np.sin(2 * np.pi * 440 * t)
    x[t < silent_until] = 0.0
    return write_audio(path, x[None], rate)


def decode_audio(path: Path) -> tuple[np.ndarray, int]:
    """All audio samples of `path` as mono float32, and the sample rate."""
    chunks = []
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        rate = s.codec_context.sample_rate
        res = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for f in c.decode(s):
            for o in res.resample(f):
                chunks.append(o.to_ndarray().reshape(-1))
    return np.concatenate(chunks), rate


def raw_mp4(path: Path, images: list[np.ndarray], *, pts: list[int] | None = None,
            time_base: Fraction | None = None, rotation_ccw: float | None = None,
            faststart: bool = False) -> Path:
    """Write frames with PyAV directly (control over pts, display matrix, layout)."""
    h, w = images[0].shape[:2]
    with av.open(str(path), "w", options={"movflags": "+faststart"} if faststart else {}) as c:
        s = c.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if time_base is not None:
            s.codec_context.time_base = time_base
            s.time_base = time_base
        if rotation_ccw is not None:
            s.set_display_rotation(rotation_ccw)
        for i, img in enumerate(images):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            if pts is not None:
                f.pts = pts[i]
                f.time_base = time_base
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def leftovers(folder: Path, keep: set[str] = frozenset()) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# --------------------------------------------------------------- round trip


def test_round_trip_frames_fps_size_and_pixels(tmp_path: Path) -> None:
    n = 30
    src = [pattern(i) for i in range(n)]
    out = write_video(tmp_path / "v.mp4", src, FPS)
    assert out == tmp_path / "v.mp4" and out.is_file()

    meta = probe(out)
    assert (meta.width, meta.height) == (W, H)
    assert meta.fps == pytest.approx(FPS)
    assert meta.n_frames == n
    assert meta.duration == pytest.approx(n / FPS, abs=1e-3)
    assert meta.rotation == 0 and not meta.has_audio and meta.audio_duration is None
    assert count_frames(out) == n

    frames = list(read_frames(out))
    assert [f.index for f in frames] == list(range(n))
    assert all(isinstance(f, Frame) and f.image.shape == (H, W, 3) and f.image.dtype == np.uint8 for f in frames)
    np.testing.assert_allclose([f.time for f in frames], np.arange(n) / FPS, atol=1e-3)
    err = [np.abs(f.image.astype(np.int16) - s.astype(np.int16)).mean() for f, s in zip(frames, src)]
    assert max(err) < 3.0, err
    # the frames really differ from each other, so a frame-order mix-up would show
    assert np.abs(frames[0].image.astype(np.int16) - src[6]).mean() > 20


def test_flat_colour_survives_exactly(tmp_path: Path) -> None:
    # catches a colour-matrix / range mismatch between writing and reading (BT.601 vs BT.709)
    colours = [(200, 100, 50), (20, 180, 240), (128, 128, 128)]
    out = write_video(tmp_path / "flat.mp4", [np.full((H, W, 3), c, np.uint8) for c in colours], FPS)
    for f, c in zip(read_frames(out), colours):
        assert np.abs(f.image.reshape(-1, 3).mean(axis=0) - c).max() <= 1.5, (f.index, c)
    with av.open(str(out)) as cont:
        cc = cont.streams.video[0].codec_context
        assert (cc.colorspace, cc.color_range) == (1, 1)  # tagged BT.709, limited range


def test_start_end_and_max_size(tmp_path: Path) -> None:
    src = [pattern(i, 50, 100) for i in range(12)]
    out = write_video(tmp_path / "v.mp4", src, FPS)
    part = list(read_frames(out, start=3, end=7))
    assert [f.index for f in part] == [3, 4, 5, 6]
    assert part[0].time == pytest.approx(3 / FPS, abs=1e-3)
    assert np.abs(part[0].image.astype(np.int16) - src[3]).mean() < 3.0
    assert list(read_frames(out, start=5, end=5)) == []
    assert [f.index for f in read_frames(out, start=10, end=100)] == [10, 11]
    small = next(read_frames(out, max_size=40))
    assert small.image.shape == (20, 40, 3)
    assert next(read_frames(out, max_size=500)).image.shape == (50, 100, 3)  # never upsizes
    with pytest.raises(ValueError):
        read_frames(out, start=4, end=2)


def test_read_frames_streams_lazily(tmp_path: Path) -> None:
    out = write_video(tmp_path / "v.mp4", [pattern(i) for i in range(10)], FPS)
    it = read_frames(out)
    first = next(it)
    assert first.index == 0
    it.close()  # abandoning the iterator closes the file without error


@pytest.mark.parametrize("audio_seconds", [3.0, 0.5])
def test_audio_is_copied_and_trimmed(tmp_path: Path, audio_seconds: float) -> None:
    n = 24  # 1.0 s of video
    wav = make_audio(tmp_path / "a.wav", audio_seconds)
    out = write_video(tmp_path / "v.mp4", [pattern(i) for i in range(n)], FPS, audio_from=wav)
    meta = probe(out)
    assert meta.has_audio
    expected = min(audio_seconds, n / FPS)  # longer audio is cut at the video's end
    assert meta.audio_duration == pytest.approx(expected, abs=0.05)
    samples, rate = decode_audio(out)
    assert len(samples) / rate == pytest.approx(expected, abs=0.05)
    rms = float(np.sqrt(np.mean(samples[: int(0.4 * rate)] ** 2)))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.1)  # the sine, not silence
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.video[0].format.name == "yuv420p"


def test_audio_start_offsets_the_track(tmp_path: Path) -> None:
    # source: silence for 1.0 s, then the tone; start copying at 0.75 s -> tone begins at 0.25 s
    wav = make_audio(tmp_path / "a.wav", 3.0, silent_until=1.0)
    out = write_video(tmp_path / "v.mp4", [pattern(i) for i in range(24)], FPS, audio_from=wav, audio_start=0.75)
    samples, rate = decode_audio(out)
    env = np.abs(samples)
    onset = int(np.argmax(env > 0.1)) / rate
    assert onset == pytest.approx(0.25, abs=0.03)
    assert len(samples) / rate == pytest.approx(1.0, abs=0.05)


def test_audio_from_file_without_audio_gives_silent_video(tmp_path: Path) -> None:
    silent = write_video(tmp_path / "silent.mp4", [pattern(i) for i in range(5)], FPS)
    out = write_video(tmp_path / "v.mp4", [pattern(i) for i in range(5)], FPS, audio_from=silent)
    assert not probe(out).has_audio


def test_audio_from_missing_file_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        VideoWriter(tmp_path / "v.mp4", FPS, audio_from=tmp_path / "nope.wav")


# ------------------------------------------------------------ size handling


def test_odd_size_is_padded_to_even(tmp_path: Path) -> None:
    src = [pattern(i, 47, 63) for i in range(4)]
    out = write_video(tmp_path / "odd.mp4", src, FPS)
    meta = probe(out)
    assert (meta.width, meta.height) == (64, 48)
    f = next(read_frames(out))
    assert np.abs(f.image[:47, :63].astype(np.int16) - src[0]).mean() < 3.0


def test_mismatched_frame_size_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"frame 1 is 32x16 but the video is 64x48"):
        with VideoWriter(tmp_path / "v.mp4", FPS) as w:
            w.write(pattern(0))
            w.write(pattern(1, 16, 32))
    assert leftovers(tmp_path) == []


def test_bad_frames_rejected(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "v.mp4", FPS) as w:
        with pytest.raises(ValueError, match="uint8"):
            w.write(pattern(0).astype(np.float32))
        with pytest.raises(ValueError, match="HxWx3"):
            w.write(pattern(0)[..., 0])
        w.write(pattern(0))
    assert count_frames(tmp_path / "v.mp4") == 1
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "x.mp4", 0)


def test_writer_is_atomic(tmp_path: Path) -> None:
    target = tmp_path / "v.mp4"
    with VideoWriter(target, FPS) as w:
        for i in range(3):
            w.write(pattern(i))
            assert not target.exists()  # only a hidden temp file exists while writing
    assert target.is_file() and leftovers(tmp_path) == ["v.mp4"]

    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(tmp_path / "w.mp4", FPS) as w:
            w.write(pattern(0))
            raise RuntimeError("boom")
    assert leftovers(tmp_path) == ["v.mp4"]

    # an existing good file is not clobbered by a failed rewrite
    before = target.read_bytes()
    with pytest.raises(RuntimeError):
        with VideoWriter(target, FPS) as w:
            w.write(pattern(5))
            raise RuntimeError("boom")
    assert target.read_bytes() == before


def test_writer_with_no_frames_raises_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "v.mp4", [], FPS)
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------ rotation / VFR


@pytest.mark.skipif(not hasattr(av.video.stream.VideoStream, "set_display_rotation"),
                    reason="this PyAV cannot write a display matrix")
@pytest.mark.parametrize(("ccw", "rotation", "corner"), [(-90, 90, "tr"), (90, 270, "bl"), (180, 180, "br")])
def test_phone_rotation_comes_out_upright(tmp_path: Path, ccw: int, rotation: int, corner: str) -> None:
    # Coded landscape 64x32 with a red marker in the top-left corner. A display
    # matrix asking for a clockwise turn of `rotation` degrees moves it to `corner`.
    img = np.zeros((32, 64, 3), np.uint8)
    img[:8, :8] = (255, 0, 0)
    out = raw_mp4(tmp_path / "phone.mp4", [img] * 3, rotation_ccw=ccw)
    meta = probe(out)
    assert meta.rotation == rotation
    expect_hw = (64, 32) if rotation in (90, 270) else (32, 64)
    assert (meta.height, meta.width) == expect_hw
    frames = list(read_frames(out))
    assert len(frames) == 3
    im = frames[0].image
    assert im.shape == (*expect_hw, 3)
    h, w = expect_hw
    corners = {"tl": im[:6, :6], "tr": im[:6, w - 6 :], "bl": im[h - 6 :, :6], "br": im[h - 6 :, w - 6 :]}
    for name, patch in corners.items():
        red = patch[..., 0].mean() > 200 and patch[..., 1].mean() < 60
        assert red == (name == corner), (name, patch.mean(axis=(0, 1)))
    # max_size applies to the upright frame's longer side
    assert next(read_frames(out, max_size=32)).image.shape[:2] == tuple(d // 2 for d in expect_hw)


def test_variable_frame_rate_times_follow_pts(tmp_path: Path) -> None:
    tb = Fraction(1, 1000)
    pts = [0, 33, 100, 120, 300, 310, 500]
    out = raw_mp4(tmp_path / "vfr.mp4", [pattern(i * 3) for i in range(len(pts))], pts=pts, time_base=tb)
    frames = list(read_frames(out))
    assert [f.index for f in frames] == list(range(len(pts)))
    np.testing.assert_allclose([f.time for f in frames], np.array(pts) / 1000, atol=1e-6)
    assert count_frames(out) == len(pts)


# ------------------------------------------------------------------ bad input


def test_missing_file(tmp_path: Path) -> None:
    for fn in (probe, count_frames, lambda p: next(read_frames(p)), read_image):
        with pytest.raises(InputError, match="file not found") as e:
            fn(tmp_path / "nope.mp4")
        assert e.value.path == tmp_path / "nope.mp4"
        assert "\n" not in str(e.value)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="directory"):
        probe(tmp_path)
    with pytest.raises(InputError, match="directory"):
        read_frames(tmp_path)


def test_text_file(tmp_path: Path) -> None:
    for name in ("notes.txt", "fake.mp4"):
        p = tmp_path / name
        p.write_text("this is not a video\n" * 50)
        for fn in (probe, count_frames, read_frames):
            with pytest.raises(InputError, match=r"not a video file \(no video stream / could not open\)"):
                fn(p)


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    wav = make_audio(tmp_path / "a.wav", 0.2)
    with pytest.raises(InputError, match="no video stream"):
        probe(wav)


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.mp4"
    p.write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        probe(p)
    with pytest.raises(InputError, match="empty file"):
        list(read_frames(p))


def test_truncated_without_index_is_input_error(tmp_path: Path) -> None:
    # index (moov) at the end, as most cameras write: half a file cannot be opened
    rng = np.random.default_rng(0)
    full = raw_mp4(tmp_path / "full.mp4", [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(24)])
    cut = tmp_path / "cut.mp4"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    for fn in (probe, count_frames, lambda p: list(read_frames(p))):
        with pytest.raises(InputError, match=r"truncated or damaged video file \(MP4/MOV header found") as e:
            fn(cut)
        assert e.value.path == cut and str(cut) in str(e.value) and "\n" not in str(e.value)
    # the project's own (index-first) MP4, cut inside its index
    own = write_video(tmp_path / "own.mp4", [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(8)],
                      FPS)
    data = own.read_bytes()
    cut.write_bytes(data[: data.index(b"mdat") // 2])
    with pytest.raises(InputError, match="truncated or damaged video file"):
        probe(cut)


def test_truncated_with_index_yields_frames_then_warns_once(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 48
    full = write_video(tmp_path / "full.mp4", [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(n)],
                       FPS)  # VideoWriter puts the index first (faststart)
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = list(read_frames(cut))
    assert 5 < len(frames) < n
    assert [f.index for f in frames] == list(range(len(frames)))
    msgs = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(msgs) == 1 and "truncated" in msgs[0] and str(cut) in msgs[0]
    with pytest.warns(UserWarning, match="truncated"):
        assert 5 < count_frames(cut) < n

    # cut so early that no frame survives -> InputError
    tiny = tmp_path / "tiny.mp4"
    moov_end = data.index(b"mdat") + 4
    tiny.write_bytes(data[: moov_end + 100])
    with pytest.raises(InputError):
        list(read_frames(tiny))


def test_video_with_zero_frames(tmp_path: Path) -> None:
    p = tmp_path / "zero.mp4"
    with av.open(str(p), "w") as c:  # header and index, not a single frame
        s = c.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        c.start_encoding()
    assert p.stat().st_size > 0
    for fn in (probe, count_frames, lambda q: list(read_frames(q))):
        with pytest.raises(InputError):
            fn(p)


def test_unwritable_output(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder") as e:
        VideoWriter(blocker / "out.mp4", FPS)
    assert e.value.path == blocker / "out.mp4"
    with pytest.raises(InputError, match="is a file"):
        write_image(blocker / "sub" / "x.png", pattern(0))
    with pytest.raises(InputError, match="directory"):
        VideoWriter(tmp_path, FPS)
    with pytest.raises(InputError, match=".mp4"):
        VideoWriter(tmp_path / "out.avi", FPS)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores folder permissions")
def test_no_permission_output(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(InputError, match="no permission"):
            VideoWriter(locked / "out.mp4", FPS)
        with pytest.raises(InputError, match="no permission"):
            write_image(locked / "x.png", pattern(0))
    finally:
        locked.chmod(0o700)


# ----------------------------------------------------------------------- images


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_image_round_trip(tmp_path: Path, ext: str) -> None:
    img = pattern(3, 37, 53)
    out = write_image(tmp_path / f"im{ext}", img)
    back = read_image(out)
    assert back.shape == img.shape and back.dtype == np.uint8
    err = np.abs(back.astype(np.int16) - img).mean()
    assert err == 0 if ext == ".png" else err < 3.0
    assert leftovers(tmp_path) == [f"im{ext}"]


def test_image_rgb_order_and_bad_image(tmp_path: Path) -> None:
    img = np.zeros((4, 4, 3), np.uint8)
    img[..., 0] = 255  # pure red
    back = read_image(write_image(tmp_path / "red.png", img))
    assert back[0, 0].tolist() == [255, 0, 0]
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(InputError, match="not an image"):
        read_image(bad)


def test_write_image_is_atomic_and_names_the_file(tmp_path: Path) -> None:
    from dancenow.atomic import write_json

    out = write_image(tmp_path / "a.png", pattern(0))
    assert out.stat().st_mode & 0o777 == write_json(tmp_path / "ref.json", {}).stat().st_mode & 0o777
    assert sorted(leftovers(tmp_path)) == ["a.png", "ref.json"]
    for bad in (pattern(0).astype(np.float32), pattern(0)[..., :2]):
        with pytest.raises(ValueError, match=f"{tmp_path / 'b.png'}: image must be"):
            write_image(tmp_path / "b.png", bad)
    with pytest.raises(ValueError, match="b.gif"):
        write_image(tmp_path / "b.gif", pattern(0))
    assert not (tmp_path / "b.png").exists()


# ------------------------------------------------------------------ real footage


@pytest.mark.realdata
def test_real_target_clip(shared_data: Path) -> None:
    path = shared_data / "target" / "dancer_black_256.avi"
    meta = probe(path)
    assert (meta.width, meta.height) == (256, 256)
    assert meta.fps == pytest.approx(24.0)
    assert meta.n_frames == 655 and meta.rotation == 0
    assert count_frames(path) == 655
    n = 0
    for f in read_frames(path):
        assert f.index == n and f.image.shape == (256, 256, 3)
        n += 1
    assert n == 655
    assert f.time == pytest.approx(654 / 24, abs=1e-3)


def test_write_audio_wav_and_aac(tmp_path):
    t = np.arange(22050) / 22050.0
    tone = np.sin(2 * np.pi * 440 * t) * 0.5
    for name, samples in (("a.wav", tone[None]), ("b.m4a", np.stack([tone, tone]))):
        out = write_audio(tmp_path / name, samples, 22050)
        x, rate = decode_audio(out)
        assert rate == 22050 and abs(len(x) / rate - 1.0) < 0.06
        assert 0.3 < np.sqrt(np.mean(x[2000:20000] ** 2)) < 0.55  # RMS 0.354 (mono), 0.5 (stereo downmixed)
    with pytest.raises(InputError, match="audio output"):
        write_audio(tmp_path / "c.ogg", tone[None], 22050)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "b.m4a"]
