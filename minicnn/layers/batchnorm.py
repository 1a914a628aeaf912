"""BatchNorm: normalise each channel (4-D input) or feature (2-D input) with the batch's mean
and variance in training, and with running averages of them at inference."""

from __future__ import annotations

import numpy as np

from minicnn.backend import get_array_module
from minicnn.layers.base import Layer


class BatchNorm(Layer):
    """Batch normalisation with Keras' conventions.

    Args:
        momentum: running = momentum * running + (1 - momentum) * batch statistic (Keras 0.99;
            PyTorch's momentum=0.1 is this 0.9).
        epsilon: added to the variance before the square root (Keras 1e-3).

    Shapes: x (N, C, H, W) normalised per channel C, or x (N, F) per feature F; params["gamma"]
    and params["beta"] (C,) or (F,); state["running_mean"], state["running_var"] likewise.
    The running variance is the biased batch variance, as in Keras.
    """

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3) -> None:
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        if epsilon <= 0:
            raise ValueError(f"epsilon must be positive, got {epsilon!r}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)

    def get_config(self) -> dict:
        return {"momentum": self.momentum, "epsilon": self.epsilon}

    def compute_output_shape(self, input_shape):
        if len(input_shape) not in (1, 3):
            raise ValueError(f"{self.name} expects samples (C, H, W) or (F,), got {input_shape}")
        return input_shape

    def create_params(self, input_shape, rng, dtype):
        return {
            "gamma": np.ones(input_shape[0], dtype=dtype),
            "beta": np.zeros(input_shape[0], dtype=dtype),
        }

    def create_state(self, input_shape, dtype):
        return {
            "running_mean": np.zeros(input_shape[0], dtype=dtype),
            "running_var": np.ones(input_shape[0], dtype=dtype),
        }

    @staticmethod
    def _axes_and_shape(x):
        """Axes to average over and the shape that broadcasts a per-channel vector onto x."""
        if x.ndim == 4:
            return (0, 2, 3), (1, -1, 1, 1)
        return (0,), (1, -1)

    # --8<-- [start:forward]
    def forward(self, x, training: bool = False):
        self.ensure_built(x)
        xp = get_array_module(x)
        axes, shape = self._axes_and_shape(x)
        if training:  # this batch's statistics, and running averages of them for inference
            mean = x.mean(axis=axes, keepdims=True)
            var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
            m = x.dtype.type(self.momentum)
            self.state["running_mean"] = m * self.state["running_mean"] + (1 - m) * mean.ravel()
            self.state["running_var"] = m * self.state["running_var"] + (1 - m) * var.ravel()
        else:
            mean = self.state["running_mean"].reshape(shape)
            var = self.state["running_var"].reshape(shape)
        inv_std = (1.0 / xp.sqrt(var + self.epsilon)).astype(x.dtype)
        x_hat = (x - mean) * inv_std
        self.cache = (x_hat, inv_std, axes, shape, training)
        return x_hat * self.params["gamma"].reshape(shape) + self.params["beta"].reshape(shape)

    # --8<-- [end:forward]

    # --8<-- [start:backward]
    def backward(self, dy):
        """In training the statistics depend on the batch, which gives the standard form
        dx = gamma * inv_std * (dy - mean(dy) - x_hat * mean(dy * x_hat)); in inference they
        are constants and dx = gamma * inv_std * dy."""
        x_hat, inv_std, axes, shape, training = self.pop_cache()
        self.grads["gamma"] = (dy * x_hat).sum(axis=axes)
        self.grads["beta"] = dy.sum(axis=axes)
        scale = self.params["gamma"].reshape(shape) * inv_std
        if not training:
            return scale * dy
        mean_dy = dy.mean(axis=axes, keepdims=True)
        mean_dy_xhat = (dy * x_hat).mean(axis=axes, keepdims=True)
        return scale * (dy - mean_dy - x_hat * mean_dy_xhat)

    # --8<-- [end:backward]
