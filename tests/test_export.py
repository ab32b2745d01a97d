"""`layerctl export`: ONNX models run in onnxruntime and Keras models reloaded from their file give
`Graph.predict`'s outputs; Keras weights run by `layerctl predict` give Keras's; CLI errors."""

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from layerctl.activations import ACTIVATION_NAMES
from layerctl.cli import cli
from layerctl.errors import LayerctlError
from layerctl.export import ExportError, export_model
from layerctl.graph import Graph
from layerctl.plan import build_plan
from layerctl.spec import load_spec, parse_spec
from layerctl.weights import save_npz

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(p for p in (ROOT / "specs").rglob("*.yaml") if "invalid" not in p.parts)
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


def need(module: str):
    """The optional package, or a skip; in CI (where the oracle extra is installed) a failure."""
    if os.environ.get("CI") and importlib.util.find_spec(module) is None:
        pytest.fail(f"CI=true but {module} is missing: install the `oracle` extra")
    if module == "keras":
        os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip(module, reason=f"export tests need {module} (the `oracle` extra: "
                                              "pip install -e '.[test,oracle]')")


# ---- models and inputs ---------------------------------------------------------------------
def trained_graph(plan, seed=0) -> Graph:
    """Random weights, and moving statistics far from their (0, 1) initial values."""
    rng = np.random.default_rng(seed)
    graph = Graph(plan)
    graph.initialize(rng)
    for key, value in graph.weights.items():
        if key.endswith("moving_mean"):
            value[...] = rng.normal(size=value.shape)
        elif key.endswith("moving_variance"):
            value[...] = rng.uniform(0.5, 2.0, size=value.shape)
        elif key.endswith("/bias") or key.endswith("/beta"):
            value[...] = rng.normal(scale=0.5, size=value.shape)  # zero-initialised otherwise
    return graph


def sample_inputs(plan, seed=1, n=6, steps=None):
    """Random inputs; sequences padded before, after, in the middle, entirely, and not at all.
    A model with several inputs gets {input name: array}."""
    if len(plan.inputs) > 1:
        return {i.name: _sample_input(plan, i, seed + k, n, steps)
                for k, i in enumerate(plan.inputs)}
    return _sample_input(plan, plan.inputs[0], seed, n, steps)


def _sample_input(plan, model_input, seed, n, steps):
    rng = np.random.default_rng(seed)
    dims = list(model_input.shape[1:])
    if steps is not None:
        dims[0] = steps
    shape = (n,) + tuple(d or 7 for d in dims)
    if model_input.integer:
        embeddings = [node for node in plan.nodes if node.layer.keras_class == "Embedding"]
        reader = next((n for n in embeddings if model_input.name in n.inputs), embeddings[0])
        vocabulary = reader.layer.input_dim  # the Embedding this input feeds
        x = rng.integers(1, vocabulary, size=shape)
    else:
        x = rng.normal(scale=2.0, size=shape).astype(np.float32)
    if len(shape) in (2, 3) and shape[1] >= 4:
        t = shape[1]
        x[0, : t // 2] = 0  # pre-padded
        x[1, t - t // 3 :] = 0  # post-padded
        x[2] = 0  # nothing but padding
        x[3, 1:3] = 0  # a hole
    return x


def plan_of(text: str):
    return build_plan(*parse_spec(text))


def run_onnx(path, x):
    """ONNX Runtime's outputs: an array, or {output name: array} for several outputs."""
    ort = need("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = x if isinstance(x, dict) else {"input": x}
    assert [i.name for i in session.get_inputs()] == list(feed)
    outputs = session.run(None, feed)
    if len(outputs) == 1:
        return outputs[0]
    return {o.name: value for o, value in zip(session.get_outputs(), outputs, strict=True)}


def run_keras_file(path, x):
    """The reloaded Keras model's outputs (an array, or a list in output order) and the model."""
    keras = need("keras")
    model = keras.saving.load_model(path)
    y = model(x, training=False)
    if isinstance(y, list | tuple):
        return [keras.ops.convert_to_numpy(v) for v in y], model
    return keras.ops.convert_to_numpy(y), model


def assert_outputs_close(got, expected) -> None:
    """`expected` from Graph.predict: an array or {output: array} (`got` a dict or a list in
    output order)."""
    if not isinstance(expected, dict):
        np.testing.assert_allclose(got, expected, **TOLERANCE)
        return
    values = got if isinstance(got, list) else [got[name] for name in expected]
    for value, name in zip(values, expected, strict=True):
        np.testing.assert_allclose(value, expected[name], err_msg=name, **TOLERANCE)


def check_onnx(plan, tmp_path, x=None, opset=17, graph=None):
    need("onnx")
    graph = graph or trained_graph(plan)
    x = sample_inputs(plan) if x is None else x
    export_model(plan, graph.weights, tmp_path / "model.onnx", "onnx", opset)
    assert_outputs_close(run_onnx(tmp_path / "model.onnx", x), graph.predict(x))


def check_keras(plan, tmp_path, x=None):
    need("keras")
    graph = trained_graph(plan)
    x = sample_inputs(plan) if x is None else x
    export_model(plan, graph.weights, tmp_path / "model.keras", "keras")
    y, model = run_keras_file(tmp_path / "model.keras", x)
    assert_outputs_close(y, graph.predict(x))
    # the same layers, by name: one Keras layer per owner, one nested model per block instance
    top = [n.instance.split("/")[0] if n.instance else n.name for n in plan.nodes if not n.shared]
    layers = [layer.name for layer in model.layers if type(layer).__name__ != "InputLayer"]
    if len(plan.inputs) > 1:  # Keras orders the branches of several inputs its own way
        layers, top = sorted(layers), sorted(top)
    assert layers == list(dict.fromkeys(top))
    return model


# ---- every bundled spec --------------------------------------------------------------------
@pytest.mark.oracle
@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_spec_onnx_matches_predict(path, tmp_path):
    check_onnx(build_plan(*load_spec(path)), tmp_path)


@pytest.mark.oracle
@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_spec_keras_matches_predict(path, tmp_path):
    check_keras(build_plan(*load_spec(path)), tmp_path)


@pytest.mark.oracle
def test_keras_model_keeps_initializers_constraints_and_arguments(tmp_path):
    model = check_keras(build_plan(*load_spec(ROOT / "specs/notes/dropout_mlp.yaml")), tmp_path)
    dense = model.get_layer("dense")
    assert type(dense.kernel_initializer).__name__ == "RandomNormal"
    assert dense.kernel_constraint.get_config() == {"max_value": 3.0, "axis": 0}
    assert model.get_layer("dropout").rate == 0.2
    lstm = check_keras(build_plan(*load_spec(ROOT / "specs/imdb_lstm.yaml")), tmp_path)
    assert lstm.get_layer("lstm").dropout == 0.2
    assert lstm.get_layer("embedding").mask_zero


# ---- every layer option the bundled specs do not reach ----------------------------------------
def activations_spec(names) -> str:
    """One Dense branch per activation, all joined by a Concatenate."""
    return "input_shape: [5]\nlayers:\n" + "".join(
        f"  - {{type: Dense, units: 3, activation: {name}, inputs: [input], name: {name}}}\n"
        for name in names
    ) + f"  - {{type: Concatenate, inputs: [{', '.join(names)}]}}\n"


ALL_ACTIVATIONS = activations_spec(ACTIVATION_NAMES)

LSTM_VARIANTS = """
input_shape: [9, 3]
layers:
  - {type: Masking, mask_value: 0.0}
  - {type: LSTM, units: 4, return_sequences: true, go_backwards: true}
  - {type: Dense, units: 3, activation: tanh}
  - {type: LSTM, units: 3, return_sequences: true, zero_output_for_mask: true,
     activation: relu, recurrent_activation: hard_sigmoid}
  - {type: BatchNormalization}
  - {type: LSTM, units: 2, zero_output_for_mask: true, use_bias: false}
"""

UNMASKED_LSTM = """
input_shape: [8, 3]
layers:
  - {type: LSTM, units: 4, return_sequences: true, go_backwards: true}
  - {type: LSTM, units: 3, return_sequences: true}
  - {type: LSTM, units: 2, go_backwards: true, use_bias: false}
"""

MASKED_DAG = """
input_shape: [10]
layers:
  - {type: Embedding, input_dim: 9, output_dim: 4, mask_zero: true, name: words}
  - {type: Dense, units: 4, name: left}
  - {type: Dropout, rate: 0.5, inputs: [words], name: right}
  - {type: Add, inputs: [left, right]}
  - {type: Concatenate, inputs: [add, words]}
  - {type: LSTM, units: 3, go_backwards: true}
"""

CONVOLUTIONS = """
input_shape: [9, 7, 4]
layers:
  - {type: Conv2D, filters: 6, kernel_size: [3, 2], strides: 2, padding: same, groups: 2,
     activation: selu}
  - {type: MaxPooling2D, pool_size: 2, strides: 1, padding: same}
  - {type: Conv2D, filters: 4, kernel_size: 2, dilation_rate: [2, 1], padding: same,
     activation: softmax}
  - {type: BatchNormalization, axis: 1}
  - {type: Flatten}
  - {type: Dense, units: 3}
"""

CHANNELS_FIRST = """
input_shape: [3, 8, 6]
data_format: channels_first
layers:
  - {type: Conv2D, filters: 4, kernel_size: 3, padding: same, activation: relu}
  - {type: MaxPool, pool_size: [3, 2], padding: same}
  - {type: BatchNormalization, axis: 1}
  - {type: Conv2D, filters: 2, kernel_size: 2, strides: [2, 1]}
  - {type: Flatten}
  - {type: Dense, units: 3, activation: log_softmax}
"""

SEQUENCE_CONVOLUTIONS = """
input_shape: [11, 3]
layers:
  - {type: Conv1D, filters: 4, kernel_size: 3, padding: causal, dilation_rate: 2,
     activation: gelu}
  - {type: MaxPooling1D, pool_size: 3, strides: 2, padding: same}
  - {type: Conv1D, filters: 4, kernel_size: 2, data_format: channels_first}
  - {type: GlobalMaxPooling1D, keepdims: true, data_format: channels_first}
  - {type: Flatten}
"""

UNKNOWN_LENGTH = """
input_shape: [null, 3]
layers:
  - {type: Conv1D, filters: 4, kernel_size: 4, strides: 2, padding: same, activation: tanh}
  - {type: MaxPooling1D, pool_size: 2, padding: same}
  - {type: Conv1D, filters: 3, kernel_size: 3, dilation_rate: 2, padding: same}
  - {type: Masking}
  - {type: LSTM, units: 3, return_sequences: true}
  - {type: GlobalMaxPooling1D}
"""

INDICES_TO_DENSE = """
input_shape: [4]
layers:
  - {type: Embedding, input_dim: 12, output_dim: 2}
  - {type: Flatten}
  - {type: Dense, units: 3, inputs: [input], name: direct}
  - {type: Concatenate, inputs: [flatten, direct]}
"""

VARIANTS = {"indices_to_dense": INDICES_TO_DENSE, "lstm_variants": LSTM_VARIANTS,
            "unmasked_lstm": UNMASKED_LSTM, "masked_dag": MASKED_DAG, "convolutions": CONVOLUTIONS,
            "channels_first": CHANNELS_FIRST, "sequence_convolutions": SEQUENCE_CONVOLUTIONS}


@pytest.mark.oracle
@pytest.mark.parametrize("name", [*VARIANTS, "all_activations"])
def test_layer_variants_onnx(name, tmp_path):
    check_onnx(plan_of(VARIANTS.get(name, ALL_ACTIVATIONS)), tmp_path)


@pytest.mark.oracle
@pytest.mark.parametrize("name", VARIANTS)
def test_layer_variants_keras(name, tmp_path):
    check_keras(plan_of(VARIANTS[name]), tmp_path)


@pytest.mark.oracle
def test_every_activation_keras_except_a_wrong_sparsemax(tmp_path):
    keras = need("keras")
    from layerctl.export.keras import _keras_sparsemax_ok

    if _keras_sparsemax_ok(keras):
        check_keras(plan_of(ALL_ACTIVATIONS), tmp_path)
        return
    with pytest.raises(ExportError, match=r"layer 'sparsemax' \(Dense\).*keras#23425"):
        check_keras(plan_of(ALL_ACTIVATIONS), tmp_path)
    others = [name for name in ACTIVATION_NAMES if name != "sparsemax"]
    check_keras(plan_of(activations_spec(others)), tmp_path)


@pytest.mark.oracle
@pytest.mark.parametrize("check", [check_onnx, check_keras], ids=["onnx", "keras"])
def test_masking_a_nonzero_value(check, tmp_path):
    """Masked steps become 0 (not mask_value) for the layers that do not skip them."""
    plan = plan_of("input_shape: [6, 2]\nlayers:\n  - {type: Masking, mask_value: 0.5}\n"
                   "  - {type: Dense, units: 3}\n  - {type: LSTM, units: 2, "
                   "return_sequences: true}\n  - {type: Concatenate, inputs: [dense, lstm]}\n")
    x = sample_inputs(plan)
    x[x == 0] = 0.5
    x[4, 2, 0] = 0.5  # one feature equal to mask_value does not mask the step
    check(plan, tmp_path, x)


@pytest.mark.oracle
def test_max_pool_padding_never_wins(tmp_path):
    plan = plan_of("input_shape: [5, 5, 2]\nlayers:\n"
                   "  - {type: MaxPooling2D, pool_size: 2, padding: same}\n")
    x = -np.random.default_rng(0).uniform(1, 2, size=(2, 5, 5, 2)).astype(np.float32)
    check_onnx(plan, tmp_path, x)
    assert np.all(run_onnx(tmp_path / "model.onnx", x) < 0)


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore:.*will therefore destroy the mask:UserWarning")
def test_unknown_lengths_and_batch_sizes(tmp_path):
    plan = plan_of(UNKNOWN_LENGTH)
    graph = trained_graph(plan)
    check_onnx(plan, tmp_path, sample_inputs(plan, steps=9), graph=graph)
    for batch, steps in ((1, 12), (3, 5)):
        x = sample_inputs(plan, n=max(batch, 4), steps=steps)[:batch]
        np.testing.assert_allclose(run_onnx(tmp_path / "model.onnx", x), graph.predict(x),
                                   **TOLERANCE)
    check_keras(plan, tmp_path, sample_inputs(plan, steps=10))


@pytest.mark.oracle
@pytest.mark.parametrize("opset", [18, 21])
def test_newer_opsets(opset, tmp_path):
    check_onnx(plan_of(LSTM_VARIANTS), tmp_path, opset=opset)
    check_onnx(plan_of(SEQUENCE_CONVOLUTIONS), tmp_path, opset=opset)


@pytest.mark.oracle
def test_onnx_model_is_named_and_typed(tmp_path):
    onnx = need("onnx")
    plan = build_plan(*load_spec(ROOT / "specs/text_lstm.yaml"))
    export_model(plan, trained_graph(plan).weights, tmp_path / "m.onnx", "onnx")
    model = onnx.load(tmp_path / "m.onnx")
    assert model.opset_import[0].version == 17
    (given,), (output,) = model.graph.input, model.graph.output
    assert given.type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert given.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert output.name == "dense"
    produced = {name for node in model.graph.node for name in node.output}
    assert {"embedding", "lstm", "dense"} <= produced
    assert "Scan" in {node.op_type for node in model.graph.node}  # masked: not the LSTM op


# ---- errors ----------------------------------------------------------------------------------
@pytest.mark.oracle
def test_layer_without_converter_is_named(monkeypatch, tmp_path):
    need("onnx")
    from layerctl.export import onnx as onnx_export

    monkeypatch.delitem(onnx_export.CONVERTERS, "GlobalMaxPooling1D")
    plan = build_plan(*load_spec(ROOT / "specs/text_cnn.yaml"))
    with pytest.raises(ExportError, match=r"layer 'global_max_pooling1d' \(GlobalMaxPooling1D\) "
                                          "cannot be exported to ONNX"):
        export_model(plan, trained_graph(plan).weights, tmp_path / "m.onnx", "onnx")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.oracle
def test_bad_opset_and_keras_suffix(tmp_path):
    need("onnx")
    plan = plan_of("input_shape: [2]\nlayers:\n  - {type: Dense, units: 1}\n")
    weights = trained_graph(plan).weights
    with pytest.raises(ExportError, match="opset 12 is not supported: choose 17 to"):
        export_model(plan, weights, tmp_path / "m.onnx", "onnx", opset=12)
    with pytest.raises(ExportError, match=r"must end in \.keras"):
        export_model(plan, weights, tmp_path / "m.h5", "keras")


@pytest.mark.oracle
def test_channels_first_conv_softmax_exports_to_both(tmp_path):
    """layerctl, like Keras, applies a conv's softmax over the last axis of its output."""
    need("keras")
    plan = plan_of("input_shape: [2, 4, 4]\nlayers:\n  - {type: Conv2D, filters: 2, "
                   "kernel_size: 1, activation: softmax, data_format: channels_first}\n")
    check_onnx(plan, tmp_path)
    check_keras(plan, tmp_path)


@pytest.mark.oracle
def test_failed_write_leaves_nothing(monkeypatch, tmp_path):
    onnx = need("onnx")
    plan = plan_of("input_shape: [2]\nlayers:\n  - {type: Dense, units: 1}\n")
    (tmp_path / "m.onnx").write_bytes(b"old")

    def broken(model, path):
        Path(path).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(onnx, "save_model", broken)
    with pytest.raises(OSError):
        export_model(plan, trained_graph(plan).weights, tmp_path / "m.onnx", "onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    assert (tmp_path / "m.onnx").read_bytes() == b"old"


def test_backend_choice(monkeypatch, tmp_path):
    from layerctl.export import keras as keras_export

    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert keras_export.choose_backend() == "jax"
    monkeypatch.delenv("KERAS_BACKEND")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "keras.json").write_text('{"backend": "tensorflow"}')
    installed = {"torch"}
    monkeypatch.setattr(keras_export, "_installed", lambda backend: backend in installed)
    assert keras_export.choose_backend() == "torch"  # tensorflow configured but missing
    assert os.environ["KERAS_BACKEND"] == "torch"
    monkeypatch.delenv("KERAS_BACKEND")
    installed.add("tensorflow")
    assert keras_export.choose_backend() == "tensorflow"
    assert "KERAS_BACKEND" not in os.environ
    installed.clear()
    with pytest.raises(ExportError, match="Keras needs a backend"):
        keras_export.choose_backend()


def test_importing_layerctl_imports_neither_onnx_nor_keras():
    code = ("import sys, layerctl.cli, layerctl.export, layerctl.commands.export; "
            "print(sorted({'onnx', 'keras', 'torch'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


# ---- the command -----------------------------------------------------------------------------
def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def digits(tmp_path):
    """(spec, weights file, inputs file) of the digits CNN with random weights."""
    spec = ROOT / "specs/digits_cnn.yaml"
    plan = build_plan(*load_spec(spec))
    save_npz(tmp_path / "w.npz", trained_graph(plan).get_weights())
    x = sample_inputs(plan, n=5)
    np.save(tmp_path / "x.npy", x)
    return spec, tmp_path / "w.npz", tmp_path / "x.npy"


@pytest.mark.oracle
def test_cli_export_onnx_equals_predict(digits, tmp_path):
    spec, weights, inputs = digits
    result = invoke("export", spec, "--weights", weights, "-o", tmp_path / "d.onnx")
    assert result.exit_code == 0, result.output
    assert "ONNX opset 17" in result.output and "'dense_1' (batch, 10)" in result.output
    assert invoke("predict", spec, inputs, "--weights", weights, "-o",
                  tmp_path / "y.npy").exit_code == 0
    np.testing.assert_allclose(run_onnx(tmp_path / "d.onnx", np.load(inputs)),
                               np.load(tmp_path / "y.npy"), **TOLERANCE)


@pytest.mark.oracle
def test_cli_export_keras(digits, tmp_path):
    spec, weights, inputs = digits
    result = invoke("export", spec, "--weights", weights, "--format", "keras",
                    "-o", tmp_path / "d.keras")
    assert result.exit_code == 0, result.output
    assert "functional model 'digits-cnn', 8 layers" in result.output
    y, _ = run_keras_file(tmp_path / "d.keras", np.load(inputs))
    expected = trained_graph(build_plan(*load_spec(spec))).predict(np.load(inputs))
    np.testing.assert_allclose(y, expected, **TOLERANCE)


@pytest.mark.parametrize("module, extra", [("onnx", "onnx"), ("keras", "keras")])
def test_cli_missing_extra_says_what_to_install(module, extra, digits, tmp_path, monkeypatch):
    spec, weights, _ = digits
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == module else real_find_spec(name, *a))
    result = invoke("export", spec, "--weights", weights, "-o", tmp_path / f"m.{module}")
    assert result.exit_code == 1
    assert f"pip install 'layerctl[{extra}]'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / f"m.{module}").exists()


@pytest.mark.parametrize("args, message", [
    (["--format", "tflite", "-o", "m.tflite"], "'tflite' is not one of 'onnx', 'keras'"),
    (["-o", "m.bin"], "cannot tell the format from 'm.bin'"),
    (["-o", "m.keras", "--opset", "18"], "--opset applies to --format onnx only"),
])
def test_cli_usage_errors(args, message, digits):
    spec, weights, _ = digits
    result = invoke("export", spec, "--weights", weights, *args)
    assert result.exit_code == 2 and message in result.output


def test_cli_weights_missing(digits, tmp_path):
    spec, _, _ = digits
    result = invoke("export", spec, "-o", tmp_path / "m.onnx")
    assert result.exit_code == 2 and "Missing option '--weights'" in result.output
    need("onnx")
    result = invoke("export", spec, "--weights", tmp_path / "nope.npz", "-o", tmp_path / "m.onnx")
    assert result.exit_code == 1 and "nope.npz: no such weights file" in result.output
    other = ROOT / "specs/digits_mlp.yaml"
    result = invoke("export", other, "--weights", digits[1], "-o", tmp_path / "m.onnx")
    assert result.exit_code == 1 and "missing weight 'dense_2/kernel'" in result.output
    assert not (tmp_path / "m.onnx").exists()


# ---- Keras weights -> layerctl predict ---------------------------------------------------------
@pytest.mark.oracle
@pytest.mark.parametrize("name", ["digits_cnn.yaml", "text_lstm.yaml", "conv2d_flatten_dense.yaml",
                                  "residual_dag.yaml"])
def test_keras_weights_round_trip_through_predict(name, tmp_path):
    need("keras")
    from keras_bridge import keras, keras_model, run_keras

    spec = next(p for p in SPECS if p.name == name)
    plan = build_plan(*load_spec(spec))
    keras.utils.set_random_seed(0)
    model = keras_model(plan)  # Keras draws the weights with its own initializers
    rng = np.random.default_rng(2)
    for layer in model.layers:
        if layer.name.startswith("batch_normalization"):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([gamma, beta, rng.normal(size=mean.shape),
                               rng.uniform(0.5, 2, size=variance.shape)])
    weights = {f"{layer.name}/{w.name}": keras.ops.convert_to_numpy(w.value)
               for layer in model.layers for w in layer.weights}
    save_npz(tmp_path / "w.npz", weights)
    x = sample_inputs(plan, n=5)
    np.save(tmp_path / "x.npy", x)
    result = invoke("predict", spec, tmp_path / "x.npy", "--weights", tmp_path / "w.npz",
                    "-o", tmp_path / "y.npy")
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), run_keras(model, x, training=False),
                               **TOLERANCE)


def test_export_error_is_a_layerctl_error():
    assert issubclass(ExportError, LayerctlError)
    assert importlib.import_module("layerctl.export").DEFAULT_OPSET == 17
