"""Video and image I/O: probe, stream upright RGB frames, write H.264 MP4 (with audio), PNG/JPG."""

from dancenow.video.io import (
    Frame,
    VideoMeta,
    VideoWriter,
    count_frames,
    probe,
    read_frames,
    read_image,
    read_mask,
    write_audio,
    write_image,
    write_mask,
    write_video,
)

__all__ = [
    "Frame",
    "VideoMeta",
    "VideoWriter",
    "count_frames",
    "probe",
    "read_frames",
    "read_image",
    "read_mask",
    "write_audio",
    "write_image",
    "write_mask",
    "write_video",
]
