"""Reports for a trained model: `python -m kannada.evaluate --model M [--data-dir D] [--out DIR]`.

write_evaluation() is also what kannada.train runs at the end of training, so both give the
same files: confusion matrices, classification_report.txt, mistake galleries, a submission.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import minicnn
from kannada.calibration import ECE_BINS, calibration_report, reliability, softmax
from kannada.cli import (
    add_backend_argument,
    add_data_dir_argument,
    add_model_argument,
    check_output_folder,
    choose_backend,
    data_fingerprint,
    existing_file,
    load_data,
    remove_empty_folders,
    run_command,
    split_rows,
)
from kannada.data import Dataset, Split
from kannada.predict import load_model, predict_logits, temperature
from kannada.preprocess import Preprocessing
from kannada.report import write_metrics_json, write_split_report, write_submission_csv

PROG = "python -m kannada.evaluate"
VALIDATION = "validation"
SPLIT_LABELS = {VALIDATION: "validation", "dig": "Dig-MNIST", "test": "test"}


def write_evaluation(
    model: minicnn.Sequential,
    preprocessing: Preprocessing,
    parts: Mapping[str, Split],
    out_dir: str | Path,
) -> tuple[dict[str, Any], list[Path]]:
    """Predict every split in `parts` with `preprocessing` and write its reports into out_dir.

    parts: split name ("validation", "dig", "test") -> Split with images uint8 (N, 28, 28).
    A labelled split gets confusion_matrix_<name>.png, misclassified_<name>.png (a gallery of
    its mistakes), a section of classification_report.txt, and its calibration (NLL and ECE
    before and after the model's temperature) in its metrics, drawn in reliability.png. A
    split without labels gets submission.csv (id,label; ids 0..N-1 when the file has none).
    Returns (metrics by split name, the paths written).
    """
    out_dir = Path(out_dir)
    metrics: dict[str, Any] = {}
    written: list[Path] = []
    reliability_tables = {}
    t = temperature(model)
    for name, split in parts.items():
        logits = predict_logits(model, preprocessing, split.images)
        probs = softmax(logits, t).astype(np.float32)
        predicted = probs.argmax(axis=1)
        if split.labels is None:
            ids = split.ids if split.ids is not None else np.arange(len(split), dtype=np.int64)
            written.append(write_submission_csv(ids, predicted, out_dir / "submission.csv"))
            continue
        metrics[name] = write_split_report(
            name, split.labels, predicted, probs, split.images, out_dir
        )
        metrics[name]["calibration"] = calibration_report(logits, split.labels, t)
        written += [out_dir / f"confusion_matrix_{name}.png", out_dir / f"misclassified_{name}.png"]
        if name in (VALIDATION, "dig"):
            label = SPLIT_LABELS.get(name, name)
            reliability_tables[f"{label}, T = 1"] = reliability(softmax(logits), split.labels)
            if t != 1.0:
                reliability_tables[f"{label}, T = {t:.2f}"] = reliability(probs, split.labels)
    if metrics:
        written.append(out_dir / "classification_report.txt")
    if reliability_tables:
        from kannada.plots import plot_reliability  # figures only where they are drawn

        title = f"Reliability ({ECE_BINS} equal-width confidence bins)"
        written.append(plot_reliability(reliability_tables, out_dir / "reliability.png", title))
    return metrics, written


def evaluation_parts(
    dataset: Dataset, model_metadata: Mapping[str, Any]
) -> tuple[dict[str, Split], str | None]:
    """The splits to evaluate a saved model on, and why validation is missing (None if present).

    The validation rows are rebuilt from the run's saved config, but only when the training
    data is byte for byte the data the model was trained on (same fingerprint).
    """
    parts: dict[str, Split] = {}
    note = None
    config = model_metadata.get("config")
    data = model_metadata.get("data")
    if not isinstance(config, dict) or not isinstance(data, dict):
        note = "the model file has no training record (config), so no validation split"
    elif data.get("train_sha256") != data_fingerprint(dataset.train):
        note = (
            f"the training data in {dataset.folder} is not the data the model was trained on, "
            "so its validation rows cannot be rebuilt"
        )
    else:
        _, val_rows = split_rows(len(dataset.train), config)
        parts[VALIDATION] = Split(
            images=dataset.train.images[val_rows],
            labels=dataset.train.labels[val_rows],
            ids=None,
            source=f"{dataset.train.source} (validation rows)",
        )
    for name in ("dig", "test"):
        split = getattr(dataset, name)
        if split is not None:
            parts[name] = split
    return parts, note


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with argv (default: sys.argv[1:]); return the exit status."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Recompute the reports (validation, Dig-MNIST, test) of a saved model, "
        "with the preprocessing stored in it.",
    )
    add_model_argument(parser)
    add_data_dir_argument(parser)
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="where to write the reports (default: an 'evaluation' folder next to the model)",
    )
    add_backend_argument(parser)
    args = parser.parse_args(argv)
    model_path = existing_file(parser, args.model, "--model")
    out_dir = Path(args.out) if args.out else model_path.parent / "evaluation"
    writing: list[bool] = []  # not empty once the reports are being written

    def after_interrupt() -> str:
        if not writing:
            return "nothing was written"
        return (
            f"the reports in {out_dir} may be incomplete (each file there is whole); "
            "run the command again to write them all"
        )

    return run_command(
        PROG,
        lambda: _evaluate(model_path, args.data_dir, out_dir, args.backend, writing),
        after_interrupt,
    )


def _evaluate(
    model_path: Path, data_dir: str | None, out_dir: Path, backend: str, writing: list[bool]
) -> int:
    """Load the model and the data, write the reports, print the summary; return 0."""
    created = check_output_folder(out_dir, "--out")
    try:
        choose_backend(backend)
        model, preprocessing = load_model(model_path)
        if data_dir is None:
            # The folder the model was trained from, when it is still there.
            folder = model.metadata.get("data", {}).get("folder")
            data_dir = folder if folder and Path(folder).is_dir() else None
        dataset = load_data(data_dir)
        parts, note = evaluation_parts(dataset, model.metadata)
        writing.append(True)
        metrics, written = write_evaluation(model, preprocessing, parts, out_dir)
        summary = {
            "model": str(model_path),
            "data_dir": str(dataset.folder),
            "layout": dataset.layout,
            **metrics,
        }
        written.append(write_metrics_json(summary, out_dir / "metrics.json"))
    finally:
        remove_empty_folders(out_dir, created)  # a failure before the first report
    if note:
        print(f"note: {note}")
    for name, split_metrics in metrics.items():
        print(
            f"{name} accuracy: {split_metrics['accuracy']:.4f} ({split_metrics['num_samples']} images)"
        )
    print(f"reports in {out_dir}:")
    for path in written:
        print(f"  {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
