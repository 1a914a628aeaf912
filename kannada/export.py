"""Export a trained model for prediction only: `python -m kannada.export --model M --output OUT`.

Drops the optimiser state (two moments the size of the weights) and stores the preprocessing
compactly, e.g. to ship a model inside the package (kannada/pretrained/model.npz).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from kannada.cli import check_output_file, run_command
from kannada.predict import load_model

PROG = "python -m kannada.export"


def export_model(source: str | Path, output: str | Path) -> Path:
    """Re-save the model at `source` without optimiser state; returns the path written."""
    model, preprocessing = load_model(source)
    metadata = {k: v for k, v in model.metadata.items() if not k.startswith("zca_")}
    metadata.update(preprocessing.to_metadata())
    model.metadata = metadata
    return model.save(output, include_optimizer=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with argv (default: sys.argv[1:]); return the exit status."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", required=True, help="a model.npz or checkpoint.npz written by kannada.train"
    )
    parser.add_argument("--output", required=True, help="where to write the exported model")
    args = parser.parse_args(argv)

    def job() -> int:
        path = export_model(args.model, check_output_file(args.output, "--output"))
        print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
        return 0

    # The model is written in one step at the end (atomically): until then, nothing is.
    return run_command(PROG, job, lambda: "nothing was written")


if __name__ == "__main__":
    sys.exit(main())
