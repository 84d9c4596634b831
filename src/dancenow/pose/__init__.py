"""Keypoints: one schema (BODY_25 + 70 face + 2x21 hands), detection, smoothing,
normalization and rendering. This package never imports torch."""

from dancenow.pose.schema import PoseSequence

__all__ = ["PoseSequence"]
