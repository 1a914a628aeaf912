"""Channels-last (NHWC) unrolling for the engine's convolution.

The plain im2col (minicnn.layers.im2col) works on NCHW images and orders each row (c, a, b).
Here the images are (N, H, W, C) and each row is ordered (a, b, c): KH runs of KW*C values that
are contiguous in memory, copied with ONE np.copyto from a strided view, and the product of
the rows with the kernel, (N*OH*OW, F), already is the next layer's channels-last activation.
Rows are built a few images at a time, into a reused buffer, so they are still in the cache
when the matrix product reads them.
"""

from __future__ import annotations

import numpy as np

BLOCK_BYTES = 2 * 2**20  # im2col rows per block: about the size of a core's L2 cache


def window_view(x_pad, kernel_hw, stride_hw, out_hw):
    """A (N, OH, OW, KH, KW, C) strided view of a padded (N, H, W, C) array: no copy.

    Element [n, i, j, a, b, c] is x_pad[n, i*stride + a, j*stride + b, c], the (a, b) tap of
    the receptive field of output pixel (i, j).
    """
    s_n, s_h, s_w, s_c = x_pad.strides
    shape = (x_pad.shape[0], out_hw[0], out_hw[1], kernel_hw[0], kernel_hw[1], x_pad.shape[3])
    strides = (s_n, s_h * stride_hw[0], s_w * stride_hw[1], s_h, s_w, s_c)
    return np.lib.stride_tricks.as_strided(x_pad, shape=shape, strides=strides, writeable=False)


# --8<-- [start:im2col]
def im2col(x_pad, kernel_hw, stride_hw, out_hw, out=None):
    """Unroll receptive fields into rows: (N, H, W, C) -> (N*OH*OW, KH*KW*C), columns (a, b, c).

    One copy from a strided view into a buffer (`out` when given, C-contiguous, else a new
    one). Use the returned array: with one channel it is a transposed view of the buffer.
    """
    view = window_view(x_pad, kernel_hw, stride_hw, out_hw)
    n, oh, ow, kh, kw, c = view.shape
    col = np.empty((n * oh * ow, kh * kw * c), dtype=x_pad.dtype) if out is None else out
    if c == 1:
        # One channel (a greyscale first layer): each row would be KH runs of only KW values,
        # and that copy crawls. Copied tap by tap instead, every tap a whole shifted image, the
        # buffer holds col's transpose (KH*KW, N*OH*OW); its .T is the same matrix in Fortran
        # order, which matmul hands to BLAS as it is.
        taps = col.reshape(-1).reshape(kh * kw, n * oh * ow)
        np.copyto(taps.reshape(kh, kw, 1, n, oh, ow), view.transpose(3, 4, 5, 0, 1, 2))
        return taps.T
    np.copyto(col.reshape(view.shape), view)
    return col


# --8<-- [end:im2col]


def col2im(col, padded_shape, kernel_hw, stride_hw, out_hw):
    """The adjoint of im2col: col (N*OH*OW, KH*KW*C) -> (N, Hp, Wp, C), adding overlaps."""
    n, hp, wp, c = padded_shape
    (kh, kw), (sh, sw), (oh, ow) = kernel_hw, stride_hw, out_hw
    col = col.reshape(n, oh, ow, kh, kw, c)
    image = np.zeros(padded_shape, dtype=col.dtype)
    for a in range(kh):
        for b in range(kw):
            image[:, a : a + sh * oh : sh, b : b + sw * ow : sw, :] += col[:, :, :, a, b, :]
    return image


def block_scratch(n: int, rows: int, columns: int, dtype):
    """A reusable buffer for the im2col rows of min(n, images per BLOCK_BYTES) images."""
    block = max(1, BLOCK_BYTES // (rows * columns * np.dtype(dtype).itemsize))
    return np.empty((min(block, n) * rows, columns), dtype=dtype)


def unrolled_blocks(images, kernel_hw, stride_hw, pad_h, pad_w, out_hw, scratch):
    """Yield (first, last, col) over the (N, H, W, C) `images`, a block of images at a time:
    col is the (images*OH*OW, KH*KW*C) im2col of images[first:last] after zero padding,
    written into `scratch`, whose size sets the block."""
    rows = out_hw[0] * out_hw[1]
    block = scratch.shape[0] // rows
    n, h, w, c = images.shape
    # One zero-padded buffer for all the blocks: only its interior changes from block to block,
    # so the zero border is written once.
    padded = None
    if pad_h != (0, 0) or pad_w != (0, 0):
        padded = np.zeros((block, h + sum(pad_h), w + sum(pad_w), c), dtype=images.dtype)
        interior = padded[:, pad_h[0] : pad_h[0] + h, pad_w[0] : pad_w[0] + w, :]
    for first in range(0, n, block):
        last = min(first + block, n)
        if padded is None:  # no padding: unroll the images themselves
            source = images[first:last]
        else:
            interior[: last - first] = images[first:last]
            source = padded[: last - first]
        col = im2col(source, kernel_hw, stride_hw, out_hw, out=scratch[: (last - first) * rows])
        yield first, last, col
