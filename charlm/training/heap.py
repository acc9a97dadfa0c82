"""Let a training process reuse the memory it frees, instead of faulting in fresh pages.

Every training step allocates and frees the same few dozen megabytes: the gate activations,
their gradients, the hidden states. glibc serves blocks above its mmap threshold with a fresh
mapping and unmaps them on release, so the next step touches brand-new pages and the kernel
zeroes each one on first use. For the C1 LSTM that is about 4,000 page faults a step, and
raising the thresholds made the step 9 % faster (medians of three A/B pairs: 22.8k ->
25.0k tokens/s). After ``keep_freed_memory()`` freed blocks stay in the heap for the next
step; the peak resident size is what the step needs either way.

``mallopt`` is glibc's; on any other C library this does nothing.
"""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

# Blocks up to 256 MiB come from the heap. Older glibc (2.30, for one) refuses more than
# 32 MiB on 64-bit systems, so that is the fallback; C1 and C2 arrays are well below either.
MMAP_THRESHOLDS = (256 << 20, 32 << 20)
TRIM_THRESHOLD = 1 << 30     # keep up to 1 GiB of free heap for reuse

_done = False


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds, once per process. True if it took effect.

    This changes how the whole process allocates: the charlm command and ``charlm bench``
    call it; a program that trains through the library may call it too.
    """
    global _done
    if _done:
        return True
    try:
        mallopt = ctypes.CDLL(None).mallopt    # the C library this process runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mmap_set = any(mallopt(M_MMAP_THRESHOLD, t) for t in MMAP_THRESHOLDS)
    trim_set = bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    _done = mmap_set and trim_set
    return _done
