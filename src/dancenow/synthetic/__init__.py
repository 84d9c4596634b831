"""Built-in synthetic dancers (numpy + OpenCV, no torch): seeded people, seeded dances, exact keypoints.

    subject = make_subject(1)                 # proportions, skin, hair, clothes, room
    dance = make_dance(7, seconds=10, fps=15)  # subject-independent motion on a beat
    poses = pose_subject(subject, dance, 256)  # PoseSequence, exact keypoints
    for res in render(subject, poses): ...     # RenderResult(image RGB uint8, mask bool)

Any subject can be drawn on any skeleton, e.g. `render(make_subject(2), poses)` is subject 2 on
subject 1's keypoints, and the true answer of a motion transfer is
`render(target, pose_subject(target, dance, size))`.
"""

from dancenow.synthetic.clip import SyntheticClip, make_clip, synth_to_files, write_clip
from dancenow.synthetic.dance import CHANNELS, Dance, make_dance
from dancenow.synthetic.scene import Renderer, RenderResult, render, render_background
from dancenow.synthetic.skeleton import Camera, pose_subject, pose_world
from dancenow.synthetic.subject import Scene, Subject, make_scene, make_subject

__all__ = [
    "CHANNELS",
    "Camera",
    "Dance",
    "RenderResult",
    "Renderer",
    "Scene",
    "Subject",
    "SyntheticClip",
    "make_clip",
    "make_dance",
    "make_scene",
    "make_subject",
    "pose_subject",
    "pose_world",
    "render",
    "render_background",
    "synth_to_files",
    "write_clip",
]
