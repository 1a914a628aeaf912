"""The engine's BatchNorm in training: the whole batch at once (its statistics need every
sample), on rows of channels. Computes what minicnn.layers.BatchNorm computes.

A (N, C, H, W) activation in channels-last memory is a (N*H*W, C) matrix of rows without any
copy, and a per-channel sum over the batch is then one matrix-vector product with a vector of
ones, which BLAS does at memory speed; the plain layer's mean over axes (0, 2, 3) walks the
array in an order that vectorises poorly. Every other step is one elementwise pass.
"""

from __future__ import annotations

import numpy as np


def as_rows(x):
    """x as (rows, C) with channels last (a view when x is channels-last memory or 2-D), and
    a function that turns rows of the same shape back into x's shape."""
    if x.ndim == 2:
        return x, lambda rows: rows
    n, c, h, w = x.shape
    rows = x.transpose(0, 2, 3, 1).reshape(n * h * w, c)  # copies unless x is channels-last
    return rows, lambda out: out.reshape(n, h, w, c).transpose(0, 3, 1, 2)


class BatchNormKernel:
    """BatchNorm in training on the whole batch; writes the layer's grads and running
    statistics as the plain layer does."""

    def __init__(self, layer) -> None:
        self.layer = layer
        self.cache = None

    def forward(self, x, training: bool = True):
        layer = self.layer
        rows, back = as_rows(x)
        count, dtype = rows.shape[0], x.dtype.type
        ones = np.ones(count, dtype=x.dtype)
        mean = (ones @ rows) / dtype(count)
        centred = rows - mean
        var = (ones @ (centred * centred)) / dtype(count)
        inv_std = (1.0 / np.sqrt(var + layer.epsilon)).astype(x.dtype)
        m = dtype(layer.momentum)
        layer.state["running_mean"] = m * layer.state["running_mean"] + (1 - m) * mean
        layer.state["running_var"] = m * layer.state["running_var"] + (1 - m) * var
        x_hat = centred
        x_hat *= inv_std
        self.cache = (x_hat, inv_std, ones, back)
        return back(x_hat * layer.params["gamma"] + layer.params["beta"])

    def backward(self, dy, input_gradient: bool = True):
        x_hat, inv_std, ones, back = self.cache
        self.cache = None
        dy_rows, _ = as_rows(dy)
        count = x_hat.dtype.type(x_hat.shape[0])
        d_gamma = ones @ (dy_rows * x_hat)
        d_beta = ones @ dy_rows
        self.layer.grads["gamma"], self.layer.grads["beta"] = d_gamma, d_beta
        if not input_gradient:
            return None
        dx = dy_rows - d_beta / count  # dy - mean(dy)
        dx -= x_hat * (d_gamma / count)  # - x_hat * mean(dy * x_hat)
        dx *= self.layer.params["gamma"] * inv_std
        return back(dx)
