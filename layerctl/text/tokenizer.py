"""Keras's classic `Tokenizer`: words (or characters) to integer ids, and its vocabulary file.

Semantics follow `keras.preprocessing.text.Tokenizer` (Keras 2; Keras 3 dropped it): text is
lower-cased, then every character of `filters` becomes `split`, then it is split on `split` and
empty pieces are dropped; with `char_level=True` every character of the (lower-cased) text is a
token and `filters` do not apply. Index 1 is the most frequent token, ties broken by first
appearance; 0 is never assigned (padding). With `oov_token`, that token takes index 1 and unknown
tokens map to it; `num_words` keeps only ids below `num_words` (the rest become the OOV id, or are
dropped without an `oov_token`).

One deliberate difference: when `oov_token` also occurs in the texts, Keras gives it a second,
later index and leaves index 1 unused; here it keeps index 1.

Speed: a block of many lines is tokenized with a few whole-block string operations (`lower`,
`translate`, `split`) and ids come from `dict.get` mapped over the tokens at C speed; the exact
line-by-line rules are used only when the block contains whitespace other than the separators
(Keras splits on `split` alone, so "a\\xa0b" stays one token).
"""

from __future__ import annotations

import itertools
import json
import operator
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from layerctl.errors import DataError, Location
from layerctl.text.sequences import FlatSequences

DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
# Every character for which str.isspace() is true: what str.split() with no argument splits on.
UNICODE_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
VOCABULARY_FORMAT = "layerctl.vocabulary"
DROPPED = -1  # id of a token that is not kept (unknown or beyond num_words, and no oov_token)


def text_to_word_sequence(
    text: str, filters: str = DEFAULT_FILTERS, lower: bool = True, split: str = " "
) -> list[str]:
    """Keras's `text_to_word_sequence`: lower-case, filters -> split, split, drop empties."""
    if lower:
        text = text.lower()
    text = text.translate(str.maketrans(dict.fromkeys(filters, split)))
    return [word for word in text.split(split) if word]


class Tokenizer:
    """Counts tokens, assigns ids by frequency, and turns texts into id sequences."""

    def __init__(
        self,
        num_words: int | None = None,
        filters: str = DEFAULT_FILTERS,
        lower: bool = True,
        split: str = " ",
        char_level: bool = False,
        oov_token: str | None = None,
    ) -> None:
        self.num_words = num_words
        self.filters = filters
        self.lower = lower
        self.split = split
        self.char_level = char_level
        self.oov_token = oov_token
        self._counts = TokenCounts()
        self.document_count = 0
        self.word_index: dict[str, int] = {}
        self._lookup: dict[str, int] | None = None
        # Lines are split on "\n" before filtering, so "\n" is never mapped in the table.
        self._table = str.maketrans(dict.fromkeys(filters.replace("\n", ""), split))
        self._byte_table = None
        if filters.isascii() and len(split) == 1 and split.isascii():
            ascii_filters = filters.replace("\n", "").encode()
            self._byte_table = bytes.maketrans(ascii_filters, split.encode() * len(ascii_filters))
        others = sorted(set(UNICODE_WHITESPACE) - set(filters) - {split, "\n"})
        self._other_space = re.compile("[" + re.escape("".join(others)) + "]") if others else None
        self._ascii_other_space = [c for c in others if c.isascii()]

    # -- tokens ------------------------------------------------------------------------------

    def tokens_of_lines(self, block: str, count: int) -> tuple[Sequence[str], np.ndarray]:
        """Tokens of the `count` lines of `block` (separated by "\\n"), flat, with the number of
        tokens of each line."""
        if count == 0:
            return [], np.zeros(0, dtype=np.int64)
        if self.lower:
            block = block.lower()
        if self.char_level:
            lines = block.split("\n")
            return block.replace("\n", ""), _lengths(lines)
        filtered, data = self._filter(block)
        if self.split == " " and not self._has_other_space(block):
            # Only " " and "\n" separate words now, so the whole block splits at once and
            # each line's word count comes from the bytes.
            return filtered.split(), _words_per_line(data)
        lines = filtered.split("\n")
        per_line = [[word for word in line.split(self.split) if word] for line in lines]
        return list(itertools.chain.from_iterable(per_line)), _lengths(per_line)

    def tokens_of_texts(self, texts: Sequence[Any]) -> tuple[Sequence[str], np.ndarray]:
        """Tokens of each text (a string, or a list of tokens as Keras allows), flat."""
        if all(isinstance(text, str) for text in texts):
            if not self.char_level and "\n" in self.filters:
                # "\n" separates words anyway, so texts can travel as the lines of one block.
                joined = "\n".join(map(operator.methodcaller("replace", "\n", " "), texts))
                return self.tokens_of_lines(joined, len(texts))
            joined = "\n".join(texts)
            if joined.count("\n") == len(texts) - 1:
                return self.tokens_of_lines(joined, len(texts))
        per_text = [self._tokens_of_one(text) for text in texts]
        return list(itertools.chain.from_iterable(per_text)), _lengths(per_text)

    def _tokens_of_one(self, text: Any) -> list[str]:
        if self.char_level or isinstance(text, list):
            if self.lower:
                text = [t.lower() for t in text] if isinstance(text, list) else text.lower()
            return list(text)
        return text_to_word_sequence(text, self.filters, self.lower, self.split)

    def _filter(self, block: str) -> tuple[str, bytes]:
        """`block` with every filter character replaced by `split`, as text and UTF-8."""
        if block.isascii():
            filtered = block.translate(self._table)
            return filtered, filtered.encode("ascii")
        if self._byte_table is None:
            filtered = block.translate(self._table)
            return filtered, filtered.encode("utf-8", "surrogatepass")
        # str.translate is slow beyond ASCII; the filters are ASCII, and in UTF-8 an ASCII
        # byte is always that character, so translating the bytes is exact.
        data = block.encode("utf-8", "surrogatepass").translate(self._byte_table)
        return data.decode("utf-8", "surrogatepass"), data

    def _has_other_space(self, block: str) -> bool:
        if self._other_space is None:
            return False
        if block.isascii():
            return any(c in block for c in self._ascii_other_space)
        return self._other_space.search(block) is not None

    # -- vocabulary --------------------------------------------------------------------------

    def fit_tokens(self, tokens: Sequence[str], documents: int) -> None:
        """Count `tokens` (from `documents` texts) towards the vocabulary."""
        self.fit_and_number(tokens, documents)

    def fit_and_number(self, tokens: Sequence[str], documents: int) -> np.ndarray:
        """Count `tokens` and return, for each, its position in first-appearance order: a
        provisional id that `counting_order()` turns into the final one once all is counted."""
        self.document_count += documents
        self._lookup = None
        return self._counts.add(tokens)

    @property
    def word_counts(self) -> dict[str, int]:
        """Token -> count, in first-appearance order (Keras's `word_counts`)."""
        return self._counts.as_dict()

    @word_counts.setter
    def word_counts(self, counts: dict[str, int]) -> None:
        self._counts = TokenCounts(counts)

    def fit_on_texts(self, texts: Iterable[Any]) -> None:
        """Keras's `fit_on_texts`: count every token, then rebuild `word_index`."""
        texts = list(texts)
        tokens, _ = self.tokens_of_texts(texts)
        self.fit_tokens(tokens, len(texts))
        self.build_index()

    def counting_order(self) -> np.ndarray:
        """For each counted token, in first-appearance order, its id in `word_index`."""
        counts = self._counts.counts
        order = np.argsort(-counts, kind="stable")  # ties keep first appearance, as in Keras
        ids = np.empty(len(counts), dtype=np.int64)
        first = 1
        if self.oov_token is not None:
            first = 2
            position = self._counts.position.get(self.oov_token)
            if position is not None:  # the OOV token keeps index 1; the others close up
                order = order[order != position]
                ids[position] = 1
        ids[order] = np.arange(first, first + len(order))
        return ids

    def build_index(self) -> None:
        """`word_index` from the counts: by decreasing count, ties by first appearance."""
        ids = self.counting_order()
        self.word_index = {} if self.oov_token is None else {self.oov_token: 1}
        self.word_index.update(zip(self._counts.position, ids.tolist(), strict=True))
        self.word_index = dict(sorted(self.word_index.items(), key=operator.itemgetter(1)))
        self._lookup = None

    @property
    def index_word(self) -> dict[int, str]:
        return {index: word for word, index in self.word_index.items()}

    @property
    def oov_index(self) -> int | None:
        return None if self.oov_token is None else self.word_index.get(self.oov_token, 1)

    def kept_ids(self, ids: np.ndarray) -> np.ndarray:
        """Apply `num_words`: ids at or above it become the OOV id, or DROPPED without one."""
        if not self.num_words:
            return ids
        replacement = DROPPED if self.oov_index is None else self.oov_index
        return np.where(ids >= self.num_words, replacement, ids)

    def cut_count(self) -> int:
        """Occurrences of counted tokens that `num_words` turns into the OOV id or drops."""
        if not self.num_words or not len(self._counts):
            return 0
        return int(self._counts.counts[self.counting_order() >= self.num_words].sum())

    # -- ids ---------------------------------------------------------------------------------

    def encode_tokens(self, tokens: Sequence[str]) -> np.ndarray:
        """Ids of `tokens` (int64); unknown or cut tokens are the OOV id or DROPPED."""
        if self._lookup is None:
            words = list(self.word_index)
            kept = self.kept_ids(np.fromiter(self.word_index.values(), np.int64, len(words)))
            self._lookup = dict(zip(words, kept.tolist(), strict=True))
        missing = DROPPED if self.oov_index is None else self.oov_index
        found = map(self._lookup.get, tokens, itertools.repeat(missing))
        return np.fromiter(found, dtype=np.int64, count=len(tokens))

    def texts_to_flat(self, texts: Iterable[Any]) -> FlatSequences:
        """Id sequences of `texts` in the flat form that `pad_sequences` pads fastest."""
        tokens, lengths = self.tokens_of_texts(list(texts))
        return drop_dropped(self.encode_tokens(tokens).astype(np.int32), lengths)

    def texts_to_sequences(self, texts: Iterable[Any]) -> list[list[int]]:
        """Keras's `texts_to_sequences`: one list of ids per text."""
        return self.texts_to_flat(texts).tolist()

    # -- vocabulary file ---------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        return {
            "num_words": self.num_words,
            "filters": self.filters,
            "lower": self.lower,
            "split": self.split,
            "char_level": self.char_level,
            "oov_token": self.oov_token,
        }

    def to_json(self) -> str:
        """The vocabulary file: settings, counts in first-appearance order, and the index."""
        return json.dumps(
            {
                "format": VOCABULARY_FORMAT,
                "version": 1,
                "config": self.get_config(),
                "document_count": self.document_count,
                "word_counts": dict(self.word_counts),
                "word_index": self.word_index,
            },
            ensure_ascii=False,
            indent=None,
        )

    def save(self, path: str | Path) -> None:
        from layerctl.atomic import write_text_atomic

        write_text_atomic(path, self.to_json() + "\n")

    @classmethod
    def from_json(cls, text: str, source: str = "<vocabulary>") -> Tokenizer:
        """A tokenizer from a vocabulary file's text, validated strictly (see
        layerctl.text.vocabulary_file): DataError naming the first problem."""
        from layerctl.text.vocabulary_file import validate_vocabulary

        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(
                f"not a JSON vocabulary: {error.msg}", Location(source, error.lineno, error.colno)
            ) from None
        except RecursionError:
            raise DataError("not a JSON vocabulary: nested too deeply", Location(source)) from None
        if not isinstance(data, dict) or data.get("format") != VOCABULARY_FORMAT:
            raise DataError(
                "not a layerctl vocabulary file (no \"format\": \"layerctl.vocabulary\")",
                Location(source),
                hint="write one with `layerctl pad ... --vocab vocab.json`",
            )
        try:
            vocabulary = validate_vocabulary(data)
        except ValueError as error:
            raise DataError(f"malformed vocabulary file: {error}", Location(source)) from None
        tokenizer = cls(**vocabulary.config.model_dump())
        tokenizer.word_counts = dict(vocabulary.word_counts)
        tokenizer.document_count = vocabulary.document_count
        tokenizer.word_index = dict(vocabulary.word_index)
        return tokenizer

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        from layerctl.inputs import refuse_special

        refuse_special(path, DataError)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError("vocabulary file not found", Location(str(path)),
                            code="LC301") from None
        except (OSError, UnicodeDecodeError) as error:
            raise DataError(f"cannot read vocabulary: {error}", Location(str(path))) from None
        return cls.from_json(text, str(path))


class TokenCounts:
    """Counts of tokens in first-appearance order, kept as a dict token -> position plus an
    array of counts, so a block of tokens is counted and numbered at C speed."""

    def __init__(self, counts: dict[str, int] | None = None) -> None:
        counts = counts or {}
        self.position: dict[str, int] = dict(zip(counts, itertools.count()))
        self._counts = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))

    def __len__(self) -> int:
        return len(self.position)

    @property
    def counts(self) -> np.ndarray:
        return self._counts[: len(self.position)]

    def as_dict(self) -> dict[str, int]:
        return dict(zip(self.position, self.counts.tolist(), strict=True))

    def add(self, tokens: Sequence[str]) -> np.ndarray:
        """Count `tokens`; return the position of each."""
        ids = np.fromiter(
            map(self.position.get, tokens, itertools.repeat(-1)), np.int64, len(tokens)
        )
        unseen = np.flatnonzero(ids < 0)
        if len(unseen):
            # New tokens, in order of first appearance, take the next positions.
            unseen_tokens = list(map(tokens.__getitem__, unseen.tolist()))
            new_tokens = dict.fromkeys(unseen_tokens)
            self.position.update(zip(new_tokens, itertools.count(len(self.position))))
            ids[unseen] = np.fromiter(
                map(self.position.__getitem__, unseen_tokens), np.int64, len(unseen)
            )
        if len(self._counts) < len(self.position):
            grown = np.zeros(max(2 * len(self._counts), len(self.position), 1024), np.int64)
            grown[: len(self._counts)] = self._counts
            self._counts = grown
        self._counts[: len(self.position)] += np.bincount(ids, minlength=len(self.position))
        return ids


def drop_dropped(ids: np.ndarray, lengths: np.ndarray) -> FlatSequences:
    """Remove DROPPED ids and shorten their sequences accordingly."""
    dropped = ids == DROPPED
    if dropped.any():
        sequence_of = np.repeat(np.arange(len(lengths)), lengths)
        lengths = lengths - np.bincount(sequence_of[dropped], minlength=len(lengths))
        ids = ids[~dropped]
    return FlatSequences(ids, lengths)


def _words_per_line(data: bytes) -> np.ndarray:
    """Words on each "\n"-separated line of `data`, where " " and "\n" alone separate words."""
    chars = np.frombuffer(data, dtype=np.uint8)
    newline = chars == 10
    separator = newline | (chars == 32)
    starts = ~separator
    starts[1:] &= separator[:-1]
    word_starts = np.flatnonzero(starts)
    before_line_end = np.searchsorted(word_starts, np.flatnonzero(newline))
    return np.diff(before_line_end, prepend=0, append=len(word_starts))


def _lengths(parts: Sequence[Sequence[Any]]) -> np.ndarray:
    return np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
