"""Upsampling by integer factors along chosen axes: nearest (repeat) and linear (half-pixel).

Both are written per output *phase*: with factor s, output cell s·i + r (r = 0 … s−1) reads
input cells near i through one strided slice that covers the whole batch, so a 2×2 upsampling
is four slices forward and four backward, never a loop over pixels. Nearest copies x[i] into
every phase (backward sums the s phases); linear is Keras 3's bilinear resize (TensorFlow's
`half_pixel_centers`, PyTorch's `align_corners=False`): output cell o sits at input coordinate
(o + ½)/s − ½, clamped to the edge cells, and takes the linear blend of its two neighbours.
For phase r that coordinate is i + c_r with c_r = (2r + 1 − s)/(2s), the same for every i, so
one blend weight serves the whole phase; the clamping becomes an edge cell repeated on each
side. Work runs in batch slices on every core (`layerctl.ops.parallel`).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

import numpy as np

from layerctl.ops.parallel import for_each_chunk


def _split_shape(shape: Sequence[int], axes: Sequence[int], factors: Sequence[int]) -> tuple:
    """`shape` with each axis a in `axes` followed by a new axis of its factor."""
    split: list[int] = []
    for axis, size in enumerate(shape):
        split.append(size)
        if axis in axes:
            split.append(factors[list(axes).index(axis)])
    return tuple(split)


def _phase_index(rank: int, axes: Sequence[int], phase: Sequence[int]) -> tuple:
    """The index of one phase in the split array (every original axis whole)."""
    index: list[object] = []
    for axis in range(rank):
        index.append(slice(None))
        if axis in axes:
            index.append(phase[list(axes).index(axis)])
    return tuple(index)


def repeat_forward(x: np.ndarray, axes: Sequence[int], factors: Sequence[int]) -> np.ndarray:
    """Every cell of x repeated `factors[k]` times along `axes[k]` (axis 0 is the batch)."""
    out_shape = tuple(n * factors[list(axes).index(a)] if a in axes else n
                      for a, n in enumerate(x.shape))
    y = np.empty(out_shape, x.dtype)
    split = y.reshape(_split_shape(x.shape, axes, factors))
    source = x.reshape(_split_shape(x.shape, axes, [1] * len(axes)))

    def copy_rows(rows: slice) -> None:
        split[rows] = source[rows]   # broadcasts along the new factor axes

    for_each_chunk(copy_rows, len(x), 2 * y.nbytes)
    return y


def repeat_backward(dy: np.ndarray, axes: Sequence[int], factors: Sequence[int]) -> np.ndarray:
    """The gradient of `repeat_forward`: each input cell sums the cells it was copied to."""
    in_shape = tuple(n // factors[list(axes).index(a)] if a in axes else n
                     for a, n in enumerate(dy.shape))
    split = dy.reshape(_split_shape(in_shape, axes, factors))
    phases = [_phase_index(dy.ndim, axes, phase) for phase in product(*map(range, factors))]
    dx = np.empty(in_shape, dy.dtype)

    def sum_rows(rows: slice) -> None:
        part = split[rows]
        np.copyto(dx[rows], part[phases[0]])
        for phase in phases[1:]:
            dx[rows] += part[phase]

    for_each_chunk(sum_rows, len(dy), 2 * dy.nbytes)
    return dx


def _phase_blends(factor: int) -> list[tuple[int, float]]:
    """(offset into the edge-padded input, weight of its right neighbour) for each phase.

    Output s·i + r reads padded cells i + 1 + d and i + 2 + d (padded cell j = input cell j − 1,
    clamped) with d = 0 when c_r ≥ 0 (blend of x[i], x[i + 1] with weight c_r on the right) and
    d = −1 otherwise (x[i − 1], x[i], weight 1 + c_r)."""
    blends = []
    for r in range(factor):
        c = (2 * r + 1 - factor) / (2 * factor)
        blends.append((1, c) if c >= 0 else (0, 1.0 + c))
    return blends


def _along(axis: int, part: slice | int) -> tuple:
    return (slice(None),) * axis + (part,)


def _blend_weights(blends: list[tuple[int, float]]) -> list[float]:
    """The distinct nonzero weights the phases' blends use (0.25 and 0.75 for a factor of 2)."""
    return sorted({w for _, right in blends for w in (1.0 - right, right) if w})


def _scaled_edge_padded(part: np.ndarray, axis: int, weight: float) -> np.ndarray:
    """part · weight, its first and last cells repeated once more along `axis` (the clamping)."""
    n = part.shape[axis]
    padded = np.empty(part.shape[:axis] + (n + 2,) + part.shape[axis + 1:], part.dtype)
    np.multiply(part, part.dtype.type(weight), out=padded[_along(axis, slice(1, n + 1))])
    padded[_along(axis, slice(0, 1))] = padded[_along(axis, slice(1, 2))]
    padded[_along(axis, slice(n + 1, n + 2))] = padded[_along(axis, slice(n, n + 1))]
    return padded


def linear_forward(x: np.ndarray, axis: int, factor: int) -> np.ndarray:
    """x upsampled `factor` times along `axis` (> 0) with half-pixel linear interpolation.

    The phases share their weights (a factor of 2 blends 0.25·x[i−1] + 0.75·x[i] and
    0.75·x[i] + 0.25·x[i+1]), so x is scaled once per weight, contiguously, and each phase is
    one add of two scaled slices into its strided cells of y: along the axis next to the
    channels those writes are short runs, far slower per cell than contiguous passes.
    """
    n = x.shape[axis]
    y = np.empty(x.shape[:axis] + (n * factor,) + x.shape[axis + 1:], x.dtype)
    blends = _phase_blends(factor)
    weights = _blend_weights(blends)

    def blend_rows(rows: slice) -> None:
        scaled = {w: _scaled_edge_padded(x[rows], axis, w) for w in weights}
        out = y[rows]
        for r, (start, right) in enumerate(blends):
            target = out[_along(axis, slice(r, None, factor))]
            low = scaled[1.0 - right][_along(axis, slice(start, start + n))]
            if right:
                high = scaled[right][_along(axis, slice(start + 1, start + 1 + n))]
                np.add(low, high, out=target)
            else:
                np.copyto(target, low)

    for_each_chunk(blend_rows, len(x), 4 * y.nbytes)
    return y


def linear_backward(dy: np.ndarray, axis: int, factor: int) -> np.ndarray:
    """The gradient of `linear_forward`: each phase's blend weights sent back to its two cells,
    then the repeated edge cells folded onto the first and last input cells."""
    n = dy.shape[axis] // factor
    dx = np.empty(dy.shape[:axis] + (n,) + dy.shape[axis + 1:], dy.dtype)
    if factor == 2 and n >= 2:
        for_each_chunk(lambda rows: _double_backward(dy[rows], axis, dx[rows]), len(dy),
                       4 * dy.nbytes)
        return dx
    blends = _phase_blends(factor)

    def scatter_rows(rows: slice) -> None:
        part = dy[rows]
        padded = np.zeros(part.shape[:axis] + (n + 2,) + part.shape[axis + 1:], dy.dtype)
        weighted = np.empty(part.shape[:axis] + (n,) + part.shape[axis + 1:], dy.dtype)
        for r, (start, right) in enumerate(blends):
            d_out = part[_along(axis, slice(r, None, factor))]
            for offset, weight in ((start, 1.0 - right), (start + 1, right)):
                if weight:
                    np.multiply(d_out, dy.dtype.type(weight), out=weighted)
                    target = padded[_along(axis, slice(offset, offset + n))]
                    np.add(target, weighted, out=target)
        inner = padded[_along(axis, slice(1, n + 1))]
        inner[_along(axis, slice(0, 1))] += padded[_along(axis, slice(0, 1))]
        inner[_along(axis, slice(n - 1, n))] += (
            padded[_along(axis, slice(n + 1, n + 2))])
        dx[rows] = inner

    for_each_chunk(scatter_rows, len(dy), 4 * dy.nbytes)
    return dx


def _double_backward(dy: np.ndarray, axis: int, dx: np.ndarray) -> None:
    """dx of a factor-2 `linear_forward`, whose phases are y0[i] = ¼·x[i−1] + ¾·x[i] and
    y1[i] = ¾·x[i] + ¼·x[i+1] (x clamped at both ends):

        dx[i] = ¾·(d0[i] + d1[i]) + ¼·(d0[i+1] + d1[i−1]),  d0[n] := d1[n−1], d1[−1] := d0[0]

    Five passes, two of them reading dy's strided phases, where the general scatter makes
    eleven (half the time on the decoder's 28×28×32 gradient). Needs n ≥ 2."""
    n = dx.shape[axis]
    d0, d1 = dy[_along(axis, slice(0, None, 2))], dy[_along(axis, slice(1, None, 2))]
    near = np.add(d0, d1, out=dx)
    far = np.empty_like(dx)

    def cells(a: np.ndarray, start: int, stop: int) -> np.ndarray:
        return a[_along(axis, slice(start, stop))]

    np.add(cells(d0, 2, n), cells(d1, 0, n - 2), out=cells(far, 1, n - 1))
    np.add(cells(d0, 0, 1), cells(d0, 1, 2), out=cells(far, 0, 1))          # d1[−1] = d0[0]
    np.add(cells(d1, n - 2, n - 1), cells(d1, n - 1, n), out=cells(far, n - 1, n))
    near *= dy.dtype.type(0.75)
    far *= dy.dtype.type(0.25)
    near += far


def zero_pad(x: np.ndarray, pads: Sequence[tuple[int, int]], axes: Sequence[int]) -> np.ndarray:
    """x with `pads[k]` = (before, after) zeros added along `axes[k]`."""
    shape = list(x.shape)
    interior: list[slice] = [slice(None)] * x.ndim
    for axis, (before, after) in zip(axes, pads, strict=True):
        shape[axis] += before + after
        interior[axis] = slice(before, before + x.shape[axis])
    y = np.zeros(shape, x.dtype)
    inside = tuple(interior[1:])

    def copy_rows(rows: slice) -> None:
        y[(rows, *inside)] = x[rows]

    for_each_chunk(copy_rows, len(x), 2 * y.nbytes)
    return y


def crop_slices(shape: Sequence[int], crops: Sequence[tuple[int, int]],
                axes: Sequence[int]) -> tuple[slice, ...]:
    """The index keeping all of `shape` but `crops[k]` = (before, after) cells along `axes[k]`;
    its gradient is `zero_pad` with the same amounts."""
    index = [slice(None)] * len(shape)
    for axis, (before, after) in zip(axes, crops, strict=True):
        index[axis] = slice(before, shape[axis] - after)
    return tuple(index)

