"""What fit, evaluate and predict accept, and a clear error for what they cannot learn from.

Anything np.asarray takes is accepted (lists too); integer pixels are used as they are, with a
warning, as Keras would; labels must be whole numbers naming a class. Each error names the
argument and, for labels, the first offending index and value.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from minicnn.backend import get_array_module, is_gpu_array, to_numpy


def as_images(x, name: str, input_shape: tuple, dtype, allow_empty: bool = False):
    """x as an array of samples of `input_shape` (a batch axis first). Integer images (0-255
    pixels) stay as they are, to be cast to `dtype` unscaled, as in Keras, with a warning
    when their values go above 1."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        try:
            x = np.asarray(x, dtype=dtype)
        except (TypeError, ValueError) as error:
            raise TypeError(f"{name} must be an array of numbers: {error}") from None
    if tuple(x.shape) == tuple(input_shape):
        raise ValueError(
            f"{name} is one sample of shape {tuple(x.shape)}; pass a batch: {name}[None]"
        )
    if tuple(x.shape[1:]) != tuple(input_shape):
        raise ValueError(
            f"{name} has samples of shape {tuple(x.shape[1:])}, the model expects "
            f"{tuple(input_shape)} (NCHW)"
        )
    if len(x) == 0 and not allow_empty:
        raise ValueError(f"{name} is empty: it needs at least one sample")
    kind = np.dtype(x.dtype).kind
    if kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, found dtype {x.dtype}")
    if kind in "biu" and len(x) and float(x.max()) > 1:
        warnings.warn(
            f"{name} holds {x.dtype} values above 1 (unscaled pixels?): they are used as they "
            f"are, cast to {np.dtype(dtype)}; divide 0-255 pixels by 255 for inputs in [0, 1]",
            UserWarning,
            stacklevel=4,
        )
    return x


def as_labels(y, name: str, classes: int):
    """y as (N,) class indices (whole numbers in 0..classes-1; floats such as 2.0 become
    int64) or (N, classes) target rows (one-hot or soft), else an error naming the first
    offending label."""
    if not is_gpu_array(y):
        y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == classes:
        if not bool(get_array_module(y).isfinite(y).all()):
            raise ValueError(f"{name} holds NaN or infinite target values")
        return y
    if y.ndim != 1:
        raise ValueError(
            f"{name} must be (N,) class indices or (N, {classes}) one-hot rows, "
            f"got shape {tuple(y.shape)}"
        )
    if np.dtype(y.dtype).kind not in "biuf":
        raise TypeError(f"{name} must hold class indices 0..{classes - 1}, found {y.dtype}")
    values = to_numpy(y)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (values != np.round(values)) | (values < 0)
        bad |= values >= classes
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{name}[{i}] is {values[i].item()!r}: labels must be whole numbers from 0 to "
            f"{classes - 1} (the model has {classes} outputs)"
        )
    return y.astype(np.int64, copy=False) if np.dtype(y.dtype).kind == "f" else y


def check_count(name: str, value, minimum: int) -> None:
    """A whole number >= minimum (batch_size, epochs), or a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
