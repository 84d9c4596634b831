"""Person mattes: where the target is in each prepared frame, from MediaPipe Pose's segmentation.

The body generator outputs an alpha channel that composites the person over the plate.
Learnt from the RGB losses alone, that alpha comes out soft: on the real target a light face
is half transparent over the white wall and the feet trail a grey smear over the floor. The
matte of each real frame supervises it (`TrainConfig.lambda_matte`).

Why BlazePose's segmentation and not `mp.solutions.selfie_segmentation`: both ship inside
mediapipe, but the selfie model is made for a head and shoulders close to the camera; on a
whole dancer it smears a raised leg, where the pose model's mask (made for full bodies, and
smoothed over time in tracking mode) keeps it. Same model file as the detector's body stage
(model_complexity=1, the one mediapipe ships).
"""

from __future__ import annotations

import numpy as np

from dancenow.pose.detect import MEDIAPIPE_VERSION, _mediapipe

SEGMENTER_VERSION = f"blazepose-seg-1/mediapipe-{MEDIAPIPE_VERSION}"


class PersonSegmenter:
    """Feed the frames of one clip in order (tracking and mask smoothing carry over)."""

    version = SEGMENTER_VERSION

    def __init__(self) -> None:
        mp = _mediapipe()
        self._pose = mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=True,
                                            enable_segmentation=True, smooth_segmentation=True)

    def matte(self, image: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 RGB -> HxW uint8, 255 on the person, 0 off it (all 0 when nobody is found)."""
        image = np.ascontiguousarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be HxWx3 uint8 RGB, got {image.shape} {image.dtype}")
        mask = self._pose.process(image).segmentation_mask
        if mask is None:
            return np.zeros(image.shape[:2], np.uint8)
        return np.clip(mask * 255.0 + 0.5, 0, 255).astype(np.uint8)

    def close(self) -> None:
        self._pose.close()

    def __enter__(self) -> "PersonSegmenter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
