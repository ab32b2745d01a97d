"""Tokenizer: the classic Keras `Tokenizer` semantics, by hand and against a plain reference.

Keras 3 has no Tokenizer, so expectations are hand-built from the Keras 2 documentation and
behaviour: lower-case, filters become `split`, split, drop empties; index 1 the most frequent
token, ties by first appearance, 0 never used; `oov_token` at 1; `num_words` keeps ids below it.
`reference_sequences` restates those rules one text and one token at a time, and property tests
check the block-at-a-time implementation against it on random Unicode text.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from layerctl.errors import DataError
from layerctl.text.tokenizer import (
    DEFAULT_FILTERS,
    UNICODE_WHITESPACE,
    Tokenizer,
    text_to_word_sequence,
)

TEXTS = ["The cat sat on the mat.", "The dog ate my homework!", "", "A cat, a DOG; a bird?"]


def reference_sequences(texts, num_words=None, lower=True, char_level=False, oov_token=None):
    """The Keras 2 algorithm, restated plainly: (word_index, sequences)."""
    def tokens(text):
        if char_level:
            return list(text.lower() if lower else text)
        if lower:
            text = text.lower()
        for character in DEFAULT_FILTERS:
            text = text.replace(character, " ")
        return [piece for piece in text.split(" ") if piece]

    counts = {}
    for text in texts:
        for token in tokens(text):
            counts[token] = counts.get(token, 0) + 1
    ranked = sorted(counts, key=lambda token: -counts[token])  # stable: first appearance
    vocabulary = ([oov_token] if oov_token else []) + [t for t in ranked if t != oov_token]
    index = {token: i + 1 for i, token in enumerate(vocabulary)}
    sequences = []
    for text in texts:
        ids = []
        for token in tokens(text):
            i = index.get(token)
            if i is not None and not (num_words and i >= num_words):
                ids.append(i)
            elif oov_token is not None:
                ids.append(index[oov_token])
        sequences.append(ids)
    return index, sequences


def test_text_to_word_sequence_defaults():
    words = ["hello", "world", "it's", "9", "30"]
    assert text_to_word_sequence("Hello, World! It's 9:30.") == words
    assert text_to_word_sequence("a--b\tc\nd") == ["a", "b", "c", "d"]
    assert text_to_word_sequence("A\xa0B") == ["a\xa0b"]  # Keras splits on " " only
    assert text_to_word_sequence("x,y", filters="", lower=False) == ["x,y"]
    assert text_to_word_sequence("a,b c", split=",") == ["a", "b c"]


def test_index_by_frequency_then_first_appearance():
    tokenizer = Tokenizer()
    tokenizer.fit_on_texts(TEXTS)
    # the: 3, a: 3, cat: 2, dog: 2; "the" appears before "a", "cat" before "dog".
    assert list(tokenizer.word_index)[:4] == ["the", "a", "cat", "dog"]
    assert tokenizer.word_index["the"] == 1 and 0 not in tokenizer.word_index.values()
    assert tokenizer.word_counts == {"the": 3, "cat": 2, "sat": 1, "on": 1, "mat": 1, "dog": 2,
                                     "ate": 1, "my": 1, "homework": 1, "a": 3, "bird": 1}
    assert tokenizer.document_count == 4
    assert tokenizer.texts_to_sequences(["the cat", "unknown the", ""]) == [[1, 3], [1], []]
    assert tokenizer.index_word[2] == "a"


def test_oov_token_takes_index_one():
    tokenizer = Tokenizer(oov_token="<unk>")
    tokenizer.fit_on_texts(TEXTS)
    assert tokenizer.word_index["<unk>"] == 1 and tokenizer.word_index["the"] == 2
    assert tokenizer.texts_to_sequences(["the zebra cat"]) == [[2, 1, 4]]


def test_num_words_keeps_ids_below_it():
    tokenizer = Tokenizer(num_words=3)
    tokenizer.fit_on_texts(TEXTS)
    assert len(tokenizer.word_index) == 11  # the index keeps every word, as in Keras
    assert tokenizer.texts_to_sequences(["the cat a dog"]) == [[1, 2]]  # cat=3, dog=4 dropped
    with_oov = Tokenizer(num_words=3, oov_token="<unk>")
    with_oov.fit_on_texts(TEXTS)
    assert with_oov.texts_to_sequences(["the cat a dog"]) == [[2, 1, 1, 1]]


def test_oov_token_seen_in_texts_keeps_index_one():
    # A deliberate difference: Keras would give "<unk>" a second, later index.
    tokenizer = Tokenizer(oov_token="x")
    tokenizer.fit_on_texts(["y y x", "z"])
    assert tokenizer.word_index == {"x": 1, "y": 2, "z": 3}
    assert tokenizer.texts_to_sequences(["x w y"]) == [[1, 1, 2]]


def test_char_level_keeps_every_character():
    tokenizer = Tokenizer(char_level=True)
    tokenizer.fit_on_texts(["Ab a!", "b"])
    assert tokenizer.word_index == {"a": 1, "b": 2, " ": 3, "!": 4}
    assert tokenizer.texts_to_sequences(["AB?", "a\nb"]) == [[1, 2], [1, 2]]  # unknown: dropped


def test_lower_false_and_unicode():
    tokenizer = Tokenizer(lower=False)
    tokenizer.fit_on_texts(["Ärger ärger ÄRGER", "Σίσυφος ΣΊΣΥΦΟΣ"])
    assert tokenizer.word_index["Ärger"] != tokenizer.word_index["ärger"]
    lowered = Tokenizer()
    lowered.fit_on_texts(["ÄRGER Ärger", "ΣΊΣΥΦΟΣ", "İstanbul"])
    # str.lower, as Keras: final sigma, and the dotted capital I becomes two characters.
    assert list(lowered.word_index) == ["ärger", "σίσυφος", "i̇stanbul"]


def test_texts_can_be_token_lists():
    tokenizer = Tokenizer()
    tokenizer.fit_on_texts([["Hello", "world"], "hello there"])
    assert tokenizer.word_index == {"hello": 1, "world": 2, "there": 3}


def test_tokens_of_lines_handles_empty_and_odd_whitespace():
    tokenizer = Tokenizer()
    tokens, lengths = tokenizer.tokens_of_lines("a b\n\nc\x0bd e", 3)
    assert list(tokens) == ["a", "b", "c\x0bd", "e"] and lengths.tolist() == [2, 0, 2]
    tokens, lengths = tokenizer.tokens_of_lines("", 1)
    assert list(tokens) == [] and lengths.tolist() == [0]
    assert tokenizer.tokens_of_lines("", 0)[1].tolist() == []


def test_whitespace_table_is_every_isspace_character():
    found = "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())
    assert found == UNICODE_WHITESPACE


def test_vocabulary_json_round_trip(tmp_path):
    tokenizer = Tokenizer(num_words=5, oov_token="<unk>", char_level=False)
    tokenizer.fit_on_texts(TEXTS)
    path = tmp_path / "vocab.json"
    tokenizer.save(path)
    loaded = Tokenizer.load(path)
    assert loaded.word_index == tokenizer.word_index
    assert loaded.word_counts == tokenizer.word_counts
    assert loaded.get_config() == tokenizer.get_config()
    assert loaded.texts_to_sequences(TEXTS) == tokenizer.texts_to_sequences(TEXTS)


def test_vocabulary_file_errors(tmp_path):
    with pytest.raises(DataError, match="vocabulary file not found"):
        Tokenizer.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not a JSON vocabulary") as error:
        Tokenizer.load(bad)
    assert error.value.problems[0].location.line == 1
    bad.write_text('{"word_index": {}}')
    with pytest.raises(DataError, match="not a layerctl vocabulary"):
        Tokenizer.load(bad)
    bad.write_text('{"format": "layerctl.vocabulary", "config": {"bogus": 1}, "word_index": {}}')
    with pytest.raises(DataError, match="malformed vocabulary"):
        Tokenizer.load(bad)


def test_fitting_twice_accumulates_like_keras():
    once, twice = Tokenizer(), Tokenizer()
    once.fit_on_texts(TEXTS + ["cat cat"])
    twice.fit_on_texts(TEXTS)
    twice.fit_on_texts(["cat cat"])
    assert once.word_index == twice.word_index and once.word_counts == twice.word_counts


def test_flat_and_list_forms_agree():
    tokenizer = Tokenizer(num_words=4)
    tokenizer.fit_on_texts(TEXTS)
    flat = tokenizer.texts_to_flat(TEXTS)
    assert flat.tolist() == tokenizer.texts_to_sequences(TEXTS)
    assert flat.values.dtype == np.int32  # the dtype pad_sequences pads fastest


ALPHABET = st.sampled_from(list("abcABCxyz ,.!-'\t\n\r\x0b\xa0\u2003é É Σσ İ日本") + [" ", " "])
TEXT = st.text(ALPHABET, max_size=40)


@settings(max_examples=400, deadline=None)
@given(texts=st.lists(TEXT, max_size=8), num_words=st.sampled_from([None, 2, 4]),
       oov_token=st.sampled_from([None, "<unk>", "a"]), lower=st.booleans(),
       char_level=st.booleans())
def test_matches_reference_on_random_text(texts, num_words, oov_token, lower, char_level):
    tokenizer = Tokenizer(num_words=num_words, oov_token=oov_token, lower=lower,
                          char_level=char_level)
    tokenizer.fit_on_texts(texts)
    index, sequences = reference_sequences(texts, num_words, lower, char_level, oov_token)
    assert tokenizer.word_index == index
    assert tokenizer.texts_to_sequences(texts) == sequences


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.text(ALPHABET.filter(lambda c: c not in "\r\n"), max_size=30),
                      min_size=1, max_size=10), char_level=st.booleans())
def test_line_blocks_match_texts(lines, char_level):
    # The streaming path (one block of lines) must tokenize exactly like text-by-text.
    tokenizer = Tokenizer(char_level=char_level)
    tokens, lengths = tokenizer.tokens_of_lines("\n".join(lines), len(lines))
    per_text = [tokenizer._tokens_of_one(line) for line in lines]
    assert lengths.tolist() == [len(t) for t in per_text]
    assert list(tokens) == [token for t in per_text for token in t]
