"""Flow-guided keypoint refinement (`dancenow.pose.flow`) on a moving texture with known motion."""

import cv2
import numpy as np
import pytest

from dancenow.pose.flow import flow_at, refine_with_flow

SIZE, T = 160, 24
VEL = np.array([2.5, 1.5])  # pixels per frame


def _texture(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.random((SIZE * 2, SIZE * 2)).astype(np.float32)
    return (cv2.GaussianBlur(noise, (0, 0), 2.0) * 255).clip(0, 255)


def _frames() -> list[np.ndarray]:
    """A texture moving by VEL per frame (frame t shows the texture shifted by t * VEL)."""
    tex = _texture()
    out = []
    for t in range(T):
        m = np.float32([[1, 0, t * VEL[0] - SIZE / 2], [0, 1, t * VEL[1] - SIZE / 2]])
        g = cv2.warpAffine(tex, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR)
        g = (g - g.min()) / (g.max() - g.min()) * 255
        out.append(np.repeat(g.astype(np.uint8)[:, :, None], 3, axis=2))
    return out


def _truth(n_points: int = 30) -> np.ndarray:
    """(T, K, 2) points riding on the texture, away from the edges."""
    rng = np.random.default_rng(1)
    start = rng.uniform(30, 80, (n_points, 2))
    return start[None] + np.arange(T)[:, None, None] * VEL[None, None]


def _keypoints(noise: float, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    truth = _truth()
    rng = np.random.default_rng(seed)
    kp = np.ones((*truth.shape[:2], 3), np.float32)
    kp[:, :, :2] = truth + rng.normal(0, noise, truth.shape)
    return kp, truth


def test_flow_at_reads_the_field_at_points():
    flow = np.zeros((10, 20, 2), np.float32)
    flow[..., 0] = np.arange(20)[None]  # x-flow = x
    got = flow_at(flow, np.array([[3.5, 4.0], [50.0, 2.0]]))
    np.testing.assert_allclose(got[:, 0], [3.5, 19.0], atol=1e-4)  # bilinear; clamped at the edge


def test_jitter_falls_and_motion_is_not_lagged():
    frames = _frames()
    kp, truth = _keypoints(noise=1.0)
    out = refine_with_flow(kp, frames.__getitem__, weight=0.5)
    err_raw = np.linalg.norm(kp[:, :, :2] - truth, axis=2)
    err = np.linalg.norm(out[:, :, :2] - truth, axis=2)
    assert err.mean() < 0.75 * err_raw.mean()
    # no lag: the mean signed error along the motion stays near 0 (a causal filter trails by ~1 px)
    along = ((out[:, :, :2] - truth) @ (VEL / np.linalg.norm(VEL))).mean()
    assert abs(along) < 0.2
    # exact detections stay put (within the flow's error)
    exact, _ = _keypoints(noise=0.0)
    assert np.abs(refine_with_flow(exact, frames.__getitem__)[:, :, :2] - truth).mean() < 0.3


def test_missing_points_confidences_and_weight_one_are_kept():
    frames = _frames()
    kp, _ = _keypoints(noise=1.0)
    kp[5:9, 0] = 0.0  # a point missing for 4 frames
    kp[:, 1, 2] = 0.4
    out = refine_with_flow(kp, frames.__getitem__, weight=0.6)
    np.testing.assert_array_equal(out[5:9, 0], 0.0)
    np.testing.assert_array_equal(out[:, :, 2], kp[:, :, 2])
    np.testing.assert_array_equal(refine_with_flow(kp, frames.__getitem__, weight=1.0), kp)


def test_a_detection_far_from_the_flow_is_trusted():
    """A point the detector moved 30 px (a swapped limb) is not averaged with the flow's estimate."""
    frames = _frames()
    kp, _ = _keypoints(noise=0.0)
    kp[12, 3, :2] += 30.0
    out = refine_with_flow(kp, frames.__getitem__, weight=0.5)
    np.testing.assert_allclose(out[12, 3, :2], kp[12, 3, :2], atol=1e-4)


def test_bad_weight_is_refused():
    with pytest.raises(ValueError, match="weight"):
        refine_with_flow(np.zeros((3, 2, 3)), lambda t: np.zeros((8, 8), np.uint8), weight=0.0)
