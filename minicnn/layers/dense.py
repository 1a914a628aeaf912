"""Dense (fully connected): y = x @ W + b."""

from __future__ import annotations

import numpy as np

from minicnn.initializers import get_initializer
from minicnn.layers.base import Layer


class Dense(Layer):
    """Fully connected layer.

    Args:
        units: number of outputs.
        kernel_initializer: name from minicnn.initializers (Keras' default glorot_uniform).

    Shapes: x (N, in_features) -> y (N, units); params["W"] (in_features, units), params["b"] (units,).
    """

    def __init__(self, units: int, kernel_initializer: str = "glorot_uniform") -> None:
        super().__init__()
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"units must be a positive int, got {units!r}")
        self.units = units
        self.kernel_initializer = kernel_initializer
        get_initializer(kernel_initializer)

    def get_config(self) -> dict:
        return {"units": self.units, "kernel_initializer": self.kernel_initializer}

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(
                f"{self.name} expects flat samples (features,), got {input_shape}: add a Flatten() before it"
            )
        return (self.units,)

    def create_params(self, input_shape, rng, dtype):
        init = get_initializer(self.kernel_initializer)
        return {
            "W": init((input_shape[0], self.units), rng, dtype),
            "b": np.zeros((self.units,), dtype=dtype),
        }

    # --8<-- [start:dense]
    def forward(self, x, training: bool = False):
        """x (N, in_features) -> (N, units)."""
        self.ensure_built(x)
        self.cache = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dy):
        """dy (N, units) -> dx (N, in_features); fills grads["W"] and grads["b"]."""
        x = self.pop_cache()
        self.grads["W"] = x.T @ dy
        self.grads["b"] = dy.sum(axis=0)
        return dy @ self.params["W"].T

    # --8<-- [end:dense]
