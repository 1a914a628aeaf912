"""im2col and col2im for channels-last (NHWC) images: the unrolling behind Conv2D.

im2col turns every receptive field into one row, so a convolution becomes one matrix product.
Both work for NumPy and CuPy arrays (they only use strides, copyto and slicing).
"""

from __future__ import annotations

from minicnn.backend import get_array_module


def pair(value, name: str) -> tuple[int, int]:
    """2 -> (2, 2); (2, 3) -> (2, 3); anything else is an error naming the argument."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, int) for v in value)
    ):
        return (int(value[0]), int(value[1]))
    raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same" rule: output = ceil(size / stride); odd extra padding goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def resolve_padding(
    padding, size_hw, kernel_hw, stride_hw
) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) for padding "valid", "same" or an int (or int pair)."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        return (
            same_padding(size_hw[0], kernel_hw[0], stride_hw[0]),
            same_padding(size_hw[1], kernel_hw[1], stride_hw[1]),
        )
    ph, pw = pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return (ph, ph), (pw, pw)


def output_size(size: int, kernel: int, stride: int, pad: tuple[int, int]) -> int:
    """Number of kernel positions along one axis."""
    return (size + pad[0] + pad[1] - kernel) // stride + 1


def pad_nhwc(x, pad_h: tuple[int, int], pad_w: tuple[int, int]):
    """Zero-pad the H and W axes of an (N, H, W, C) array (returns `x` itself when no padding)."""
    if pad_h == (0, 0) and pad_w == (0, 0):
        return x
    xp = get_array_module(x)
    n, h, w, c = x.shape
    padded = xp.zeros((n, h + sum(pad_h), w + sum(pad_w), c), dtype=x.dtype)
    padded[:, pad_h[0] : pad_h[0] + h, pad_w[0] : pad_w[0] + w, :] = x
    return padded


def window_view(x_pad, kernel_hw, stride_hw, out_hw):
    """A (N, OH, OW, KH, KW, C) strided view of a padded (N, H, W, C) array: no copy.

    Element [n, i, j, a, b, c] is x_pad[n, i*stride + a, j*stride + b, c], the (a, b) tap of
    the receptive field of output pixel (i, j).
    """
    xp = get_array_module(x_pad)
    s_n, s_h, s_w, s_c = x_pad.strides
    shape = (x_pad.shape[0], out_hw[0], out_hw[1], kernel_hw[0], kernel_hw[1], x_pad.shape[3])
    strides = (s_n, s_h * stride_hw[0], s_w * stride_hw[1], s_h, s_w, s_c)
    return xp.lib.stride_tricks.as_strided(x_pad, shape=shape, strides=strides)


def im2col(x_pad, kernel_hw, stride_hw, out_hw, out=None):
    """Unroll receptive fields into rows: (N, H, W, C) -> (N*OH*OW, KH*KW*C).

    One copy from a strided view into a buffer (`out` when given, C-contiguous, else a new one);
    the column order is (kh, kw, c), so each row is KH runs of KW*C contiguous values
    (docs/09-speed-and-gpu.md: 1.7x faster than reshaping the view and 3.3x faster than KH*KW slice copies).
    Use the returned array: with one channel it is a transposed view of the buffer (below).
    """
    xp = get_array_module(x_pad)
    view = window_view(x_pad, kernel_hw, stride_hw, out_hw)
    n, oh, ow, kh, kw, c = view.shape
    col = xp.empty((n * oh * ow, kh * kw * c), dtype=x_pad.dtype) if out is None else out
    if c == 1:
        # One channel (a greyscale first layer): each row would be KH runs of only KW values,
        # and that copy crawls. Copied tap by tap instead, every tap a whole shifted image, the
        # buffer holds col's transpose (KH*KW, N*OH*OW); its .T is the same matrix in Fortran
        # order, which matmul hands to BLAS as it is. seed-cnn's first layer: im2col 1.11 ->
        # 0.25 ms, the whole convolution 1.9 -> 0.9 ms per 64 images.
        taps = col.reshape(-1).reshape(kh * kw, n * oh * ow)
        xp.copyto(taps.reshape(kh, kw, 1, n, oh, ow), view.transpose(3, 4, 5, 0, 1, 2))
        return taps.T
    xp.copyto(col.reshape(view.shape), view)
    return col


def col2im(col, padded_shape, kernel_hw, stride_hw, out_hw):
    """The adjoint of im2col: add every row back onto the pixels it was copied from.

    col (N*OH*OW, KH*KW*C) -> (N, Hp, Wp, C). Loops over the KH*KW kernel taps only; each `+=`
    adds a whole strided slice, so overlapping windows accumulate without np.add.at (which is
    unbuffered and 2-2.6x slower here).
    """
    xp = get_array_module(col)
    n, hp, wp, c = padded_shape
    (kh, kw), (sh, sw), (oh, ow) = kernel_hw, stride_hw, out_hw
    col = col.reshape(n, oh, ow, kh, kw, c)
    image = xp.zeros(padded_shape, dtype=col.dtype)
    for a in range(kh):
        for b in range(kw):
            image[:, a : a + sh * oh : sh, b : b + sw * ow : sw, :] += col[:, :, :, a, b, :]
    return image
