"""`layerctl pad` through the real command group, on the files users actually have.

Edge cases from the issue: empty lines, CRLF, a BOM, invalid UTF-8, a 10 MB line, an empty file,
a missing file, class folders with one empty class; plus stdin, --ints, vocabularies, the
bundled dataset, usage errors, and the line reader against Python's own universal newlines.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from layerctl.cli import cli
from layerctl.text import corpus
from layerctl.text.sequences import pad_sequences
from layerctl.text.tokenizer import Tokenizer


def run(*args, input=None):
    return CliRunner().invoke(cli, ["pad", *map(str, args)], input=input)


def error_text(result) -> str:
    """The one-line-per-problem report of a user error (exit code 1, on stderr)."""
    assert result.exit_code == 1, (result.output, result.exception)
    assert result.stdout == ""
    return result.stderr.strip()


def load(path):
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_word_level_like_keras(tmp_path):
    lines = ["The cat sat.", "The dog, the cat!", "", "A bird"]
    source = write(tmp_path / "a.txt", "\n".join(lines).encode() + b"\n")
    result = run(source, "-o", tmp_path / "out.npz", "--maxlen", 3, "--vocab",
                 tmp_path / "v.json")
    assert result.exit_code == 0, result.output
    tokenizer = Tokenizer()
    tokenizer.fit_on_texts(lines)
    expected = pad_sequences(tokenizer.texts_to_sequences(lines), maxlen=3)
    out = load(tmp_path / "out.npz")
    # x, and the record `train` keeps for `predict --text` (layerctl.text.record)
    assert list(out) == ["x", "text_pipeline"] and out["x"].tolist() == expected.tolist()
    assert out["x"].tolist() == [[1, 2, 3], [4, 1, 2], [0, 0, 0], [0, 5, 6]]
    assert Tokenizer.load(tmp_path / "v.json").word_index == tokenizer.word_index
    assert result.stdout == ""  # the summary goes to stderr
    assert "truncated" in result.stderr and "1 (25.0%)" in result.stderr


@pytest.mark.parametrize("options", [
    ["--num-words", "3"],  # drops tokens: ids are spooled and truncated at the end
    ["--num-words", "3", "--oov-token", "<unk>"],
    ["--padding", "post", "--truncating", "post", "--value", "-1"],
    ["--level", "char", "--no-lower"],
])
def test_options_match_tokenizer_and_pad_sequences(tmp_path, options):
    lines = ["a b c d e f", "a a b", "c", "", "f e d c b a x y z", "B A"]
    source = write(tmp_path / "a.txt", "\r\n".join(lines).encode())
    assert run(source, "-o", tmp_path / "x.npy", "--maxlen", 4, *options).exit_code == 0
    named = dict(zip(options[::2], options[1::2], strict=False))
    tokenizer = Tokenizer(num_words=int(named.get("--num-words", 0)) or None,
                          oov_token=named.get("--oov-token"), lower="--no-lower" not in options,
                          char_level=named.get("--level") == "char")
    tokenizer.fit_on_texts(lines)
    expected = pad_sequences(tokenizer.texts_to_sequences(lines), maxlen=4,
                             padding=named.get("--padding", "pre"),
                             truncating=named.get("--truncating", "pre"),
                             value=float(named.get("--value", 0)))
    assert np.load(tmp_path / "x.npy").tolist() == expected.tolist()


def test_empty_lines_crlf_and_bom(tmp_path):
    source = write(tmp_path / "a.txt", b"\xef\xbb\xbfhello world\r\n\r\nbye\rnow\n")
    assert run(source, "-o", tmp_path / "x.npy").exit_code == 0
    # BOM gone (not part of "hello"), CRLF and lone CR end lines, the empty line is a row.
    assert np.load(tmp_path / "x.npy").tolist() == [[1, 2], [0, 0], [0, 3], [0, 4]]


def test_invalid_utf8_is_located(tmp_path):
    source = write(tmp_path / "bad.txt", b"fine\nalso fine\nca\xfft\n")
    result = run(source, "-o", tmp_path / "x.npz")
    message = error_text(result)
    assert message.startswith(f"{source}:3: invalid UTF-8 (byte 0xff at column 3)")
    assert "--errors replace" in message
    assert not (tmp_path / "x.npz").exists() and list(tmp_path.iterdir()) == [source]
    result = run(source, "-o", tmp_path / "x.npz", "--errors", "replace", "--vocab",
                 tmp_path / "v.json")
    assert result.exit_code == 0, result.output
    assert "ca\ufffdt" in Tokenizer.load(tmp_path / "v.json").word_index


def test_ten_megabyte_line(tmp_path):
    words = [f"w{i % 1000}" for i in range(2_100_000)]  # over 10 MB on one line
    long_line = " ".join(words)
    source = write(tmp_path / "long.txt", ("short line\n" + long_line).encode())
    assert source.stat().st_size > 10_000_000
    result = run(source, "-o", tmp_path / "x.npz", "--maxlen", 5, "--truncating", "post")
    assert result.exit_code == 0, result.output
    x = load(tmp_path / "x.npz")["x"]
    tokenizer = Tokenizer()
    tokenizer.fit_on_texts(["short line", long_line])
    assert x.tolist() == [[0, 0, 0, 1001, 1002], [tokenizer.word_index[w] for w in words[:5]]]
    assert "2,100,000" in result.stderr  # the longest length is reported


def test_empty_and_missing_files(tmp_path):
    empty = write(tmp_path / "empty.txt", b"")
    assert "no samples" in error_text(run(empty, "-o", tmp_path / "x.npz"))
    other = write(tmp_path / "other.txt", b"one two\n")
    assert run(empty, other, "-o", tmp_path / "x.npz").exit_code == 0
    assert load(tmp_path / "x.npz")["x"].tolist() == [[1, 2]]
    message = error_text(run(tmp_path / "othr.txt", "-o", tmp_path / "y.npz"))
    assert message == (f"{tmp_path / 'othr.txt'}: no such file or folder; did you mean "
                       "'other.txt'? [LC301]")


def test_class_folders_with_an_empty_class(tmp_path):
    for name, texts in {"neg": ["bad film", "awful\n"], "pos": ["good film", "great"],
                        "zzz": []}.items():
        (tmp_path / "data" / name).mkdir(parents=True)
        for i, text in enumerate(texts):
            write(tmp_path / "data" / name / f"{i}.txt", text.encode())
    write(tmp_path / "data" / "pos" / ".hidden", b"ignored")
    result = run(tmp_path / "data", "-o", tmp_path / "x.npz", "--no-shuffle")
    assert result.exit_code == 0, result.output
    assert "class folder 'zzz' has no files" in result.stderr
    out = load(tmp_path / "x.npz")
    assert out["classes"].tolist() == ["neg", "pos", "zzz"]
    assert out["y"].tolist() == [0, 0, 1, 1] and out["y"].dtype == np.int32
    assert out["x"].tolist() == [[2, 1], [0, 3], [4, 1], [0, 5]]
    shuffled = run(tmp_path / "data", "-o", tmp_path / "s.npz", "--seed", "3")
    assert shuffled.exit_code == 0
    mixed = load(tmp_path / "s.npz")
    assert sorted(mixed["y"].tolist()) == [0, 0, 1, 1]


def test_class_folders_need_npz_and_subfolders(tmp_path):
    (tmp_path / "data" / "a").mkdir(parents=True)
    write(tmp_path / "data" / "a" / "1.txt", b"x")
    result = run(tmp_path / "data", "-o", tmp_path / "x.npy")
    assert result.exit_code == 2 and "write OUT.npz" in result.output
    (tmp_path / "flat").mkdir()
    assert "has no class sub-folders" in error_text(run(tmp_path / "flat", "-o",
                                                        tmp_path / "x.npz"))
    source = write(tmp_path / "t.txt", b"x\n")
    assert "cannot mix" in error_text(run(tmp_path / "data", source, "-o", tmp_path / "x.npz"))


def test_stdin_and_ints(tmp_path):
    result = run("-", "-o", tmp_path / "x.npy", "--ints", "--maxlen", 3, input="1 2 3 4\n5\n\n")
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "x.npy").tolist() == [[2, 3, 4], [0, 0, 5], [0, 0, 0]]
    bad = write(tmp_path / "ints.txt", b"1 2\n3 x4\n")
    assert error_text(run(bad, "-o", tmp_path / "y.npy", "--ints")).startswith(
        f"{bad}:2: 'x4' is not an integer")
    big = write(tmp_path / "big.txt", b"1 70000\n")
    assert "does not fit --dtype int16" in error_text(run(big, "-o", tmp_path / "z.npy",
                                                          "--ints", "--dtype", "int16"))


def test_use_vocab_maps_unknown_words_to_oov(tmp_path):
    train = write(tmp_path / "train.txt", b"the cat\nthe dog\n")
    assert run(train, "-o", tmp_path / "t.npz", "--oov-token", "<unk>", "--vocab",
               tmp_path / "v.json").exit_code == 0
    new = write(tmp_path / "new.txt", b"the zebra\n")
    result = run(new, "-o", tmp_path / "n.npz", "--use-vocab", tmp_path / "v.json",
                 "--maxlen", 3)
    assert result.exit_code == 0, result.output
    assert load(tmp_path / "n.npz")["x"].tolist() == [[0, 2, 1]]
    assert "1 tokens (50.0%)" in result.stderr
    clash = run(new, "-o", tmp_path / "n.npz", "--use-vocab", tmp_path / "v.json",
                "--level", "char")
    assert clash.exit_code == 2 and "differs from the vocabulary's" in clash.output


def test_bundled_languages_dataset(tmp_path):
    result = run("--dataset", "languages", "--level", "char", "--maxlen", 16, "-o",
                 tmp_path / "lang.npz", "--vocab", tmp_path / "chars.json")
    assert result.exit_code == 0, result.output
    out = load(tmp_path / "lang.npz")
    assert out["x"].shape == (8000, 16) and out["x"].dtype == np.int32
    assert out["classes"].tolist() == ["dutch", "english", "polish", "spanish"]
    assert np.bincount(out["y"]).tolist() == [2000] * 4
    assert 30 < out["x"].max() < 64  # fits an Embedding with input_dim 64
    assert Tokenizer.load(tmp_path / "chars.json").char_level


@pytest.mark.parametrize("args, message", [
    (["a.txt", "--ints", "--num-words", "5"], "--ints reads integers"),
    (["a.txt", "--vocab", "v.json", "--use-vocab", "v.json"], "choose one"),
    (["a.txt", "-o", "x.csv"], "must end in .npz or .npy"),
    ([], "give INPUT"),
    (["a.txt", "--dataset", "languages"], "--dataset replaces INPUT"),
    (["a.txt", "--value", "0.5"], "0.5 is not a int32 value"),
    (["a.txt", "--maxlen", "0"], "0 is not in the range"),
])
def test_usage_errors(tmp_path, args, message):
    write(tmp_path / "a.txt", b"x\n")
    args = [str(tmp_path / a) if a.endswith((".txt", ".json")) else a for a in args]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "x.npz")]
    result = run(*args)
    assert result.exit_code == 2 and message in result.output, result.output


def test_dtype_too_narrow_for_the_vocabulary(tmp_path):
    source = write(tmp_path / "a.txt", " ".join(f"w{i}" for i in range(200)).encode())
    message = error_text(run(source, "-o", tmp_path / "x.npy", "--dtype", "int8"))
    assert "value 200 does not fit --dtype int8" in message


def test_help_shows_examples():
    result = CliRunner().invoke(cli, ["pad", "--help"])
    assert result.exit_code == 0 and "layerctl pad --dataset languages" in result.output


# -- the line reader -------------------------------------------------------------------------


def python_lines(data: bytes) -> list[str]:
    """Python's own reading: utf-8-sig drops a BOM, universal newlines end lines."""
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline=None).read()
    lines = text.split("\n")
    return lines[:-1] if lines[-1] == "" else lines


@settings(max_examples=300, deadline=None)
@given(data=st.lists(st.sampled_from([b"a", b"bc", b" ", b"\n", b"\r", b"\r\n", "é".encode(),
                                      "日".encode(), b"\xef\xbb\xbf"]), max_size=30)
       .map(b"".join), block_bytes=st.integers(1, 8))
def test_line_blocks_read_like_python(data, block_bytes):
    blocks = list(corpus.line_blocks(io.BytesIO(data), "t", block_bytes=block_bytes))
    lines = [line for block in blocks for line in block.text.split("\n")]
    assert lines == python_lines(data)
    assert sum(block.count for block in blocks) == len(lines)
    assert sum(block.nbytes for block in blocks) == (len(data) if lines else 0)
    starts = [block.first_line for block in blocks]
    assert starts == [1 + sum(b.count for b in blocks[:i]) for i in range(len(blocks))]
