"""Run memory-bound NumPy work on every core, in contiguous slices of the batch.

NumPy's ufuncs and copies run on the calling thread only, so in a training step the matmuls use
every core (BLAS is threaded) while pooling, im2col copies, bias adds and activations leave all
but one idle, bounded by what a single core can pull from memory. These ops are independent
across samples, so `for_each_chunk` splits the leading (batch) axis into a few contiguous slices
per core, which the caller's thread and the pool's claim in turn and run at once (NumPy releases
the GIL inside its loops). A one-core machine or a small array costs no thread hand-off.

Every slice computes exactly what the whole array would (elementwise work, in the same order),
so results are bit-identical whatever the thread count. Work handed to `for_each_chunk` must
never call BLAS with its own threads: two threaded BLAS calls at once oversubscribe the cores.
Large matrix products use `for_each_piece` instead (`layerctl.ops.blas`): pieces cut by the
caller, each a BLAS call on one thread; `layerctl.inference` runs whole sub-batches here, each
with BLAS on one thread (`layerctl.ops.blas.one_blas_thread`).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

# Below this many bytes touched, handing work to another thread costs more than it saves
# (measured here: a hand-off takes 40-90 µs, and a 1.6 MB relu ran no faster split in two).
MIN_PARALLEL_BYTES = 4 << 20
# Slices per thread: more balance a late thread better, fewer cost fewer NumPy calls (measured
# on the benchmark CNN: 2 as fast as 1, 3 about 3 % slower).
SLICES_PER_THREAD = 2

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_in_worker = threading.local()   # set in the pool's threads: a nested split runs there serially


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
    """Call `work(rows)` once for each of a few contiguous slices `rows` that cover
    range(length), on this thread and the pool's at once.

    `nbytes` is roughly the memory the whole work touches; below `MIN_PARALLEL_BYTES`, on one
    core, or when called from inside another split's slice, `work(slice(0, length))` runs alone
    on this thread. Slices are claimed one at a time, a few per thread, so a thread that starts
    late (its core still busy, e.g. with a BLAS thread spinning after a matmul) takes fewer and
    the split is never much slower than one thread. Returns, or raises, only once no slice is
    running (even on Ctrl-C, so nothing still writes when the caller handles it); of several
    errors, this thread's comes first.
    """
    threads = min(thread_count(), length) if nbytes >= MIN_PARALLEL_BYTES else 1
    if threads <= 1 or getattr(_in_worker, "active", False):
        work(slice(0, length))
        return
    count = min(length, threads * SLICES_PER_THREAD)
    bounds = [length * index // count for index in range(count + 1)]
    slices = [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]
    for_each_piece(lambda index: work(slices[index]), count, threads)


def for_each_piece(work: Callable[[int], object], count: int, threads: int | None = None) -> None:
    """Call `work(index)` once for each index in range(count), on this thread and up to
    `threads` - 1 of the pool's (default: `thread_count()`) at once, each claiming the next
    index when free, so a thread that starts late takes fewer. The pieces are the caller's: how
    the work is cut never depends on the thread count. Returns, or raises, as `for_each_chunk`.
    """
    threads = min(thread_count() if threads is None else threads, count)
    if threads <= 1 or getattr(_in_worker, "active", False):
        for index in range(count):
            work(index)
        return
    claims = itertools.count()   # next() on it is atomic under the GIL: each piece runs once

    def claim_and_run() -> None:
        while (index := next(claims)) < count:
            work(index)

    futures = []
    for _ in range(threads - 1):
        try:
            futures.append(_executor().submit(claim_and_run))
        except RuntimeError:   # the interpreter is shutting down: this thread runs them all
            break
    errors = []
    try:
        try:
            claim_and_run()
            # Every piece is claimed: a helper still queued (behind a `BehindLoop` part, say)
            # would find none, so it is not waited for.
            for future in futures:
                future.cancel()
        except Exception as error:   # noqa: BLE001 - raised below, after the other pieces
            errors.append(error)
    finally:
        errors += _wait(futures)
    if errors:
        raise errors[0]


class BehindLoop:
    """Parts of a loop's by-products, each computed on the pool as soon as the loop has made what
    it needs, while the loop goes on: the recurrences' weight and input gradients of the steps
    the backward time loop has finished, whose large products would otherwise wait for the
    sequential loop's end while the other cores idle through it.

    `work(index)` computes part `index` and returns its result; the caller says `ready(index)`
    when the loop has made that part's inputs, and `finish()` computes on this thread the parts
    not handed out or not yet started (the loop is over: they would only wait for a pool thread,
    whose core may be taken) and returns every result in index order. The parts never depend
    on the thread count, and on one thread `ready` runs the part at once, so results are the
    same for any thread count. `finish` must be called, also when the loop raises (use it in a
    `with` block): it waits for every part, so nothing is still writing when the caller goes
    on.
    """

    def __init__(self, work: Callable[[int], object], count: int) -> None:
        self.work, self.count = work, count
        self.results: dict[int, object] = {}
        self.futures: dict[int, object] = {}
        self.pooled = thread_count() > 1 and not getattr(_in_worker, "active", False)

    def ready(self, index: int) -> None:
        if not self.pooled:
            self.results[index] = self.work(index)
            return
        try:
            self.futures[index] = _executor().submit(self.work, index)
        except RuntimeError:   # the interpreter is shutting down
            self.results[index] = self.work(index)

    def wait(self, index: int) -> object:
        """Part `index`'s result once it is done (computed here unless a pool thread has
        started it)."""
        self._run_here_unless_started(index)
        if index in self.futures:
            self._collect([index])
        return self.results[index]

    def finish(self) -> list:
        try:
            for index in range(self.count):
                self._run_here_unless_started(index)
        finally:
            self._collect(list(self.futures))
        return [self.results[index] for index in range(self.count)]

    def _run_here_unless_started(self, index: int) -> None:
        """Compute part `index` on this thread if it is neither done nor started: not handed
        out, or still queued (taken back: the pool thread's core may be busy)."""
        future = self.futures.get(index)
        if future is not None and future.cancel():
            del self.futures[index]
        if index not in self.results and index not in self.futures:
            self.results[index] = self.work(index)

    def _collect(self, indices: list[int]) -> None:
        """Wait for the parts `indices` handed out (through Ctrl-C too) and keep their results;
        the first error is raised once all are done."""
        futures = [self.futures.pop(index) for index in indices]
        errors = _wait(futures)
        if errors:
            raise errors[0]
        self.results.update(zip(indices, (future.result() for future in futures), strict=True))

    def __enter__(self) -> BehindLoop:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self.futures:   # the loop raised before `finish`: wait, keep the loop's error
            _wait(list(self.futures.values()))


def _wait(futures: list) -> list[BaseException]:
    """Wait for every future, through Ctrl-C too (re-raised once all are done); their errors."""
    interrupted = None
    futures = [future for future in futures if not future.cancelled()]
    for future in futures:
        while True:
            try:
                future.exception()
                break
            except KeyboardInterrupt as interrupt:
                interrupted = interrupt
    if interrupted is not None:
        raise interrupted
    return [error for future in futures if (error := future.exception()) is not None]


def _executor() -> ThreadPoolExecutor:
    from concurrent.futures import ThreadPoolExecutor  # here: `validate` never needs threads

    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(thread_count() - 1, 1), "layerctl-chunk",
                                       initializer=_mark_worker)
        return _pool


def _mark_worker() -> None:
    _in_worker.active = True


def _forget_pool() -> None:
    """In a forked child the pool's threads do not exist: start a new pool when needed."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)
