"""The preprocessing record saved with a model rebuilds exactly the same preprocessing."""

import numpy as np
import pytest

from kannada.preprocess import Preprocessing, scale_images
from kannada.zca import ZCA


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, (64, 28, 28), dtype=np.uint8)


def test_scaling_to_unit_float32_nchw(images):
    x = scale_images(images)
    assert x.shape == (64, 1, 28, 28) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0], images / 255.0, rtol=1e-6)
    with pytest.raises(ValueError, match="expected images of shape"):
        scale_images(np.zeros((2, 27, 28), dtype=np.uint8))


def test_round_trip_with_packed_zca(images):
    original = Preprocessing(ZCA().fit(scale_images(images)))
    meta = original.to_metadata()
    assert "zca_matrix" not in meta and meta["zca_matrix_upper"].shape == (784 * 785 // 2,)
    rebuilt = Preprocessing.from_metadata(meta)
    np.testing.assert_array_equal(rebuilt.zca.matrix, original.zca.matrix)
    np.testing.assert_array_equal(rebuilt(images), original(images))


def test_files_with_the_full_matrix_still_load(images):
    original = Preprocessing(ZCA().fit(scale_images(images)))
    meta = original.to_metadata()
    meta["zca_matrix"] = original.zca.matrix
    del meta["zca_matrix_upper"]
    np.testing.assert_array_equal(Preprocessing.from_metadata(meta)(images), original(images))


def test_without_zca_and_bad_records(images):
    plain = Preprocessing.from_metadata(Preprocessing().to_metadata())
    assert plain.zca is None
    np.testing.assert_array_equal(plain(images), scale_images(images))
    with pytest.raises(ValueError, match="my.npz: no 'preprocessing' record"):
        Preprocessing.from_metadata({}, source="my.npz")
    meta = Preprocessing(ZCA().fit(scale_images(images))).to_metadata()
    meta["zca_matrix_upper"] = meta["zca_matrix_upper"][:-1]
    with pytest.raises(ValueError, match="zca_matrix_upper has shape"):
        Preprocessing.from_metadata(meta)
    del meta["zca_mean"]
    with pytest.raises(ValueError, match="'zca_mean' is missing"):
        Preprocessing.from_metadata(meta)
