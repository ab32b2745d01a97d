"""What a new user hit (issue 14): evaluate scores all of a --data file, a labelled CSV names its
label column, and the end-of-training summary quotes the epoch whose weights were saved."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from layerctl.cli import cli

SPEC = """
name: flat
input_shape: [6]
layers:
  - {type: Dense, units: 8, activation: relu}
  - {type: Dense, units: 3, activation: softmax}
compile:
  loss: sparse_categorical_crossentropy
  optimizer: {type: adam, learning_rate: 0.01}
  metrics: [accuracy]
train:
  validation: {split: 0.2}
  batch_size: 16
  epochs: 3
  seed: 0
"""


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def files(tmp_path):
    """A spec and a labelled CSV whose label column `kind` sits between the inputs."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6))
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5)
    spec = tmp_path / "flat.yaml"
    spec.write_text(SPEC)
    csv = tmp_path / "data.csv"
    header = ["a", "b", "kind", "c", "d", "e", "f"]
    rows = [",".join(map(str, [*r[:2], label, *r[2:]])) for r, label in zip(x, y, strict=True)]
    csv.write_text(",".join(header) + "\n" + "\n".join(rows) + "\n")
    return spec, csv, x, y


def test_label_column_for_train_evaluate_and_predict(files, tmp_path):
    spec, csv, x, _ = files
    result = run("train", spec, "--data", csv, "--label", "kind", "--out", tmp_path / "run", "-q")
    assert result.exit_code == 0, result.output
    result = run("evaluate", spec, "--weights", tmp_path / "run/weights.npz", "--data", csv,
                 "--label", "2", "--json")
    assert result.exit_code == 0, result.output
    # evaluate --data scores all 50 rows, not the spec's 80 % training part of them
    assert json.loads(result.output)["samples"] == 50
    out = tmp_path / "y.npy"
    result = run("predict", spec, "--weights", tmp_path / "run/weights.npz", csv, "--label",
                 "kind", "-o", out)
    assert result.exit_code == 0, result.output
    from layerctl.graph import Graph
    from layerctl.plan import build_plan
    from layerctl.spec import load_spec
    from layerctl.weights import load_weights_into

    graph = Graph(build_plan(*load_spec(spec)))
    load_weights_into(graph, tmp_path / "run/weights.npz")
    np.testing.assert_allclose(np.load(out), graph.predict(x.astype(np.float32)), rtol=1e-6)


def test_label_errors(files, tmp_path):
    spec, csv, _, _ = files
    result = run("train", spec, "--data", csv, "--label", "knd", "--out", tmp_path / "r")
    assert result.exit_code == 1
    assert "has no column 'knd'; did you mean 'kind'?" in result.output
    result = run("train", spec, "--label", "kind", "--out", tmp_path / "r")
    assert result.exit_code == 1 and "give --data too" in result.output
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 6)), y=np.zeros(4))
    result = run("train", spec, "--data", tmp_path / "d.npz", "--label", "y", "--out",
                 tmp_path / "r")
    assert result.exit_code == 1 and "--label only applies to .csv files" in result.output


def test_summary_quotes_the_epoch_whose_weights_are_saved(files, tmp_path):
    spec, csv, _, _ = files
    result = run("train", spec, "--data", csv, "--label", "kind", "--out", tmp_path / "run",
                 "--epochs", "6")
    assert result.exit_code == 0, result.output
    history = (tmp_path / "run/history.csv").read_text().splitlines()
    header = history[0].split(",")
    rows = [dict(zip(header, map(float, line.split(",")), strict=True)) for line in history[1:]]
    best = min(range(len(rows)), key=lambda i: rows[i]["val_loss"])
    title = "weights.npz holds epoch 6 of 6"
    assert title in result.output
    if best != 5:
        assert f"the best by val_loss was epoch {best + 1}" in result.output
    # the saved weights are the last epoch's: evaluate gives its val_loss
    validation = tmp_path / "val.npz"
    data = np.loadtxt(csv, delimiter=",", skiprows=1)
    split = int(len(data) * 0.8)
    np.savez(validation, x=np.delete(data, 2, axis=1)[split:], y=data[split:, 2].astype(int))
    result = run("evaluate", spec, "--weights", tmp_path / "run/weights.npz", "--data",
                 validation, "--json")
    assert json.loads(result.output)["loss"] == pytest.approx(rows[-1]["val_loss"], rel=1e-5)


def test_restored_best_weights_are_named_as_such(files, tmp_path):
    spec, csv, _, _ = files
    text = Path(spec).read_text().replace(
        "  seed: 0\n", "  seed: 0\n  callbacks:\n    - {type: early_stopping, patience: 50, "
        "restore_best_weights: true}\n")
    Path(spec).write_text(text)
    result = run("train", spec, "--data", csv, "--label", "kind", "--out", tmp_path / "run",
                 "--epochs", "6")
    history = (tmp_path / "run/history.csv").read_text().splitlines()
    header = history[0].split(",")
    losses = [float(line.split(",")[header.index("val_loss")]) for line in history[1:]]
    best = int(np.argmin(losses))
    assert f"weights.npz holds epoch {best + 1} of 6, the best by val_loss" in result.output
