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

The segmenter misses what moves fast: on the real target a kicked, motion-blurred foot is left
out of its mask, and a blob of wall where the leg was a frame earlier is put in. With a static
camera the background plate knows better: `plate_matte` takes the pixels near the skeleton that
differ from the plate, and drops the segmenter's mask where the frame is the plate. Where the
two disagree on the whole frame (a moving camera, a light switched on), the segmenter's mask
is kept as it is.
"""

from __future__ import annotations

import cv2
import numpy as np

from dancenow.pose.detect import MEDIAPIPE_VERSION, _mediapipe

SEGMENTER_VERSION = f"blazepose-seg-1/mediapipe-{MEDIAPIPE_VERSION}"
PLATE_MATTE_VERSION = "plate-1"
PLATE_LOW, PLATE_HIGH = 20.0, 50.0  # difference from the plate (0-255, largest channel): off -> fully on
PLATE_SAME = 10.0                   # under this the pixel is the plate: the segmenter's mask is dropped
PLATE_AGREE = 0.6                   # IoU of the two masks under which the plate is not trusted (whole frame)


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


def plate_matte(image: np.ndarray, plate: np.ndarray, matte: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The segmenter's `matte` (HxW uint8) corrected by the static background `plate`.

    image, plate: HxWx3 uint8; region: HxW bool, where the person may be (`render_person_mask`).
    Inside the region (grown by a few pixels around the matte) a pixel is the person by how far
    it is from the plate, ramping from PLATE_LOW to PLATE_HIGH; the segmenter's value is kept
    where the pixel is not the plate (PLATE_SAME or more), so a dark sleeve over a dark floor
    stays. When the plate's and the segmenter's masks overlap by under PLATE_AGREE the plate
    does not fit this frame and `matte` comes back unchanged.
    """
    if image.shape != plate.shape or image.shape[:2] != matte.shape or matte.shape != region.shape:
        raise ValueError(f"shapes differ: image {image.shape}, plate {plate.shape}, matte {matte.shape}, "
                         f"region {region.shape}")
    diff = cv2.GaussianBlur(np.abs(image.astype(np.float32) - plate.astype(np.float32)).max(axis=2), (3, 3), 0)
    seg = matte.astype(np.float32) / 255.0
    grow = max(1, round(0.02 * max(matte.shape)))
    near = region | (cv2.dilate((seg > 0.5).astype(np.uint8), np.ones((2 * grow + 1,) * 2, np.uint8)) > 0)
    moved = np.clip((diff - PLATE_LOW) / (PLATE_HIGH - PLATE_LOW), 0.0, 1.0) * near
    a, b = moved > 0.5, seg > 0.5
    if (a & b).sum() < PLATE_AGREE * max(1, (a | b).sum()):
        return matte
    out = np.maximum(moved, seg * (diff >= PLATE_SAME))
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
