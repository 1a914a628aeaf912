"""im2col and col2im: the unrolling that turns a convolution into one matrix product.

im2col copies every receptive field of an (N, C, H, W) batch into one row; col2im is its
adjoint, adding every row back onto the pixels it came from. Both loop over the KH*KW kernel
taps only, each tap one strided slice of the whole batch, and run on NumPy and CuPy alike.
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
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
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


# --8<-- [start:im2col]
def im2col(x, kernel_hw, stride_hw, padding):
    """Unroll receptive fields into rows: (N, C, H, W) -> (N*OH*OW, C*KH*KW).

    Row (n, i, j) holds the field of output pixel (i, j) of image n; its columns run over
    (c, a, b), channel first, the same order as a kernel W (F, C, KH, KW) reshaped to (F, -1).
    `padding` is ((top, bottom), (left, right)) zeros around each image.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (pad_h, pad_w) = kernel_hw, stride_hw, padding
    oh, ow = output_size(h, kh, sh, pad_h), output_size(w, kw, sw, pad_w)
    x = xp.pad(x, ((0, 0), (0, 0), pad_h, pad_w))
    col = xp.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for a in range(kh):  # tap (a, b) of every field at once: one strided slice
        for b in range(kw):
            col[:, :, a, b] = x[:, :, a : a + sh * oh : sh, b : b + sw * ow : sw]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, c * kh * kw)


# --8<-- [end:im2col]


# --8<-- [start:col2im]
def col2im(col, x_shape, kernel_hw, stride_hw, padding):
    """The adjoint of im2col: add each row's values back onto the pixels they were copied from.

    col (N*OH*OW, C*KH*KW) -> (N, C, H, W). Overlapping fields add up with `+=` over the
    taps, a whole strided slice at a time (np.add.at would do it value by value).
    """
    xp = get_array_module(col)
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (pad_h, pad_w) = kernel_hw, stride_hw, padding
    oh, ow = output_size(h, kh, sh, pad_h), output_size(w, kw, sw, pad_w)
    col = col.reshape(n, oh, ow, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)  # (N, C, KH, KW, OH, OW)
    image = xp.zeros((n, c, h + sum(pad_h), w + sum(pad_w)), dtype=col.dtype)
    for a in range(kh):
        for b in range(kw):
            image[:, :, a : a + sh * oh : sh, b : b + sw * ow : sw] += col[:, :, a, b]
    return image[:, :, pad_h[0] : pad_h[0] + h, pad_w[0] : pad_w[0] + w]


# --8<-- [end:col2im]
