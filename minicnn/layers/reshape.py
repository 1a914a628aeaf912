"""Flatten: (N, C, H, W) -> (N, C*H*W), in NCHW order (as PyTorch's nn.Flatten)."""

from __future__ import annotations

from minicnn.layers.base import Layer


class Flatten(Layer):
    """Flatten every axis but the batch axis. Shapes: (N, *dims) -> (N, prod(dims))."""

    def compute_output_shape(self, input_shape):
        size = 1
        for d in input_shape:
            size *= d
        return (size,)

    def forward(self, x, training: bool = False):
        self.ensure_built(x)
        self.cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(self.pop_cache())
