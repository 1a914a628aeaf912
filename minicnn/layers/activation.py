"""ReLU: max(0, x). Its gradient passes where the input was positive and is zero elsewhere."""

from __future__ import annotations

from minicnn.backend import get_array_module
from minicnn.layers.base import Layer
from minicnn.parallel import run_chunks


class ReLU(Layer):
    """Rectified linear unit, elementwise; keeps the input's memory layout.

    Shapes: any -> same. At exactly 0 the gradient is taken as 0 (as in PyTorch and Keras).
    """

    def forward(self, x, training: bool = False):
        self.ensure_built(x)
        xp = get_array_module(x)
        out = xp.empty_like(x)  # same memory layout as x
        # Zeros for one sample, in x's memory layout, broadcast over the batch. NumPy's maximum
        # against the scalar 0 takes a loop without SIMD: 2.2x slower (1.15 ms against 0.53 ms
        # for conv2's output on 64 images).
        zeros = xp.zeros_like(x[:1])

        def work(start: int, stop: int) -> None:  # elementwise, so chunks can run on threads
            xp.maximum(x[start:stop], zeros, out=out[start:stop])

        run_chunks(work, x.shape[0], xp)
        if training:
            self.cache = out  # out > 0 exactly where x > 0
        return out

    def backward(self, dy):
        if self.cache is None:
            raise RuntimeError(f"{self.name}: backward() called without forward(training=True)")
        out, self.cache = self.cache, None
        xp = get_array_module(dy)
        dx = xp.empty_like(out)

        def work(start: int, stop: int) -> None:
            # dy times the 0/1 mask: 10x faster than xp.where(mask, dy, 0), which broadcasts
            # the scalar 0 through a slow general loop (70 us vs 900 us per 200k values).
            xp.multiply(dy[start:stop], out[start:stop] > 0, out=dx[start:stop])

        run_chunks(work, dy.shape[0], xp)
        return dx
