"""minicnn: a small, readable convolutional network framework written in NumPy.

Optional CuPy backend for GPUs; see `minicnn.backend`.
"""
