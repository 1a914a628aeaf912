"""The CPU engine computes what the plain layers compute: layer by layer over the grid of the
gradient checks, whole models in float64 through the gradient checker, and training runs with
dropout that end with the same weights on the plain layers and on the engine with 1 or 2
threads. Importing minicnn changes nothing in the process; choosing the engine does, visibly.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import minicnn as mc
from minicnn.gradcheck import check_model
from minicnn.layers import Layer

THREADS = [1, 2]


@pytest.fixture
def engine_for():
    """engine_for(threads) -> a CPUEngine; every engine a test makes is stopped after it."""
    made = []

    def make(threads: int) -> mc.CPUEngine:
        engine = mc.CPUEngine(threads=threads, keep_freed_memory=False)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        while engine._users:
            engine.stop()


def run_plain(layer, x, dy, training, seed=5):
    if isinstance(layer, mc.Dropout):
        layer.reseed(np.random.default_rng(seed))
    y = layer.forward(x, training=training)
    dx = layer.backward(dy) if dy is not None else None
    return y, dx, {k: v.copy() for k, v in layer.grads.items()}


def run_engine(engine, layer, x, dy, training, seed=5):
    if isinstance(layer, mc.Dropout):
        layer.reseed(np.random.default_rng(seed))
    layers = [layer]
    y = engine.forward(layers, x, training=training)
    dx = engine.backward(layers, dy) if dy is not None else None
    return y, dx, {k: v.copy() for k, v in layer.grads.items()}


# Each case: a layer maker and the input shape; batches of 1 and 37 (2 chunks of 18 and 19).
LAYER_CASES = {
    "conv-same-s1": (lambda: mc.Conv2D(5, 3, padding="same"), (3, 9, 8)),
    "conv-valid-s1": (lambda: mc.Conv2D(4, 3, padding="valid"), (2, 7, 9)),
    "conv-int-s1": (lambda: mc.Conv2D(4, 3, padding=1), (3, 7, 7)),
    "conv-pair-s1": (lambda: mc.Conv2D(3, (3, 2), padding=(2, 0)), (2, 6, 7)),
    "conv-same-s2": (lambda: mc.Conv2D(4, 3, stride=2, padding="same"), (3, 9, 8)),
    "conv-valid-s2": (lambda: mc.Conv2D(4, 3, stride=2), (2, 9, 9)),
    "conv-int-s2": (lambda: mc.Conv2D(6, 3, stride=2, padding=1), (4, 7, 6)),
    "conv-1x1": (lambda: mc.Conv2D(3, 1), (5, 4, 4)),
    "conv-one-channel-5x5": (lambda: mc.Conv2D(4, 5, padding="same"), (1, 9, 9)),
    "pool-2": (lambda: mc.MaxPool2D(2), (3, 8, 6)),
    "pool-2-odd": (lambda: mc.MaxPool2D(2), (3, 7, 9)),
    "pool-3-s2-overlap": (lambda: mc.MaxPool2D(3, stride=2), (2, 9, 8)),
    "pool-2x3-s1": (lambda: mc.MaxPool2D((2, 3), stride=1), (2, 5, 6)),
    "relu": (lambda: mc.ReLU(), (3, 5, 5)),
    "relu-flat": (lambda: mc.ReLU(), (7,)),
    "dropout": (lambda: mc.Dropout(0.4), (3, 5, 4)),
    "dropout-flat": (lambda: mc.Dropout(0.5), (11,)),
    "dense": (lambda: mc.Dense(7), (13,)),
    "flatten": (lambda: mc.Flatten(), (3, 4, 5)),
    "batchnorm-4d": (lambda: mc.BatchNorm(), (3, 4, 5)),
    "batchnorm-2d": (lambda: mc.BatchNorm(), (6,)),
}


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("batch", [1, 37])
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("case", list(LAYER_CASES))
def test_engine_layer_equals_plain_layer(case, training, batch, threads, engine_for):
    make_layer, shape = LAYER_CASES[case]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, *shape)).astype(np.float32)
    layer = make_layer().build(shape, rng=np.random.default_rng(1))
    if "batchnorm" in case:  # running statistics that are not the identity
        layer.state["running_mean"] = rng.standard_normal(shape[0]).astype(np.float32)
        layer.state["running_var"] = rng.random(shape[0]).astype(np.float32) + 0.5
    state = {k: v.copy() for k, v in layer.state.items()}
    y_plain = layer.forward(x, training=training)
    dy = rng.standard_normal(y_plain.shape).astype(np.float32)
    layer.state.update({k: v.copy() for k, v in state.items()})
    plain = run_plain(layer, x, dy if training else None, training)
    layer.state.update({k: v.copy() for k, v in state.items()})
    fast = run_engine(engine_for(threads), layer, x, dy if training else None, training)

    np.testing.assert_allclose(fast[0], plain[0], rtol=1e-5, atol=1e-5, err_msg="output")
    if training:
        np.testing.assert_allclose(fast[1], plain[1], rtol=1e-5, atol=1e-5, err_msg="dx")
        assert fast[2].keys() == plain[2].keys()
        for key in plain[2]:
            np.testing.assert_allclose(fast[2][key], plain[2][key], rtol=1e-4, atol=1e-4)


def test_the_first_layer_can_skip_its_input_gradient(engine_for):
    layer = mc.Conv2D(3, 3, padding="same").build((1, 6, 6), rng=np.random.default_rng(0))
    x = np.random.default_rng(1).random((20, 1, 6, 6), dtype=np.float32)
    engine = engine_for(2)
    layers = [layer]
    y = engine.forward(layers, x, training=True)
    assert engine.backward(layers, np.ones_like(y), input_gradient=False) is None
    expected = run_plain(layer, x, np.ones_like(y), True)[2]
    np.testing.assert_allclose(layer.grads["W"], expected["W"], rtol=1e-5)


def small_model(seed=0, dtype="float32", batchnorm=False):
    layers = [
        mc.Conv2D(4, 3, padding="same"),
        mc.ReLU(),
        mc.MaxPool2D(2),
        mc.Dropout(0.25),
        mc.Conv2D(6, 3, stride=2, padding=1),
        mc.ReLU(),
        *([mc.BatchNorm()] if batchnorm else []),
        mc.Flatten(),
        mc.Dropout(0.3),
        mc.Dense(10),
    ]
    return mc.Sequential(layers, input_shape=(2, 10, 10), seed=seed, dtype=dtype)


@pytest.mark.parametrize("batchnorm", [False, True], ids=["plain-stack", "with-batchnorm"])
@pytest.mark.parametrize("threads", THREADS)
def test_float64_gradient_check_through_the_engine(threads, batchnorm, engine_for):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((36, 2, 10, 10))
    labels = np.arange(36) % 10
    model = small_model(dtype="float64", batchnorm=batchnorm).use_engine(engine_for(threads))
    assert check_model(model, x, labels) <= 1e-6


def train_a_few_steps(engine, batchnorm=False):
    rng = np.random.default_rng(3)
    x = rng.random((96, 2, 10, 10), dtype=np.float32)
    y = rng.integers(0, 10, 96)
    model = small_model(seed=1, batchnorm=batchnorm).compile(mc.Adam(learning_rate=3e-3))
    model.use_engine(engine)
    augment = lambda batch, rng: batch + rng.normal(0, 0.05, batch.shape).astype(batch.dtype)  # noqa: E731
    model.fit(x, y, batch_size=48, epochs=2, seed=11, augment=augment, verbose=0)
    model.use_engine(None)
    return model.get_weights()


@pytest.mark.parametrize("batchnorm", [False, True], ids=["plain-stack", "with-batchnorm"])
def test_dropout_training_ends_with_the_same_weights_on_every_engine(batchnorm, engine_for):
    plain = train_a_few_steps(None, batchnorm)
    for threads in THREADS:
        fast = train_a_few_steps(engine_for(threads), batchnorm)
        for key in plain:
            np.testing.assert_allclose(
                fast[key], plain[key], rtol=1e-4, atol=1e-5, err_msg=f"{threads} threads: {key}"
            )


@pytest.mark.parametrize("threads", [None, *THREADS])
def test_the_same_run_twice_is_bit_identical(threads, engine_for):
    make = (lambda: None) if threads is None else (lambda: engine_for(threads))
    first, second = train_a_few_steps(make()), train_a_few_steps(make())
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)


class Scale(Layer):
    """A layer type the engine does not know: it must run it, whole-batch, as it is."""

    def forward(self, x, training=False):
        self.ensure_built(x)
        self.cache = True
        return x * 2

    def backward(self, dy):
        self.pop_cache()
        return dy * 2


def test_unknown_layers_run_as_they_are(engine_for):
    x = np.random.default_rng(0).random((40, 2, 10, 10), dtype=np.float32)
    y = np.arange(40) % 10

    def losses(engine):
        model = mc.Sequential(
            [mc.Conv2D(3, 3), Scale(), mc.ReLU(), mc.Flatten(), mc.Dense(10)],
            input_shape=(2, 10, 10),
            seed=0,
        ).compile()
        model.use_engine(engine)
        return model.fit(x, y, batch_size=20, epochs=2, seed=0, verbose=0).history["loss"]

    np.testing.assert_allclose(losses(engine_for(2)), losses(None), rtol=1e-5)


def blas_threads():
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_choosing_the_engine_is_visible_and_undone(engine_for):
    before = blas_threads()
    engine = mc.CPUEngine(threads=2)  # keep_freed_memory on: applied when chosen
    model = small_model()
    assert "BLAS left alone" in engine.describe() and "allocator left alone" in engine.describe()
    model.use_engine(engine)
    try:
        assert model.engine is engine and "runs on: CPUEngine(threads=2" in model.summary(None)
        assert all(n == 1 for n in blas_threads())
        assert "BLAS on 1 thread" in engine.describe()
        if sys.platform.startswith("linux"):
            assert "freed memory kept" in engine.describe()
    finally:
        model.use_engine(None)
    assert blas_threads() == before and model.engine is None
    assert "runs on: plain layers" in model.summary(None)


def test_engines_left_in_any_order_give_blas_its_threads_back(engine_for):
    """BLAS's thread count is the process's: it stays at 1 while any model uses an engine, and
    comes back when the last one leaves, whichever model leaves first."""
    before = blas_threads()
    first, second = small_model(), small_model()
    first.use_engine(engine_for(1))
    second.use_engine(engine_for(1))
    first.use_engine(None)
    assert all(n == 1 for n in blas_threads())  # the second model still uses its engine
    assert "BLAS on 1 thread" in second.engine.describe()
    second.use_engine(None)
    assert blas_threads() == before


def test_the_engine_refuses_what_is_not_numpy(engine_for):
    with pytest.raises(TypeError, match="CPUEngine runs NumPy arrays"):
        engine_for(1).forward([mc.ReLU()], [[1.0, 2.0]])
    with pytest.raises(RuntimeError, match="forward\\(training=True\\) of the same layers"):
        engine_for(1).backward([mc.ReLU()], np.zeros((1, 3)))
    with pytest.raises(ValueError, match="threads must be"):
        mc.CPUEngine(threads=0)


def test_importing_minicnn_changes_no_process_setting():
    """In a fresh interpreter: no allocator call, no thread, no BLAS setting, no backend from
    the environment."""
    script = r"""
import ctypes, json, os, threading
import numpy, scipy.ndimage, pandas, matplotlib  # what minicnn and kannada import
from threadpoolctl import threadpool_info
loaded = []
real_cdll = ctypes.CDLL
def watching_cdll(name, *args, **kwargs):
    if "libc" in os.path.basename(str(name)):  # the C library, whose mallopt the engine calls
        loaded.append(str(name))
    return real_cdll(name, *args, **kwargs)
ctypes.CDLL = watching_cdll
def settings():
    blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    return {"blas": blas, "threads": threading.active_count(), "env": dict(os.environ)}
before = settings()
import minicnn, minicnn.engine, kannada, kannada.train, kannada.predict
after = settings()
print(json.dumps({"changed": [k for k in before if before[k] != after[k]], "libc": loaded,
                  "backend": minicnn.backend.backend_name()}))
"""
    env = {"MINICNN_BACKEND": "cupy", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"changed": [], "libc": [], "backend": "numpy"}


def test_two_models_can_share_one_engine(engine_for):
    """The engine keeps each model's pending step apart: forward A, forward B, backward A."""
    engine = engine_for(2)
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 2, 10, 10), dtype=np.float32), np.arange(40) % 10
    a = small_model(seed=1).compile("sgd").use_engine(engine)
    b = small_model(seed=2).compile("sgd").use_engine(engine)
    reference = small_model(seed=1).compile("sgd")  # the plain layers
    for model in (a, b, reference):
        for layer in model.layers:
            if isinstance(layer, mc.Dropout):
                layer.reseed(np.random.default_rng(0))
    reference.loss.forward(reference.forward(x, training=True), y)
    reference.backward(reference.loss.backward())
    logits_a = a.forward(x, training=True)
    b.forward(x, training=True)  # b's step waits while a goes back
    a.loss.forward(logits_a, y)
    a.backward(a.loss.backward())
    for (name, _, grad), (_, _, expected) in zip(
        a.named_params(), reference.named_params(), strict=True
    ):
        np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6, err_msg=name)
    a.use_engine(None)
    b.use_engine(None)


def test_the_engine_runs_built_layers_only(engine_for):
    with pytest.raises(ValueError, match=r"CPUEngine runs built layers; \['dense'\] are not"):
        engine_for(1).forward([mc.Dense(3)], np.zeros((2, 4), np.float32))
