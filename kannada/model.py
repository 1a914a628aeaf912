"""The networks for Kannada digits: the "seed-cnn" of the original Kaggle notebook, and the same
network with batch normalisation after every convolution and the first dense layer.

Two blocks of two 3x3 convolutions with max pooling and dropout, then a 256-unit dense layer.
"""

from __future__ import annotations

from kannada.digits import INPUT_SHAPE, NUM_CLASSES
from minicnn import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sequential

ARCHITECTURES = ("seed-cnn", "seed-cnn-bn")


def build_model(seed: int | None = None, architecture: str = "seed-cnn") -> Sequential:
    """The seed-cnn (see docs/09-speed-and-gpu.md), input (N, 1, 28, 28) -> logits (N, 10).

    Conv(32) ReLU Conv(32) ReLU MaxPool Dropout(.25) -> Conv(64) ReLU Conv(64) ReLU MaxPool
    Dropout(.25) -> Flatten Dense(256) ReLU Dropout(.5) Dense(10); every convolution is 3x3
    with "same" padding, so the pools take 28 -> 14 -> 7. "seed-cnn-bn" puts a BatchNorm
    between each convolution (and the 256-unit layer) and its ReLU. The last layer outputs
    logits: the softmax lives in the loss, and `model.predict` returns probabilities.
    `seed` fixes the initial weights (None: fresh random weights).
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture: expected one of {ARCHITECTURES}, found {architecture!r}")
    normalise = architecture == "seed-cnn-bn"

    def activated(layer) -> list:
        return [layer, BatchNorm(), ReLU()] if normalise else [layer, ReLU()]

    layers = [
        *activated(Conv2D(32, 3, padding="same")),
        *activated(Conv2D(32, 3, padding="same")),
        MaxPool2D(2),
        Dropout(0.25),
        *activated(Conv2D(64, 3, padding="same")),
        *activated(Conv2D(64, 3, padding="same")),
        MaxPool2D(2),
        Dropout(0.25),
        Flatten(),
        *activated(Dense(256)),
        Dropout(0.5),
        Dense(NUM_CLASSES),
    ]
    return Sequential(layers, input_shape=INPUT_SHAPE, seed=seed)
