"""Numerical gradient checking: compare a layer's backward() with central differences in float64.

relative error of arrays a (analytic) and n (numeric) = max|a - n| / max(1e-8, max(|a| + |n|)).
Checks run in float64 with dropout off and fixed seeds; kinks (ReLU at 0, ties in max pooling)
make numerical gradients meaningless, so test inputs should avoid them.
"""

from __future__ import annotations

import numpy as np

from minicnn.backend import get_array_module


def relative_error(analytic, numeric) -> float:
    """max|a - n| / max(1e-8, max(|a| + |n|))."""
    xp = get_array_module(analytic)
    diff = float(xp.abs(analytic - numeric).max())
    scale = float((xp.abs(analytic) + xp.abs(numeric)).max())
    return diff / max(1e-8, scale)


def numerical_gradient(f, x, eps: float = 1e-5):
    """d f / d x by central differences, f(x) a scalar; `x` (float64) is perturbed in place and
    restored. Shape of the result = shape of x."""
    xp = get_array_module(x)
    if x.dtype != np.float64:
        raise TypeError(f"numerical gradients need float64 arrays, got {x.dtype}")
    grad = xp.zeros_like(x)
    flat_x, flat_grad = x.reshape(-1), grad.reshape(-1)
    if not x.flags.c_contiguous:
        raise ValueError("x must be C-contiguous so it can be perturbed in place")
    for i in range(flat_x.size):
        old = float(flat_x[i])
        flat_x[i] = old + eps
        plus = f()
        flat_x[i] = old - eps
        minus = f()
        flat_x[i] = old
        flat_grad[i] = (plus - minus) / (2 * eps)
    return grad


def gradient_errors(
    layer, x, dy=None, eps: float = 1e-5, seed: int = 0, training: bool = True
) -> dict[str, float]:
    """Relative error of the input gradient ("x") and of every parameter's gradient.

    The layer is checked through the scalar L = sum(forward(x, training) * dy) with a fixed
    random `dy`, so dL/dy = dy and backward(dy) must give dL/dx. `x` must be float64; the layer
    is built (or cast) to float64.
    """
    xp = get_array_module(x)
    x = xp.ascontiguousarray(x, dtype=np.float64)
    layer.ensure_built(x)
    for table in (layer.params, layer.state):
        for key in table:
            table[key] = xp.ascontiguousarray(table[key], dtype=np.float64)
    # Keep the layer's state (e.g. BatchNorm running statistics) fixed across the many calls.
    saved_state = {k: v.copy() for k, v in layer.state.items()}
    if hasattr(layer, "reseed"):
        layer.reseed(np.random.default_rng(seed))
    y = layer.forward(x, training=training)
    if dy is None:
        dy = xp.asarray(np.random.default_rng(seed).standard_normal(y.shape))
    dx = layer.backward(dy)
    analytic = {"x": dx, **{k: v.copy() for k, v in layer.grads.items()}}

    def loss() -> float:
        layer.state.update({k: v.copy() for k, v in saved_state.items()})
        if hasattr(layer, "reseed"):  # Dropout: the same mask at every call
            layer.reseed(np.random.default_rng(seed))
        return float((layer.forward(x, training=training) * dy).sum())

    errors = {"x": relative_error(analytic["x"], numerical_gradient(loss, x, eps))}
    for key, param in layer.params.items():
        errors[key] = relative_error(analytic[key], numerical_gradient(loss, param, eps))
    layer.cache = None
    layer.state.update(saved_state)
    return errors


def check_layer(
    layer, x, dy=None, eps: float = 1e-5, seed: int = 0, training: bool = True
) -> float:
    """The worst relative error over the input gradient and every parameter gradient."""
    errors = gradient_errors(layer, x, dy=dy, eps=eps, seed=seed, training=training)
    return max(errors.values())


def check_model(model, x, labels, eps: float = 1e-5) -> float:
    """Worst relative error of every parameter gradient of a whole Sequential model (float64)
    through its loss (mean softmax cross-entropy unless compiled otherwise), through whatever
    runs the model: its plain layers, or its engine."""
    model._ensure_compiled()
    xp = get_array_module(x)
    x = xp.asarray(x, dtype=np.float64)

    dropouts = [layer for layer in model.layers if hasattr(layer, "reseed")]

    def loss() -> float:
        for layer in dropouts:  # the same dropout masks at every call: a fixed linear map
            layer.reseed(np.random.default_rng(0))
        return model.loss.forward(model.forward(x, training=True), labels)

    loss()
    model.backward(model.loss.backward(), input_gradient=False)
    worst = 0.0
    for _, param, grad in list(model.named_params()):
        analytic = grad.copy()
        worst = max(worst, relative_error(analytic, numerical_gradient(loss, param, eps)))
    for layer in model.layers:
        layer.cache = None
    return worst
