"""Training data: a target video prepared into frames, poses, face boxes and a manifest."""
