"""minicnn refuses what it cannot learn from, with errors that name the argument, the index and
the value; takes what a Keras user would give it; and never steps on a NaN loss."""

import warnings

import numpy as np
import pytest

import minicnn as mc


def tiny_model(seed=0):
    return mc.Sequential(
        [mc.Conv2D(3, 3), mc.ReLU(), mc.Flatten(), mc.Dense(10)], input_shape=(1, 6, 6), seed=seed
    ).compile(mc.Adam(learning_rate=1e-2))


def data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 6, 6), dtype=np.float32), np.arange(n) % 10


@pytest.mark.parametrize(
    ("bad", "shown"),
    [(-1, "-1"), (2.7, "2.7"), (10, "10"), (np.nan, "nan"), (1e9, "1000000000")],
)
def test_bad_labels_are_refused_naming_index_and_value(bad, shown):
    x, y = data()
    y = y.astype(np.float64)
    y[5] = bad
    model = tiny_model()
    with pytest.raises(ValueError, match=rf"y\[5\] is .*{shown}.*whole numbers from 0 to 9"):
        model.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"y\[5\]"):
        model.evaluate(x, y)
    with pytest.raises(ValueError, match=r"y_val\[5\]"):
        model.fit(x, data()[1], validation_data=(x, y), epochs=1, verbose=0)


def test_a_bad_label_is_shown_as_the_number_it_is():
    x, y = data()
    y = y.astype(np.float64)
    y[3] = 2.5
    with pytest.raises(ValueError) as error:
        tiny_model().fit(x, y, epochs=1, verbose=0)
    assert str(error.value).startswith("y[3] is 2.5: labels must be whole numbers")


def test_whole_float_labels_and_one_hot_rows_are_fine():
    x, y = data()
    model = tiny_model()
    model.fit(x, y.astype(np.float32), epochs=1, verbose=0)
    model.fit(x, np.eye(10)[y], epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"\(N,\) class indices or \(N, 10\) one-hot"):
        model.fit(x, np.eye(9)[y % 9], epochs=1, verbose=0)


def test_a_nan_loss_stops_before_the_step_that_would_spoil_the_weights():
    x, y = data(32)
    x[20] = np.nan  # in the second batch of 16 (no shuffling)
    model = tiny_model()
    reference = tiny_model()
    reference.fit(x[:16], y[:16], batch_size=16, epochs=1, shuffle=False, verbose=0)
    with pytest.raises(mc.NonFiniteLossError, match="epoch 1, batch 2: training stopped before"):
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for key, value in reference.get_weights().items():
        np.testing.assert_array_equal(model.get_weights()[key], value, err_msg=key)
    assert all(np.isfinite(w).all() for w in model.get_weights().values())


def test_unscaled_uint8_pixels_train_with_one_warning():
    x, y = data()
    pixels = (x * 255).astype(np.uint8)
    model = tiny_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(pixels, y, epochs=1, verbose=0)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(messages) == 1 and "unscaled pixels" in messages[0] and "255" in messages[0]
    assert np.isfinite(history.history["loss"][0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scaled floats: no warning
        model.fit(x, y, epochs=1, verbose=0)


def test_python_lists_work_everywhere():
    x, y = data(8)
    model = tiny_model()
    model.fit(x.tolist(), y.tolist(), epochs=1, verbose=0)
    assert model.predict(x.tolist()).shape == (8, 10)
    assert 0 <= model.evaluate(x.tolist(), y.tolist())["accuracy"] <= 1


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True])
def test_impossible_batch_sizes_are_value_errors(batch_size):
    x, y = data()
    with pytest.raises(ValueError, match="batch_size must be a whole number >= 1"):
        tiny_model().fit(x, y, batch_size=batch_size, verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        tiny_model().predict(x, batch_size=batch_size)


def test_empty_and_misshaped_inputs_are_explained():
    model = tiny_model()
    with pytest.raises(ValueError, match="x is empty"):
        model.fit(np.zeros((0, 1, 6, 6), np.float32), np.zeros(0, int), verbose=0)
    assert model.predict(np.zeros((0, 1, 6, 6), np.float32)).shape == (0, 10)
    with pytest.raises(ValueError, match=r"one sample of shape \(1, 6, 6\); pass a batch"):
        model.predict(np.zeros((1, 6, 6), np.float32))
    with pytest.raises(ValueError, match=r"x has 16 samples but y has 15 labels"):
        model.fit(data()[0], data()[1][:15], verbose=0)
    with pytest.raises(TypeError, match="must hold numbers"):
        model.predict(np.array([[[["a"] * 6] * 6]]))


def test_compile_takes_keras_names_and_lists_the_choices():
    model = tiny_model()
    model.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    assert isinstance(model.optimizer, mc.SGD) and isinstance(model.loss, mc.SoftmaxCrossEntropy)
    model.compile(optimizer="Adam", loss="sparse_categorical_crossentropy")
    assert isinstance(model.optimizer, mc.Adam)
    with pytest.raises(
        ValueError, match=r"unknown optimizer 'rmsprop': expected one of \['adam', 'sgd'\]"
    ):
        model.compile("rmsprop")
    with pytest.raises(ValueError, match="unknown loss 'mse': expected one of"):
        model.compile("adam", "mse")
    with pytest.raises(ValueError, match="metrics: 'auc' is not supported"):
        model.compile("adam", metrics=["auc"])


def test_keras_names_learning_rate_count_params_and_save(tmp_path):
    assert mc.Adam(learning_rate=0.01).learning_rate == 0.01 == mc.Adam(lr=0.01).lr
    assert mc.SGD().learning_rate == 0.01 and mc.Adam().learning_rate == 1e-3
    with pytest.raises(ValueError, match="give learning_rate or lr, not both"):
        mc.Adam(learning_rate=0.1, lr=0.2)
    with pytest.raises(ValueError, match="learning_rate must be positive"):
        mc.SGD(learning_rate=0)
    model = tiny_model()
    assert model.count_params() == 3 * 9 + 3 + 3 * 4 * 4 * 10 + 10
    path = model.save(tmp_path / "m.npz")
    assert mc.load(path).count_params() == model.count_params()


def test_a_png_renamed_to_npz_is_not_a_model_file(tmp_path):
    from PIL import Image

    fake = tmp_path / "digit.npz"
    Image.new("L", (28, 28)).save(fake, format="PNG")
    with pytest.raises(mc.ModelFileError) as error:
        mc.load(fake)
    assert "digit.npz: not a minicnn model file" in str(error.value)
    assert "pickle" not in str(error.value)
