"""The engine's MaxPool2D: channels-last, a running maximum over the window's taps, and the
winning tap found with a few compares. Computes what minicnn.layers.MaxPool2D computes."""

from __future__ import annotations

import numpy as np


class MaxPoolKernel:
    """MaxPool2D on one chunk of a batch; keeps its own cache (see ConvKernel)."""

    def __init__(self, layer) -> None:
        self.layer = layer
        self.cache = None
        self.grads: dict = {}

    def taps(self, x_nhwc, out_hw):
        """The PH*PW strided views x[:, a::SH, b::SW, :] (cropped to OH x OW)."""
        (ph, pw), (sh, sw), (oh, ow) = self.layer.pool_size, self.layer.stride, out_hw
        return [
            x_nhwc[:, a : a + sh * oh : sh, b : b + sw * ow : sw, :]
            for a in range(ph)
            for b in range(pw)
        ]

    def forward(self, x, training: bool):
        """x (N, C, H, W) -> (N, C, OH, OW), an NCHW view of channels-last memory."""
        n, c, h, w = x.shape
        out_hw = self.layer.output_hw(h, w)
        taps = self.taps(x.transpose(0, 2, 3, 1), out_hw)  # each (N, OH, OW, C)
        best = np.empty((n, *out_hw, c), dtype=x.dtype)
        # A running maximum over the taps, elementwise on whole arrays: no copy of the windows.
        # --8<-- [start:max_and_winner]
        best[...] = taps[0]
        for tap in taps[1:]:
            np.maximum(best, tap, out=best)
        if training:
            # Which tap won, the first one on ties (as argmax does). With ne_k = (tap k != max),
            # the winner is ne_0 * (1 + ne_1 * (1 + ... * (1 + ne_{T-2}))): the product stops
            # counting at the first tap equal to the max. Evaluated from the inside out, it is
            # T-1 compares and cheap uint8 arithmetic, where updating an index at every tap
            # (np.putmask) is several times slower.
            winner = np.zeros((n, *out_hw, c), dtype=np.uint8)
            for tap in reversed(taps[:-1]):
                winner += 1
                winner *= tap != best
            self.cache = (winner, x.shape)
        # --8<-- [end:max_and_winner]
        return best.transpose(0, 3, 1, 2)

    def backward(self, dy, input_gradient: bool = True):
        """dy (N, C, OH, OW) -> dx (N, C, H, W): each dy goes to its window's maximum."""
        winner, (n, c, h, w) = self.cache
        self.cache = None
        dy_nhwc = dy.transpose(0, 2, 3, 1)
        (ph, pw), (sh, sw), (oh, ow) = self.layer.pool_size, self.layer.stride, winner.shape[1:3]
        # Windows that tile the input exactly (the usual 2x2, stride 2 on an even size) give
        # each input pixel to one window: every pixel is written once, with no zero fill and
        # no +=. Otherwise (overlapping windows, or rows and columns no window covers) start
        # from zeros and add.
        tiled = (ph, pw) == (sh, sw) and (h, w) == (ph * oh, pw * ow)
        dx = np.empty((n, h, w, c), dtype=dy.dtype) if tiled else np.zeros((n, h, w, c), dy.dtype)
        for k, tap in enumerate(self.taps(dx, (oh, ow))):
            # Multiplying by the 0/1 mask is much faster than np.where(mask, dy, 0).
            if tiled:
                np.multiply(dy_nhwc, winner == k, out=tap)
            else:
                tap += dy_nhwc * (winner == k)
        return dx.transpose(0, 3, 1, 2)
