"""Streaming inputs and outputs for `predict`: memory stays bounded for files larger than RAM.

`open_inputs` opens `.npy` as a read-only memory map, reads one array of an `.npz` (members of a
zip cannot be mapped), and reads `.csv` a batch of rows at a time. `write_outputs` consumes an
iterator of output batches and writes `.npy` (through `np.lib.format.open_memmap`), `.csv` or
`.json`, each atomically (a temporary file renamed over the destination only when complete), or
CSV to standard output. Numbers are written in their shortest round-trip form for their dtype
(a float32 0.1 is written `0.1`).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from layerctl.atomic import atomic_path
from layerctl.data import csvfile
from layerctl.data.files import existing_file, missing_key, npz_keys, read_npy, read_npz
from layerctl.data.loading import file_format
from layerctl.errors import DataError

OUTPUT_FORMATS = ("npy", "csv", "json")
COPY_BLOCK_BYTES = 1 << 24  # bytes moved per step when assembling a .npy of unknown length


@dataclass(frozen=True, eq=False)
class InputStream:
    """Inputs to predict on, read batch by batch.

    `array` is the whole input for `.npy` (memory-mapped) and `.npz`, None for CSV; `length` is
    None for CSV (unknown until read). `sample_shape` excludes the batch axis.
    """

    name: str
    sample_shape: tuple[int, ...]
    dtype: np.dtype
    length: int | None
    array: np.ndarray | None = None
    csv_path: Path | None = None
    csv_layout: csvfile.CsvLayout | None = None
    drop_column: int | None = None  # a CSV's label column, left out of the inputs

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """Consecutive arrays of at most `batch_size` samples, in file order."""
        if batch_size < 1:
            raise DataError(f"batch size must be a positive integer, got {batch_size}")
        if self.array is not None:
            array = self.array
            return (np.asarray(array[i:i + batch_size]) for i in range(0, len(array), batch_size))
        assert self.csv_path is not None and self.csv_layout is not None
        chunks = csvfile.iter_chunks(self.csv_path, self.name, self.csv_layout, batch_size)
        if self.drop_column is None:
            return chunks
        return (np.delete(chunk, self.drop_column, axis=1) for chunk in chunks)


def open_inputs(path: str | os.PathLike, key: str | None = None,
                label: str | int | None = None) -> InputStream:
    """Open `path` (.npy, .npz or .csv) for batch-wise reading; nothing large is read yet.

    For `.npz`, `key` names the array; by default `x`, or the only array when there is one.
    For `.csv`, `label` names a column to leave out (the targets of a labelled file).
    """
    path = Path(path)
    name = str(path)
    existing_file(path, name)
    kind = file_format(path, name)
    if key is not None and kind != "npz":
        raise DataError(f"{name}: a key ('{key}') only applies to .npz archives")
    if label is not None and kind != "csv":
        raise DataError(f"{name}: --label only applies to .csv files")
    if kind == "csv":
        layout = csvfile.read_layout(path, name)
        drop = None if label is None else csvfile.label_index(label, layout, name)
        return InputStream(name, (layout.width - (drop is not None),), np.dtype(np.float64),
                           None, csv_path=path, csv_layout=layout, drop_column=drop)
    if kind == "npy":
        array = read_npy(path, name, mmap=True)
    else:
        array = read_npz(path, name, _npz_key(path, name, key))
    return InputStream(name, tuple(array.shape[1:]), array.dtype, len(array), array=array)


def _npz_key(path: Path, name: str, key: str | None) -> str:
    if key is not None:
        return key
    keys = npz_keys(path, name)
    if "x" in keys or len(keys) != 1:
        if "x" not in keys:
            error = missing_key(name, "x", keys, "the inputs")
            raise DataError(error.message, hint=f"{error.problems[0].hint}; choose one with --key")
        return "x"
    return keys[0]


def output_format(path: str | os.PathLike) -> str:
    """'npy', 'csv' or 'json' from the extension; DataError otherwise (check before predicting)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in OUTPUT_FORMATS:
        raise DataError(f"{path}: unknown output format '{Path(path).suffix or Path(path).name}'",
                        hint="use a .npy, .csv or .json file, or omit it to print CSV")
    return suffix


def write_outputs(
    destination: str | os.PathLike | TextIO | None,
    arrays: Iterable[np.ndarray],
    *,
    total: int | None = None,
    header: Sequence[str] | None = None,
) -> None:
    """Write output batches to `destination` by its extension, or as CSV to a text stream
    (standard output when None). `total`, the number of samples when known, lets `.npy` be
    filled in place; `header` is a CSV header row. Files appear only once complete.
    """
    if destination is None or hasattr(destination, "write"):
        _write_csv(destination or sys.stdout, arrays, header)
        return
    kind = output_format(destination)
    with atomic_path(destination) as temporary:
        if kind == "npy":
            _write_npy(temporary, iter(arrays), total)
            return
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            if kind == "csv":
                _write_csv(handle, arrays, header)
            else:
                _write_json(handle, arrays)


def number_strings(batch: np.ndarray) -> np.ndarray:
    """Each value as text: shortest round-trip for floats, 0/1 for booleans."""
    batch = np.asarray(batch)
    if batch.dtype.kind == "b":
        batch = batch.astype(np.int8)
    return batch.astype(str)


def _write_csv(handle: TextIO, arrays: Iterable[np.ndarray], header: Sequence[str] | None) -> None:
    if header is not None:
        handle.write(",".join(header) + "\n")
    for batch in arrays:
        cells = number_strings(batch).reshape(len(batch), -1)
        handle.write("".join(",".join(row) + "\n" for row in cells.tolist()))


def _write_json(handle: TextIO, arrays: Iterable[np.ndarray]) -> None:
    """A JSON array with one element per sample (NaN and infinities, not JSON, become null)."""
    handle.write("[")
    separator = "\n"
    for batch in arrays:
        cells = number_strings(batch)
        if batch.dtype.kind == "f":
            cells = np.where(np.isfinite(batch), cells, "null")
        for sample in cells:
            handle.write(separator + _nested(sample))
            separator = ",\n"
    handle.write("\n]\n")


def _nested(cells: np.ndarray) -> str:
    if cells.ndim == 0:
        return str(cells)
    if cells.ndim == 1:
        return "[" + ", ".join(cells.tolist()) + "]"
    return "[" + ", ".join(_nested(part) for part in cells) + "]"


def _write_npy(temporary: Path, arrays: Iterator[np.ndarray], total: int | None) -> None:
    first = next(arrays, None)
    if first is None:
        np.save(temporary, np.zeros((0,), np.float32), allow_pickle=False)
        return
    first = np.asarray(first)
    sample_shape, dtype = first.shape[1:], first.dtype
    if total is None:
        _assemble_npy(temporary, first, arrays)
        return
    output = np.lib.format.open_memmap(temporary, mode="w+", dtype=dtype,
                                       shape=(total, *sample_shape))
    filled = 0
    for batch in _same_kind([first], arrays, sample_shape, dtype):
        if filled + len(batch) > total:
            raise ValueError(f"write_outputs got more than total={total} samples")
        output[filled:filled + len(batch)] = batch
        filled += len(batch)
    if filled != total:
        raise ValueError(f"write_outputs got {filled} samples, not total={total}")
    output.flush()
    del output  # unmap before the rename


def _assemble_npy(temporary: Path, first: np.ndarray, arrays: Iterator[np.ndarray]) -> None:
    """Unknown length: spill raw rows to a scratch file, then copy them into a sized .npy."""
    sample_shape, dtype = first.shape[1:], first.dtype
    count = 0
    with tempfile.TemporaryFile(dir=temporary.parent) as spill:
        for batch in _same_kind([first], arrays, sample_shape, dtype):
            spill.write(np.ascontiguousarray(batch).tobytes())
            count += len(batch)
        spill.seek(0)
        output = np.lib.format.open_memmap(temporary, mode="w+", dtype=dtype,
                                           shape=(count, *sample_shape))
        flat = output.reshape(-1)
        step = max(1, COPY_BLOCK_BYTES // dtype.itemsize)
        for start in range(0, flat.size, step):
            block = np.fromfile(spill, dtype=dtype, count=min(step, flat.size - start))
            flat[start:start + len(block)] = block
        output.flush()
        del flat, output


def _same_kind(
    head: list[np.ndarray], rest: Iterator[np.ndarray], sample_shape: tuple, dtype: np.dtype
) -> Iterator[np.ndarray]:
    yield from head
    for batch in rest:
        batch = np.asarray(batch)
        if batch.shape[1:] != sample_shape:
            raise ValueError(f"output batches changed shape: {batch.shape[1:]} vs {sample_shape}")
        yield batch.astype(dtype, copy=False)
