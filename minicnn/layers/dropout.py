"""Dropout: during training zero each value with probability `rate` and scale the rest by
1 / (1 - rate) ("inverted" dropout), so inference needs no rescaling and is the identity."""

from __future__ import annotations

import numpy as np

from minicnn.backend import get_array_module
from minicnn.layers.base import Layer


class Dropout(Layer):
    """Inverted dropout, seeded.

    Args:
        rate: fraction of values dropped, 0 <= rate < 1.
        seed: seed of the layer's own random generator. `Sequential.fit(seed=...)` replaces the
            generator every epoch (see `reseed`), so runs and resumed runs are reproducible.

    The masks are drawn on the host with NumPy, in the order of the values of an (N, ...)
    batch, so a seed gives the same masks on every backend and with every engine.

    Shapes: any -> same. Off (identity) when training=False.
    """

    def __init__(self, rate: float, seed: int | None = None) -> None:
        super().__init__()
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def get_config(self) -> dict:
        return {"rate": self.rate, "seed": self.seed}

    def reseed(self, rng: np.random.Generator) -> None:
        """Use `rng` for the masks from now on."""
        self.rng = rng

    # --8<-- [start:dropout]
    def draw_mask(self, shape, dtype, xp=np):
        """A batch's mask: 0 where a value is dropped, 1 / (1 - rate) where it is kept, so
        that backward is one multiplication by the same mask."""
        keep = self.rng.random(shape, dtype=np.float32) >= self.rate
        return xp.asarray(keep * np.dtype(dtype).type(1.0 / (1.0 - self.rate)))

    def forward(self, x, training: bool = False):
        self.ensure_built(x)
        if not training or self.rate == 0.0:
            self.cache = None  # the identity: backward passes dy through
            return x
        self.cache = self.draw_mask(x.shape, x.dtype, get_array_module(x))
        return x * self.cache

    def backward(self, dy):
        mask, self.cache = self.cache, None
        return dy if mask is None else dy * mask

    # --8<-- [end:dropout]
