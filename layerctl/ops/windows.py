"""Sliding-window geometry shared by convolution and pooling: sizes, padding, strided views.

Everything is channels_last with N spatial axes: arrays are (batch, *spatial, *trailing). Output
sizes follow Keras (`valid`: floor((n − d·(k−1) − 1)/s) + 1; `same` and `causal`: ceil(n/s)) and
padding follows TensorFlow: `same` pads total = max((out−1)·s + d·(k−1) + 1 − n, 0) with the odd
cell at the end, `causal` pads d·(k−1) at the start. Windows are read through one strided view of
the padded array (no copies); backward passes scatter into the padded array one window tap at a
time, each tap being a single strided slice that covers every window of the whole batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import product

import numpy as np

from layerctl.ops.parallel import for_each_chunk

PADDINGS = ("valid", "same", "causal")


def output_length(n: int | None, k: int, padding: str, stride: int,
                  dilation: int = 1) -> int | None:
    """Keras's output size along one spatial axis; None stays None.

    The value is returned as computed, so `valid` may give zero or a negative number: callers
    decide how to report it (the layers locate the error, the ops raise Keras's message).
    """
    padding = check_padding(padding)
    if n is None:
        return None
    if padding == "valid":
        return (n - dilation * (k - 1) - 1) // stride + 1
    return (n - 1) // stride + 1


def padding_amounts(n: int, k: int, padding: str, stride: int,
                    dilation: int = 1) -> tuple[int, int]:
    """Cells added (before, after) along one axis: TF's rule, the odd cell goes after."""
    padding = check_padding(padding)
    span = dilation * (k - 1) + 1
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return span - 1, 0
    out = (n - 1) // stride + 1
    total = max((out - 1) * stride + span - n, 0)
    return total // 2, total - total // 2


def check_padding(padding: str, allowed: Sequence[str] = PADDINGS) -> str:
    """Lower-case `padding` (as the Keras layers do) and reject anything outside `allowed`."""
    value = padding.lower() if isinstance(padding, str) else padding
    if value not in allowed:
        choices = ", ".join(repr(choice) for choice in allowed)
        raise ValueError(f"padding must be one of {choices}. Received: padding={padding!r}")
    return value


def as_tuple(value: int | Sequence[int] | None, rank: int, name: str) -> tuple[int, ...]:
    """An int repeated over `rank` axes, or a sequence of exactly `rank` positive ints."""
    values = (value,) * rank if isinstance(value, int | np.integer) else tuple(value)
    if len(values) != rank or any(int(v) != v or v <= 0 for v in values):
        raise ValueError(f"{name} must be a positive int or a tuple of {rank} positive ints. "
                         f"Received: {name}={value!r}")
    return tuple(int(v) for v in values)


class Geometry:
    """Sizes of one windowed op over an input of known spatial shape (all tuples per axis)."""

    __slots__ = ("spatial", "window", "strides", "dilation", "out", "pads", "padded")

    def __init__(self, spatial: Sequence[int], window: Sequence[int], strides: Sequence[int],
                 padding: str, dilation: Sequence[int]) -> None:
        self.spatial = tuple(spatial)
        self.window = tuple(window)
        self.strides = tuple(strides)
        self.dilation = tuple(dilation)
        axes = list(zip(self.spatial, self.window, self.strides, self.dilation, strict=True))
        self.out = tuple(output_length(n, k, padding, s, d) for n, k, s, d in axes)
        self.pads = tuple(padding_amounts(n, k, padding, s, d) for n, k, s, d in axes)
        self.padded = tuple(n + lo + hi
                            for n, (lo, hi) in zip(self.spatial, self.pads, strict=True))

    @classmethod
    def explicit(cls, spatial: Sequence[int], window: Sequence[int], strides: Sequence[int],
                 dilation: Sequence[int], pads: Sequence[tuple[int, int]],
                 out: Sequence[int]) -> Geometry:
        """A geometry with given pads and output sizes (a transposed convolution's, whose
        padding rule is its own). A negative end pad drops input cells no window reads."""
        self = cls.__new__(cls)
        self.spatial, self.window = tuple(spatial), tuple(window)
        self.strides, self.dilation = tuple(strides), tuple(dilation)
        self.pads, self.out = tuple(pads), tuple(out)
        self.padded = tuple(n + lo + hi
                            for n, (lo, hi) in zip(self.spatial, self.pads, strict=True))
        return self

    @property
    def empty(self) -> bool:
        """True when some output axis would have no cells (Keras raises for this)."""
        return any(size <= 0 for size in self.out)

    def pad(self, x: np.ndarray, value: float = 0.0) -> np.ndarray:
        """x (B, *spatial, ...) with the padding cells added (x itself when there are none).

        Written directly, in batch slices on every core: np.pad's general machinery took a
        third of a small CNN's im2col time.
        """
        pads, spatial = self.pads, self.spatial
        if any(hi < 0 for _, hi in pads):   # trailing cells that no window reads: dropped
            spatial = tuple(n + min(hi, 0) for n, (_, hi) in zip(spatial, pads, strict=True))
            x = x[(slice(None), *(slice(0, n) for n in spatial))]
            pads = tuple((lo, max(hi, 0)) for lo, hi in pads)
        if not any(lo or hi for lo, hi in pads):
            return x
        padded = np.empty((x.shape[0], *self.padded, *x.shape[1 + len(pads):]), x.dtype)
        interior = (slice(None), *(slice(lo, lo + n)
                                   for (lo, _), n in zip(pads, spatial, strict=True)))
        # Each axis's two padding bands, over the whole extent of the other axes.
        bands = []
        for axis, ((lo, hi), size) in enumerate(zip(pads, self.padded, strict=True), 1):
            before = (slice(None),) * axis
            bands += [before + (slice(0, lo),), before + (slice(size - hi, size),)]

        def pad_rows(rows: slice) -> None:
            part = padded[rows]
            for band in bands:
                part[band] = value
            part[interior] = x[rows]

        for_each_chunk(pad_rows, x.shape[0], 2 * padded.nbytes)
        return padded

    def unpad(self, x_padded: np.ndarray) -> np.ndarray:
        """The inverse of `pad`: the cells of x_padded that came from the input."""
        crop = tuple(slice(lo, lo + n) for (lo, _), n in zip(self.pads, self.spatial, strict=True))
        return x_padded[(slice(None), *crop)]

    def windows(self, x_padded: np.ndarray) -> np.ndarray:
        """Read-only view (B, *out, *window, ...) of every window of the padded input."""
        rank = len(self.spatial)
        batch_stride, spatial_strides = x_padded.strides[0], x_padded.strides[1:1 + rank]
        trailing = x_padded.shape[1 + rank:]
        shape = (x_padded.shape[0], *self.out, *self.window, *trailing)
        strides = (batch_stride,
                   *(st * s for st, s in zip(spatial_strides, self.strides, strict=True)),
                   *(st * d for st, d in zip(spatial_strides, self.dilation, strict=True)),
                   *x_padded.strides[1 + rank:])
        return np.lib.stride_tricks.as_strided(x_padded, shape=shape, strides=strides,
                                               writeable=False)

    def taps(self) -> Iterator[tuple[int, tuple[slice, ...]]]:
        """(flat tap index, slices into the padded input) for every position inside a window.

        The slices select, for one tap, the input cell of every window at once: distinct windows
        hit distinct cells, so `padded[(slice(None), *slices)] += g` accumulates without a scatter.
        """
        ranges = [range(k) for k in self.window]
        for index, tap in enumerate(product(*ranges)):
            slices = tuple(slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, o, s in
                           zip(tap, self.dilation, self.out, self.strides, strict=True))
            yield index, slices

    def interior_taps(self) -> Iterator[tuple[int, tuple[slice, ...], tuple[slice, ...]]]:
        """(flat tap index, slices into the unpadded input, slices into the output) for the
        windows whose cell at this tap lies inside the input; taps that only ever read padding
        are skipped. Gradients accumulate straight into an input-shaped array this way, with
        no padded buffer to zero and crop.
        """
        ranges = [range(k) for k in self.window]
        for index, tap in enumerate(product(*ranges)):
            input_slices, output_slices = [], []
            for t, d, o, s, (lo, _), n in zip(tap, self.dilation, self.out, self.strides,
                                              self.pads, self.spatial, strict=True):
                offset = t * d - lo               # input position read by output 0 at this tap
                first = max(0, -(offset // s))    # ceil(-offset / s): the first one inside
                last = min(o - 1, (n - 1 - offset) // s)
                if last < first:
                    break
                input_slices.append(slice(first * s + offset, last * s + offset + 1, s))
                output_slices.append(slice(first, last + 1))
            else:
                yield index, tuple(input_slices), tuple(output_slices)
