"""Average and global pooling: hand values, shapes, masks, gradients, Keras 3 as the oracle,
Keras's argument errors as located messages, and ONNX/Keras export parity."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from gradcheck import check_layer
from test_export import check_keras, check_onnx, plan_of

from layerctl.cli import cli
from layerctl.errors import SpecError
from layerctl.graph import Graph
from layerctl.layers import LAYER_TYPES
from layerctl.layers.pooling import (
    AveragePooling1D,
    AveragePooling2D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
)
from layerctl.ops.pool import average_pool_backward, average_pool_forward

STEPS = np.arange(1, 6, dtype=np.float64).reshape(1, 5, 1)


def layer(cls, **arguments):
    return cls.model_validate({"type": cls.keras_class, **arguments})


def resolved(cls, data_format="channels_last", **arguments):
    return layer(cls, data_format=data_format, **arguments)


# ---- hand-derived values ---------------------------------------------------------------------
@pytest.mark.parametrize(("pool", "strides", "padding", "expected"), [
    (2, 1, "valid", [1.5, 2.5, 3.5, 4.5]),
    (2, 2, "valid", [1.5, 3.5]),                   # the 5 is in no window
    (2, 1, "same", [1.5, 2.5, 3.5, 4.5, 5]),       # last window: 5 and one padding cell
    (2, 2, "same", [1.5, 3.5, 5]),
    (3, 1, "same", [1.5, 2, 3, 4, 4.5]),           # one padding cell at each end
    (4, 1, "same", [2, 2.5, 3.5, 4, 4.5]),         # 1 before, 2 after: [p,1,2,3] -> 2
])
def test_average_1d_values_leave_padding_out(pool, strides, padding, expected):
    y, _ = average_pool_forward(STEPS, pool, strides, padding)
    np.testing.assert_allclose(y.ravel(), expected)


def test_average_2d_same_values():
    grid = np.arange(1, 10, dtype=np.float64).reshape(1, 3, 3, 1)
    y, _ = average_pool_forward(grid, (2, 2), (1, 1), "same")
    np.testing.assert_allclose(y[0, :, :, 0], [[3, 4, 4.5], [6, 7, 7.5], [7.5, 8.5, 9]])


def test_average_backward_spreads_dy_over_each_windows_cells():
    _, cache = average_pool_forward(STEPS, 2, 1, "same")
    dx = average_pool_backward(cache, np.ones((1, 5, 1)))
    # cell 5 gets 1/2 from window 4 and all of window 5 (its only input cell)
    np.testing.assert_allclose(dx.ravel(), [0.5, 1, 1, 1, 1.5])
    _, cache = average_pool_forward(STEPS, 2, 2, "valid")
    np.testing.assert_allclose(average_pool_backward(cache, np.ones((1, 2, 1))).ravel(),
                               [0.5, 0.5, 0.5, 0.5, 0])


def test_average_keeps_float32():
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 3)).astype(np.float32)
    y, cache = average_pool_forward(x, 2, 2, "same")
    assert y.dtype == np.float32 and average_pool_backward(cache, y).dtype == np.float32


def test_global_average_1d_mask_leaves_masked_steps_out():
    x = np.array([[[1.0, 10.0], [3.0, 30.0], [100.0, 100.0]]])
    mask = np.array([[True, True, False]])
    pool = resolved(GlobalAveragePooling1D)
    y, _ = pool.forward({}, x, mask, False, None)
    np.testing.assert_allclose(y, [[2.0, 20.0]])
    assert pool.output_mask(x, mask) is None and not pool.emits_mask(True) and pool.reads_mask
    y_all, _ = pool.forward({}, x, None, False, None)
    np.testing.assert_allclose(y_all, [[104 / 3, 140 / 3]])


def test_global_average_1d_all_masked_sample_is_nan_as_in_keras():
    x = np.ones((2, 3, 2))
    mask = np.array([[False] * 3, [True, False, False]])
    y, cache = resolved(GlobalAveragePooling1D).forward({}, x, mask, False, None)
    assert np.isnan(y[0]).all() and y[1].tolist() == [1, 1]
    dx, _ = resolved(GlobalAveragePooling1D).backward({}, cache, np.ones((2, 2)))
    assert dx[0].tolist() == [[0, 0]] * 3 and dx[1].tolist() == [[1, 1], [0, 0], [0, 0]]


def test_global_max_2d_values():
    x = np.arange(2 * 3 * 4 * 2, dtype=np.float64).reshape(2, 3, 4, 2)
    y, _ = resolved(GlobalMaxPooling2D).forward({}, x, None, False, None)
    assert y.tolist() == [[22, 23], [46, 47]]
    y, _ = resolved(GlobalMaxPooling2D, "channels_first", keepdims=True).forward(
        {}, x, None, False, None)
    assert y.shape == (2, 3, 1, 1) and y[0, :, 0, 0].tolist() == [7, 15, 23]


# ---- shapes (Keras's average_pooling_test / global_*_test cases) ------------------------------
@pytest.mark.parametrize(("cls", "arguments", "input_shape", "expected"), [
    (AveragePooling1D, {"pool_size": 2, "strides": 1}, (3, 5, 4), (3, 4, 4)),
    (AveragePooling1D, {"pool_size": 2, "strides": 2}, (3, 5, 4), (3, 2, 4)),
    (AveragePooling1D, {"pool_size": 2, "strides": 1, "padding": "same",
                        "data_format": "channels_first"}, (3, 5, 4), (3, 5, 4)),
    (AveragePooling2D, {"pool_size": (2, 3), "strides": (2, 2)}, (3, 5, 5, 4), (3, 2, 2, 4)),
    (AveragePooling2D, {"pool_size": 2, "padding": "same"}, (None, 7, 5, 3), (None, 4, 3, 3)),
    (AveragePooling2D, {"pool_size": 2, "data_format": "channels_first"}, (3, 4, 6, 6),
     (3, 4, 3, 3)),
    (GlobalAveragePooling1D, {}, (3, 5, 4), (3, 4)),
    (GlobalAveragePooling1D, {"keepdims": True}, (3, 5, 4), (3, 1, 4)),
    (GlobalAveragePooling1D, {"data_format": "channels_first"}, (3, 5, 4), (3, 5)),
    (GlobalAveragePooling1D, {"data_format": "channels_first", "keepdims": True}, (3, 5, 4),
     (3, 5, 1)),
    (GlobalAveragePooling2D, {}, (3, 5, 6, 4), (3, 4)),
    (GlobalAveragePooling2D, {"keepdims": True}, (3, 5, 6, 4), (3, 1, 1, 4)),
    (GlobalAveragePooling2D, {"data_format": "channels_first", "keepdims": True}, (3, 5, 6, 4),
     (3, 5, 1, 1)),
    (GlobalMaxPooling2D, {"data_format": "channels_first"}, (3, 5, 6, 4), (3, 5)),
    (GlobalMaxPooling2D, {"keepdims": True}, (None, None, None, 4), (None, 1, 1, 4)),
])
def test_shapes(cls, arguments, input_shape, expected):
    arguments.setdefault("data_format", "channels_last")
    pool = layer(cls, **arguments)
    assert pool.output_shape(input_shape) == expected
    assert pool.weight_specs(input_shape) == []
    if None not in input_shape:
        y, _ = pool.forward({}, np.zeros(input_shape), None, False, None)
        assert y.shape == expected


def test_aliases_and_rank_generic_avg_pool():
    for alias, cls in [("AvgPool1D", AveragePooling1D), ("AvgPool2D", AveragePooling2D),
                       ("GlobalAvgPool1D", GlobalAveragePooling1D),
                       ("GlobalAvgPool2D", GlobalAveragePooling2D),
                       ("GlobalMaxPool2D", GlobalMaxPooling2D)]:
        assert LAYER_TYPES[alias] is cls
    plan = plan_of("input_shape: [8, 3]\nlayers:\n  - {type: AvgPool, pool_size: 2}\n")
    assert type(plan.nodes[0].layer) is AveragePooling1D
    assert plan.nodes[0].output_shape == (None, 4, 3)
    plan = plan_of("input_shape: [8, 8, 3]\nlayers:\n  - {type: AvgPool, pool_size: 2, "
                   "padding: same}\n")
    assert type(plan.nodes[0].layer) is AveragePooling2D
    assert plan.nodes[0].output_shape == (None, 4, 4, 3)


# ---- gradients (float64, central differences) -------------------------------------------------
def distinct(shape, seed=0):
    """Well-separated values with no ties, so ±eps never changes a max's winner."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))) * 0.1).reshape(shape).astype(np.float64)


AVERAGE_CASES = [
    (AveragePooling1D, {"pool_size": 2}, (2, 7, 3)),
    (AveragePooling1D, {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 8, 3)),
    (AveragePooling1D, {"pool_size": 4, "strides": 1, "padding": "same"}, (2, 5, 2)),
    (AveragePooling1D, {"pool_size": 3, "strides": 1, "padding": "same",
                        "data_format": "channels_first"}, (2, 3, 6)),
    (AveragePooling2D, {"pool_size": 2}, (2, 6, 6, 3)),
    (AveragePooling2D, {"pool_size": 2, "padding": "same"}, (2, 5, 7, 2)),
    (AveragePooling2D, {"pool_size": (3, 2), "strides": (2, 1), "padding": "same"}, (2, 7, 6, 2)),
    (AveragePooling2D, {"pool_size": 3, "strides": 2}, (2, 7, 7, 2)),            # overlapping
    (AveragePooling2D, {"pool_size": 2, "padding": "same", "data_format": "channels_first"},
     (2, 3, 5, 5)),
]


@pytest.mark.parametrize(("cls", "arguments", "shape"), AVERAGE_CASES)
def test_average_pooling_gradients(cls, arguments, shape):
    arguments.setdefault("data_format", "channels_last")
    check_layer(layer(cls, **arguments), np.random.default_rng(1).standard_normal(shape))


GLOBAL_CASES = [
    (GlobalAveragePooling1D, {}, (3, 5, 4)),
    (GlobalAveragePooling1D, {"keepdims": True}, (3, 5, 4)),
    (GlobalAveragePooling1D, {"data_format": "channels_first"}, (3, 4, 5)),
    (GlobalAveragePooling2D, {}, (2, 3, 4, 3)),
    (GlobalAveragePooling2D, {"data_format": "channels_first", "keepdims": True}, (2, 3, 4, 3)),
    (GlobalMaxPooling2D, {}, (2, 3, 4, 3)),
    (GlobalMaxPooling2D, {"data_format": "channels_first", "keepdims": True}, (2, 3, 4, 3)),
    (GlobalMaxPooling1D, {"data_format": "channels_first", "keepdims": True}, (2, 3, 4)),
]


@pytest.mark.parametrize(("cls", "arguments", "shape"), GLOBAL_CASES)
def test_global_pooling_gradients(cls, arguments, shape):
    arguments.setdefault("data_format", "channels_last")
    check_layer(layer(cls, **arguments), distinct(shape))


MASK = np.array([[True, True, False, True, False], [False, True, True, True, True],
                 [True, False, False, False, False]])


@pytest.mark.parametrize("arguments", [{}, {"keepdims": True},
                                       {"data_format": "channels_first"}])
def test_masked_global_average_1d_gradient(arguments):
    arguments.setdefault("data_format", "channels_last")
    pool = layer(GlobalAveragePooling1D, **arguments)
    x = np.random.default_rng(2).standard_normal(
        (3, 4, 5) if arguments["data_format"] == "channels_first" else (3, 5, 4))
    check_layer(pool, x, mask=MASK)


# ---- Keras's argument errors, located ---------------------------------------------------------
@pytest.mark.parametrize(("entry", "message"), [
    ("{type: AveragePooling2D, pool_size: 2, padding: full}",
     "Argument `padding` must be either 'valid' or 'same'. Received: padding=full"),
    ("{type: AveragePooling2D, pool_size: [2, 0]}",
     "The `pool_size` argument must be a tuple of 2 integers. Received pool_size=[2, 0], "
     "including values {0} that do not satisfy `value > 0`"),  # Keras's standardize_tuple
    ("{type: AveragePooling2D, pool_size: [2, 2, 2]}",
     "The `pool_size` argument must be a tuple of 2 integers. Received pool_size=[2, 2, 2]"),
    ("{type: AveragePooling2D}", "AveragePooling2D needs `pool_size`"),
    ("{type: AvgPool}", "AvgPool needs `pool_size`"),
    ("{type: GlobalAveragePooling2D, data_format: channels_middle}", "data_format"),
])
def test_invalid_arguments_are_located(entry, message):
    with pytest.raises(SpecError) as info:
        plan_of(f"input_shape: [8, 8, 3]\nlayers:\n  - {entry}\n")
    problem = info.value.problems[0]
    assert message in problem.message
    assert problem.location is not None and problem.location.line == 3


@pytest.mark.parametrize(("entry", "input_shape", "message"), [
    ("{type: AveragePooling2D, pool_size: 3, strides: 3}", "[2, 2, 3]",
     "Computed output size would be zero or negative. Received: inputs.shape=(None, 2, 2, 3), "
     "pool_size=(3, 3), strides=(3, 3), padding=valid."),
    ("{type: GlobalAveragePooling1D}", "[8, 8, 3]",
     "expected ndim=3, found ndim=4. Full shape received: (None, 8, 8, 3)"),
    ("{type: AvgPool, pool_size: 2}", "[8]", "AvgPool needs an input of rank 3"),
])
def test_shape_errors_are_located(entry, input_shape, message):
    with pytest.raises(SpecError) as info:
        plan_of(f"input_shape: {input_shape}\nlayers:\n  - {entry}\n")
    problem = info.value.problems[0]
    assert message in problem.message and problem.location.line == 3


TEXT_MODEL = """\
name: text-average
input_shape: [12]
layers:
  - {type: Embedding, input_dim: 50, output_dim: 8, mask_zero: true}
  - {type: GlobalAveragePooling1D}
  - {type: Dense, units: 3, activation: softmax}
compile: {loss: sparse_categorical_crossentropy, optimizer: adam}
"""


def test_text_model_with_global_average_pooling_validates(tmp_path):
    """`validate` once answered "did you mean 'GlobalMaxPooling1D'?" for this model."""
    spec = tmp_path / "text.yaml"
    spec.write_text(TEXT_MODEL)
    result = CliRunner().invoke(cli, ["validate", str(spec)])
    assert result.exit_code == 0, result.output
    assert "did you mean" not in result.output and "warning" not in result.output


def test_bundled_text_average_spec_trains(tmp_path, monkeypatch):
    """specs/text_average.yaml on the bundled languages words: well above chance (25 %)."""
    import csv
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    (tmp_path / "specs").mkdir()
    shutil.copy(root / "specs" / "text_average.yaml", tmp_path / "specs")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    made = runner.invoke(cli, ["pad", "--dataset", "languages", "--level", "char", "--maxlen",
                               "16", "-o", "lang.npz"])
    assert made.exit_code == 0, made.output
    trained = runner.invoke(cli, ["train", "specs/text_average.yaml", "--epochs", "3", "-q"])
    assert trained.exit_code == 0, trained.output
    with open(tmp_path / "runs" / "text-average" / "history.csv", newline="") as handle:
        history = list(csv.DictReader(handle))
    assert len(history) == 3 and float(history[-1]["val_accuracy"]) > 0.6


def test_text_model_masked_mean_in_a_graph():
    graph = Graph(plan_of(TEXT_MODEL), np.float64)
    graph.initialize(np.random.default_rng(0))
    x = np.array([[3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [3, 4] + [0] * 10])
    padded_more = graph.predict(x)
    assert np.allclose(padded_more[0], padded_more[1])  # padding changes nothing
    embeddings = graph.weights["embedding/embeddings"]
    mean = embeddings[[3, 4]].mean(axis=0)
    logits = mean @ graph.weights["dense/kernel"] + graph.weights["dense/bias"]
    np.testing.assert_allclose(padded_more[0], np.exp(logits) / np.exp(logits).sum())


# ---- Keras 3 as the oracle --------------------------------------------------------------------
def keras_and_torch():
    from test_ops_conv import import_keras_torch

    return import_keras_torch()


# Cases where Keras's torch backend pools exactly as TF/JAX/ONNX do: valid padding, or `same`
# padding that is symmetric (torch's count_include_pad=False). Asymmetric `same` padding is
# checked against ONNX Runtime below: Keras's torch backend replicates edge cells there.
KERAS_AVERAGE_CASES = [
    ("AveragePooling1D", {"pool_size": 2}, (11,)),
    ("AveragePooling1D", {"pool_size": 3, "strides": 2}, (11,)),
    ("AveragePooling1D", {"pool_size": 3, "strides": 1, "padding": "same"}, (10,)),
    ("AveragePooling1D", {"pool_size": 3, "strides": 2, "padding": "same"}, (11,)),
    ("AveragePooling1D", {"pool_size": 2, "data_format": "channels_first"}, (9,)),
    ("AveragePooling2D", {"pool_size": 2}, (9, 8)),
    ("AveragePooling2D", {"pool_size": (3, 2), "strides": (2, 1)}, (9, 8)),
    ("AveragePooling2D", {"pool_size": 3, "strides": 1, "padding": "same"}, (7, 6)),
    ("AveragePooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}, (9, 9)),
    ("AveragePooling2D", {"pool_size": 3, "strides": 1, "padding": "same",
                          "data_format": "channels_first"}, (6, 7)),
]


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(("kind", "arguments", "spatial"), KERAS_AVERAGE_CASES)
def test_average_pooling_matches_keras(kind, arguments, spatial):
    keras, torch = keras_and_torch()
    arguments = {"data_format": "channels_last", "padding": "valid", **arguments}
    first = arguments["data_format"] == "channels_first"
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, *spatial) if first else (3, *spatial, 4), dtype=np.float32)
    ours = layer(AveragePooling1D if kind == "AveragePooling1D" else AveragePooling2D,
                 **arguments)
    theirs = getattr(keras.layers, kind)(**arguments)
    x_torch = torch.tensor(x, requires_grad=True)
    expected = theirs(x_torch)
    y, cache = ours.forward({}, x, None, False, None)
    assert y.dtype == np.float32 and y.shape == tuple(expected.shape)
    assert ours.output_shape((None, *x.shape[1:])) == theirs.compute_output_shape(
        (None, *x.shape[1:]))
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    expected.backward(torch.tensor(dy))
    np.testing.assert_allclose(ours.backward({}, cache, dy)[0], x_torch.grad.numpy(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.oracle
def test_keras_torch_backend_differs_only_for_uneven_same_padding():
    """The documented difference (docs/layers.md): TF, JAX and ONNX leave padding out of a
    `same` window's mean, Keras 3.15.1's torch backend repeats the edge cell when the padding
    is uneven. When this test fails, Keras changed: revisit the docs and the oracle cases."""
    keras, _ = keras_and_torch()
    steps = STEPS.astype(np.float32)
    theirs = keras.layers.AveragePooling1D(4, strides=1, padding="same")(steps)
    ours, _ = average_pool_forward(steps, 4, 1, "same")
    np.testing.assert_allclose(ours.ravel(), [2, 2.5, 3.5, 4, 4.5])
    np.testing.assert_allclose(np.asarray(theirs).ravel(), [1.75, 2.5, 3.5, 4.25, 4.75])


KERAS_GLOBAL_CASES = [
    (GlobalAveragePooling1D, {}, (3, 5, 4)),
    (GlobalAveragePooling1D, {"keepdims": True, "data_format": "channels_first"}, (3, 5, 4)),
    (GlobalAveragePooling2D, {}, (3, 5, 6, 4)),
    (GlobalAveragePooling2D, {"keepdims": True, "data_format": "channels_first"}, (3, 5, 6, 4)),
    (GlobalMaxPooling2D, {}, (3, 5, 6, 4)),
    (GlobalMaxPooling2D, {"keepdims": True, "data_format": "channels_first"}, (3, 5, 6, 4)),
]


@pytest.mark.oracle
@pytest.mark.parametrize(("cls", "arguments", "shape"), KERAS_GLOBAL_CASES)
def test_global_pooling_matches_keras(cls, arguments, shape):
    keras, torch = keras_and_torch()
    arguments = {"data_format": "channels_last", **arguments}
    ours = layer(cls, **arguments)
    theirs = getattr(keras.layers, cls.keras_class)(**arguments)
    x = np.random.default_rng(4).standard_normal(shape, dtype=np.float32)
    x_torch = torch.tensor(x, requires_grad=True)
    expected = theirs(x_torch)
    y, cache = ours.forward({}, x, None, False, None)
    assert ours.output_shape((None, *shape[1:])) == theirs.compute_output_shape(
        (None, *shape[1:]))
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    dy = np.random.default_rng(5).standard_normal(y.shape, dtype=np.float32)
    expected.backward(torch.tensor(dy))
    np.testing.assert_allclose(ours.backward({}, cache, dy)[0], x_torch.grad.numpy(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.oracle
@pytest.mark.parametrize("arguments", [{}, {"keepdims": True},
                                       {"data_format": "channels_first"}])
def test_masked_global_average_1d_matches_keras(arguments):
    keras, torch = keras_and_torch()
    arguments = {"data_format": "channels_last", **arguments}
    first = arguments["data_format"] == "channels_first"
    x = np.random.default_rng(6).standard_normal((3, 4, 5) if first else (3, 5, 4),
                                                 dtype=np.float32)
    ours = layer(GlobalAveragePooling1D, **arguments)
    theirs = keras.layers.GlobalAveragePooling1D(**arguments)
    x_torch = torch.tensor(x, requires_grad=True)
    expected = theirs(x_torch, mask=torch.tensor(MASK))
    y, cache = ours.forward({}, x, MASK, False, None)
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert theirs.compute_mask(x_torch, torch.tensor(MASK)) is None
    assert ours.output_mask(x, MASK) is None
    dy = np.random.default_rng(7).standard_normal(y.shape, dtype=np.float32)
    expected.backward(torch.tensor(dy))
    np.testing.assert_allclose(ours.backward({}, cache, dy)[0], x_torch.grad.numpy(),
                               rtol=1e-5, atol=1e-6)


def keras_training_gradients(plan, graph, x):
    """d sum(output · R) / d weight from Keras (torch autograd) and from the graph."""
    import torch
    from keras_bridge import copy_weights, keras, keras_model

    model = keras_model(plan)
    copy_weights(model, graph.weights)
    out = model(x, training=True)
    projection = np.random.default_rng(9).standard_normal(tuple(out.shape)).astype(np.float32)
    loss = (out * torch.tensor(projection)).sum() + sum(model.losses)
    loss.backward()
    graph.forward(x, training=True)
    graph.backward(projection)
    expected = {f"{layer.name}/{w.name}": w.value.grad.numpy() for layer in model.layers
                for w in layer.trainable_weights}
    assert set(expected) == set(graph.grads) and keras is not None
    return expected


@pytest.mark.oracle
@pytest.mark.parametrize("text", [
    TEXT_MODEL,
    """\
input_shape: [9, 9, 2]
layers:
  - {type: Conv2D, filters: 3, kernel_size: 3, padding: same, activation: relu}
  - {type: AveragePooling2D, pool_size: 3, strides: 2, padding: same}
  - {type: GlobalAveragePooling2D}
  - {type: Dense, units: 2}
""",
    """\
input_shape: [7, 7, 2]
layers:
  - {type: Conv2D, filters: 3, kernel_size: 2, data_format: channels_first}
  - {type: GlobalMaxPooling2D, data_format: channels_first}
  - {type: Dense, units: 2}
""",
], ids=["masked-text", "average-2d", "global-max-2d"])
def test_one_training_step_gradients_match_keras(text):
    plan = plan_of(text)
    graph = Graph(plan)
    graph.initialize(np.random.default_rng(0))
    rng = np.random.default_rng(8)
    if plan.integer_input:
        x = rng.integers(1, 50, size=(4, 12))
        x[0, 5:] = 0
        x[1, :3] = 0
    else:
        x = rng.standard_normal((4, *plan.input_shape[1:])).astype(np.float32)
    expected = keras_training_gradients(plan, graph, x)
    for key, value in expected.items():
        np.testing.assert_allclose(graph.grads[key], value, rtol=1e-4, atol=1e-5, err_msg=key)


# ---- export parity ----------------------------------------------------------------------------
EXPORT_MODELS = {
    "average-1d": """\
input_shape: [11, 3]
layers:
  - {type: AveragePooling1D, pool_size: 4, strides: 1, padding: same}
  - {type: AvgPool1D, pool_size: 3, strides: 2, padding: same}
  - {type: AveragePooling1D, pool_size: 2, data_format: channels_first}
  - {type: GlobalAveragePooling1D, keepdims: true}
""",
    "average-2d": """\
input_shape: [9, 8, 3]
layers:
  - {type: AveragePooling2D, pool_size: 2, strides: 1, padding: same}
  - {type: AvgPool, pool_size: [3, 2], strides: 2, padding: same}
  - {type: AveragePooling2D, pool_size: 2, padding: same, data_format: channels_first}
  - {type: GlobalAveragePooling2D, keepdims: true}
  - {type: GlobalMaxPooling2D}
""",
    "global-2d-channels-first": """\
input_shape: [3, 5, 6]
data_format: channels_first
layers:
  - {type: GlobalAvgPool2D}
""",
    "global-max-2d": """\
input_shape: [5, 6, 3]
layers:
  - {type: GlobalMaxPool2D, keepdims: true}
""",
    "unknown-sizes": """\
input_shape: [null, null, 3]
layers:
  - {type: AveragePooling2D, pool_size: 4, strides: 3, padding: same}
  - {type: AvgPool2D, pool_size: 2, strides: 1, padding: same}
  - {type: GlobalAveragePooling2D}
""",
    "masked-text": TEXT_MODEL,
    "mask-dropped-by-conv": """\
input_shape: [6, 4]
layers:
  - {type: Masking}
  - {type: Conv1D, filters: 3, kernel_size: 1}
  - {type: GlobalAveragePooling1D}
""",
}


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", EXPORT_MODELS)
def test_onnx_matches_predict(name, tmp_path):
    check_onnx(plan_of(EXPORT_MODELS[name]), tmp_path)


MASKED_SEQUENCES = """\
input_shape: [6, 4]
layers:
  - {type: Masking}
  - {type: GlobalAveragePooling1D}
  - {type: Dense, units: 2}
"""


@pytest.mark.oracle
def test_masked_global_average_exports_to_onnx(tmp_path):
    x = np.random.default_rng(3).standard_normal((5, 6, 4)).astype(np.float32)
    x[0, 3:] = 0
    x[1, :2] = 0
    check_onnx(plan_of(MASKED_SEQUENCES), tmp_path, x=x)


# Keras's torch backend averages asymmetric `same` windows over replicated edge cells, so the
# Keras-file parity models use valid or symmetric padding (layerctl, TF, JAX and ONNX agree).
KERAS_EXPORT_MODELS = {
    "average-2d": """\
input_shape: [9, 9, 3]
layers:
  - {type: AveragePooling2D, pool_size: 3, strides: 1, padding: same}
  - {type: AvgPool2D, pool_size: 2}
  - {type: GlobalAveragePooling2D, keepdims: true}
  - {type: Flatten}
""",
    "average-1d-global-max": """\
input_shape: [11, 3]
layers:
  - {type: AvgPool, pool_size: 3, strides: 2, padding: same}
  - {type: AveragePooling1D, pool_size: 2, data_format: channels_first}
""",
    "global-max-2d": """\
input_shape: [5, 6, 3]
layers:
  - {type: GlobalMaxPooling2D, data_format: channels_first, keepdims: true}
""",
    "masked-text": TEXT_MODEL,
    "masked-sequences": MASKED_SEQUENCES,
}


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", KERAS_EXPORT_MODELS)
def test_keras_file_matches_predict(name, tmp_path):
    check_keras(plan_of(KERAS_EXPORT_MODELS[name]), tmp_path)
