"""`layerctl import` of legacy Keras 1 and Keras 2 `.h5` model files, written here with h5py
in the legacy layout (`model_config` and `keras_version` attributes, `model_weights/<layer>`
groups listing `weight_names`), with known weights; the imported spec and weights reproduce
outputs computed by hand in NumPy (a Theano-ordered Convolution2D, a Keras 1 LSTM's twelve
per-gate arrays, a Keras 2 Dense + BatchNormalization)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from layerctl.cli import cli
from layerctl.graph import Graph
from layerctl.plan import build_plan
from layerctl.spec import parse_spec

h5py = pytest.importorskip("h5py", reason="HDF5 import needs the `import` extra")


def write_legacy(path: Path, config: dict, weights: dict[str, list[tuple[str, np.ndarray]]],
                 version: str, backend: str | None) -> None:
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = version.encode()
        if backend:
            f.attrs["backend"] = backend.encode()
        f.attrs["model_config"] = json.dumps(config).encode()
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = [name.encode() for name in weights]
        for layer, arrays in weights.items():
            g = group.create_group(layer)
            g.attrs["weight_names"] = [w.encode() for w, _ in arrays]
            for weight, value in arrays:
                g.create_dataset(weight, data=value)


def run_import(tmp_path: Path, source: Path):
    out, npz = tmp_path / "model.yaml", tmp_path / "weights.npz"
    result = CliRunner().invoke(cli, ["import", str(source), "-o", str(out),
                                      "--weights-out", str(npz)])
    assert result.exit_code == 0, result.output
    plan = build_plan(*parse_spec(out.read_text(), str(out)))
    graph = Graph(plan)
    with np.load(npz) as loaded:
        graph.set_weights(dict(loaded))
    return out.read_text(), graph


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_keras1_theano_convolution2d_flatten_dense(tmp_path):
    rng = np.random.default_rng(0)
    kernel_th = rng.normal(size=(2, 1, 3, 3)).astype("float32")  # (filters, in, rows, cols)
    conv_bias = np.array([0.5, -0.25], "float32")
    dense_w = rng.normal(size=(2 * 2 * 2, 3)).astype("float32")
    dense_b = np.array([0.1, 0.2, 0.3], "float32")
    config = {"class_name": "Sequential", "config": [
        {"class_name": "Convolution2D", "config": {
            "name": "convolution2d_1", "nb_filter": 2, "nb_row": 3, "nb_col": 3,
            "border_mode": "valid", "dim_ordering": "th", "activation": "linear",
            "subsample": [1, 1], "init": "glorot_uniform", "bias": True,
            "batch_input_shape": [None, 1, 4, 4], "input_dtype": "float32",
            "W_regularizer": None, "b_regularizer": None, "W_constraint": None,
            "b_constraint": None, "activity_regularizer": None, "trainable": True}},
        {"class_name": "Flatten", "config": {"name": "flatten_1", "trainable": True}},
        {"class_name": "Dense", "config": {"name": "dense_1", "output_dim": 3,
                                           "activation": "linear", "bias": True,
                                           "init": "glorot_uniform", "input_dim": None}},
    ]}
    path = tmp_path / "theano.h5"
    write_legacy(path, config, {
        "convolution2d_1": [("convolution2d_1_W", kernel_th), ("convolution2d_1_b", conv_bias)],
        "flatten_1": [],
        "dense_1": [("dense_1_W", dense_w), ("dense_1_b", dense_b)],
    }, "1.2.2", "theano")
    text, graph = run_import(tmp_path, path)
    assert "\ndata_format:" not in text  # Keras 1 configs carry dim_ordering on each layer
    assert "data_format: channels_first" in text and "was dim_ordering='th'" in text
    assert "Keras 1's Flatten kept the stored (channels-first) order" in text
    x = rng.normal(size=(2, 1, 4, 4)).astype("float32")
    # by hand: Theano convolves (the kernel flipped), channels first, Flatten in stored order
    y = np.zeros((2, 2, 2, 2), "float32")
    for f in range(2):
        for i in range(2):
            for j in range(2):
                patch = x[:, 0, i:i + 3, j:j + 3]
                y[:, f, i, j] = (patch * kernel_th[f, 0, ::-1, ::-1]).sum(axis=(1, 2)) \
                    + conv_bias[f]
    expected = y.reshape(2, -1) @ dense_w + dense_b
    np.testing.assert_allclose(graph.predict(x), expected, atol=1e-5)


def test_keras1_lstm_twelve_gate_arrays(tmp_path):
    rng = np.random.default_rng(1)
    n_in, units, steps = 3, 2, 4
    gates = {g: (rng.normal(size=(n_in, units)).astype("float32"),
                 rng.normal(size=(units, units)).astype("float32"),
                 rng.normal(size=(units,)).astype("float32")) for g in "icfo"}
    stored = []
    for g in "icfo":  # Keras 1's order: W_i, U_i, b_i, W_c, U_c, b_c, W_f, ..., b_o
        stored += [(f"lstm_1_W_{g}", gates[g][0]), (f"lstm_1_U_{g}", gates[g][1]),
                   (f"lstm_1_b_{g}", gates[g][2])]
    config = {"class_name": "Sequential", "config": [
        {"class_name": "LSTM", "config": {
            "name": "lstm_1", "output_dim": units, "batch_input_shape": [None, steps, n_in],
            "activation": "tanh", "inner_activation": "sigmoid", "init": "glorot_uniform",
            "inner_init": "orthogonal", "forget_bias_init": "one", "return_sequences": False,
            "go_backwards": False, "stateful": False, "unroll": False, "consume_less": "cpu",
            "dropout_W": 0.0, "dropout_U": 0.0, "W_regularizer": None, "U_regularizer": None,
            "b_regularizer": None, "input_dim": n_in, "input_length": None,
            "trainable": True}},
    ]}
    path = tmp_path / "lstm.h5"
    write_legacy(path, config, {"lstm_1": stored}, "1.2.2", "tensorflow")
    text, graph = run_import(tmp_path, path)
    assert "was inner_activation='sigmoid'" in text
    x = rng.normal(size=(2, steps, n_in)).astype("float32")
    h = np.zeros((2, units), "float32")
    c = np.zeros((2, units), "float32")
    for t in range(steps):
        def gate(g, xt=x[:, t], h=h):
            return xt @ gates[g][0] + h @ gates[g][1] + gates[g][2]
        i, f, o = sigmoid(gate("i")), sigmoid(gate("f")), sigmoid(gate("o"))
        c = f * c + i * np.tanh(gate("c"))
        h = o * np.tanh(c)
    np.testing.assert_allclose(graph.predict(x), h, atol=1e-5)


def test_keras2_functional_dense_batchnorm(tmp_path):
    rng = np.random.default_rng(2)
    kernel = rng.normal(size=(4, 3)).astype("float32")
    bias = rng.normal(size=(3,)).astype("float32")
    gamma, beta = np.array([1.0, 2.0, 0.5], "f4"), np.array([0.0, 1.0, -1.0], "f4")
    mean, var = np.array([0.1, -0.2, 0.3], "f4"), np.array([1.5, 0.5, 2.0], "f4")
    config = {"class_name": "Model", "config": {"name": "model_1", "layers": [
        {"name": "features", "class_name": "InputLayer", "inbound_nodes": [],
         "config": {"batch_input_shape": [None, 4], "dtype": "float32", "sparse": False,
                    "name": "features"}},
        {"name": "dense_1", "class_name": "Dense", "inbound_nodes": [[["features", 0, 0, {}]]],
         "config": {"name": "dense_1", "units": 3, "activation": "relu", "use_bias": True,
                    "trainable": True}},
        {"name": "bn", "class_name": "BatchNormalization",
         "inbound_nodes": [[["dense_1", 0, 0, {}]]],
         "config": {"name": "bn", "axis": -1, "momentum": 0.99, "epsilon": 0.001,
                    "center": True, "scale": True, "trainable": True}},
    ], "input_layers": [["features", 0, 0]], "output_layers": [["bn", 0, 0]]}}
    path = tmp_path / "keras2.h5"
    write_legacy(path, config, {
        "features": [],
        "dense_1": [("dense_1/kernel:0", kernel), ("dense_1/bias:0", bias)],
        "bn": [("bn/gamma:0", gamma), ("bn/beta:0", beta), ("bn/moving_mean:0", mean),
               ("bn/moving_variance:0", var)],
    }, "2.2.4", "tensorflow")
    _, graph = run_import(tmp_path, path)
    x = rng.normal(size=(5, 4)).astype("float32")
    hidden = np.maximum(x @ kernel + bias, 0)
    expected = gamma * (hidden - mean) / np.sqrt(var + 0.001) + beta
    np.testing.assert_allclose(graph.predict(x), expected, atol=1e-5)


def test_a_truncated_h5_file_is_one_located_line(tmp_path):
    path = tmp_path / "model.h5"
    write_legacy(path, {"class_name": "Sequential", "config": []}, {}, "2.2.4", None)
    path.write_bytes(path.read_bytes()[:600])
    result = CliRunner().invoke(cli, ["import", str(path), "-o", str(tmp_path / "m.yaml")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith(f"{path}: not a readable HDF5 file")


def test_weights_that_do_not_fit_are_refused_naming_them(tmp_path):
    config = {"class_name": "Sequential", "config": [
        {"class_name": "Dense", "config": {"name": "dense_1", "output_dim": 3,
                                           "batch_input_shape": [None, 4]}}]}
    path = tmp_path / "model.h5"
    write_legacy(path, config, {"dense_1": [("dense_1_W", np.zeros((5, 3), "f4")),
                                            ("dense_1_b", np.zeros(3, "f4"))]}, "1.2.2", None)
    result = CliRunner().invoke(cli, ["import", str(path), "-o", str(tmp_path / "m.yaml")])
    assert result.exit_code == 1
    assert "'dense_1/kernel': shape (5, 3) in the file, (4, 3) in the model" in result.output


def test_missing_h5py_is_one_clear_line(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_h5py(name, *args, **kwargs):
        if name == "h5py":
            raise ImportError("No module named 'h5py'")
        return real_import(name, *args, **kwargs)

    path = tmp_path / "model.h5"
    write_legacy(path, {"class_name": "Sequential", "config": []}, {}, "2.2.4", None)
    monkeypatch.setattr(builtins, "__import__", no_h5py)
    result = CliRunner().invoke(cli, ["import", str(path), "-o", str(tmp_path / "m.yaml")])
    assert result.exit_code == 1
    assert result.output == ("reading .keras and .h5 files needs h5py: "
                             "pip install 'layerctl[import]' [LC601]\n")
