"""minicnn: a small, readable convolutional network framework written in NumPy.

The layers (minicnn.layers) are the textbook algorithm and run on NumPy or CuPy
(minicnn.backend); minicnn.engine runs the same model faster on the CPU. Importing minicnn
changes nothing in the process: no allocator setting, no thread pool, no environment read.
"""

from minicnn import backend, callbacks, engine, gradcheck, initializers, layers, losses, optimizers
from minicnn.backend import get_array_module, set_backend, to_device, to_numpy
from minicnn.callbacks import EarlyStopping, History, ModelCheckpoint, ReduceLROnPlateau
from minicnn.engine import CPUEngine
from minicnn.layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.model import NonFiniteLossError, Sequential, load
from minicnn.optimizers import SGD, Adam
from minicnn.serialization import ModelFileError

__version__ = "0.1.0"

__all__ = [
    "backend",
    "callbacks",
    "engine",
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
    "CPUEngine",
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
    "load",
    "SGD",
    "Adam",
    "ModelFileError",
]
