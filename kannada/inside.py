"""Inside the network: what the demo's "inside" panels show, computed by minicnn from the model.

For each digit: the activations of each convolution block (the plain layers run one by one, as
the course teaches them), where the network looked (the gradient of the predicted class's
score with respect to the pixels, by the same layers' backward, as `Sequential.input_gradient`
computes it), and the rendering of both as small images. One forward pass serves the logits,
the activations and the backward pass. The web page is in kannada/demo.py; nothing here knows
about Gradio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

import minicnn
from kannada.preprocess import Preprocessing, scale_images

# Layers that belong to the convolution before them: they act on each value (or channel) and
# keep its shape, so the block's output is the convolution's output as the next layer sees it.
BLOCK_FOLLOWERS = (minicnn.ReLU, minicnn.BatchNorm)
MAPS_SHOWN = 16  # channels shown for the blocks after the first (the first shows them all)
GRID_COLUMNS = 8
GAP_LEVEL = 96  # the grey of the one-pixel lines between the maps of a grid
# Saliency is scaled so that this percentile of |gradient| is full strength: a few extreme
# pixels would otherwise leave all the others dark.
SALIENCY_PERCENTILE = 99
SMOOTHING = 1.0  # pixels: the standard deviation of the Gaussian for the smoothed saliency


@dataclass(frozen=True)
class ConvBlock:
    """A Conv2D and the ReLU / BatchNorm layers right after it.

    name: the layers' names, e.g. "conv2d + re_lu"; first, last: indices into model.layers;
    shape: the block's output shape (C, H, W).
    """

    name: str
    first: int
    last: int
    shape: tuple[int, ...]


@dataclass(frozen=True)
class BlockMaps:
    """One block's activations for one digit: maps (K, H, W) float32 >= 0 for the channels
    listed in `channels` (all of them, or the most active), in the order shown."""

    block: ConvBlock
    channels: np.ndarray
    maps: np.ndarray


@dataclass(frozen=True)
class Inside:
    """What the inside panels show for one digit.

    blocks: the activations of every convolution block; target: the class explained;
    saliency: float (28, 28), d(score of target) / d(pixel), pixels in [0, 1].
    """

    blocks: list[BlockMaps]
    target: int
    saliency: np.ndarray


def conv_blocks(model: minicnn.Sequential) -> list[ConvBlock]:
    """The convolution blocks of a model, first to last (none for a model without Conv2D)."""
    blocks = []
    layers = model.layers
    for first, layer in enumerate(layers):
        if not isinstance(layer, minicnn.Conv2D):
            continue
        last = first
        while last + 1 < len(layers) and isinstance(layers[last + 1], BLOCK_FOLLOWERS):
            last += 1
        name = " + ".join(layer.name for layer in layers[first : last + 1])
        blocks.append(ConvBlock(name, first, last, tuple(layers[last].output_shape)))
    return blocks


def layer_outputs(model: minicnn.Sequential, x: np.ndarray) -> list[np.ndarray]:
    """Run the plain layers one by one in inference mode; returns every layer's output.

    x: (N, *model.input_shape), the network's input (after the preprocessing).
    """
    outputs = []
    h = x.astype(model.dtype, copy=False)
    for layer in model.layers:
        h = layer.forward(h, training=False)
        outputs.append(h)
    return outputs


def one_hot(classes, count: int, dtype) -> np.ndarray:
    """(N,) class indices -> (N, count) with a 1 at each row's class: the dlogits that pick
    each row's class score."""
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    rows = np.zeros((len(classes), count), dtype=dtype)
    rows[np.arange(len(classes)), classes] = 1
    return rows


def backward_to_input(model: minicnn.Sequential, dlogits: np.ndarray) -> np.ndarray:
    """d(sum(logits * dlogits)) / d(the network's input): the plain layers' backward in reverse
    order, right after layer_outputs ran them forward on that input (each layer keeps in its
    cache what its backward needs, in inference mode too). These are the steps of
    Sequential.input_gradient, which first runs the layers forward once more.

    dlogits: (N, classes), e.g. one_hot(classes). Returns an array of the input's shape.
    """
    grad = dlogits
    for layer in reversed(model.layers):
        grad = layer.backward(grad)
    return grad


def pixel_gradient(model: minicnn.Sequential, preprocessing: Preprocessing, classes) -> np.ndarray:
    """d(score of each image's class) / d(pixel), right after layer_outputs ran the network on
    preprocessing.whiten(pixels): back through the layers (backward_to_input), then through
    the preprocessing. With ZCA the network's input is (x - mean) @ W, a linear map, so the
    gradient with respect to the pixels is the input gradient times W^T.

    classes: (N,). Returns an array of the pixels' shape (N, 1, 28, 28).
    """
    grad = backward_to_input(model, one_hot(classes, model.output_shape[-1], model.dtype))
    if preprocessing.zca is None:
        return grad
    n = len(grad)
    return (grad.reshape(n, -1) @ preprocessing.zca.matrix.T).reshape(grad.shape)


def saliency(
    model: minicnn.Sequential, preprocessing: Preprocessing, pixels: np.ndarray, classes
) -> np.ndarray:
    """d(score of each image's class) / d(pixel): the gradient through the whole network in
    inference mode, by minicnn's own backward (the plain layers forward, then back).

    pixels: float (N, 1, 28, 28) in [0, 1] (kannada.preprocess.scale_images); classes: (N,).
    Returns an array of the pixels' shape.
    """
    layer_outputs(model, preprocessing.whiten(pixels))
    return pixel_gradient(model, preprocessing, classes)


def strongest_channels(maps: np.ndarray, count: int) -> np.ndarray:
    """The indices of the `count` channels of maps (C, H, W) with the largest mean, largest
    first (all channels, in order, when there are no more than `count`)."""
    if len(maps) <= count:
        return np.arange(len(maps))
    return np.argsort(-maps.mean(axis=(1, 2)), kind="stable")[:count]


def look_inside_all(
    model: minicnn.Sequential, preprocessing: Preprocessing, digits: np.ndarray, targets=None
) -> tuple[np.ndarray, list[Inside]]:
    """The network's logits for several digits and what the inside panels show for each: one
    forward pass of the plain layers gives the logits and every block's activations, one
    backward pass from there the saliency of each digit's class.

    digits: uint8 (N, 28, 28), 255 = ink (kannada.drawing.prepare_digit); targets: (N,) the
    class each saliency explains (default: the predicted one, the largest logit).
    Returns (logits (N, classes), one Inside per digit).
    """
    scaled = scale_images(digits)  # float32 (N, 1, 28, 28) in [0, 1]
    outputs = layer_outputs(model, preprocessing.whiten(scaled))
    logits = outputs[-1]
    targets = logits.argmax(axis=1) if targets is None else np.asarray(targets).reshape(-1)
    gradients = pixel_gradient(model, preprocessing, targets)[:, 0]  # (N, 28, 28)
    blocks = conv_blocks(model)
    insides = []
    for n, target in enumerate(targets):
        views = []
        for k, block in enumerate(blocks):
            maps = outputs[block.last][n]  # (C, H, W)
            channels = strongest_channels(maps, len(maps) if k == 0 else MAPS_SHOWN)
            views.append(BlockMaps(block, channels, maps[channels]))
        insides.append(Inside(views, int(target), gradients[n]))
    return logits, insides


def look_inside(
    model: minicnn.Sequential, preprocessing: Preprocessing, digit: np.ndarray, target: int
) -> Inside:
    """Everything the inside panels show for one digit, explaining class `target`.

    digit: uint8 (28, 28), 255 = ink (kannada.drawing.prepare_digit).
    """
    _, [inside] = look_inside_all(model, preprocessing, digit[None], [target])
    return inside


# -- rendering: small images the page enlarges ---------------------------------------------


def map_grid(maps: np.ndarray, columns: int = GRID_COLUMNS) -> np.ndarray:
    """Activation maps (K, H, W) >= 0 side by side, `columns` per row, as one uint8 grey image
    with one-pixel lines between them. One brightness scale for all (white = the largest
    value), so a dark map is a channel that barely responds, not a rescaled one."""
    count, height, width = maps.shape
    rows = -(-count // columns)
    grid = np.full((rows * (height + 1) - 1, columns * (width + 1) - 1), GAP_LEVEL, dtype=np.uint8)
    peak = float(maps.max()) if count else 0.0
    levels = _to_levels(maps, peak)
    for k in range(count):
        top, left = (k // columns) * (height + 1), (k % columns) * (width + 1)
        grid[top : top + height, left : left + width] = levels[k]
    return grid


def heat_overlay(digit: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """A heat map drawn over the digit: uint8 (28, 28, 3), the digit in dim grey and the heat
    from dark red through yellow to white where it is strongest.

    digit: uint8 (28, 28); heat: float (28, 28), 0 = none, 1 (or more) = full strength.
    """
    strength = np.clip(heat, 0, 1)[:, :, None]
    # The "hot" colour scale: red rises first, then green, then blue.
    hot = np.concatenate([np.clip(3 * strength - k, 0, 1) for k in range(3)], axis=-1)
    grey = 0.5 * digit[:, :, None] / 255
    return np.rint(255 * ((1 - strength) * grey + strength * hot)).astype(np.uint8)


def saliency_pictures(digit: np.ndarray, gradient: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two pictures of |gradient| over the digit: pixel by pixel, and smoothed over neighbours.

    The gradient changes a lot from one pixel to the next; smoothing with a Gaussian of
    SMOOTHING pixels shows the regions the score depends on. Each is scaled to its own
    strongest level (the pixel-by-pixel one to its SALIENCY_PERCENTILE percentile, so that a
    few extreme pixels do not leave the others dark). Returns two uint8 (28, 28, 3).
    """
    magnitude = np.abs(gradient)
    # A gradient on fewer pixels than the percentile leaves out has that percentile at 0.
    peak = float(np.percentile(magnitude, SALIENCY_PERCENTILE)) or float(magnitude.max())
    smooth = ndimage.gaussian_filter(magnitude, SMOOTHING)
    return (
        heat_overlay(digit, _relative(magnitude, peak)),
        heat_overlay(digit, _relative(smooth, float(smooth.max()))),
    )


def _relative(values: np.ndarray, peak: float) -> np.ndarray:
    """values / peak (all 0 when peak is 0)."""
    return values / peak if peak > 0 else np.zeros_like(values)


def _to_levels(maps: np.ndarray, peak: float) -> np.ndarray:
    """Values in [0, peak] -> uint8 0..255 (all 0 when peak is 0)."""
    return np.rint(np.clip(_relative(maps, peak), 0, 1) * 255).astype(np.uint8)
