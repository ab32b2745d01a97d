"""N-dimensional max and average pooling (Keras MaxPooling/AveragePooling math), channels_last.

    y[b, o…, c] = max_{t…} x_pad[b, o·s + t, c]

with x_pad padded by −inf (TF's `same` rule, extra cell at the end, see `windows.py`), so padding
never wins. The forward pass walks the pool taps (k_h·k_w iterations, each one strided slice over
the whole batch) twice: once for the running max, once for the index of the first tap (in
row-major window order) that holds it, so ties go to the first occurrence as TensorFlow does. NaN
propagates, as in TF and PyTorch (a NaN window sends its gradient to its first cell). The cache
is that small unsigned index array (uint8 up to 256 taps). Backward routes dy to the winning tap
of each window with one strided write per tap, or one strided add when windows overlap
(stride < pool), so shared cells accumulate every window's gradient. Both passes run on slices of
the batch at once (`layerctl.ops.parallel`).

Average pooling walks the same taps over the same zero-padded input, summing:

    y[b, o…, c] = Σ_{t…} x_pad[b, o·s + t, c] / count[o…]

where count is the number of the window's cells inside the input (TF's and ONNX's
count_include_pad=0, what Keras documents for `same`); it is a product of one count per axis,
so it is an outer product of small vectors, never a per-window loop. Backward spreads
dy / count over each window's cells, one strided write (or add, when windows overlap) per tap.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from layerctl.ops.parallel import for_each_chunk
from layerctl.ops.windows import Geometry, as_tuple, check_padding

IntOrTuple = int | Sequence[int]


def max_pool_forward(x: np.ndarray, pool_size: IntOrTuple, strides: IntOrTuple | None = None,
                     padding: str = "valid") -> tuple[np.ndarray, tuple]:
    """Max over windows of x (B, *spatial, C): y (B, *out, C); strides None means pool_size.

    Raises ValueError with Keras's text when an output axis would be empty.
    """
    geometry = pool_geometry(x.shape, pool_size, strides, padding)
    lowest = -np.inf if np.issubdtype(x.dtype, np.inexact) else np.iinfo(x.dtype).min
    x_padded = geometry.pad(x, lowest)
    taps = [(slice(None), *slices) for _, slices in geometry.taps()]
    out_shape = (x.shape[0], *geometry.out, *x.shape[1 + len(geometry.out):])
    y = np.empty(out_shape, x.dtype)
    winner = np.empty(out_shape, _index_dtype(len(taps)))

    def pool_rows(rows: slice) -> None:
        _max_and_winner(x_padded[rows], taps, y[rows], winner[rows])

    for_each_chunk(pool_rows, x.shape[0], 2 * x.nbytes)
    return y, (geometry, winner, x.shape)


def _max_and_winner(x_padded: np.ndarray, taps: list[tuple[slice, ...]], y: np.ndarray,
                    winner: np.ndarray) -> None:
    """Fill y with each window's max and `winner` with the first tap holding it."""
    np.copyto(y, x_padded[taps[0]])                # the running max
    for slices in taps[1:]:
        np.maximum(y, x_padded[slices], out=y)     # np.maximum propagates NaN
    # Walking the taps backwards, the last tap written is the first one equal to the max.
    # winner + is_max·(tap − winner) in wrapping unsigned arithmetic is where(is_max, tap, winner)
    # without numpy's masked assignment, which is many times slower than plain ufuncs.
    # The two ends are cheaper: the first tap walked starts from winner = 0, and for tap 0,
    # winner·(x != max) zeroes the winner where tap 0 holds the max (a NaN window, where no tap
    # equals the max, keeps winner 0: its first cell).
    index_type = winner.dtype.type
    is_max = np.equal(x_padded[taps[-1]], y)
    np.multiply(is_max, index_type(len(taps) - 1), out=winner)
    step = np.empty_like(winner)
    for tap in range(len(taps) - 2, 0, -1):
        np.equal(x_padded[taps[tap]], y, out=is_max)
        np.subtract(index_type(tap), winner, out=step)
        np.multiply(step, is_max, out=step)
        winner += step
    if len(taps) > 1:
        winner *= np.not_equal(x_padded[taps[0]], y, out=is_max)


def max_pool_backward(cache: tuple, dy: np.ndarray) -> np.ndarray:
    """dx of `max_pool_forward`: each window's dy goes to its arg-max cell, summed over windows."""
    geometry, winner, x_shape = cache
    # Without overlap a cell belongs to one window at most, so each tap writes instead of adds;
    # when the windows also tile the padded input exactly, every cell is written: no zeroing.
    overlapping = _overlapping(geometry)
    allocate = np.empty if _tiled(geometry) else np.zeros
    dx_padded = allocate((x_shape[0], *geometry.padded, *x_shape[1 + len(geometry.window):]),
                         dy.dtype)
    taps = list(geometry.taps())

    def route_rows(rows: slice) -> None:
        winners, gradient, dx_part = winner[rows], dy[rows], dx_padded[rows]
        is_winner = np.empty(winners.shape, bool)
        routed = np.empty(gradient.shape, dy.dtype) if overlapping else None
        for tap, slices in taps:
            np.equal(winners, tap, out=is_winner)
            target = dx_part[(slice(None), *slices)]
            if overlapping:
                target += np.multiply(gradient, is_winner, out=routed)
            else:
                np.multiply(gradient, is_winner, out=target)

    for_each_chunk(route_rows, x_shape[0], 2 * dx_padded.nbytes)
    return np.ascontiguousarray(geometry.unpad(dx_padded))


def average_pool_forward(x: np.ndarray, pool_size: IntOrTuple, strides: IntOrTuple | None = None,
                         padding: str = "valid") -> tuple[np.ndarray, tuple]:
    """Mean over windows of x (B, *spatial, C), padding cells left out of each mean."""
    geometry = pool_geometry(x.shape, pool_size, strides, padding)
    x_padded = geometry.pad(x, 0)
    taps = [(slice(None), *slices) for _, slices in geometry.taps()]
    y = np.empty((x.shape[0], *geometry.out, *x.shape[1 + len(geometry.out):]), x.dtype)
    scale = _inverse_counts(geometry, x.ndim, x.dtype)

    def pool_rows(rows: slice) -> None:
        part, y_part = x_padded[rows], y[rows]
        if len(taps) == 1:
            np.copyto(y_part, part[taps[0]])
        else:
            np.add(part[taps[0]], part[taps[1]], out=y_part)
        for slices in taps[2:]:
            y_part += part[slices]
        y_part *= scale

    for_each_chunk(pool_rows, x.shape[0], 2 * x.nbytes)
    return y, (geometry, scale, x.shape)


def average_pool_backward(cache: tuple, dy: np.ndarray) -> np.ndarray:
    """dx of `average_pool_forward`: each window's dy / count reaches each of its input cells."""
    geometry, scale, x_shape = cache
    overlapping = _overlapping(geometry)
    # Taps that only read padding are skipped, and the rest write straight into dx (no padded
    # buffer to crop); when the windows tile the input every cell is written: no zeroing.
    dx = (np.empty if _tiled(geometry) else np.zeros)(x_shape, dy.dtype)
    taps = list(geometry.interior_taps())

    def spread_rows(rows: slice) -> None:
        share = dy[rows] * scale
        dx_part = dx[rows]
        for _, input_slices, output_slices in taps:
            target = dx_part[(slice(None), *input_slices)]
            source = share[(slice(None), *output_slices)]
            if overlapping:
                target += source
            else:
                np.copyto(target, source)

    for_each_chunk(spread_rows, x_shape[0], 3 * dx.nbytes)
    return dx


def _overlapping(geometry: Geometry) -> bool:
    """Whether some input cell lies in two windows (a stride shorter than the pool)."""
    return any(s < k for s, k in zip(geometry.strides, geometry.window, strict=True))


def _tiled(geometry: Geometry) -> bool:
    """Whether the windows cover the padded input exactly, each cell once."""
    return geometry.strides == geometry.window and all(
        o * s == n for o, s, n in zip(geometry.out, geometry.strides, geometry.padded, strict=True))


def _inverse_counts(geometry: Geometry, ndim: int, dtype: np.dtype) -> np.ndarray:
    """1 / (input cells in each window), shaped to broadcast over (B, *out, C)."""
    scale = np.ones((1,) * ndim, np.float64)
    for axis, (n, k, s, o, (lo, _)) in enumerate(zip(
            geometry.spatial, geometry.window, geometry.strides, geometry.out, geometry.pads,
            strict=True), 1):
        start = np.arange(o) * s - lo
        count = np.minimum(start + k, n) - np.maximum(start, 0)
        shape = [1] * ndim
        shape[axis] = o
        scale = scale * (1.0 / count).reshape(shape)
    return scale.astype(dtype)


def pool_geometry(x_shape: tuple[int, ...], pool_size: IntOrTuple,
                   strides: IntOrTuple | None, padding: str) -> Geometry:
    """Window geometry of a pooling op, with Keras's error when an output axis is empty."""
    rank = len(x_shape) - 2
    if rank < 1:
        raise ValueError(f"pooling expects x (batch, *spatial, channels); received shape "
                         f"{tuple(x_shape)}")
    padding = check_padding(padding, ("valid", "same"))
    pool = as_tuple(pool_size, rank, "pool_size")
    strides = pool if strides is None else as_tuple(strides, rank, "strides")
    geometry = Geometry(x_shape[1:-1], pool, strides, padding, (1,) * rank)
    if geometry.empty:
        raise ValueError(
            "Computed output size would be zero or negative. Received: "
            f"inputs.shape={tuple(x_shape)}, pool_size={pool}, strides={strides}, "
            f"padding={padding}.")
    return geometry


def _index_dtype(taps: int) -> np.dtype:
    """The smallest unsigned integer type that can number every tap of a window."""
    return np.min_scalar_type(max(taps - 1, 0))
