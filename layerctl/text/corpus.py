"""Reading text inputs in bounded memory: line files, class folders, stdin, bundled datasets.

Everything arrives as `Block`s of at most a few megabytes: either many lines of one file (one
sample per line) or many whole files (one sample per file, from class folders). Reading is in
binary: a UTF-8 byte-order mark is dropped, CRLF and lone CR line ends become LF (lines are cut
only at line ends, which never fall inside a UTF-8 character), and invalid UTF-8 is either a
`DataError` located at `file:line` or replaced by U+FFFD (`errors="replace"`).
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from layerctl.errors import DataError, Location
from layerctl.inputs import refuse_special

BLOCK_BYTES = 4 << 20
BOM = b"\xef\xbb\xbf"
STDIN = "-"
ERROR_MODES = ("strict", "replace")


@dataclass(frozen=True)
class Block:
    """`count` samples: the "\\n"-separated lines of `text`, or the items of `texts`."""

    count: int
    text: str | None = None  # lines of a line file
    texts: list[str] | None = None  # whole files, one sample each
    labels: np.ndarray | None = None  # (count,) class index of each sample
    sources: list[str] | None = None  # the file of each of `texts`
    source: str = ""
    first_line: int = 1
    nbytes: int = 0  # bytes of input consumed, for progress
    continues: bool = False  # the last line goes on in the next block (a line cut in pieces)


@dataclass(frozen=True)
class ClassFiles:
    """The samples of class folders: class names (sorted), and each file with its label."""

    classes: list[str]
    files: list[tuple[Path, int]]
    empty_classes: list[str]


def decode(raw: bytes, source: str, errors: str, first_line: int = 1) -> str:
    """UTF-8 bytes (line ends already LF) -> text; strict errors name file, line and column."""
    try:
        return raw.decode("utf-8", errors)
    except UnicodeDecodeError as error:
        line = first_line + raw.count(b"\n", 0, error.start)
        line_start = raw.rfind(b"\n", 0, error.start) + 1
        column = len(raw[line_start : error.start].decode("utf-8", "replace")) + 1
        raise DataError(
            f"invalid UTF-8 (byte 0x{raw[error.start]:02x} at column {column})",
            Location(source, line),
            hint="convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8), "
            "or pass --errors replace to read bad bytes as U+FFFD",
        ) from None


def normalize_newlines(raw: bytes) -> bytes:
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return raw


def line_blocks(
    stream: BinaryIO, source: str, errors: str = "strict", block_bytes: int = BLOCK_BYTES,
    cut: bytes = b"",
) -> Iterator[Block]:
    """The lines of a binary stream, in blocks of about `block_bytes`. A longer line is cut
    after the last byte of `cut` (bytes that separate tokens, so no token is split) in each
    read, its pieces in blocks that `continue`; without such a byte it is one block. An empty
    stream has no lines; a final line needs no line end."""
    head = _read_at_least(stream, len(BOM))
    pending = [head[len(BOM) :] if head.startswith(BOM) else head]
    consumed, line = len(head), 1
    while True:
        data = stream.read(block_bytes)
        consumed += len(data)
        continues = False
        if data:
            # Cut after the last line end; a CR that ends the read may be half of a CRLF.
            end = max(data.rfind(b"\n"), data.rfind(b"\r", 0, len(data) - 1))
            if end < 0:
                end = max((data.rfind(byte) for byte in (cut[i : i + 1] for i in range(len(cut)))),
                          default=-1)
                if end < 0:
                    pending.append(data)
                    continue
                continues = True  # one long line: this piece ends between two tokens
            pending.append(data[: end + 1])
            raw, pending = b"".join(pending), [data[end + 1 :]]
        else:
            raw, pending = b"".join(pending), []
            if not raw:
                return
        raw = normalize_newlines(raw)
        raw = raw[:-1] if raw.endswith(b"\n") and not continues else raw
        text = decode(raw, source, errors, line)
        count = text.count("\n") + 1
        yield Block(count, text=text, source=source, first_line=line, nbytes=consumed,
                    continues=continues)
        line, consumed = line + count - continues, 0
        if not data:
            return


def _read_at_least(stream: BinaryIO, size: int) -> bytes:
    parts, got = [], 0
    while got < size:
        data = stream.read(size - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def read_document(path: Path, errors: str = "strict") -> tuple[str, int]:
    """One file as one sample: BOM dropped, line ends LF, one final line end removed.
    Returns the text and the number of bytes read."""
    raw = _read_bytes(path)
    size = len(raw)
    raw = normalize_newlines(raw[len(BOM) :] if raw.startswith(BOM) else raw)
    raw = raw[:-1] if raw.endswith(b"\n") else raw
    return decode(raw, str(path), errors), size


def _read_bytes(path: Path) -> bytes:
    refuse_special(path, DataError)  # a FIFO among a class folder's files would block
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError("no such file", Location(str(path)), code="LC301") from None
    except OSError as error:
        raise DataError(f"cannot read: {error.strerror}", Location(str(path))) from None


def open_lines(source: str, stdin: BinaryIO | None = None) -> BinaryIO:
    """A binary stream for a line file, or for standard input when `source` is "-"."""
    if source == STDIN:
        return stdin if stdin is not None else sys.stdin.buffer
    path = Path(source)
    if path.is_dir():
        raise DataError("is a folder", Location(source))
    refuse_special(path, DataError, source)
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise DataError(
            "no such file or folder", Location(source), hint=missing_hint(path), code="LC301"
        ) from None
    except OSError as error:
        raise DataError(f"cannot read: {error.strerror}", Location(source)) from None


def missing_hint(path: Path) -> str | None:
    from layerctl.suggest import missing_file_hint

    return missing_file_hint(path)


def class_files(folders: Sequence[str], shuffle: bool = False, seed: int = 0) -> ClassFiles:
    """Every non-hidden file under each class sub-folder (recursively) of `folders`, like
    Keras's `text_dataset_from_directory`: class names are the sub-folder names, sorted, and a
    label is the index of its class. With `shuffle`, files come in a seeded random order."""
    by_class: dict[str, list[Path]] = {}
    for folder in map(Path, folders):
        subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not _hidden(p))
        if not subfolders:
            raise DataError(
                "has no class sub-folders",
                Location(str(folder)),
                hint="put each class's files in its own sub-folder, or pass the text files "
                "themselves (one sample per line)",
            )
        for subfolder in subfolders:
            by_class.setdefault(subfolder.name, []).extend(_walk_files(subfolder))
    classes = sorted(by_class)
    files = [(path, label) for label, name in enumerate(classes) for path in by_class[name]]
    if shuffle:
        random.Random(seed).shuffle(files)
    empty = [name for name in classes if not by_class[name]]
    return ClassFiles(classes, files, empty)


def _hidden(path: Path) -> bool:
    return path.name.startswith(".")


def _walk_files(folder: Path) -> list[Path]:
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root) / n for n in sorted(names) if not n.startswith("."))
    return found


def document_blocks(
    files: Sequence[tuple[Path, int]], errors: str = "strict", block_bytes: int = BLOCK_BYTES
) -> Iterator[Block]:
    """Files as samples, grouped in blocks of about `block_bytes`."""
    texts: list[str] = []
    group: list[tuple[Path, int]] = []
    size = 0
    for path, label in files:
        text, nbytes = read_document(path, errors)
        texts.append(text)
        group.append((path, label))
        size += nbytes
        if size >= block_bytes:
            yield _document_block(texts, group, size)
            texts, group, size = [], [], 0
    if texts:
        yield _document_block(texts, group, size)


def _document_block(texts: list[str], group: list[tuple[Path, int]], size: int) -> Block:
    labels = np.array([label for _, label in group], dtype=np.int32)
    sources = [str(path) for path, _ in group]
    return Block(len(texts), texts=texts, labels=labels, sources=sources, nbytes=size)


def input_size(sources: Sequence[str]) -> int | None:
    """Total bytes of the inputs (for a progress bar), or None when unknown (stdin)."""
    total = 0
    for source in sources:
        if source == STDIN:
            return None
        path = Path(source)
        if path.is_file():
            total += path.stat().st_size
        elif path.is_dir():
            total += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return total
