"""Which engine code runs each layer on a chunk of a batch.

A kernel computes one layer's forward and backward for one chunk, reading the layer's params
and keeping its own cache and grads, so that several chunks can run at once. Layers with no
kernel here (BatchNorm in training, whose statistics need the whole batch, and any layer type
the engine does not know) are run by their own forward and backward on the whole batch.
"""

from __future__ import annotations

import copy

import numpy as np

from minicnn.engine.conv import ConvKernel
from minicnn.engine.pool import MaxPoolKernel
from minicnn.layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU


class ReLUKernel:
    """ReLU on one chunk, keeping the input's memory layout (channels-last stays so)."""

    def __init__(self, layer) -> None:
        self.layer = layer
        self.cache = None
        self.grads: dict = {}

    # --8<-- [start:relu]
    def forward(self, x, training: bool):
        out = np.empty_like(x)  # same memory layout as x
        # The maximum against one sample of zeros, broadcast over the batch, in x's layout:
        # against the scalar 0, NumPy takes a loop without SIMD, about twice as slow.
        np.maximum(x, np.zeros_like(x[:1]), out=out)
        if training:
            self.cache = out  # out > 0 exactly where x > 0
        return out

    def backward(self, dy, input_gradient: bool = True):
        out, self.cache = self.cache, None
        dx = np.empty_like(out)
        np.multiply(dy, out > 0, out=dx)  # much faster than np.where(out > 0, dy, 0)
        return dx

    # --8<-- [end:relu]


class DropoutKernel:
    """Dropout on one chunk, with the chunk's rows of a mask the layer drew for the whole batch
    (Dropout.draw_mask): the masks do not depend on how the batch is split."""

    def __init__(self, layer, mask=None) -> None:
        self.layer = layer
        self.mask = mask  # None: the identity (inference, or rate 0)
        self.cache = None
        self.grads: dict = {}

    def forward(self, x, training: bool):
        if self.mask is None:
            return x
        mask = np.empty_like(x)  # the mask copied into x's memory layout: one like-for-like
        mask[...] = self.mask  # multiply, and channels-last activations stay channels-last
        self.cache = mask
        return x * mask

    def backward(self, dy, input_gradient: bool = True):
        mask, self.cache = self.cache, None
        return dy if mask is None else dy * mask


class PlainKernel:
    """A layer's own forward and backward on one chunk, through a shallow copy that shares the
    params and state but has its own cache and grads."""

    def __init__(self, layer) -> None:
        self.copy = copy.copy(layer)
        self.copy.cache = None
        self.copy.grads = {}
        self.grads = self.copy.grads

    def forward(self, x, training: bool):
        return self.copy.forward(x, training=training)

    def backward(self, dy, input_gradient: bool = True):
        return self.copy.backward(dy)


KERNELS = {
    Conv2D: ConvKernel,
    MaxPool2D: MaxPoolKernel,
    ReLU: ReLUKernel,
    Dropout: DropoutKernel,
    Dense: PlainKernel,
    Flatten: PlainKernel,
    BatchNorm: PlainKernel,
}


def splits(layer, training: bool) -> bool:
    """Whether the layer can run chunk by chunk: each sample's output depends on that sample
    alone. Subclasses are not assumed to behave like their base class."""
    if type(layer) is BatchNorm:
        return not training  # batch statistics in training, fixed averages in inference
    return type(layer) in KERNELS


def make_kernel(layer):
    """The kernel that runs `layer` on a chunk (only for layers where splits() is True)."""
    return KERNELS[type(layer)](layer)
