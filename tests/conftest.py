"""Shared pytest fixtures: where the real dataset lives (when it does) and fixed seeds."""

import os
from pathlib import Path

import pytest

import minicnn
from kannada.preprocess import Preprocessing

REPO_ROOT = Path(__file__).resolve().parents[1]
# The real data's layout the tests read (README: "Tests that need the real data").
REAL_DATA_FOLDERS = ("original", "kaggle")
NO_REAL_DATA = (
    "real Kannada-MNIST data not found: set KANNADA_MNIST_SHARED to a folder with original/ "
    "(the official IDX release) and kaggle/ (Kaggle's CSVs), as the README's 'Tests that need "
    "the real data' says"
)


def shared_data_dir() -> Path | None:
    """The folder with the real Kannada-MNIST in original/ and kaggle/: $KANNADA_MNIST_SHARED,
    else the development copy ../shared/data/kannada-mnist; None when neither has both."""
    candidates = [
        os.environ.get("KANNADA_MNIST_SHARED"),
        REPO_ROOT.parent / "shared" / "data" / "kannada-mnist",
    ]
    for candidate in candidates:
        if candidate and all((Path(candidate) / name).is_dir() for name in REAL_DATA_FOLDERS):
            return Path(candidate)
    return None


@pytest.fixture
def real_data_dir() -> Path:
    """The real dataset folder; skips the test, saying why, when it is not on this machine."""
    path = shared_data_dir()
    if path is None:
        pytest.skip(NO_REAL_DATA)
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """An untrained Flatten + Dense model saved as kannada.train saves one (no ZCA): a model
    file for tests of messages and plumbing, not of accuracy."""
    model = minicnn.Sequential([minicnn.Flatten(), minicnn.Dense(10)], seed=0)
    path = tmp_path_factory.mktemp("model") / "model.npz"
    model.save(path, metadata=Preprocessing().to_metadata())
    return path
