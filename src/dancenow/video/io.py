"""Video and image I/O on PyAV (FFmpeg) and OpenCV.

Frames travel as HxWx3 uint8 RGB numpy arrays, always upright: the rotation a
phone stores in the stream's display matrix (or the legacy ``rotate`` tag) is
applied while reading. Videos are streamed frame by frame, never loaded whole.
Written files (H.264/yuv420p MP4, PNG, JPG) appear atomically: a temporary
sibling is written and renamed onto the target only when complete.

Damaged input policy (one rule everywhere): a file that cannot be opened, has no
video stream or yields no frame raises :class:`~dancenow.errors.InputError` (one
that starts like a video container but cannot be opened, e.g. an MP4 cut before
its index, is reported as truncated or damaged rather than as not a video); a
file that yields some frames and then breaks (truncated download, cut copy)
gives those frames, emits one ``UserWarning`` naming the file and how many
frames were read, and stops cleanly. Partial footage is still useful for
preparing training data, and the warning keeps the damage visible.
"""

from __future__ import annotations

import math
import os
import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Iterable, Iterator

import av
import cv2
import numpy as np

from dancenow.atomic import atomic_path
from dancenow.errors import InputError

__all__ = [
    "VideoMeta",
    "Frame",
    "probe",
    "read_frames",
    "count_frames",
    "VideoWriter",
    "write_video",
    "write_audio",
    "read_image",
    "write_image",
]

_NOT_VIDEO = "not a video file (no video stream / could not open)"
_DAMAGED = "truncated or damaged video file ({} header found, but it cannot be opened: {})"
_NO_FRAMES = "video has no decodable frames"
_IMAGE_EXTS = {".png", ".jpg", ".jpeg"}
_VIDEO_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"}
_FFmpegError = av.FFmpegError
_BT709 = 1  # AVCOL_SPC_BT709 == AVCOL_PRI_BT709 == AVCOL_TRC_BT709
_MPEG_RANGE = 1  # AVCOL_RANGE_MPEG (limited, 16-235)
# swscale flags: bilinear + accurate rounding + full chroma resolution. The fast
# default path darkens every RGB->YUV->RGB round trip by 1-2 levels; these make it
# unbiased (mean error ~0.4 level) for a few ms per 1080p frame.
_SWS_BILINEAR, _SWS_FULL_CHR_H_INT, _SWS_FULL_CHR_H_INP, _SWS_ACCURATE_RND = 0x2, 0x2000, 0x4000, 0x40000
_SWS_TO_RGB = _SWS_BILINEAR | _SWS_ACCURATE_RND | _SWS_FULL_CHR_H_INT
_SWS_FROM_RGB = _SWS_BILINEAR | _SWS_ACCURATE_RND | _SWS_FULL_CHR_H_INP


@dataclass(frozen=True)
class VideoMeta:
    """What a video file holds, as a viewer would show it.

    ``width``/``height`` are the display size after rotation (a portrait phone
    clip coded as 1920x1080 with rotation 90 reports 1080x1920). ``rotation`` is
    the clockwise turn in degrees (0/90/180/270) that makes the coded picture
    upright, the convention of the legacy ``rotate`` tag. ``n_frames`` is the
    container's count when it has one, else ``round(duration * fps)``; use
    :func:`count_frames` for an exact figure. Sample aspect ratio and mirror
    flags in the display matrix are not applied.
    """

    path: Path
    width: int
    height: int
    fps: float
    n_frames: int
    duration: float
    rotation: int
    has_audio: bool
    audio_duration: float | None


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame: ``image`` is HxWx3 uint8 RGB, upright.

    ``index`` counts decoded frames from 0 in presentation order; ``time`` is the
    presentation time in seconds (pts * time_base), so variable-frame-rate
    footage keeps its real timing.
    """

    index: int
    time: float
    image: np.ndarray


# --------------------------------------------------------------------- reading


def _check_input_file(path: Path) -> None:
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a directory, expected a video file")
    if not path.is_file():
        raise InputError(path, "is not a regular file")
    if not os.access(path, os.R_OK):
        raise InputError(path, "no permission to read")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes)")


def _container_kind(path: Path) -> str | None:
    """The container family a file's first bytes announce (MP4/MOV, Matroska, AVI), or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return None
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "MP4/MOV"
    if head[:4] == b"\x1aE\xdf\xa3":
        return "Matroska/WebM"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    return None


def _open_video(path: str | Path) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open `path` and return (container, first video stream), or raise InputError."""
    p = Path(path)
    _check_input_file(p)
    try:
        container = av.open(str(p), mode="r")
    except (_FFmpegError, OSError, UnicodeDecodeError) as e:
        kind = _container_kind(p)
        if kind is not None:  # a cut copy or download: the MP4 index (moov) usually sits at the end
            raise InputError(p, _DAMAGED.format(kind, _one_line(e))) from None
        raise InputError(p, _NOT_VIDEO) from None
    videos = container.streams.video
    # FFmpeg's "tty" demuxer renders any text file as ANSI art; that is not footage.
    if not videos or container.format.name == "tty" or videos[0].codec_context.name == "ansi":
        container.close()
        raise InputError(p, _NOT_VIDEO)
    stream = videos[0]
    stream.thread_type = "AUTO"
    return container, stream


def _one_line(e: BaseException) -> str:
    text = " ".join(str(getattr(e, "strerror", None) or e).split())
    return text or type(e).__name__


def _rotation_of(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> int:
    """Clockwise degrees (0/90/180/270) that make `frame` upright.

    FFmpeg reports the display matrix as a counter-clockwise angle in
    [-180, 180]; old files may only carry a ``rotate`` metadata tag (clockwise).
    """
    ccw = getattr(frame, "rotation", 0) or 0
    if ccw:
        cw = -float(ccw)
    else:
        try:
            cw = float(stream.metadata.get("rotate", 0))
        except (TypeError, ValueError):
            cw = 0.0
    return int(round(cw / 90.0)) % 4 * 90


def _upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Turn an HxWxC image clockwise by `rotation` degrees (multiple of 90)."""
    k = (rotation // 90) % 4
    if k == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, k=-k))


def _downsize(image: np.ndarray, max_size: int | None) -> np.ndarray:
    """Shrink so the longer side is <= max_size (aspect kept, area interpolation)."""
    if max_size is None:
        return image
    h, w = image.shape[:2]
    longer = max(h, w)
    if longer <= max_size:
        return image
    scale = max_size / longer
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _decode(
    path: Path, container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> Iterator[av.VideoFrame]:
    """Decode every frame of `stream`; on a mid-file error keep what decodes, warn once, stop.

    Raises InputError when the file breaks (or ends) before any frame decodes.
    """
    n = 0
    broken: str | None = None
    try:
        for packet in container.demux(stream):
            if packet.is_corrupt and packet.size:
                # The demuxer flags a packet cut short by the end of the file;
                # threaded decoders may conceal the damage without raising.
                broken = "a packet is damaged or cut short"
            for frame in stream.decode(packet):
                n += 1
                yield frame
    except _FFmpegError as e:
        broken = str(e) or type(e).__name__
        # Frames still buffered in the decoder (reordering, frame threads) are valid.
        try:
            for frame in stream.decode(None):
                n += 1
                yield frame
        except _FFmpegError:
            pass
    if n == 0:
        raise InputError(path, _NO_FRAMES if broken is None else f"damaged video, no frame decodes ({broken})")
    if broken is not None:
        warnings.warn(
            f"{path}: video is damaged or truncated; got {n} frames ({broken})",
            UserWarning,
            stacklevel=3,
        )


def probe(path: str | Path) -> VideoMeta:
    """Read a video's metadata (decodes only the first frame, to learn its upright size).

    Raises InputError for a missing, empty, non-video or frameless file.
    """
    p = Path(path)
    container, stream = _open_video(p)
    with container:
        tb = stream.time_base
        frames = _decode(p, container, stream)
        first = next(frames)  # raises InputError when nothing decodes
        frames.close()
        rotation = _rotation_of(first, stream)
        w, h = first.width, first.height
        if rotation in (90, 270):
            w, h = h, w

        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if stream.duration is not None and tb is not None:
            duration = float(stream.duration * tb)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        n_frames = int(stream.frames or 0)
        if rate:
            fps = float(rate)
        elif n_frames and duration > 0:
            fps = n_frames / duration
        else:
            raise InputError(p, "video has no usable frame rate")
        if n_frames <= 0:
            n_frames = max(1, round(duration * fps))
        if duration <= 0:
            duration = n_frames / fps

        audio_duration: float | None = None
        has_audio = bool(container.streams.audio)
        if has_audio:
            a = container.streams.audio[0]
            if a.duration is not None and a.time_base is not None:
                audio_duration = float(a.duration * a.time_base)
    return VideoMeta(
        path=p,
        width=int(w),
        height=int(h),
        fps=fps,
        n_frames=n_frames,
        duration=duration,
        rotation=rotation,
        has_audio=has_audio,
        audio_duration=audio_duration,
    )


def read_frames(
    path: str | Path, *, start: int = 0, end: int | None = None, max_size: int | None = None
) -> Iterator[Frame]:
    """Stream frames ``start <= index < end`` of a video as upright RGB :class:`Frame` s.

    Decoding is threaded and runs one frame at a time (memory stays flat).
    ``max_size`` shrinks frames so the longer side is at most that many pixels
    (aspect kept, cv2 area interpolation). Frames before ``start`` are decoded
    but not converted, so indices are exact even for variable frame rate.

    Damaged files: raises InputError when no frame decodes at all; when the file
    breaks after some frames, those are yielded, one UserWarning is emitted and
    iteration stops (see the module docstring).
    """
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if end is not None and end < start:
        raise ValueError(f"end ({end}) must be >= start ({start})")
    if max_size is not None and max_size < 1:
        raise ValueError(f"max_size must be >= 1, got {max_size}")
    p = Path(path)
    container, stream = _open_video(p)
    return _read_frames(p, container, stream, start, end, max_size)


def _read_frames(
    p: Path,
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    start: int,
    end: int | None,
    max_size: int | None,
) -> Iterator[Frame]:
    with container:
        if end == start:
            return
        tb = stream.time_base
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        rotation: int | None = None
        for index, frame in enumerate(_decode(p, container, stream)):
            if rotation is None:
                rotation = _rotation_of(frame, stream)
            if index < start:
                continue
            if end is not None and index >= end:
                break
            if frame.pts is not None and tb is not None:
                time = float(frame.pts * tb)
            else:
                time = index / fps if fps else float(index)
            image = frame.to_ndarray(format="rgb24", interpolation=_SWS_TO_RGB)
            image = _upright(_downsize(image, max_size), rotation)
            yield Frame(index=index, time=time, image=image)


def count_frames(path: str | Path) -> int:
    """Exact number of frames, counted by demuxing packets (no decoding).

    A file that breaks mid-way gives the packets read so far and one UserWarning;
    a file without any video packet raises InputError.
    """
    p = Path(path)
    container, stream = _open_video(p)
    n = 0
    broken: str | None = None
    with container:
        try:
            for packet in container.demux(stream):
                if packet.size and not packet.is_corrupt:
                    n += 1
                elif packet.size:
                    broken = "truncated packet"
        except _FFmpegError as e:
            broken = str(e) or type(e).__name__
    if n == 0:
        raise InputError(p, _NO_FRAMES)
    if broken is not None:
        warnings.warn(f"{p}: video is damaged or truncated; counted {n} frames ({broken})", UserWarning, stacklevel=2)
    return n


# --------------------------------------------------------------------- writing


def _check_output_path(path: Path) -> None:
    """Raise InputError naming `path` if it cannot be written."""
    if path.is_dir():
        raise InputError(path, "output path is a directory")
    parent = path.parent
    for anc in [parent, *parent.parents]:
        if anc.exists():
            if not anc.is_dir():
                raise InputError(path, f"cannot write here: {anc} is a file, not a folder")
            if not os.access(anc, os.W_OK | os.X_OK):
                raise InputError(path, f"cannot write here: no permission to write in {anc}")
            break
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(path, f"cannot create output folder {parent} ({e.strerror or e})") from None


def _as_rgb_uint8(image: np.ndarray, what: str = "frame") -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{what} must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{what} must be HxWx3 RGB, got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{what} is empty, shape {image.shape}")
    return image


class _AudioFeed:
    """Decodes a source's first audio track from `start` seconds, re-timed so `start` is 0.

    ``frames_until(t)`` returns float-planar AudioFrames covering output time
    [what was already given, t), so audio can be muxed interleaved with video.
    Gaps in the source become silence, so audio stays in sync.
    """

    def __init__(self, path: Path, start: float):
        self.path = path
        self.container = av.open(str(path), mode="r")
        self.stream = self.container.streams.audio[0]
        cc = self.stream.codec_context
        self.rate = int(cc.sample_rate or 48000)
        self.layout = "mono" if cc.channels == 1 else "stereo"
        self.channels = 1 if self.layout == "mono" else 2
        self.start = float(start)
        self._resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)
        self._pending = np.zeros((self.channels, 0), np.float32)  # next samples, from output sample _done
        self._done = 0  # output samples handed out so far
        self._placed = 0  # output sample index just past the last decoded sample
        self._clock = 0.0  # source time just past the last decoded sample
        self._finished = False
        if self.start > 0 and self.stream.time_base:
            try:
                self.container.seek(int(self.start / self.stream.time_base), stream=self.stream, backward=True)
            except _FFmpegError:
                pass  # not seekable: decode from the beginning, the samples before `start` are cut
        self._chunks = self._decoded()

    def _decoded(self) -> Iterator[tuple[float | None, np.ndarray]]:
        """(source time or None if contiguous, (C, N) float32 samples) in order."""
        try:
            for packet in self.container.demux(self.stream):
                for frame in self.stream.decode(packet):
                    t = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else None
                    for out in self._resampler.resample(frame):
                        yield t, out.to_ndarray()
                        t = None
            for out in self._resampler.resample(None):
                yield None, out.to_ndarray()
        except _FFmpegError as e:
            warnings.warn(f"{self.path}: audio is damaged; using what decoded ({e})", UserWarning, stacklevel=2)

    def _next_chunk(self) -> np.ndarray | None:
        """Samples for output positions starting at self._placed, or None at the end."""
        for t, data in self._chunks:
            data = np.asarray(data, dtype=np.float32).reshape(self.channels, -1)
            t = self._clock if t is None else t
            self._clock = t + data.shape[1] / self.rate
            first = round((t - self.start) * self.rate)  # output index of data[:, 0]
            if first < self._placed:  # before `start`, or overlapping what is placed
                data = data[:, self._placed - first :]
                if data.shape[1] == 0:
                    continue
            elif first > self._placed:  # a hole in the source: fill with silence
                gap = np.zeros((self.channels, first - self._placed), np.float32)
                data = np.concatenate([gap, data], axis=1)
            self._placed += data.shape[1]
            return data
        return None

    def frames_until(self, t: float) -> list[av.AudioFrame]:
        """AudioFrames for output samples [done, round(t * rate)); pts counts samples."""
        target = round(t * self.rate)
        out: list[av.AudioFrame] = []
        while self._done < target and not self._finished:
            if self._pending.shape[1] == 0:
                chunk = self._next_chunk()
                if chunk is None:
                    self._finished = True
                    break
                self._pending = chunk
            take = min(self._pending.shape[1], target - self._done)
            data, self._pending = self._pending[:, :take], self._pending[:, take:]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="fltp", layout=self.layout)
            frame.sample_rate = self.rate
            frame.pts = self._done
            frame.time_base = Fraction(1, self.rate)
            out.append(frame)
            self._done += take
        return out

    def close(self) -> None:
        self.container.close()


class VideoWriter:
    """Write RGB frames to an H.264 (libx264, yuv420p) MP4, atomically.

    The first frame fixes the size; an odd width/height is padded by repeating
    the last row/column so yuv420p gets even sizes. Later frames must have the
    first frame's size. With ``audio_from``, that file's first audio track from
    ``audio_start`` seconds (in its own presentation timeline, i.e. the
    ``Frame.time`` of its frames) is re-encoded to AAC, interleaved and cut at
    the video's end; a file without audio adds none. Nothing appears at ``path``
    until :meth:`close` succeeds; leaving a ``with`` block by exception (or
    calling :meth:`abort`) removes the partial file.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float,
        *,
        crf: int = 18,
        audio_from: str | Path | None = None,
        audio_start: float = 0.0,
    ):
        self.path = Path(path)
        try:
            fps_ok = math.isfinite(float(fps)) and float(fps) > 0
        except (TypeError, ValueError):
            fps_ok = False
        if not fps_ok:
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        if not 0 <= int(crf) <= 51:
            raise ValueError(f"crf must be in 0..51, got {crf}")
        if not audio_start >= 0:
            raise ValueError(f"audio_start must be >= 0, got {audio_start}")
        self.fps = float(fps)
        self.crf = int(crf)
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.audio_start = float(audio_start)
        self._rate = Fraction(self.fps).limit_denominator(10000)
        if self.audio_from is not None:
            _check_input_file(self.audio_from)
        _check_output_path(self.path)
        fmt = _VIDEO_FORMATS.get(self.path.suffix.lower())
        if fmt is None:
            raise InputError(self.path, f"output video must end in one of {sorted(_VIDEO_FORMATS)}")
        self._format = fmt

        self._atomic: ExitStack | None = None  # holds atomic_path(self.path) while writing
        self._container: av.container.OutputContainer | None = None
        self._vstream: av.video.stream.VideoStream | None = None
        self._astream: av.audio.stream.AudioStream | None = None
        self._audio: _AudioFeed | None = None
        self._in_size: tuple[int, int] | None = None  # (h, w) of the frames given
        self._out_size: tuple[int, int] | None = None  # (h, w) encoded, even
        self._n = 0
        self._closed = False

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @property
    def frames_written(self) -> int:
        return self._n

    def _open(self, h: int, w: int) -> None:
        self._atomic = ExitStack()
        tmp = self._atomic.enter_context(atomic_path(self.path))
        try:
            self._container = av.open(str(tmp), mode="w", format=self._format, options={"movflags": "+faststart"})
        except (_FFmpegError, OSError) as e:
            self.abort()
            raise InputError(self.path, f"cannot write video ({e})") from None
        oh, ow = h + (h % 2), w + (w % 2)
        vs = self._container.add_stream("libx264", rate=self._rate)
        vs.width, vs.height, vs.pix_fmt = ow, oh, "yuv420p"
        vs.options = {"crf": str(self.crf), "preset": "medium"}
        vs.codec_context.time_base = 1 / self._rate
        vs.thread_type = "AUTO"
        cc = vs.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = _BT709, _BT709, _BT709, _MPEG_RANGE
        self._vstream = vs
        self._in_size, self._out_size = (h, w), (oh, ow)
        if self.audio_from is not None:
            try:
                self._open_audio(self._container, self.audio_from)
            except BaseException:
                self.abort()
                raise

    def _open_audio(self, container: av.container.OutputContainer, source: Path) -> None:
        try:
            with av.open(str(source), mode="r") as src:
                has_audio = bool(src.streams.audio)
        except (_FFmpegError, OSError, UnicodeDecodeError):
            raise InputError(source, "not a media file (could not open it to copy its audio)") from None
        if not has_audio:
            return  # no audio track: the video is written silent
        self._audio = feed = _AudioFeed(source, self.audio_start)
        a = container.add_stream("aac", rate=feed.rate)
        a.layout = feed.layout
        a.format = "fltp"
        a.codec_context.time_base = Fraction(1, feed.rate)
        a.bit_rate = 192_000 if feed.layout == "stereo" else 128_000
        self._astream = a

    def write(self, image: np.ndarray) -> None:
        """Append one HxWx3 uint8 RGB frame."""
        if self._closed:
            raise ValueError(f"{self.path}: writer is closed")
        image = _as_rgb_uint8(image)
        h, w = image.shape[:2]
        if self._container is None:
            self._open(h, w)
        elif (h, w) != self._in_size:
            assert self._in_size is not None
            raise ValueError(
                f"{self.path}: frame {self._n} is {w}x{h} but the video is "
                f"{self._in_size[1]}x{self._in_size[0]} (all frames must match the first)"
            )
        assert self._out_size is not None and self._vstream is not None and self._container is not None
        oh, ow = self._out_size
        if (oh, ow) != (h, w):
            image = np.pad(image, ((0, oh - h), (0, ow - w), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(
            format="yuv420p", dst_colorspace="itu709", dst_color_range="MPEG", interpolation=_SWS_FROM_RGB
        )  # BT.709 limited range, as the stream is tagged (players assume it for HD anyway)
        frame.pts = self._n
        frame.time_base = 1 / self._rate
        for packet in self._vstream.encode(frame):
            self._container.mux(packet)
        self._n += 1
        self._mux_audio_until(self._n / self._rate)

    def _mux_audio_until(self, t: Fraction | float) -> None:
        if self._audio is None or self._astream is None or self._container is None:
            return
        for aframe in self._audio.frames_until(float(t)):
            for packet in self._astream.encode(aframe):
                self._container.mux(packet)

    def close(self) -> Path:
        """Flush encoders, finish the file and move it onto ``path``; returns ``path``."""
        if self._closed:
            return self.path
        if self._container is None:
            self.abort()
            raise ValueError(f"{self.path}: no frames were written")
        try:
            assert self._vstream is not None and self._atomic is not None
            for packet in self._vstream.encode(None):
                self._container.mux(packet)
            self._mux_audio_until(self._n / self._rate)
            if self._astream is not None:
                for packet in self._astream.encode(None):
                    self._container.mux(packet)
            self._container.close()
            self._container = None
            if self._audio is not None:
                self._audio.close()
                self._audio = None
        except BaseException:
            self.abort()
            raise
        self._closed = True
        try:
            self._atomic.close()  # renames the finished temp file onto self.path
        except OSError as e:
            raise InputError(self.path, f"cannot write video ({e.strerror or e})") from None
        return self.path

    def abort(self) -> None:
        """Discard everything written: nothing is left at ``path`` or beside it."""
        if self._closed:
            return
        self._closed = True
        for closable in (self._container, self._audio):
            if closable is not None:
                try:
                    closable.close()
                except Exception:  # noqa: BLE001 - the file is being thrown away
                    pass
        self._container = None
        self._audio = None
        if self._atomic is not None:
            err = _Aborted()
            try:
                self._atomic.__exit__(_Aborted, err, None)  # atomic_path removes the temp file
            except _Aborted:
                pass


class _Aborted(Exception):
    """Thrown into atomic_path so it discards the temp file instead of renaming it."""


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    audio_from: str | Path | None = None,
    audio_start: float = 0.0,
) -> Path:
    """Write an iterable of HxWx3 uint8 RGB frames to an H.264 MP4 (see :class:`VideoWriter`)."""
    with VideoWriter(path, fps, audio_from=audio_from, audio_start=audio_start) as writer:
        for image in frames:
            writer.write(image)
    return Path(path)


# ---------------------------------------------------------------------- images


def write_audio(path: str | Path, samples: np.ndarray, rate: int) -> Path:
    """Write (channels, n) float samples in [-1, 1] (1 or 2 channels) as audio, atomically:
    16-bit PCM for `.wav`, AAC for `.m4a` / `.mp4`. For music tracks of demos and tests."""
    path = Path(path)
    x = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    if x.shape[0] not in (1, 2):
        raise ValueError(f"samples must be (1 or 2, n), got {x.shape}")
    layout = "mono" if x.shape[0] == 1 else "stereo"
    wav = path.suffix.lower() == ".wav"
    if wav:
        data, codec, fmt = (np.clip(x, -1, 1) * 32767).astype(np.int16).T.reshape(1, -1), "pcm_s16le", "s16"
    elif path.suffix.lower() in (".m4a", ".mp4"):
        data, codec, fmt = x, "aac", "fltp"
    else:
        raise InputError(path, "audio output must end in .wav, .m4a or .mp4")
    _check_output_path(path)
    step = x.shape[1]
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format="wav" if wav else "mp4") as c:
            s = c.add_stream(codec, rate=rate)
            s.layout = layout
            for i in range(0, step, 1024):
                chunk = data[:, i * x.shape[0] : (i + 1024) * x.shape[0]] if wav else data[:, i : i + 1024]
                f = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format=fmt, layout=layout)
                f.sample_rate = rate
                f.pts = i
                for p in s.encode(f):
                    c.mux(p)
            for p in s.encode(None):
                c.mux(p)
    return path


def read_mask(path: str | Path) -> np.ndarray:
    """Read a single-channel PNG (a matte) as HxW uint8."""
    p = Path(path)
    _check_input_file(p)
    mask = cv2.imdecode(np.fromfile(str(p), dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise InputError(p, "not an image file (could not decode)")
    return mask


def write_mask(path: str | Path, mask: np.ndarray) -> Path:
    """Write HxW uint8 to a single-channel PNG, atomically; returns ``path``."""
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise ValueError(f"{p}: a mask is written as .png, got {p.suffix!r}")
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(f"{p}: mask must be an HxW uint8 array")
    return _write_encoded(p, mask, [], "mask")


def _write_encoded(p: Path, pixels: np.ndarray, params: list[int], what: str) -> Path:
    """Encode `pixels` (as OpenCV wants them) by `p`'s extension and write them atomically."""
    _check_output_path(p)
    ok, buf = cv2.imencode(p.suffix.lower(), pixels, params)
    if not ok:
        raise ValueError(f"{p}: OpenCV could not encode the {what}")
    try:
        with atomic_path(p) as tmp:
            tmp.write_bytes(buf.tobytes())
    except OSError as e:
        raise InputError(p, f"cannot write {what} ({e.strerror or e})") from None
    return p


def read_image(path: str | Path) -> np.ndarray:
    """Read a PNG/JPG (or anything OpenCV decodes) as HxWx3 uint8 RGB."""
    p = Path(path)
    _check_input_file(p)
    data = np.fromfile(str(p), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(p, "not an image file (could not decode)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write HxWx3 uint8 RGB to PNG or JPG (by extension), atomically; returns ``path``."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in _IMAGE_EXTS:
        raise ValueError(f"{p}: image extension must be one of {sorted(_IMAGE_EXTS)}, got {ext!r}")
    image = _as_rgb_uint8(image, f"{p}: image")
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext in (".jpg", ".jpeg") else []
    return _write_encoded(p, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params, "image")
