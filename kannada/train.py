"""Train the digit CNN on Kannada-MNIST with one command: `python -m kannada.train` (see --help).

Data -> writer-held-out validation split -> ZCA fitted on the training rows -> augmented,
whitened batches -> Adam + ReduceLROnPlateau, a resumable checkpoint after every epoch ->
reports, figures, metrics and a Kaggle submission in runs/<name>/.
"""

from __future__ import annotations

import argparse
import errno
import resource
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import minicnn
from kannada.augment import Augmenter, save_examples_figure
from kannada.calibration import fit_temperature
from kannada.cli import (
    RunError,
    add_backend_argument,
    add_data_dir_argument,
    check_output_folder,
    choose_backend,
    data_fingerprint,
    describe_os_error,
    load_data,
    remove_empty_folders,
    run_command,
    run_fast,
    split_rows,
)
from kannada.data import Dataset, Split
from kannada.digits import IMAGE_SIDE
from kannada.evaluate import SPLIT_LABELS, VALIDATION, write_evaluation
from kannada.model import ARCHITECTURES, build_model
from kannada.plots import plot_history
from kannada.predict import predict_logits
from kannada.preprocess import Preprocessing, scale_images
from kannada.report import write_history_csv, write_metrics_json
from kannada.zca import ZCA
from minicnn import Adam, NonFiniteLossError, ReduceLROnPlateau, SoftmaxCrossEntropy
from minicnn.callbacks import Callback
from minicnn.files import remove_stray_temp_files

PROG = "python -m kannada.train"
# The default run's length; the README ("Results of the default run") gives its time.
DEFAULT_EPOCHS = 15
CHECKPOINT = "checkpoint.npz"
# The figures, CSVs and JSON files a run writes besides its model files, with a margin.
REPORTS_MB = 5

# The run's settings; None where the user gave nothing (so a resumed run can tell "given"
# from "default"). "name" gets a timestamp when left out.
DEFAULTS: dict[str, Any] = {
    "data_dir": None,
    "epochs": DEFAULT_EPOCHS,
    "batch_size": 128,
    "lr": 1e-3,
    "architecture": "seed-cnn-bn",
    "label_smoothing": 0.0,
    "ema": 0.0,
    "seed": 0,
    "val_split": 0.1,
    "val_by": "writer",
    "augment": True,
    "zca": True,
    "limit": None,
    "backend": "numpy",
    "out": "runs",
    "name": None,
}
# What --resume lets you change: how long to train, where the (same) data now lives, and the
# array backend. Anything else would make the resumed run a different run.
RESUMABLE = ("epochs", "data_dir", "backend")

VAL_BY_HELP = """\
--val-by writer (the default) holds out whole writers: the train rows come writer by writer,
1,280 per writer, and the validation rows are the pages of max(1, round(val-split * writers))
writers chosen from --seed. Like Dig-MNIST and the test set, they are written by people the
network never saw, so validation accuracy estimates accuracy on new writers honestly.
--val-by random holds out random rows: every writer then sits on both sides, the network
has learnt their handwriting, and validation accuracy comes out optimistic."""


def build_parser() -> argparse.ArgumentParser:
    """The command line's options; defaults are filled in later (see DEFAULTS)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train the CNN on Kannada-MNIST and write its reports into "
        "<out>/<name>/ (model.npz, history.csv, figures, metrics.json, submission.csv).",
        epilog=VAL_BY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_dir_argument(parser)
    parser.add_argument(
        "--epochs", type=int, help=f"train until this many epochs in all (default {DEFAULT_EPOCHS})"
    )
    parser.add_argument("--batch-size", type=int, help="images per step (default 128)")
    parser.add_argument("--lr", type=float, help="Adam's initial learning rate (default 1e-3)")
    parser.add_argument(
        "--architecture",
        choices=ARCHITECTURES,
        help="the network: seed-cnn-bn (the default), the seed-cnn with batch normalisation "
        "after every convolution and the first dense layer; or seed-cnn, the seed notebook's network",
    )
    parser.add_argument(
        "--label-smoothing",
        type=float,
        metavar="X",
        help="train towards (1 - X) on the true digit and X / 10 on every digit (default 0)",
    )
    parser.add_argument(
        "--ema",
        type=float,
        metavar="M",
        help="keep a moving average of the weights, updated with momentum M after every step "
        "(e.g. 0.999), and make it the final model (default 0: off)",
    )
    parser.add_argument(
        "--seed", type=int, help="seeds weights, validation writers, shuffling (default 0)"
    )
    parser.add_argument(
        "--val-split", type=float, help="share of the train rows to validate on (default 0.1)"
    )
    parser.add_argument(
        "--val-by",
        choices=("writer", "random"),
        help="hold out whole writers or random rows (default writer; see below)",
    )
    parser.add_argument(
        "--no-augment",
        dest="augment",
        action="store_const",
        const=False,
        help="train without random rotation, zoom, shift and shear",
    )
    parser.add_argument(
        "--zca",
        action=argparse.BooleanOptionalAction,
        help="ZCA-whiten the images, fitted on the training rows (default: on)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="use only N train rows (spread over all writers), for quick runs; "
        "Dig-MNIST and test are still evaluated in full",
    )
    add_backend_argument(parser, default=None)
    parser.add_argument("--out", metavar="DIR", help="folder of the runs (default runs/)")
    parser.add_argument("--name", help="run name (default: the start time, e.g. 2026-11-24_2301)")
    parser.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run in DIR from its last checkpoint with its saved settings "
        "(--epochs may be raised); it ends with the same weights as an uninterrupted run",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bars or epoch lines, only the summary"
    )
    return parser


class EpochCheckpoint(Callback):
    """After every epoch, save everything a resumed run needs into one file (atomically).

    The file is the model (weights, Adam state, learning rate, via model.save) with metadata:
    the run's fixed record (preprocessing, config, data, augmenter), the epochs done, the
    history so far, and the ReduceLROnPlateau counters. Put it after the ReduceLROnPlateau in
    the callback list, so that a rate reduced at the end of an epoch is what gets saved.
    """

    def __init__(
        self,
        path: Path,
        record: dict[str, Any],
        schedule: ReduceLROnPlateau,
        history: dict[str, list[float]],
        epochs_done: int,
    ) -> None:
        self.path = path
        self.record = record
        self.schedule = schedule
        self.history = {key: list(values) for key, values in history.items()}
        self.epochs_done = epochs_done

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        # fit() has timed the epoch already (validation included): record its figure
        logs = {**logs, "seconds": self.model.history.seconds[-1]}
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        self.epochs_done = epoch + 1
        self.save()

    def save(self) -> None:
        self.model.save(
            self.path,
            metadata={
                **self.record,
                "epoch": self.epochs_done,
                "history": self.history,
                "lr_schedule": self.schedule.get_state(),
            },
        )


def batch_transform(
    preprocessing: Preprocessing, augmenter: Augmenter | None
) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    """fit()'s per-batch callable: whiten(augment(batch)), augmenting before whitening as
    Keras' ImageDataGenerator does (its ZCA is applied after the random transform)."""
    if augmenter is None:
        return lambda batch, rng: preprocessing.whiten(batch)
    return lambda batch, rng: preprocessing.whiten(augmenter(batch, rng))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with argv (default: sys.argv[1:]); return the exit status."""
    started = time.perf_counter()
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    progress = Progress()
    return run_command(
        PROG, lambda: _run(args, parser, argv, started, progress), progress.after_interrupt
    )


def _run(args, parser, argv: list[str], started: float, progress: Progress) -> int:
    """The job, step by step: open the run, prepare the data, the model, train, report."""
    say = (lambda *a: None) if args.quiet else print
    run = _resume_run(parser, args) if args.resume is not None else _new_run(parser, args)
    progress.run = run
    try:
        data = _prepare_data(run, say)
        checkpoint = _prepare_model(run, data, say, verbose=not args.quiet)
        if not run.resumed:
            checkpoint.save()  # epoch 0: even a run that fails in its first epoch can resume
        progress.stage = "training"
        _train(run, data, checkpoint, verbose=not args.quiet)
        progress.stage = "reports"
        _report(run, data, checkpoint, argv, started)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise RunError(
                f"{describe_os_error(error)} (a run needs about {space_needed_mb(run):.0f} MB "
                f"free in {run.folder}); {progress.after_interrupt()}"
            ) from error
        raise
    finally:
        run.discard_if_unstarted()
    return 0


@dataclass
class Progress:
    """How far a run got, so that a Ctrl-C or an error can say what is saved."""

    run: Run | None = None
    stage: str = "preparing"  # then "training", then "reports"

    def after_interrupt(self) -> str:
        """What is on disk and how to go on: for the line a Ctrl-C prints, and after errors."""
        run = self.run
        saved = _checkpoint_epoch(run.folder / CHECKPOINT) if run is not None else None
        if saved is None:
            return "nothing was written"
        resume = f"{PROG} --resume {run.folder}"
        if self.stage == "reports":
            return (
                f"training is done (checkpoint after epoch {saved} in {run.folder}) but the "
                f"reports are not all written; write them with: {resume}"
            )
        return f"the checkpoint after epoch {saved} is saved; continue with: {resume}"


def _checkpoint_epoch(path: Path) -> int | None:
    """The epoch of the checkpoint at path, or None when there is none. Read from the file: a
    Ctrl-C may land while a checkpoint is being saved, before or after it replaced the last."""
    if not path.is_file():
        return None
    try:
        return int(minicnn.load(path).metadata["epoch"])
    except (minicnn.ModelFileError, KeyError, TypeError, ValueError):
        return None


@dataclass
class Run:
    """A run: its settings, its folder, and for a resumed run the checkpoint's model and
    metadata (None for a new run until _prepare_model builds the model)."""

    config: dict[str, Any]
    folder: Path
    model: minicnn.Sequential | None = None
    saved: dict[str, Any] | None = None
    created: Path | None = None  # the outermost folder the run creates (None: none)

    @property
    def resumed(self) -> bool:
        return self.saved is not None

    def discard_if_unstarted(self) -> None:
        """Remove the folders a new run created when it stopped before its first checkpoint
        (and so wrote nothing else): a failed start leaves no empty run folder behind."""
        if not self.resumed and not (self.folder / CHECKPOINT).exists():
            remove_empty_folders(self.folder, self.created)


@dataclass
class TrainingData:
    """The data a run trains and validates on, with its preprocessing and augmentation."""

    dataset: Dataset
    x_train: np.ndarray  # (N, 1, 28, 28) in [0, 1]
    y_train: np.ndarray
    validation: Split  # the held-out rows, as uint8 images
    x_val: np.ndarray  # the validation images, preprocessed
    preprocessing: Preprocessing
    augmenter: Augmenter | None
    record: dict[str, Any]  # what every checkpoint and the final model carry in their metadata


def _given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the user put on the command line."""
    return {key: getattr(args, key) for key in DEFAULTS if getattr(args, key) is not None}


def _check_options(parser: argparse.ArgumentParser, config: dict[str, Any]) -> None:
    """Reject impossible values (usage error, exit code 2); make --data-dir absolute."""
    if config["data_dir"] is not None:  # the run's record must not depend on the cwd
        config["data_dir"] = str(Path(config["data_dir"]).expanduser().resolve())
    checks = (
        ("epochs", config["epochs"] >= 1, "at least 1"),
        ("batch_size", config["batch_size"] >= 1, "at least 1"),
        ("lr", config["lr"] > 0, "above 0"),
        ("label_smoothing", 0 <= config["label_smoothing"] < 1, "in [0, 1)"),
        ("ema", 0 <= config["ema"] < 1, "in [0, 1)"),
        ("val_split", 0 < config["val_split"] < 1, "between 0 and 1 (exclusive)"),
        ("limit", config["limit"] is None or config["limit"] >= 2, "at least 2"),
    )
    for key, ok, expected in checks:
        if not ok:
            parser.error(f"--{key.replace('_', '-')}: expected {expected}, found {config[key]}")


def _new_run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Run:
    """The config and (new, empty) folder of a fresh run, on its backend."""
    config = {**DEFAULTS, **_given_options(args)}
    _check_options(parser, config)
    if config["name"] is None:
        config["name"] = time.strftime("%Y-%m-%d_%H%M")
        base, n = config["name"], 1
        while (Path(config["out"]) / config["name"]).exists():  # two runs in one minute
            n += 1
            config["name"] = f"{base}-{n}"
    folder = Path(config["out"]) / config["name"]
    if (folder / CHECKPOINT).exists():
        raise RunError(
            f"{folder} already holds a run; continue it with --resume {folder} "
            "or choose another --name"
        )
    created = check_output_folder(folder, "--out")  # the first checkpoint creates it
    choose_backend(config["backend"])
    return Run(config, folder, created=created)


def _resume_run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Run:
    """Config, folder, model and checkpoint metadata of the run to continue, on its backend
    (or the one given with --backend)."""
    folder = Path(args.resume)
    path = folder / CHECKPOINT
    if not path.is_file():
        raise RunError(
            f"--resume {folder}: no {CHECKPOINT} there; expected the folder of a run "
            f"started by {PROG}"
        )
    saved = minicnn.load(path).metadata  # read once for the settings; loaded again below
    if not isinstance(saved.get("config"), dict) or "epoch" not in saved:
        raise RunError(f"{path}: not a {PROG} checkpoint (no run config or epoch in it)")
    # Settings added since older checkpoints were written take the values those runs used.
    config = {"architecture": "seed-cnn", "label_smoothing": 0.0, "ema": 0.0, **saved["config"]}
    given = _given_options(args)
    changed = [
        f"--{key.replace('_', '-')} (the run has {config.get(key)!r}, given {value!r})"
        for key, value in given.items()
        if key not in RESUMABLE and value != config.get(key)
    ]
    if changed:
        parser.error(
            "--resume continues a run with its saved settings; only --epochs, --data-dir "
            f"and --backend may change, but these differ: {', '.join(changed)}"
        )
    config.update({key: given[key] for key in RESUMABLE if key in given})
    _check_options(parser, config)
    if config["epochs"] < saved["epoch"]:
        parser.error(
            f"--epochs {config['epochs']}: the run in {folder} has already trained "
            f"{saved['epoch']} epochs; give at least that many"
        )
    check_output_folder(folder, "--resume")
    choose_backend(config["backend"])  # minicnn.load puts the weights on the current backend
    model = minicnn.load(path)
    model.metadata = {}
    remove_stray_temp_files(folder)  # what a killed run was writing when it stopped
    return Run(config, folder, model, saved)


def _prepare_data(run: Run, say) -> TrainingData:
    """Rows, split, and the preprocessing fitted on the training rows only (or, when resuming,
    the one saved in the checkpoint)."""
    config = run.config
    dataset = load_data(config["data_dir"])
    train = dataset.train
    fingerprint = data_fingerprint(train)
    if run.resumed and run.saved["data"]["train_sha256"] != fingerprint:
        raise RunError(
            f"the training data in {dataset.folder} is not the data the run in {run.folder} "
            "was started with; point --data-dir at that data"
        )
    train_rows, val_rows = split_rows(len(train), config)
    x_train = scale_images(train.images[train_rows])  # (N, 1, 28, 28) in [0, 1]
    if run.resumed:
        source = str(run.folder / CHECKPOINT)
        preprocessing = Preprocessing.from_metadata(run.saved, source=source)
        saved_augmenter = run.saved["augmenter"]
        augmenter = Augmenter.from_config(saved_augmenter) if saved_augmenter else None
    else:
        preprocessing = Preprocessing(ZCA().fit(x_train) if config["zca"] else None)
        augmenter = Augmenter() if config["augment"] else None
    validation = Split(
        images=train.images[val_rows],
        labels=train.labels[val_rows],
        ids=None,
        source=f"{train.source} (validation rows)",
    )
    say(f"data: {dataset.folder} ({dataset.layout} layout)")
    say(
        f"  training {len(train_rows)} rows, validation {len(val_rows)} rows "
        f"(--val-by {config['val_by']}), Dig-MNIST {_size(dataset.dig)}, test {_size(dataset.test)}"
    )
    record = {
        **preprocessing.to_metadata(),
        "config": config,
        "data": {
            "folder": str(dataset.folder),
            "layout": dataset.layout,
            "train_rows": len(train),
            "train_sha256": fingerprint,
        },
        "augmenter": augmenter.to_config() if augmenter else None,
    }
    return TrainingData(
        dataset=dataset,
        x_train=x_train,
        y_train=train.labels[train_rows],
        validation=validation,
        x_val=preprocessing(validation.images),
        preprocessing=preprocessing,
        augmenter=augmenter,
        record=record,
    )


def _prepare_model(run: Run, data: TrainingData, say, verbose: bool) -> EpochCheckpoint:
    """The model (new, or the checkpoint's) on the CPU engine, its learning-rate schedule, and
    the callback that saves a checkpoint after every epoch."""
    schedule = ReduceLROnPlateau(monitor="val_accuracy", factor=0.5, patience=3)
    if run.resumed:
        schedule.set_state(run.saved["lr_schedule"])
        epochs_done, history = int(run.saved["epoch"]), dict(run.saved["history"])
        if "lr" in history:  # checkpoints written before minicnn adopted Keras' name
            history["learning_rate"] = history.pop("lr")
        rate = run.model.optimizer.learning_rate
        say(f"resuming {run.folder} after epoch {epochs_done}, learning rate {rate:.3g}")
    else:
        run.model = build_model(seed=run.config["seed"], architecture=run.config["architecture"])
        run.model.compile(
            Adam(
                learning_rate=run.config["lr"],
                use_ema=run.config["ema"] > 0,
                ema_momentum=run.config["ema"] or 0.99,
            ),
            SoftmaxCrossEntropy(label_smoothing=run.config["label_smoothing"]),
        )
        epochs_done, history = 0, {}
        if verbose:
            run.model.summary()
    run_fast(run.model)
    if run.model.engine is not None:
        say(run.model.engine.describe())
    checkpoint = EpochCheckpoint(
        run.folder / CHECKPOINT, data.record, schedule, history, epochs_done
    )
    checkpoint.set_model(run.model)
    return checkpoint


def _train(run: Run, data: TrainingData, checkpoint: EpochCheckpoint, verbose: bool) -> None:
    """fit() with the schedule and the checkpoint; a NaN loss becomes a RunError that says
    which checkpoint is kept."""
    try:
        run.model.fit(
            data.x_train,
            data.y_train,
            batch_size=run.config["batch_size"],
            epochs=run.config["epochs"],
            validation_data=(data.x_val, data.validation.labels),
            callbacks=[checkpoint.schedule, checkpoint],
            augment=batch_transform(data.preprocessing, data.augmenter),
            seed=run.config["seed"],
            verbose=int(verbose),
            initial_epoch=checkpoint.epochs_done,
        )
    except NonFiniteLossError as error:
        raise RunError(
            f"{error}\nThe last good checkpoint (after epoch {checkpoint.epochs_done}) is kept "
            f"in {run.folder / CHECKPOINT}; a lower --lr in a new run may help."
        ) from error


def _report(run: Run, data: TrainingData, checkpoint: EpochCheckpoint, argv, started) -> None:
    """Every split through the same preprocessing: reports, figures, the model for prediction
    and metrics.json; then the summary lines."""
    model, config, folder = run.model, run.config, run.folder
    print("evaluating on validation, Dig-MNIST and test ...")
    history = checkpoint.history
    parts = {VALIDATION: data.validation, "dig": data.dataset.dig, "test": data.dataset.test}
    parts = {name: split for name, split in parts.items() if split is not None}
    # Honest confidence: the temperature that makes the validation writers' probabilities
    # most likely (kannada.calibration), stored in the model file and used by every command.
    val_logits = predict_logits(model, data.preprocessing, data.validation.images)
    model.metadata["temperature"] = fit_temperature(val_logits, data.validation.labels)
    metrics, written = write_evaluation(model, data.preprocessing, parts, folder)
    written += [write_history_csv(history, folder / "history.csv")]
    written += plot_history(history, folder)
    if data.augmenter is not None:
        rng = np.random.default_rng(config["seed"])
        path = folder / "augmented_examples.png"
        written.append(save_examples_figure(data.x_train, data.augmenter, path, rng))
    accuracies = {f"{name}_accuracy": m["accuracy"] for name, m in metrics.items()}
    written.append(
        model.save(
            folder / "model.npz",
            metadata={**data.record, "epochs_trained": checkpoint.epochs_done, **accuracies},
            # for prediction only: checkpoint.npz keeps Adam's state for --resume, and
            # leaving it out here makes the file a third of the size
            include_optimizer=False,
        )
    )
    seconds = history.get("seconds", [])
    summary = {
        **metrics,
        "epochs_trained": checkpoint.epochs_done,
        "resumed_after_epoch": int(run.saved["epoch"]) if run.resumed else None,
        "final_learning_rate": model.optimizer.learning_rate,
        "temperature": model.metadata["temperature"],
        "seconds_per_epoch": float(np.mean(seconds)) if seconds else None,
        "epoch_seconds": seconds,
        "training_seconds": float(np.sum(seconds)),
        "wall_time_seconds": time.perf_counter() - started,
        "peak_memory_rss_mb": peak_memory_mb(),
        "engine": model.engine.describe() if model.engine is not None else "plain layers",
        "data_dir": str(data.dataset.folder),
        "layout": data.dataset.layout,
        "command_line": shlex.join([*PROG.split(), *argv]),
        "config": config,
    }
    written.append(write_metrics_json(summary, folder / "metrics.json"))

    for name, label in SPLIT_LABELS.items():
        if name in metrics:
            print(f"{label} accuracy: {metrics[name]['accuracy']:.4f}")
    calibrated = [
        f"{SPLIT_LABELS[name]} {100 * c['ece_before']:.2f}% -> {100 * c['ece_after']:.2f}%"
        for name in (VALIDATION, "dig")
        if name in metrics
        for c in [metrics[name]["calibration"]]
    ]
    print(
        f"temperature {model.metadata['temperature']:.3f} (fitted on the validation writers); "
        f"expected calibration error (15 bins): {', '.join(calibrated)}"
    )
    print(
        f"{checkpoint.epochs_done} epochs, {summary['training_seconds']:.0f} s of training, "
        f"peak memory {summary['peak_memory_rss_mb']:.0f} MB"
    )
    print(f"run folder: {folder}")
    for path in sorted(set(written)):
        print(f"  {path}")


def space_needed_mb(run: Run) -> float:
    """About how many MB a run writes into its folder at the most (np.savez does not compress):
    two checkpoints while a new one replaces the last (weights, Adam's two moments and the
    ZCA matrix each), model.npz (weights and ZCA) and the reports."""
    model = run.model if run.model is not None else build_model()
    weights = 4 * model.count_params()  # float32
    pixels = IMAGE_SIDE * IMAGE_SIDE
    zca = 4 * pixels * (pixels + 3) / 2 if run.config["zca"] else 0  # upper triangle and mean
    checkpoint = 3 * weights + zca
    return (2 * checkpoint + weights + zca) / 1e6 + REPORTS_MB


def _size(split: Split | None) -> str:
    if split is None:
        return "absent"
    return f"{len(split)} rows" + (" (no labels: submission.csv)" if split.labels is None else "")


def peak_memory_mb() -> float:
    """This process's peak resident memory in MB (getrusage; Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


if __name__ == "__main__":
    sys.exit(main())
