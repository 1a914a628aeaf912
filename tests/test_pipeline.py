"""End-to-end tests of the training pipeline (kannada.train / evaluate / predict) on small data.

The CLIs run in-process through their main(argv); a synthetic Kaggle-layout dataset of two
writers is written once per module, and one short run of it serves several tests.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

import kannada.cli
import kannada.train
import minicnn
from kannada.augment import Augmenter
from kannada.calibration import fit_temperature, softmax
from kannada.cli import data_fingerprint, split_rows, training_rows, validation_split
from kannada.data import load_dataset, writer_ids
from kannada.evaluate import main as evaluate_main
from kannada.model import build_model
from kannada.predict import load_model, predict_images, predict_logits
from kannada.predict import main as predict_main
from kannada.train import main as train_main

ROWS_PER_WRITER = 1280
N_TRAIN = 2 * ROWS_PER_WRITER  # two writers
N_DIG, N_TEST = 60, 50
LIMIT = 192  # 96 rows per writer: one held out for validation, one to train on
TEST_IDS_START = 1000  # not 0..N-1, so the test sees the ids come from the file

RUN_FILES = (
    "model.npz",
    "checkpoint.npz",
    "history.csv",
    "accuracy.png",
    "loss.png",
    "confusion_matrix_validation.png",
    "confusion_matrix_dig.png",
    "classification_report.txt",
    "misclassified_validation.png",
    "misclassified_dig.png",
    "reliability.png",
    "augmented_examples.png",
    "metrics.json",
    "submission.csv",
)


def synthetic_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 (N, 28, 28) digits that a CNN can tell apart: a bright bar whose row is the label."""
    images = rng.integers(0, 40, size=(len(labels), 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, 3 + 2 * label : 5 + 2 * label, 6:22] = 220
    return images


def write_kaggle_csv(path: Path, first_name: str, first: np.ndarray, images: np.ndarray) -> None:
    columns = [first_name] + [f"pixel{i}" for i in range(784)]
    table = np.column_stack([first, images.reshape(len(images), -1)])
    pd.DataFrame(table, columns=columns).to_csv(path, index=False)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A Kaggle-layout folder: train.csv (2 writers), Dig-MNIST.csv, test.csv (ids, no labels)."""
    folder = tmp_path_factory.mktemp("kaggle")
    rng = np.random.default_rng(7)
    labels = np.arange(N_TRAIN) % 10  # labels cycle 0-9 through each page, as in the real files
    write_kaggle_csv(folder / "train.csv", "label", labels, synthetic_images(labels, rng))
    dig_labels = rng.integers(0, 10, N_DIG)
    dig_images = synthetic_images(dig_labels, rng)
    write_kaggle_csv(folder / "Dig-MNIST.csv", "label", dig_labels, dig_images)
    ids = np.arange(TEST_IDS_START, TEST_IDS_START + N_TEST)
    test_images = synthetic_images(rng.integers(0, 10, N_TEST), rng)
    write_kaggle_csv(folder / "test.csv", "id", ids, test_images)
    return folder


def train_args(data_dir: Path, out: Path, name: str, *extra: str) -> list[str]:
    return [
        "--data-dir",
        str(data_dir),
        "--limit",
        str(LIMIT),
        "--out",
        str(out),
        "--name",
        name,
        "--quiet",
        *extra,
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def full_run(data_dir: Path, runs: Path) -> Path:
    """An uninterrupted 2-epoch run with seed 0 (the reference for the resume test too)."""
    assert train_main(train_args(data_dir, runs, "full", "--epochs", "2")) == 0
    return runs / "full"


def sklearn_report(y_true, y_pred, output_dict: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return skm.classification_report(
            y_true, y_pred, labels=list(range(10)), digits=4, output_dict=output_dict
        )


def report_sections(path: Path) -> dict[str, str]:
    sections, name = {}, None
    for line in path.read_text().splitlines(keepends=True):
        match = re.fullmatch(r"=== (\w+) ===\n", line)
        if match:
            name = match[1]
            sections[name] = ""
        elif name:
            sections[name] += line
    return {key: text.rstrip("\n") + "\n" for key, text in sections.items()}


# ---------------------------------------------------------------- choosing rows


def test_limit_spreads_rows_over_all_writers_with_balanced_labels():
    rows = training_rows(60_000, 470)
    assert len(rows) == 470 and np.all(np.diff(rows) > 0)
    writers = writer_ids(60_000)[rows]
    assert np.array_equal(np.bincount(writers), np.full(47, 10))  # 47 writers, 10 rows each
    assert np.array_equal(np.unique(rows % ROWS_PER_WRITER), np.arange(10))  # cells 0-9 = 0-9
    assert np.array_equal(training_rows(100, None), np.arange(100))
    assert np.array_equal(training_rows(100, 500), np.arange(100))


def test_writer_split_holds_out_whole_writers_chosen_by_the_seed():
    writers = writer_ids(60_000)
    train, val = validation_split(writers, 0.1, "writer", seed=0)
    held = np.unique(writers[val])
    assert len(held) == 5  # round(0.1 * 47 writers)
    assert not set(held) & set(writers[train])
    assert len(train) + len(val) == 60_000 and len(np.intersect1d(train, val)) == 0
    again = validation_split(writers, 0.1, "writer", seed=0)[1]
    other = validation_split(writers, 0.1, "writer", seed=1)[1]
    assert np.array_equal(val, again) and not np.array_equal(val, other)


def test_random_split_and_a_single_writer():
    writers = writer_ids(1000)
    train, val = validation_split(writers, 0.1, "random", seed=3)
    assert len(val) == 100 and len(train) == 900
    with pytest.raises(kannada.cli.RunError, match="at least 2 writers"):
        validation_split(writers, 0.1, "writer", seed=0)


def test_build_model_is_the_seed_cnn():
    model = build_model(seed=0)
    assert model.count_params() == 870_634
    assert model.output_shape == (10,)
    probs = model.predict(np.zeros((2, 1, 28, 28), np.float32))
    assert probs.shape == (2, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    same = build_model(seed=0).get_weights()
    assert all(np.array_equal(v, same[k]) for k, v in model.get_weights().items())


# ---------------------------------------------------------------- the whole run


def test_train_help_in_a_subprocess():
    result = subprocess.run(
        [sys.executable, "-m", "kannada.train", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "--val-by" in result.stdout and "--resume" in result.stdout
    assert "holds out whole writers" in result.stdout


def test_run_writes_every_artifact(full_run: Path):
    assert sorted(path.name for path in full_run.iterdir()) == sorted(RUN_FILES)
    modes = {path.name: path.stat().st_mode for path in full_run.iterdir()}
    assert len(set(modes.values())) == 1, modes  # every file with the same permissions
    for png in full_run.glob("*.png"):
        image = matplotlib.image.imread(png)
        assert image.ndim == 3 and min(image.shape[:2]) > 50, png

    history = pd.read_csv(full_run / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    for column in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds"):
        assert np.all(np.isfinite(history[column])), column
    assert list(history["learning_rate"]) == [1e-3, 1e-3]

    metrics = json.loads((full_run / "metrics.json").read_text())
    assert metrics["epochs_trained"] == 2
    assert metrics["validation"]["num_samples"] == LIMIT // 2
    assert metrics["dig"]["num_samples"] == N_DIG
    assert "test" not in metrics  # the test split has no labels: a submission instead
    assert metrics["peak_memory_rss_mb"] > 10 and metrics["wall_time_seconds"] > 0
    assert len(metrics["epoch_seconds"]) == 2 and metrics["seconds_per_epoch"] > 0
    assert metrics["command_line"].startswith("python -m kannada.train --data-dir")
    assert metrics["config"]["val_by"] == "writer" and metrics["config"]["zca"] is True
    assert history["val_accuracy"].iloc[-1] == pytest.approx(metrics["validation"]["accuracy"])


def test_the_run_calibrates_its_confidence_on_the_validation_writers(
    full_run: Path, data_dir: Path
):
    model, preprocessing = load_model(full_run / "model.npz")
    metrics = json.loads((full_run / "metrics.json").read_text())
    t = model.metadata["temperature"]
    assert t == metrics["temperature"] and 0.05 <= t <= 20
    dataset = load_dataset(data_dir)
    _, val_rows = split_rows(len(dataset.train), model.metadata["config"])
    images, labels = dataset.train.images[val_rows], dataset.train.labels[val_rows]
    logits = predict_logits(model, preprocessing, images)
    # the stored temperature is the one that fits the validation writers best
    assert t == pytest.approx(fit_temperature(logits, labels), rel=1e-3)
    for name in ("validation", "dig"):
        report = metrics[name]["calibration"]
        assert report["ece_bins"] == 15 and report["temperature"] == t
        assert {"nll_before", "nll_after", "ece_before", "ece_after"} <= set(report)
    assert metrics["validation"]["calibration"]["nll_after"] <= (
        metrics["validation"]["calibration"]["nll_before"] + 1e-9
    )
    # and predict_images reports the calibrated probabilities
    _, probs = predict_images(model, preprocessing, images)
    np.testing.assert_allclose(probs, softmax(logits, t), rtol=1e-5, atol=1e-6)


def test_reports_equal_sklearn_on_the_models_predictions(full_run: Path, data_dir: Path):
    model, preprocessing = load_model(full_run / "model.npz")
    assert preprocessing.zca is not None  # --zca is the default, and it travels with the model
    dataset = load_dataset(data_dir)
    config = model.metadata["config"]
    train_rows, val_rows = split_rows(len(dataset.train), config)
    # Whole writers: no writer on both sides.
    writers = writer_ids(N_TRAIN)
    assert not set(writers[train_rows]) & set(writers[val_rows])

    metrics = json.loads((full_run / "metrics.json").read_text())
    sections = report_sections(full_run / "classification_report.txt")
    assert set(sections) == {"validation", "dig"}
    for name, images, labels in (
        ("validation", dataset.train.images[val_rows], dataset.train.labels[val_rows]),
        ("dig", dataset.dig.images, dataset.dig.labels),
    ):
        predicted, probs = predict_images(model, preprocessing, images)
        assert probs.shape == (len(images), 10)
        oracle = sklearn_report(labels, predicted, output_dict=True)
        assert metrics[name]["accuracy"] == pytest.approx(oracle["accuracy"], abs=1e-12)
        assert model.metadata[f"{name}_accuracy"] == pytest.approx(oracle["accuracy"], abs=1e-12)
        for k in range(10):
            for key, theirs in (
                ("precision", "precision"),
                ("recall", "recall"),
                ("f1", "f1-score"),
            ):
                assert metrics[name]["per_class"][str(k)][key] == pytest.approx(
                    oracle[str(k)][theirs], abs=1e-12
                )
        assert metrics[name]["macro_f1"] == pytest.approx(oracle["macro avg"]["f1-score"])
        assert (
            metrics[name]["confusion_matrix"]
            == skm.confusion_matrix(labels, predicted, labels=range(10)).tolist()
        )
        if np.any(predicted == labels):  # sklearn prints supports as floats otherwise
            assert sections[name] == sklearn_report(labels, predicted, output_dict=False)


def test_submission_has_the_test_ids_and_the_models_labels(full_run: Path, data_dir: Path):
    submission = pd.read_csv(full_run / "submission.csv")
    assert list(submission.columns) == ["id", "label"]
    assert list(submission["id"]) == list(range(TEST_IDS_START, TEST_IDS_START + N_TEST))
    assert submission["label"].between(0, 9).all()
    model, preprocessing = load_model(full_run / "model.npz")
    predicted, _ = predict_images(model, preprocessing, load_dataset(data_dir).test.images)
    assert np.array_equal(submission["label"], predicted)


def test_model_file_records_the_run(full_run: Path, data_dir: Path):
    model = minicnn.load(full_run / "model.npz")
    meta = model.metadata
    assert meta["epochs_trained"] == 2
    assert meta["config"]["limit"] == LIMIT and meta["config"]["seed"] == 0
    assert meta["data"]["train_sha256"] == data_fingerprint(load_dataset(data_dir).train)
    assert Augmenter.from_config(meta["augmenter"]) == Augmenter()
    checkpoint = minicnn.load(full_run / "checkpoint.npz").metadata
    assert checkpoint["epoch"] == 2 and len(checkpoint["history"]["loss"]) == 2


# ---------------------------------------------------------------- resume, NaN, bad input


def test_resume_ends_with_the_same_weights_as_an_uninterrupted_run(
    full_run: Path, data_dir: Path, runs: Path, monkeypatch
):
    # Only the weights and the history are under test here: skip the figures and reports
    # (test_run_writes_every_artifact and the evaluate tests cover them) to save time.
    monkeypatch.setattr(kannada.train, "write_evaluation", lambda *args: ({}, []))
    monkeypatch.setattr(kannada.train, "plot_history", lambda *args: [])
    monkeypatch.setattr(kannada.train, "save_examples_figure", lambda *args: args[2])
    # Leg 1: one epoch; leg 2: resume to a larger --epochs.
    assert train_main(train_args(data_dir, runs, "part", "--epochs", "1")) == 0
    assert minicnn.load(runs / "part" / "checkpoint.npz").metadata["epoch"] == 1
    assert train_main(["--resume", str(runs / "part"), "--epochs", "2", "--quiet"]) == 0

    resumed = minicnn.load(runs / "part" / "model.npz")
    reference = minicnn.load(full_run / "model.npz")
    ours, theirs = resumed.get_weights(), reference.get_weights()
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert np.array_equal(ours[key], theirs[key]), key  # bit for bit
    assert resumed.optimizer.learning_rate == reference.optimizer.learning_rate
    history = pd.read_csv(runs / "part" / "history.csv").drop(columns="seconds")
    expected = pd.read_csv(full_run / "history.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(history, expected)
    metrics = json.loads((runs / "part" / "metrics.json").read_text())
    assert metrics["resumed_after_epoch"] == 1 and metrics["epochs_trained"] == 2
    assert len(metrics["epoch_seconds"]) == 2  # both legs' epochs


def test_interrupted_run_says_how_to_resume(data_dir: Path, tmp_path: Path, monkeypatch, capsys):
    def interrupt(self, batch, rng):
        raise KeyboardInterrupt

    monkeypatch.setattr(Augmenter, "__call__", interrupt)
    code = train_main(train_args(data_dir, tmp_path, "stopped", "--epochs", "2", "--no-zca"))
    assert code == 130
    assert f"continue with: python -m kannada.train --resume {tmp_path / 'stopped'}" in (
        capsys.readouterr().err
    )
    assert minicnn.load(tmp_path / "stopped" / "checkpoint.npz").metadata["epoch"] == 0


def test_resume_keeps_the_saved_settings(full_run: Path, capsys):
    with pytest.raises(SystemExit) as stop:
        train_main(["--resume", str(full_run), "--lr", "0.5"])
    assert stop.value.code == 2
    assert "--lr (the run has 0.001, given 0.5)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_main(["--resume", str(full_run), "--epochs", "1"])  # already trained 2
    assert "already trained 2 epochs" in capsys.readouterr().err


def test_resume_of_a_folder_without_checkpoint(tmp_path: Path, capsys):
    assert train_main(["--resume", str(tmp_path)]) == 1
    assert f"--resume {tmp_path}: no checkpoint.npz there" in capsys.readouterr().err


def test_non_finite_loss_stops_with_a_message_and_keeps_the_checkpoint(
    data_dir: Path, tmp_path: Path, monkeypatch, capsys
):
    real_call = Augmenter.__call__
    calls = []

    def poisoned(self, batch, rng):
        # LIMIT / 2 = 96 training rows: one batch per epoch, so epoch 2 gets NaN images.
        calls.append(len(batch))
        out = real_call(self, batch, rng)
        return out if len(calls) == 1 else np.full_like(out, np.nan)

    monkeypatch.setattr(Augmenter, "__call__", poisoned)
    code = train_main(train_args(data_dir, tmp_path, "nan", "--epochs", "3", "--no-zca"))
    assert code == 1
    err = capsys.readouterr().err
    assert "training loss became nan at epoch 2, batch 1" in err
    assert "last good checkpoint (after epoch 1)" in err
    checkpoint = minicnn.load(tmp_path / "nan" / "checkpoint.npz")
    assert checkpoint.metadata["epoch"] == 1
    assert all(np.all(np.isfinite(w)) for w in checkpoint.get_weights().values())
    assert not (tmp_path / "nan" / "model.npz").exists()


def test_train_reports_bad_data_dir_and_options(tmp_path: Path, capsys):
    assert train_main(["--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("python -m kannada.train: error: data folder") and "does not exist" in err
    with pytest.raises(SystemExit) as stop:
        train_main(["--val-split", "1.5", "--out", str(tmp_path)])
    assert stop.value.code == 2
    assert "--val-split: expected between 0 and 1" in capsys.readouterr().err


# ---------------------------------------------------------------- evaluate and predict


def test_evaluate_rebuilds_the_validation_split(full_run: Path, tmp_path: Path, capsys):
    out = tmp_path / "eval"
    assert evaluate_main(["--model", str(full_run / "model.npz"), "--out", str(out)]) == 0
    ours = json.loads((out / "metrics.json").read_text())
    trained = json.loads((full_run / "metrics.json").read_text())
    for name in ("validation", "dig"):
        assert ours[name] == trained[name]
    for name in (
        "confusion_matrix_validation.png",
        "misclassified_validation.png",
        "submission.csv",
    ):
        assert (out / name).is_file()
    assert (out / "classification_report.txt").read_text() == (
        full_run / "classification_report.txt"
    ).read_text()
    assert "validation accuracy" in capsys.readouterr().out


def test_evaluate_on_other_data_skips_validation(full_run: Path, tmp_path: Path, capsys):
    folder = tmp_path / "other"
    folder.mkdir()
    labels = np.arange(30) % 10
    images = synthetic_images(labels, np.random.default_rng(1))
    write_kaggle_csv(folder / "train.csv", "label", labels, images)
    write_kaggle_csv(folder / "Dig-MNIST.csv", "label", labels, images)
    out = tmp_path / "eval"
    args = ["--model", str(full_run / "model.npz"), "--data-dir", str(folder), "--out", str(out)]
    assert evaluate_main(args) == 0
    assert "not the data the model was trained on" in capsys.readouterr().out
    assert set(json.loads((out / "metrics.json").read_text())) >= {"dig", "model"}
    assert "validation" not in json.loads((out / "metrics.json").read_text())


def test_predict_cli_on_csv_idx_and_npz(full_run: Path, data_dir: Path, tmp_path: Path):
    model = str(full_run / "model.npz")
    out = tmp_path / "sub.csv"
    assert (
        predict_main(
            ["--model", model, "--input", str(data_dir / "test.csv"), "--output", str(out)]
        )
        == 0
    )
    assert (
        pd.read_csv(out).to_numpy().tolist()
        == pd.read_csv(full_run / "submission.csv").to_numpy().tolist()
    )

    images = load_dataset(data_dir).dig.images
    idx = tmp_path / "X-idx3-ubyte"
    header = np.array([0x0803, len(images), 28, 28], dtype=">u4").tobytes()
    idx.write_bytes(header + images.tobytes())
    npz = tmp_path / "X.npz"
    np.savez(npz, images)
    expected, _ = predict_images(*load_model(model), images)
    for path in (idx, npz, data_dir / "Dig-MNIST.csv"):
        assert predict_main(["--model", model, "--input", str(path), "--output", str(out)]) == 0
        table = pd.read_csv(out)
        assert list(table["id"]) == list(range(len(images))), path
        assert np.array_equal(table["label"], expected), path


def test_predict_and_evaluate_explain_bad_inputs(full_run: Path, tmp_path: Path, capsys):
    model = str(full_run / "model.npz")
    with pytest.raises(SystemExit) as stop:
        predict_main(["--model", str(tmp_path / "missing.npz"), "--input", model])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "error: --model" in err and "missing.npz: no such file" in err

    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"\x89PNG not a csv\x00\xff\xfe")
    assert predict_main(["--model", model, "--input", str(garbage)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("python -m kannada.predict: error: garbage.csv")
    assert "Traceback" not in err

    labels_file = tmp_path / "y-idx1-ubyte"
    labels_file.write_bytes(np.array([0x0801, 3], dtype=">u4").tobytes() + bytes([1, 2, 3]))
    assert predict_main(["--model", model, "--input", str(labels_file)]) == 1
    assert "expected the X_...-idx3-ubyte file" in capsys.readouterr().err

    not_a_model = tmp_path / "model.npz"
    not_a_model.write_bytes(b"junk")
    assert evaluate_main(["--model", str(not_a_model)]) == 1
    err = capsys.readouterr().err
    assert "python -m kannada.evaluate: error:" in err and str(not_a_model) in err


# ---------------------------------------------------------------- the real data, when present


def test_quick_run_on_the_real_data(real_data_dir: Path, tmp_path: Path, monkeypatch):
    """IDX layout, --limit 300 spread over the 47 writers; Dig-MNIST cut to 200 rows for time."""
    folder = real_data_dir / "original"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    load_data = kannada.train.load_data

    def smaller(data_dir):
        dataset = load_data(data_dir)
        return replace(
            dataset,
            dig=replace(
                dataset.dig, images=dataset.dig.images[:200], labels=dataset.dig.labels[:200]
            ),
        )

    monkeypatch.setattr(kannada.train, "load_data", smaller)
    args = [
        "--data-dir",
        str(folder),
        "--limit",
        "300",
        "--epochs",
        "1",
        "--no-augment",
        "--no-zca",
    ]
    assert train_main([*args, "--out", str(tmp_path), "--name", "real", "--quiet"]) == 0
    run = tmp_path / "real"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["layout"] == "idx" and metrics["dig"]["num_samples"] == 200
    # 300 rows over 47 writers (6-7 each); 5 writers held out.
    assert 5 * 6 <= metrics["validation"]["num_samples"] <= 5 * 7
    assert not (run / "submission.csv").exists()  # no test split in this layout
    assert not (run / "augmented_examples.png").exists()  # --no-augment
    config = minicnn.load(run / "model.npz").metadata["config"]
    assert config["augment"] is False and config["zca"] is False
