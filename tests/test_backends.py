"""The same code on every available backend: NumPy always, CuPy where a GPU is usable.

On a machine without CuPy and a GPU the CuPy cases skip and say why. With one, this file runs
the gradient checks (float64), the forward/backward agreement between CPU and GPU, model files
crossing between them, and the training pipeline end to end on the GPU.
"""

import numpy as np
import pytest

import minicnn as mc
from minicnn.backend import available_backends, to_numpy, use_backend
from minicnn.gradcheck import check_layer, check_model

STATUS = available_backends()
BACKENDS = [
    pytest.param(name, marks=pytest.mark.skipif(reason is not None, reason=f"{name}: {reason}"))
    for name, reason in STATUS.items()
]
needs_cupy = pytest.mark.skipif(
    STATUS.get("cupy") is not None, reason=f"cupy: {STATUS.get('cupy')}"
)


def small_model(seed=0, dtype="float32"):
    return mc.Sequential(
        [
            mc.Conv2D(4, 3, padding="same"),
            mc.ReLU(),
            mc.MaxPool2D(2),
            mc.Conv2D(6, 3, stride=2, padding=1),
            mc.ReLU(),
            mc.BatchNorm(),
            mc.Flatten(),
            mc.Dropout(0.2),
            mc.Dense(10),
        ],
        input_shape=(2, 10, 10),
        seed=seed,
        dtype=dtype,
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "make_layer, shape",
    [
        (lambda: mc.Conv2D(3, 3, stride=2, padding="same"), (2, 2, 7, 6)),
        (lambda: mc.Conv2D(3, 3, padding=1), (2, 2, 7, 6)),
        (lambda: mc.Dense(4), (3, 5)),
        (lambda: mc.BatchNorm(), (4, 3, 3, 3)),
        (lambda: mc.Dropout(0.3, seed=0), (2, 3, 4, 4)),
    ],
)
def test_layer_gradients_on_every_backend(backend, make_layer, shape):
    with use_backend(backend) as xp:
        x = xp.asarray(np.random.default_rng(0).standard_normal(shape))
        assert check_layer(make_layer(), x) <= 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_maxpool_and_model_gradients_on_every_backend(backend):
    with use_backend(backend) as xp:
        values = np.random.default_rng(1).permutation(2 * 2 * 6 * 6).astype(np.float64) * 0.01
        assert check_layer(mc.MaxPool2D(2), xp.asarray(values.reshape(2, 2, 6, 6))) <= 1e-6
        model = small_model(dtype="float64")
        x = xp.asarray(np.random.default_rng(2).standard_normal((3, 2, 10, 10)))
        assert check_model(model, x, xp.asarray([1, 4, 9])) <= 1e-6


def forward_backward(backend, x, y):
    """Logits, loss and every gradient of one training step's forward/backward, as NumPy."""
    with use_backend(backend) as xp:
        model = small_model(seed=3)
        model.compile()
        for layer in model.layers:  # identical dropout masks on both backends
            if isinstance(layer, mc.Dropout):
                layer.reseed(np.random.default_rng(0))
        logits = model.forward(xp.asarray(x), training=True)
        loss = model.loss.forward(logits, xp.asarray(y))
        model.backward(model.loss.backward())
        grads = {name: to_numpy(grad) for name, _, grad in model.named_params()}
        return to_numpy(logits), loss, grads


@needs_cupy
def test_cpu_and_gpu_agree_on_loss_and_gradients():
    rng = np.random.default_rng(0)
    x = rng.random((16, 2, 10, 10), dtype=np.float32)
    y = rng.integers(0, 10, 16)
    cpu, gpu = forward_backward("numpy", x, y), forward_backward("cupy", x, y)
    np.testing.assert_allclose(gpu[0], cpu[0], rtol=1e-4, atol=1e-5)
    assert gpu[1] == pytest.approx(cpu[1], rel=1e-5)
    for name in cpu[2]:
        np.testing.assert_allclose(gpu[2][name], cpu[2][name], rtol=1e-3, atol=1e-5, err_msg=name)


@needs_cupy
@pytest.mark.parametrize("save_on, load_on", [("cupy", "numpy"), ("numpy", "cupy")])
def test_model_files_cross_between_cpu_and_gpu(tmp_path, save_on, load_on):
    rng = np.random.default_rng(0)
    x = rng.random((8, 2, 10, 10), dtype=np.float32)
    y = rng.integers(0, 10, 8)
    with use_backend(save_on):
        model = small_model()
        model.fit(x, y, batch_size=4, epochs=1, seed=0, verbose=0)
        expected = model.predict(x)
        model.save(tmp_path / "model.npz")
    with use_backend(load_on):
        loaded = mc.load(tmp_path / "model.npz")
        np.testing.assert_allclose(loaded.predict(x), expected, rtol=1e-4, atol=1e-5)


@needs_cupy
def test_training_pipeline_end_to_end_on_the_gpu(tmp_path, real_data_dir):
    from kannada import train

    code = train.main(
        [
            "--data-dir",
            str(real_data_dir / "kaggle"),
            "--limit",
            "2560",
            "--epochs",
            "1",
            "--backend",
            "cupy",
            "--out",
            str(tmp_path),
            "--name",
            "gpu",
            "--quiet",
        ]
    )
    assert code in (0, None)
    assert (tmp_path / "gpu" / "model.npz").is_file()
    assert (tmp_path / "gpu" / "metrics.json").is_file()


def test_available_backends_reports_numpy_and_a_reason_for_cupy():
    assert STATUS["numpy"] is None
    assert "cupy" in STATUS and (STATUS["cupy"] is None or "CuPy" in STATUS["cupy"])
