"""MaxPool2D: the largest value of each window; the gradient flows to that one input.

Works channels-last inside, like Conv2D, and returns an NCHW view of NHWC memory.
"""

from __future__ import annotations

from minicnn.backend import get_array_module
from minicnn.layers.base import Layer
from minicnn.layers.im2col import output_size, pair
from minicnn.parallel import run_chunks


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

    def _taps(self, x_nhwc, out_hw):
        """The PH*PW strided views x[:, a::SH, b::SW, :] (cropped to OH x OW): tap (a, b) of
        every window at once, without copying."""
        (ph, pw), (sh, sw), (oh, ow) = self.pool_size, self.stride, out_hw
        return [
            x_nhwc[:, a : a + sh * oh : sh, b : b + sw * ow : sw, :]
            for a in range(ph)
            for b in range(pw)
        ]

    def forward(self, x, training: bool = False):
        """x (N, C, H, W) -> (N, C, OH, OW)."""
        self.ensure_built(x)
        xp = get_array_module(x)
        n, c, h, w = x.shape
        out_hw = self._out_hw(h, w)
        x_nhwc = x.transpose(0, 2, 3, 1)
        out = xp.empty((n, *out_hw, c), dtype=x.dtype)
        argmax = xp.zeros((n, *out_hw, c), dtype=xp.uint8) if training else None

        def work(start: int, stop: int) -> None:  # one chunk of the batch, maybe on a thread
            # A running maximum over the taps, elementwise on whole arrays: no per-window loop
            # and no copy of the windows.
            taps = self._taps(x_nhwc[start:stop], out_hw)  # each (n, OH, OW, C)
            best = out[start:stop]
            best[...] = taps[0]
            for tap in taps[1:]:
                xp.maximum(best, tap, out=best)
            if argmax is not None:
                # Which tap won, the first one on ties (as in PyTorch). With ne_k = (tap k !=
                # max), the winner is ne_0 * (1 + ne_1 * (1 + ... * (1 + ne_{T-2}))): the
                # product stops counting at the first tap equal to the max. Evaluated from the
                # inside out, it is T-1 compares and cheap uint8 arithmetic: 5x faster than
                # updating the index with putmask at every tap (pool forward 6.7 -> 1.2 ms).
                winner = argmax[start:stop]  # zeros
                for tap in reversed(taps[:-1]):
                    winner += 1
                    winner *= tap != best

        run_chunks(work, n, xp)
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
        dy_nhwc = dy.transpose(0, 2, 3, 1)
        (ph, pw), (sh, sw), (oh, ow) = self.pool_size, self.stride, argmax.shape[1:3]
        # Windows that tile the input exactly (the usual 2x2, stride 2 on an even size) give
        # each input pixel to one window: every pixel is written once, with no zero fill and
        # no += (forward + backward of the pool after conv2: 9.2 -> 6.8 ms). Otherwise
        # (overlapping windows, or rows and columns no window covers) start from zeros and add.
        tiled = (ph, pw) == (sh, sw) and (h, w) == (ph * oh, pw * ow)
        dx = xp.empty((n, h, w, c), dtype=dy.dtype) if tiled else xp.zeros((n, h, w, c), dy.dtype)

        def work(start: int, stop: int) -> None:
            # Tap k of every window receives dy where tap k was the maximum. Multiplying by
            # the 0/1 mask is about 10x faster than xp.where(mask, dy, 0) (see ReLU.backward).
            winners = argmax[start:stop]
            for k, tap in enumerate(self._taps(dx[start:stop], (oh, ow))):
                if tiled:
                    xp.multiply(dy_nhwc[start:stop], winners == k, out=tap)
                else:
                    tap += dy_nhwc[start:stop] * (winners == k)

        run_chunks(work, n, xp)
        return dx.transpose(0, 3, 1, 2)
