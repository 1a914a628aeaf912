"""Shared pytest fixtures: where the real dataset lives (when it does) and fixed seeds."""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """The development copy of Kannada-MNIST (../shared/data/kannada-mnist), or None."""
    candidates = [
        os.environ.get("KANNADA_MNIST_SHARED"),
        REPO_ROOT.parent / "shared" / "data" / "kannada-mnist",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


@pytest.fixture
def real_data_dir() -> Path:
    """The real dataset folder; skips the test when it is not on this machine."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("real Kannada-MNIST data not found (../shared/data/kannada-mnist)")
    return path
