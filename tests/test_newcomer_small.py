"""Issue 14, items 6 and 7: export instructions that run, and the smaller things a new user hit
(did-you-means among close names only, missing paths, located Embedding index errors, files
`pad` makes, closed pipes, Keras's messages verbatim, Embedding `weights=`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from layerctl.cli import cli
from layerctl.suggest import close_name

ROOT = Path(__file__).resolve().parent.parent


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


# ---- item 6: export docs ------------------------------------------------------------------------
def test_onnx_extra_brings_onnxruntime_and_keras_docs_set_the_backend():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert any(r.startswith("onnxruntime") for r in extras["onnx"])
    docs = (ROOT / "docs/export.md").read_text()
    keras_snippet = [b for b in python_blocks(docs) if "import keras" in b][0]
    assert keras_snippet.index("KERAS_BACKEND") < keras_snippet.index("import keras")
    assert "torch==2.13.0" in docs and "download.pytorch.org/whl/cpu" in docs
    readme = (ROOT / "README.md").read_text()
    assert "KERAS_BACKEND=torch layerctl export" in readme and "torch==2.13.0" in readme


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


@pytest.mark.oracle
@pytest.mark.slow
def test_export_docs_python_snippets_run_as_written(tmp_path):
    """docs/export.md's two Python examples, verbatim, on files `layerctl export` wrote."""
    from layerctl.commands.common import load_plan
    from layerctl.graph import Graph
    from layerctl.weights import save_weights

    graph = Graph(load_plan(str(ROOT / "specs/digits_cnn.yaml")))
    graph.initialize(np.random.default_rng(0))
    save_weights(graph, tmp_path / "w.npz")
    for target in ("digits.onnx", "digits.keras"):
        result = run("export", ROOT / "specs/digits_cnn.yaml", "--weights", tmp_path / "w.npz",
                     "-o", tmp_path / target)
        assert result.exit_code == 0, result.output
    environment = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    environment["PYTHONPATH"] = str(ROOT)
    for block in python_blocks((ROOT / "docs/export.md").read_text()):
        done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=environment,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]


# ---- item 7 -------------------------------------------------------------------------------------
def test_file_suggestions_are_close_names_only():
    assert close_name("digit_cnn.yaml", ["digits_cnn.yaml", "mnist_cnn.yaml"]) == "digits_cnn.yaml"
    assert close_name("digits_cnn.yml", ["digits_cnn.yaml"]) == "digits_cnn.yaml"
    assert close_name("lang.npz", ["a.npy", "e.csv"]) is None     # difflib alone offers a.npy
    assert close_name("nosuch.txt", ["notes.txt", "words.txt"]) is None


def test_missing_spec_gets_a_did_you_mean_among_specs(tmp_path):
    (tmp_path / "digits_cnn.yaml").write_text("input_shape: [2]\nlayers: []\n")
    (tmp_path / "digit_cnn.npz").write_bytes(b"")   # not a spec: never suggested
    result = run("train", tmp_path / "digit_cnn.yaml")
    assert result.exit_code == 1
    assert result.output.strip() == (f"{tmp_path}/digit_cnn.yaml: no such file; did you mean "
                                     "'digits_cnn.yaml'? [LC301]")


def test_pad_suggests_only_close_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("words.txt").write_text("a b\n")
    result = run("pad", "nosuch.txt", "-o", "x.npz")
    assert result.exit_code == 1
    assert result.output.strip() == "nosuch.txt: no such file or folder [LC301]"
    result = run("pad", "word.txt", "-o", "x.npz")
    assert "did you mean 'words.txt'?" in result.output


def test_validate_a_missing_path_says_it_does_not_exist(tmp_path):
    result = CliRunner().invoke(cli, ["validate", f"{tmp_path}/nothere/"])
    assert result.exit_code == 1
    assert result.stdout.strip() == f"{tmp_path}/nothere/: no such file or folder [LC301]"
    assert result.stderr.strip() == "no spec checked: 1 path(s) do not exist"
    assert "invalid" not in result.stderr


TEXT_SPEC = """\
input_shape: [5]
layers:
  - {type: Embedding, input_dim: 10, output_dim: 4}
  - {type: GlobalAveragePooling1D}
  - {type: Dense, units: 2, activation: softmax}
compile: {loss: sparse_categorical_crossentropy, optimizer: adam}
train:
  data: {path: tokens.npz}
  epochs: 1
"""


def test_embedding_index_error_is_located_at_the_layer(tmp_path):
    spec = tmp_path / "text.yaml"
    spec.write_text(TEXT_SPEC)
    np.savez(tmp_path / "tokens.npz", x=np.array([[0, 1, 2, 3, 12]] * 4), y=np.zeros(4, int))
    for command in (["train", spec, "--out", tmp_path / "run"],
                    ["evaluate", spec, "--weights", tmp_path / "w.npz"]):
        result = run(*command)
        assert result.exit_code == 1
        assert result.output.strip() == (
            f"{spec}:3:34: layer 'embedding' (Embedding) has input_dim 10, but "
            f"{tmp_path}/tokens.npz holds index 12, outside [0, 10); raise input_dim to 13 or "
            "more, or check the data [LC303]")


def test_a_missing_token_file_says_pad_makes_it(tmp_path):
    spec = tmp_path / "text.yaml"
    spec.write_text(TEXT_SPEC)
    result = run("train", spec, "--out", tmp_path / "run")
    assert result.exit_code == 1
    assert "this model reads token indices, which `layerctl pad` makes: `layerctl pad TEXT... " \
           f"--maxlen 5 -o {tmp_path}/tokens.npz`" in result.output


@pytest.mark.parametrize("command", [["shapes", "specs/mnist_cnn.yaml"],
                                     ["validate", "specs/"],
                                     ["schema"]])
def test_a_closed_pipe_exits_0_without_a_traceback(command):
    process = subprocess.Popen([sys.executable, "-m", "layerctl", *command], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    process.stdout.close()      # the reader is gone before anything is written: `| true`
    stderr = process.stderr.read().decode()
    assert process.wait() == 0, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr


def test_embedding_weights_argument_says_what_to_do_instead():
    from layerctl.errors import SpecError
    from layerctl.spec import parse_spec

    with pytest.raises(SpecError) as caught:
        parse_spec("input_shape: [4]\nlayers:\n  - {type: Embedding, input_dim: 10, "
                   "output_dim: 3, weights: [[1.0]]}\n", "e.yaml")
    text = str(caught.value)
    assert "Keras 1" not in text
    assert "`embedding/embeddings`" in text and "--initial-weights FILE.npz" in text
    assert text.startswith("e.yaml:3:")


@pytest.mark.oracle
def test_pooling_padding_message_is_keras_own():
    import keras_bridge  # noqa: F401  (the torch backend)
    from keras import layers

    from layerctl.errors import SpecError
    from layerctl.plan import build_plan
    from layerctl.spec import parse_spec

    with pytest.raises(ValueError) as keras_error:
        layers.MaxPooling2D(padding="full").compute_output_shape((None, 4, 4, 1))
    with pytest.raises(SpecError) as ours:
        build_plan(*parse_spec("input_shape: [4, 4, 1]\nlayers:\n"
                               "  - {type: MaxPooling2D, padding: full}\n", "p.yaml"))
    assert ours.value.problems[0].message == str(keras_error.value)
