"""Tests for kannada.augment: the fast resampler against scipy.ndimage, and Keras' geometry."""

import json

import numpy as np
import pytest
from matplotlib.image import imread
from scipy import ndimage

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
        "shift_x": 0.0,
        "shift_y": 0.0,
        "shear": 0.0,
        "zoom_x": 1.0,
        "zoom_y": 1.0,
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


def keras_apply_affine_transform(
    image,
    theta=0.0,
    tx=0.0,
    ty=0.0,
    shear=0.0,
    zx=1.0,
    zy=1.0,
    fill_mode="nearest",
    cval=0.0,
    centre_xy=None,
):
    """Keras' apply_affine_transform for one (H, W) image, written out from its formulas.

    From keras/src/legacy/preprocessing/image.py (and keras-preprocessing after PR #318):
    3x3 matrices on (x, y, 1), x the column and y the row index, composed as
    rotation @ shift @ shear @ zoom; moved to the centre by transform_matrix_offset_center(M,
    h, w), which puts x's centre at h / 2 - 0.5 and y's at w / 2 - 0.5 (centre_xy replaces
    that pair); then, as col_axis > row_axis, rows 0, 1 and columns 0, 1 exchanged (P M P)
    for scipy, which resamples with order=1. Independent of kannada.augment on purpose.
    """
    h, w = image.shape
    t, s = np.deg2rad(theta), np.deg2rad(shear)
    rotation = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    shift = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    shearing = np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]])
    zoom = np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
    o_x, o_y = centre_xy if centre_xy is not None else (h / 2 - 0.5, w / 2 - 0.5)
    to_centre = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]])
    from_centre = np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]])
    matrix = to_centre @ rotation @ shift @ shearing @ zoom @ from_centre
    swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]])  # P: (x, y) <-> (row, col)
    matrix = swap @ matrix @ swap
    return ndimage.affine_transform(
        image, matrix[:2, :2], matrix[:2, 2], order=1, mode=fill_mode, cval=cval
    )


def keras_parameter_sets(count, seed):
    """Random (theta, tx, ty, shear, zx, zy) in WILD's ranges, for 28 x 28 images."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        theta, shear = rng.uniform(-45, 45, size=2)
        tx, ty = rng.uniform(-0.3, 0.3, size=2) * 28
        zx, zy = rng.uniform(0.5, 1.5, size=2)
        yield dict(theta=theta, tx=tx, ty=ty, shear=shear, zx=zx, zy=zy)


@pytest.mark.parametrize("fill_mode", ["nearest", "constant"])
@pytest.mark.parametrize("method", ["fast", "reference"])
def test_warp_equals_keras_apply_affine_transform(method, fill_mode):
    images = digits(12)
    augmenter = Augmenter(fill_mode=fill_mode, cval=0.25, method=method)
    for image, keras in zip(images, keras_parameter_sets(len(images), seed=7), strict=True):
        expected = keras_apply_affine_transform(image, **keras, fill_mode=fill_mode, cval=0.25)
        transform = one_transform(
            angle=keras["theta"],
            shift_x=keras["tx"],
            shift_y=keras["ty"],
            shear=keras["shear"],
            zoom_x=keras["zx"],
            zoom_y=keras["zy"],
        )
        out = augmenter.apply(image[None], transform)[0]
        np.testing.assert_allclose(out, expected, atol=1e-5, err_msg=str(keras))


def test_non_square_images_turn_about_their_true_centre():
    # Keras centres x on (h - 1) / 2 and y on (w - 1) / 2; on a 20 x 31 image we use the middle.
    image = digits(1, 20, 31)[0]
    keras = dict(theta=20.0, tx=1.5, ty=-2.0, shear=8.0, zx=1.1, zy=0.9)
    transform = one_transform(
        angle=20.0, shift_x=1.5, shift_y=-2.0, shear=8.0, zoom_x=1.1, zoom_y=0.9
    )
    out = Augmenter().apply(image[None], transform)[0]
    middle = keras_apply_affine_transform(image, **keras, centre_xy=(15.0, 9.5))
    np.testing.assert_allclose(out, middle, atol=1e-5)
    assert np.abs(out - keras_apply_affine_transform(image, **keras)).max() > 0.1


def dot(row, col, height=28, width=28):
    """A (1, H, W) black image with a single 1 at (row, col)."""
    image = np.zeros((1, height, width), dtype=np.float32)
    image[0, row, col] = 1.0
    return image


def test_positive_shifts_move_the_digit_left_and_up_as_keras_tx_ty():
    # Keras samples the input at o + (tx, ty): the content moves by -tx columns, -ty rows.
    assert Augmenter().apply(dot(10, 12), one_transform(shift_x=3.0))[0, 10, 9] == 1.0
    assert Augmenter().apply(dot(10, 12), one_transform(shift_y=3.0))[0, 7, 12] == 1.0
    images = digits(1)
    out = Augmenter().apply(images, one_transform(shift_y=3.0, shift_x=-2.0))
    np.testing.assert_array_equal(out[0, :-3, 2:], images[0, 3:, :-2])
    np.testing.assert_array_equal(out[0, -3:, 2:], np.repeat(images[0, -1:, :-2], 3, axis=0))


def test_width_shift_range_moves_along_columns_and_height_shift_range_along_rows():
    dots = np.repeat(dot(10, 12), 50, axis=0)
    still = dict(rotation_range=0, zoom_range=0, shear_range=0, fill_mode="constant")
    sideways = Augmenter(**still, height_shift_range=0)(dots, np.random.default_rng(0))
    assert np.flatnonzero(sideways.sum(axis=(0, 2))).tolist() == [10]  # the dot's row only
    assert np.ptp(np.flatnonzero(sideways.sum(axis=(0, 1)))) > 6
    upright = Augmenter(**still, width_shift_range=0)(dots, np.random.default_rng(0))
    assert np.flatnonzero(upright.sum(axis=(0, 1))).tolist() == [12]  # the dot's column only
    assert np.ptp(np.flatnonzero(upright.sum(axis=(0, 2)))) > 6


def test_positive_angle_turns_counter_clockwise_on_screen():
    # A dot 10.5 columns right of the centre (13.5, 13.5), half a row below it.
    out = Augmenter().apply(dot(14, 24), one_transform(angle=90.0))
    assert out[0, 3, 14] == pytest.approx(1.0)  # now 10.5 rows above it: right turned up
    assert out.sum() == pytest.approx(1.0)
    slightly = Augmenter().apply(dot(14, 24), one_transform(angle=10.0))[0]
    rows, cols = np.nonzero(slightly)
    assert rows.max() < 14 and cols.min() >= 23  # a small turn lifts it, still on the right


def test_rotation_by_thirty_degrees_spreads_a_pixel_as_bilinear_says():
    height = width = 28
    pixel_xy = np.array([17.0, 6.0])  # column 17, row 6
    out = Augmenter().apply(dot(6, 17), one_transform(angle=30.0))[0]
    # Independent computation on (x, y): each output pixel samples the input at R(o - c) + c,
    # and bilinear interpolation of a single 1 gives the tent (1 - |dx|)(1 - |dy|).
    theta = np.deg2rad(30.0)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    centre = np.array([13.5, 13.5])
    y, x = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    source = (np.stack([x, y], axis=-1) - centre) @ rotation.T + centre  # (H, W, 2) as (x, y)
    tent = np.clip(1 - np.abs(source - pixel_xy), 0, None).prod(axis=-1)
    np.testing.assert_allclose(out, tent, atol=1e-6)
    # The brightest output pixel is where the inverse rotation sends the input pixel.
    x_out, y_out = centre + rotation.T @ (pixel_xy - centre)
    row, col = np.unravel_index(out.argmax(), out.shape)
    assert abs(row - y_out) <= 0.5 and abs(col - x_out) <= 0.5


def test_shear_slants_a_vertical_bar_horizontally():
    bar = np.zeros((1, 28, 28), dtype=np.float32)
    bar[0, 2:26, 14] = 1.0  # column 14, half a column right of the centre 13.5
    shear = 15.0
    out = Augmenter(fill_mode="constant").apply(bar, one_transform(shear=shear))[0]
    # Keras' shear samples x_in = x - sin(s) y, y_in = cos(s) y (about the centre): row y of
    # the output holds the bar at x = x_bar + sin(s) y, one short run per row, lower rows right.
    inked = np.flatnonzero(out.sum(axis=1) > 0.5)
    for row in inked:
        cols = np.flatnonzero(out[row] > 0)
        assert len(cols) <= 2 and cols.max() - cols.min() <= 1, (row, out[row])
        centre_of_ink = (out[row] * np.arange(28)).sum() / out[row].sum()
        expected = 14 + np.sin(np.deg2rad(shear)) * (row - 13.5)
        assert centre_of_ink == pytest.approx(expected, abs=1e-6)
    assert len(inked) >= 22  # the rows stay rows: the bar keeps its height
    columns = [(out[row] * np.arange(28)).sum() / out[row].sum() for row in inked]
    assert columns[-1] - columns[0] > 5  # bottom well right of the top


def test_zoom_acts_on_rows_and_columns_independently():
    ramp = np.tile(np.arange(28, dtype=np.float32) / 27, (1, 28, 1))  # value = column / 27
    augmenter = Augmenter()
    along_y = augmenter.apply(ramp, one_transform(zoom_y=1.3))
    np.testing.assert_array_equal(along_y, ramp)
    along_x = augmenter.apply(ramp, one_transform(zoom_x=1.3))
    expected = np.clip(1.3 * (np.arange(28) - 13.5) + 13.5, 0, 27) / 27
    np.testing.assert_allclose(along_x[0], np.tile(expected, (28, 1)), atol=1e-6)

    factors = Augmenter(zoom_range=0.2).sample(2000, 28, 28, np.random.default_rng(0))
    assert 0.8 <= factors.zoom_y.min() and factors.zoom_y.max() <= 1.2
    assert factors.zoom_x.min() < 0.81 and factors.zoom_x.max() > 1.19
    assert abs(np.corrcoef(factors.zoom_y, factors.zoom_x)[0, 1]) < 0.1


def test_zoom_above_one_makes_the_digit_smaller():
    square = np.zeros((1, 28, 28), dtype=np.float32)
    square[0, 8:20, 8:20] = 1.0
    smaller = Augmenter().apply(square, one_transform(zoom_x=1.5, zoom_y=1.5))
    larger = Augmenter().apply(square, one_transform(zoom_x=0.75, zoom_y=0.75))
    assert smaller.sum() == pytest.approx(144 / 1.5**2, rel=0.1)
    assert larger.sum() == pytest.approx(144 / 0.75**2, rel=0.1)


def test_geometry_1_keeps_the_maps_of_configs_saved_before_it():
    # Before `geometry` existed this module applied Keras' formulas to (row, col): the same
    # numbers, drawn in the same order, with rows and columns exchanged.
    values = dict(angle=12.0, shift_x=-1.5, shift_y=2.5, shear=8.0, zoom_x=0.9, zoom_y=1.1)
    matrix = affine_matrices(one_transform(**values), 20, 31, geometry=1)[0]
    t, s = np.deg2rad(12.0), np.deg2rad(8.0)
    rotation = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    shift = np.array([[1, 0, 2.5], [0, 1, -1.5], [0, 0, 1]])  # rows first
    shear = np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]])
    zoom = np.diag([1.1, 0.9, 1.0])
    to_centre = np.array([[1, 0, 9.5], [0, 1, 15.0], [0, 0, 1]])
    from_centre = np.array([[1, 0, -9.5], [0, 1, -15.0], [0, 0, 1]])
    old = to_centre @ rotation @ shift @ shear @ zoom @ from_centre
    np.testing.assert_allclose(matrix, old[:2], atol=1e-12)

    # On a square image that is geometry 2 seen in a mirror along the diagonal (transposed).
    images = digits(8)
    transforms = Augmenter(**WILD).sample(8, 28, 28, np.random.default_rng(2))
    exchanged = Transforms(
        transforms.angle,
        transforms.shift_y,
        transforms.shift_x,
        transforms.shear,
        transforms.zoom_y,
        transforms.zoom_x,
    )
    before = Augmenter(**WILD, geometry=1).apply(images, transforms)
    mirrored = Augmenter(**WILD).apply(images.transpose(0, 2, 1), exchanged).transpose(0, 2, 1)
    np.testing.assert_allclose(before, mirrored, atol=1e-5)


def test_sampled_ranges_follow_keras():
    augmenter = Augmenter(
        rotation_range=10, width_shift_range=0.25, height_shift_range=0.1, shear_range=5
    )
    t = augmenter.sample(5000, 20, 40, np.random.default_rng(3))
    assert np.abs(t.angle).max() <= 10 and np.abs(t.angle).max() > 9.9
    assert np.abs(t.shift_y).max() <= 2.0 and np.abs(t.shift_y).max() > 1.98  # 0.1 * height 20
    assert np.abs(t.shift_x).max() <= 10.0 and np.abs(t.shift_x).max() > 9.9  # 0.25 * width 40
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
    with pytest.raises(ValueError, match=r"geometry: expected one of \(1, 2\), found 3"):
        Augmenter(geometry=3)


def test_config_round_trips_through_json():
    augmenter = Augmenter(
        rotation_range=7.5, zoom_range=0.1, fill_mode="constant", cval=0.5, method="reference"
    )
    config = json.loads(json.dumps(augmenter.to_config()))
    assert config["rotation_range"] == 7.5
    assert Augmenter.from_config(config) == augmenter
    assert config["geometry"] == 2
    with pytest.raises(ValueError, match="unknown keys \\['brightness'\\]"):
        Augmenter.from_config({**config, "brightness": 0.2})


def test_a_config_saved_before_geometry_existed_keeps_its_old_maps():
    saved = {  # what a checkpoint written before `geometry` holds
        "rotation_range": 10.0,
        "zoom_range": 0.15,
        "width_shift_range": 0.15,
        "height_shift_range": 0.15,
        "shear_range": 10.0,
        "fill_mode": "nearest",
        "cval": 0.0,
        "order": 1,
        "method": "fast",
    }
    resumed = Augmenter.from_config(saved)
    assert resumed == Augmenter(**saved, geometry=1)
    assert resumed.to_config() == {**saved, "geometry": 1}  # the resumed run records it


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
