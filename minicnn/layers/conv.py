"""Conv2D: 2-D convolution (cross-correlation, as in PyTorch and Keras) by im2col and one
matrix product."""

from __future__ import annotations

import numpy as np

from minicnn.initializers import get_initializer
from minicnn.layers.base import Layer
from minicnn.layers.im2col import col2im, im2col, output_size, pair, resolve_padding


class Conv2D(Layer):
    """2-D convolution.

    Args:
        filters: number of output channels F.
        kernel_size: KH x KW (int or pair).
        stride: step between receptive fields (int or pair).
        padding: "valid" (none), "same" (output = ceil(input / stride), TensorFlow's rule: odd
            extra padding at the bottom/right) or an int / pair of zero-padding sizes.
        kernel_initializer: name from minicnn.initializers (Keras' default glorot_uniform).

    Shapes: x (N, C, H, W) -> y (N, F, OH, OW); params["W"] (F, C, KH, KW), params["b"] (F,).
    """

    def __init__(
        self,
        filters: int,
        kernel_size=3,
        stride=1,
        padding="valid",
        kernel_initializer: str = "glorot_uniform",
    ) -> None:
        super().__init__()
        if not isinstance(filters, int) or isinstance(filters, bool) or filters <= 0:
            raise ValueError(f"filters must be a positive int, got {filters!r}")
        if not (padding in ("valid", "same") or isinstance(padding, (int, tuple, list))):
            raise ValueError(f"padding must be 'valid', 'same' or an int, got {padding!r}")
        self.filters = filters
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        if min(self.kernel_size) <= 0 or min(self.stride) <= 0:
            raise ValueError(
                f"kernel_size and stride must be positive, got {kernel_size!r} and {stride!r}"
            )
        self.padding = padding if isinstance(padding, str) else pair(padding, "padding")
        self.kernel_initializer = kernel_initializer
        get_initializer(kernel_initializer)  # fail early on a misspelt name

    def get_config(self) -> dict:
        padding = self.padding if isinstance(self.padding, str) else list(self.padding)
        return {
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": padding,
            "kernel_initializer": self.kernel_initializer,
        }

    def geometry(self, h: int, w: int):
        """((top, bottom), (left, right)) zero padding and the (OH, OW) output size."""
        padding = resolve_padding(self.padding, (h, w), self.kernel_size, self.stride)
        out_h = output_size(h, self.kernel_size[0], self.stride[0], padding[0])
        out_w = output_size(w, self.kernel_size[1], self.stride[1], padding[1])
        if out_h <= 0 or out_w <= 0:
            raise ValueError(
                f"{self.name}: input {h}x{w} is smaller than the kernel {self.kernel_size} "
                f"with padding {self.padding!r}"
            )
        return padding, (out_h, out_w)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self.name} expects samples of shape (C, H, W), got {input_shape}")
        _, (out_h, out_w) = self.geometry(input_shape[1], input_shape[2])
        return (self.filters, out_h, out_w)

    def create_params(self, input_shape, rng, dtype):
        kh, kw = self.kernel_size
        init = get_initializer(self.kernel_initializer)
        return {
            "W": init((self.filters, input_shape[0], kh, kw), rng, dtype),
            "b": np.zeros((self.filters,), dtype=dtype),
        }

    # --8<-- [start:forward]
    def forward(self, x, training: bool = False):
        """x (N, C, H, W) -> (N, F, OH, OW)."""
        self.ensure_built(x)
        n = x.shape[0]
        padding, (oh, ow) = self.geometry(x.shape[2], x.shape[3])
        col = im2col(x, self.kernel_size, self.stride, padding)  # (N*OH*OW, C*KH*KW)
        kernel = self.params["W"].reshape(self.filters, -1)  # (F, C*KH*KW)
        out = col @ kernel.T + self.params["b"]  # (N*OH*OW, F): one row per output pixel
        self.cache = x
        return out.reshape(n, oh, ow, self.filters).transpose(0, 3, 1, 2)

    # --8<-- [end:forward]

    # --8<-- [start:backward]
    def backward(self, dy):
        """dy (N, F, OH, OW) -> dx (N, C, H, W); fills grads["W"] and grads["b"]."""
        x = self.pop_cache()
        padding, _ = self.geometry(x.shape[2], x.shape[3])
        # The rows are built again rather than kept from forward: they are KH*KW times x.
        col = im2col(x, self.kernel_size, self.stride, padding)  # (N*OH*OW, C*KH*KW)
        dy_rows = dy.transpose(0, 2, 3, 1).reshape(-1, self.filters)  # (N*OH*OW, F)
        kernel = self.params["W"].reshape(self.filters, -1)  # (F, C*KH*KW)
        self.grads["W"] = (dy_rows.T @ col).reshape(self.params["W"].shape)
        self.grads["b"] = dy_rows.sum(axis=0)
        return col2im(dy_rows @ kernel, x.shape, self.kernel_size, self.stride, padding)

    # --8<-- [end:backward]
