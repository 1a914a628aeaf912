"""Conv2D: 2-D convolution (cross-correlation, as in PyTorch and Keras) by im2col + one GEMM.

Public layout is NCHW; inside, the layer works channels-last (NHWC), which makes the GEMM output
already the next activation and the im2col rows contiguous (docs/09-speed-and-gpu.md: 1.8x over NCHW).
The output is returned as an NCHW-shaped *view* of NHWC memory, so the next Conv2D gets its
NHWC layout back for free with a transpose.
"""

from __future__ import annotations

import numpy as np

from minicnn.backend import get_array_module
from minicnn.initializers import get_initializer
from minicnn.layers.base import Layer
from minicnn.layers.im2col import col2im, im2col, output_size, pair, resolve_padding
from minicnn.parallel import run_chunks, sum_in_chunk_order

BLOCK_BYTES = 2 * 2**20  # im2col rows per block: about the size of a core's L2 cache


def images_per_block(bytes_per_image: int, xp) -> int:
    """How many images' im2col rows to build at once so they fit BLOCK_BYTES (at least one).
    On a GPU there is no cache to fit: the whole chunk is one block."""
    if xp is not np:
        return 1 << 30
    return max(1, BLOCK_BYTES // bytes_per_image)


def unrolled_blocks(images, start, stop, kernel_hw, stride_hw, pad_h, pad_w, out_hw, scratch):
    """Yield (first, last, col) over [start, stop) of the (N, H, W, C) `images`, a block of
    images at a time: col is the (images*OH*OW, KH*KW*C) im2col of images[first:last] after
    zero padding, written into `scratch`, whose size sets the block.

    A few images at a time (about BLOCK_BYTES of rows) so that the rows are still in the cache
    when the GEMM reads them: 15-25% faster than one chunk-sized im2col followed by one GEMM.
    """
    rows = out_hw[0] * out_hw[1]
    block = scratch.shape[0] // rows
    xp = get_array_module(images)
    _, h, w, c = images.shape
    # One zero-padded buffer for all the blocks: only its interior changes from block to block,
    # so the zero border is written once (conv2's padding: 0.36 -> 0.24 ms per 64 images).
    padded = None
    if pad_h != (0, 0) or pad_w != (0, 0):
        padded = xp.zeros((block, h + sum(pad_h), w + sum(pad_w), c), dtype=images.dtype)
        interior = padded[:, pad_h[0] : pad_h[0] + h, pad_w[0] : pad_w[0] + w, :]
    for first in range(start, stop, block):
        last = min(first + block, stop)
        if padded is None:  # no padding: unroll the images themselves
            source = images[first:last]
        else:
            interior[: last - first] = images[first:last]
            source = padded[: last - first]
        col = im2col(source, kernel_hw, stride_hw, out_hw, out=scratch[: (last - first) * rows])
        yield first, last, col


def block_scratch(n: int, rows: int, columns: int, dtype, xp):
    """A reusable buffer for the im2col rows of min(n, images_per_block) images."""
    block = images_per_block(rows * columns * np.dtype(dtype).itemsize, xp)
    return xp.empty((min(block, n) * rows, columns), dtype=dtype)


class Conv2D(Layer):
    """2-D convolution.

    Args:
        filters: number of output channels F.
        kernel_size: KH x KW (int or pair).
        stride: step between receptive fields (int or pair).
        padding: "valid" (none), "same" (output = ceil(input / stride), TensorFlow's rule: odd
            extra padding at the bottom/right) or an int / pair of zero-padding sizes.
        kernel_initializer: name from minicnn.initializers (Keras' default glorot_uniform).

    Shapes: x (N, C, H, W) -> y (N, F, OH, OW); params["W"] (F, C, KH, KW), params["b"] (F,).
    """

    def __init__(
        self,
        filters: int,
        kernel_size=3,
        stride=1,
        padding="valid",
        kernel_initializer: str = "glorot_uniform",
    ) -> None:
        super().__init__()
        if not isinstance(filters, int) or filters <= 0:
            raise ValueError(f"filters must be a positive int, got {filters!r}")
        if not (padding in ("valid", "same") or isinstance(padding, (int, tuple, list))):
            raise ValueError(f"padding must be 'valid', 'same' or an int, got {padding!r}")
        self.filters = filters
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.padding = padding if isinstance(padding, str) else pair(padding, "padding")
        self.kernel_initializer = kernel_initializer
        get_initializer(kernel_initializer)  # fail early on a misspelt name

    def get_config(self) -> dict:
        padding = self.padding if isinstance(self.padding, str) else list(self.padding)
        return {
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": padding,
            "kernel_initializer": self.kernel_initializer,
        }

    def _geometry(self, h: int, w: int):
        pad_h, pad_w = resolve_padding(self.padding, (h, w), self.kernel_size, self.stride)
        out_h = output_size(h, self.kernel_size[0], self.stride[0], pad_h)
        out_w = output_size(w, self.kernel_size[1], self.stride[1], pad_w)
        if out_h <= 0 or out_w <= 0:
            raise ValueError(
                f"{self.name}: input {h}x{w} is smaller than the kernel {self.kernel_size} "
                f"with padding {self.padding!r}"
            )
        return pad_h, pad_w, (out_h, out_w)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self.name} expects samples of shape (C, H, W), got {input_shape}")
        _, _, (out_h, out_w) = self._geometry(input_shape[1], input_shape[2])
        return (self.filters, out_h, out_w)

    def create_params(self, input_shape, rng, dtype):
        kh, kw = self.kernel_size
        init = get_initializer(self.kernel_initializer)
        return {
            "W": init((self.filters, input_shape[0], kh, kw), rng, dtype),
            "b": np.zeros((self.filters,), dtype=dtype),
        }

    def _kernel_matrix(self):
        """params["W"] (F, C, KH, KW) as the (KH*KW*C, F) matrix matching im2col's columns."""
        W = self.params["W"]
        f, c, kh, kw = W.shape
        return W.transpose(2, 3, 1, 0).reshape(kh * kw * c, f)

    def forward(self, x, training: bool = False):
        """x (N, C, H, W) -> (N, F, OH, OW), an NCHW view of channels-last memory."""
        self.ensure_built(x)
        xp = get_array_module(x)
        n, c, h, w = x.shape
        pad_h, pad_w, out_hw = self._geometry(h, w)
        x_nhwc = x.transpose(0, 2, 3, 1)  # a view: free when x is channels-last already
        kernel = self._kernel_matrix()  # (KH*KW*C, F)
        rows = out_hw[0] * out_hw[1]  # output pixels per image
        out = xp.empty((n * rows, self.filters), dtype=x.dtype)  # (N*OH*OW, F): channels-last
        # The bias repeated over one image's output pixels: adding it to a block viewed as
        # (images, OH*OW, F) runs NumPy's SIMD loop over whole images, where broadcasting the
        # (F,) vector runs one F-long loop per pixel (conv2: 0.78 -> 0.34 ms per 64 images).
        bias_image = xp.empty((rows, self.filters), dtype=x.dtype)
        bias_image[...] = self.params["b"]

        def work(start: int, stop: int) -> None:  # one chunk of the batch (see minicnn.parallel)
            scratch = block_scratch(stop - start, rows, kernel.shape[0], x.dtype, xp)
            for first, last, col in unrolled_blocks(
                x_nhwc, start, stop, self.kernel_size, self.stride, pad_h, pad_w, out_hw, scratch
            ):
                block = out[first * rows : last * rows]
                xp.matmul(col, kernel, out=block)
                per_image = block.reshape(-1, rows, self.filters)  # a view
                per_image += bias_image  # while the block is in the cache

        run_chunks(work, n, xp)
        if training:
            # Backward rebuilds the im2col rows block by block rather than keeping them: reading
            # them back from memory would cost as much, and they are 9x the input's size.
            self.cache = (x_nhwc, kernel, pad_h, pad_w, out_hw)
        return out.reshape(n, out_hw[0], out_hw[1], self.filters).transpose(0, 3, 1, 2)

    def backward(self, dy):
        """dy (N, F, OH, OW) -> dx (N, C, H, W); fills grads["W"] and grads["b"]."""
        if self.cache is None:
            raise RuntimeError(f"{self.name}: backward() called without forward(training=True)")
        x_nhwc, kernel, pad_h, pad_w, out_hw = self.cache
        self.cache = None
        xp = get_array_module(dy)
        n, h, w, c = x_nhwc.shape
        kh, kw = self.kernel_size
        dy_nhwc = dy.transpose(0, 2, 3, 1)  # (N, OH, OW, F)
        dx = xp.empty((n, h, w, c), dtype=dy.dtype) if self.needs_input_grad else None
        if dx is not None and self.stride == (1, 1) and max(pad_h) < kh and max(pad_w) < kw:
            dW, db = self._grads_by_convolution(x_nhwc, dy_nhwc, pad_h, pad_w, dx)
        else:
            dW, db = self._grads_by_im2col(x_nhwc, dy_nhwc, kernel, pad_h, pad_w, out_hw, dx)
        self.grads["W"] = dW
        self.grads["b"] = db
        return None if dx is None else dx.transpose(0, 3, 1, 2)

    def _grads_by_im2col(self, x_nhwc, dy_nhwc, kernel, pad_h, pad_w, out_hw, dx):
        """The general backward pass (any stride and padding), from the im2col rows of x:

            dW = col(x)^T @ dy      dx = col2im(dy @ W^T)   (when dx is not None)

        Returns (dW, db); writes dx (N, H, W, C) in place.
        """
        xp = get_array_module(dy_nhwc)
        n, h, w, c = x_nhwc.shape
        rows = out_hw[0] * out_hw[1]
        dy_rows = dy_nhwc.reshape(n * rows, self.filters)  # (N*OH*OW, F); copies if not NHWC

        def work(start: int, stop: int):  # one chunk of the batch (see minicnn.parallel)
            scratch = block_scratch(stop - start, rows, kernel.shape[0], dy_nhwc.dtype, xp)
            dW_part = xp.zeros(kernel.shape, dtype=dy_nhwc.dtype)  # (KH*KW*C, F)
            db_part = xp.zeros(self.filters, dtype=dy_nhwc.dtype)
            ones = xp.ones(scratch.shape[0], dtype=dy_nhwc.dtype)
            for first, last, col in unrolled_blocks(
                x_nhwc, start, stop, self.kernel_size, self.stride, pad_h, pad_w, out_hw, scratch
            ):
                dy_block = dy_rows[first * rows : last * rows]
                dW_part += col.T @ dy_block
                db_part += ones[: dy_block.shape[0]] @ dy_block  # see _grads_by_convolution
                if dx is not None:  # scatter each row's gradient back onto its pixels
                    padded_shape = (last - first, h + sum(pad_h), w + sum(pad_w), c)
                    dx_pad = col2im(
                        dy_block @ kernel.T, padded_shape, self.kernel_size, self.stride, out_hw
                    )
                    dx[first:last] = dx_pad[:, pad_h[0] : pad_h[0] + h, pad_w[0] : pad_w[0] + w, :]
            return dW_part, db_part

        dW, db = sum_in_chunk_order(run_chunks(work, n, xp))
        dW = dW.reshape(*self.kernel_size, c, self.filters)  # (KH, KW, C, F)
        return xp.ascontiguousarray(dW.transpose(3, 2, 0, 1)), db

    def _grads_by_convolution(self, x_nhwc, dy_nhwc, pad_h, pad_w, dx):
        """Stride 1: both gradients from ONE im2col, of the padded output gradient dy.

        dx is a "full" convolution of dy with the 180-degree rotated kernel whose input and
        output channels are swapped: with col = col(dy padded by KH-1-top, KH-1-bottom, ...),
        whose row p holds every dy value that input pixel p flowed into,

            dx = col @ rotated             (N*H*W, KH*KW*F) @ (KH*KW*F, C)

        and no scatter at all (docs/09-speed-and-gpu.md: conv2 backward 118 -> 60 ms against
        col2im). The same rows give the kernel gradient, in the rotated layout:

            rotated_dW = col^T @ x         (KH*KW*F, N*H*W) @ (N*H*W, C)

        since dW[f, c, a, b] sums dy[f] over the output pixels times the input pixel at tap
        (a, b) of each, and col's row p pairs every input pixel with those dy values. So x
        needs no im2col in backward (conv2 forward + backward 66 -> 61 ms per 128 images).
        The first layer computes no dx and takes the im2col path, where x has 1 channel.

        Returns (dW, db); writes dx (N, H, W, C) in place.
        """
        xp = get_array_module(dy_nhwc)
        n, h, w, c = x_nhwc.shape
        kh, kw = self.kernel_size
        f = self.filters
        oh, ow = dy_nhwc.shape[1:3]
        pad_rows = (kh - 1 - pad_h[0], kh - 1 - pad_h[1])
        pad_cols = (kw - 1 - pad_w[0], kw - 1 - pad_w[1])
        W = self.params["W"]
        rotated = W[:, :, ::-1, ::-1].transpose(2, 3, 0, 1).reshape(kh * kw * f, c)
        dx_rows = dx.reshape(n * h * w, c)
        dy_rows = dy_nhwc.reshape(n * oh * ow, f)  # (N*OH*OW, F); copies if not NHWC

        def work(start: int, stop: int):  # one chunk of the batch (see minicnn.parallel)
            scratch = block_scratch(stop - start, h * w, kh * kw * f, dy_nhwc.dtype, xp)
            rotated_dW = xp.zeros((kh * kw * f, c), dtype=dy_nhwc.dtype)
            db_part = xp.zeros(f, dtype=dy_nhwc.dtype)
            ones = xp.ones(scratch.shape[0] // (h * w) * oh * ow, dtype=dy_nhwc.dtype)
            for first, last, col in unrolled_blocks(
                dy_nhwc, start, stop, self.kernel_size, (1, 1), pad_rows, pad_cols, (h, w), scratch
            ):  # col (images*H*W, KH*KW*F)
                xp.matmul(col, rotated, out=dx_rows[first * h * w : last * h * w])
                rotated_dW += col.T @ x_nhwc[first:last].reshape(-1, c)  # copies if not NHWC
                # The bias gradient is the column sum of dy, taken while the block is in the
                # cache, as a matrix-vector product: dy.sum(axis=0) adds row after row of only
                # F values and took 2.2 ms for conv2's dy, this 0.2 ms.
                dy_block = dy_rows[first * oh * ow : last * oh * ow]
                db_part += ones[: dy_block.shape[0]] @ dy_block
            return rotated_dW, db_part

        rotated_dW, db = sum_in_chunk_order(run_chunks(work, n, xp))
        dW = rotated_dW.reshape(kh, kw, f, c)[::-1, ::-1]  # un-rotate: (KH, KW, F, C)
        return xp.ascontiguousarray(dW.transpose(2, 3, 0, 1)), db
