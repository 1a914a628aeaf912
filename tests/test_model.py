"""Sequential end to end: overfitting, determinism, float32 all the way, save/load and damaged files."""

import json
import zipfile

import numpy as np
import pytest

import minicnn as mc


def small_cnn(seed=0):
    return mc.Sequential(
        [
            mc.Conv2D(8, 3, padding="same"),
            mc.ReLU(),
            mc.MaxPool2D(2),
            mc.Conv2D(16, 3, padding="same"),
            mc.ReLU(),
            mc.MaxPool2D(2),
            mc.Dropout(0.1),
            mc.Flatten(),
            mc.Dense(32),
            mc.ReLU(),
            mc.Dense(10),
        ],
        input_shape=(1, 12, 12),
        seed=seed,
    )


def toy_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, 12, 12), dtype=np.float32)
    y = np.arange(n) % 10
    return x, y


def test_overfits_64_samples_to_100_percent():
    x, y = toy_data()
    model = small_cnn()
    model.compile(mc.Adam(learning_rate=3e-3))
    history = model.fit(x, y, batch_size=16, epochs=60, seed=0, verbose=0)
    assert history.history["accuracy"][-1] == 1.0
    assert model.evaluate(x, y)["accuracy"] == 1.0
    assert set(history.history) == {"loss", "accuracy", "learning_rate"}


def test_training_is_bit_for_bit_deterministic():
    x, y = toy_data(48)
    runs = []
    for _ in range(2):
        model = small_cnn(seed=3)
        model.fit(
            x,
            y,
            batch_size=16,
            epochs=2,
            seed=7,
            verbose=0,
            augment=lambda b, rng: b + rng.normal(0, 0.01, b.shape).astype(b.dtype),
        )
        runs.append(model.get_weights())
    for key in runs[0]:
        np.testing.assert_array_equal(runs[0][key], runs[1][key])


def test_resume_with_initial_epoch_equals_an_uninterrupted_run(tmp_path):
    x, y = toy_data(48)
    full = small_cnn(seed=1)
    full.fit(x, y, batch_size=16, epochs=3, seed=5, verbose=0)
    part = small_cnn(seed=1)
    part.fit(x, y, batch_size=16, epochs=1, seed=5, verbose=0)
    part.save(tmp_path / "ckpt.npz")
    resumed = mc.load(tmp_path / "ckpt.npz")
    resumed.fit(x, y, batch_size=16, epochs=3, seed=5, verbose=0, initial_epoch=1)
    for key, value in full.get_weights().items():
        np.testing.assert_array_equal(value, resumed.get_weights()[key])


def test_float32_end_to_end():
    x, y = toy_data(16)
    model = small_cnn()
    model.compile()
    seen = []
    xb = x
    for layer in model.layers:
        xb = layer.forward(xb, training=True)
        seen.append(xb.dtype)
    loss = model.loss.forward(xb, y)
    grad = model.loss.backward()
    assert grad.dtype == np.float32
    for layer in reversed(model.layers):
        grad = layer.backward(grad)
        if grad is not None:
            assert grad.dtype == np.float32, layer.name
    assert all(dtype == np.float32 for dtype in seen)
    for _, param, g in model.named_params():
        assert param.dtype == np.float32 and g.dtype == np.float32
    assert np.isfinite(loss)
    model.optimizer.step(model.named_params())
    for _, param, _ in model.named_params():
        assert param.dtype == np.float32
    assert model.predict(x).dtype == np.float32


def test_fit_history_with_validation_and_callbacks():
    x, y = toy_data(32)
    model = small_cnn()
    model.compile(mc.Adam(learning_rate=1e-3))
    reduce = mc.ReduceLROnPlateau(monitor="val_accuracy", patience=1, factor=0.5, min_delta=1.0)
    history = model.fit(
        x, y, batch_size=16, epochs=3, validation_data=(x, y), callbacks=[reduce], seed=0, verbose=0
    )
    assert history.history["learning_rate"] == [1e-3, 1e-3, 5e-4]  # the rate used in each epoch
    assert len(history.history["val_accuracy"]) == 3
    assert model.optimizer.learning_rate == 2.5e-4


def test_onehot_labels_and_predict_probabilities():
    x, y = toy_data(20)
    model = small_cnn()
    model.fit(x, np.eye(10, dtype=np.float32)[y], batch_size=10, epochs=1, seed=0, verbose=0)
    probs = model.predict(x, batch_size=7)
    assert probs.shape == (20, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_non_finite_loss_stops_with_a_clear_error():
    x, y = toy_data(16)
    x[3, 0, 0, 0] = np.nan
    model = small_cnn()
    with pytest.raises(mc.NonFiniteLossError, match="epoch 1, batch 1"):
        model.fit(x, y, batch_size=16, epochs=1, seed=0, verbose=0)


def test_summary_table():
    text = small_cnn().summary(print_fn=None)
    assert "conv2d (Conv2D)" in text and "(None, 8, 12, 12)" in text
    total = 8 * 9 + 8 + 16 * 8 * 9 + 16 + 16 * 3 * 3 * 32 + 32 + 32 * 10 + 10
    assert f"Total params: {total:,}" in text


def test_wrong_input_shape_is_refused():
    with pytest.raises(ValueError, match="expects"):
        small_cnn().predict(np.zeros((2, 1, 28, 28), dtype=np.float32))


# -- save / load ---------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    x, y = toy_data(32)
    model = small_cnn()
    model.compile(mc.Adam(learning_rate=2e-3))
    model.fit(x, y, batch_size=16, epochs=1, seed=0, verbose=0)
    path = model.save(
        tmp_path / "model.npz",
        metadata={"note": "hello", "zca": np.eye(3, dtype=np.float32)},
    )
    return model, path, x


def test_save_load_identical_predictions_and_state(saved):
    model, path, x = saved
    loaded = mc.load(path)
    np.testing.assert_array_equal(model.predict(x), loaded.predict(x))
    assert loaded.metadata["note"] == "hello"
    np.testing.assert_array_equal(loaded.metadata["zca"], np.eye(3))
    assert isinstance(loaded.optimizer, mc.Adam) and loaded.optimizer.learning_rate == 2e-3
    assert loaded.optimizer.iterations == model.optimizer.iterations
    for key, value in model.optimizer.state_dict().items():
        np.testing.assert_array_equal(value, loaded.optimizer.state_dict()[key])


def test_files_from_before_the_keras_names_still_load(saved, tmp_path):
    """Model files written before minicnn took Keras' names (kannada/pretrained/model.npz,
    old checkpoints) call the learning rate "lr", in the optimiser's config and its state."""
    from minicnn.serialization import read_archive, write_archive

    model, path, x = saved
    manifest, arrays = read_archive(path)
    config = manifest["optimizer"]["config"]
    for key in ("use_ema", "ema_momentum"):  # options added since
        del config[key]
    config["lr"] = config.pop("learning_rate")
    arrays["optimizer/lr"] = arrays.pop("optimizer/learning_rate")
    old = write_archive(tmp_path / "old.npz", manifest, arrays)

    loaded = mc.load(old)
    assert isinstance(loaded.optimizer, mc.Adam) and loaded.optimizer.learning_rate == 2e-3
    assert loaded.optimizer.iterations == model.optimizer.iterations
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    model.fit(x, toy_data(32)[1], batch_size=16, epochs=2, initial_epoch=1, seed=0, verbose=0)
    loaded.fit(x, toy_data(32)[1], batch_size=16, epochs=2, initial_epoch=1, seed=0, verbose=0)
    for key, value in model.get_weights().items():
        np.testing.assert_array_equal(loaded.get_weights()[key], value, err_msg=key)


def test_save_is_atomic_and_leaves_no_temp_files(saved, tmp_path):
    model, path, _ = saved
    before = path.read_bytes()
    with pytest.raises(TypeError):
        model.save(path, metadata={"bad": object()})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def test_truncated_file_is_refused(saved, tmp_path):
    _, path, _ = saved
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(mc.ModelFileError, match="cut.npz.*truncated or corrupt"):
        mc.load(cut)


def _rewrite(path, out, change):
    """Copy the archive, letting `change(name, bytes) -> bytes` edit entries."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            dst.writestr(item.filename, change(item.filename, src.read(item.filename)))
    return out


def test_tampered_weights_are_refused(saved, tmp_path):
    _, path, _ = saved

    def flip(name, data):
        if name == "weights/0.W.npy":
            data = data[:-4] + bytes(4)
        return data

    bad = _rewrite(path, tmp_path / "tampered.npz", flip)
    with pytest.raises(
        mc.ModelFileError, match=r"tampered.npz: entry 'weights/0.W' does not match its checksum"
    ):
        mc.load(bad)


def _edit_manifest(path, out, change):
    """Copy a model file, letting `change(manifest)` edit its JSON manifest."""
    with np.load(path) as archive:
        manifest = json.loads(str(archive["manifest"]))
        arrays = {k: archive[k] for k in archive.files}
    change(manifest)
    arrays["manifest"] = np.array(json.dumps(manifest))
    np.savez(out, **arrays)
    return out


def test_mismatched_architecture_is_refused(saved, tmp_path):
    _, path, _ = saved

    def more_filters(manifest):
        manifest["architecture"]["layers"][0]["config"]["filters"] = 9

    bad = _edit_manifest(path, tmp_path / "mismatch.npz", more_filters)
    with pytest.raises(mc.ModelFileError, match=r"mismatch.npz: .*0.W .*shape"):
        mc.load(bad)


def test_an_optimizer_or_loss_this_minicnn_cannot_build_is_a_model_file_error(saved, tmp_path):
    _, path, _ = saved

    def clipnorm(manifest):  # an option of a later minicnn, say
        manifest["optimizer"]["config"]["clipnorm"] = 1.0

    def from_logits(manifest):
        manifest["loss"] = {"from_logits": True}

    _edit_manifest(path, tmp_path / "clip.npz", clipnorm)
    with pytest.raises(mc.ModelFileError, match=r"clip.npz: invalid optimizer .*clipnorm"):
        mc.load(tmp_path / "clip.npz")
    _edit_manifest(path, tmp_path / "logits.npz", from_logits)
    with pytest.raises(mc.ModelFileError, match=r"logits.npz: invalid loss .*from_logits"):
        mc.load(tmp_path / "logits.npz")


def test_unknown_version_and_non_model_files_are_refused(saved, tmp_path):
    _, path, _ = saved
    _edit_manifest(path, tmp_path / "future.npz", lambda manifest: manifest.update(version=99))
    with pytest.raises(mc.ModelFileError, match="future.npz: format version 99"):
        mc.load(tmp_path / "future.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(mc.ModelFileError, match="plain.npz: no 'manifest'"):
        mc.load(tmp_path / "plain.npz")
    with pytest.raises(mc.ModelFileError, match="missing.npz: no such model file"):
        mc.load(tmp_path / "missing.npz")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, manifest=np.array([{"a": 1}], dtype=object))
    with pytest.raises(mc.ModelFileError, match="pickled.npz"):
        mc.load(pickled)


def test_save_without_optimizer_is_smaller_and_predicts_the_same(saved, tmp_path):
    model, path, x = saved
    small = model.save(tmp_path / "small.npz", include_optimizer=False)
    assert small.stat().st_size < path.stat().st_size * 0.5
    loaded = mc.load(small)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.optimizer.iterations == 0  # a fresh default optimiser


def test_saved_files_get_ordinary_permissions(saved):
    import os

    _, path, _ = saved
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
