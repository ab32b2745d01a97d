"""Variable-length sequences as one flat array, and Keras's `pad_sequences` computed from it.

`FlatSequences` holds every step of every sequence in one array (`values`, shape
`(total_steps, *sample_shape)`) plus one length per sequence, so truncating is a single gather and
padding a single boolean scatter, with no Python loop per sequence. `pad_sequences` keeps the
signature, results, errors and messages of `keras.utils.pad_sequences`; Python lists reach the flat
form through C-level iterators (`map`, `itertools.chain`, `np.fromiter`), truncated *before*
conversion so, exactly as in Keras, only the kept steps are ever cast to `dtype`.

Deliberate differences from Keras (everything else matches, including quirks):
- `maxlen=0` returns the empty `(n, 0, *sample_shape)` array. Keras crashes for
  `truncating="pre"` (`s[-0:]` is the whole sequence, which does not fit a 0-wide row) and for
  vectors given as lists with `truncating="post"`; here nothing is kept, so nothing is cast or
  shape-checked, while invalid `padding`/`truncating` values still raise as in Keras.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

PADDING_MODES = ("pre", "post")
_FAST_ITEM_TYPES = frozenset({list, tuple, range})
_SCALAR_TYPES = frozenset({int, float, complex, bool, str, bytes, type(None)}) | frozenset(
    np.sctypeDict.values()
)


@dataclass(frozen=True)
class FlatSequences:
    """Sequences stored end to end: sequence `i` is `values[offsets[i]:offsets[i + 1]]`."""

    values: np.ndarray  # (sum(lengths), *sample_shape)
    lengths: np.ndarray  # (n,) int64

    def __post_init__(self) -> None:
        lengths = np.asarray(self.lengths, dtype=np.int64).reshape(-1)
        object.__setattr__(self, "lengths", lengths)
        object.__setattr__(self, "values", np.asarray(self.values))
        if self.values.ndim == 0 or len(self.values) != int(lengths.sum()):
            raise ValueError(
                f"values hold {len(self.values) if self.values.ndim else 0} steps but the "
                f"lengths add up to {int(lengths.sum())}"
            )
        if len(lengths) and lengths.min() < 0:
            raise ValueError("lengths must not be negative")

    @property
    def offsets(self) -> np.ndarray:
        """(n + 1,) start of every sequence in `values`, then the total."""
        offsets = np.zeros(len(self.lengths) + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=offsets[1:])
        return offsets

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.values.shape[1:]

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> np.ndarray:
        offsets = self.offsets
        return self.values[offsets[index] : offsets[index + 1]]

    def tolist(self) -> list[list[Any]]:
        """The sequences as Python lists (for tests and small data)."""
        if not len(self):
            return []
        return [part.tolist() for part in np.split(self.values, self.offsets[1:-1])]

    @classmethod
    def from_sequences(
        cls, sequences: Sequence[Sequence[Any]], dtype: Any = "int32"
    ) -> FlatSequences:
        """Python lists (or tuples, ranges, 1-D arrays) of steps -> flat form, at C speed.
        Values are cast to `dtype` as `np.asarray(list, dtype)` would (int32, as in
        `pad_sequences`); `dtype=None` lets NumPy choose, more slowly."""
        items = sequences if isinstance(sequences, (list, tuple)) else list(sequences)
        lengths = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
        return cls(_flat_values(items, int(lengths.sum()), dtype), lengths)

    @classmethod
    def concatenate(cls, parts: Sequence[FlatSequences]) -> FlatSequences:
        if not parts:
            return cls(np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64))
        return cls(
            np.concatenate([p.values for p in parts]), np.concatenate([p.lengths for p in parts])
        )

    def truncate(self, maxlen: int, truncating: str = "pre") -> FlatSequences:
        """Keep at most `maxlen` steps of each sequence: the last ones ("pre") or the first."""
        _check_mode("Truncating", truncating)
        kept = np.minimum(self.lengths, maxlen)
        if np.array_equal(kept, self.lengths):
            return self
        starts = self.offsets[:-1] + (self.lengths - kept if truncating == "pre" else 0)
        return self._gather(starts, kept)

    def select(self, rows: np.ndarray) -> FlatSequences:
        """The sequences at `rows` (indices or a boolean mask), with one gather."""
        rows = np.arange(len(self))[rows]
        return self._gather(self.offsets[rows], self.lengths[rows])

    def _gather(self, starts: np.ndarray, lengths: np.ndarray) -> FlatSequences:
        """New sequences: sequence i is `lengths[i]` steps of `values` from `starts[i]`."""
        new_starts = np.cumsum(lengths) - lengths
        source = np.arange(int(lengths.sum()), dtype=np.int64)
        source += np.repeat(starts - new_starts, lengths)
        return FlatSequences(self.values[source], lengths)

    def pad(
        self,
        maxlen: int | None = None,
        dtype: Any = "int32",
        padding: str = "pre",
        truncating: str = "pre",
        value: Any = 0.0,
    ) -> np.ndarray:
        """`pad_sequences` of these sequences (same arguments, results and errors)."""
        if maxlen is None:
            maxlen = np.max(self.lengths)  # NumPy's error for no sequences, as in Keras
        _check_string_value(dtype, value)
        shape = (len(self), maxlen) + self.sample_shape
        if self.lengths.any():
            np.empty(shape, dtype=dtype)  # Keras's errors for a bad maxlen or dtype come first
            fill = np.full((), value, dtype=dtype)
            _check_mode("Truncating", truncating)
            _check_mode("Padding", padding)
            width = operator.index(maxlen)
            if width and np.ndim(value) == 0 and _widens(self.values.dtype, fill.dtype):
                return self._pad_by_windows(width, fill, padding, truncating)
        padded = np.full(shape, value, dtype=dtype)
        if not self.lengths.any() or operator.index(maxlen) == 0:
            return padded
        kept = self.truncate(operator.index(maxlen), truncating)
        scatter_rows(padded, np.asarray(kept.values, dtype=dtype), kept.lengths, padding)
        return padded

    def _pad_by_windows(
        self, width: int, fill: np.ndarray, padding: str, truncating: str
    ) -> np.ndarray:
        """Row i of the output is a window of `width` consecutive steps of `values`, starting
        where its kept steps land in place; one gather of windows, then the padding cells are
        overwritten with `fill`. Rows whose window would leave `values` (near its ends) are
        done by the general path."""
        kept = np.minimum(self.lengths, width)
        offsets = self.offsets
        first_kept = offsets[:-1] + (self.lengths - kept if truncating == "pre" else 0)
        first_cell = width - kept if padding == "pre" else np.zeros_like(kept)
        starts = first_kept - first_cell
        last_start = len(self.values) - width
        inside = (starts >= 0) & (starts <= last_start)
        windows = np.lib.stride_tricks.as_strided(
            self.values,
            shape=(max(last_start + 1, 0), width) + self.sample_shape,
            strides=(self.values.strides[0],) + self.values.strides,
            writeable=False,
        )
        if len(windows):
            padded = windows[np.clip(starts, 0, last_start)].astype(fill.dtype, copy=False)
        else:
            padded = np.empty((len(self), width) + self.sample_shape, dtype=fill.dtype)
        columns = np.arange(width)
        if padding == "pre":
            outside = columns < first_cell[:, None]
        else:
            outside = columns >= kept[:, None]
        padded[outside] = fill
        if not inside.all():
            edge = self.select(~inside).truncate(width, truncating)
            block = np.full((len(edge), width) + self.sample_shape, fill)
            scatter_rows(block, edge.values, edge.lengths, padding)
            padded[~inside] = block
        return padded


def scatter_rows(out: np.ndarray, values: np.ndarray, lengths: np.ndarray, padding: str) -> None:
    """Write sequences of `lengths` (each <= out.shape[1]) into the rows of `out`, at the row end
    ("pre" padding) or start ("post"), with one boolean-mask assignment."""
    columns = np.arange(out.shape[1])
    if padding == "pre":
        mask = columns >= (out.shape[1] - lengths)[:, None]
    else:
        mask = columns < lengths[:, None]
    out[mask] = values


def pad_sequences(
    sequences: Any,
    maxlen: int | None = None,
    dtype: Any = "int32",
    padding: str = "pre",
    truncating: str = "pre",
    value: Any = 0.0,
) -> np.ndarray:
    """Pad (and truncate) sequences to one length, exactly like `keras.utils.pad_sequences`.

    Returns an array of shape `(len(sequences), maxlen, *sample_shape)` filled with `value`, where
    each sequence is written at the row end (`padding="pre"`) or start (`"post"`), keeping its
    last (`truncating="pre"`) or first (`"post"`) `maxlen` steps. `maxlen=None` means the longest
    length. `sequences` may be lists of scalars, lists of vectors (3-D output), NumPy arrays, or a
    `FlatSequences` (the fast form). `dtype=object` pads variable-length strings.

    >>> pad_sequences([[1], [2, 3], [4, 5, 6]], maxlen=2).tolist()
    [[0, 1], [2, 3], [5, 6]]
    """
    if isinstance(sequences, FlatSequences):
        return sequences.pad(maxlen, dtype, padding, truncating, value)
    if not hasattr(sequences, "__len__"):
        raise ValueError("`sequences` must be iterable.")
    try:
        return _pad_fast(sequences, maxlen, dtype, padding, truncating, value)
    except MemoryError:
        raise
    except Exception:
        # Unusual inputs and every error case: the step-by-step path gives Keras's exact
        # result or error (the fast path does not try to reproduce Keras's error order).
        return _pad_stepwise(sequences, maxlen, dtype, padding, truncating, value)


class _NotFast(Exception):
    """The input needs the step-by-step path."""


def _pad_fast(sequences, maxlen, dtype, padding, truncating, value) -> np.ndarray:
    if isinstance(sequences, np.ndarray) and sequences.ndim >= 2 and sequences.dtype != object:
        return _pad_array(sequences, maxlen, dtype, padding, truncating, value)
    items = sequences if isinstance(sequences, (list, tuple)) else list(sequences)
    kinds = set(map(type, items))
    if not (kinds <= _FAST_ITEM_TYPES or kinds == {np.ndarray}):
        raise _NotFast
    lengths = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
    nonempty = np.flatnonzero(lengths)
    sample_shape = np.asarray(items[nonempty[0]]).shape[1:] if len(nonempty) else ()
    if maxlen is None:
        maxlen = np.max(lengths)
    _check_string_value(dtype, value)
    padded = np.full((len(items), maxlen) + sample_shape, value, dtype=dtype)
    if not len(nonempty):
        return padded
    _check_mode("Truncating", truncating)
    if padding not in PADDING_MODES:
        raise _NotFast  # Keras may raise a cast or shape error first
    width = operator.index(maxlen)
    if width == 0:
        return padded
    kept = items
    if lengths.max() > width:
        # Lazily: each slice is dropped as soon as it is read, so no garbage-collector storms
        # from 100,000s of live lists.
        keep = slice(-width, None) if truncating == "pre" else slice(0, width)
        kept = map(operator.itemgetter(keep), items)
        lengths = np.minimum(lengths, width)
    if kinds == {np.ndarray}:
        values = _array_values(list(kept), dtype)
    else:
        values = _flat_values(kept, int(lengths.sum()), padded.dtype, sample_shape)
    scatter_rows(padded, values, lengths, padding)
    return padded


def _flat_values(items: Iterable, total: int, dtype: Any, sample_shape: tuple = ()) -> np.ndarray:
    """All steps of `items` in one array; raises when a step does not have `sample_shape`."""
    steps = itertools.chain.from_iterable(items)
    if dtype is not None and np.dtype(dtype) != object and sample_shape == ():
        # np.fromiter casts like np.asarray(list, dtype): overflow raises, floats truncate,
        # digit strings parse.
        return np.fromiter(steps, dtype=dtype, count=total)
    steps = list(steps)
    if sample_shape == () and not set(map(type, steps)) <= _SCALAR_TYPES:
        raise _NotFast  # NumPy would store a list step as one object; Keras sees its shape
    values = np.array(steps, dtype=dtype)
    if values.shape != (total,) + tuple(sample_shape):
        raise _NotFast
    return values


def _array_values(items: list, dtype: Any) -> np.ndarray:
    """Steps of a list of NumPy arrays, cast like Keras casts each array (`np.asarray`)."""
    if len({item.dtype for item in items}) != 1:
        raise _NotFast  # concatenating would promote, e.g. int64 with float64
    return np.asarray(np.concatenate(items), dtype=dtype)


def _pad_array(array, maxlen, dtype, padding, truncating, value) -> np.ndarray:
    """A regular array whose rows are the sequences: slicing, no flattening needed."""
    rows, length = array.shape[:2]
    if maxlen is None:
        maxlen = np.max(np.full(rows, length))
    _check_string_value(dtype, value)
    padded = np.full((rows, maxlen) + array.shape[2:], value, dtype=dtype)
    if rows == 0 or length == 0:
        return padded
    _check_mode("Truncating", truncating)
    _check_mode("Padding", padding)
    width = operator.index(maxlen)
    if width == 0:
        return padded
    kept = min(length, width)
    block = array[:, length - kept :] if truncating == "pre" else array[:, :kept]
    block = np.asarray(block, dtype=dtype)
    if padding == "pre":
        padded[:, width - kept :] = block
    else:
        padded[:, :kept] = block
    return padded


def _widens(source: np.dtype, target: np.dtype) -> bool:
    """Casting whole windows (padding cells included) equals casting only the kept steps when
    the cast is exact and cannot fail: same type, or a safe numeric widening."""
    numeric = source.kind in "biuf" and target.kind in "biuf"
    return source == target or (numeric and np.can_cast(source, target, casting="safe"))


def _check_mode(kind: str, mode: Any) -> None:
    if mode not in PADDING_MODES:
        raise ValueError(f'{kind} type "{mode}" not understood')


def _check_string_value(dtype: Any, value: Any) -> None:
    """Keras refuses a string `value` unless dtype is `object` (the type itself) or str/bytes."""
    is_text = np.issubdtype(dtype, np.str_) or np.issubdtype(dtype, np.bytes_)
    if isinstance(value, str) and dtype is not object and not is_text:
        raise ValueError(
            f"`dtype` {dtype} is not compatible with `value`'s type: {type(value)}\n"
            "You should set `dtype=object` for variable length strings."
        )


def _pad_stepwise(sequences, maxlen, dtype, padding, truncating, value) -> np.ndarray:
    """One sequence at a time, in Keras's order of checks: the reference for every odd input
    (strings as sequences, mixed containers) and the source of every error message."""
    lengths, sample_shape, shape_known = [], (), False
    for sequence in sequences:
        try:
            lengths.append(len(sequence))
        except TypeError as error:
            raise ValueError(
                f"`sequences` must be a list of iterables. Found non-iterable: {sequence}"
            ) from error
        if lengths[-1] and not shape_known:
            sample_shape, shape_known = np.asarray(sequence).shape[1:], True
    if maxlen is None:
        maxlen = np.max(lengths)
    _check_string_value(dtype, value)
    padded = np.full((len(sequences), maxlen) + sample_shape, value, dtype=dtype)
    for position, sequence in enumerate(sequences):
        if not len(sequence):
            continue
        _check_mode("Truncating", truncating)
        kept = _keep(sequence, maxlen, truncating)
        if kept is None:  # maxlen == 0: nothing to cast or place
            _check_mode("Padding", padding)
            continue
        kept = np.asarray(kept, dtype=dtype)
        if kept.shape[1:] != sample_shape:
            raise ValueError(
                f"Shape of sample {kept.shape[1:]} of sequence at position {position} "
                f"is different from expected shape {sample_shape}"
            )
        _check_mode("Padding", padding)
        if padding == "post":
            padded[position, : len(kept)] = kept
        else:
            padded[position, -len(kept) :] = kept
    return padded


def _keep(sequence: Any, maxlen: Any, truncating: str) -> Any:
    width = operator.index(maxlen)
    if width == 0:
        return None
    return sequence[-width:] if truncating == "pre" else sequence[:width]
