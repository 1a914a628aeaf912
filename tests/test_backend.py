"""The backend switch: NumPy by default, CuPy only where it can really run."""

import importlib.util

import numpy as np
import pytest

from minicnn import backend


def test_numpy_backend_and_conversions():
    assert backend.set_backend("numpy") is np
    x = np.arange(3)
    assert backend.get_array_module(x) is np
    assert backend.to_numpy(x) is x
    moved = backend.to_device([1.0, 2.0], dtype=np.float32)
    assert isinstance(moved, np.ndarray) and moved.dtype == np.float32


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="expected 'numpy' or 'cupy'"):
        backend.set_backend("tensorflow")


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed here")
def test_cupy_request_without_cupy_explains_how_to_install():
    with pytest.raises(RuntimeError, match="CuPy is not installed.*pip install"):
        backend.set_backend("cupy")
    assert backend.get_backend() is np  # the failed request changed nothing
