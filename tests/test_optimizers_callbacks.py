"""Optimiser steps against hand-computed updates; ReduceLROnPlateau against scripted metrics."""

import math

import numpy as np
import pytest

import minicnn as mc


def test_sgd_plain_momentum_and_nesterov_by_hand():
    g1, g2 = np.array([1.0, -2.0]), np.array([0.5, 0.5])
    p = np.array([1.0, 1.0])
    mc.SGD(learning_rate=0.1).step([("p", p, g1)])
    np.testing.assert_allclose(p, [0.9, 1.2])

    p = np.array([1.0, 1.0])
    opt = mc.SGD(learning_rate=0.1, momentum=0.9)
    opt.step([("p", p, g1)])  # v = -0.1 g1
    opt.step([("p", p, g2)])  # v = 0.9 v - 0.1 g2
    v1 = -0.1 * g1
    v2 = 0.9 * v1 - 0.1 * g2
    np.testing.assert_allclose(p, 1.0 + v1 + v2)

    p = np.array([1.0, 1.0])
    opt = mc.SGD(learning_rate=0.1, momentum=0.9, nesterov=True)
    opt.step([("p", p, g1)])
    opt.step([("p", p, g2)])
    expected = 1.0 + (0.9 * v1 - 0.1 * g1) + (0.9 * v2 - 0.1 * g2)
    np.testing.assert_allclose(p, expected)


def test_adam_two_steps_by_hand():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    grads = [np.array([0.3, -1.0]), np.array([0.1, 2.0])]
    p = np.array([0.5, -0.5])
    opt = mc.Adam(learning_rate=lr, beta_1=b1, beta_2=b2, epsilon=eps)
    expected = p.copy()
    m = v = np.zeros(2)
    for t, g in enumerate(grads, start=1):
        opt.step([("p", p, g)])
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        expected = expected - lr * math.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
    np.testing.assert_allclose(p, expected, rtol=1e-12)


def test_weight_decay_is_decoupled():
    p = np.array([2.0])
    mc.SGD(learning_rate=0.1, weight_decay=0.5).step([("p", p, np.array([0.0]))])
    np.testing.assert_allclose(p, [2.0 - 0.1 * 0.5 * 2.0])


def test_optimizer_state_round_trip_and_lr_attribute():
    p, g = np.array([1.0, 2.0]), np.array([0.1, 0.2])
    opt = mc.Adam(learning_rate=0.01)
    opt.step([("p", p, g)])
    opt.lr = 0.005
    clone = mc.Adam(learning_rate=0.01)
    clone.load_state_dict(opt.state_dict())
    assert clone.lr == 0.005 and clone.iterations == 1
    q = p.copy()
    opt.step([("p", p, g)])
    clone.step([("p", q, g)])
    np.testing.assert_array_equal(p, q)


class FakeModel:
    def __init__(self, lr):
        self.optimizer = mc.SGD(learning_rate=lr)
        self.stop_training = False


def lr_sequence(callback, metrics, lr=1.0):
    model = FakeModel(lr)
    callback.set_model(model)
    out = []
    for epoch, value in enumerate(metrics):
        callback.on_epoch_end(epoch, {"val_accuracy": value, "val_loss": value})
        out.append(model.optimizer.learning_rate)
    return out


def test_reduce_lr_improvement_and_plateau():
    cb = mc.ReduceLROnPlateau(monitor="val_accuracy", factor=0.5, patience=3)
    # improves for 3 epochs, then 3 flat epochs -> reduced at the 3rd flat one; then 3 more.
    metrics = [0.90, 0.92, 0.94, 0.94, 0.94, 0.94, 0.93, 0.94, 0.94]
    assert lr_sequence(cb, metrics) == [1, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.25]


def test_reduce_lr_min_delta_is_absolute():
    cb = mc.ReduceLROnPlateau(monitor="val_accuracy", patience=2, min_delta=0.01)
    # +0.005 per epoch is no improvement; 0.52 beats the best (0.5) by more than 0.01
    assert lr_sequence(cb, [0.5, 0.505, 0.509, 0.505, 0.52, 0.52, 0.52]) == [
        1,
        1,
        0.5,
        0.5,
        0.5,
        0.5,
        0.25,
    ]


def test_reduce_lr_cooldown():
    cb = mc.ReduceLROnPlateau(monitor="val_accuracy", patience=1, cooldown=2)
    # Keras: the reducing epoch sets the counter to 2; the next epoch counts it down to 1 and
    # is skipped; the one after counts it to 0 and waits again, so patience 1 reduces there.
    assert lr_sequence(cb, [0.9, 0.8, 0.8, 0.8, 0.8, 0.8]) == [1, 0.5, 0.5, 0.25, 0.25, 0.125]


def test_reduce_lr_min_lr_and_min_mode():
    cb = mc.ReduceLROnPlateau(monitor="val_loss", patience=1, factor=0.1, min_lr=0.05)
    assert lr_sequence(cb, [1.0, 1.0, 1.0, 1.0]) == [1, 0.1, 0.05, 0.05]
    cb = mc.ReduceLROnPlateau(monitor="val_loss", patience=1, factor=0.5)
    assert lr_sequence(cb, [1.0, 0.9, 0.8, 0.85]) == [1, 1, 1, 0.5]  # loss: lower is better


def test_reduce_lr_state_round_trip_resumes_the_same_sequence():
    metrics = [0.9, 0.91, 0.91, 0.91, 0.905, 0.91, 0.91, 0.91]
    full = lr_sequence(mc.ReduceLROnPlateau(patience=2), metrics)
    first = mc.ReduceLROnPlateau(patience=2)
    lrs = lr_sequence(first, metrics[:4])
    second = mc.ReduceLROnPlateau(patience=2)
    second.set_state(first.get_state())
    lrs += lr_sequence(second, metrics[4:], lr=lrs[-1])
    assert lrs == full


def test_early_stopping():
    cb = mc.EarlyStopping(monitor="val_loss", patience=2)
    model = FakeModel(1.0)
    cb.set_model(model)
    for epoch, value in enumerate([1.0, 0.8, 0.9, 0.85]):
        cb.on_epoch_end(epoch, {"val_loss": value})
        if model.stop_training:
            break
    assert epoch == 3 and cb.stopped_epoch == 3


def test_missing_metric_warns_and_changes_nothing():
    cb = mc.ReduceLROnPlateau(monitor="val_accuracy", patience=0)
    model = FakeModel(1.0)
    cb.set_model(model)
    with pytest.warns(UserWarning, match="val_accuracy"):
        cb.on_epoch_end(0, {"loss": 1.0})
    assert model.optimizer.learning_rate == 1.0


def test_ema_averages_the_weights_and_fit_puts_the_averages_in():
    opt = mc.SGD(learning_rate=0.1, use_ema=True, ema_momentum=0.5)
    w = np.array([1.0, 2.0])
    opt.step([("0.W", w, np.array([1.0, -1.0]))])  # w -> [0.9, 2.1]
    opt.step([("0.W", w, np.array([1.0, -1.0]))])  # w -> [0.8, 2.2]
    # ema starts at the initial weights: 0.5 * (0.5 * [1, 2] + 0.5 * [0.9, 2.1]) + 0.5 * w
    expected = 0.5 * (0.5 * np.array([1.0, 2.0]) + 0.5 * np.array([0.9, 2.1])) + 0.5 * w
    np.testing.assert_allclose(opt.slots["ema"]["0.W"], expected)
    opt.finalize_variable_values([("0.W", w, None)])
    np.testing.assert_allclose(w, expected)

    rng = np.random.default_rng(0)
    x, y = rng.random((32, 1, 4, 4), dtype=np.float32), np.arange(32) % 3
    model = mc.Sequential([mc.Flatten(), mc.Dense(3)], input_shape=(1, 4, 4), seed=0)
    model.compile(mc.Adam(learning_rate=0.05, use_ema=True, ema_momentum=0.9))
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, seed=0)
    for name, param, _ in model.named_params():
        np.testing.assert_array_equal(param, model.optimizer.slots["ema"][name])
    clone = mc.Adam(**model.optimizer.get_config())
    assert clone.use_ema and clone.ema_momentum == 0.9
