"""The fast paths give the same results as the plain ones: threads vs one thread, and the
stride-1 input gradient by convolution vs the general col2im scatter."""

import numpy as np
import pytest

import minicnn as mc
from minicnn import data_parallel, parallel
from minicnn.layers.im2col import col2im, im2col, pad_nhwc


@pytest.fixture
def threads():
    before = parallel.get_num_threads()
    yield parallel.set_num_threads
    parallel.set_num_threads(before)


def run_model(seed=0):
    model = mc.Sequential(
        [
            mc.Conv2D(8, 3, padding="same"),
            mc.ReLU(),
            mc.MaxPool2D(2),
            mc.Conv2D(16, 3, stride=2, padding=1),
            mc.ReLU(),
            mc.Flatten(),
            mc.Dense(10),
        ],
        input_shape=(3, 16, 16),
        seed=seed,
    )
    model.compile()
    rng = np.random.default_rng(1)
    x = rng.random((64, 3, 16, 16), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    logits = model.forward(x, training=True)
    model.loss.forward(logits, y)
    model.backward(model.loss.backward())
    return logits, {name: grad.copy() for name, _, grad in model.named_params()}


def test_threaded_chunks_equal_one_thread(threads):
    threads(1)
    logits_1, grads_1 = run_model()
    threads(2)
    assert len(parallel.batch_chunks(64)) == 2
    logits_2, grads_2 = run_model()
    np.testing.assert_allclose(logits_2, logits_1, rtol=1e-5, atol=1e-6)
    for name in grads_1:
        np.testing.assert_allclose(grads_2[name], grads_1[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_threaded_runs_are_bit_for_bit_repeatable(threads):
    threads(2)
    first, second = run_model(), run_model()
    np.testing.assert_array_equal(first[0], second[0])
    for name in first[1]:
        np.testing.assert_array_equal(first[1][name], second[1][name])


@pytest.mark.parametrize("padding", ["same", "valid", 1])
def test_gradients_by_convolution_equal_the_im2col_formulas(padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 9, 8)).astype(np.float32)
    layer = mc.Conv2D(5, 3, padding=padding)
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx_fast = layer.backward(dy)  # stride 1: the convolution path
    # The general path, written out: dcol = dy @ kernel^T, then scatter-add with col2im.
    n, c, h, w = x.shape
    pad = {"same": (1, 1), "valid": (0, 0), 1: (1, 1)}[padding]
    W = layer.params["W"]
    kernel = W.transpose(2, 3, 1, 0).reshape(-1, W.shape[0])
    dy_rows = dy.transpose(0, 2, 3, 1).reshape(-1, W.shape[0])
    padded = (n, h + 2 * pad[0], w + 2 * pad[1], c)
    dx_pad = col2im(dy_rows @ kernel.T, padded, (3, 3), (1, 1), y.shape[2:])
    dx_plain = dx_pad[:, pad[0] : pad[0] + h, pad[1] : pad[1] + w].transpose(0, 3, 1, 2)
    np.testing.assert_allclose(dx_fast, dx_plain, rtol=1e-5, atol=1e-5)
    # The kernel gradient comes from dy's rows too; the plain formula is col(x)^T @ dy.
    x_pad = np.pad(x.transpose(0, 2, 3, 1), ((0, 0), pad, pad, (0, 0)))
    dW_plain = im2col(x_pad, (3, 3), (1, 1), y.shape[2:]).T @ dy_rows  # (KH*KW*C, F)
    dW_plain = dW_plain.reshape(3, 3, c, -1).transpose(3, 2, 0, 1)
    np.testing.assert_allclose(layer.grads["W"], dW_plain, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.grads["b"], dy_rows.sum(axis=0), rtol=1e-5, atol=1e-5)


def test_im2col_rows_are_receptive_fields():
    x = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)  # NHWC
    col = im2col(pad_nhwc(x, (1, 1), (1, 1)), (3, 3), (1, 1), (4, 4))
    assert col.shape == (2 * 16, 27)
    # row of output pixel (n=1, i=2, j=1): the 3x3x3 patch around x[1, 2, 1]
    np.testing.assert_array_equal(col[16 + 2 * 4 + 1].reshape(3, 3, 3), x[1, 1:4, 0:3, :])


@pytest.mark.parametrize("stride", [1, 2])
def test_one_channel_im2col_taps_major_is_the_same_matrix(stride):
    # With C = 1 im2col copies tap by tap and returns a transposed view of its buffer.
    rng = np.random.default_rng(0)
    x_pad = pad_nhwc(rng.random((3, 7, 6, 1), dtype=np.float32), (1, 1), (1, 1))
    out_hw = ((9 - 3) // stride + 1, (8 - 3) // stride + 1)
    windows = np.lib.stride_tricks.sliding_window_view(x_pad, (3, 3), axis=(1, 2))
    windows = windows[:, ::stride, ::stride]  # (N, OH, OW, C, KH, KW)
    expected = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, 9)
    buffer = np.full((expected.shape[0], 9), np.nan, dtype=np.float32)
    col = im2col(x_pad, (3, 3), (stride, stride), out_hw, out=buffer)
    assert np.shares_memory(col, buffer) and col.shape == expected.shape
    np.testing.assert_array_equal(col, expected)
    np.testing.assert_array_equal(im2col(x_pad, (3, 3), (stride, stride), out_hw), expected)


def test_fit_runs_the_batch_transform_on_one_blas_thread():
    # A multi-threaded BLAS call there leaves OpenBLAS threads spinning into the next step.
    from threadpoolctl import threadpool_info

    seen = []

    def transform(batch, rng):
        seen.extend(info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas")
        return batch

    model = mc.Sequential([mc.Flatten(), mc.Dense(3)], input_shape=(1, 4, 4), seed=0)
    model.compile()
    x = np.random.default_rng(0).random((8, 1, 4, 4), dtype=np.float32)
    model.fit(x, np.arange(8) % 3, batch_size=4, augment=transform, verbose=0, seed=0)
    assert seen and set(seen) == {1}


class RecordingLayer(mc.layers.base.Layer):
    """Identity that records, per call, its thread, batch size and BLAS thread counts."""

    def __init__(self, calls):
        super().__init__()
        self.calls = calls

    def forward(self, x, training=False):
        import threading

        from threadpoolctl import threadpool_info

        blas = {info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}
        self.calls.append((threading.current_thread().name, len(x), blas))
        return x


def test_inference_runs_the_whole_stack_per_thread(threads):
    # Each thread takes its share of the batch through every layer, on one BLAS thread; the
    # layers' own run_chunks calls run inline there. Same numbers as layer by layer.
    threads(2)
    calls = []
    model = mc.Sequential(
        [mc.Conv2D(4, 3, padding="same"), RecordingLayer(calls), mc.ReLU(), mc.MaxPool2D(2)]
        + [mc.Flatten(), mc.Dense(5), RecordingLayer(calls)],
        input_shape=(2, 8, 8),
        seed=0,
    )
    x = np.random.default_rng(0).random((40, 2, 8, 8), dtype=np.float32)
    y = model.forward(x)
    assert sorted(size for _, size, _ in calls) == [20, 20, 20, 20]  # never the whole batch
    assert len({name for name, _, _ in calls}) == 2  # two threads, each through both records
    assert all(blas == {1} for _, _, blas in calls)
    layer_by_layer = x
    for layer in model.layers:
        layer_by_layer = layer.forward(layer_by_layer)
    np.testing.assert_array_equal(y, layer_by_layer)


def test_run_chunks_inside_a_chunk_runs_inline(threads):
    threads(2)
    inner = []

    def outer_work(start, stop):
        inner.append(parallel.run_chunks(lambda a, b: (a, b), stop - start))
        return start, stop

    assert parallel.run_chunks(outer_work, 64) == [(0, 32), (32, 64)]
    assert inner == [[(0, 32)], [(0, 32)]]  # one chunk each, on the calling thread


def small_model(layers_between=(), seed=0):
    model = mc.Sequential(
        [mc.Conv2D(4, 3, padding="same"), mc.ReLU(), *layers_between, mc.MaxPool2D(2)]
        + [mc.Flatten(), mc.Dense(5)],
        input_shape=(2, 8, 8),
        seed=seed,
    )
    model.compile(mc.SGD(lr=0.1))
    return model


def step_grads(model, x, y):
    loss, correct = model.train_step(x, y)
    return loss, correct, {name: grad.copy() for name, _, grad in model.named_params()}


def test_whole_network_training_step_equals_layer_by_layer(threads, monkeypatch):
    # Each thread runs forward and backward on its share; the weighted shares add up to the
    # batch's mean loss and its gradient.
    threads(2)
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 2, 8, 8), dtype=np.float32), rng.integers(0, 5, 40)
    split = small_model()
    assert data_parallel.can_split(split.layers, x)
    loss_split, correct_split, grads_split = step_grads(split, x, y)
    plain = small_model()
    monkeypatch.setattr(data_parallel, "can_split", lambda layers, x: False)
    loss_plain, correct_plain, grads_plain = step_grads(plain, x, y)
    assert loss_split == pytest.approx(loss_plain, rel=1e-5) and correct_split == correct_plain
    for name in grads_plain:
        np.testing.assert_allclose(grads_split[name], grads_plain[name], rtol=1e-4, atol=1e-6)
    for (name, p_split, _), (_, p_plain, _) in zip(
        split.named_params(), plain.named_params(), strict=True
    ):
        np.testing.assert_allclose(p_split, p_plain, rtol=1e-4, atol=1e-6, err_msg=name)


def test_whole_network_training_with_dropout_repeats_exactly(threads):
    threads(2)
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 2, 8, 8), dtype=np.float32), rng.integers(0, 5, 40)
    runs = []
    for _ in range(2):
        model = small_model([mc.Dropout(0.5, seed=3)])
        runs.append([step_grads(model, x, y)[2] for _ in range(3)])
    for grads_a, grads_b in zip(*runs, strict=True):
        for name in grads_a:
            np.testing.assert_array_equal(grads_a[name], grads_b[name])


def test_dropout_replicas_draw_their_own_masks():
    layer = mc.Dropout(0.5, seed=0).build((100,))
    first, second = layer.replica(), layer.replica()
    x = np.ones((4, 100), dtype=np.float32)
    mask_a = first.forward(x, training=True) > 0
    mask_b = second.forward(x, training=True) > 0
    assert not np.array_equal(mask_a, mask_b)
    assert first.params is layer.params and first.grads is not layer.grads
    # Threads never share a generator: its draws would interleave in a different order each run.
    assert len({id(layer.rng), id(first.rng), id(second.rng)}) == 3


def test_batchnorm_keeps_the_batch_whole(threads):
    threads(2)
    x = np.zeros((40, 2, 8, 8), dtype=np.float32)
    assert data_parallel.can_split(small_model().layers, x)
    assert not data_parallel.can_split(small_model([mc.BatchNorm()]).layers, x)
    threads(1)
    assert not data_parallel.can_split(small_model().layers, x)
