"""Issue 14, item 9: a run trained on `layerctl pad` output remembers its text pipeline, and
`predict --text` / `--text-file` tokenize and pad exactly as training did."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from layerctl.cli import cli
from layerctl.text import record

SPEC = """\
input_shape: [6]
layers:
  - {type: Embedding, input_dim: 40, output_dim: 4}
  - {type: GlobalAveragePooling1D}
  - {type: Dense, units: 2, activation: softmax}
compile: {loss: sparse_categorical_crossentropy, optimizer: adam}
train: {data: {path: train.npz}, epochs: 1}
"""

TEXTS = ["a truly awful film, awful!", "lovely lovely acting and a great plot twist at the end",
         "never seen before words", ""]


def run(*args, **kwargs):
    return CliRunner().invoke(cli, [str(a) for a in args], **kwargs)


@pytest.fixture
def trained(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for label, lines in {"neg": ["awful awful film", "bad acting, awful plot"],
                         "pos": ["a lovely film", "great acting and a lovely plot"]}.items():
        (tmp_path / "reviews" / label).mkdir(parents=True)
        for i, line in enumerate(lines):
            (tmp_path / "reviews" / label / f"{i}.txt").write_text(line + "\n")
    (tmp_path / "s.yaml").write_text(SPEC)
    result = run("pad", "reviews", "--maxlen", "6", "--padding", "post", "--truncating", "post",
                 "--oov-token", "<unk>", "-o", "train.npz", "-q")
    assert result.exit_code == 0, result.output
    result = run("train", "s.yaml", "--out", "run", "-q")
    assert result.exit_code == 0, result.output
    return tmp_path


def test_the_run_keeps_vocabulary_length_padding_and_classes(trained):
    remembered = record.beside_weights(trained / "run/weights.npz")
    assert remembered["maxlen"] == 6
    assert (remembered["padding"], remembered["truncating"]) == ("post", "post")
    assert remembered["classes"] == ["neg", "pos"]
    assert remembered["tokenizer"]["config"]["oov_token"] == "<unk>"


def test_text_rows_are_the_rows_pad_makes(trained):
    (trained / "new.txt").write_text("\n".join(TEXTS) + "\n")
    # pad with the run's own vocabulary and options, then the same texts through --text
    import json

    remembered = record.beside_weights(trained / "run/weights.npz")
    (trained / "vocab.json").write_text(json.dumps(remembered["tokenizer"]))
    result = run("pad", "new.txt", "--use-vocab", "vocab.json", "--maxlen", "6", "--padding",
                 "post", "--truncating", "post", "-o", "new.npz", "-q")
    assert result.exit_code == 0, result.output
    expected = np.load(trained / "new.npz")["x"]
    np.testing.assert_array_equal(record.encode(remembered, TEXTS, "run"), expected)
    by_file = run("predict", "s.yaml", "--weights", "run/weights.npz", "new.npz")
    by_text = run("predict", "s.yaml", "--weights", "run/weights.npz",
                  *[a for t in TEXTS for a in ("--text", t)])
    by_text_file = run("predict", "s.yaml", "--weights", "run/weights.npz", "--text-file",
                       "new.txt")
    assert by_file.exit_code == 0, by_file.output
    assert by_text.output == by_file.output == by_text_file.output
    stdin = run("predict", "s.yaml", "--weights", "run/weights.npz", "--text-file", "-",
                input="\n".join(TEXTS) + "\n")
    assert stdin.output == by_file.output


def test_classes_are_printed_by_name(trained):
    result = run("predict", "s.yaml", "--weights", "run/weights.npz", "--text", "lovely film",
                 "--text", "awful", "--classes")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "class" and set(lines[1:]) <= {"neg", "pos"} and len(lines) == 3
    # an input .npz carrying `classes` names them too (weights without a text.json beside)
    (trained / "elsewhere").mkdir()
    (trained / "elsewhere/w.npz").write_bytes((trained / "run/weights.npz").read_bytes())
    result = run("predict", "s.yaml", "--weights", "elsewhere/w.npz", "train.npz", "--classes")
    assert result.exit_code == 0 and set(result.output.splitlines()[1:]) <= {"neg", "pos"}


def test_text_needs_a_remembered_pipeline(trained):
    (trained / "elsewhere").mkdir()
    (trained / "elsewhere/w.npz").write_bytes((trained / "run/weights.npz").read_bytes())
    result = run("predict", "s.yaml", "--weights", "elsewhere/w.npz", "--text", "hi")
    assert result.exit_code == 1 and "no text pipeline beside these weights" in result.output
    result = run("predict", "s.yaml", "--weights", "run/weights.npz", "train.npz", "--text", "x")
    assert result.exit_code == 2 and "give only one" in result.output


def test_a_run_on_other_data_forgets_the_pipeline(trained):
    np.savez(trained / "ints.npz", x=np.ones((4, 6), np.int64), y=np.zeros(4, np.int64))
    result = run("train", "s.yaml", "--data", "ints.npz", "--out", "run", "--overwrite", "-q")
    assert result.exit_code == 0, result.output
    assert not (trained / "run" / record.RUN_FILE).exists()
