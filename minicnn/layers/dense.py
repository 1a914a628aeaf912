"""Dense (fully connected): y = x @ W + b."""

from __future__ import annotations

import numpy as np

from minicnn.backend import get_array_module
from minicnn.initializers import get_initializer
from minicnn.layers.base import Layer
from minicnn.parallel import run_chunks, sum_in_chunk_order


class Dense(Layer):
    """Fully connected layer.

    Args:
        units: number of outputs.
        kernel_initializer: name from minicnn.initializers (Keras' default glorot_uniform).

    Shapes: x (N, in_features) -> y (N, units); params["W"] (in_features, units), params["b"] (units,).
    """

    def __init__(self, units: int, kernel_initializer: str = "glorot_uniform") -> None:
        super().__init__()
        if not isinstance(units, int) or units <= 0:
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

    def forward(self, x, training: bool = False):
        """x (N, in_features) -> (N, units)."""
        self.ensure_built(x)
        xp = get_array_module(x)
        W, b = self.params["W"], self.params["b"]
        out = xp.empty((x.shape[0], self.units), dtype=x.dtype)

        def work(start: int, stop: int) -> None:  # one chunk of the batch (see minicnn.parallel)
            xp.matmul(x[start:stop], W, out=out[start:stop])
            out[start:stop] += b

        run_chunks(work, x.shape[0], xp)
        if training:
            self.cache = x
        return out

    def backward(self, dy):
        """dy (N, units) -> dx (N, in_features); fills grads["W"] and grads["b"]."""
        if self.cache is None:
            raise RuntimeError(f"{self.name}: backward() called without forward(training=True)")
        x, self.cache = self.cache, None
        xp = get_array_module(dy)
        W = self.params["W"]
        dx = xp.empty(x.shape, dtype=dy.dtype) if self.needs_input_grad else None

        def work(start: int, stop: int):
            if dx is not None:
                xp.matmul(dy[start:stop], W.T, out=dx[start:stop])
            return x[start:stop].T @ dy[start:stop]  # this chunk's share of dW

        self.grads["W"] = sum_in_chunk_order(run_chunks(work, x.shape[0], xp))
        self.grads["b"] = dy.sum(axis=0)
        return dx
