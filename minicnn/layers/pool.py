"""MaxPool2D: the largest value of each window; the gradient flows to that one input."""

from __future__ import annotations

from minicnn.backend import get_array_module
from minicnn.layers.base import Layer
from minicnn.layers.im2col import output_size, pair


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
        if min(self.pool_size) <= 0 or min(self.stride) <= 0:
            raise ValueError(
                f"pool_size and stride must be positive, got {pool_size!r} and {stride!r}"
            )

    def get_config(self) -> dict:
        return {"pool_size": list(self.pool_size), "stride": list(self.stride)}

    def output_hw(self, h: int, w: int) -> tuple[int, int]:
        """(OH, OW) for an H x W input."""
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
        return (input_shape[0], *self.output_hw(input_shape[1], input_shape[2]))

    # --8<-- [start:taps]
    def taps(self, x, out_hw):
        """The PH*PW strided views x[:, :, a::SH, b::SW], cropped to OH x OW: view k holds the
        k-th value of every window at once, without copying."""
        (ph, pw), (sh, sw), (oh, ow) = self.pool_size, self.stride, out_hw
        return [
            x[:, :, a : a + sh * oh : sh, b : b + sw * ow : sw]
            for a in range(ph)
            for b in range(pw)
        ]

    # --8<-- [end:taps]

    # --8<-- [start:forward]
    def forward(self, x, training: bool = False):
        """x (N, C, H, W) -> (N, C, OH, OW)."""
        self.ensure_built(x)
        xp = get_array_module(x)
        out_hw = self.output_hw(x.shape[2], x.shape[3])
        windows = xp.stack(self.taps(x, out_hw))  # (PH*PW, N, C, OH, OW)
        self.cache = (windows.argmax(axis=0), x.shape)  # argmax takes the first of tied maxima
        return windows.max(axis=0)

    # --8<-- [end:forward]

    # --8<-- [start:backward]
    def backward(self, dy):
        """dy (N, C, OH, OW) -> dx (N, C, H, W): each dy goes to its window's maximum."""
        winner, x_shape = self.pop_cache()
        dx = get_array_module(dy).zeros(x_shape, dtype=dy.dtype)
        for k, tap in enumerate(self.taps(dx, dy.shape[2:])):
            tap += dy * (winner == k)  # tap is a view: this adds into dx
        return dx

    # --8<-- [end:backward]
