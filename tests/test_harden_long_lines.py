"""Class 5 of issue 13 (continued): `pad` on one very long line streams it.

A 100 MB line once took 7 GB for a 1x100 output: the line was one block, tokenized whole. A line
longer than a block is now cut between tokens (at a separator byte) into pieces that continue
one row; rows are joined and truncated piece by piece, so memory follows the block size, not the
line. The result is compared with the Tokenizer applied to whole lines.
"""

import numpy as np
import pytest
from click.testing import CliRunner
from harden import layerctl_peak_rss

from layerctl.cli import cli
from layerctl.text.tokenizer import Tokenizer


def expected(lines, maxlen, truncating, **config):
    tokenizer = Tokenizer(**config)
    tokenizer.fit_on_texts(lines)
    rows = [s[-maxlen:] if truncating == "pre" else s[:maxlen]
            for s in tokenizer.texts_to_sequences(lines)]
    return [[0] * (maxlen - len(row)) + row for row in rows]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("long")
    rng = np.random.default_rng(0)
    vocabulary = np.array([f"w{i}" for i in range(500)])
    long_a = " ".join(vocabulary[rng.zipf(1.5, 1_500_000) % 500])  # about 7 MB: two pieces
    long_b = ",".join(vocabulary[rng.integers(0, 500, 1_200_000)])  # cut at a filter byte
    lines = ["a short line w1", long_a, "", long_b, "w2 w3"]
    path = folder / "lines.txt"
    path.write_text("\n".join(lines) + "\n")
    assert len(long_a) > 4 << 20 and len(long_b) > 4 << 20
    return path, lines


@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("config", [{}, {"num_words": 40}, {"num_words": 40, "oov_token": "?"}])
def test_long_lines_give_the_rows_of_whole_lines(corpus, tmp_path, truncating, config):
    path, lines = corpus
    options = []
    if "num_words" in config:
        options += ["--num-words", config["num_words"]]
    if "oov_token" in config:
        options += ["--oov-token", config["oov_token"]]
    result = CliRunner().invoke(cli, ["pad", str(path), "--maxlen", "9", "--truncating",
                                      truncating, "-o", str(tmp_path / "x.npz"), "-q",
                                      *map(str, options)])
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "x.npz") as archive:
        x = archive["x"]
    assert x.tolist() == expected(lines, 9, truncating, **config)


def test_long_line_of_integers(tmp_path):
    values = np.arange(1_000_000) % 997
    (tmp_path / "ints.txt").write_text("5 6\n" + " ".join(map(str, values)) + "\n7\n")
    result = CliRunner().invoke(cli, ["pad", str(tmp_path / "ints.txt"), "--ints", "--maxlen",
                                      "4", "-o", str(tmp_path / "x.npz"), "-q"])
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "x.npz") as archive:
        assert archive["x"].tolist() == [[0, 0, 5, 6], values[-4:].tolist(), [0, 0, 0, 7]]


def test_one_60_mb_line_pads_in_bounded_memory(tmp_path):
    (tmp_path / "line.txt").write_bytes(b"alpha beta gamma delta " * 2_700_000)  # 62 MB
    result, peak = layerctl_peak_rss("pad", "line.txt", "--maxlen", 100, "-o", "x.npz", "-q",
                                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert peak < 400, f"peak RSS {peak:.0f} MiB for a 62 MB line"  # whole: over 1.5 GB
    with np.load(tmp_path / "x.npz") as archive:
        assert archive["x"].shape == (1, 100) and archive["x"][0, -4:].tolist() == [1, 2, 3, 4]
