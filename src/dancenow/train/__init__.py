"""Training a personal generator: config, stages, checkpoints, distributed runs."""
