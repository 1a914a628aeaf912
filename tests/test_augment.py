"""Tests for kannada.augment: the fast resampler against scipy.ndimage, and Keras semantics."""

import json

import numpy as np
import pytest
from matplotlib.image import imread

from kannada.augment import (
    Augmenter,
    Transforms,
    affine_matrices,
    save_examples_figure,
    warp_bilinear,
    warp_reference,
)

WILD = dict(
    rotation_range=45, zoom_range=0.5, width_shift_range=0.3, height_shift_range=0.3, shear_range=30
)


def digits(n=16, height=28, width=28, seed=0):
    """Smooth random blobs with sharp edges: a mix of what interpolation finds hard and easy."""
    rng = np.random.default_rng(seed)
    images = rng.random((n, height, width), dtype=np.float32)
    images[:, :, : width // 3] = 0.0
    images[:, height // 2 :, width // 2 :] = 1.0
    return images


def one_transform(**values):
    """A single transform: identity except for the given fields."""
    fields = {
        "angle": 0.0,
        "shift_rows": 0.0,
        "shift_cols": 0.0,
        "shear": 0.0,
        "zoom_rows": 1.0,
        "zoom_cols": 1.0,
    }
    fields.update(values)
    return Transforms(
        **{name: np.array([value], dtype=np.float64) for name, value in fields.items()}
    )


@pytest.mark.parametrize("fill_mode", ["nearest", "constant"])
@pytest.mark.parametrize("shape", [(28, 28), (20, 31)])
def test_fast_path_matches_scipy_reference(fill_mode, shape):
    images = digits(300, *shape)
    augmenter = Augmenter(**WILD, fill_mode=fill_mode, cval=0.25)
    transforms = augmenter.sample(len(images), *shape, np.random.default_rng(1))
    matrices = affine_matrices(transforms, *shape)
    fast = warp_bilinear(images, matrices, fill_mode, 0.25)
    reference = warp_reference(images, matrices, fill_mode, 0.25)
    error = np.abs(fast - reference).max()
    print(f"{fill_mode} {shape}: max |fast - scipy| = {error:.2e}")
    assert fast.dtype == np.float32 and fast.shape == images.shape
    assert error < 1e-5
    if fill_mode == "constant":  # the wild transforms do reach outside the image
        assert np.count_nonzero(reference == np.float32(0.25)) > 1000


def test_both_methods_of_the_augmenter_agree():
    batch = digits(64)[:, None]
    fast = Augmenter(**WILD)(batch, np.random.default_rng(5))
    reference = Augmenter(**WILD, method="reference")(batch, np.random.default_rng(5))
    assert np.abs(fast - reference).max() < 1e-5


@pytest.mark.parametrize("fill_mode", ["nearest", "constant"])
def test_identity_transform_returns_input(fill_mode):
    images = digits(8)
    matrices = affine_matrices(Transforms.identity(8), 28, 28)
    np.testing.assert_array_equal(warp_bilinear(images, matrices, fill_mode, 0.5), images)
    still = Augmenter(
        rotation_range=0, zoom_range=0, width_shift_range=0, height_shift_range=0, shear_range=0
    )
    batch = images[:, None]
    out = still(batch, np.random.default_rng(0))
    np.testing.assert_array_equal(out, batch)
    assert out is not batch


def test_quarter_turn_moves_a_pixel_clockwise_about_the_centre():
    image = np.zeros((1, 28, 28), dtype=np.float32)
    image[0, 3, 14] = 1.0  # 10.5 rows above the centre (13.5, 13.5), half a column right
    out = Augmenter().apply(image, one_transform(angle=90.0))
    # Output o samples the input at R(o - c) + c, so the pixel lands at c + R(-90)(p - c).
    assert out[0, 14, 24] == pytest.approx(1.0)
    assert out.sum() == pytest.approx(1.0)


def test_rotation_by_thirty_degrees_spreads_a_pixel_as_bilinear_says():
    height = width = 28
    pixel = np.array([6.0, 17.0])
    image = np.zeros((1, height, width), dtype=np.float32)
    image[0, 6, 17] = 1.0
    out = Augmenter().apply(image, one_transform(angle=30.0))[0]
    # Independent computation: each output pixel samples the input at R(o - c) + c, and
    # bilinear interpolation of a single 1 gives the tent (1 - |dr|)(1 - |dc|).
    theta = np.deg2rad(30.0)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    centre = np.array([13.5, 13.5])
    grid = np.stack(np.meshgrid(np.arange(height), np.arange(width), indexing="ij"), axis=-1)
    source = (grid - centre) @ rotation.T + centre
    tent = np.clip(1 - np.abs(source - pixel), 0, None).prod(axis=-1)
    np.testing.assert_allclose(out, tent, atol=1e-6)
    # The brightest output pixel is where the inverse rotation sends the input pixel.
    expected = centre + rotation.T @ (pixel - centre)
    assert np.abs(np.array(np.unravel_index(out.argmax(), out.shape)) - expected).max() <= 0.5


def test_integer_shift_moves_rows():
    images = digits(1)
    out = Augmenter().apply(images, one_transform(shift_rows=3.0))
    # Keras samples the input at o + shift: the content moves up by three rows.
    np.testing.assert_array_equal(out[0, :-3], images[0, 3:])
    np.testing.assert_array_equal(out[0, -3:], np.repeat(images[0, -1:], 3, axis=0))  # "nearest"


def test_zoom_acts_on_rows_and_columns_independently():
    ramp = np.tile(np.arange(28, dtype=np.float32) / 27, (1, 28, 1))  # value = column / 27
    augmenter = Augmenter()
    rows_only = augmenter.apply(ramp, one_transform(zoom_rows=1.3))
    np.testing.assert_array_equal(rows_only, ramp)
    cols_only = augmenter.apply(ramp, one_transform(zoom_cols=1.3))
    expected = np.clip(1.3 * (np.arange(28) - 13.5) + 13.5, 0, 27) / 27
    np.testing.assert_allclose(cols_only[0], np.tile(expected, (28, 1)), atol=1e-6)

    factors = Augmenter(zoom_range=0.2).sample(2000, 28, 28, np.random.default_rng(0))
    assert 0.8 <= factors.zoom_rows.min() and factors.zoom_rows.max() <= 1.2
    assert factors.zoom_cols.min() < 0.81 and factors.zoom_cols.max() > 1.19
    assert abs(np.corrcoef(factors.zoom_rows, factors.zoom_cols)[0, 1]) < 0.1


def test_zoom_above_one_makes_the_digit_smaller():
    square = np.zeros((1, 28, 28), dtype=np.float32)
    square[0, 8:20, 8:20] = 1.0
    smaller = Augmenter().apply(square, one_transform(zoom_rows=1.5, zoom_cols=1.5))
    larger = Augmenter().apply(square, one_transform(zoom_rows=0.75, zoom_cols=0.75))
    assert smaller.sum() == pytest.approx(144 / 1.5**2, rel=0.1)
    assert larger.sum() == pytest.approx(144 / 0.75**2, rel=0.1)


def test_matrices_compose_like_keras():
    values = dict(
        angle=12.0, shift_rows=2.5, shift_cols=-1.5, shear=8.0, zoom_rows=1.1, zoom_cols=0.9
    )
    matrix = affine_matrices(one_transform(**values), 28, 28)[0]
    t, s = np.deg2rad(12.0), np.deg2rad(8.0)
    rotation = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    shift = np.array([[1, 0, 2.5], [0, 1, -1.5], [0, 0, 1]])
    shear = np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]])
    zoom = np.diag([1.1, 0.9, 1.0])
    to_centre = np.array([[1, 0, 13.5], [0, 1, 13.5], [0, 0, 1]])
    from_centre = np.array([[1, 0, -13.5], [0, 1, -13.5], [0, 0, 1]])
    keras = to_centre @ rotation @ shift @ shear @ zoom @ from_centre
    np.testing.assert_allclose(matrix, keras[:2], atol=1e-12)


def test_sampled_ranges_follow_keras():
    augmenter = Augmenter(
        rotation_range=10, width_shift_range=0.25, height_shift_range=0.1, shear_range=5
    )
    t = augmenter.sample(5000, 20, 40, np.random.default_rng(3))
    assert np.abs(t.angle).max() <= 10 and np.abs(t.angle).max() > 9.9
    assert (
        np.abs(t.shift_rows).max() <= 2.0 and np.abs(t.shift_rows).max() > 1.98
    )  # 0.1 * height 20
    assert (
        np.abs(t.shift_cols).max() <= 10.0 and np.abs(t.shift_cols).max() > 9.9
    )  # 0.25 * width 40
    assert np.abs(t.shear).max() <= 5 and np.abs(t.shear).max() > 4.95


def test_same_seed_same_output_different_seed_different_output():
    batch = digits(32)[:, None]
    augmenter = Augmenter()
    first = augmenter(batch, np.random.default_rng(42))
    second = augmenter(batch, np.random.default_rng(42))
    other = augmenter(batch, np.random.default_rng(43))
    np.testing.assert_array_equal(first, second)
    assert np.abs(first - other).max() > 0.1
    assert not np.array_equal(first, batch)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_output_is_float32_with_the_input_shape(dtype):
    for batch in (digits(4).astype(dtype), digits(4)[:, None].astype(dtype)):
        out = Augmenter()(batch, np.random.default_rng(0))
        assert out.dtype == np.float32 and out.shape == batch.shape


def test_bad_shapes_and_settings_are_explained():
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\) or \(N, H, W\), found \(4, 3, 28, 28\)"):
        Augmenter()(np.zeros((4, 3, 28, 28), np.float32), np.random.default_rng(0))
    with pytest.raises(ValueError, match="zoom_range.*below 1"):
        Augmenter(zoom_range=1.0)
    with pytest.raises(ValueError, match="fill_mode.*'reflect'"):
        Augmenter(fill_mode="reflect")
    with pytest.raises(ValueError, match="rotation_range.*-5"):
        Augmenter(rotation_range=-5)
    with pytest.raises(ValueError, match="order"):
        Augmenter(order=0)


def test_config_round_trips_through_json():
    augmenter = Augmenter(
        rotation_range=7.5, zoom_range=0.1, fill_mode="constant", cval=0.5, method="reference"
    )
    config = json.loads(json.dumps(augmenter.to_config()))
    assert config["rotation_range"] == 7.5
    assert Augmenter.from_config(config) == augmenter
    with pytest.raises(ValueError, match="unknown keys \\['brightness'\\]"):
        Augmenter.from_config({**config, "brightness": 0.2})


def test_examples_figure_is_a_png(tmp_path):
    path = tmp_path / "augmented.png"
    returned = save_examples_figure(
        digits(10)[:, None], Augmenter(), path, np.random.default_rng(0), n=4
    )
    assert returned == path
    picture = imread(path)
    assert picture.ndim == 3 and picture.shape[0] > 100 and picture.shape[1] > 200
    assert picture[..., :3].std() > 0.05  # not a blank canvas
    assert [p.name for p in tmp_path.iterdir()] == ["augmented.png"]  # no temporary left behind
