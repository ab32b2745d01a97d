"""Process-level settings that make NumPy training loops fast on Linux.

A training step allocates and frees the same large temporaries (activations, im2col columns,
gradients) every time. glibc serves blocks above its mmap threshold with fresh mmap() calls and
returns them to the OS on free, so every step page-faults its whole working set again — measured
here as ~40% of a small CNN's step time. Raising the mmap threshold and the trim threshold
keeps freed blocks in the heap for the next step, as PyTorch's caching allocator does for its
tensors. Memory is still bounded by the peak working set of one step.

OpenBLAS's worker threads also spin on their cores for about 2^28 cycles (a tenth of a second)
after every matmul before they sleep. Between two matmuls of a training step layerctl runs its
memory-bound work (pooling, im2col copies, activations) on every core (`layerctl.ops.parallel`),
and a spinning BLAS thread takes the core that work needs: measured, the split gained nothing
until the spin was cut. Too short a spin costs the other way: an LSTM's small matmuls, a few
hundred µs apart, then wait for sleeping threads to wake (a step 10 % slower at 2^16 cycles).
2^20 cycles (~0.4 ms) kept both: CNN steps as fast as at 2^16, LSTM steps as fast as at 2^28.
`configure_blas` sets that through OpenBLAS's documented environment variable, which it reads
only when it loads, so the command line calls it before anything imports NumPy.

It also gives OpenBLAS one thread (`OPENBLAS_NUM_THREADS=1`) unless the user chose a count:
layerctl's products run BLAS on one thread anyway and spread themselves over cores
(`layerctl.ops.blas`), and with BLAS's own threads gone no product waits on a partner thread
whose core another process holds, nor toggles BLAS's setting around each call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024   # glibc's largest accepted value on 64-bit systems
TRIM_THRESHOLD = 512 * 1024 * 1024

# OpenBLAS idles this many cycles, as a power of two, before its threads sleep (default 28).
BLAS_THREAD_TIMEOUT = "20"
# Variables through which a user chooses OpenBLAS's thread count (it reads them in this order).
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")

_tuned = False


def configure_blas() -> bool:
    """One OpenBLAS thread, whose idle peers (if the user asked for more) sleep after ~0.4 ms
    instead of ~0.1 s; values the user set are kept. Only effective before NumPy is imported;
    True when it was in time."""
    if not any(os.environ.get(name) for name in BLAS_THREAD_VARIABLES):
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", BLAS_THREAD_TIMEOUT)
    return "numpy" not in sys.modules


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
