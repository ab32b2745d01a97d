"""Matmuls whose numbers never depend on the thread count, and whose threads never wait long.

OpenBLAS threads every matrix product above 2·64³ multiply-adds, and its threads meet at every
block of the inner dimension: the calling thread waits for the last of them each time. When
another process holds a core, that partner may not run for a scheduler time slice
(milliseconds). Measured on this project's 2-core machine while other work held about a core
(load average ~5), two BLAS threads were slower than one for every product the bundled and
benchmark models make, from 1.1x (a large convolution) to 50x (an LSTM's weight gradient, 6,400
deep: 17 meetings), and whole training runs took 2 to 17 times as long as on one thread
(`benchmarks/threads.py`). OpenBLAS also rounds some shapes
differently on one thread and on two (it cuts the inner dimension differently), so choosing its
thread count by load would change the numbers from run to run.

So `matmul` calls BLAS on one thread only, and spreads a large product itself: it cuts the
output into pieces of rows (or of columns, when the product is wide) whose number depends only
on the operands' shapes, and layerctl's threads (`layerctl.ops.parallel`) claim them one at a
time. Each output element is computed by one single-threaded BLAS call whatever the thread
count, so the results are bit-identical for any `LAYERCTL_NUM_THREADS` and `OPENBLAS_NUM_THREADS`;
a thread whose core is taken simply claims fewer pieces, and nobody waits at a meeting. Products
below `MIN_SPLIT_FLOPS` are one call: cutting them costs more hand-offs than it saves. Without an
OpenBLAS to set (another BLAS), the products are still cut the same way.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading

import numpy as np

from layerctl.ops.parallel import for_each_piece

# A product of fewer floating-point operations (2·m·k·n) than this is one BLAS call: cut, it
# would make fewer than two pieces of `PIECE_FLOPS` (it takes under ~300 µs on one core here,
# and a hand-off to another thread 40-90 µs).
MIN_SPLIT_FLOPS = 32_000_000
# Each piece of a cut product does about this much work (~150 µs), so a thread whose core is
# taken holds back at most that much, and is at most `MAX_PIECES`: BLAS's packing of the shared
# operand is repeated per piece, and narrow pieces run BLAS's kernels below their best. (On an
# idle machine, 4 MFLOP pieces, at most 16, made the benchmark MLP's epoch 2.47 s; 16 MFLOP, at
# most 8, 2.18 s; OpenBLAS's own two threads 1.99 s.)
PIECE_FLOPS = 16_000_000
MAX_PIECES = 8
# Pieces start at multiples of this many rows or columns: whole register tiles of the kernels.
PIECE_ALIGN = 16

_SYMBOL_PREFIXES = ("scipy_openblas_", "openblas_")   # numpy's wheels, then a system OpenBLAS
_SYMBOL_SUFFIXES = ("64_", "")


class _OpenBlas:
    """OpenBLAS's thread-count calls, found in the copy this process loaded (numpy's). The
    count is process-wide (NumPy's bundled OpenBLAS's `openblas_set_num_threads_local` changes
    it for every thread too, measured), so `one_blas_thread` counts its users."""

    def __init__(self, set_threads, get_threads) -> None:
        self.set_threads, self.get_threads = set_threads, get_threads
        self.configured = max(int(get_threads()), 1)   # read once, before layerctl changes it
        self.users = 0   # threads inside `one_blas_thread`, under `_lock`


_openblas: _OpenBlas | None = None
_looked = False
_lock = threading.Lock()


def product_flops(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> int:
    """Floating-point operations of one product in np.matmul(a, b): 2·m·k·n (a batched matmul
    is one such product per matrix of the stack)."""
    rows = a_shape[-2] if len(a_shape) >= 2 else 1
    columns = b_shape[-1] if len(b_shape) >= 2 else 1
    return 2 * rows * a_shape[-1] * columns


def piece_bounds(extent: int, flops: int) -> list[tuple[int, int]]:
    """How `matmul` cuts an output axis of `extent` rows or columns for a product of `flops`:
    [(start, stop), ...], from the shapes alone. One piece below `MIN_SPLIT_FLOPS`."""
    count = min(MAX_PIECES, flops // PIECE_FLOPS, extent // PIECE_ALIGN)
    if flops < MIN_SPLIT_FLOPS or count < 2:
        return [(0, extent)]
    size = -(-extent // count)
    size = -(-size // PIECE_ALIGN) * PIECE_ALIGN
    return [(start, min(start + size, extent)) for start in range(0, extent, size)]


def stack_bounds(count: int, flops: int) -> list[tuple[int, int]]:
    """How `matmul` cuts a stack of `count` products of `flops` in all along its first axis:
    whole products per piece, from the shapes alone; one piece below `MIN_SPLIT_FLOPS`."""
    pieces = min(MAX_PIECES, flops // PIECE_FLOPS, count)
    if flops < MIN_SPLIT_FLOPS or pieces < 2:
        return [(0, count)]
    return [(count * index // pieces, count * (index + 1) // pieces) for index in range(pieces)]


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """np.matmul(a, b, out=out) with BLAS on one thread, a large product cut into pieces that
    layerctl's threads share (see the module's docstring)."""
    if a.ndim > 2 and b.ndim == 2:
        # A stack of rows times one matrix (Dense on (B, T, d), the projections of attention)
        # is one product of (B·T, d) rows: np.matmul would make B small products instead, each
        # below `MIN_SPLIT_FLOPS` and so on one core (measured: the transformer benchmark's
        # (32, 64, 128)·(128, 512) took 5.2 ms as 32 products and 1.9 ms as one).
        rows = a.reshape(-1, a.shape[-1])   # a view when a's leading axes are contiguous
        shape = (*a.shape[:-1], b.shape[-1])
        if out is None:
            return matmul(rows, b).reshape(shape)
        flat_out = out.reshape(-1, b.shape[-1])
        if np.may_share_memory(flat_out, out):   # a reshaped copy never overlaps out
            matmul(rows, b, out=flat_out)
            return out
    with one_blas_thread():
        if a.ndim < 2 or b.ndim < 2:
            return np.matmul(a, b, out=out)
        one = product_flops(a.shape, b.shape)
        if a.ndim == b.ndim > 2 and a.shape[0] == b.shape[0] and one < MIN_SPLIT_FLOPS:
            # A stack of products too small to cut (attention's (B, heads, T, d) ones): cut
            # the stack, whole products per piece.
            axis = "stack"
            bounds = stack_bounds(a.shape[0], one * int(np.prod(a.shape[:-2])))
        else:
            axis = "rows" if a.shape[-2] >= b.shape[-1] else "columns"
            extent = a.shape[-2] if axis == "rows" else b.shape[-1]
            bounds = piece_bounds(extent, one)
        if len(bounds) == 1:
            return np.matmul(a, b, out=out)
        if out is None:
            shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
            out = np.empty(shape, np.result_type(a, b))

        def multiply_piece(index: int) -> None:
            part = slice(*bounds[index])
            if axis == "stack":
                np.matmul(a[part], b[part], out=out[part])
            elif axis == "rows":
                np.matmul(a[..., part, :], b, out=out[..., part, :])
            else:
                np.matmul(a, b[..., part], out=out[..., part])

        for_each_piece(multiply_piece, len(bounds))
        return out


def can_limit_blas() -> bool:
    """Whether `one_blas_thread` can keep BLAS to one thread (an OpenBLAS was found)."""
    return _library() is not None


@contextlib.contextmanager
def one_blas_thread():
    """BLAS on one thread inside the block, then back to what it was, so that other NumPy code
    (the user's too) sees BLAS as configured. Threads inside at once share one setting: the
    first in sets it, the last out restores it. A no-op when BLAS has one thread anyway (as the
    `layerctl` command configures it) or no OpenBLAS is found."""
    library = _library()
    if library is None or library.configured == 1:
        yield
        return
    with _lock:
        library.users += 1
        if library.users == 1:
            library.set_threads(1)
    try:
        yield
    finally:
        with _lock:
            library.users -= 1
            if library.users == 0:
                library.set_threads(library.configured)


def _library() -> _OpenBlas | None:
    global _openblas, _looked
    if not _looked:
        with _lock:
            if not _looked:
                _openblas, _looked = _find_openblas(), True
    return _openblas


def _find_openblas() -> _OpenBlas | None:
    """The OpenBLAS that numpy loaded, from this process's memory map (Linux); None elsewhere
    or when numpy uses another BLAS."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return None
    for path in sorted(paths):
        with contextlib.suppress(OSError):
            library = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LOCAL)
            found = _thread_functions(library)
            if found is not None:
                return _OpenBlas(*found)
    return None


def _thread_functions(library: ctypes.CDLL):
    for prefix in _SYMBOL_PREFIXES:
        for suffix in _SYMBOL_SUFFIXES:
            try:
                set_threads = getattr(library, f"{prefix}set_num_threads{suffix}")
                get_threads = getattr(library, f"{prefix}get_num_threads{suffix}")
            except AttributeError:
                continue
            set_threads.argtypes, set_threads.restype = [ctypes.c_int], None
            get_threads.argtypes, get_threads.restype = [], ctypes.c_int
            return set_threads, get_threads
    return None
