"""Run memory-bound NumPy work on every core, one contiguous slice of the batch per thread.

NumPy's ufuncs and copies run on the calling thread only, so in a training step the matmuls use
every core (BLAS is threaded) while pooling, im2col copies, bias adds and activations leave all
but one idle, bounded by what a single core can pull from memory. These ops are independent
across samples, so `for_each_chunk` splits the leading (batch) axis into one contiguous slice
per core and runs the slices at once: NumPy releases the GIL inside its loops. The caller's
thread takes the first slice, so a one-core machine or a small array costs no thread hand-off.

Every slice computes exactly what the whole array would (elementwise work, in the same order),
so results are bit-identical whatever the thread count. Work handed to `for_each_chunk` must
never call BLAS: BLAS already threads itself, and two threaded calls at once oversubscribe the
cores. (`layerctl.runtime.configure_blas` makes BLAS's idle threads sleep soon after a matmul so
that they do not spin on the cores these slices need.)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

# Below this many bytes touched, handing work to another thread costs more than it saves
# (measured here: a hand-off takes 40-90 µs, and a 1.6 MB relu ran no faster split in two).
MIN_PARALLEL_BYTES = 4 << 20

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def thread_count() -> int:
    """Threads used for a split: `LAYERCTL_NUM_THREADS`, else `OMP_NUM_THREADS` (as BLAS reads
    it), else the cores this process may run on."""
    for name in ("LAYERCTL_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def for_each_chunk(work: Callable[[slice], object], length: int, nbytes: int) -> None:
    """Call `work(rows)` for contiguous slices `rows` that cover range(length), concurrently.

    `nbytes` is roughly the memory the whole work touches; below `MIN_PARALLEL_BYTES`, or on
    one core, `work(slice(0, length))` runs alone on this thread. The first exception raised by
    any slice is re-raised here after every slice has finished.
    """
    parts = min(thread_count(), length) if nbytes >= MIN_PARALLEL_BYTES else 1
    if parts <= 1:
        work(slice(0, length))
        return
    bounds = [length * part // parts for part in range(parts + 1)]
    slices = [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]
    futures = [_executor().submit(work, rows) for rows in slices[1:]]
    try:
        work(slices[0])
    finally:
        errors = [future.exception() for future in futures]  # waits for every slice
    for error in errors:
        if error is not None:
            raise error


def _executor() -> ThreadPoolExecutor:
    from concurrent.futures import ThreadPoolExecutor  # here: `validate` never needs threads

    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(thread_count() - 1, 1),
                                       thread_name_prefix="layerctl-chunk")
        return _pool
