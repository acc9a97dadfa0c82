"""Let a training process reuse the memory it frees, instead of faulting in fresh pages.

Every training step allocates and frees the same few dozen megabytes: the gate activations,
their gradients, the hidden states. glibc serves blocks above its mmap threshold with a fresh
mapping and unmaps them on release, so the next step touches brand-new pages and the kernel
zeroes each one on first use. For the C1 LSTM that is about 4,000 page faults a step, and
raising the thresholds made the step 9 % faster (measured, 22.2k -> 24.3k tokens/s). After
``keep_freed_memory()`` freed blocks stay in the heap for the next step; the peak resident
size is what the step needs either way.

``mallopt`` is glibc's; on any other C library this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 256 << 20   # blocks up to 256 MiB come from the heap
TRIM_THRESHOLD = 1 << 30     # keep up to 1 GiB of free heap for reuse

_done = False


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process. True if it took effect."""
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
