"""Text inputs -> one padded array (`layerctl pad`), in memory bounded by the output.

The text is read and tokenized once. While a vocabulary is being counted, each token gets a
provisional id (its first-appearance position) and only the kept part of each sequence
(`maxlen`, as `truncating` says) is stored; once everything is counted, one table lookup turns
provisional ids into final ones. When tokens may be *dropped* (a new vocabulary with
`num_words` and no `oov_token`), what is kept depends on the final vocabulary, so the
provisional ids of whole sequences go to a temporary file (4 bytes a token, on disk rather
than in memory) and are renumbered, dropped and truncated block by block at the end.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np

from layerctl.errors import DataError, Location, Problem
from layerctl.text import corpus
from layerctl.text.sequences import FlatSequences
from layerctl.text.tokenizer import DROPPED, Tokenizer, drop_dropped

Progress = Callable[[int], None]


@dataclass(frozen=True)
class PadOptions:
    maxlen: int | None = None
    dtype: str = "int32"
    padding: str = "pre"
    truncating: str = "pre"
    value: float = 0.0
    errors: str = "strict"
    shuffle: bool = True  # class folders: files in a seeded random order, as Keras does
    seed: int = 0


@dataclass
class PadResult:
    x: np.ndarray
    y: np.ndarray | None
    classes: list[str] | None
    lengths: np.ndarray  # tokens of each sample before truncation
    tokenizer: Tokenizer | None
    out_of_vocabulary: int = 0  # tokens that became the OOV id or were dropped
    empty_classes: list[str] = field(default_factory=list)
    bytes_read: int = 0


@dataclass
class _Plan:
    """Where the samples come from."""

    blocks: Callable[[], Iterator[corpus.Block]]
    classes: list[str] | None = None
    empty_classes: list[str] = field(default_factory=list)


def pad_corpus(
    inputs: Sequence[str],
    tokenizer: Tokenizer | None,
    options: PadOptions,
    *,
    fit: bool = True,
    dataset: str | None = None,
    stdin: BinaryIO | None = None,
    progress: Progress | None = None,
) -> PadResult:
    """Tokenize (or, with `tokenizer=None`, parse integers from) the inputs and pad them.

    `fit=True` counts a new vocabulary into `tokenizer`; `fit=False` applies its existing one.
    """
    plan = _plan(inputs, dataset, options, stdin, _cut_bytes(tokenizer))
    rows = _Rows(options.maxlen, options.truncating)
    progress = progress or (lambda nbytes: None)
    unknown = 0  # tokens that became the OOV id or were dropped
    if tokenizer is None:
        encode = _integers
    elif not fit:
        encode = partial(_encoded, tokenizer)
    else:
        encode = partial(_numbered, tokenizer)
        if tokenizer.num_words and tokenizer.oov_token is None and options.maxlen is not None:
            rows.spool = tempfile.TemporaryFile()
    try:
        for block in plan.blocks():
            sequences = encode(block)
            if tokenizer is not None and not fit:
                unknown += _lost(tokenizer, sequences)
            rows.add(sequences, block)
            progress(block.nbytes)
        if tokenizer is not None and fit:
            tokenizer.build_index()
            rows.renumber(tokenizer.kept_ids(tokenizer.counting_order()))
            unknown = tokenizer.cut_count()
    finally:
        rows.close()
    x = rows.assemble(options)
    return PadResult(
        x, rows.labels(), plan.classes, rows.full_lengths(), tokenizer,
        unknown, plan.empty_classes, rows.bytes_read,
    )


def _tokens(tokenizer: Tokenizer, block: corpus.Block):
    if block.text is not None:
        return tokenizer.tokens_of_lines(block.text, block.count)
    return tokenizer.tokens_of_texts(block.texts)


def _encoded(tokenizer: Tokenizer, block: corpus.Block) -> FlatSequences:
    """Ids from an existing vocabulary; DROPPED ones are removed by `_Rows.add`."""
    tokens, lengths = _tokens(tokenizer, block)
    return FlatSequences(tokenizer.encode_tokens(tokens).astype(np.int32), lengths)


def _numbered(tokenizer: Tokenizer, block: corpus.Block) -> FlatSequences:
    """Provisional ids while counting a new vocabulary."""
    tokens, lengths = _tokens(tokenizer, block)
    ids = tokenizer.fit_and_number(tokens, block.count - block.continues)
    return FlatSequences(ids.astype(np.int32), lengths)


def _lost(tokenizer: Tokenizer, sequences: FlatSequences) -> int:
    lost = sequences.values == DROPPED
    if tokenizer.oov_index is not None:
        lost |= sequences.values == tokenizer.oov_index
    return int(np.count_nonzero(lost))


def _integers(block: corpus.Block) -> FlatSequences:
    samples = block.text.split("\n") if block.text is not None else block.texts
    per_sample = list(map(str.split, samples))
    lengths = np.fromiter(map(len, per_sample), np.int64, len(per_sample))
    try:
        values = np.fromiter(
            (int(token) for tokens in per_sample for token in tokens), np.int64, int(lengths.sum())
        )
    except (ValueError, OverflowError):
        raise _locate_bad_integer(block, per_sample) from None
    return FlatSequences(values, lengths)


def _locate_bad_integer(block: corpus.Block, per_sample: list[list[str]]) -> DataError:
    for index, tokens in enumerate(per_sample):
        for token in tokens:
            try:
                np.int64(int(token))
            except (ValueError, OverflowError):
                if block.text is not None:
                    where = Location(block.source, block.first_line + index)
                else:
                    where = Location(block.sources[index])
                return DataError(
                    f"{token[:40]!r} is not an integer (64-bit)", where,
                    hint="--ints expects whitespace-separated integers; drop --ints to tokenize",
                )
    return DataError("invalid integer", Location(block.source))


class _Rows:
    """Kept parts of the sequences, block by block, until they are padded into one array."""

    def __init__(self, maxlen: int | None, truncating: str) -> None:
        self.maxlen, self.truncating = maxlen, truncating
        self.parts: list[FlatSequences] = []
        self.lengths: list[np.ndarray] = []  # before truncation
        self.label_parts: list[np.ndarray] = []
        self.bytes_read = 0
        self.spool: BinaryIO | None = None  # whole sequences' ids, renumbered at the end
        self.continuing = False  # the last row goes on in the next block

    def add(self, sequences: FlatSequences, block: corpus.Block) -> None:
        continuing, self.continuing = self.continuing, block.continues
        if self.spool is not None:
            self.spool.write(sequences.values.astype(np.int32).tobytes())
            lengths = sequences.lengths
            if continuing:  # the spool is contiguous: the first row extends the last one
                self.lengths[-1] = self.lengths[-1].copy()
                self.lengths[-1][-1] += lengths[0]
                lengths = lengths[1:]
            if len(lengths) or not continuing:
                self.lengths.append(lengths)
        else:
            self._keep(drop_dropped(sequences.values, sequences.lengths), continuing)
        if block.labels is not None:
            self.label_parts.append(block.labels)
        self.bytes_read += block.nbytes

    def _keep(self, sequences: FlatSequences, continuing: bool = False) -> None:
        lengths = sequences.lengths
        if continuing:  # join the previous block's last row (already truncated) and this first
            previous = self.parts.pop()
            sequences = FlatSequences(
                np.concatenate([previous.values, sequences.values]),
                np.concatenate([previous.lengths[:-1], previous.lengths[-1:] + lengths[:1],
                                lengths[1:]]))
            self.lengths[-1] = self.lengths[-1].copy()
            self.lengths[-1][-1] += lengths[0]
            lengths = lengths[1:]
        if len(lengths) or not continuing:
            self.lengths.append(lengths)
        if self.maxlen is not None:
            sequences = sequences.truncate(self.maxlen, self.truncating)
        self.parts.append(sequences)

    def renumber(self, table: np.ndarray) -> None:
        """Provisional ids -> final ids (or DROPPED, then removed)."""
        if self.spool is None:
            # Nothing can be dropped here unless maxlen is None, so nothing was cut yet.
            self.parts = [drop_dropped(table[p.values], p.lengths) for p in self.parts]
            if self.maxlen is None:
                self.lengths = [part.lengths for part in self.parts]
            return
        self.spool.seek(0)
        spooled, self.lengths = self.lengths, []
        for lengths in spooled:
            ids = np.fromfile(self.spool, dtype=np.int32, count=int(lengths.sum()))
            self._keep(drop_dropped(table[ids], lengths))

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()
            self.spool = None

    def full_lengths(self) -> np.ndarray:
        return np.concatenate(self.lengths) if self.lengths else np.zeros(0, np.int64)

    def labels(self) -> np.ndarray | None:
        return np.concatenate(self.label_parts) if self.label_parts else None

    def assemble(self, options: PadOptions) -> np.ndarray:
        count = sum(len(part) for part in self.parts)
        if count == 0:
            raise DataError("no samples: every input is empty")
        width = options.maxlen
        if width is None:
            width = max(int(part.lengths.max(initial=0)) for part in self.parts)
        _check_fits(self.parts, options.dtype)
        x = np.empty((count, width), dtype=options.dtype)
        row = 0
        while self.parts:  # free each part as soon as it is padded
            part = self.parts.pop(0)
            x[row : row + len(part)] = part.pad(
                width, options.dtype, options.padding, "pre", options.value
            )
            row += len(part)
        return x


def _check_fits(parts: list[FlatSequences], dtype: str) -> None:
    """Refuse values that `dtype` cannot hold exactly, instead of wrapping or rounding them."""
    nonempty = [part.values for part in parts if len(part.values)]
    if not nonempty:
        return
    low = min(int(v.min()) for v in nonempty)
    high = max(int(v.max()) for v in nonempty)
    kind = np.dtype(dtype)
    if kind.kind in "iu":
        info = np.iinfo(kind)
        bad = high if high > info.max else low if low < info.min else None
    else:
        exact = 2 ** (np.finfo(kind).nmant + 1)
        bad = high if high > exact else low if low < -exact else None
    if bad is not None:
        raise DataError(
            f"value {bad} does not fit --dtype {dtype} exactly",
            hint="choose a wider --dtype (e.g. int32), or fewer words with --num-words",
        )


def _cut_bytes(tokenizer: Tokenizer | None) -> bytes:
    """Bytes at which a line longer than a block may be cut without splitting a token: ASCII
    separators (whitespace for integers; the split character and filters for words; any ASCII
    for characters)."""
    if tokenizer is None:
        return b" \t"
    if tokenizer.char_level:
        return bytes(range(0x20, 0x7F))
    separators = {tokenizer.split, *tokenizer.filters} - {"\n", "\r"}
    return "".join(sorted(c for c in separators if len(c) == 1 and c.isascii())).encode()


def _plan(
    inputs: Sequence[str], dataset: str | None, options: PadOptions, stdin: BinaryIO | None,
    cut: bytes = b"",
) -> _Plan:
    if dataset is not None:
        from layerctl.text.languages import load_dataset

        words, labels, classes = load_dataset(dataset)
        text = "\n".join(words)
        block = corpus.Block(len(words), text=text, labels=labels, source=dataset,
                             nbytes=len(text.encode("utf-8")))
        return _Plan(lambda: iter([block]), classes)
    _check_exist(inputs)
    folders = [source for source in inputs if source != corpus.STDIN and Path(source).is_dir()]
    if folders and len(folders) != len(inputs):
        raise DataError(
            "cannot mix class folders with text files or stdin",
            hint="pad them separately, or move the files into class sub-folders",
        )
    if folders:
        found = corpus.class_files(folders, options.shuffle, options.seed)
        return _Plan(
            lambda: corpus.document_blocks(found.files, options.errors),
            found.classes, found.empty_classes,
        )
    if inputs.count(corpus.STDIN) > 1:
        raise DataError("standard input ('-') can be read only once")
    return _Plan(lambda: _line_file_blocks(inputs, options.errors, stdin, cut))


def _check_exist(inputs: Sequence[str]) -> None:
    problems = []
    for source in inputs:
        if source != corpus.STDIN and not Path(source).exists():
            hint = corpus.missing_hint(Path(source))
            problems.append(Problem("no such file or folder", Location(source), hint, code="LC301"))
    if problems:
        raise DataError(problems=problems)


def _line_file_blocks(
    inputs: Sequence[str], errors: str, stdin: BinaryIO | None, cut: bytes = b""
) -> Iterator[corpus.Block]:
    for source in inputs:
        stream = corpus.open_lines(source, stdin)
        name = "<stdin>" if source == corpus.STDIN else source
        try:
            yield from corpus.line_blocks(stream, name, errors, cut=cut)
        finally:
            if source != corpus.STDIN:
                stream.close()
