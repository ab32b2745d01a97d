"""`layerctl import` of JSON model configs: Keras 3 `to_json()` (oracle: models built in Keras
from code, whose shapes and predictions the imported spec reproduces) and the Keras 1 and 2
layouts (hand-written configs in their formats)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from layerctl.graph import Graph
from layerctl.importer import ImportError_, import_source
from layerctl.plan import build_plan
from layerctl.report import summary_json
from layerctl.spec import parse_spec


def import_json(tmp_path: Path, config: dict | str, name: str = "model.json") -> str:
    path = tmp_path / name
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    return import_source(str(path)).text


def plan_of(text: str):
    spec, marks = parse_spec(text, "imported.yaml")
    return build_plan(spec, marks)


def rows(plan) -> dict[str, list]:
    return {row["name"]: row["output_shape"] for row in summary_json(plan)["layers"]}


# ---- Keras 3 (oracle) -------------------------------------------------------------------
def keras_models():
    from keras_bridge import keras  # sets the torch backend first

    layers = keras.layers
    keras.utils.clear_session()  # Keras's default names, as a fresh process gives them
    yield "sequential_cnn", keras.Sequential([
        keras.Input((8, 8, 1)), layers.Conv2D(4, 3, padding="same", activation="relu"),
        layers.BatchNormalization(), layers.MaxPooling2D(), layers.Conv2D(6, (2, 2), strides=2),
        layers.Flatten(), layers.Dropout(0.2), layers.Dense(3, activation="softmax")])
    yield "sequential_lstm", keras.Sequential([
        keras.Input((5, 3)), layers.Masking(), layers.LSTM(4, return_sequences=True),
        layers.LSTM(2, recurrent_activation="hard_sigmoid")])
    a, b = keras.Input((5,), name="a"), keras.Input((5,), name="b")
    shared = layers.Dense(3, activation="tanh", name="shared")
    joined = layers.Concatenate()([shared(a), shared(b)])
    hidden = layers.Dense(4, kernel_regularizer="l2", use_bias=False)(joined)
    yield "functional_shared", keras.Model(
        [a, b], [layers.Dense(2, name="out")(hidden), layers.Add()([shared(a), shared(b)])])
    x = keras.Input((6, 6, 2))
    h = layers.Conv2D(3, 3, padding="same")(x)
    h = layers.Add()([h, layers.Conv2D(3, 1)(x)])
    h = layers.GlobalAveragePooling2D()(layers.Activation("relu")(h))
    yield "functional_residual", keras.Model(x, layers.Dense(2)(h))
    # call arguments beyond the first: key and causal mask, scores as a second output
    q, v = keras.Input((5, 4), name="q"), keras.Input((5, 6), name="v")
    attended, scores = layers.MultiHeadAttention(2, 3, value_dim=5, name="mha")(
        q, v, key=layers.Dense(6)(v), use_causal_mask=True, return_attention_scores=True)
    yield "functional_attention", keras.Model(
        [q, v], [layers.Dense(2)(layers.GlobalAveragePooling1D()(attended)), scores])
    # wrappers: nested configs, a backward layer of its own (of the forward layer's units:
    # Keras infers a wrong concat shape for other units), weights under sub-objects
    yield "sequential_wrappers", keras.Sequential([
        keras.Input((6, 3)), layers.TimeDistributed(layers.Dense(4, activation="relu")),
        layers.Bidirectional(layers.LSTM(3, return_sequences=True),
                             backward_layer=layers.LSTM(3, return_sequences=True,
                                                        activation="relu", go_backwards=True)),
        layers.Bidirectional(layers.GRU(2, name="summary"), merge_mode="sum")])
    # states into a decoder: one tensor (GRU) and a list (LSTM)
    source, target = keras.Input((4, 3), name="source"), keras.Input((5, 3), name="target")
    _, h = layers.GRU(4, return_state=True)(source)
    _, h2, c2 = layers.LSTM(4, return_state=True)(source)
    decoded = layers.GRU(4, return_sequences=True)(target, initial_state=h)
    decoded = layers.LSTM(4)(decoded, initial_state=[h2, c2])
    yield "functional_states", keras.Model([source, target], layers.Dense(2)(decoded))
    # models used as layers (blocks): a Sequential, and a two-input Functional used twice
    mlp = keras.Sequential([keras.Input((5,)), layers.Dense(4, activation="relu"),
                            layers.Dense(3)], name="mlp")
    a, b = keras.Input((3,)), keras.Input((3,))
    mixed = layers.Add()([layers.Dense(3, use_bias=False)(a), b])
    first = keras.Model([a, b], mixed, name="pair_1")
    a2, b2 = keras.Input((3,)), keras.Input((3,))
    second = keras.Model([a2, b2], layers.Add()([layers.Dense(3, use_bias=False)(a2), b2]),
                         name="pair_2")
    x = keras.Input((5,), name="features")
    h = mlp(x)
    yield "functional_nested", keras.Model(x, second([first([h, h]), h]))


KERAS_MODELS = ["sequential_cnn", "sequential_lstm", "functional_shared", "functional_residual"]
# layers whose weights sit under sub-objects (mha/query/kernel): read from `.keras` archives
NESTED_MODELS = ["functional_attention", "sequential_wrappers", "functional_states",
                 "functional_nested"]


@pytest.mark.oracle
@pytest.mark.parametrize("which", KERAS_MODELS)
def test_keras3_to_json_imports_with_keras_shapes_and_predictions(which, tmp_path):
    model = dict(keras_models())[which]
    text = import_json(tmp_path, model.to_json())
    plan = plan_of(text)
    # every layer's output shape is Keras's (one row per call: a shared layer's later calls
    # are `apply:` rows named after it)
    got = rows(plan)
    for layer in model.layers:
        if layer.__class__.__name__ == "InputLayer":
            continue
        for k, node in enumerate(layer._inbound_nodes):
            name = [n for n in got if n == layer.name or n.startswith(layer.name + "_")][k]
            assert got[name] == list(node.outputs[0].shape), (layer.name, k)
    assert summary_json(plan)["total_params"] == model.count_params()
    graph = Graph(plan)
    graph.set_weights({f"{layer.name}/{w.name}": np.asarray(w) for layer in model.layers
                       for w in layer.weights})
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(4,) + tuple(i.shape[1:])).astype("float32") for i in model.inputs]
    if which == "sequential_lstm":
        xs[0][:, -2:] = 0.0  # masked steps
    expected = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    got_out = graph.predict({i.name: x for i, x in zip(plan.inputs, xs, strict=True)})
    if isinstance(got_out, dict):
        got_out = list(got_out.values())
        for g, e in zip(got_out, expected, strict=True):
            np.testing.assert_allclose(g, e, atol=1e-5)
    else:
        np.testing.assert_allclose(got_out, expected, atol=1e-5)


@pytest.mark.oracle
def test_keras3_configs_leave_defaults_out(tmp_path):
    model = dict(keras_models())["sequential_cnn"]
    text = import_json(tmp_path, model.to_json())
    assert "- {type: Conv2D, filters: 4, kernel_size: 3, padding: same, activation: relu}" \
        in text
    assert "- {type: BatchNormalization}" in text and "- {type: MaxPooling2D}" in text
    assert "name:" not in text.split("layers:")[1]  # Keras's default names are layerctl's


# ---- Keras 2 and Keras 1 layouts ----------------------------------------------------------
KERAS2_SEQUENTIAL = {
    "class_name": "Sequential", "keras_version": "2.2.4", "backend": "tensorflow",
    "config": {"name": "sequential_1", "layers": [
        {"class_name": "Dense", "config": {
            "name": "dense_1", "trainable": True, "batch_input_shape": [None, 20],
            "dtype": "float32", "units": 64, "activation": "relu", "use_bias": True,
            "kernel_initializer": {"class_name": "VarianceScaling", "config": {
                "scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": None}},
            "bias_initializer": {"class_name": "Zeros", "config": {}},
            "kernel_regularizer": {"class_name": "L1L2", "config": {"l1": 0.0, "l2": 0.01}},
            "bias_regularizer": None, "activity_regularizer": None,
            "kernel_constraint": {"class_name": "MaxNorm", "config": {"max_value": 3,
                                                                       "axis": 0}},
            "bias_constraint": None}},
        {"class_name": "Dropout", "config": {"name": "dropout_1", "trainable": True,
                                             "rate": 0.5, "noise_shape": None, "seed": None}},
        {"class_name": "Dense", "config": {"name": "dense_2", "trainable": True,
                                           "units": 10, "activation": "softmax"}},
    ]},
}


def test_keras2_sequential_layout(tmp_path):
    text = import_json(tmp_path, KERAS2_SEQUENTIAL)
    plan = plan_of(text)
    # Keras 2 numbered from 1: its names are kept (they key the weights of its .h5 files)
    assert rows(plan) == {"dense_1": [None, 64], "dropout_1": [None, 64], "dense_2": [None, 10]}
    assert "input_shape: [20]" in text and "# was batch_input_shape=(None, 20)" in text
    assert "kernel_regularizer: {type: l1_l2, l1: 0.0, l2: 0.01}" in text


KERAS1_FUNCTIONAL = {
    "class_name": "Model", "keras_version": "1.2.2",
    "config": {"name": "model_1", "layers": [
        {"class_name": "InputLayer", "name": "input_1", "inbound_nodes": [],
         "config": {"batch_input_shape": [None, 3, 8, 8], "input_dtype": "float32",
                    "sparse": False, "name": "input_1"}},
        {"class_name": "Convolution2D", "name": "convolution2d_1",
         "inbound_nodes": [[["input_1", 0, 0]]],
         "config": {"name": "convolution2d_1", "trainable": True, "nb_filter": 4,
                    "nb_row": 3, "nb_col": 3, "init": "glorot_uniform", "activation": "relu",
                    "border_mode": "same", "subsample": [1, 1], "dim_ordering": "th",
                    "W_regularizer": None, "b_regularizer": None,
                    "activity_regularizer": None,
                    "W_constraint": {"name": "MaxNorm", "m": 2, "axis": 0},
                    "b_constraint": None, "bias": True}},
        {"class_name": "Flatten", "name": "flatten_1", "inbound_nodes": [[["convolution2d_1",
                                                                          0, 0]]],
         "config": {"name": "flatten_1", "trainable": True}},
        {"class_name": "Dense", "name": "dense_1", "inbound_nodes": [[["flatten_1", 0, 0]]],
         "config": {"name": "dense_1", "output_dim": 5, "init": "glorot_uniform",
                    "activation": "linear", "W_regularizer": {"name": "WeightRegularizer",
                                                              "l1": 0.0, "l2": 0.001},
                    "b_regularizer": None, "activity_regularizer": None,
                    "W_constraint": None, "b_constraint": None, "bias": True,
                    "input_dim": None, "trainable": True}},
        {"class_name": "Dense", "name": "dense_2", "inbound_nodes": [[["flatten_1", 0, 0]]],
         "config": {"name": "dense_2", "output_dim": 5, "bias": False, "trainable": True}},
        {"class_name": "Merge", "name": "merge_1",
         "inbound_nodes": [[["dense_1", 0, 0], ["dense_2", 0, 0]]],
         "config": {"name": "merge_1", "mode": "concat", "concat_axis": -1,
                    "mode_type": "raw", "output_shape": None, "output_shape_type": "raw",
                    "output_mask": None, "output_mask_type": "raw", "arguments": {},
                    "dot_axes": -1}},
    ], "input_layers": [["input_1", 0, 0]], "output_layers": [["merge_1", 0, 0]]},
}


def test_keras1_functional_layout(tmp_path):
    config = json.loads(json.dumps(KERAS1_FUNCTIONAL))
    config["config"]["layers"][-1]["config"].pop("dot_axes")
    text = import_json(tmp_path, config)
    plan = plan_of(text)
    assert rows(plan) == {"convolution2d_1": [None, 4, 8, 8], "flatten_1": [None, 256],
                          "dense_1": [None, 5], "dense_2": [None, 5], "merge_1": [None, 10]}
    assert "data_format: channels_first" in text and "was dim_ordering='th'" in text
    assert "Keras 1's Flatten kept the stored (channels-first) order" in text
    assert "kernel_constraint: {type: max_norm, max_value: 2, axis: 0}" in text
    assert "kernel_regularizer: {type: l2, l2: 0.001}" in text
    assert "{type: Dense, units: 5, use_bias: false, name: dense_2, inputs: [flatten_1]}" in text


@pytest.mark.parametrize(("config", "message"), [
    ({"class_name": "Sequential", "config": {"layers": [
        {"class_name": "MyCustomLayer", "config": {"units": 3}}]}},
     "model.json: layer 1 (MyCustomLayer): `MyCustomLayer` is not a layer type layerctl "
     "supports"),
    ({"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Lambda", "config": {"function": ["4wEAAAAAAAAA", None, None]}}]}},
     "model.json: layer 1 (Lambda): `Lambda` is not a layer type layerctl supports"),
    ({"class_name": "Sequential", "config": {"layers": [
        {"class_name": "BatchNormalization", "config": {"renorm": True,
                                                        "batch_input_shape": [None, 3]}}]}},
     "model.json: layer 1 (BatchNormalization): `renorm: true` is not supported"),
    ({"class_name": "Widget", "config": {}},
     "model.json: not a Keras model config: expected `class_name` Sequential, Functional or "
     "Model"),
    ('{"class_name": "Sequential", "config": ', "model.json:1:40: not valid JSON"),
])
def test_unknown_or_unsupported_configs_are_refused_with_a_location(tmp_path, config, message):
    path = tmp_path / "model.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    with pytest.raises(ImportError_) as caught:
        import_source(str(path))
    assert caught.value.problems[0].render().replace(str(tmp_path) + "/", "").startswith(
        message), caught.value.problems[0].render()


def assert_predicts_like(plan, graph, model) -> None:
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(4,) + tuple(i.shape[1:])).astype("float32") for i in model.inputs]
    expected = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    got = graph.predict({i.name: x for i, x in zip(plan.inputs, xs, strict=True)})
    if isinstance(got, dict):
        for g, e in zip(got.values(), expected, strict=True):
            np.testing.assert_allclose(g, e, atol=1e-5)
    else:
        np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.oracle
@pytest.mark.parametrize("which", KERAS_MODELS + NESTED_MODELS)
def test_keras3_archive_of_a_model_built_in_code_predicts_like_keras(which, tmp_path):
    from click.testing import CliRunner

    from layerctl.cli import cli

    model = dict(keras_models())[which]
    model.save(tmp_path / "model.keras")
    out, npz = tmp_path / "model.yaml", tmp_path / "weights.npz"
    result = CliRunner().invoke(cli, ["import", str(tmp_path / "model.keras"), "-o", str(out),
                                      "--weights-out", str(npz)])
    assert result.exit_code == 0, result.output
    plan = plan_of(out.read_text())
    graph = Graph(plan)
    with np.load(npz) as loaded:
        graph.set_weights(dict(loaded))
    assert_predicts_like(plan, graph, model)


SOURCES = {
    "sequential": """
import keras
from keras import layers

model = keras.Sequential([
    keras.Input(shape=(6, 6, 1)),
    layers.Conv2D(4, (3, 3), padding="same", activation="relu", name="conv"),
    layers.MaxPooling2D(pool_size=(2, 2)),
    layers.Flatten(),
    layers.Dense(5, activation="tanh"),
])
""",
    "functional": """
import keras
from keras import layers

a = keras.Input(shape=(4,), name="a")
b = keras.Input(shape=(4,), name="b")
shared = layers.Dense(3, activation="relu", name="shared")
joined = layers.concatenate([shared(a), shared(b)])
out = layers.Dense(2, name="out")(joined)
model = keras.Model(inputs=[a, b], outputs=[out, joined])
""",
    "attention": """
import keras
from keras import layers

q = keras.Input(shape=(5, 4), name="q")
v = keras.Input(shape=(5, 6), name="v")
mha = layers.MultiHeadAttention(2, 3, value_dim=5, name="mha")
attended, scores = mha(q, v, key=layers.Dense(6)(v), use_causal_mask=True,
                       return_attention_scores=True)
pooled = layers.GlobalAveragePooling1D()(attended)
model = keras.Model([q, v], [layers.Dense(2)(pooled), scores])
""",
    "wrappers_and_states": """
from keras import Input, Model
from keras.layers import GRU, LSTM, Bidirectional, Dense, TimeDistributed

source = Input((4, 3), name="source")
target = Input((5, 3), name="target")
encoded, h, c = LSTM(4, return_state=True)(source)
decoded = LSTM(4, return_sequences=True)(target, initial_state=[h, c])
decoded = TimeDistributed(Dense(3, activation="relu"))(decoded)
summary = Bidirectional(GRU(2, name="summary"), merge_mode="sum")(decoded)
model = Model([source, target], Dense(2, name="out")(summary))  # (Keras numbers dense
# layers across wrappers, layerctl within them: `dense_1` would be `dense` in the spec)
""",
}


def layerctl_key(path: str, model_name: str) -> str:
    """A Keras variable path as layerctl's weight key (no model prefix, no `*_cell`)."""
    parts = path.split("/")
    if parts[0] == model_name:
        parts = parts[1:]
    return "/".join(p for p in parts if not p.endswith("_cell"))


@pytest.mark.oracle
@pytest.mark.parametrize("which", sorted(SOURCES))
def test_python_source_imports_like_the_model_it_builds(which, tmp_path):
    from keras_bridge import keras

    keras.utils.clear_session()
    scope: dict = {}
    exec(SOURCES[which], scope)  # the oracle: Keras builds the model (the importer never runs it)
    model = scope["model"]
    path = tmp_path / "model.py"
    path.write_text(SOURCES[which])
    plan = plan_of(import_source(str(path)).text)
    graph = Graph(plan)
    graph.set_weights({layerctl_key(w.path, model.name): np.asarray(w)
                       for w in model.weights})
    assert summary_json(plan)["total_params"] == model.count_params()
    assert_predicts_like(plan, graph, model)


@pytest.mark.oracle
def test_a_nested_model_called_twice_is_refused_by_name(tmp_path):
    from keras_bridge import keras

    layers = keras.layers
    x = keras.Input((3,))
    inner = keras.Model(x, layers.Dense(2)(x), name="shared_block")
    y = keras.Input((3,))
    model = keras.Model(y, layers.Add()([inner(y), inner(y)]))
    with pytest.raises(ImportError_, match="`shared_block`: a nested model called twice"):
        import_json(tmp_path, model.to_json())


@pytest.mark.oracle
def test_a_call_argument_layerctl_does_not_take_is_refused_by_name(tmp_path):
    from keras_bridge import keras

    layers = keras.layers
    x, h, c = keras.Input((4, 3)), keras.Input((2,)), keras.Input((2,))
    bidirectional = layers.Bidirectional(layers.LSTM(2), name="bi")
    model = keras.Model([x, h, c], bidirectional(x, initial_state=[h, c, h, c]))
    with pytest.raises(ImportError_, match=r"`bi`: call arguments \(initial_state\) are not "
                                           r"read: layerctl's Bidirectional takes"):
        import_json(tmp_path, model.to_json())

