"""Whole graphs: gradient checks in float64, and every bundled spec against Keras 3."""

from pathlib import Path

import numpy as np
import pytest
from gradcheck import check_graph

from layerctl.graph import Graph
from layerctl.plan import build_plan
from layerctl.spec import load_spec, parse_spec

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(p for p in (ROOT / "specs").rglob("*.yaml") if "invalid" not in p.parts)


def graph_of(text: str, dtype=np.float64) -> Graph:
    spec, marks = parse_spec(text)
    graph = Graph(build_plan(spec, marks), dtype)
    graph.initialize(np.random.default_rng(0))
    return graph


SMALL_CNN = """
input_shape: [6, 6, 2]
layers:
  - {type: Conv2D, filters: 3, kernel_size: 3, padding: same, activation: tanh}
  - {type: BatchNormalization}
  - {type: MaxPool, pool_size: 2}
  - {type: Conv2D, filters: 2, kernel_size: 2, strides: 1, data_format: channels_first}
  - {type: Flatten}
  - {type: Dense, units: 3, activation: softmax}
"""

SMALL_DAG = """
input_shape: [5]
layers:
  - {type: Dense, units: 4, activation: tanh, name: a}
  - {type: Dense, units: 4, activation: sigmoid, name: b}
  - {type: Add, inputs: [a, b]}
  - {type: Dense, units: 3, inputs: [input], name: c, activity_regularizer: {type: l2, l2: 0.1}}
  - {type: Concatenate, inputs: [add, c]}
  - {type: Dense, units: 2}
"""

MASKED_TEXT = """
input_shape: [6]
layers:
  - {type: Embedding, input_dim: 7, output_dim: 3, mask_zero: true}
  - {type: LSTM, units: 3, return_sequences: true}
  - {type: Dense, units: 2, activation: relu}
  - {type: LSTM, units: 2, go_backwards: true}
  - {type: Dense, units: 1}
"""

MASKING_CONV = """
input_shape: [7, 3]
layers:
  - {type: Masking}
  - {type: Conv1D, filters: 2, kernel_size: 3, padding: causal, dilation_rate: 2}
  - {type: MaxPooling1D, pool_size: 2, padding: same}
  - {type: GlobalMaxPooling1D}
  - {type: Dense, units: 2}
"""


@pytest.mark.parametrize("training", [False, True])
def test_gradients_small_cnn(training):
    x = np.random.default_rng(1).normal(size=(3, 6, 6, 2))
    check_graph(graph_of(SMALL_CNN), x, training=training)


def test_gradients_dag_with_activity_regularizer():
    graph = graph_of(SMALL_DAG)
    x = np.random.default_rng(2).normal(size=(4, 5))
    check_graph(graph, x)
    # the activity penalty's gradient is included: compare the penalty slope too
    graph.forward(x)
    assert graph.activity_penalty > 0


def test_gradients_masked_text():
    x = np.array([[0, 0, 1, 2, 3, 4], [5, 6, 1, 0, 0, 0], [1, 2, 3, 4, 5, 6]])
    check_graph(graph_of(MASKED_TEXT), x)


def test_gradients_masking_conv_and_dropout():
    x = np.random.default_rng(3).normal(size=(2, 7, 3))
    x[0, :2] = 0
    check_graph(graph_of(MASKING_CONV), x)
    dropout = graph_of(
        "input_shape: [4]\nlayers:\n  - {type: Dense, units: 3}\n"
        "  - {type: Dropout, rate: 0.4}\n  - {type: Dense, units: 2}\n"
    )
    check_graph(dropout, np.random.default_rng(4).normal(size=(5, 4)), training=True)


RELU_POOLS_2D = """
input_shape: [8, 8, 2]
layers:
  - {type: Conv2D, filters: 3, kernel_size: 3, padding: same, activation: relu, name: c1}
  - {type: MaxPool, pool_size: 2, name: p1}
  - {type: Conv2D, filters: 4, kernel_size: 2, activation: relu, data_format: channels_first,
     name: c2}
  - {type: MaxPooling2D, pool_size: 2, strides: 1, padding: same, data_format: channels_first,
     name: p2}
  - {type: Flatten}
  - {type: Dense, units: 2}
"""

RELU_POOLS_1D = """
input_shape: [10, 3]
layers:
  - {type: Dense, units: 4, activation: relu, name: d1}
  - {type: MaxPooling1D, pool_size: 3, strides: 2, name: p1}
  - {type: Conv1D, filters: 2, kernel_size: 2, activation: relu, name: c1}
  - {type: MaxPooling1D, pool_size: 2, padding: same, name: p2}
  - {type: Flatten, name: f1}
  - {type: Conv1D, filters: 2, kernel_size: 2, activation: relu, inputs: [p1], name: c2}
  - {type: MaxPooling1D, pool_size: 2, name: p3}
  - {type: Flatten, name: f4}
  - {type: Flatten, inputs: [c2], name: f2}
  - {type: Dense, units: 2, activation: relu, activity_regularizer: l2, inputs: [p1], name: d2}
  - {type: MaxPooling1D, pool_size: 2, name: p4}
  - {type: Flatten, name: f3}
  - {type: Concatenate, inputs: [f1, f4, f2, f3]}
  - {type: Dense, units: 1}
"""


def test_pools_apply_the_relu_gradient_of_the_layer_they_alone_consume():
    assert graph_of(RELU_POOLS_2D)._relu_pools == {"p1": "c1", "p2": "c2"}
    # c2 also feeds f2 and d2 has an activity penalty: only d1 and c1 leave their relu
    assert graph_of(RELU_POOLS_1D)._relu_pools == {"p1": "d1", "p2": "c1"}


@pytest.mark.parametrize("text, shape", [(RELU_POOLS_2D, (3, 8, 8, 2)),
                                         (RELU_POOLS_1D, (3, 10, 3))])
def test_gradients_relu_then_max_pooling(text, shape):
    check_graph(graph_of(text), np.random.default_rng(5).normal(size=shape))


@pytest.mark.parametrize("text, shape", [(RELU_POOLS_2D, (16, 8, 8, 2)),
                                         (RELU_POOLS_1D, (16, 10, 3))])
def test_relu_left_to_the_pool_gives_the_same_gradients_bit_for_bit(text, shape):
    x = np.random.default_rng(6).normal(size=shape).astype(np.float32)
    projection = None
    gradients = []
    for fold in (True, False):
        graph = graph_of(text, np.float32)
        if not fold:
            graph._relu_pools = {}   # every layer applies its own relu gradient
        y = graph.forward(x, training=True)
        if projection is None:
            projection = np.random.default_rng(7).normal(size=y.shape).astype(np.float32)
        graph.backward(projection)
        gradients.append(graph.gradients.copy())
    np.testing.assert_array_equal(gradients[0], gradients[1])
    assert np.count_nonzero(gradients[0]) > 0.5 * gradients[0].size


def test_fused_logits_skip_output_activation():
    graph = graph_of(SMALL_CNN)
    x = np.random.default_rng(1).normal(size=(2, 6, 6, 2))
    logits = graph.forward(x, logits=True)
    probabilities = graph.forward(x)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-12)


def test_weights_are_views_into_one_buffer():
    graph = graph_of(SMALL_CNN)
    graph.trainable[:] = 0.5
    assert all(np.all(graph.weights[k] == 0.5) for k in graph.grads)
    assert np.all(graph.weights["batch_normalization/moving_variance"] == 1)  # separate buffer
    assert list(graph.weights) == graph.keys()


def test_batchnorm_moving_statistics_update_in_training_only():
    graph = graph_of(SMALL_CNN)
    x = np.random.default_rng(1).normal(size=(3, 6, 6, 2))
    graph.forward(x, training=False)
    assert np.all(graph.weights["batch_normalization/moving_mean"] == 0)
    graph.forward(x, training=True)
    assert np.any(graph.weights["batch_normalization/moving_mean"] != 0)


# ---- Keras 3 as an oracle ------------------------------------------------------------------
def sample_inputs(plan, rng, n=4):
    """Random inputs for the plan: an array, or {input name: array} for several inputs."""
    if len(plan.inputs) > 1:
        def one(model_input):
            shape = (n,) + tuple(d or 6 for d in model_input.shape[1:])
            if model_input.integer:  # ids for the Embedding this input feeds
                reader = next(node for node in plan.nodes if model_input.name in node.inputs)
                return rng.integers(0, reader.layer.input_dim, size=shape)
            return rng.normal(size=shape).astype(np.float32)
        return {i.name: one(i) for i in plan.inputs}
    shape = (n,) + tuple(d or 6 for d in plan.input_shape[1:])
    if plan.integer_input:
        vocabulary = plan.nodes[0].layer.input_dim
        x = rng.integers(1, vocabulary, size=shape)
        x[0, : shape[1] // 2] = 0  # pre-padding: masked where mask_zero is on
        x[1, shape[1] // 3 :] = 0  # post-padding
        return x
    x = rng.normal(size=shape).astype(np.float32)
    if len(shape) == 3:
        x[0, :2] = 0  # whole timesteps equal to the mask value
        x[1, -3:] = 0
    return x


def randomize_statistics(graph, rng):
    for key in graph.weights:
        if key.endswith("moving_mean"):
            graph.weights[key][...] = rng.normal(size=graph.weights[key].shape)
        elif key.endswith("moving_variance"):
            graph.weights[key][...] = rng.uniform(0.5, 2.0, size=graph.weights[key].shape)


@pytest.mark.oracle
@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_inference_matches_keras(path):
    from keras_bridge import copy_weights, keras_model, run_keras

    rng = np.random.default_rng(0)
    spec, marks = load_spec(path)
    plan = build_plan(spec, marks)
    graph = Graph(plan)
    graph.initialize(rng)
    randomize_statistics(graph, rng)
    model = keras_model(plan)
    copy_weights(model, graph.weights)
    x = sample_inputs(plan, rng)
    expected = run_keras(model, x, training=False)
    got = graph.predict(x, batch_size=3)
    if not isinstance(got, dict):
        got, expected = {plan.output: got}, [expected]
    for name, value in zip(plan.outputs, expected, strict=True):
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.oracle
@pytest.mark.parametrize(
    "name", ["batchnorm_dense.yaml", "conv_relu_batchnorm.yaml", "masking_lstm.yaml"]
)
def test_training_forward_matches_keras(name):
    """Training-mode forward (batch statistics) of dropout-free specs, and the moving update."""
    from keras_bridge import copy_weights, keras, keras_model, run_keras

    rng = np.random.default_rng(1)
    path = next(p for p in SPECS if p.name == name)
    plan = build_plan(*load_spec(path))
    graph = Graph(plan)
    graph.initialize(rng)
    model = keras_model(plan)
    copy_weights(model, graph.weights)
    x = sample_inputs(plan, rng, n=8)
    expected = run_keras(model, x, training=True)
    np.testing.assert_allclose(graph.forward(x, training=True), expected, rtol=1e-4, atol=1e-5)
    for layer in model.layers:
        for weight in layer.weights:
            np.testing.assert_allclose(
                graph.weights[f"{layer.name}/{weight.name}"],
                keras.ops.convert_to_numpy(weight.value),
                rtol=1e-5,
                atol=1e-6,
            )


@pytest.mark.oracle
def test_channels_first_conv_softmax_matches_keras():
    """Keras activates a conv's output in its own layout: softmax over the last spatial axis."""
    from keras_bridge import copy_weights, keras_model, run_keras

    text = ("input_shape: [2, 5, 4]\ndata_format: channels_first\nlayers:\n"
            "  - {type: Conv2D, filters: 3, kernel_size: 2, activation: softmax}\n")
    graph = graph_of(text, np.float32)
    model = keras_model(graph.plan)
    copy_weights(model, graph.weights)
    x = np.random.default_rng(0).normal(size=(2, 2, 5, 4)).astype(np.float32)
    np.testing.assert_allclose(graph.predict(x), run_keras(model, x, training=False),
                               rtol=1e-5, atol=1e-6)
    check_graph(graph_of(text), np.random.default_rng(1).normal(size=(2, 2, 5, 4)))
