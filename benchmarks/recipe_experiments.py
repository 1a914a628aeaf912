"""The training-recipe experiments behind the default of `python -m kannada.train`.

Each experiment is one full training run: the default command with some changes. A change is
a set of options (and, for the augmentation's ranges and its old geometry, the Augmenter's
defaults); an experiment's name joins its changes with "+" ("bn+aug"), "baseline" has none.
Results go to <out>/<name>-seed<N>/metrics.json; `--table` prints the table of all finished
runs (mean and range over seeds), the one in results/README.md.

    python benchmarks/recipe_experiments.py --data-dir DIR baseline bn+aug   # run two
    python benchmarks/recipe_experiments.py --data-dir DIR bn+aug --seed 1   # another seed
    python benchmarks/recipe_experiments.py --table                          # the table
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUT = "runs/experiments"

# The baseline: the seed notebook's network and pipeline with the project's first augmentation
# ranges (Keras' axes), spelt out so that it stays itself when kannada.train's defaults move on.
BASELINE_OPTIONS = ["--architecture", "seed-cnn", "--label-smoothing", "0", "--ema", "0"]
BASELINE_AUGMENTER = {
    "rotation_range": 10.0,
    "zoom_range": 0.15,
    "width_shift_range": 0.15,
    "height_shift_range": 0.15,
    "shear_range": 10.0,
    "geometry": 2,
}

# change -> (what it does, command-line options, Augmenter overrides)
CHANGES: dict[str, tuple[str, list[str], dict]] = {
    "bn": (
        "BatchNorm after every convolution and the first dense layer",
        ["--architecture", "seed-cnn-bn"],
        {},
    ),
    "aug": (
        "wider augmentation: rotation 15, zoom 0.2, shear 15",
        [],
        {"rotation_range": 15.0, "zoom_range": 0.2, "shear_range": 15.0},
    ),
    "ema": ("moving average of the weights (0.999)", ["--ema", "0.999"], {}),
    "smooth": ("label smoothing 0.1", ["--label-smoothing", "0.1"], {}),
    "vshear": ("the old geometry: vertical shear", [], {"geometry": 1}),
}


def changes_of(name: str) -> list[str]:
    """ "bn+aug" -> ["bn", "aug"]; "baseline" -> []."""
    return [] if name == "baseline" else name.split("+")


def describe(name: str) -> str:
    if name == "default":  # runs of the plain command, e.g. --name default-seed1
        return "`python -m kannada.train` with its defaults"
    parts = [CHANGES[change][0] for change in changes_of(name) if change in CHANGES]
    return "; ".join(parts) or "seed-cnn; rotation 10, zoom 0.15, shifts 0.15, shear 10"


def run(name: str, data_dir: str | None, seed: int, out: str, extra: list[str]) -> int:
    import kannada.augment
    import kannada.train

    options = list(BASELINE_OPTIONS)  # later options win (argparse keeps the last)
    augmenter = dict(BASELINE_AUGMENTER)
    for change in changes_of(name):
        options += CHANGES[change][1]
        augmenter.update(CHANGES[change][2])
    # This run's Augmenter, whatever kannada.train's default is.
    defaults = kannada.augment.Augmenter
    make = lambda: defaults(**augmenter)  # noqa: E731
    make.from_config = defaults.from_config  # what a resumed run calls
    kannada.train.Augmenter = make
    argv = ["--out", out, "--name", f"{name}-seed{seed}", "--seed", str(seed), "--quiet"]
    argv += ["--data-dir", data_dir] if data_dir else []
    return kannada.train.main([*argv, *options, *extra])


def table(out: str) -> str:
    """One row per experiment: validation and Dig-MNIST accuracy (mean and range over its
    seeds), the seeds, and the seconds per epoch."""
    runs: dict[str, list[dict]] = {}
    for path in sorted(Path(out).glob("*-seed*/metrics.json")):
        name = path.parent.name.rsplit("-seed", 1)[0]
        runs.setdefault(name, []).append(json.loads(path.read_text()))
    rows = [
        "| experiment | change | validation | Dig-MNIST | seeds | s/epoch |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, metrics in runs.items():
        change = describe(name)
        cells = [
            _spread([m[split]["accuracy"] for m in metrics]) for split in ("validation", "dig")
        ]
        seconds = sum(m["seconds_per_epoch"] for m in metrics) / len(metrics)
        rows.append(
            f"| {name} | {change} | {cells[0]} | {cells[1]} | {len(metrics)} | {seconds:.0f} |"
        )
    return "\n".join(rows)


def _spread(values: list[float]) -> str:
    """ "99.31%" for one value, "99.31% (99.20-99.42)" (mean and range) for several."""
    mean = 100 * sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.2f}%"
    return f"{mean:.2f}% ({100 * min(values):.2f}-{100 * max(values):.2f})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "names", nargs="*", help=f"experiments: baseline, or changes joined by +: {list(CHANGES)}"
    )
    parser.add_argument("--data-dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=OUT, help=f"folder of the runs (default {OUT})")
    parser.add_argument("--table", action="store_true", help="print the table of finished runs")
    args, extra = parser.parse_known_args(argv)
    unknown = [c for name in args.names for c in changes_of(name) if c not in CHANGES]
    if unknown:
        parser.error(f"unknown changes {unknown}: expected some of {list(CHANGES)}")
    for name in args.names:
        status = run(name, args.data_dir, args.seed, args.out, extra)
        if status:
            return status
    if args.table:
        print(table(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
