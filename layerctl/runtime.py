"""Process-level settings that make NumPy training loops fast on Linux.

A training step allocates and frees the same large temporaries (activations, im2col columns,
gradients) every time. glibc serves blocks above its mmap threshold with fresh mmap() calls and
returns them to the OS on free, so every step page-faults its whole working set again — measured
here as ~40% of a small CNN's step time. Raising the mmap threshold and the trim threshold
keeps freed blocks in the heap for the next step, as PyTorch's caching allocator does for its
tensors. Memory is still bounded by the peak working set of one step.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024   # glibc's largest accepted value on 64-bit systems
TRIM_THRESHOLD = 512 * 1024 * 1024

_tuned = False


def tune_allocator() -> bool:
    """Keep freed large blocks for reuse (glibc only; elsewhere a no-op). True when applied."""
    global _tuned
    if _tuned or not sys.platform.startswith("linux"):
        return _tuned
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (e.g. musl): nothing to tune
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
    ok &= mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    ok &= mallopt(M_TOP_PAD, 64 * 1024 * 1024)
    _tuned = bool(ok)
    return _tuned
