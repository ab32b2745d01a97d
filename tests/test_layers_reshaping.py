"""Reshaping layers: hand-derived values, float64 gradient checks, Keras 3 as the oracle
(values, shapes with unknown dimensions, masks, a training step's gradients, argument errors),
and ONNX / Keras export parity."""

import json
import warnings

import numpy as np
import pytest
from gradcheck import check_layer
from test_export import check_keras, check_onnx, plan_of

from layerctl.errors import SpecError
from layerctl.graph import Graph
from layerctl.layers import (
    Cropping1D,
    Cropping2D,
    Identity,
    Permute,
    RepeatVector,
    Reshape,
    UpSampling1D,
    UpSampling2D,
    ZeroPadding1D,
    ZeroPadding2D,
)
from layerctl.spec import parse_spec

RNG = np.random.default_rng(0)


def make(cls, **arguments):
    return cls(type=cls.keras_class, **arguments)


# ---- hand-derived values ---------------------------------------------------------------------
def test_reshape_infers_the_unknown_dimension():
    layer = make(Reshape, target_shape=[-1, 2, 2])
    assert layer.output_shape((None, 12)) == (None, 3, 2, 2)
    assert layer.output_shape((None, None)) == (None, None, 2, 2)
    y, _ = layer.forward({}, np.arange(8.0).reshape(1, 8), None, False, None)
    np.testing.assert_array_equal(y, [[[[0, 1], [2, 3]], [[4, 5], [6, 7]]]])


def test_permute_is_one_based():
    layer = make(Permute, dims=[2, 1])
    assert layer.output_shape((None, 10, 64)) == (None, 64, 10)
    y, _ = layer.forward({}, np.arange(6.0).reshape(1, 2, 3), None, False, None)
    np.testing.assert_array_equal(y, [[[0, 3], [1, 4], [2, 5]]])


def test_repeat_vector():
    y, _ = make(RepeatVector, n=3).forward({}, np.array([[1.0, 2.0]]), None, False, None)
    np.testing.assert_array_equal(y, [[[1, 2], [1, 2], [1, 2]]])


def test_cropping_and_padding_1d():
    x = np.arange(1.0, 6.0).reshape(1, 5, 1)
    y, _ = make(Cropping1D, cropping=[2, 1]).forward({}, x, None, False, None)
    np.testing.assert_array_equal(y[0, :, 0], [3, 4])
    y, _ = make(ZeroPadding1D, padding=[1, 2]).forward({}, x, None, False, None)
    np.testing.assert_array_equal(y[0, :, 0], [0, 1, 2, 3, 4, 5, 0, 0])


def test_cropping_and_padding_2d_forms():
    assert make(Cropping2D, cropping=2).cropping == ((2, 2), (2, 2))
    assert make(Cropping2D, cropping=[1, 3]).cropping == ((1, 1), (3, 3))
    assert make(ZeroPadding2D, padding=[[0, 1], [2, 3]]).padding == ((0, 1), (2, 3))
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)   # channels_first
    layer = make(Cropping2D, cropping=[[1, 0], [0, 2]], data_format="channels_first")
    np.testing.assert_array_equal(layer.forward({}, x, None, False, None)[0], [[[[4], [7]]]])
    layer = make(ZeroPadding2D, padding=[[1, 0], [0, 1]], data_format="channels_first")
    np.testing.assert_array_equal(layer.forward({}, x[:, :, :1, :2], None, False, None)[0],
                                  [[[[0, 0, 0], [1, 2, 0]]]])


def test_upsampling_nearest_repeats():
    y, _ = make(UpSampling1D, size=3).forward({}, np.array([[[1.0], [2.0]]]), None, False, None)
    np.testing.assert_array_equal(y[0, :, 0], [1, 1, 1, 2, 2, 2])
    y, _ = make(UpSampling2D, size=[1, 2]).forward({}, np.array([[[[1.0], [2.0]]]]), None,
                                                    False, None)
    np.testing.assert_array_equal(y[0, 0, :, 0], [1, 1, 2, 2])


def test_upsampling_bilinear_half_pixel_centres():
    # output cell o reads input coordinate (o + 1/2)/2 - 1/2, clamped: -0.25, 0.25, 0.75, 1.25
    layer = make(UpSampling2D, size=[1, 2], interpolation="bilinear")
    y, _ = layer.forward({}, np.array([[[[0.0], [1.0]]]]), None, False, None)
    np.testing.assert_allclose(y[0, 0, :, 0], [0, 0.25, 0.75, 1])
    layer = make(UpSampling2D, size=[3, 1], interpolation="BILINEAR")   # lower-cased as in Keras
    y, _ = layer.forward({}, np.array([[[[0.0]], [[3.0]]]]), None, False, None)
    # coordinates (o + 1/2)/3 - 1/2: -1/3, 0, 1/3, 2/3, 1, 4/3
    np.testing.assert_allclose(y[0, :, 0, 0], [0, 0, 1, 2, 3, 3])


def test_identity_passes_the_mask():
    layer = make(Identity)
    mask = np.array([[True, False]])
    assert layer.emits_mask(True) and layer.output_mask(None, mask) is mask
    assert not make(Reshape, target_shape=[4]).emits_mask(True)


# ---- float64 gradient checks -----------------------------------------------------------------
GRADIENT_CASES = [
    (Reshape, {"target_shape": [-1, 3]}, (2, 4, 3)),
    (Reshape, {"target_shape": [2, 3, 2]}, (2, 12)),
    (Permute, {"dims": [2, 1]}, (2, 3, 4)),
    (Permute, {"dims": [3, 1, 2]}, (2, 3, 4, 2)),
    (RepeatVector, {"n": 3}, (2, 4)),
    (Identity, {}, (2, 3)),
    (Cropping1D, {"cropping": [2, 0]}, (2, 5, 3)),
    (Cropping2D, {"cropping": [[1, 0], [2, 1]], "data_format": "channels_last"}, (2, 4, 5, 2)),
    (Cropping2D, {"cropping": [[0, 2], [1, 1]], "data_format": "channels_first"}, (2, 2, 4, 5)),
    (ZeroPadding1D, {"padding": [0, 2], "data_format": "channels_last"}, (2, 3, 2)),
    (ZeroPadding1D, {"padding": [1, 2], "data_format": "channels_first"}, (2, 3, 2)),
    (ZeroPadding2D, {"padding": [[1, 0], [2, 1]], "data_format": "channels_last"}, (2, 3, 2, 2)),
    (ZeroPadding2D, {"padding": [1, 2], "data_format": "channels_first"}, (2, 2, 3, 2)),
    (UpSampling1D, {"size": 3}, (2, 3, 2)),
] + [
    (UpSampling2D, {"size": size, "interpolation": interpolation, "data_format": data_format},
     (2, 3, 4, 2) if data_format == "channels_last" else (2, 2, 3, 4))
    for size in ([2, 2], [1, 3], [4, 1])
    for interpolation in ("nearest", "bilinear")
    for data_format in ("channels_last", "channels_first")
]


@pytest.mark.parametrize("cls, arguments, shape", GRADIENT_CASES,
                         ids=[f"{c.keras_class}-{a}" for c, a, _ in GRADIENT_CASES])
def test_gradients(cls, arguments, shape):
    check_layer(make(cls, **arguments), RNG.normal(size=shape))


def test_bilinear_single_pixel_rows_gradient():
    """An axis of size 1: both neighbours are the same, clamped cell."""
    layer = make(UpSampling2D, size=[3, 2], interpolation="bilinear")
    check_layer(layer, RNG.normal(size=(2, 1, 3, 2)))


# ---- argument errors (located) -----------------------------------------------------------------
def messages(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(text)
    return [line.split(": ", 1)[1] for line in str(caught.value).splitlines()]


def spec_with(layer: dict, input_shape=(4, 4, 3)) -> str:
    return json.dumps({"input_shape": list(input_shape), "layers": [layer]})


# (layer mapping in a spec, the same layer in Python Keras, how Keras fails)
ARGUMENT_ERRORS = [
    ({"type": "Reshape", "target_shape": [-1, -1]}, "Reshape((-1, -1))"),
    ({"type": "Reshape", "target_shape": [-2, 6]}, "Reshape((-2, 6))"),
    ({"type": "Permute", "dims": [1, 3]}, "Permute((1, 3))"),
    ({"type": "Permute", "dims": [0, 1]}, "Permute((0, 1))"),
    ({"type": "RepeatVector", "n": 0}, "RepeatVector(0)"),
    ({"type": "RepeatVector", "n": 2.5}, "RepeatVector(2.5)"),
    ({"type": "Cropping1D", "cropping": -1}, "Cropping1D(-1)"),
    ({"type": "Cropping1D", "cropping": [1, 2, 3]}, "Cropping1D((1, 2, 3))"),
    ({"type": "Cropping1D", "cropping": [1, -2]}, "Cropping1D((1, -2))"),
    ({"type": "Cropping2D", "cropping": -1}, "Cropping2D(-1)"),
    ({"type": "Cropping2D", "cropping": [1, 2, 3]}, "Cropping2D((1, 2, 3))"),
    ({"type": "Cropping2D", "cropping": [[1, 2], [3]]}, "Cropping2D(((1, 2), (3,)))"),
    ({"type": "Cropping2D", "cropping": [[1, 2], [3, -1]]}, "Cropping2D(((1, 2), (3, -1)))"),
    ({"type": "Cropping2D", "cropping": [[1, "a"], [0, 0]]}, "Cropping2D(((1, 'a'), (0, 0)))"),
    ({"type": "ZeroPadding1D", "padding": [1, 2, 3]}, "ZeroPadding1D((1, 2, 3))"),
    ({"type": "ZeroPadding2D", "padding": [1, 2, 3]}, "ZeroPadding2D((1, 2, 3))"),
    ({"type": "ZeroPadding2D", "padding": [[1, -1], [0, 0]]}, "ZeroPadding2D(((1, -1), (0, 0)))"),
    ({"type": "UpSampling1D", "size": 0}, "UpSampling1D(0)"),
    ({"type": "UpSampling1D", "size": 1.5}, "UpSampling1D(1.5)"),
    ({"type": "UpSampling2D", "size": [0, 2]}, "UpSampling2D((0, 2))"),
    ({"type": "UpSampling2D", "size": [1, 2, 3]}, "UpSampling2D((1, 2, 3))"),
]


@pytest.mark.oracle
@pytest.mark.parametrize("layer, keras_call", ARGUMENT_ERRORS, ids=[c for _, c in ARGUMENT_ERRORS])
def test_argument_errors_are_keras_messages(layer, keras_call):
    from keras_bridge import keras

    with pytest.raises((ValueError, TypeError)) as caught:
        eval(f"keras.layers.{keras_call}", {"keras": keras})  # noqa: S307 - literal test table
    assert messages(spec_with(layer)) == [str(caught.value)]


def test_argument_errors_are_located():
    text = ('input_shape: [4]\nlayers:\n  - {type: Reshape, target_shape: [-1, -1]}\n'
            '  - {type: UpSampling2D, interpolation: bicubic}\n'
            '  - {type: UpSampling2D, interpolation: cubic}\n')
    with pytest.raises(SpecError) as caught:
        parse_spec(text)
    assert str(caught.value).splitlines() == [
        "<spec>:3:35: There must be at most one unknown dimension (-1) in `target_shape`. "
        "Received: target_shape=(-1, -1).",
        "<spec>:4:41: interpolation 'bicubic' is a Keras option that layerctl does not support "
        "(yet): use 'nearest' or 'bilinear'",
        "<spec>:5:41: Invalid value for argument `interpolation`. Expected one of 'nearest', "
        "'bilinear'. Received: interpolation=cubic",
    ]


# (layer mapping, input shape without the batch axis)
SHAPE_ERRORS = [
    ({"type": "Reshape", "target_shape": [5]}, (4, 3)),
    ({"type": "Reshape", "target_shape": [-1, 5]}, (4, 3)),
    ({"type": "Cropping1D", "cropping": [2, 2]}, (4, 3)),
    ({"type": "Cropping2D", "cropping": [[2, 2], [0, 0]]}, (4, 4, 1)),
    ({"type": "Cropping2D", "cropping": [0, 3], "data_format": "channels_first"}, (1, 4, 3)),
]


@pytest.mark.oracle
@pytest.mark.parametrize("layer, input_shape", SHAPE_ERRORS, ids=lambda v: str(v))
def test_shape_errors_are_keras_messages(layer, input_shape):
    from keras_bridge import keras

    arguments = {k: v for k, v in layer.items() if k != "type"}
    keras_layer = getattr(keras.layers, layer["type"])(**arguments)
    with pytest.raises(ValueError) as caught:
        keras_layer.compute_output_shape((None, *input_shape))
    with pytest.raises(SpecError) as ours:
        plan_of(spec_with(layer, input_shape))
    assert str(caught.value) in str(ours.value)


# ---- Keras 3 as the oracle -----------------------------------------------------------------------
ORACLE_SPECS = {
    "image-last": """
input_shape: [4, 5, 3]
layers:
  - {type: Conv2D, filters: 4, kernel_size: 2, padding: same, activation: tanh}
  - {type: UpSampling2D, size: [2, 3], interpolation: bilinear}
  - {type: Cropping2D, cropping: [[1, 2], [0, 3]]}
  - {type: ZeroPadding2D, padding: [[2, 0], [1, 1]]}
  - {type: UpSampling2D}
  - {type: Conv2D, filters: 2, kernel_size: 3}
  - {type: Permute, dims: [3, 1, 2]}
  - {type: Reshape, target_shape: [2, -1]}
  - {type: Dense, units: 3}
""",
    "image-first": """
input_shape: [3, 4, 5]
data_format: channels_first
layers:
  - {type: Conv2D, filters: 4, kernel_size: 2, padding: same, activation: relu}
  - {type: UpSampling2D, size: [3, 2], interpolation: bilinear}
  - {type: ZeroPadding2D, padding: 1}
  - {type: Cropping2D, cropping: [2, 1]}
  - {type: UpSampling2D, size: [1, 2]}
  - {type: Conv2D, filters: 2, kernel_size: 3}
  - {type: Flatten}
  - {type: Dense, units: 3}
""",
    "sequence": """
input_shape: [6]
layers:
  - {type: Dense, units: 4, activation: tanh}
  - {type: RepeatVector, n: 3}
  - {type: UpSampling1D, size: 2}
  - {type: ZeroPadding1D, padding: [1, 2]}
  - {type: Cropping1D, cropping: [2, 1]}
  - {type: Identity}
  - {type: Conv1D, filters: 3, kernel_size: 2}
  - {type: ZeroPadding1D, data_format: channels_first}
  - {type: Permute, dims: [2, 1]}
  - {type: Reshape, target_shape: [-1]}
  - {type: Dense, units: 2}
""",
}


def random_graph(text: str, seed: int = 0) -> Graph:
    graph = Graph(plan_of(text))
    rng = np.random.default_rng(seed)
    graph.initialize(rng)
    for key, value in graph.weights.items():
        if key.endswith("/bias"):
            value[...] = rng.normal(scale=0.5, size=value.shape)
    return graph


def sample(plan, n: int = 3, seed: int = 1) -> np.ndarray:
    shape = (n, *plan.input_shape[1:])
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.mark.oracle
@pytest.mark.parametrize("name", ORACLE_SPECS)
def test_forward_shapes_and_counts_match_keras(name):
    from keras_bridge import copy_weights, keras_model, run_keras

    graph = random_graph(ORACLE_SPECS[name])
    model = keras_model(graph.plan)
    copy_weights(model, graph.weights)
    for node in graph.plan.nodes:
        layer = model.get_layer(node.name)
        assert tuple(layer.output.shape) == node.output_shape, node.name
        assert layer.count_params() == node.params, node.name
    x = sample(graph.plan)
    np.testing.assert_allclose(graph.predict(x), run_keras(model, x, training=False),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.oracle
@pytest.mark.parametrize("name", ORACLE_SPECS)
def test_training_step_gradients_match_keras(name):
    """d sum(output · R) / d every weight (and the input), by torch autograd through Keras."""
    import torch
    from keras_bridge import copy_weights, keras_model

    graph = random_graph(ORACLE_SPECS[name])
    model = keras_model(graph.plan)
    copy_weights(model, graph.weights)
    x = sample(graph.plan)
    y = graph.forward(x, training=True)
    projection = np.random.default_rng(2).normal(size=y.shape).astype(np.float32)
    graph.backward(projection)

    x_torch = torch.tensor(x, requires_grad=True)
    out = model(x_torch, training=True)
    (out * torch.tensor(projection)).sum().backward()
    np.testing.assert_allclose(y, out.detach().numpy(), rtol=1e-5, atol=1e-5)
    for layer in model.layers:
        for weight in layer.trainable_weights:
            key = f"{layer.name}/{weight.name}"
            np.testing.assert_allclose(graph.grads[key], weight.value.grad.numpy(),
                                       rtol=1e-4, atol=1e-5, err_msg=key)


# (layer mapping, input shape without the batch axis, with unknown dimensions)
UNKNOWN_DIMENSIONS = [
    ({"type": "Reshape", "target_shape": [-1, 2]}, (None, 4)),
    ({"type": "Reshape", "target_shape": [3, 4]}, (12,)),
    ({"type": "Permute", "dims": [2, 1]}, (None, 3)),
    ({"type": "Cropping1D", "cropping": [1, 2]}, (None, 3)),
    ({"type": "Cropping2D", "cropping": 1}, (None, 5, 2)),
    ({"type": "ZeroPadding1D"}, (None, 3)),
    ({"type": "ZeroPadding2D", "padding": [[1, 2], [0, 1]]}, (3, None, 2)),
    ({"type": "UpSampling1D"}, (None, 3)),
    ({"type": "UpSampling2D", "size": [2, 3]}, (None, None, 2)),
    ({"type": "UpSampling2D", "data_format": "channels_first"}, (2, 3, None)),
    ({"type": "RepeatVector", "n": 4}, (5,)),
    ({"type": "Identity"}, (None, 2)),
]


@pytest.mark.oracle
@pytest.mark.parametrize("layer, input_shape", UNKNOWN_DIMENSIONS, ids=lambda v: str(v))
def test_output_shapes_match_keras(layer, input_shape):
    from keras_bridge import keras

    node = plan_of(spec_with(layer, input_shape)).nodes[0]
    arguments = {k: v for k, v in layer.items() if k != "type"}
    keras_layer = getattr(keras.layers, layer["type"])(**arguments)
    assert tuple(keras_layer.compute_output_shape((None, *input_shape))) == node.output_shape


MASKED = [
    ({"type": "Reshape", "target_shape": [-1]}, (4, 3)),
    ({"type": "Permute", "dims": [2, 1]}, (4, 3)),
    ({"type": "Cropping1D"}, (4, 3)),
    ({"type": "ZeroPadding1D"}, (4, 3)),
    ({"type": "UpSampling1D"}, (4, 3)),
    ({"type": "Identity"}, (4, 3)),
    ({"type": "Flatten"}, (4, 3)),
]


@pytest.mark.oracle
@pytest.mark.parametrize("layer, input_shape", MASKED, ids=lambda v: str(v))
def test_masks_follow_keras(layer, input_shape):
    """Keras 3 passes a mask on only through layers that support masking (Identity here)."""
    import torch
    from keras_bridge import keras

    text = json.dumps({"input_shape": list(input_shape), "layers": [{"type": "Masking"}, layer]})
    plan = plan_of(text)
    ours = plan.nodes[1]
    x = sample(plan, n=2)
    x[0, 1] = 0
    masked = keras.layers.Masking()(torch.tensor(x))
    arguments = {k: v for k, v in layer.items() if k != "type"}
    keras_layer = getattr(keras.layers, layer["type"])(**arguments)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keras_mask = getattr(keras_layer(masked), "_keras_mask", None)
    dropped = [w for w in caught if "does not support masking" in str(w.message)]
    mask = np.any(x != 0, axis=-1)
    ours_mask = ours.layer.output_mask(x, mask)
    assert ours.emits_mask == (keras_mask is not None) == (ours_mask is not None)
    if keras_mask is not None:
        np.testing.assert_array_equal(ours_mask, keras_mask.numpy())
    assert len(plan.warnings) == len(dropped) == (0 if ours.emits_mask else 1)


# ---- export parity ----------------------------------------------------------------------------
EXPORT_SPECS = {
    **ORACLE_SPECS,
    "unknown-steps": """
input_shape: [null, 4]
layers:
  - {type: Masking}
  - {type: Identity}
  - {type: LSTM, units: 3, return_sequences: true}
  - {type: UpSampling1D, size: 3}
  - {type: ZeroPadding1D, padding: [2, 1]}
  - {type: Cropping1D, cropping: [1, 3]}
  - {type: Reshape, target_shape: [-1, 1, 3]}
  - {type: UpSampling2D, size: [2, 2], interpolation: bilinear}
  - {type: Permute, dims: [2, 1, 3]}
  - {type: Dense, units: 2}
""",
}


def export_inputs(plan) -> np.ndarray:
    shape = (4, *(5 if d is None else d for d in plan.input_shape[1:]))
    return np.random.default_rng(3).normal(size=shape).astype(np.float32)


@pytest.mark.oracle
@pytest.mark.parametrize("name", EXPORT_SPECS)
def test_onnx_matches_predict(name, tmp_path):
    plan = plan_of(EXPORT_SPECS[name])
    check_onnx(plan, tmp_path, export_inputs(plan))


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore:Layer 'up_sampling1d' .* does not support masking")
@pytest.mark.parametrize("name", EXPORT_SPECS)
def test_keras_export_matches_predict(name, tmp_path):
    plan = plan_of(EXPORT_SPECS[name])
    check_keras(plan, tmp_path, export_inputs(plan))
