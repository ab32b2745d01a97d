"""LayerNormalization, GroupNormalization, UnitNormalization: hand-derived values, weights,
float64 gradient checks for every option that changes the math, Keras's argument and shape
errors as located messages, and (oracle) Keras 3 forward values, shapes, parameter counts,
masks, training-step gradients, and ONNX / `.keras` export parity."""

import json

import numpy as np
import pytest
from gradcheck import check_layer
from test_export import TOLERANCE, check_onnx, need, plan_of, run_keras_file, sample_inputs

from layerctl.errors import SpecError
from layerctl.export import export_model
from layerctl.graph import Graph
from layerctl.layers import GroupNormalization, LayerNormalization, UnitNormalization

RNG = np.random.default_rng(0)


def ln(**kwargs):
    return LayerNormalization(type="LayerNormalization", **kwargs)


def gn(**kwargs):
    return GroupNormalization(type="GroupNormalization", **kwargs)


def un(**kwargs):
    return UnitNormalization(type="UnitNormalization", **kwargs)


def spec_text(input_shape, *layers) -> str:
    """A spec with one line per layer (line 3 on): JSON flow mappings are YAML."""
    return f"input_shape: {json.dumps(list(input_shape))}\nlayers:\n" + "".join(
        f"  - {json.dumps(layer)}\n" for layer in layers)


def value_column(layer: dict, key: str) -> int:
    """The column of `key`'s value on the layer's line of `spec_text`."""
    line = f"  - {json.dumps(layer)}"
    return line.index(f'"{key}": ') + len(f'"{key}": ') + 1


# ---- hand-derived values ------------------------------------------------------------------------
def test_layer_normalization_three_elements():
    # mean 2, variance 2/3: y = (x − 2) / sqrt(2/3 + 1e-3) · gamma + beta
    x = np.array([[1.0, 2.0, 3.0]])
    weights = {"gamma": np.array([1.0, 2.0, 3.0]), "beta": np.array([0.5, 0.0, -0.5])}
    y, _ = ln().forward(weights, x, None, False, None)
    root = np.sqrt(2 / 3 + 1e-3)
    np.testing.assert_allclose(y, [[-1 / root + 0.5, 0.0, 3 / root - 0.5]])


def test_rms_scaling_divides_x_itself_and_has_gamma_only():
    # Keras 3's deprecated rms_scaling: x / sqrt(var + ε) · gamma, with the *centred* variance
    layer = ln(rms_scaling=True, scale=False)
    assert [w.name for w in layer.weight_specs((None, 3))] == ["gamma"]
    y, _ = layer.forward({"gamma": np.array([1.0, 1.0, 2.0])}, np.array([[1.0, 2.0, 3.0]]),
                         None, False, None)
    np.testing.assert_allclose(y, [[1.0, 2.0, 6.0]] / np.sqrt(2 / 3 + 1e-3))


def test_group_normalization_two_groups():
    # channels [1, 2 | 3, 5]: group means 1.5 and 4, variances 0.25 and 1
    x = np.array([[1.0, 2.0, 3.0, 5.0]])
    y, _ = gn(groups=2).forward({"gamma": np.ones(4), "beta": np.zeros(4)}, x, None, False, None)
    np.testing.assert_allclose(
        y, [[-0.5 / np.sqrt(0.251), 0.5 / np.sqrt(0.251), -1 / np.sqrt(1.001), 1 / np.sqrt(1.001)]])


def test_unit_normalization_values_and_zero_rows():
    y, _ = un().forward({}, np.array([[3.0, 4.0], [0.0, 0.0], [1e-14, 0.0]]), None, False, None)
    # a norm below 1e-12 counts as 1e-12, so zeros stay zeros and tiny rows shrink
    np.testing.assert_allclose(y, [[0.6, 0.8], [0.0, 0.0], [0.01, 0.0]])


def test_training_and_inference_agree():
    x = RNG.normal(size=(3, 4, 6))
    for layer in (ln(), gn(groups=3), un()):
        weights = {w.name: RNG.normal(size=w.shape) for w in layer.weight_specs((None, 4, 6))}
        np.testing.assert_array_equal(layer.forward(weights, x, None, True, None)[0],
                                      layer.forward(weights, x, None, False, None)[0])


# ---- weights ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, expected", [
    ({}, [("gamma", (6,)), ("beta", (6,))]),
    ({"axis": [1, 2]}, [("gamma", (4, 6)), ("beta", (4, 6))]),
    ({"axis": [2, 1]}, [("gamma", (4, 6)), ("beta", (4, 6))]),
    ({"axis": [-1, 1]}, [("gamma", (6, 4)), ("beta", (6, 4))]),  # Keras: sorted(axis) order
    ({"center": False}, [("gamma", (6,))]),
    ({"scale": False}, [("beta", (6,))]),
    ({"scale": False, "center": False}, []),
    ({"rms_scaling": True}, [("gamma", (6,))]),
    ({"rms_scaling": True, "scale": False, "center": False}, [("gamma", (6,))]),
])
def test_layer_normalization_weights(kwargs, expected):
    layer = ln(**kwargs)
    assert [(w.name, w.shape) for w in layer.weight_specs((None, 4, 6))] == expected
    assert all(w.trainable for w in layer.weight_specs((None, 4, 6)))


def test_group_normalization_weights_are_per_channel():
    assert [(w.name, w.shape) for w in gn(groups=2, axis=1).weight_specs((None, 4, 6))] == [
        ("gamma", (4,)), ("beta", (4,))]
    assert [w.name for w in gn(groups=-1, center=False).weight_specs((None, 6))] == ["gamma"]
    assert un().weight_specs((None, 6)) == []


def test_masks_pass_through_without_changing_values():
    x, mask = RNG.normal(size=(2, 5, 4)), np.array([[True] * 5, [True, True, False, False, True]])
    for layer in (ln(), gn(groups=2), un()):
        assert layer.supports_masking and not layer.reads_mask and layer.emits_mask(True)
        weights = {w.name: RNG.normal(size=w.shape) for w in layer.weight_specs((None, 5, 4))}
        np.testing.assert_array_equal(layer.forward(weights, x, mask, True, None)[0],
                                      layer.forward(weights, x, None, True, None)[0])
        assert layer.output_mask(x, mask) is mask


# ---- gradients (float64, central differences) -----------------------------------------------
@pytest.mark.parametrize("kwargs", [
    {}, {"axis": 1}, {"axis": [1, 2]}, {"axis": [-1, 1]}, {"axis": [1, 3]}, {"center": False},
    {"scale": False}, {"center": False, "scale": False}, {"rms_scaling": True},
    {"rms_scaling": True, "scale": False, "axis": [1, 2]}, {"rms_scaling": True, "axis": [-1, 1]},
    {"epsilon": 0.5},
], ids=str)
def test_layer_normalization_gradients(kwargs):
    shape = (2, 3, 4, 5) if kwargs.get("axis") == [1, 3] else (2, 3, 4)
    check_layer(ln(**kwargs), RNG.normal(size=shape))


@pytest.mark.parametrize("kwargs, shape", [
    ({"groups": 1}, (2, 3, 6)),
    ({"groups": 3}, (2, 3, 6)),
    ({"groups": 6}, (2, 3, 6)),
    ({"groups": -1}, (2, 3, 6)),
    ({"groups": 2, "axis": 1}, (2, 4, 3, 2)),  # channels_first
    ({"groups": 2, "axis": -3}, (2, 4, 3, 2)),
    ({"groups": 2, "center": False}, (3, 4)),
    ({"groups": 2, "scale": False}, (3, 4)),
    ({"groups": 2, "center": False, "scale": False}, (2, 2, 4)),
], ids=str)
def test_group_normalization_gradients(kwargs, shape):
    check_layer(gn(**kwargs), RNG.normal(size=shape))


@pytest.mark.parametrize("kwargs", [{}, {"axis": 1}, {"axis": [1, 2]}], ids=str)
def test_unit_normalization_gradients(kwargs):
    check_layer(un(**kwargs), RNG.normal(size=(2, 3, 4)))


def test_unit_normalization_gradient_below_the_floor_is_constant_scale():
    x = np.array([[3.0, 4.0], [1e-14, 0.0]])
    y, cache = un().forward({}, x, None, False, None)
    dx, _ = un().backward({}, cache, np.ones_like(x))
    np.testing.assert_allclose(dx[1], [1e12, 1e12])  # Keras's min(rsqrt, 1/ε) is flat there


# ---- Keras's errors, located --------------------------------------------------------------------
def located_messages(text: str) -> list[str]:
    with pytest.raises(SpecError) as error:
        plan_of(text)
    return [problem.render() for problem in error.value.problems]


@pytest.mark.parametrize("layer, message", [
    ({"type": "LayerNormalization", "axis": "a"},
     "Expected an int or a list/tuple of ints for the argument 'axis', but "
     "received: 'a'"),
    ({"type": "LayerNormalization", "axis": 1.5},
     "Expected an int or a list/tuple of ints for the argument 'axis', but "
     "received: 1.5"),
    ({"type": "UnitNormalization", "axis": [1, "x"]},
     "Invalid value for `axis` argument: expected an int or a list/tuple of ints. "
     "Received: axis=[1, 'x']"),
    ({"type": "UnitNormalization", "axis": []},
     "`axis` must name at least one axis. Received: axis=[]"),
    ({"type": "GroupNormalization", "groups": 0},
     "Received an invalid value for argument `groups`, expected a positive integer "
     "(or `-1` for instance normalization). Received: groups=0"),
    ({"type": "GroupNormalization", "groups": 2.0},
     "Received an invalid value for argument `groups`, expected a positive integer "
     "(or `-1` for instance normalization). Received: groups=2.0"),
    ({"type": "GroupNormalization", "axis": [1, 2]},
     "GroupNormalization normalizes along one channels axis: `axis` must be an "
     "integer. Received: axis=[1, 2]"),
])
def test_argument_errors_are_keras_messages(layer, message):
    key = next(k for k in layer if k != "type")
    assert located_messages(spec_text([4, 6], layer)) == [
        f"<spec>:3:{value_column(layer, key)}: {message}"]


@pytest.mark.parametrize("input_shape, layer, message", [
    ([4, 6], {"type": "LayerNormalization", "axis": 3},
     "Axis 3 is out of bounds for input shape (None, 4, 6). Received: axis=3"),
    ([4, 6], {"type": "LayerNormalization", "axis": [1, -4]},
     "Axis -4 is out of bounds for input shape (None, 4, 6). Received: axis=[1, -4]"),
    ([4, 6], {"type": "LayerNormalization", "axis": [1, -2]},
     "`axis` names an axis twice: axis=[1, -2] for an input of rank 3"),
    ([None, 6], {"type": "LayerNormalization", "axis": 1},
     "Shapes used to initialize variables must be fully-defined (no `None` dimensions). "
     "Received: shape=(None,) for variable path='layer_normalization/gamma'"),
    ([None, 6], {"type": "LayerNormalization", "axis": [1, 2], "scale": False},
     "Shapes used to initialize variables must be fully-defined (no `None` dimensions). "
     "Received: shape=(None, 6) for variable path='layer_normalization/beta'"),
    ([4, 6], {"type": "UnitNormalization", "axis": [1, 3]},
     "Axis [1, 3] is out of bounds for input shape (None, 4, 6)."),
    ([4, 6], {"type": "GroupNormalization", "groups": 4},
     "Number of groups (4) must be a multiple of the number of channels (6)."),
    ([4, 6], {"type": "GroupNormalization"},
     "Number of groups (32) cannot be more than the number of channels (6)."),
    ([4, None], {"type": "GroupNormalization", "groups": 2},
     "Axis -1 of input tensor should have a defined dimension but the layer received an input "
     "with shape (None, 4, None)."),
    ([4, 6], {"type": "GroupNormalization", "groups": 2, "axis": 0},
     "Axis 0 of input tensor should have a defined dimension but the layer received an input "
     "with shape (None, 4, 6)."),
    ([4, 6], {"type": "GroupNormalization", "groups": 2, "axis": 3},
     "Axis 3 is out of bounds for input shape (None, 4, 6). Received: axis=3"),
])
def test_shape_errors_are_keras_messages(input_shape, layer, message):
    shape = ", ".join("None" if d is None else str(d) for d in [None, *input_shape])
    name = "layer_normalization" if layer["type"] == "LayerNormalization" else (
        "unit_normalization" if layer["type"] == "UnitNormalization" else "group_normalization")
    assert located_messages(spec_text(input_shape, layer)) == [
        f"<spec>:3:6: layer '{name}' "
        f"({layer['type']}) cannot take input of shape ({shape}): {message}"]


def test_unknown_sizes_are_fine_without_weights():
    plan = plan_of(spec_text([None, 6], {"type": "LayerNormalization", "axis": [1, 2],
                                         "center": False, "scale": False},
                             {"type": "UnitNormalization", "axis": 1},
                             {"type": "GroupNormalization", "groups": 3}))
    assert [n.output_shape for n in plan.nodes] == [(None, None, 6)] * 3


# ---- Keras 3 as the oracle ---------------------------------------------------------------------
ORACLE_CASES = {
    # Keras 3.15.1's torch backend hands a contiguous `axis` to F.layer_norm, which only
    # normalizes trailing axes: the non-trailing cases below use rms_scaling or gapped axes,
    # which take Keras's generic path.
    "ln-last": ([5, 6], {"type": "LayerNormalization"}),
    "ln-rank-2": ([6], {"type": "LayerNormalization"}),
    "ln-unsorted": ([5, 6], {"type": "LayerNormalization", "axis": [2, 1]}),
    "ln-two-trailing": ([5, 6], {"type": "LayerNormalization", "axis": [-2, -1]}),
    "ln-mixed-sign": ([5, 6], {"type": "LayerNormalization", "axis": [-1, 1]}),
    "ln-gapped": ([3, 4, 5], {"type": "LayerNormalization", "axis": [1, 3]}),
    "ln-no-center": ([5, 6], {"type": "LayerNormalization", "center": False, "epsilon": 0.1}),
    "ln-no-scale": ([5, 6], {"type": "LayerNormalization", "scale": False}),
    "ln-plain": ([5, 6], {"type": "LayerNormalization", "scale": False, "center": False}),
    "ln-rms": ([5, 6], {"type": "LayerNormalization", "rms_scaling": True}),
    "ln-rms-axis-1": ([5, 6], {"type": "LayerNormalization", "rms_scaling": True, "axis": 1}),
    "ln-rms-mixed": ([5, 6], {"type": "LayerNormalization", "rms_scaling": True,
                              "axis": [-1, 1], "scale": False}),
    "gn-1": ([5, 6], {"type": "GroupNormalization", "groups": 1}),
    "gn-rank-2": ([6], {"type": "GroupNormalization", "groups": 2}),
    "gn-3": ([4, 3, 6], {"type": "GroupNormalization", "groups": 3}),
    "gn-channels": ([5, 6], {"type": "GroupNormalization", "groups": 6, "epsilon": 0.01}),
    "gn-instance": ([5, 6], {"type": "GroupNormalization", "groups": -1, "center": False}),
    "gn-channels-first": ([4, 3, 5], {"type": "GroupNormalization", "groups": 2, "axis": 1,
                                      "scale": False}),
    "un-last": ([5, 6], {"type": "UnitNormalization"}),
    "un-list": ([5, 6], {"type": "UnitNormalization", "axis": [1, 2]}),
    "un-axis-1": ([5, 6], {"type": "UnitNormalization", "axis": 1}),
}


def oracle_graph(case: str, dtype=np.float32, seed=0) -> Graph:
    input_shape, layer = ORACLE_CASES[case]
    graph = Graph(plan_of(spec_text(input_shape, layer)), dtype)
    rng = np.random.default_rng(seed)
    for value in graph.weights.values():
        value[...] = rng.normal(1.0, 0.5, size=value.shape)  # gamma, beta far from 1, 0
    return graph


def oracle_input(graph: Graph, seed=1) -> np.ndarray:
    shape = (4, *graph.plan.input_shape[1:])
    return np.random.default_rng(seed).normal(0.5, 2.0, size=shape).astype(graph.dtype)


@pytest.mark.oracle
@pytest.mark.parametrize("case", ORACLE_CASES)
@pytest.mark.parametrize("training", [False, True])
def test_forward_shapes_and_params_match_keras(case, training):
    from keras_bridge import copy_weights, keras_model, run_keras

    graph = oracle_graph(case)
    model = keras_model(graph.plan)
    copy_weights(model, graph.weights)
    x = oracle_input(graph)
    np.testing.assert_allclose(graph.forward(x, training=training),
                               run_keras(model, x, training=training), rtol=1e-5, atol=1e-5)
    node, layer = graph.plan.nodes[0], model.layers[-1]
    assert tuple(layer.output.shape) == node.output_shape
    assert layer.count_params() == node.params
    assert [(w.name, tuple(w.shape)) for w in layer.weights] == [
        (w.name, w.shape) for w in node.weights]


@pytest.mark.oracle
@pytest.mark.parametrize("case", ORACLE_CASES)
def test_training_step_gradients_match_keras(case):
    """d(Σ y · R)/d(weights, x) through the Keras model (torch autograd) equal layerctl's."""
    from keras_bridge import copy_weights, keras, keras_model

    torch = pytest.importorskip("torch", reason="the Keras oracle runs on the torch backend")
    graph = oracle_graph(case)  # float32, as Keras's weights are
    model = keras_model(graph.plan)
    copy_weights(model, graph.weights)
    x = oracle_input(graph)
    projection = np.random.default_rng(2).normal(size=x.shape)
    node = graph.plan.nodes[0]
    weights = graph.layer_weights(node)
    _, cache = node.layer.forward(weights, x, None, True, None)
    dx, grads = node.layer.backward(weights, cache, projection)
    x_torch = torch.tensor(x, requires_grad=True)
    (model(x_torch, training=True) * torch.tensor(projection)).sum().backward()
    keras_layer = model.layers[-1]
    assert sorted(grads) == sorted(w.name for w in keras_layer.weights)
    for weight in keras_layer.weights:
        keras_grad = keras.ops.convert_to_numpy(weight.value.grad)
        np.testing.assert_allclose(grads[weight.name], keras_grad, **TOLERANCE,
                                   err_msg=weight.name)
    np.testing.assert_allclose(dx, x_torch.grad.numpy(), **TOLERANCE)


@pytest.mark.oracle
@pytest.mark.parametrize("layer", [
    {"type": "LayerNormalization"}, {"type": "GroupNormalization", "groups": 2},
    {"type": "UnitNormalization"}], ids=lambda layer: layer["type"])
def test_masks_match_keras(layer):
    """After Masking, Keras passes the mask on unchanged and computes the same values."""
    from keras_bridge import copy_weights, keras, keras_model, run_keras

    graph = Graph(plan_of(spec_text([5, 4], {"type": "Masking"}, layer)))
    graph.initialize(np.random.default_rng(0))
    x = sample_inputs(graph.plan, n=4)
    model = keras_model(graph.plan)
    copy_weights(model, graph.weights)
    np.testing.assert_allclose(graph.forward(x), run_keras(model, x, False), **TOLERANCE)
    keras_layer = model.layers[-1]
    incoming = np.any(x != 0, axis=-1)  # Masking's mask (mask_value 0)
    mask = keras.ops.convert_to_numpy(keras_layer.compute_mask(x, incoming))
    assert graph.plan.nodes[-1].emits_mask
    np.testing.assert_array_equal(mask, incoming)
    np.testing.assert_array_equal(graph.output_mask, mask)


# ---- export parity ------------------------------------------------------------------------------
EXPORT_CASES = {
    "ln-trailing": ([5, 6], [{"type": "LayerNormalization", "axis": [1, 2]}]),
    "ln-mixed-sign": ([5, 6], [{"type": "LayerNormalization", "axis": [-1, 1]}]),
    "ln-gapped": ([3, 4, 5], [{"type": "LayerNormalization", "axis": [1, 3], "center": False}]),
    "ln-rms": ([5, 6], [{"type": "LayerNormalization", "rms_scaling": True, "axis": 1}]),
    "ln-plain-unknown": ([None, 6], [{"type": "LayerNormalization", "axis": [1, 2],
                                      "center": False, "scale": False}]),
    "gn": ([4, 3, 6], [{"type": "GroupNormalization", "groups": 3}]),
    "gn-channels-first-unknown": ([6, None], [{"type": "GroupNormalization", "groups": 2,
                                               "axis": 1}]),
    "un": ([5, 6], [{"type": "UnitNormalization", "axis": [1, 2]}]),
    "masked-stack": ([5, 6], [{"type": "Masking"}, {"type": "LayerNormalization"},
                              {"type": "UnitNormalization"}, {"type": "LSTM", "units": 3}]),
}


def export_graph(case: str) -> Graph:
    input_shape, layers = EXPORT_CASES[case]
    graph = Graph(plan_of(spec_text(input_shape, *layers)))
    graph.initialize(np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for key, value in graph.weights.items():
        if key.endswith("gamma") or key.endswith("beta"):
            value[...] = rng.normal(1.0, 0.5, size=value.shape)
    return graph


@pytest.mark.oracle
@pytest.mark.parametrize("opset", [17, 18])  # ReduceMean takes its axes as an input from 18
@pytest.mark.parametrize("case", EXPORT_CASES)
def test_onnx_export_matches_predict(case, opset, tmp_path):
    graph = export_graph(case)
    check_onnx(graph.plan, tmp_path, opset=opset, graph=graph)


@pytest.mark.oracle
@pytest.mark.parametrize("case, fused", [("ln-trailing", True), ("ln-mixed-sign", True),
                                         ("ln-gapped", False), ("ln-rms", False),
                                         ("ln-plain-unknown", False)])
def test_onnx_uses_the_layer_normalization_operator_for_trailing_axes(case, fused):
    need("onnx")
    from layerctl.export.onnx import build_onnx_model

    graph = export_graph(case)
    ops = {n.op_type for n in build_onnx_model(graph.plan, graph.weights).graph.node}
    assert ("LayerNormalization" in ops) == fused
    assert ("ReduceMean" in ops) != fused


@pytest.mark.oracle
@pytest.mark.parametrize("case", EXPORT_CASES)
def test_keras_export_matches_predict(case, tmp_path):
    need("keras")
    graph = export_graph(case)
    x = sample_inputs(graph.plan)
    export_model(graph.plan, graph.weights, tmp_path / "model.keras", "keras")
    y, model = run_keras_file(tmp_path / "model.keras", x)
    np.testing.assert_allclose(y, graph.predict(x), **TOLERANCE)
    assert [layer.name for layer in model.layers[1:]] == [node.name for node in graph.plan.nodes]
