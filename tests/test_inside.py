"""Tests of the demo's inside panels (kannada.inside): the convolution blocks, their
activations, the saliency (from minicnn's backward, checked against a numerical gradient) and
the pictures drawn from them."""

from __future__ import annotations

import numpy as np
import pytest

import minicnn
from kannada.inside import (
    GAP_LEVEL,
    MAPS_SHOWN,
    conv_blocks,
    heat_overlay,
    layer_outputs,
    look_inside,
    look_inside_all,
    map_grid,
    one_hot,
    saliency,
    saliency_pictures,
    strongest_channels,
)
from kannada.model import build_model
from kannada.preprocess import Preprocessing, scale_images
from kannada.zca import ZCA
from minicnn.gradcheck import numerical_gradient, relative_error


@pytest.fixture(scope="module")
def digit() -> np.ndarray:
    """A uint8 (28, 28) ring, roughly a drawn ೦."""
    rows, cols = np.mgrid[:28, :28]
    radius = np.hypot((rows - 14) / 9, (cols - 14) / 6)
    return np.rint(255 * np.clip(1 - 4 * np.abs(radius - 1), 0, 1)).astype(np.uint8)


@pytest.fixture(scope="module")
def small_zca() -> ZCA:
    """A ZCA fitted on 60 random images: a stand-in for the one a kannada model carries."""
    return ZCA().fit(np.random.default_rng(2).random((60, 1, 28, 28)).astype(np.float32))


def small_model(dtype: str = "float64") -> minicnn.Sequential:
    """Two small convolution blocks (one with BatchNorm) and a dense layer, for exact checks."""
    return minicnn.Sequential(
        [
            minicnn.Conv2D(3, 3, padding="same"),
            minicnn.BatchNorm(),
            minicnn.ReLU(),
            minicnn.MaxPool2D(2),
            minicnn.Conv2D(4, 3, padding="same"),
            minicnn.ReLU(),
            minicnn.Flatten(),
            minicnn.Dense(10),
        ],
        seed=0,
        dtype=dtype,
    )


def test_the_blocks_of_the_seed_cnn_are_its_four_convolutions_with_their_relus():
    blocks = conv_blocks(build_model(seed=0))
    assert [block.name for block in blocks] == [
        "conv2d + re_lu",
        "conv2d_1 + re_lu_1",
        "conv2d_2 + re_lu_2",
        "conv2d_3 + re_lu_3",
    ]
    assert [block.shape for block in blocks] == [(32, 28, 28)] * 2 + [(64, 14, 14)] * 2
    assert [(block.first, block.last) for block in blocks] == [(0, 1), (2, 3), (6, 7), (8, 9)]


def test_a_block_takes_the_batchnorm_and_relu_after_its_convolution():
    blocks = conv_blocks(small_model())
    assert [(block.name, block.first, block.last) for block in blocks] == [
        ("conv2d + batch_norm + re_lu", 0, 2),
        ("conv2d_1 + re_lu_1", 4, 5),
    ]
    assert conv_blocks(minicnn.Sequential([minicnn.Flatten(), minicnn.Dense(10)])) == []


def test_layer_outputs_are_the_plain_layers_run_one_by_one():
    model = build_model(seed=0)
    x = np.random.default_rng(0).random((2, 1, 28, 28)).astype(np.float32)
    outputs = layer_outputs(model, x)
    assert [output.shape[1:] for output in outputs] == [
        tuple(layer.output_shape) for layer in model.layers
    ]
    np.testing.assert_allclose(outputs[-1], model.predict_logits(x), rtol=1e-5, atol=1e-5)
    # With the engine the model's answer is the same (the engine keeps no intermediate outputs).
    fast = build_model(seed=0).use_engine(minicnn.CPUEngine(threads=1))
    try:
        np.testing.assert_allclose(outputs[-1], fast.predict_logits(x), rtol=1e-4, atol=1e-4)
    finally:
        fast.use_engine(None)


def test_look_inside_shows_every_channel_of_the_first_block_and_the_strongest_of_the_others(
    digit,
):
    model, preprocessing = build_model(seed=0), Preprocessing()
    inside = look_inside(model, preprocessing, digit, target=3)
    outputs = layer_outputs(model, preprocessing(digit[None]))
    assert inside.target == 3 and len(inside.blocks) == 4
    first, *deeper = inside.blocks
    np.testing.assert_array_equal(first.channels, np.arange(32))
    np.testing.assert_array_equal(first.maps, outputs[1][0])
    for view in deeper:
        maps = outputs[view.block.last][0]
        assert view.maps.shape == (MAPS_SHOWN, *view.block.shape[1:])
        np.testing.assert_array_equal(view.maps, maps[view.channels])
        means = maps.mean(axis=(1, 2))
        assert np.all(np.diff(means[view.channels]) <= 0)  # strongest first
        assert means[view.channels].min() >= np.delete(means, view.channels).max()
    assert inside.saliency.shape == (28, 28)


def test_one_pass_gives_a_batchs_logits_activations_and_saliency(digit, small_zca):
    """look_inside_all runs the plain layers forward once and back once: the same logits and
    maps as layer_outputs, the same saliency as saliency() (which runs the layers again)."""
    model, preprocessing = small_model("float64"), Preprocessing(small_zca)
    digits = np.stack([digit, digit[::-1], digit.T])
    logits, insides = look_inside_all(model, preprocessing, digits)
    outputs = layer_outputs(model, preprocessing(digits))
    np.testing.assert_array_equal(logits, outputs[-1])
    targets = logits.argmax(axis=1)
    assert [inside.target for inside in insides] == list(targets)
    expected = saliency(model, preprocessing, scale_images(digits), targets)[:, 0]
    for n, inside in enumerate(insides):
        np.testing.assert_array_equal(inside.saliency, expected[n])
        for view in inside.blocks:
            np.testing.assert_array_equal(view.maps, outputs[view.block.last][n][view.channels])
    _, [chosen] = look_inside_all(model, preprocessing, digits[:1], [7])
    assert chosen.target == 7


def test_strongest_channels_keeps_all_of_a_small_block_in_order():
    maps = np.arange(3 * 4, dtype=np.float32).reshape(3, 2, 2)
    np.testing.assert_array_equal(strongest_channels(maps, 5), [0, 1, 2])
    np.testing.assert_array_equal(strongest_channels(maps, 2), [2, 1])


def test_the_saliency_is_minicnns_input_gradient_of_the_class_score():
    model = small_model("float32")
    pixels = np.random.default_rng(1).random((2, 1, 28, 28)).astype(np.float32)
    expected = model.input_gradient(pixels, one_hot([4, 7], 10, np.float32))
    np.testing.assert_array_equal(saliency(model, Preprocessing(), pixels, [4, 7]), expected)


def test_the_saliency_matches_a_numerical_gradient():
    """d(score of class 6) / d(pixel) by central differences in float64, pixel by pixel."""
    model = small_model("float64")
    # Pixels near the middle of [0, 1]: BatchNorm's running statistics (mean 0, variance 1 in a
    # new model) then keep the convolution outputs away from the ReLU's kink at 0.
    pixels = np.random.default_rng(3).uniform(0.2, 0.8, (1, 1, 28, 28))

    def score() -> float:
        return float(model.forward(pixels, training=False)[0, 6])

    analytic = saliency(model, Preprocessing(), pixels, [6])
    assert analytic.shape == pixels.shape and analytic.dtype == np.float64
    assert relative_error(analytic, numerical_gradient(score, pixels)) < 1e-6


def test_the_saliency_through_zca_matches_numerical_derivatives(small_zca):
    """With ZCA before the network: the derivative along random directions v of the pixels,
    d score(pixels + t v) / dt at t = 0 by central differences, is <saliency, v>."""
    model, preprocessing = small_model("float64"), Preprocessing(small_zca)
    rng = np.random.default_rng(4)
    pixels = rng.uniform(0.2, 0.8, (1, 1, 28, 28))
    analytic = saliency(model, preprocessing, pixels, [6])
    for _ in range(3):
        direction, t = rng.standard_normal(pixels.shape), np.zeros(1)

        def score(direction=direction, t=t) -> float:
            moved = preprocessing.whiten(pixels + t[0] * direction)
            return float(model.forward(moved, training=False)[0, 6])

        numeric = numerical_gradient(score, t)
        assert relative_error(np.array([np.sum(analytic * direction)]), numeric) < 1e-6


def test_map_grid_tiles_the_maps_on_one_brightness_scale():
    maps = np.zeros((10, 3, 2), dtype=np.float32)
    maps[0] = 4.0  # the strongest: white
    maps[1] = 1.0  # a quarter of it: dark grey, not rescaled to white
    grid = map_grid(maps, columns=4)
    assert grid.dtype == np.uint8 and grid.shape == (3 * 4 - 1, 4 * 3 - 1)
    assert np.all(grid[0:3, 0:2] == 255) and np.all(grid[0:3, 3:5] == 64)
    assert np.all(grid[3, :] == GAP_LEVEL) and np.all(grid[:, 2] == GAP_LEVEL)
    assert np.all(grid[4:7, 0:2] == 0)  # the fifth map (zeros) starts the second row
    assert np.all(grid[8:11, 6:8] == GAP_LEVEL)  # after the tenth map: nothing drawn
    assert np.all(map_grid(np.zeros((2, 2, 2), dtype=np.float32), columns=2)[:, [0, 1, 3, 4]] == 0)


def test_heat_over_the_digit_and_the_two_saliency_pictures(digit):
    assert np.array_equal(heat_overlay(digit, np.zeros((28, 28)))[:, :, 0], np.rint(digit / 2))
    full = heat_overlay(digit, np.ones((28, 28)))
    assert full.shape == (28, 28, 3) and full.dtype == np.uint8 and np.all(full == 255)
    gradient = np.zeros((28, 28))
    gradient[14, 5] = -2.0  # the sign does not matter: both directions change the score
    pixelwise, smooth = saliency_pictures(digit, gradient)
    assert pixelwise.shape == smooth.shape == (28, 28, 3)
    assert tuple(pixelwise[14, 5]) == (255, 255, 255)
    assert tuple(smooth[14, 5]) == (255, 255, 255) and smooth[14, 6, 0] > smooth[14, 6, 2]
    blank, _ = saliency_pictures(digit, np.zeros((28, 28)))
    assert np.array_equal(blank[:, :, 0], np.rint(digit / 2))
