"""Issue 14, item 11: `layerctl gradcheck SPEC` on users' own specs (layerctl.gradcheck)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from layerctl.cli import cli
from layerctl.gradcheck import numerical_gradient

SPEC = """\
input_shape: [6]
layers:
  - {type: Dense, units: 5, activation: tanh, kernel_regularizer: {type: l2, l2: 0.01}}
  - {type: BatchNormalization}
  - {type: Dense, units: 3, activation: softmax}
compile: {loss: sparse_categorical_crossentropy, optimizer: adam}
"""


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SPEC)
    return path


def test_numerical_gradient_by_hand():
    w = np.array([1.0, 2.0, 3.0])
    assert numerical_gradient(lambda: float(np.sum(w ** 2)), w) == pytest.approx([2, 4, 6])
    assert numerical_gradient(lambda: float(np.sum(w ** 2)), w, np.array([2])) == pytest.approx(
        [6])
    assert w.tolist() == [1.0, 2.0, 3.0]   # restored


def test_a_correct_spec_passes_with_a_table_per_weight(spec):
    result = run("gradcheck", spec)
    assert result.exit_code == 0, result.output
    assert "ok: worst relative error" in result.output
    for weight in ("kernel", "bias", "gamma", "beta"):
        assert weight in result.output
    assert "moving_mean" not in result.output        # not trainable: no gradient


def test_json_is_bounded_and_deterministic(spec):
    first = run("gradcheck", spec, "--json", "--max-per-weight", "4", "--training")
    assert first.exit_code == 0, first.output
    report = json.loads(first.output)
    assert report["passed"] and report["worst_relative_error"] < 1e-4
    rows = {w["weight"]: w for w in report["weights"]}
    assert list(rows) == ["dense/kernel", "dense/bias", "batch_normalization/gamma",
                          "batch_normalization/beta", "dense_1/kernel", "dense_1/bias"]
    assert rows["dense/kernel"]["checked"] == 4 and rows["dense/kernel"]["total"] == 30
    assert report["parameters_checked"] == 4 * 5 + 3      # dense_1/bias has 3 entries
    assert run("gradcheck", spec, "--json", "--max-per-weight", "4", "--training").output == \
        first.output


def test_a_wrong_backward_fails_and_names_the_weight(spec, monkeypatch):
    from layerctl.layers.core import Dense

    original = Dense.backward

    def off_by_ten_percent(self, weights, cache, dy, **kwargs):
        dx, grads = original(self, weights, cache, dy, **kwargs)
        if self.units == 3:
            grads = {**grads, "kernel": grads["kernel"] * 1.1}
        return dx, grads

    monkeypatch.setattr(Dense, "backward", off_by_ten_percent)
    result = run("gradcheck", spec, "--json")
    assert result.exit_code == 1
    rows = {w["weight"]: w for w in json.loads(result.output)["weights"]}
    assert rows["dense_1/kernel"]["worst_relative_error"] == pytest.approx(0.1 / 1.1, rel=1e-3)
    assert rows["dense/kernel"]["worst_relative_error"] < 1e-4   # upstream of it: still right
    table = run("gradcheck", spec)
    assert table.exit_code == 1 and "OVER" in table.output and "FAILED" in table.output


def test_inputs_from_data_and_weights_from_a_file(spec, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).normal(size=(9, 6)),
             y=np.zeros(9, int))
    result = run("gradcheck", spec, "--data", tmp_path / "d.npz", "--samples", "2", "--json")
    assert result.exit_code == 0, result.output
    result = run("gradcheck", spec, "--weights", tmp_path / "d.npz")
    assert result.exit_code == 1 and "missing weight 'dense/kernel'" in result.output


def test_text_model_with_index_inputs():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    result = run("gradcheck", root / "specs/text_lstm.yaml", "--samples", "2",
                 "--max-per-weight", "5")
    assert result.exit_code == 0, result.output
