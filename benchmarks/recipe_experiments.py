"""The training-recipe experiments behind the default of `python -m kannada.train`.

Each experiment is one full training run: the default command with some options changed (and,
for the augmentation's old geometry, the Augmenter's default). Results go to
runs/experiments/<name>/metrics.json; `--table` prints the table of all finished runs
(validation, Dig-MNIST, calibration, seconds), the one in results/README.md.

    python benchmarks/recipe_experiments.py --data-dir DIR baseline bn       # run two
    python benchmarks/recipe_experiments.py --table                          # the table
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUT = "runs/experiments"

# name -> (what it changes, extra command-line options, Augmenter overrides)
EXPERIMENTS: dict[str, tuple[str, list[str], dict]] = {
    "baseline": ("the seed notebook's recipe, horizontal shear", [], {}),
    "vertical-shear": ("the old augmentation geometry (vertical shear)", [], {"geometry": 1}),
    "bn": ("+ BatchNorm", ["--architecture", "seed-cnn-bn"], {}),
    "smooth": ("+ label smoothing 0.1", ["--label-smoothing", "0.1"], {}),
    "ema": ("+ moving average of the weights (0.999)", ["--ema", "0.999"], {}),
}


def run(name: str, data_dir: str | None, seed: int, out: str, extra: list[str]) -> int:
    import kannada.augment
    import kannada.train

    _, options, augmenter = EXPERIMENTS[name]
    if augmenter:  # a different default Augmenter for this run (what kannada.train builds)
        defaults = kannada.augment.Augmenter
        make = lambda: defaults(**augmenter)  # noqa: E731
        make.from_config = defaults.from_config  # what a resumed run calls
        kannada.train.Augmenter = make
    argv = ["--out", out, "--name", f"{name}-seed{seed}", "--seed", str(seed), "--quiet"]
    argv += ["--data-dir", data_dir] if data_dir else []
    return kannada.train.main([*argv, *options, *extra])


def table(out: str) -> str:
    rows = [
        "| experiment | change | validation | Dig-MNIST | s/epoch |",
        "| --- | --- | --- | --- | --- |",
    ]
    for path in sorted(Path(out).glob("*/metrics.json")):
        metrics = json.loads(path.read_text())
        name = path.parent.name
        change = EXPERIMENTS.get(name.rsplit("-seed", 1)[0], ("?",))[0]
        rows.append(
            f"| {name} | {change} | {100 * metrics['validation']['accuracy']:.2f}% "
            f"| {100 * metrics['dig']['accuracy']:.2f}% | {metrics['seconds_per_epoch']:.0f} |"
        )
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help=f"experiments to run: {', '.join(EXPERIMENTS)}")
    parser.add_argument("--data-dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=OUT, help=f"folder of the runs (default {OUT})")
    parser.add_argument("--table", action="store_true", help="print the table of finished runs")
    args, extra = parser.parse_known_args(argv)
    unknown = [name for name in args.names if name not in EXPERIMENTS]
    if unknown:
        parser.error(f"unknown experiments {unknown}: expected some of {list(EXPERIMENTS)}")
    for name in args.names:
        status = run(name, args.data_dir, args.seed, args.out, extra)
        if status:
            return status
    if args.table:
        print(table(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
