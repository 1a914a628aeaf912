"""The engine's BatchNorm in training, chunk by chunk: the chunks meet to add up the batch's
statistics, so every chunk normalises with the whole batch's mean and variance, as the plain
layer (minicnn.layers.BatchNorm) does.

Each chunk works on rows of channels: a (n, C, H, W) activation in channels-last memory is a
(n*H*W, C) matrix without any copy, and a per-channel sum is one matrix-vector product with a
vector of ones. The four sums a training step needs (of x and of (x - mean)^2 forward, of dy
and of dy * x_hat backward) are the only points where the chunks wait for each other; every
other step is elementwise, on the chunk's own thread.
"""

from __future__ import annotations

import math
import threading

import numpy as np


def as_rows(x):
    """x as (rows, C) with channels last (a view when x is channels-last memory or 2-D), and
    a function that turns rows of the same shape back into x's shape."""
    if x.ndim == 2:
        return x, lambda rows: rows
    n, c, h, w = x.shape
    rows = x.transpose(0, 2, 3, 1).reshape(n * h * w, c)  # copies unless x is channels-last
    return rows, lambda out: out.reshape(n, h, w, c).transpose(0, 3, 1, 2)


class BatchSums:
    """Where the chunks of one batch meet to add up per-channel sums.

    total(name, chunk, part) waits until every chunk has given its part of the sum `name`,
    then returns the sum, added in chunk order: the same array on every thread, and the same
    at every run. If a chunk fails, abort() releases the others (they raise BrokenBarrierError).
    """

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.barrier = threading.Barrier(chunks)
        self.parts: dict[str, list] = {}
        self.lock = threading.Lock()

    def total(self, name: str, chunk: int, part):
        with self.lock:
            parts = self.parts.setdefault(name, [None] * self.chunks)
        parts[chunk] = part
        self.barrier.wait()
        total = parts[0].copy()
        for other in parts[1:]:
            total += other
        return total

    def abort(self) -> None:
        self.barrier.abort()


def widen(rows, k: int):
    """(M, C) rows as (M/k, k*C): the same values, in rows k times longer. NumPy applies a
    per-channel (C,) vector to every row in an inner loop only C long; tiled k times and
    applied to the wide rows, the same arithmetic runs in loops k times longer."""
    return rows.reshape(rows.shape[0] // k, k * rows.shape[1])


class BatchNormKernel:
    """BatchNorm in training on chunk number `chunk` of a batch of `count` rows per channel
    (samples, times pixels for images). grads holds this chunk's share of the gradients (the
    engine adds the chunks' shares); chunk 0 updates the running statistics.

    The plain layer's formulas, regrouped to pass over the activations fewer times: with
    x_hat = (x - mean) * inv_std kept as (x - mean) and inv_std,
        y = (x - mean) * (gamma * inv_std) + beta
        dgamma = inv_std * sum(dy * (x - mean)),  dbeta = sum(dy)
        dx = dy * s1 + (x - mean) * s2 + s3, per channel
             s1 = gamma * inv_std, s2 = -s1 * inv_std * dgamma / count, s3 = -s1 * dbeta / count
    """

    def __init__(self, layer, sums: BatchSums, chunk: int, count: int) -> None:
        self.layer = layer
        self.sums = sums
        self.chunk = chunk
        self.count = count
        self.cache = None
        self.grads: dict = {}

    def forward(self, x, training: bool = True):
        layer = self.layer
        rows, back = as_rows(x)
        k = math.gcd(rows.shape[0], 64)  # how many rows make one wide row
        count = x.dtype.type(self.count)
        ones = np.ones(rows.shape[0], dtype=x.dtype)
        mean = self.sums.total("x", self.chunk, ones @ rows) / count
        centred = widen(rows, k) - np.tile(mean, k)
        centred_rows = centred.reshape(rows.shape)
        var = self.sums.total("x2", self.chunk, ones @ (centred_rows * centred_rows)) / count
        inv_std = (1.0 / np.sqrt(var + layer.epsilon)).astype(x.dtype)
        if self.chunk == 0:  # the running averages, once per batch (the plain layer's formula)
            m = x.dtype.type(layer.momentum)
            layer.state["running_mean"] = m * layer.state["running_mean"] + (1 - m) * mean
            layer.state["running_var"] = m * layer.state["running_var"] + (1 - m) * var
        out = centred * np.tile(layer.params["gamma"] * inv_std, k)
        out += np.tile(layer.params["beta"], k)
        self.cache = (centred_rows, inv_std, ones, back, k)
        return back(out.reshape(rows.shape))

    def backward(self, dy, input_gradient: bool = True):
        centred, inv_std, ones, back, k = self.cache
        self.cache = None
        dy_rows, _ = as_rows(dy)
        count = centred.dtype.type(self.count)
        self.grads = {"gamma": (ones @ (dy_rows * centred)) * inv_std, "beta": ones @ dy_rows}
        d_gamma = self.sums.total("dgamma", self.chunk, self.grads["gamma"])
        d_beta = self.sums.total("dbeta", self.chunk, self.grads["beta"])
        if not input_gradient:
            return None
        s1 = self.layer.params["gamma"] * inv_std
        dx = widen(np.ascontiguousarray(dy_rows), k) * np.tile(s1, k)
        dx += widen(centred, k) * np.tile(-s1 * inv_std * d_gamma / count, k)
        dx += np.tile(-s1 * d_beta / count, k)
        return back(dx.reshape(dy_rows.shape))
