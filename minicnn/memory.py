"""Keep freed memory inside the process between training steps (glibc's malloc on Linux).

Every training step allocates and frees the same large arrays: activations, gradients and
masks of 3-13 MB each for seed-cnn at batch 128. By default glibc hands blocks that large back
to the kernel when they are freed (munmap, or trimming the top of the heap), so the next step
asks for them again and the kernel page-faults them in, zero-filled, one 4 KiB page at a time.
Measured on seed-cnn (docs/09-speed-and-gpu.md): about 4,000 page faults and 25-50 ms of kernel
time per step. With the two thresholds below raised, freed blocks stay in malloc's free lists
and are reused by the next step: about 15 faults and 3-5 ms per step, a step 3-15% faster, and
the same peak memory (the process reaches the same high-water mark either way).

minicnn calls keep_freed_memory() when it is imported; set MINICNN_KEEP_FREED_MEMORY=0 to leave
the allocator alone. Elsewhere (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
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


def enabled_by_environment() -> bool:
    """False when MINICNN_KEEP_FREED_MEMORY is set to 0 / false / no / off."""
    value = os.environ.get("MINICNN_KEEP_FREED_MEMORY", "1").strip().lower()
    return value not in ("0", "false", "no", "off")
