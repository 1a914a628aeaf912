"""minicnn: a small, readable convolutional network framework written in NumPy.

The array backend is NumPy or CuPy (minicnn.backend); layers live in minicnn.layers.
"""

from minicnn import (
    backend,
    callbacks,
    gradcheck,
    initializers,
    layers,
    losses,
    memory,
    optimizers,
)
from minicnn.backend import get_array_module, set_backend, to_device, to_numpy
from minicnn.callbacks import EarlyStopping, History, ModelCheckpoint, ReduceLROnPlateau
from minicnn.layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.model import NonFiniteLossError, Sequential
from minicnn.optimizers import SGD, Adam
from minicnn.serialization import ModelFileError, load, save

__version__ = "0.1.0"

# Training allocates and frees the same large arrays every step; keep them in the process
# rather than page-faulting them in again each time (minicnn.memory: 3-15% per step).
if memory.enabled_by_environment():
    memory.keep_freed_memory()

__all__ = [
    "backend",
    "callbacks",
    "gradcheck",
    "initializers",
    "layers",
    "losses",
    "memory",
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
