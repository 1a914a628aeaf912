"""ReLU: max(0, x). Its gradient passes where the input was positive and is zero elsewhere."""

from __future__ import annotations

from minicnn.backend import get_array_module
from minicnn.layers.base import Layer


class ReLU(Layer):
    """Rectified linear unit, elementwise; keeps the input's memory layout.

    Shapes: any -> same. At exactly 0 the gradient is taken as 0 (as in PyTorch and Keras).
    """

    def forward(self, x, training: bool = False):
        self.ensure_built(x)
        xp = get_array_module(x)
        out = xp.maximum(x, 0)
        if training:
            self.cache = out  # out > 0 exactly where x > 0
        return out

    def backward(self, dy):
        if self.cache is None:
            raise RuntimeError(f"{self.name}: backward() called without forward(training=True)")
        out, self.cache = self.cache, None
        xp = get_array_module(dy)
        return xp.where(out > 0, dy, dy.dtype.type(0))
