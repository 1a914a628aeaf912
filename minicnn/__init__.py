"""minicnn: a small, readable convolutional network framework written in NumPy.

The array backend is NumPy or CuPy (minicnn.backend); layers live in minicnn.layers.
"""

from minicnn import backend, callbacks, gradcheck, initializers, layers, losses, optimizers
from minicnn.backend import get_array_module, set_backend, to_device, to_numpy
from minicnn.callbacks import EarlyStopping, History, ModelCheckpoint, ReduceLROnPlateau
from minicnn.layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.model import NonFiniteLossError, Sequential
from minicnn.optimizers import SGD, Adam
from minicnn.serialization import ModelFileError, load, save

__version__ = "0.1.0"

__all__ = [
    "backend",
    "callbacks",
    "gradcheck",
    "initializers",
    "layers",
    "losses",
    "optimizers",
    "get_array_module",
    "set_backend",
    "to_device",
    "to_numpy",
    "EarlyStopping",
    "History",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "BatchNorm",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "MaxPool2D",
    "ReLU",
    "SoftmaxCrossEntropy",
    "NonFiniteLossError",
    "Sequential",
    "SGD",
    "Adam",
    "ModelFileError",
    "load",
    "save",
]
