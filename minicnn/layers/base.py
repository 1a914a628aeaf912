"""The Layer base class: the contract every layer follows.

A layer is a plain object: `forward(x, training)` computes the output and keeps in `self.cache`
what `backward` will need; `backward(dy)` fills `self.grads` and returns the input gradient.
"""

from __future__ import annotations

import numpy as np

from minicnn.backend import get_array_module, get_backend


class Layer:
    """Base class. Subclasses override `compute_output_shape`, `forward`, `backward` and,
    when they have parameters, `create_params`.

    Attributes:
        params: trainable arrays by name (the truth: forward reads them at every call).
        grads: gradients of the loss with the same keys, shapes and dtypes as `params`.
        state: non-trainable arrays saved with the model (BatchNorm running statistics).
        cache: what the last forward kept for backward (every forward keeps it, so input
            gradients can be taken in inference mode too).
    """

    def __init__(self) -> None:
        self.params: dict = {}
        self.grads: dict = {}
        self.state: dict = {}
        self.cache = None
        self.built = False
        self.name = type(self).__name__.lower()
        self.input_shape: tuple[int, ...] | None = None  # one sample's shape, without the batch
        self.output_shape: tuple[int, ...] | None = None

    # -- building -------------------------------------------------------------------------
    def build(self, input_shape, rng: np.random.Generator | None = None, dtype=np.float32, xp=None):
        """Create the parameters for samples of shape `input_shape` (no batch axis).

        Weights are drawn with `rng` (a fresh unseeded Generator when None) in `dtype` on the
        host, then moved to the array module `xp` (the chosen backend when None).
        """
        input_shape = tuple(int(d) for d in input_shape)
        self.input_shape = input_shape
        self.output_shape = tuple(self.compute_output_shape(input_shape))
        rng = rng if rng is not None else np.random.default_rng()
        xp = xp if xp is not None else get_backend()
        host_params = self.create_params(input_shape, rng, np.dtype(dtype))
        self.params = {k: xp.asarray(v) for k, v in host_params.items()}
        self.state = {
            k: xp.asarray(v) for k, v in self.create_state(input_shape, np.dtype(dtype)).items()
        }
        self.grads = {k: xp.zeros_like(v) for k, v in self.params.items()}
        self.built = True
        return self

    def ensure_built(self, x) -> None:
        """Build from the first input when `build` was not called: shapes and dtype from `x`."""
        if not self.built:
            self.build(x.shape[1:], dtype=x.dtype, xp=get_array_module(x))

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one output sample for one input sample of `input_shape`."""
        return input_shape

    def create_params(self, input_shape, rng: np.random.Generator, dtype) -> dict:
        """Initial parameter values as NumPy arrays (layers without parameters return {})."""
        return {}

    def create_state(self, input_shape, dtype) -> dict:
        """Initial non-trainable state as NumPy arrays."""
        return {}

    # -- computing ------------------------------------------------------------------------
    def forward(self, x, training: bool = False):
        """The output for the batch `x`; `training` switches dropout and batch statistics on."""
        raise NotImplementedError

    def backward(self, dy):
        """The input gradient for the output gradient `dy`; fills `self.grads`."""
        raise NotImplementedError

    def pop_cache(self):
        """What forward kept for backward, handed over once (the memory is freed after)."""
        if self.cache is None:
            raise RuntimeError(f"{self.name}: backward() called before forward()")
        cache, self.cache = self.cache, None
        return cache

    # -- describing -----------------------------------------------------------------------
    def get_config(self) -> dict:
        """The constructor arguments, JSON-serialisable: `type(self)(**config)` rebuilds it."""
        return {}

    def count_params(self) -> int:
        """The number of trainable values (Keras' name)."""
        return int(sum(int(np.prod(p.shape)) for p in self.params.values()))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
