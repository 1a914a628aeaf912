"""The layers of minicnn: each a plain class with forward/backward and params/grads dicts."""

from minicnn.layers.activation import ReLU
from minicnn.layers.base import Layer
from minicnn.layers.batchnorm import BatchNorm
from minicnn.layers.conv import Conv2D
from minicnn.layers.dense import Dense
from minicnn.layers.dropout import Dropout
from minicnn.layers.pool import MaxPool2D
from minicnn.layers.reshape import Flatten

# Used by minicnn.serialization to rebuild a model from its JSON architecture.
LAYER_TYPES = {
    cls.__name__: cls for cls in (Conv2D, MaxPool2D, ReLU, Dropout, Flatten, Dense, BatchNorm)
}

__all__ = [
    "Layer",
    "Conv2D",
    "MaxPool2D",
    "ReLU",
    "Dropout",
    "Flatten",
    "Dense",
    "BatchNorm",
    "LAYER_TYPES",
]
