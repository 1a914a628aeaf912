"""The one place that chooses the array module: NumPy on the CPU or CuPy on a GPU.

Code elsewhere never imports CuPy; it asks an array which module it lives on
(`get_array_module(x)`) or asks for the chosen one (`get_backend()`).
"""

from __future__ import annotations

import contextlib
import types

import numpy as np

_INSTALL_HINT = (
    "Install CuPy for your CUDA version, e.g. `pip install 'minicnn-kannada[gpu]'` "
    "(cupy-cuda12x) or see https://docs.cupy.dev/en/stable/install.html, "
    "or use the NumPy backend: set_backend('numpy')."
)

_backend: types.ModuleType = np


def _import_cupy() -> types.ModuleType:
    """Import CuPy and make sure a GPU is visible, or explain what is missing."""
    try:
        import cupy
    except ImportError as error:
        raise RuntimeError(
            f"The CuPy backend was requested but CuPy is not installed. {_INSTALL_HINT}"
        ) from error
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CUDA driver missing or broken: CuPy raises its own types
        raise RuntimeError(
            f"The CuPy backend was requested but no CUDA GPU is usable ({error}). {_INSTALL_HINT}"
        ) from error
    if count == 0:
        raise RuntimeError(
            f"The CuPy backend was requested but no CUDA GPU is visible. {_INSTALL_HINT}"
        )
    return cupy


def set_backend(name: str) -> types.ModuleType:
    """Choose the array module for new arrays: "numpy" or "cupy". Returns the module."""
    global _backend
    name = name.strip().lower()
    if name == "numpy":
        _backend = np
    elif name == "cupy":
        _backend = _import_cupy()
    else:
        raise ValueError(f"unknown backend {name!r}: expected 'numpy' or 'cupy'")
    return _backend


def available_backends() -> dict[str, str | None]:
    """Each backend name -> None when usable here, else the reason it is not (for skips)."""
    status: dict[str, str | None] = {"numpy": None}
    try:
        _import_cupy()
        status["cupy"] = None
    except RuntimeError as error:
        status["cupy"] = str(error)
    return status


@contextlib.contextmanager
def use_backend(name: str):
    """Temporarily switch the backend: `with use_backend("cupy"): ...`."""
    previous = _backend
    set_backend(name)
    try:
        yield _backend
    finally:
        _set_module(previous)


def _set_module(module: types.ModuleType) -> None:
    global _backend
    _backend = module


def get_backend() -> types.ModuleType:
    """The array module chosen by set_backend() (default NumPy)."""
    return _backend


def backend_name() -> str:
    """ "numpy" or "cupy"."""
    return "numpy" if _backend is np else "cupy"


def get_array_module(x) -> types.ModuleType:
    """The module (numpy or cupy) that the array `x` lives on."""
    if isinstance(x, np.ndarray) or type(x).__module__.split(".")[0] != "cupy":
        return np
    import cupy

    return cupy


def is_gpu_array(x) -> bool:
    """True when `x` is a CuPy array (its memory is on a GPU)."""
    return get_array_module(x) is not np


def to_numpy(x) -> np.ndarray:
    """Copy `x` to host memory as a NumPy array (a no-op for NumPy arrays)."""
    if is_gpu_array(x):
        return x.get()
    return np.asarray(x)


def to_device(x, dtype=None):
    """Move `x` onto the chosen backend (host for NumPy, GPU for CuPy), optionally casting."""
    xp = get_backend()
    if xp is np:
        x = to_numpy(x)
        return x if dtype is None else x.astype(dtype, copy=False)
    return xp.asarray(x, dtype=dtype)
