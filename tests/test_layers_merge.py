"""Merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot): values,
masks, shapes and gradients, hand-derived and against Keras 3; ONNX and Keras export."""

import re

import numpy as np
import pytest
from gradcheck import check_layer
from test_export import check_keras, check_onnx, plan_of, sample_inputs, trained_graph

from layerctl.errors import SpecError
from layerctl.layers.base import IncompatibleShape
from layerctl.layers.merge import (
    Add,
    Average,
    Concatenate,
    Dot,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
)

RNG = np.random.default_rng(0)


def keras_outputs(plan, graph, x):
    """The Keras twin of `plan` (as `layerctl export` builds it) with `graph`'s weights, run on
    x in inference mode."""
    from keras_bridge import run_keras

    from layerctl.export.keras import build_keras_model

    return run_keras(build_keras_model(plan, graph.weights), x, training=False)


def assert_matches_keras(text, x=None):
    plan = plan_of(text)
    graph = trained_graph(plan)
    x = sample_inputs(plan) if x is None else x
    np.testing.assert_allclose(graph.predict(x), keras_outputs(plan, graph, x),
                               rtol=1e-5, atol=1e-5)
    return plan, graph


# ---- masks through merges into an LSTM: Keras's rules ----------------------------------------
MASKED_ADD_LSTM = """
input_shape: [6, 3]
layers:
  - {type: Masking, name: masked}
  - {type: Add, inputs: [masked, input]}
  - {type: LSTM, units: 4}
"""

MASKED_CONCAT_TIME_LSTM = """
input_shape: [6, 3]
layers:
  - {type: Masking, name: masked}
  - {type: Concatenate, axis: 1, inputs: [masked, input], name: joined}
  - {type: LSTM, units: 4}
"""

MASKED_CONCAT_FEATURES_LSTM = """
input_shape: [6, 3]
layers:
  - {type: Masking, name: masked}
  - {type: Dense, units: 2, name: projected}
  - {type: Masking, mask_value: 1.0, inputs: [input], name: ones}
  - {type: Concatenate, inputs: [masked, projected, ones], name: joined}
  - {type: LSTM, units: 4}
"""


@pytest.mark.oracle
@pytest.mark.parametrize("text", [MASKED_ADD_LSTM, MASKED_CONCAT_TIME_LSTM,
                                  MASKED_CONCAT_FEATURES_LSTM],
                         ids=["add-one-mask", "concatenate-time", "concatenate-features"])
def test_merged_masks_reach_the_lstm_as_in_keras(text):
    assert_matches_keras(text)


# ---- hand-derived values and shapes ----------------------------------------------------------
def merge(cls, **arguments):
    return cls(type=cls.__name__, **arguments)


def test_elementwise_values_by_hand():
    a, b, c = np.array([[1.0, -2.0, 3.0]]), np.array([[4.0, 5.0, -6.0]]), np.array([[2.0, 0, 1]])
    cases = {Add: [[7, 3, -2]], Average: [[7 / 3, 1, -2 / 3]], Multiply: [[8, 0, -18]],
             Maximum: [[4, 5, 3]], Minimum: [[1, -2, -6]]}
    for cls, expected in cases.items():
        y, _ = merge(cls).forward({}, [a, b, c], [None] * 3, False, None)
        np.testing.assert_allclose(y, expected, err_msg=cls.__name__)
    y, _ = merge(Subtract).forward({}, [a, b], [None, None], False, None)
    np.testing.assert_array_equal(y, [[-3, -7, 9]])


def test_masked_multiply_maximum_minimum_by_hand():
    # two steps of one feature; the second step of `a` is masked, nothing of `b`
    a, b = np.array([[[2.0], [5.0]]]), np.array([[[3.0], [-1.0]]])
    ma, mb = np.array([[True, False]]), np.array([[True, True]])
    expected = {Multiply: [[[6], [-1]]], Maximum: [[[3], [-1]]], Minimum: [[[2], [-1]]]}
    for cls, want in expected.items():
        y, _ = merge(cls).forward({}, [a, b], [ma, mb], False, None)
        np.testing.assert_array_equal(y, want, err_msg=cls.__name__)
    # a step masked in every input: Multiply gives 0, Maximum keeps the first input's value
    none = np.array([[True, False]])
    y, _ = merge(Multiply).forward({}, [a, b], [none, none], False, None)
    np.testing.assert_array_equal(y, [[[6], [0]]])
    y, _ = merge(Maximum).forward({}, [a, b], [none, none], False, None)
    np.testing.assert_array_equal(y, [[[3], [5]]])
    # without a mask on every input, Add's numbers ignore masks and Multiply only sets 1s
    y, _ = merge(Multiply).forward({}, [a, b], [ma, None], False, None)
    np.testing.assert_array_equal(y, [[[6], [-1]]])


def test_broadcasting_shapes_as_keras():
    add = merge(Add)
    assert add.output_shape([(None, 1, 3), (None, 4, 3)]) == (None, 4, 3)
    assert add.output_shape([(None, 3), (None, 4, 3)]) == (None, 4, 3)
    assert add.output_shape([(None, None, 3), (None, 4, 1)]) == (None, None, 3)
    with pytest.raises(IncompatibleShape, match=r"Received shapes \(4, 3\) and \(4,\)"):
        add.output_shape([(None, 4), (None, 4, 3)])
    y, _ = add.forward({}, [np.ones((2, 3)), np.zeros((2, 4, 3))], [None, None], False, None)
    assert y.shape == (2, 4, 3)


@pytest.mark.parametrize("cls", [Add, Subtract, Average, Multiply, Maximum, Minimum])
def test_elementwise_gradients(cls):
    n = 2 if cls is Subtract else 3
    xs = [RNG.normal(size=(2, 3, 4)) for _ in range(n)]
    check_layer(merge(cls), xs)


@pytest.mark.parametrize("cls", [Add, Subtract, Multiply, Maximum, Minimum])
def test_elementwise_gradients_broadcast(cls):
    check_layer(merge(cls), [RNG.normal(size=(2, 1, 4)), RNG.normal(size=(2, 3, 4))])
    check_layer(merge(cls), [RNG.normal(size=(2, 4)), RNG.normal(size=(2, 3, 4))])


@pytest.mark.parametrize("cls", [Multiply, Maximum, Minimum])
@pytest.mark.parametrize("masked", ["all", "first", "second"])
def test_masked_gradients(cls, masked):
    xs = [RNG.normal(size=(3, 5, 2)) for _ in range(3)]
    masks = [RNG.random((3, 5)) > 0.4 for _ in range(3)]
    if masked == "first":
        masks[1:] = [None, None]
    elif masked == "second":
        masks[0] = masks[2] = None
    check_layer(merge(cls), xs, mask=masks)


@pytest.mark.parametrize("cls", [Maximum, Minimum])
def test_ties_split_the_gradient(cls):
    # central differences at a tie of two give one half to each, as Keras (torch, JAX) does
    a = RNG.normal(size=(2, 3))
    check_layer(merge(cls), [a, a.copy()])
    _, cache = merge(cls).forward({}, [a, a.copy()], [None, None], False, None)
    dxs, _ = merge(cls).backward({}, cache, np.ones_like(a))
    np.testing.assert_array_equal(dxs[0], 0.5)


def test_concatenate_masks_by_keras_rule():
    layer = merge(Concatenate, axis=1)
    x = np.zeros((1, 2, 3))
    m = np.array([[True, False]])
    np.testing.assert_array_equal(layer.output_mask([x, x], [m, None]),
                                  [[True, False, True, True]])  # along time: longer
    features = merge(Concatenate)
    np.testing.assert_array_equal(features.output_mask([x, x], [m, None]), [[True, True]])
    np.testing.assert_array_equal(features.output_mask([x, x], [m, np.array([[False, False]])]),
                                  [[True, False]])  # along features: OR
    assert features.output_mask([x, x], [None, None]) is None


# ---- Dot --------------------------------------------------------------------------------------
def test_dot_values_and_shapes_by_hand():
    x, y = np.array([[1.0, 2.0, 2.0]]), np.array([[3.0, 0.0, 4.0]])
    out, _ = merge(Dot, axes=1).forward({}, [x, y], [None, None], False, None)
    np.testing.assert_array_equal(out, [[11.0]])
    cosine, _ = merge(Dot, axes=-1, normalize=True).forward({}, [x, y], [None, None], False, None)
    np.testing.assert_allclose(cosine, [[11 / 15]])
    dot = merge(Dot, axes=(1, 2))
    assert dot.output_shape([(None, 3, 5), (None, 10, 3)]) == (None, 5, 10)
    assert merge(Dot, axes=-1).output_shape([(None, 4), (None, 4)]) == (None, 1)
    assert merge(Dot, axes=[2, 1]).output_shape([(None, 2, 3), (None, 3, 4)]) == (None, 2, 4)
    assert merge(Dot, axes=1).output_shape([(None, 3), (None, 3, 6)]) == (None, 6)
    a = RNG.normal(size=(2, 3, 5))
    b = RNG.normal(size=(2, 10, 3))
    out, _ = dot.forward({}, [a, b], [None, None], False, None)
    np.testing.assert_allclose(out, np.einsum("bkm,bnk->bmn", a, b))


def test_dot_shape_errors_are_keras():
    with pytest.raises(IncompatibleShape, match=re.escape(
            "Incompatible input shapes: axis values 3 (at axis 1) != 4 (at axis 1). "
            "Full input shapes: (None, 3), (None, 4)")):
        merge(Dot, axes=1).output_shape([(None, 3), (None, 4)])
    with pytest.raises(IncompatibleShape, match=r"axis values 3 \(at axis 2\) != 5 \(at axis 1\)"):
        merge(Dot, axes=-1).output_shape([(None, 2, 3), (None, 5)])
    with pytest.raises(IncompatibleShape, match="Cannot perform batch_dot over axis 0"):
        merge(Dot, axes=-2).output_shape([(None, 3), (None, 3)])


@pytest.mark.parametrize("axes,shapes", [
    (1, [(2, 4), (2, 4)]), (-1, [(2, 3, 4), (2, 4)]), ((1, 2), [(2, 3, 5), (2, 4, 3)]),
    ((2, -2), [(2, 3, 4, 2), (2, 4, 5)]), ((1, 1), [(2, 3), (2, 3, 2, 2)]),
])
@pytest.mark.parametrize("normalize", [False, True])
def test_dot_gradients(axes, shapes, normalize):
    check_layer(merge(Dot, axes=axes, normalize=normalize),
                [RNG.normal(size=shape) for shape in shapes])


# ---- argument and shape errors as located `validate` messages --------------------------------
def problems(text):
    with pytest.raises(SpecError) as caught:
        plan_of(text)
    return [p.render() for p in caught.value.problems]


@pytest.mark.parametrize("axes,message", [
    ("[1, 2, 3]", "Invalid format for argument `axes`: it should contain two elements. "
                  "Received: axes=[1, 2, 3]"),
    ("[1, a]", "Invalid format for argument `axes`: list elements should be integers. "
               "Received: axes=[1, 'a']"),
    ("x", "Invalid type for argument `axes`: it should be a list or an int. Received: axes=x"),
    ("0", "Cannot perform batch_dot over axis 0. If your inputs are not batched, add a dummy "
          "batch dimension to your inputs using keras.ops.expand_dims(x, 0)"),
])
def test_dot_argument_errors_are_located(axes, message):
    text = ("input_shape: [3]\nlayers:\n  - {type: Dense, units: 3}\n"
            f"  - {{type: Dot, axes: {axes}, inputs: [dense, input]}}\n")
    found = problems(text)
    assert len(found) == 1 and found[0].endswith(message), found
    assert found[0].startswith("<spec>:4:")


def test_merge_shape_errors_are_located():
    found = problems("input_shape: [3]\nlayers:\n  - {type: Dense, units: 4}\n"
                     "  - {type: Dot, axes: 1, inputs: [dense, input]}\n")
    assert found[0].startswith("<spec>:4:") and "axis values 4 (at axis 1) != 3" in found[0]
    found = problems("input_shape: [3]\nlayers:\n  - {type: Dense, units: 3}\n"
                     "  - {type: Subtract, inputs: [dense, input, dense]}\n")
    assert found[0].startswith("<spec>:4:") and found[0].endswith(
        "A `Subtract` layer should be called on exactly 2 inputs. Received: "
        "input_shape=[(None, 3), (None, 3), (None, 3)]")


# ---- Keras 3 as the oracle: values with masks, masks, shapes, one training step --------------
ELEMENTWISE = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]


def two_masks_input(seed=3, n=6, steps=6, features=3):
    """Steps of zeros (masked by Masking) and steps of ones (masked by Masking(1.0))."""
    x = np.random.default_rng(seed).normal(size=(n, steps, features)).astype(np.float32)
    x[0, :2] = 0
    x[1, 4:] = 0
    x[1, 1] = 1
    x[2] = 0
    x[3, 2:4] = 1
    x[4, ::2] = 1
    return x


def masked_merge_spec(merge_type, third=""):
    return f"""
input_shape: [6, 3]
layers:
  - {{type: Masking, mask_value: 1.0, name: ones}}
  - {{type: Masking, inputs: [input], name: zeros}}
  - {{type: Dense, units: 3, inputs: [ones], name: projected}}
  - {{type: {merge_type}, inputs: [zeros, projected{third}], name: merged}}
  - {{type: LSTM, units: 4, return_sequences: true, name: lstm}}
  - {{type: Dense, units: 2, name: head}}
"""


def keras_gradients(plan, graph, x, projection):
    """d sum(output · projection) / d weight, by torch.autograd through the exported Keras model."""
    import torch

    from layerctl.export.keras import build_keras_model

    model = build_keras_model(plan, graph.weights)
    out = model(torch.tensor(x), training=False)
    (out * torch.tensor(projection, dtype=out.dtype)).sum().backward()
    return {f"{layer.name}/{w.name}": w.value.grad.numpy()
            for layer in model.layers for w in layer.trainable_weights}


def assert_training_step_matches_keras(plan, graph, x):
    y = graph.forward(x, training=False)
    projection = np.random.default_rng(5).normal(size=y.shape).astype(np.float32)
    graph.backward(projection)
    expected = keras_gradients(plan, graph, x, projection)
    assert set(expected) == set(graph.grads)
    for key, value in expected.items():
        np.testing.assert_allclose(graph.grads[key], value, rtol=1e-4, atol=1e-5, err_msg=key)


@pytest.mark.oracle
@pytest.mark.parametrize("merge_type", ELEMENTWISE)
@pytest.mark.parametrize("third", ["", ", input"], ids=["both-masked", "one-unmasked"])
def test_masked_elementwise_merges_match_keras(merge_type, third):
    if merge_type == "Subtract" and third:
        pytest.skip("Subtract takes exactly two inputs")
    plan, graph = assert_matches_keras(masked_merge_spec(merge_type, third), two_masks_input())
    # Keras: a merge has a mask only when every input has one (the plan knows which do)
    assert plan.nodes[3].emits_mask == (third == "")
    assert_training_step_matches_keras(plan, graph, two_masks_input())


@pytest.mark.oracle
@pytest.mark.parametrize("merge_type", ELEMENTWISE + ["Concatenate"])
def test_output_masks_equal_keras_compute_mask(merge_type):
    from keras_bridge import keras

    x = two_masks_input()
    m1, m2 = np.any(x != 0, axis=-1), np.any(x != 1, axis=-1)
    layer = {"Concatenate": Concatenate(type="Concatenate", axis=1)}.get(
        merge_type) or merge(globals()[merge_type])
    twin = getattr(keras.layers, merge_type)(**({"axis": 1} if merge_type == "Concatenate"
                                                else {}))
    for masks in ([m1, m2], [m1, None], [None, m2], [None, None]):
        got = layer.output_mask([x, x], masks)
        expected = twin.compute_mask([keras.ops.convert_to_tensor(x)] * 2,
                                     [None if m is None else keras.ops.convert_to_tensor(m)
                                      for m in masks])
        if expected is None:
            assert got is None
        else:
            np.testing.assert_array_equal(got, keras.ops.convert_to_numpy(expected))


@pytest.mark.oracle
def test_ties_of_three_split_as_keras():
    # Maximum(a, a, a): Keras (torch) gives the last input 1/2 and the first two 1/4 each
    text = """
input_shape: [4]
layers:
  - {type: Dense, units: 3, name: shared}
  - {type: Maximum, inputs: [shared, shared, shared]}
  - {type: Dense, units: 2}
"""
    plan = plan_of(text)
    graph = trained_graph(plan)
    assert_training_step_matches_keras(plan, graph, RNG.normal(size=(5, 4)).astype(np.float32))


CONCAT_AND_DOT = """
input_shape: [5, 4]
layers:
  - {type: Masking, name: masked}
  - {type: Dense, units: 4, name: a}
  - {type: Dense, units: 3, inputs: [input], name: b}
  - {type: Concatenate, axis: -1, inputs: [a, b], name: joined}
  - {type: Concatenate, axis: 1, inputs: [joined, joined], name: longer}
  - {type: LSTM, units: 7, return_sequences: true, name: lstm}
  - {type: Dot, axes: [2, 2], inputs: [lstm, joined], name: scores}
  - {type: Dot, axes: [-1, 1], normalize: true, inputs: [scores, b], name: cosines}
  - {type: Flatten}
  - {type: Dense, units: 2}
"""


@pytest.mark.oracle
def test_concatenate_and_dot_match_keras():
    plan, graph = assert_matches_keras(CONCAT_AND_DOT)
    shapes = {node.name: node.output_shape for node in plan.nodes}
    assert shapes["scores"] == (None, 10, 5) and shapes["cosines"] == (None, 10, 3)
    assert_training_step_matches_keras(plan, graph, sample_inputs(plan))


@pytest.mark.oracle
def test_shapes_and_params_match_keras():
    from keras_bridge import keras_model

    for text in [masked_merge_spec("Maximum", ", input"), CONCAT_AND_DOT]:
        plan = plan_of(text)
        model = keras_model(plan)
        for node in plan.nodes:
            keras_layer = model.get_layer(node.name)
            assert tuple(keras_layer.output.shape) == node.output_shape, node.name
            assert keras_layer.count_params() == sum(np.prod(w.shape) for w in node.weights)


# ---- export parity ----------------------------------------------------------------------------
BROADCAST_MERGES = """
input_shape: [4, 3]
layers:
  - {type: Flatten, name: flat}
  - {type: Dense, units: 1, inputs: [input], name: one}
  - {type: Dense, units: 3, inputs: [flat], name: vector}
  - {type: Add, inputs: [input, one, vector], name: added}
  - {type: Multiply, inputs: [added, one], name: product}
  - {type: Subtract, inputs: [product, vector], name: difference}
  - {type: Average, inputs: [difference, input]}
"""


@pytest.mark.oracle
@pytest.mark.parametrize("merge_type", ELEMENTWISE)
@pytest.mark.parametrize("third", ["", ", input"], ids=["both-masked", "one-unmasked"])
def test_masked_merges_export(merge_type, third, tmp_path):
    if merge_type == "Subtract" and third:
        pytest.skip("Subtract takes exactly two inputs")
    plan = plan_of(masked_merge_spec(merge_type, third))
    check_onnx(plan, tmp_path, two_masks_input())
    check_keras(plan, tmp_path, two_masks_input())


@pytest.mark.oracle
@pytest.mark.parametrize("text", [CONCAT_AND_DOT, BROADCAST_MERGES, MASKED_CONCAT_TIME_LSTM,
                                  MASKED_CONCAT_FEATURES_LSTM, MASKED_ADD_LSTM],
                         ids=["concatenate-dot", "broadcast", "concatenate-time",
                              "concatenate-features", "add-one-mask"])
def test_merges_export(text, tmp_path):
    plan = plan_of(text)
    check_onnx(plan, tmp_path)
    check_keras(plan, tmp_path)


@pytest.mark.oracle
def test_broadcasting_merges_match_keras():
    assert_matches_keras(BROADCAST_MERGES)
