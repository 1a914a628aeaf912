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
            generator every epoch (see `reseed`) so runs and resumed runs are reproducible.
            With several threads, each thread's share of a training batch draws from a
            generator of its own, seeded from this one (see `replica`): the masks depend on
            the thread count, and repeat exactly for a given one.

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

    def replica(self) -> Dropout:
        """A copy for one thread's share of a batch, with a generator of its own seeded from
        this layer's generator (replicas are made in chunk order, so runs repeat)."""
        twin = super().replica()
        twin.rng = np.random.default_rng(int(self.rng.integers(2**63)))
        return twin

    def forward(self, x, training: bool = False):
        self.ensure_built(x)
        if not training or self.rate == 0.0:
            self.cache = None
            return x
        xp = get_array_module(x)
        keep = random_like(x, self.rng) >= self.rate
        # The mask already carries the 1 / (1 - rate) scale, so backward is one multiply.
        mask = keep.astype(x.dtype)
        mask *= x.dtype.type(1.0 / (1.0 - self.rate))
        self.cache = mask
        return xp.multiply(x, mask)

    def backward(self, dy):
        if self.cache is None:  # forward ran in inference mode or with rate 0
            return dy
        mask, self.cache = self.cache, None
        return dy * mask


def random_like(x, rng: np.random.Generator):
    """Uniform [0, 1) values with x's shape *and memory layout*, as an array of x's module.

    Matching the layout keeps channels-last activations channels-last through the multiply.
    The numbers come from the NumPy generator, so a seed gives the same masks on CuPy as on
    NumPy with one thread (several threads draw per thread, see Dropout).
    """
    xp = get_array_module(x)
    order = np.argsort(x.strides, kind="stable")[::-1]  # axes from slowest to fastest in memory
    values = rng.random(x.size, dtype=np.float32).reshape([x.shape[a] for a in order])
    values = values.transpose(np.argsort(order))
    return values if xp is np else xp.asarray(values)
