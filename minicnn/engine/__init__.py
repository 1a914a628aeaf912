"""The CPU engine: the same model, run fast on NumPy (layouts, blocking, threads).

The plain layers in minicnn.layers are the textbook algorithm; this package computes the same
thing faster on the CPU. Choose it with `model.use_engine(CPUEngine())` (see CPUEngine).
Importing it changes nothing: its process-wide settings are made when a model starts using it.
"""

from minicnn.engine.cpu import CPUEngine

__all__ = ["CPUEngine"]
