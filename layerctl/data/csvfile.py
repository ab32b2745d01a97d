"""Numeric CSV files: header detection, reading in bounded chunks, and located error messages.

A CSV here is comma-separated numbers, one sample per line, optionally with a header row (the
first non-blank row is a header when any of its cells is not a number). Blank lines are skipped.
Rows are read a chunk at a time and parsed by NumPy's C reader (`np.loadtxt` over the chunk's
lines), so memory stays bounded for files larger than RAM. When a chunk does not parse, its lines
are examined one by one to say exactly where and why: `file:line:col: could not convert 'abc' to
a number in column 'age'`. Lines are counted from 1, columns in characters from 1.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from layerctl.errors import DataError, Location, did_you_mean

LOAD_CHUNK_ROWS = 65536  # rows parsed per np.loadtxt call when loading a whole file


@dataclass(frozen=True)
class CsvLayout:
    """What the first row says: column names (None without a header) and the row width."""

    columns: list[str] | None
    width: int

    def column_name(self, index: int) -> str:
        """How messages name column `index` (0-based): its header name or its index."""
        if self.columns is not None:
            return f"'{self.columns[index]}'"
        return f"{index} (0-based; the file has no header)"


def is_number(cell: str) -> bool:
    """Whether `cell` is a number np.loadtxt accepts (Python's float() also takes '1_0')."""
    text = cell.strip()
    if not text or "_" in text:
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True


def _split(line: str) -> list[str]:
    return next(csv.reader([line]), [])


def _text_lines(path: Path, display: str) -> Iterator[tuple[int, str]]:
    """(line number, line without its newline) for every non-blank line."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield number, line.rstrip("\r\n")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{display} is not a text CSV file (byte {error.start} is not UTF-8)",
            hint="CSV data must be UTF-8 text: comma-separated numbers, one sample per line",
        ) from None


def read_layout(path: Path, display: str) -> CsvLayout:
    """The header (if any) and width from the first non-blank row; DataError when empty."""
    first = next(_text_lines(path, display), None)
    if first is None:
        raise DataError(f"{display} is empty", hint="expected comma-separated numbers")
    cells = _split(first[1])
    if all(is_number(cell) for cell in cells):
        return CsvLayout(columns=None, width=len(cells))
    return CsvLayout(columns=[cell.strip() for cell in cells], width=len(cells))


def iter_chunks(
    path: Path, display: str, layout: CsvLayout, chunk_rows: int
) -> Iterator[np.ndarray]:
    """float64 arrays of at most `chunk_rows` rows and `layout.width` columns, in file order."""
    lines = _text_lines(path, display)
    if layout.columns is not None:
        next(lines)  # the header
    empty = True
    while chunk := list(itertools.islice(lines, chunk_rows)):
        empty = False
        yield _parse(chunk, display, layout)
    if empty:
        raise DataError(f"{display} has a header but no data rows")


def _parse(chunk: list[tuple[int, str]], display: str, layout: CsvLayout) -> np.ndarray:
    texts = [text for _, text in chunk]
    try:
        table = np.loadtxt(
            texts, delimiter=",", quotechar='"', comments=None, dtype=np.float64, ndmin=2
        )
    except ValueError as error:
        _diagnose(chunk, display, layout)
        raise DataError(f"{display}: could not read numbers: {error}") from None
    if table.shape[1] != layout.width:
        _diagnose(chunk, display, layout)
        raise DataError(f"{display}: rows have {table.shape[1]} values, expected {layout.width}")
    return table


def _diagnose(chunk: list[tuple[int, str]], display: str, layout: CsvLayout) -> None:
    """Raise a located DataError for the first bad row of `chunk` (return if none is found)."""
    for number, text in chunk:
        cells = _split(text)
        if len(cells) != layout.width:
            expected = "the header has" if layout.columns is not None else "the first row has"
            raise DataError(
                f"row has {_values(len(cells))} but {expected} {layout.width}",
                Location(display, number),
                hint="every row needs the same number of comma-separated values",
            )
        for index, cell in enumerate(cells):
            if is_number(cell):
                continue
            where = Location(display, number, _field_start(text, index))
            name = layout.column_name(index)
            if not cell.strip():
                raise DataError(f"empty cell in column {name}", where,
                                hint="fill in missing values before training")
            raise DataError(f"could not convert '{cell.strip()}' to a number in column {name}",
                            where, hint="layerctl reads numeric columns only")


def _values(count: int) -> str:
    return "1 value" if count == 1 else f"{count} values"


def _field_start(line: str, index: int) -> int:
    """1-based character column where field `index` of a CSV line starts (quotes respected)."""
    field, quoted = 0, False
    for position, char in enumerate(line):
        if field == index:
            return position + 1
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            field += 1
    return len(line) + 1


def label_index(label: str | int | None, layout: CsvLayout, display: str) -> int | None:
    """The 0-based index of the label column; None when no label is named and none is 'label'."""
    columns = layout.columns
    if label is None:
        return columns.index("label") if columns is not None and "label" in columns else None
    if isinstance(label, int):
        if not -layout.width <= label < layout.width:
            raise DataError(f"{display}: label column index {label} is out of range for "
                            f"{layout.width} columns", hint="indexes start at 0")
        return label % layout.width
    if columns is None:
        raise DataError(f"{display} has no header row, so its columns have no names",
                        hint=f"give `label` as a 0-based column index instead of '{label}'")
    if label not in columns:
        close = did_you_mean(label, columns)
        listing = "columns: " + ", ".join(columns)
        raise DataError(f"{display} has no column '{label}'",
                        hint=f"{close} {listing}" if close else listing)
    if columns.count(label) > 1:
        raise DataError(f"{display} has {columns.count(label)} columns named '{label}'",
                        hint="give `label` as a 0-based column index")
    return columns.index(label)


def load_csv(
    path: Path, display: str, label: str | int | None, require_labels: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """The whole file as (x float64 (n, columns - 1), y (n,)); y is int64 when integral."""
    layout = read_layout(path, display)
    index = label_index(label, layout, display)
    if index is None and require_labels:
        where = ("columns: " + ", ".join(layout.columns) if layout.columns is not None
                 else "the file has no header; give a 0-based column index")
        raise DataError(f"{display}: no label column given",
                        hint=f"add `label: COLUMN` to the data source ({where})")
    table = np.concatenate(list(iter_chunks(path, display, layout, LOAD_CHUNK_ROWS)))
    if index is None:
        return table, None
    if layout.width == 1:
        raise DataError(f"{display} has only the label column; there are no inputs")
    labels = table[:, index]
    inputs = np.delete(table, index, axis=1)
    if np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
        labels = labels.astype(np.int64)
    return inputs, labels
