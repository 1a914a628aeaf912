"""The engine's Conv2D: channels-last, im2col block by block, and a stride-1 backward pass that
needs no scatter. It computes what minicnn.layers.Conv2D computes (tests/test_engine.py)."""

from __future__ import annotations

import numpy as np

from minicnn.engine.nhwc import block_scratch, col2im, unrolled_blocks


class ConvKernel:
    """Conv2D on one chunk of a batch, reading the layer's params; keeps its own cache and
    grads, so several chunks can run at once.

    Inputs and outputs are NCHW-shaped; the output is a view of channels-last (NHWC) memory,
    so the next convolution gets its channels-last layout back with a free transpose.
    """

    def __init__(self, layer) -> None:
        self.layer = layer
        self.cache = None
        self.grads: dict = {}

    def kernel_matrix(self):
        """params["W"] (F, C, KH, KW) as the (KH*KW*C, F) matrix matching im2col's columns."""
        W = self.layer.params["W"]
        f, c, kh, kw = W.shape
        return W.transpose(2, 3, 1, 0).reshape(kh * kw * c, f)

    def forward(self, x, training: bool):
        """x (N, C, H, W) -> (N, F, OH, OW), an NCHW view of channels-last memory."""
        layer = self.layer
        n, c, h, w = x.shape
        (pad_h, pad_w), out_hw = layer.geometry(h, w)
        x_nhwc = x.transpose(0, 2, 3, 1)  # a view: free when x is channels-last already
        kernel = self.kernel_matrix()  # (KH*KW*C, F)
        rows = out_hw[0] * out_hw[1]  # output pixels per image
        out = np.empty((n * rows, layer.filters), dtype=x.dtype)  # (N*OH*OW, F): channels-last
        # The bias repeated over one image's output pixels: adding it to a block viewed as
        # (images, OH*OW, F) runs NumPy's vector loop over whole images, where broadcasting the
        # (F,) vector runs one F-long loop per pixel.
        bias_image = np.empty((rows, layer.filters), dtype=x.dtype)
        bias_image[...] = layer.params["b"]
        scratch = block_scratch(n, rows, kernel.shape[0], x.dtype)
        for first, last, col in unrolled_blocks(
            x_nhwc, layer.kernel_size, layer.stride, pad_h, pad_w, out_hw, scratch
        ):
            block = out[first * rows : last * rows]
            np.matmul(col, kernel, out=block)
            per_image = block.reshape(-1, rows, layer.filters)  # a view
            per_image += bias_image  # while the block is in the cache
        if training:
            # Backward builds the rows it needs block by block (of x, or of dy for stride 1:
            # grads_by_convolution) rather than keeping these: reading them back from memory
            # would cost as much, and they are KH*KW times the input.
            self.cache = (x_nhwc, pad_h, pad_w, out_hw)
        return out.reshape(n, out_hw[0], out_hw[1], layer.filters).transpose(0, 3, 1, 2)

    def backward(self, dy, input_gradient: bool = True):
        """dy (N, F, OH, OW) -> dx (N, C, H, W), or None when not input_gradient; fills grads."""
        x_nhwc, pad_h, pad_w, out_hw = self.cache
        self.cache = None
        n, h, w, c = x_nhwc.shape
        kh, kw = self.layer.kernel_size
        dy_nhwc = dy.transpose(0, 2, 3, 1)  # (N, OH, OW, F)
        dx = np.empty((n, h, w, c), dtype=dy.dtype) if input_gradient else None
        if input_gradient and self.layer.stride == (1, 1) and max(pad_h) < kh and max(pad_w) < kw:
            dW, db = self.grads_by_convolution(x_nhwc, dy_nhwc, pad_h, pad_w, dx)
        else:
            dW, db = self.grads_by_im2col(x_nhwc, dy_nhwc, pad_h, pad_w, out_hw, dx)
        self.grads = {"W": dW, "b": db}
        return None if dx is None else dx.transpose(0, 3, 1, 2)

    def grads_by_im2col(self, x_nhwc, dy_nhwc, pad_h, pad_w, out_hw, dx):
        """The general backward pass (any stride and padding), from the im2col rows of x:

            dW = col(x)^T @ dy      dx = col2im(dy @ W^T)   (when dx is not None)

        Returns (dW, db); writes dx (N, H, W, C) in place.
        """
        layer = self.layer
        n, h, w, c = x_nhwc.shape
        rows = out_hw[0] * out_hw[1]
        kernel = self.kernel_matrix()
        dy_rows = dy_nhwc.reshape(n * rows, layer.filters)  # (N*OH*OW, F); copies if not NHWC
        scratch = block_scratch(n, rows, kernel.shape[0], dy_nhwc.dtype)
        dW = np.zeros(kernel.shape, dtype=dy_nhwc.dtype)  # (KH*KW*C, F)
        db = np.zeros(layer.filters, dtype=dy_nhwc.dtype)
        ones = np.ones(scratch.shape[0], dtype=dy_nhwc.dtype)
        for first, last, col in unrolled_blocks(
            x_nhwc, layer.kernel_size, layer.stride, pad_h, pad_w, out_hw, scratch
        ):
            dy_block = dy_rows[first * rows : last * rows]
            dW += col.T @ dy_block
            db += ones[: dy_block.shape[0]] @ dy_block  # see grads_by_convolution
            if dx is not None:  # scatter each row's gradient back onto its pixels
                padded_shape = (last - first, h + sum(pad_h), w + sum(pad_w), c)
                dx_pad = col2im(
                    dy_block @ kernel.T, padded_shape, layer.kernel_size, layer.stride, out_hw
                )
                dx[first:last] = dx_pad[:, pad_h[0] : pad_h[0] + h, pad_w[0] : pad_w[0] + w, :]
        dW = dW.reshape(*layer.kernel_size, c, layer.filters)  # (KH, KW, C, F)
        return np.ascontiguousarray(dW.transpose(3, 2, 0, 1)), db

    def grads_by_convolution(self, x_nhwc, dy_nhwc, pad_h, pad_w, dx):
        """Stride 1: both gradients from ONE im2col, of the padded output gradient dy.

        dx is a "full" convolution of dy with the 180-degree rotated kernel whose input and
        output channels are swapped: with col = col(dy padded by KH-1-top, KH-1-bottom, ...),
        whose row p holds every dy value that input pixel p flowed into,

            dx = col @ rotated             (N*H*W, KH*KW*F) @ (KH*KW*F, C)

        and no scatter at all. The same rows give the kernel gradient, in the rotated layout:

            rotated_dW = col^T @ x         (KH*KW*F, N*H*W) @ (N*H*W, C)

        since dW[f, c, a, b] sums dy[f] over the output pixels times the input pixel at tap
        (a, b) of each, and col's row p pairs every input pixel with those dy values. So x
        needs no im2col in backward.

        Returns (dW, db); writes dx (N, H, W, C) in place.
        """
        n, h, w, c = x_nhwc.shape
        kh, kw = self.layer.kernel_size
        f = self.layer.filters
        oh, ow = dy_nhwc.shape[1:3]
        pad_rows = (kh - 1 - pad_h[0], kh - 1 - pad_h[1])
        pad_cols = (kw - 1 - pad_w[0], kw - 1 - pad_w[1])
        W = self.layer.params["W"]
        # --8<-- [start:by_convolution]
        rotated = W[:, :, ::-1, ::-1].transpose(2, 3, 0, 1).reshape(kh * kw * f, c)
        dx_rows = dx.reshape(n * h * w, c)
        dy_rows = dy_nhwc.reshape(n * oh * ow, f)  # (N*OH*OW, F); copies if not NHWC
        scratch = block_scratch(n, h * w, kh * kw * f, dy_nhwc.dtype)
        rotated_dW = np.zeros((kh * kw * f, c), dtype=dy_nhwc.dtype)
        db = np.zeros(f, dtype=dy_nhwc.dtype)
        ones = np.ones(scratch.shape[0] // (h * w) * oh * ow, dtype=dy_nhwc.dtype)
        for first, last, col in unrolled_blocks(
            dy_nhwc, (kh, kw), (1, 1), pad_rows, pad_cols, (h, w), scratch
        ):  # col (images*H*W, KH*KW*F)
            np.matmul(col, rotated, out=dx_rows[first * h * w : last * h * w])
            rotated_dW += col.T @ x_nhwc[first:last].reshape(-1, c)  # copies if not NHWC
            # The bias gradient is the column sum of dy, taken while the block is in the
            # cache, as a matrix-vector product: dy.sum(axis=0) adds row after row of only
            # F values, which is several times slower.
            dy_block = dy_rows[first * oh * ow : last * oh * ow]
            db += ones[: dy_block.shape[0]] @ dy_block
        # --8<-- [end:by_convolution]
        dW = rotated_dW.reshape(kh, kw, f, c)[::-1, ::-1]  # un-rotate: (KH, KW, F, C)
        return np.ascontiguousarray(dW.transpose(2, 3, 0, 1)), db
