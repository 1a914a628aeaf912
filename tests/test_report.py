"""Tests for kannada.report, kannada.plots and minicnn.files: metrics against scikit-learn,
the files a run writes, and atomic writes."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from kannada.plots import (
    display_class_names,
    plot_confusion_matrix,
    plot_history,
    plot_misclassified,
)
from kannada.report import (
    accuracy,
    classification_report,
    confusion_matrix,
    update_report_section,
    write_history_csv,
    write_metrics_json,
    write_split_report,
    write_submission_csv,
)
from minicnn.files import atomic_write, remove_stray_temp_files

KANNADA_NAMES = [f"{chr(0x0CE6 + k)} {k}" for k in range(10)]


def sklearn_report(y_true, y_pred, num_classes=10, output_dict=False, digits=4):
    """The oracle: scikit-learn's report over all classes, its zero-division warnings muted.

    One sklearn quirk is undone in the text: when no prediction at all is correct, its
    multilabel_confusion_matrix starts from float zeros, so every support prints as "1.0"
    instead of "1". We print integers always; only that column is normalised here.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        report = skm.classification_report(
            y_true, y_pred, labels=list(range(num_classes)), digits=digits, output_dict=output_dict
        )
    if output_dict or np.any(np.asarray(y_true) == np.asarray(y_pred)):
        return report
    lines = []
    for line in report.split("\n"):
        support = line[-9:]
        if re.fullmatch(r" *\d+\.0", support):
            line = line[:-9] + f"{int(float(support)):>9}"
        lines.append(line)
    return "\n".join(lines)


def assert_same_report(ours: dict, theirs: dict) -> None:
    """Same keys in the same order, every number within 1e-12."""
    assert list(ours) == list(theirs)
    for key, expected in theirs.items():
        if isinstance(expected, dict):
            assert list(ours[key]) == list(expected), key
            for field, value in expected.items():
                assert ours[key][field] == pytest.approx(value, rel=0, abs=1e-12), (key, field)
        else:
            assert ours[key] == pytest.approx(expected, rel=0, abs=1e-12), key


def labels_with_gaps(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Random labels where class 8 is never predicted, 9 never true, and 7 never either."""
    rng = np.random.default_rng(seed)
    y_true = rng.choice([0, 1, 2, 3, 4, 5, 6, 8], size=n)
    # Mostly right, sometimes a random class; never 7 or 8.
    guess = rng.choice([0, 1, 2, 3, 4, 5, 6, 9], size=n)
    y_pred = np.where((rng.random(n) < 0.7) & (y_true != 8), y_true, guess)
    return y_true, y_pred


def assert_png(path: Path, min_side: int = 150, max_side: int = 4000) -> np.ndarray:
    """The file at `path` is a PNG of a sane size; returns its pixels."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    height, width = pixels.shape[:2]
    assert min_side <= height <= max_side and min_side <= width <= max_side, pixels.shape
    assert pixels.std() > 0, "the image is blank"
    return pixels


# ---------------------------------------------------------------- metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_confusion_matrix_and_accuracy_equal_sklearn(seed):
    y_true, y_pred = labels_with_gaps(seed)
    cm = confusion_matrix(y_true, y_pred)
    expected = skm.confusion_matrix(y_true, y_pred, labels=list(range(10)))
    assert cm.dtype == np.int64 and cm.shape == (10, 10)
    np.testing.assert_array_equal(cm, expected)
    assert cm[:, 8].sum() == 0 and cm[9].sum() == 0  # the gaps are really there
    assert accuracy(y_true, y_pred) == skm.accuracy_score(y_true, y_pred)


def test_confusion_matrix_counts_by_hand():
    cm = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], num_classes=3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])


@pytest.mark.parametrize(
    ("y_true", "y_pred"),
    [
        labels_with_gaps(0),
        labels_with_gaps(5, n=37),
        (np.arange(10), np.arange(10)),  # all correct
        ([3], [5]),  # one sample, all wrong
        ([1, 1, 4, 4, 4], [1, 4, 4, 4, 1]),  # two classes present: sklearn sees "binary"
        (np.full(20, 2), np.full(20, 2)),  # one class present
    ],
)
def test_classification_report_equals_sklearn(y_true, y_pred):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # zero division must not warn here
        report, text = classification_report(y_true, y_pred, digits=4)
    assert_same_report(report, sklearn_report(y_true, y_pred, output_dict=True))
    assert text == sklearn_report(y_true, y_pred)


def test_classification_report_zero_division_is_zero():
    y_true, y_pred = labels_with_gaps(3)
    report, _ = classification_report(y_true, y_pred)
    assert report["8"]["precision"] == 0.0 and report["8"]["support"] > 0  # never predicted
    assert report["9"]["recall"] == 0.0 and report["9"]["support"] == 0  # never true
    assert report["7"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0.0}
    assert report["accuracy"] == pytest.approx(np.mean(y_true == y_pred))


def test_classification_report_digits():
    y_true, y_pred = labels_with_gaps(4)
    _, text = classification_report(y_true, y_pred, digits=2)
    assert text == sklearn_report(y_true, y_pred, digits=2)


@settings(max_examples=80, deadline=None)
@given(data=st.data(), num_classes=st.integers(2, 12), n=st.integers(1, 120))
def test_classification_report_property(data, num_classes, n):
    labels = st.lists(st.integers(0, num_classes - 1), min_size=n, max_size=n)
    y_true = np.array(data.draw(labels), dtype=np.int64)
    y_pred = np.array(data.draw(labels), dtype=np.int64)
    report, text = classification_report(y_true, y_pred, num_classes=num_classes)
    assert_same_report(report, sklearn_report(y_true, y_pred, num_classes, output_dict=True))
    assert text == sklearn_report(y_true, y_pred, num_classes)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        ([0, 1, 10], [0, 1, 2], r"y_true\[2\]: expected a label in 0..9, found 10"),
        ([0, 1, 2], [0, -1, 2], r"y_pred\[1\]: expected a label in 0..9, found -1"),
        ([0.0, 1.0], [0, 1], "y_true: expected integer labels, found dtype float64"),
        ([0, 1, 2], [0, 1], "y_true has 3 labels but y_pred has 2"),
        ([[0, 1]], [[0, 1]], r"expected a 1-D array of labels, found shape \(1, 2\)"),
        ([], [], "empty"),
    ],
)
def test_bad_labels_are_explained(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        classification_report(y_true, y_pred)


# ---------------------------------------------------------------- plots


def test_plot_history_with_validation_and_lr(tmp_path):
    history = {
        "loss": [2.0, 1.0, 0.6, 0.5, 0.45],
        "accuracy": [0.4, 0.7, 0.85, 0.9, 0.92],
        "val_loss": [1.5, 0.9, 0.7, 0.6, 0.58],
        "val_accuracy": [0.5, 0.72, 0.8, 0.85, 0.86],
        "learning_rate": [1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4],
    }
    accuracy_png, loss_png = plot_history(history, tmp_path)
    assert (accuracy_png, loss_png) == (tmp_path / "accuracy.png", tmp_path / "loss.png")
    assert_png(accuracy_png)
    assert_png(loss_png)


def test_plot_history_without_validation(tmp_path):
    accuracy_png, loss_png = plot_history({"loss": [1.0, 0.5], "accuracy": [0.5, 0.8]}, tmp_path)
    assert_png(accuracy_png)
    assert_png(loss_png)


def test_plot_confusion_matrix(tmp_path):
    y_true, y_pred = labels_with_gaps(0)
    path = plot_confusion_matrix(confusion_matrix(y_true, y_pred), tmp_path / "cm.png", "val")
    pixels = assert_png(path)
    assert pixels.shape[1] > pixels.shape[0]  # two panels side by side


def test_kannada_class_names_draw_without_warnings(tmp_path):
    cm = np.eye(10, dtype=np.int64) * 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "Glyph 3302 missing from font(s) DejaVu Sans"
        path = plot_confusion_matrix(cm, tmp_path / "cm.png", "dig", KANNADA_NAMES)
    assert_png(path)


def test_display_class_names_fall_back_to_digits_or_keep_a_real_font():
    names, family = display_class_names(KANNADA_NAMES)
    if family is None:  # no installed font draws Kannada (the usual case: DejaVu Sans only)
        assert names == [str(k) for k in range(10)]
        assert display_class_names([chr(0x0CE6 + k) for k in range(10)])[0] == names
    else:
        assert names == KANNADA_NAMES and not family.startswith("Last Resort")
    assert display_class_names(["0", "1"]) == (["0", "1"], None)


def test_plot_misclassified_uint8_nchw(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(50, 1, 28, 28), dtype=np.uint8)
    y_true = np.arange(50) % 10
    y_pred = np.where(np.arange(50) % 3 == 0, (y_true + 1) % 10, y_true)
    probs = rng.dirichlet(np.ones(10), size=50)
    assert_png(plot_misclassified(images, y_true, y_pred, probs, tmp_path / "m.png"))


def test_plot_misclassified_float_and_none_wrong(tmp_path):
    images = np.random.default_rng(1).random((12, 28, 28))
    labels = np.arange(12) % 10
    wrong = plot_misclassified(images, labels, (labels + 1) % 10, None, tmp_path / "w.png", 4)
    assert_png(wrong)
    none = plot_misclassified(images, labels, labels, None, tmp_path / "none.png")
    assert_png(none, min_side=100)


# ---------------------------------------------------------------- files


def test_history_csv(tmp_path):
    history = {"loss": [1.0, 0.5, np.float32(0.25)], "accuracy": [0.5, 0.75, 0.875]}
    path = write_history_csv(history, tmp_path / "history.csv")
    table = pd.read_csv(path)
    assert list(table.columns) == ["epoch", "loss", "accuracy"]
    assert table["epoch"].tolist() == [1, 2, 3]
    assert table["loss"].tolist() == [1.0, 0.5, 0.25]
    assert table["accuracy"].tolist() == [0.5, 0.75, 0.875]


def test_history_csv_rejects_ragged_history(tmp_path):
    with pytest.raises(ValueError, match=r"one value per epoch \(3\); found val_loss \(2\)"):
        write_history_csv({"loss": [1, 2, 3], "val_loss": [1, 2]}, tmp_path / "h.csv")


def test_metrics_json_converts_numpy(tmp_path):
    metrics = {
        "accuracy": np.float32(0.5),
        "count": np.int64(7),
        "matrix": np.eye(2, dtype=np.int64),
        "ok": np.bool_(True),
        "loss": float("nan"),
        "per_class": {0: np.float64(0.25)},
    }
    loaded = json.loads(write_metrics_json(metrics, tmp_path / "metrics.json").read_text())
    assert loaded == {
        "accuracy": 0.5,
        "count": 7,
        "matrix": [[1, 0], [0, 1]],
        "ok": True,
        "loss": None,
        "per_class": {"0": 0.25},
    }
    assert type(loaded["count"]) is int and type(loaded["matrix"][0][0]) is int


def test_submission_csv(tmp_path):
    ids = np.array([5, 3, 9, 0])
    labels = np.array([1, 0, 9, 4], dtype=np.int32)
    path = write_submission_csv(ids, labels, tmp_path / "submission.csv")
    assert path.read_text().splitlines()[0] == "id,label"
    table = pd.read_csv(path)
    assert list(table.columns) == ["id", "label"]
    assert table["id"].tolist() == [5, 3, 9, 0] and table["label"].tolist() == [1, 0, 9, 4]
    with pytest.raises(ValueError, match="expected integer labels, found dtype float64"):
        write_submission_csv(ids, labels.astype(float), tmp_path / "bad.csv")


def test_report_sections_are_replaced_in_place(tmp_path):
    path = tmp_path / "classification_report.txt"
    update_report_section(path, "validation", "first\n")
    update_report_section(path, "dig", "second\n")
    update_report_section(path, "validation", "third\n")
    assert path.read_text() == "=== validation ===\nthird\n\n=== dig ===\nsecond\n\n"


def test_write_split_report(tmp_path):
    y_true, y_pred = labels_with_gaps(2, n=200)
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(10), size=200)
    images = rng.random((200, 1, 28, 28)).astype(np.float32)
    metrics = write_split_report("validation", y_true, y_pred, probs, images, tmp_path)
    write_split_report("dig", y_pred, y_pred, None, None, tmp_path, KANNADA_NAMES)

    for name in ("confusion_matrix_validation", "misclassified_validation", "confusion_matrix_dig"):
        assert_png(tmp_path / f"{name}.png")
    assert not (tmp_path / "misclassified_dig.png").exists()
    text = (tmp_path / "classification_report.txt").read_text()
    assert text.startswith("=== validation ===\n" + sklearn_report(y_true, y_pred))
    assert "\n=== dig ===\n" in text

    expected = sklearn_report(y_true, y_pred, output_dict=True)
    assert metrics["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-12)
    assert metrics["macro_f1"] == pytest.approx(expected["macro avg"]["f1-score"], abs=1e-12)
    assert metrics["weighted_recall"] == pytest.approx(expected["weighted avg"]["recall"])
    assert metrics["per_class"]["3"]["f1"] == pytest.approx(expected["3"]["f1-score"])
    assert metrics["per_class"]["3"]["support"] == int(expected["3"]["support"])
    assert metrics["num_samples"] == 200
    assert metrics["confusion_matrix"] == confusion_matrix(y_true, y_pred).tolist()
    # The result goes straight into metrics.json.
    json.loads(write_metrics_json({"validation": metrics}, tmp_path / "metrics.json").read_text())


def test_write_split_report_rejects_odd_names(tmp_path):
    with pytest.raises(ValueError, match="split name 'val/x'"):
        write_split_report("val/x", [0], [0], None, None, tmp_path)


# ---------------------------------------------------------------- atomic writes


def test_atomic_write_keeps_old_content_when_writing_fails(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old content\n")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_write(path) as file:
            file.write("new half-written con")
            raise RuntimeError("disk on fire")
    assert path.read_text() == "old content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_atomic_write_leaves_nothing_when_first_write_fails(tmp_path):
    with pytest.raises(ValueError):
        with atomic_write(tmp_path / "out" / "plot.png", "wb") as file:
            file.write(b"\x89PNG")
            raise ValueError("render failed")
    assert list((tmp_path / "out").iterdir()) == []


def test_atomic_write_replaces_and_respects_umask(tmp_path):
    path = tmp_path / "sub" / "data.bin"
    with atomic_write(path, "wb") as file:
        file.write(b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"")
    assert os.stat(path).st_mode == os.stat(plain).st_mode  # not the 0600 of mkstemp
    with pytest.raises(ValueError, match=r"mode must be one of \('w', 'wb', 'w\+b'\), found 'a'"):
        with atomic_write(path, "a"):
            pass


def test_atomic_write_errors_name_the_target_not_the_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    path.write_bytes(b"old")

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError) as info:
        with atomic_write(path, "wb") as file:
            file.write(b"new")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def test_remove_stray_temp_files_keeps_the_files_of_running_processes(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)  # a process that has ended (its id is very unlikely reused yet)
    stray = tmp_path / f".checkpoint.npz.{dead_pid}.0123abcd.tmp"
    ours = tmp_path / f".model.npz.{os.getpid()}.89abcdef.tmp"
    others = [tmp_path / "checkpoint.npz", tmp_path / ".hidden.tmp", tmp_path / "x.1.0123abcd.tmp"]
    for path in (stray, ours, *others):
        path.write_bytes(b"")
    assert remove_stray_temp_files(tmp_path) == [stray]
    assert sorted(tmp_path.iterdir()) == sorted([ours, *others])
    assert remove_stray_temp_files(tmp_path / "missing") == []
