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
        if training:
            self.cache = x.shape
        # reshape copies when x is a channels-last view: the order must stay C, H, W.
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        if self.cache is None:
            raise RuntimeError(f"{self.name}: backward() called without forward(training=True)")
        shape, self.cache = self.cache, None
        return dy.reshape(shape)
