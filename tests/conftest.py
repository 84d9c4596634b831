"""Shared test fixtures: real footage location, GPU auto-skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("DANCENOW_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real clips of ../shared/data (or $DANCENOW_DATA); skips with the reason when absent."""
    d = shared_data_dir()
    if not (d / "README.md").is_file():
        pytest.skip(f"real test footage not found at {d} (set DANCENOW_DATA to its folder)")
    return d


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave pictures for a person to look at (gitignored)."""
    d = REPO / "outputs" / "test-artifacts"
    d.mkdir(parents=True, exist_ok=True)
    return d


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none here)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
