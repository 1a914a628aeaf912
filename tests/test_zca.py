"""Tests for kannada.zca: whitening properties, a hand-computed example, and serialisation."""

import time

import numpy as np
import pytest

from kannada.zca import ZCA


def correlated_data(n=20000, size=12, seed=0, dtype=np.float64):
    """Full-rank data whose covariance has eigenvalues spread from 0.01 to 10."""
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.normal(size=(size, size)))
    scales = np.sqrt(np.geomspace(10.0, 0.01, size))
    x = (rng.normal(size=(n, size)) * scales) @ rotation.T + rng.normal(size=size)
    return x.astype(dtype)


def covariance(x):
    """Population covariance (divides by N), as ZCA.fit uses."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    centred = flat - flat.mean(axis=0)
    return centred.T @ centred / len(flat)


def test_whitened_data_has_identity_covariance_when_epsilon_is_tiny():
    x = correlated_data()
    white = ZCA(epsilon=1e-9).fit_transform(x)
    np.testing.assert_allclose(covariance(white), np.eye(x.shape[1]), atol=2e-5)
    np.testing.assert_allclose(white.mean(axis=0), 0.0, atol=1e-5)


def test_output_variance_is_lambda_over_lambda_plus_epsilon():
    x = correlated_data(seed=1)
    epsilon = 0.5
    data_eigenvalues = np.linalg.eigvalsh(covariance(x))
    white = ZCA(epsilon=epsilon).fit_transform(x)
    output_eigenvalues = np.linalg.eigvalsh(covariance(white))
    expected = data_eigenvalues / (data_eigenvalues + epsilon)
    print("data eigenvalues", np.round(data_eigenvalues, 3))
    print("output eigenvalues", np.round(output_eigenvalues, 4))
    np.testing.assert_allclose(output_eigenvalues, expected, atol=2e-6)


def test_matrix_is_symmetric():
    zca = ZCA().fit(correlated_data(n=3000, size=30, dtype=np.float32))
    np.testing.assert_array_equal(zca.matrix, zca.matrix.T)
    assert zca.matrix.dtype == np.float32 and zca.mean.dtype == np.float32


def test_two_dimensional_example_by_hand():
    # Covariance [[2.5, 1.5], [1.5, 2.5]]: eigenvalue 4 along (1, 1), 1 along (1, -1).
    x = np.array([[2.0, 2.0], [-2.0, -2.0], [1.0, -1.0], [-1.0, 1.0]])
    along = np.array([[0.5, 0.5], [0.5, 0.5]])  # projector onto (1, 1) / sqrt(2)
    across = np.array([[0.5, -0.5], [-0.5, 0.5]])  # projector onto (1, -1) / sqrt(2)

    exact = ZCA(epsilon=1e-12).fit(x)
    np.testing.assert_allclose(exact.mean, [0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(exact.matrix, [[0.75, -0.25], [-0.25, 0.75]], atol=1e-6)
    np.testing.assert_allclose(exact.transform(x), [[1, 1], [-1, -1], [1, -1], [-1, 1]], atol=1e-6)

    regularised = ZCA(epsilon=1.0).fit(x)
    expected = along / np.sqrt(4 + 1) + across / np.sqrt(1 + 1)
    np.testing.assert_allclose(regularised.matrix, expected, atol=1e-6)
    np.testing.assert_allclose(
        regularised.matrix, [[0.5771602, -0.1299466], [-0.1299466, 0.5771602]], atol=1e-6
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transform_keeps_shape_and_dtype(dtype):
    images = np.random.default_rng(2).random((50, 1, 6, 6)).astype(dtype)
    zca = ZCA().fit(images)
    assert zca.mean.shape == (36,) and zca.matrix.shape == (36, 36)
    out = zca.transform(images)
    assert out.shape == images.shape and out.dtype == dtype
    flat = images.reshape(50, 36).astype(np.float64)
    expected = (flat - zca.mean) @ zca.matrix.astype(np.float64)
    np.testing.assert_allclose(out.reshape(50, 36), expected, rtol=1e-4, atol=1e-5)


def test_transform_in_chunks_equals_one_product(monkeypatch):
    images = np.random.default_rng(3).random((1000, 20), dtype=np.float32)
    zca = ZCA().fit(images)
    whole = zca.transform(images)
    monkeypatch.setattr("kannada.zca._CHUNK", 64)
    # BLAS may take another kernel for the last, shorter chunk: equal to float32 rounding.
    np.testing.assert_allclose(zca.transform(images), whole, rtol=0, atol=1e-6)


def test_round_trip_through_arrays():
    images = np.random.default_rng(4).random((200, 5, 5), dtype=np.float32)
    zca = ZCA(epsilon=0.05).fit(images)
    arrays = zca.to_arrays()
    assert (
        arrays["mean"].shape == (25,)
        and arrays["matrix"].shape == (25, 25)
        and arrays["epsilon"].shape == ()
    )
    restored = ZCA.from_arrays(arrays)
    assert restored.epsilon == 0.05
    np.testing.assert_array_equal(restored.transform(images), zca.transform(images))


def test_from_arrays_explains_bad_shapes():
    good = ZCA().fit(np.random.default_rng(5).random((30, 4), dtype=np.float32)).to_arrays()
    with pytest.raises(ValueError, match=r"'matrix' should have shape \(4, 4\).*found \(4, 3\)"):
        ZCA.from_arrays({**good, "matrix": good["matrix"][:, :3]})
    with pytest.raises(ValueError, match=r"'mean' should have shape \(D,\), found \(2, 2\)"):
        ZCA.from_arrays({**good, "mean": good["mean"].reshape(2, 2)})
    with pytest.raises(ValueError, match=r"'epsilon' should be a scalar"):
        ZCA.from_arrays({**good, "epsilon": np.array([0.1])})
    with pytest.raises(ValueError, match=r"missing \['epsilon'\]"):
        ZCA.from_arrays({"mean": good["mean"], "matrix": good["matrix"]})


def test_misuse_is_explained():
    with pytest.raises(RuntimeError, match="not fitted"):
        ZCA().transform(np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match="float32 or float64 images.*uint8"):
        ZCA().fit(np.zeros((10, 4), np.uint8))
    zca = ZCA().fit(np.random.default_rng(6).random((10, 4), dtype=np.float32))
    with pytest.raises(
        ValueError, match="expected images of 4 values each.*found shape \\(3, 5\\)"
    ):
        zca.transform(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="epsilon"):
        ZCA(epsilon=0.0)


def test_fit_time_on_60000_images_is_printed():
    images = np.random.default_rng(7).random((60000, 784), dtype=np.float32)
    start = time.perf_counter()
    zca = ZCA().fit(images)
    seconds = time.perf_counter() - start
    print(f"ZCA.fit on 60000 x 784 float32: {seconds:.2f} s")
    # Uniform [0, 1) pixels: independent, variance 1/12, so W ~ I / sqrt(1/12 + epsilon).
    np.testing.assert_allclose(np.diag(zca.matrix), 1 / np.sqrt(1 / 12 + 0.1), rtol=0.02)
