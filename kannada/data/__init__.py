"""Kannada-MNIST data: strict readers for the CSV, IDX and .npz files, layout detection, and a
verified downloader that fills a local cache from the dataset's official release.
"""

from kannada.data.download import (
    Checksum,
    DownloadError,
    default_cache_dir,
    ensure_downloaded,
)
from kannada.data.layout import DataNotFoundError, Dataset, load_dataset, writer_ids
from kannada.data.readers import DataFormatError, Split, read_csv_split, read_idx, read_npz

__all__ = [
    "Checksum",
    "DataFormatError",
    "DataNotFoundError",
    "Dataset",
    "DownloadError",
    "Split",
    "default_cache_dir",
    "ensure_downloaded",
    "load_dataset",
    "read_csv_split",
    "read_idx",
    "read_npz",
    "writer_ids",
]
