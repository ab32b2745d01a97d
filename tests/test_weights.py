"""Weights files: Keras names and layouts, atomic writes, and every mismatch in one error."""

import numpy as np
import pytest

from layerctl.errors import WeightsError
from layerctl.graph import Graph
from layerctl.plan import build_plan
from layerctl.spec import parse_spec
from layerctl.weights import load_weights_into, read_npz, save_npz, save_weights

SPEC = "input_shape: [3]\nlayers:\n  - {type: Dense, units: 2}\n  - {type: BatchNormalization}\n"


def graph():
    g = Graph(build_plan(*parse_spec(SPEC)))
    g.initialize(np.random.default_rng(0))
    return g


def test_round_trip_keeps_every_weight(tmp_path):
    source = graph()
    source.weights["batch_normalization/moving_mean"][...] = 0.5
    save_weights(source, tmp_path / "w.npz")
    target = Graph(source.plan)
    load_weights_into(target, tmp_path / "w.npz")
    for key in source.weights:
        assert np.array_equal(source.weights[key], target.weights[key])
    assert list(read_npz(tmp_path / "w.npz")) == source.keys()


def test_every_mismatch_reported_at_once(tmp_path):
    arrays = graph().get_weights()
    arrays["dense/kernel"] = np.zeros((4, 2), np.float32)       # wrong shape
    arrays["dense/bias"] = np.zeros(2, np.int32)                 # wrong dtype
    arrays["batch_normalization/gamma"] = np.full(2, np.nan, np.float32)
    del arrays["batch_normalization/beta"]                       # missing
    arrays["extra/kernel"] = np.zeros(1, np.float32)             # unexpected
    save_npz(tmp_path / "w.npz", arrays)
    with pytest.raises(WeightsError) as caught:
        load_weights_into(graph(), tmp_path / "w.npz")
    messages = [p.message for p in caught.value.problems]
    assert len(messages) == 5
    assert "weight 'dense/kernel' has shape (4, 2), the spec needs (3, 2)" in messages
    assert any("dtype int32" in m for m in messages)
    assert any("NaN" in m for m in messages)
    assert any("missing weight 'batch_normalization/beta'" in m for m in messages)
    assert any("unexpected weight 'extra/kernel'" in m for m in messages)


def test_failed_write_leaves_previous_file(tmp_path):
    path = tmp_path / "w.npz"
    save_npz(path, {"a": np.ones(3)})

    class Boom:
        def __array__(self, *args, **kwargs):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        save_npz(path, {"a": np.zeros(3), "b": Boom()})
    assert np.array_equal(read_npz(path)["a"], np.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]  # no temporary left behind


def test_float64_weights_load_into_float32_graph(tmp_path):
    arrays = {k: v.astype(np.float64) for k, v in graph().get_weights().items()}
    save_npz(tmp_path / "w.npz", arrays)
    target = graph()
    load_weights_into(target, tmp_path / "w.npz")
    assert target.weights["dense/kernel"].dtype == np.float32
