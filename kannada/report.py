"""The numbers and files that describe a run: metrics, classification reports, CSV and JSON.

Metrics are pure NumPy and agree with scikit-learn; every file is written atomically.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from minicnn.files import atomic_write

_HEADERS = ("precision", "recall", "f1-score", "support")
_SECTION_HEADER = re.compile(r"^=== (?P<name>[A-Za-z0-9_-]+) ===$")
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


# ---------------------------------------------------------------- metrics


def _check_labels(y_true: Any, y_pred: Any, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Both label arrays as 1-D int64, after checking shape, dtype and range."""
    checked = []
    for what, labels in (("y_true", y_true), ("y_pred", y_pred)):
        array = np.asarray(labels)
        if array.ndim != 1:
            raise ValueError(f"{what}: expected a 1-D array of labels, found shape {array.shape}")
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{what}: expected integer labels, found dtype {array.dtype}")
        array = array.astype(np.int64, copy=False)
        bad = np.flatnonzero((array < 0) | (array >= num_classes))
        if bad.size:
            raise ValueError(
                f"{what}[{bad[0]}]: expected a label in 0..{num_classes - 1}, "
                f"found {array[bad[0]]} ({bad.size} labels out of range)"
            )
        checked.append(array)
    y_true, y_pred = checked
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true has {y_true.size} labels but y_pred has {y_pred.size}; expected the same"
        )
    if y_true.size == 0:
        raise ValueError("y_true and y_pred are empty; expected at least one label")
    return y_true, y_pred


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int = 10) -> np.ndarray:
    """Counts of (true, predicted) pairs: (N,), (N,) ints -> (K, K) int64, rows true."""
    y_true, y_pred = _check_labels(y_true, y_pred, num_classes)
    # Each pair gets one flat index true*K + pred; bincount counts them all at once.
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of labels predicted correctly: (N,), (N,) -> float in [0, 1]."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1 or y_true.size == 0:
        raise ValueError(
            f"expected two non-empty 1-D label arrays of the same length, "
            f"found shapes {y_true.shape} and {y_pred.shape}"
        )
    return float(np.mean(y_true == y_pred))


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, with 0.0 where the denominator is 0 (sklearn's default)."""
    numerator = numerator.astype(np.float64)
    denominator = denominator.astype(np.float64)
    safe = np.where(denominator == 0, 1.0, denominator)
    return np.where(denominator == 0, 0.0, numerator / safe)


def classification_report(
    y_true: Any, y_pred: Any, num_classes: int = 10, digits: int = 4
) -> tuple[dict[str, Any], str]:
    """Per-class precision, recall, F1 and support, plus accuracy and averages.

    y_true, y_pred: (N,) ints in 0..num_classes-1. Returns `(report, text)`, the same as
    `sklearn.metrics.classification_report(y_true, y_pred, labels=range(num_classes),
    digits=digits)` with `output_dict=True` and `False`: keys "0".."K-1" (each a dict of
    "precision", "recall", "f1-score", "support"), "accuracy" (a float), "macro avg" and
    "weighted avg". Like sklearn, supports are floats in the dict, and a ratio whose
    denominator is zero (a class never predicted, or never present) counts as 0.0.
    """
    cm = confusion_matrix(y_true, y_pred, num_classes)
    true_positives = np.diag(cm)
    true_count = cm.sum(axis=1)  # the support
    pred_count = cm.sum(axis=0)
    # The same formulas as sklearn (F1 = 2 tp / (true + pred)) so the floats match exactly.
    precision = _divide(true_positives, pred_count)
    recall = _divide(true_positives, true_count)
    f1 = _divide(2.0 * true_positives, true_count + pred_count)

    names = [str(k) for k in range(num_classes)]
    report: dict[str, Any] = {}
    for k, name in enumerate(names):
        values = (precision[k], recall[k], f1[k], true_count[k])
        report[name] = {h: float(v) for h, v in zip(_HEADERS, values, strict=True)}
    total = int(true_count.sum())
    report["accuracy"] = float(true_positives.sum() / total)
    report["macro avg"] = {
        "precision": float(np.mean(precision)),
        "recall": float(np.mean(recall)),
        "f1-score": float(np.mean(f1)),
        "support": float(total),
    }
    report["weighted avg"] = {
        "precision": float(np.average(precision, weights=true_count)),
        "recall": float(np.average(recall, weights=true_count)),
        "f1-score": float(np.average(f1, weights=true_count)),
        "support": float(total),
    }
    return report, _report_text(report, names, digits)


def _report_text(report: dict[str, Any], names: list[str], digits: int) -> str:
    """The report laid out exactly as sklearn's text classification_report."""
    width = max(max(len(name) for name in names), len("weighted avg"), digits)

    def line(name: str, cells: Sequence[str]) -> str:
        return f"{name:>{width}s} " + "".join(f" {cell:>9}" for cell in cells) + "\n"

    def scores(name: str) -> list[str]:
        values = report[name]
        numbers = [f"{values[h]:.{digits}f}" for h in _HEADERS[:3]]
        return [*numbers, str(int(values["support"]))]

    text = line("", _HEADERS) + "\n"
    text += "".join(line(name, scores(name)) for name in names) + "\n"
    total = str(int(report["macro avg"]["support"]))
    text += line("accuracy", ["", "", f"{report['accuracy']:.{digits}f}", total])
    text += line("macro avg", scores("macro avg"))
    text += line("weighted avg", scores("weighted avg"))
    return text


# ---------------------------------------------------------------- files


def _plain(value: Any) -> Any:
    """`value` with NumPy scalars and arrays turned into JSON types; NaN and inf become None."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        # JSON has no NaN: a diverged loss is written as null rather than breaking parsers.
        return float(value) if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def write_metrics_json(metrics: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write `metrics` as indented JSON (NumPy values converted, NaN/inf as null)."""
    text = json.dumps(_plain(metrics), indent=2, allow_nan=False) + "\n"
    with atomic_write(path) as file:
        file.write(text)
    return Path(path)


def write_history_csv(history: Mapping[str, Sequence[float]], path: str | os.PathLike[str]) -> Path:
    """Write a training history as CSV: columns `epoch` (from 1) then the history's keys."""
    keys = list(history)
    lengths = {key: len(history[key]) for key in keys}
    epochs = max(lengths.values(), default=0)
    short = [f"{key} ({n})" for key, n in lengths.items() if n != epochs]
    if short:
        raise ValueError(
            f"{path}: every history list must have one value per epoch ({epochs}); "
            f"found {', '.join(short)}"
        )
    with atomic_write(path, newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["epoch", *keys])
        for i in range(epochs):
            writer.writerow([i + 1, *(_plain(history[key][i]) for key in keys)])
    return Path(path)


def write_submission_csv(ids: Any, labels: Any, path: str | os.PathLike[str]) -> Path:
    """Write a Kaggle submission: header `id,label`, one int row per (ids[i], labels[i])."""
    ids, labels = np.asarray(ids), np.asarray(labels)
    if ids.ndim != 1 or ids.shape != labels.shape:
        raise ValueError(
            f"{path}: expected ids and labels as 1-D arrays of the same length, "
            f"found shapes {ids.shape} and {labels.shape}"
        )
    for what, array in (("ids", ids), ("labels", labels)):
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{path}: expected integer {what}, found dtype {array.dtype}")
    with atomic_write(path, newline="") as file:
        file.write("id,label\n")
        file.writelines(
            f"{i},{label}\n" for i, label in zip(ids.tolist(), labels.tolist(), strict=True)
        )
    return Path(path)


def _read_sections(path: Path) -> dict[str, str]:
    """The `=== name ===` sections of a classification_report.txt, in file order."""
    sections: dict[str, str] = {}
    if not path.exists():
        return sections
    name = None
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        match = _SECTION_HEADER.match(line.rstrip("\n"))
        if match:
            name = match["name"]
            sections[name] = ""
        elif name is not None:
            sections[name] += line
    return sections


def update_report_section(path: str | os.PathLike[str], name: str, text: str) -> Path:
    """Put `text` under the heading `=== name ===` in the file at `path`.

    A section of that name is replaced in place, a new one is appended, the others are kept:
    one classification_report.txt collects every split of a run, and rerunning a split does
    not duplicate it.
    """
    path = Path(path)
    sections = _read_sections(path)
    sections[name] = text.rstrip("\n") + "\n\n"
    with atomic_write(path) as file:
        for section, body in sections.items():
            file.write(f"=== {section} ===\n{body}")
    return path


def split_metrics(report: dict[str, Any], cm: np.ndarray) -> dict[str, Any]:
    """The metrics.json entry of one split, from `classification_report` and the (K, K) matrix."""
    classes = [key for key in report if key not in ("accuracy", "macro avg", "weighted avg")]
    metrics: dict[str, Any] = {
        "accuracy": report["accuracy"],
        "num_samples": int(cm.sum()),
    }
    for average in ("macro", "weighted"):
        scores = report[f"{average} avg"]
        metrics[f"{average}_precision"] = scores["precision"]
        metrics[f"{average}_recall"] = scores["recall"]
        metrics[f"{average}_f1"] = scores["f1-score"]
    metrics["per_class"] = {
        k: {
            "precision": report[k]["precision"],
            "recall": report[k]["recall"],
            "f1": report[k]["f1-score"],
            "support": int(report[k]["support"]),
        }
        for k in classes
    }
    metrics["confusion_matrix"] = cm.tolist()
    return metrics


def write_split_report(
    name: str,
    y_true: Any,
    y_pred: Any,
    probs: Any,
    images: Any,
    out_dir: str | os.PathLike[str],
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Write the artifacts of one labelled split and return its metrics.json entry.

    name: the split ("validation", "dig", "test"); letters, digits, _ and - only.
    y_true, y_pred: (N,) ints in 0..9. probs: (N, 10) class probabilities or None.
    images: (N, 28, 28) or (N, 1, 28, 28), or None to skip the gallery.
    Writes into `out_dir`: `confusion_matrix_<name>.png`, `misclassified_<name>.png` (when
    images are given) and the `<name>` section of `classification_report.txt`.
    Returns accuracy, macro/weighted precision/recall/F1, per-class scores and the confusion
    matrix as nested lists (see `split_metrics`).
    """
    # Imported here so that computing metrics never loads matplotlib.
    from kannada.plots import plot_confusion_matrix, plot_misclassified

    if not _SPLIT_NAME.match(name):
        raise ValueError(f"split name {name!r}: expected letters, digits, '_' or '-' only")
    out_dir = Path(out_dir)
    report, text = classification_report(y_true, y_pred)
    cm = confusion_matrix(y_true, y_pred)
    title = f"{name}: accuracy {report['accuracy']:.2%} on {int(cm.sum())} images"
    plot_confusion_matrix(cm, out_dir / f"confusion_matrix_{name}.png", title, class_names)
    if images is not None:
        plot_misclassified(images, y_true, y_pred, probs, out_dir / f"misclassified_{name}.png")
    update_report_section(out_dir / "classification_report.txt", name, text)
    return split_metrics(report, cm)
