"""Command line for the data package: `download` fills the cache, `info` shows what a folder holds.

python -m kannada.data download [--dest DIR] [--url URL]
python -m kannada.data info [--data-dir DIR]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kannada.cli import check_output_folder, run_command
from kannada.data.download import default_cache_dir, ensure_downloaded
from kannada.data.layout import Dataset, load_dataset

PROG = "python -m kannada.data"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with argv (default: sys.argv[1:]); return the exit status."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    download = commands.add_parser("download", help="download the official release into a cache")
    download.add_argument("--dest", help=f"cache folder (default: {default_cache_dir()})")
    download.add_argument("--url", help="base URL of the release files (default: GitHub)")
    info = commands.add_parser("info", help="show which layout and splits a folder holds")
    info.add_argument("--data-dir", help=f"folder to inspect (default: {default_cache_dir()})")
    args = parser.parse_args(argv)
    if args.command == "info":

        def show_info() -> int:
            print(describe(load_dataset(args.data_dir or default_cache_dir())))
            return 0

        return run_command(PROG, show_info, lambda: "nothing was written")

    dest = Path(args.dest).expanduser() if args.dest else default_cache_dir()

    def fetch() -> int:
        check_output_folder(dest, "--dest")
        print(ensure_downloaded(dest, args.url))
        return 0

    return run_command(
        PROG,
        fetch,
        lambda: (
            f"the files downloaded and verified so far are kept in {dest} (the one being "
            "fetched is not); run the command again to fetch the rest"
        ),
    )


def describe(dataset: Dataset) -> str:
    """A few lines saying where the data is, its layout, and each split's size and labels."""
    lines = [f"folder: {dataset.folder}", f"layout: {dataset.layout}"]
    for name, split in dataset.splits().items():
        if split.labels is not None:
            counts = np.bincount(split.labels, minlength=10)
            labels = "labels 0-9, per class " + " ".join(str(c) for c in counts)
        elif split.ids is not None:
            labels = "no labels (ids only)"
        else:
            labels = "no labels"
        lines.append(f"{name:5}: {len(split):6} images, {labels}  [{split.source}]")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
