"""Optimisers: SGD (with momentum / Nesterov) and Adam (with bias correction), Keras semantics.

An optimiser updates parameters in place, so the arrays in each layer's `params` dict stay the
same objects. Its per-parameter state is keyed by stable names ("3.W": layer 3, parameter W),
which lets a checkpoint save and restore it.
"""

from __future__ import annotations

import numbers

import numpy as np

from minicnn.backend import get_array_module, to_numpy


def _rate(learning_rate: float | None, lr: float | None, default: float) -> float:
    """The learning rate from Keras' `learning_rate` or its short alias `lr` (else `default`)."""
    if lr is not None:
        if learning_rate is not None and learning_rate != lr:
            raise ValueError(f"give learning_rate or lr, not both ({learning_rate!r} and {lr!r})")
        learning_rate = lr
    if learning_rate is None:
        learning_rate = default
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real):
        raise TypeError(f"learning_rate must be a number, got {learning_rate!r}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
    return float(learning_rate)


class Optimizer:
    """Base class: `step(named_params)` with (name, param, grad) triples; `learning_rate` (alias
    `lr`) may be changed between steps, as ReduceLROnPlateau does.

    Options every optimiser has, with Keras' names:
        weight_decay: decoupled weight decay (AdamW's): each step shrinks every weight by
            learning_rate * weight_decay of itself.
        use_ema, ema_momentum: also keep an exponential moving average of every weight,
            ema = momentum * ema + (1 - momentum) * weight after each step, starting from the
            initial weights. `Sequential.fit` puts the averages into the model when training
            ends (finalize_variable_values), as Keras does; during training the model keeps
            its own weights. An average over the last few thousand steps sits in a flatter
            part of the loss surface than the last step, which often reads new data better.
    """

    def __init__(
        self,
        learning_rate: float,
        weight_decay: float = 0.0,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
    ) -> None:
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        if not 0.0 <= ema_momentum < 1.0:
            raise ValueError(f"ema_momentum must be in [0, 1), got {ema_momentum!r}")
        self.learning_rate = float(learning_rate)
        self.weight_decay = float(weight_decay)
        self.use_ema = bool(use_ema)
        self.ema_momentum = float(ema_momentum)
        self.iterations = 0
        self.slots: dict[str, dict] = {}  # slot name -> {param name -> array}

    @property
    def lr(self) -> float:
        """Alias of `learning_rate`."""
        return self.learning_rate

    @lr.setter
    def lr(self, value: float) -> None:
        self.learning_rate = float(value)

    def get_config(self) -> dict:
        """The constructor arguments (the subclass adds its own)."""
        return {
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
        }

    def _slot(self, slot: str, name: str, param, initial=None):
        """The optimiser's array `slot` for parameter `name`: zeros, or a copy of `initial`."""
        table = self.slots.setdefault(slot, {})
        if name not in table:
            xp = get_array_module(param)
            table[name] = xp.zeros_like(param) if initial is None else initial.copy()
        return table[name]

    def step(self, named_params) -> None:
        """Apply one update to every (name, param, grad)."""
        self.iterations += 1
        for name, param, grad in named_params:
            if self.use_ema:
                self._slot("ema", name, param, initial=param)  # the average starts at the weight
            if self.weight_decay:
                # Decoupled weight decay, as Keras 3 and AdamW: shrink the weight directly.
                param -= param.dtype.type(self.learning_rate * self.weight_decay) * param
            self.update(name, param, grad)
            if self.use_ema:
                average = self.slots["ema"][name]
                average *= param.dtype.type(self.ema_momentum)
                average += param.dtype.type(1.0 - self.ema_momentum) * param

    def finalize_variable_values(self, named_params) -> None:
        """With use_ema, copy the moving averages into the weights (fit calls this at the end)."""
        if not self.use_ema or "ema" not in self.slots:
            return
        for name, param, _ in named_params:
            param[...] = self.slots["ema"][name]

    def update(self, name: str, param, grad) -> None:
        raise NotImplementedError

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Every array of the optimiser's state as NumPy, by "slot/param name"."""
        state = {
            "iterations": np.array(self.iterations, dtype=np.int64),
            "learning_rate": np.array(self.learning_rate),
        }
        for slot, table in self.slots.items():
            for name, value in table.items():
                state[f"{slot}/{name}"] = to_numpy(value).copy()
        return state

    def load_state_dict(self, state: dict, xp=np) -> None:
        """Restore what state_dict() returned; arrays are moved onto `xp`."""
        self.iterations = int(state["iterations"])
        # files written before the Keras name was adopted call it "lr"
        self.learning_rate = float(state["learning_rate" if "learning_rate" in state else "lr"])
        self.slots = {}
        for key, value in state.items():
            if "/" in key:  # "m/3.W": slot m of parameter 3.W
                slot, name = key.split("/", 1)
                self.slots.setdefault(slot, {})[name] = xp.array(value)  # a copy


class SGD(Optimizer):
    """Stochastic gradient descent.

    v = momentum * v - lr * g;  p += v            (momentum; plain SGD when momentum = 0)
    p += momentum * v - lr * g                    (Nesterov, Keras' formulation)
    """

    def __init__(
        self,
        learning_rate: float | None = None,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        lr: float | None = None,
    ) -> None:
        super().__init__(
            _rate(learning_rate, lr, default=0.01), weight_decay, use_ema, ema_momentum
        )
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        if nesterov and momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def get_config(self) -> dict:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}

    def update(self, name, param, grad) -> None:
        lr = param.dtype.type(self.learning_rate)
        if self.momentum == 0.0:
            param -= lr * grad
            return
        m = param.dtype.type(self.momentum)
        velocity = self._slot("velocity", name, param)
        velocity *= m
        velocity -= lr * grad
        if self.nesterov:
            param += m * velocity - lr * grad
        else:
            param += velocity


class Adam(Optimizer):
    """Adam (Kingma & Ba), in the form Keras uses:

    m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g^2
    p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + epsilon)

    (epsilon is added outside the bias correction, as in Keras; PyTorch adds it inside.)
    """

    def __init__(
        self,
        learning_rate: float | None = None,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        weight_decay: float = 0.0,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        lr: float | None = None,
    ) -> None:
        super().__init__(
            _rate(learning_rate, lr, default=1e-3), weight_decay, use_ema, ema_momentum
        )
        for label, beta in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{label} must be in [0, 1), got {beta!r}")
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }

    def update(self, name, param, grad) -> None:
        xp = get_array_module(param)
        t = self.iterations
        dtype = param.dtype.type
        b1, b2 = dtype(self.beta_1), dtype(self.beta_2)
        step = dtype(self.learning_rate * np.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t))
        m = self._slot("m", name, param)
        v = self._slot("v", name, param)
        m *= b1
        m += (1 - b1) * grad
        v *= b2
        v += (1 - b2) * (grad * grad)
        param -= step * m / (xp.sqrt(v) + dtype(self.epsilon))


OPTIMIZER_TYPES = {"SGD": SGD, "Adam": Adam}
# compile("adam"): Keras' names, each with its default settings.
OPTIMIZER_NAMES = {"adam": Adam, "sgd": SGD}
