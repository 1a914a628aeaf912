"""Forward passes against plain nested-loop implementations, and the layer contract."""

import numpy as np
import pytest

import minicnn as mc


def conv2d_loops(x, W, b, stride, pad):
    """Cross-correlation, the textbook way: NCHW, W (F, C, KH, KW), pad ((t, b), (l, r))."""
    n, c, h, w = x.shape
    f, _, kh, kw = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), pad[0], pad[1]))
    oh = (xp.shape[2] - kh) // stride + 1
    ow = (xp.shape[3] - kw) // stride + 1
    out = np.zeros((n, f, oh, ow))
    for i in range(n):
        for o in range(f):
            for r in range(oh):
                for s in range(ow):
                    patch = xp[i, :, r * stride : r * stride + kh, s * stride : s * stride + kw]
                    out[i, o, r, s] = (patch * W[o]).sum() + b[o]
    return out


def maxpool_loops(x, p, s):
    n, c, h, w = x.shape
    oh, ow = (h - p) // s + 1, (w - p) // s + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(n):
        for ch in range(c):
            for r in range(oh):
                for q in range(ow):
                    out[i, ch, r, q] = x[i, ch, r * s : r * s + p, q * s : q * s + p].max()
    return out


def maxpool_backward_loops(x, dy, pool, stride):
    """Each window's dy goes to the first (row-major) of its maxima; overlaps accumulate."""
    (ph, pw), (sh, sw) = pool, stride
    n, c, oh, ow = dy.shape
    dx = np.zeros(x.shape)
    for i in range(n):
        for ch in range(c):
            for r in range(oh):
                for q in range(ow):
                    window = x[i, ch, r * sh : r * sh + ph, q * sw : q * sw + pw]
                    a, b = np.unravel_index(np.argmax(window), window.shape)  # the first max
                    dx[i, ch, r * sh + a, q * sw + b] += dy[i, ch, r, q]
    return dx


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", ["valid", "same", 1])
def test_conv2d_forward_equals_loops(stride, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 7)).astype(np.float32)
    layer = mc.Conv2D(5, 3, stride=stride, padding=padding)
    layer.build((3, 8, 7), rng=rng)
    layer.params["b"] = rng.standard_normal(5).astype(np.float32)
    if padding == "same":
        # TensorFlow's rule: output = ceil(input / stride), the odd extra pad at the bottom/right
        oh, ow = -(-8 // stride), -(-7 // stride)
        th = max((oh - 1) * stride + 3 - 8, 0)
        tw = max((ow - 1) * stride + 3 - 7, 0)
        pad = ((th // 2, th - th // 2), (tw // 2, tw - tw // 2))
    elif padding == "valid":
        pad = ((0, 0), (0, 0))
    else:
        pad = ((1, 1), (1, 1))
    expected = conv2d_loops(x.astype(np.float64), layer.params["W"], layer.params["b"], stride, pad)
    out = layer.forward(x)
    assert out.shape == expected.shape
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_same_padding_puts_the_extra_row_at_the_bottom():
    # 4x4 input, 2x2 kernel, stride 1: total padding 1 -> 0 on top, 1 at the bottom (TF rule).
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    layer = mc.Conv2D(1, 2, padding="same")
    layer.build((1, 4, 4), dtype=np.float64)
    layer.params["W"] = np.array([[[[1.0, 0.0], [0.0, 0.0]]]])  # picks the top-left tap
    layer.params["b"] = np.zeros(1)
    np.testing.assert_array_equal(layer.forward(x), x)


def test_conv_is_cross_correlation_not_convolution():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 0, 0] = 1.0
    layer = mc.Conv2D(1, 3, padding="valid")
    layer.build((1, 3, 3), dtype=np.float64)
    W = np.arange(9, dtype=np.float64).reshape(1, 1, 3, 3)
    layer.params["W"], layer.params["b"] = W, np.zeros(1)
    assert layer.forward(x)[0, 0, 0, 0] == W[0, 0, 0, 0]  # no kernel flip


@pytest.mark.parametrize("pool,stride", [(2, 2), (3, 2), (2, 1), (3, 3)])
def test_maxpool_forward_equals_loops(pool, stride):
    x = np.random.default_rng(1).standard_normal((2, 3, 9, 8)).astype(np.float32)
    out = mc.MaxPool2D(pool, stride).forward(x)
    np.testing.assert_array_equal(out, maxpool_loops(x, pool, stride))


@pytest.mark.parametrize("pool,stride", [(2, 2), (3, 2), (2, 1), (3, 3), ((1, 3), (1, 2))])
@pytest.mark.parametrize("size", [(9, 8), (8, 6), (9, 6)])  # windows tiling the input or not
def test_maxpool_backward_equals_loops_with_many_ties(pool, stride, size):
    # Values from {0, 1, 2}, many zeros as after a ReLU: most windows hold tied maxima.
    rng = np.random.default_rng(2)
    x = np.maximum(rng.integers(-2, 3, (2, 3, *size)), 0).astype(np.float32)
    layer = mc.MaxPool2D(pool, stride)
    out = layer.forward(x, training=True)
    dy = rng.standard_normal(out.shape).astype(np.float32)
    expected = maxpool_backward_loops(x, dy, layer.pool_size, layer.stride)
    np.testing.assert_allclose(layer.backward(dy), expected, atol=1e-6)


def test_maxpool_gradient_goes_to_the_first_of_tied_maxima():
    x = np.ones((1, 1, 2, 2), dtype=np.float32)
    layer = mc.MaxPool2D(2)
    layer.forward(x, training=True)
    dx = layer.backward(np.ones((1, 1, 1, 1), dtype=np.float32))
    np.testing.assert_array_equal(dx[0, 0], [[1, 0], [0, 0]])


def test_params_dict_is_the_truth():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6)).astype(np.float32)
    layer = mc.Dense(3)
    first = layer.forward(x)
    layer.params["W"] = np.zeros((6, 3), dtype=np.float32)
    layer.params["b"] = np.ones(3, dtype=np.float32)
    np.testing.assert_array_equal(layer.forward(x), np.ones((2, 3)))
    assert not np.allclose(first, 1.0)
    conv = mc.Conv2D(2, 3)
    conv.build((1, 5, 5))
    conv.params["W"] = np.zeros_like(conv.params["W"])
    np.testing.assert_array_equal(
        conv.forward(rng.standard_normal((1, 1, 5, 5)).astype(np.float32)), 0.0
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shapes_inferred_and_params_in_the_input_dtype(dtype):
    x = np.zeros((2, 3, 8, 8), dtype=dtype)
    conv = mc.Conv2D(4, 3, padding="same")
    y = conv.forward(x, training=True)
    assert conv.params["W"].shape == (4, 3, 3, 3) and conv.params["b"].shape == (4,)
    assert conv.params["W"].dtype == dtype and y.dtype == dtype
    conv.backward(np.ones_like(y))
    for key in conv.params:
        assert conv.grads[key].shape == conv.params[key].shape
        assert conv.grads[key].dtype == dtype
    dense = mc.Dense(5)
    dense.forward(np.zeros((2, 7), dtype=dtype))
    assert dense.params["W"].shape == (7, 5) and dense.params["W"].dtype == dtype


def test_dropout_is_inverted_seeded_and_off_at_inference():
    x = np.ones((200, 50), dtype=np.float32)
    a = mc.Dropout(0.3, seed=1).forward(x, training=True)
    b = mc.Dropout(0.3, seed=1).forward(x, training=True)
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) == {0.0, np.float32(1 / 0.7)}
    assert abs((a == 0).mean() - 0.3) < 0.02
    assert abs(a.mean() - 1.0) < 0.03  # inverted: the expectation is unchanged
    assert mc.Dropout(0.3).forward(x, training=False) is x


def test_batchnorm_uses_running_statistics_at_inference():
    rng = np.random.default_rng(0)
    layer = mc.BatchNorm(momentum=0.5)
    x = (rng.standard_normal((64, 3, 4, 4)) * 2 + 5).astype(np.float32)
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=2e-3)
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(layer.state["running_mean"], 0.5 * mean, rtol=1e-5)
    np.testing.assert_allclose(layer.state["running_var"], 0.5 + 0.5 * var, rtol=1e-5)
    out = layer.forward(x[:2], training=False)
    expected = (x[:2] - layer.state["running_mean"][None, :, None, None]) / np.sqrt(
        layer.state["running_var"][None, :, None, None] + layer.epsilon
    )
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_softmax_cross_entropy_is_stable_and_matches_the_formula():
    logits = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])
    loss = mc.SoftmaxCrossEntropy()
    value = loss.forward(logits, np.array([0, 2]))
    expected_row2 = -np.log(np.exp(3) / np.exp([1, 2, 3]).sum())
    assert np.isfinite(value)
    assert value == pytest.approx((0.0 + expected_row2) / 2)
    smooth = mc.SoftmaxCrossEntropy(label_smoothing=0.3)
    target = smooth.targets(np.array([1]), 3, np.dtype(np.float64))
    np.testing.assert_allclose(target, [[0.1, 0.8, 0.1]])


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(ValueError, match="padding"):
        mc.Conv2D(3, 3, padding="full")
    with pytest.raises(ValueError, match="rate"):
        mc.Dropout(1.0)
    with pytest.raises(ValueError, match="Flatten"):
        mc.Sequential([mc.Dense(3)], input_shape=(1, 4, 4))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        mc.Sequential([mc.Conv2D(3, 5)], input_shape=(1, 3, 3))
