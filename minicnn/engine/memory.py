"""Keep freed memory inside the process between training steps (glibc's malloc on Linux).

Every training step allocates and frees the same large arrays: activations, gradients and
masks of several MB each. By default glibc hands blocks that large back to the kernel when they
are freed (munmap, or trimming the top of the heap), so the next step asks for them again and
the kernel page-faults them in, zero-filled, one 4 KiB page at a time. With the two thresholds
below raised, freed blocks stay in malloc's free lists and the next step reuses them; the peak
memory is the same, since the process reaches the same high-water mark either way. Chapter 9
of the course has the measured page faults and step times.

This is a setting for the whole process: CPUEngine applies it when a model starts using the
engine (unless created with keep_freed_memory=False) and says so in its description. It stays
for the life of the process. Elsewhere (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt() parameter numbers from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD_BYTES = 32 * 2**20  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD_BYTES = 512 * 2**20  # free memory kept at the top of the heap


def keep_freed_memory() -> bool:
    """Ask glibc to serve blocks up to 32 MiB from its heap and to keep up to 512 MiB of freed
    heap instead of returning it to the kernel. Returns True when the settings were applied."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success; musl and other C libraries accept the call and return 0.
    return (
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
        and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    )
