"""ReLU: max(0, x). Its gradient passes where the input was positive and is zero elsewhere."""

from __future__ import annotations

from minicnn.backend import get_array_module
from minicnn.layers.base import Layer


class ReLU(Layer):
    """Rectified linear unit, elementwise.

    Shapes: any -> same. At exactly 0 the gradient is taken as 0 (as in PyTorch and Keras).
    """

    # --8<-- [start:relu]
    def forward(self, x, training: bool = False):
        self.ensure_built(x)
        self.cache = x > 0  # where the gradient passes
        return get_array_module(x).maximum(x, 0)

    def backward(self, dy):
        return dy * self.pop_cache()

    # --8<-- [end:relu]
