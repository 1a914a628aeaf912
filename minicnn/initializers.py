"""Weight initialisers (Glorot/Xavier and He/Kaiming), seeded by a numpy.random.Generator.

Weights are drawn on the host with NumPy (so a seed gives the same model on every backend) and
then moved to the chosen backend by the layer.
"""

from __future__ import annotations

import numpy as np


def fan_in_and_out(shape: tuple[int, ...]) -> tuple[int, int]:
    """Fan-in and fan-out of a Dense (in, out) or Conv2D (filters, in_channels, KH, KW) kernel."""
    if len(shape) == 2:
        return shape[0], shape[1]
    if len(shape) == 4:
        receptive_field = shape[2] * shape[3]
        return shape[1] * receptive_field, shape[0] * receptive_field
    raise ValueError(f"cannot compute fans for a kernel of shape {shape}")


def glorot_uniform(shape, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """U(-l, l) with l = sqrt(6 / (fan_in + fan_out)): the Keras default for Dense and Conv2D."""
    fan_in, fan_out = fan_in_and_out(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def glorot_normal(shape, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """N(0, 2 / (fan_in + fan_out)), truncated at two standard deviations as in Keras."""
    fan_in, fan_out = fan_in_and_out(shape)
    return _truncated_normal(shape, np.sqrt(2.0 / (fan_in + fan_out)), rng, dtype)


def he_uniform(shape, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """U(-l, l) with l = sqrt(6 / fan_in): keeps activation variance through ReLU layers."""
    fan_in, _ = fan_in_and_out(shape)
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def he_normal(shape, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """N(0, 2 / fan_in), truncated at two standard deviations as in Keras."""
    fan_in, _ = fan_in_and_out(shape)
    return _truncated_normal(shape, np.sqrt(2.0 / fan_in), rng, dtype)


def _truncated_normal(shape, std: float, rng: np.random.Generator, dtype) -> np.ndarray:
    # Keras divides by 0.8796... so that the truncated distribution still has variance std**2.
    std = std / 0.87962566103423978
    values = rng.standard_normal(size=shape)
    outside = np.abs(values) > 2.0
    while outside.any():  # redraw the few values beyond two standard deviations
        values[outside] = rng.standard_normal(size=int(outside.sum()))
        outside = np.abs(values) > 2.0
    return (values * std).astype(dtype)


INITIALIZERS = {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
}


def get_initializer(name: str):
    """Look an initialiser up by its Keras name."""
    try:
        return INITIALIZERS[name]
    except KeyError:
        raise ValueError(
            f"unknown initializer {name!r}: expected one of {sorted(INITIALIZERS)}"
        ) from None
