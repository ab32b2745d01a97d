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


def _write_non_weights(tmp_path):
    """One file of each kind a user has passed as weights, with what its error must call it."""
    files = {}
    np.save(tmp_path / "x.npy", np.zeros(3, np.float32))
    files["x.npy"] = "is a single NumPy array (.npy), not a weights file"
    (tmp_path / "spec.yaml").write_text(SPEC)
    files["spec.yaml"] = "is a layerctl spec (YAML), not a weights file"
    (tmp_path / "notes.yaml").write_text("a: 1\nb: [2, 3]\n")
    files["notes.yaml"] = "is a YAML file, not a weights file"
    (tmp_path / "readme.txt").write_text("These are my weights.\n")
    files["readme.txt"] = "is a text file, not a weights file"
    (tmp_path / "h.csv").write_text("epoch,loss\n1,0.5\n")
    files["h.csv"] = "is a CSV file, not a weights file"
    (tmp_path / "v.json").write_text('{"a": 1}')
    files["v.json"] = "is a JSON file, not a weights file"
    (tmp_path / "empty.npz").write_bytes(b"")
    files["empty.npz"] = "is an empty file, not a weights file"
    # an ONNX ModelProto starts with ir_version (tag 0x08) then producer_name (tag 0x12)
    (tmp_path / "model.bin").write_bytes(b"\x08\x08\x12\x08layerctl\x1a\x050.1.0")
    files["model.bin"] = "is an ONNX model, not a weights file"
    (tmp_path / "m.pkl").write_bytes(b"\x80\x04\x95\x00")
    files["m.pkl"] = "is a Python pickle (layerctl never loads pickles), not a weights file"
    (tmp_path / "w.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(8))
    files["w.h5"] = "is an HDF5 file (Keras .h5 weights?), not a weights file"
    import zipfile

    with zipfile.ZipFile(tmp_path / "m.keras", "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", "")
    files["m.keras"] = "is a Keras model (.keras), not a weights file"
    return files


def test_files_that_are_not_weights_are_named_in_one_line(tmp_path):
    for name, expected in _write_non_weights(tmp_path).items():
        with pytest.raises(WeightsError) as caught:
            load_weights_into(graph(), tmp_path / name)
        assert len(caught.value.problems) == 1, name
        problem = caught.value.problems[0]
        assert problem.message == expected, name
        assert problem.location.file == str(tmp_path / name)
        assert "weights.npz" in problem.hint


@pytest.mark.oracle
def test_a_real_onnx_export_is_named(tmp_path):
    from layerctl.export.onnx import export_onnx

    source = graph()
    export_onnx(source.plan, source.get_weights(), tmp_path / "m.onnx")
    (tmp_path / "m.onnx").rename(tmp_path / "renamed.npz")
    with pytest.raises(WeightsError, match="is an ONNX model, not a weights file"):
        load_weights_into(graph(), tmp_path / "renamed.npz")


def test_a_checkpoint_is_accepted_as_weights(tmp_path):
    from layerctl.training.runs import RunFolder, save_checkpoint

    source = graph()
    source.weights["dense/kernel"][...] = 0.25
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    save_checkpoint(run, source.get_weights(), {"dense/kernel/momentum": np.ones((3, 2))},
                    {"epoch": 3})
    target = graph()
    load_weights_into(target, run.checkpoint)
    for key in source.weights:
        assert np.array_equal(source.weights[key], target.weights[key])
