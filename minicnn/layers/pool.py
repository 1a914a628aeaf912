"""MaxPool2D: the largest value of each window; the gradient flows to that one input.

Works channels-last inside, like Conv2D, and returns an NCHW view of NHWC memory.
"""

from __future__ import annotations

from minicnn.backend import get_array_module
from minicnn.layers.base import Layer
from minicnn.layers.im2col import output_size, pair, window_view


class MaxPool2D(Layer):
    """Max pooling over pool_size windows every `stride` pixels ("valid": no padding).

    Args:
        pool_size: window size (int or pair).
        stride: step between windows (default: pool_size, i.e. non-overlapping windows).

    Shapes: x (N, C, H, W) -> y (N, C, OH, OW) with OH = (H - PH) // SH + 1. When several values
    of a window tie for the maximum, the gradient goes to the first one (as in PyTorch).
    """

    def __init__(self, pool_size=2, stride=None) -> None:
        super().__init__()
        self.pool_size = pair(pool_size, "pool_size")
        self.stride = self.pool_size if stride is None else pair(stride, "stride")

    def get_config(self) -> dict:
        return {"pool_size": list(self.pool_size), "stride": list(self.stride)}

    def _out_hw(self, h: int, w: int) -> tuple[int, int]:
        out = (
            output_size(h, self.pool_size[0], self.stride[0], (0, 0)),
            output_size(w, self.pool_size[1], self.stride[1], (0, 0)),
        )
        if min(out) <= 0:
            raise ValueError(
                f"{self.name}: input {h}x{w} is smaller than the pool {self.pool_size}"
            )
        return out

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self.name} expects samples of shape (C, H, W), got {input_shape}")
        return (input_shape[0], *self._out_hw(input_shape[1], input_shape[2]))

    def forward(self, x, training: bool = False):
        """x (N, C, H, W) -> (N, C, OH, OW)."""
        self.ensure_built(x)
        xp = get_array_module(x)
        n, c, h, w = x.shape
        out_hw = self._out_hw(h, w)
        ph, pw = self.pool_size
        x_nhwc = x.transpose(0, 2, 3, 1)
        # (N, OH, OW, PH, PW, C) view -> (N, OH, OW, C, PH*PW): one row per window
        windows = window_view(x_nhwc, self.pool_size, self.stride, out_hw)
        windows = windows.transpose(0, 1, 2, 5, 3, 4).reshape(n, *out_hw, c, ph * pw)
        argmax = windows.argmax(axis=-1)  # (N, OH, OW, C): first maximum on ties
        out = xp.take_along_axis(windows, argmax[..., None], axis=-1)[..., 0]
        if training:
            self.cache = (argmax, x.shape)
        return out.transpose(0, 3, 1, 2)

    def backward(self, dy):
        """dy (N, C, OH, OW) -> dx (N, C, H, W): each dy goes to its window's maximum."""
        if self.cache is None:
            raise RuntimeError(f"{self.name}: backward() called without forward(training=True)")
        argmax, x_shape = self.cache
        self.cache = None
        xp = get_array_module(dy)
        n, c, h, w = x_shape
        (ph, pw), (sh, sw) = self.pool_size, self.stride
        oh, ow = argmax.shape[1], argmax.shape[2]
        dy_nhwc = dy.transpose(0, 2, 3, 1)
        dx = xp.zeros((n, h, w, c), dtype=dy.dtype)
        # For each tap (a, b) of the window, the outputs whose maximum sat at that tap send
        # their gradient back to it; overlapping windows accumulate with +=.
        for a in range(ph):
            for b in range(pw):
                hit = argmax == a * pw + b
                dx[:, a : a + sh * oh : sh, b : b + sw * ow : sw, :] += xp.where(hit, dy_nhwc, 0)
        return dx.transpose(0, 3, 1, 2)
