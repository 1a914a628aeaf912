"""Which engine code runs each layer on a chunk of a batch.

A kernel computes one layer's forward and backward for one chunk, reading the layer's params
and keeping its own cache and grads, so that several chunks can run at once. BatchNorm in
training needs the whole batch's statistics: its chunks meet to add them up (batchnorm.py).
Any layer type the engine does not know runs its own forward and backward on the whole batch.
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
    """Dropout on one chunk. `uniform()` gives the chunk's share of the uniform values the layer
    would draw for the whole batch (see batch_uniforms), so the masks are the plain layer's
    whatever the split; None means the identity (inference, or rate 0)."""

    def __init__(self, layer, uniform=None) -> None:
        self.layer = layer
        self.uniform = uniform
        self.cache = None
        self.grads: dict = {}

    def forward(self, x, training: bool):
        if self.uniform is None:
            return x
        # Dropout.draw_mask's formula, written straight into x's memory layout (channels-last
        # stays so): 1 where the value is at least the rate, times 1 / (1 - rate).
        mask = np.empty_like(x)
        np.greater_equal(self.uniform(), self.layer.rate, out=mask)
        mask *= x.dtype.type(1.0 / (1.0 - self.layer.rate))
        self.cache = mask
        return x * mask

    def backward(self, dy, input_gradient: bool = True):
        mask, self.cache = self.cache, None
        return dy if mask is None else dy * mask


def batch_uniforms(rng: np.random.Generator, n: int, sample_shape, chunks) -> dict:
    """For each chunk (by start), a function drawing its rows of rng.random((n, *sample_shape),
    float32): the very numbers one call would give, drawn on the chunk's own thread.

    NumPy's default bit generator, PCG64, can jump ahead: a float32 takes half of one 64-bit
    output, so the values of samples [start, stop) begin start * size / 2 outputs into the
    stream. Each chunk jumps a copy of the generator there, and the layer's generator jumps
    past the whole batch, as if it had drawn it. Where that does not hold (another bit
    generator, an odd sample size, half an output left over), the batch is drawn at once.
    """
    size = int(np.prod(sample_shape))
    bits = rng.bit_generator
    if type(bits) is not np.random.PCG64 or size % 2 or bits.state["has_uint32"]:
        values = rng.random((n, *sample_shape), dtype=np.float32)
        return {start: (lambda a=start, b=stop: values[a:b]) for start, stop in chunks}
    state = bits.state
    bits.advance(n * size // 2)

    def draw(start: int, stop: int):
        chunk_bits = np.random.PCG64()
        chunk_bits.state = state
        chunk_bits.advance(start * size // 2)
        return np.random.Generator(chunk_bits).random((stop - start, *sample_shape), np.float32)

    return {start: (lambda a=start, b=stop: draw(a, b)) for start, stop in chunks}


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


class LayerAsKernel:
    """A layer that needs the whole batch, run as it is: its own forward and backward, its
    own cache and grads."""

    def __init__(self, layer) -> None:
        self.layer = layer

    def forward(self, x, training: bool):
        return self.layer.forward(x, training=training)

    def backward(self, dy, input_gradient: bool = True):
        return self.layer.backward(dy)


KERNELS = {
    Conv2D: ConvKernel,
    MaxPool2D: MaxPoolKernel,
    ReLU: ReLUKernel,
    Dropout: DropoutKernel,
    Dense: PlainKernel,
    Flatten: PlainKernel,
    BatchNorm: PlainKernel,
}


def splits(layer) -> bool:
    """Whether the engine runs the layer chunk by chunk (a layer type it knows: subclasses are
    not assumed to behave like their base class). Any other layer runs whole (LayerAsKernel)."""
    return type(layer) in KERNELS


def make_kernel(layer):
    """The kernel that runs `layer` on a chunk (only for layers where splits() is True)."""
    return KERNELS[type(layer)](layer)
