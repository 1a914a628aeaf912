"""Command line for the data package: `download` fills the cache, `info` shows what a folder holds.

python -m kannada.data download [--dest DIR] [--url URL]
python -m kannada.data info [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from kannada.data.download import DownloadError, default_cache_dir, ensure_downloaded
from kannada.data.layout import DataNotFoundError, Dataset, load_dataset
from kannada.data.readers import DataFormatError


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with argv (default: sys.argv[1:]); return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m kannada.data", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    download = commands.add_parser("download", help="download the official release into a cache")
    download.add_argument("--dest", help=f"cache folder (default: {default_cache_dir()})")
    download.add_argument("--url", help="base URL of the release files (default: GitHub)")
    info = commands.add_parser("info", help="show which layout and splits a folder holds")
    info.add_argument("--data-dir", help=f"folder to inspect (default: {default_cache_dir()})")
    args = parser.parse_args(argv)

    try:
        if args.command == "download":
            print(ensure_downloaded(args.dest, args.url))
        else:
            print(describe(load_dataset(args.data_dir or default_cache_dir())))
    except (DownloadError, DataNotFoundError, DataFormatError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def describe(dataset: Dataset) -> str:
    """A few lines saying where the data is, its layout, and each split's size and labels."""
    lines = [f"folder: {dataset.folder}", f"layout: {dataset.layout}"]
    for name, split in dataset.splits().items():
        if split.labels is not None:
            counts = np.bincount(split.labels, minlength=10)
            labels = "labels 0-9, per class " + " ".join(str(c) for c in counts)
        else:
            labels = "no labels (ids only)"
        lines.append(f"{name:5}: {len(split):6} images, {labels}  [{split.source}]")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
