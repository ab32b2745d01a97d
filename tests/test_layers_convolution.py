"""The convolution family: Conv1D/2D `groups`, Conv1D/2DTranspose, DepthwiseConv1D/2D and
SeparableConv1D/2D. Hand-derived values, float64 gradient checks (a brute-force sweep of small
transposed geometries), Keras 3 as the oracle (values, shapes, weights, one training step's
gradients), Keras's argument errors as located messages, and ONNX / .keras export parity."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from gradcheck import check_layer, init_layer_weights
from test_export import check_keras, check_onnx, plan_of

from layerctl.errors import SpecError
from layerctl.layers.base import IncompatibleShape
from layerctl.layers.convolutional import (
    Conv1D,
    Conv1DTranspose,
    Conv2D,
    Conv2DTranspose,
    DepthwiseConv1D,
    DepthwiseConv2D,
    SeparableConv1D,
    SeparableConv2D,
)
from layerctl.spec import parse_spec

RNG = np.random.default_rng(0)


def layer_of(cls, **arguments):
    kind = cls.__name__
    return cls(type=kind, **arguments).model_copy(
        update={"data_format": arguments.get("data_format", "channels_last")})


def sample(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


def transposed_cases(rank):
    """Every padding × strides × output_padding for small sizes, kernels and dilations."""
    sizes, kernels = ((1, 2, 3), (1, 2, 3, 4)) if rank == 1 else (((2, 3),), ((1, 2), (3, 2)))
    strides_options = (1, 2, 3) if rank == 1 else ((1, 1), (2, 1), (2, 3))
    for n, k, s, padding in itertools.product(sizes, kernels, strides_options,
                                              ("valid", "same")):
        s_tuple = (s,) * rank if isinstance(s, int) else s
        dilations = [(1,) * rank] + ([(2,) * rank] if max(s_tuple) == 1 else [])
        extras = [None] + list(itertools.product(*(range(v) for v in s_tuple)))
        for d, op in itertools.product(dilations, extras):
            yield (n, k, s, padding, op, d)


def transposed_layer(rank, k, s, padding, op, d, **extra):
    cls = Conv1DTranspose if rank == 1 else Conv2DTranspose
    return layer_of(cls, filters=2, kernel_size=k, strides=s, padding=padding,
                    output_padding=None if op is None else list(op), dilation_rate=list(d),
                    **extra)


def transposed_input(rank, n, seed=0):
    spatial = (n,) if rank == 1 else n
    return sample((2, *spatial, 3), seed)


def valid_output(layer, x):
    """False for the geometries whose output would be empty (Keras makes a 0-sized axis)."""
    try:
        layer.output_shape((None, *x.shape[1:]))
    except IncompatibleShape:
        return False
    return True


# ---- hand-derived values -------------------------------------------------------------------
@pytest.mark.parametrize("padding, expected", [
    ("valid", [1, 10, 102, 20, 203, 30, 300]),
    ("same", [1, 10, 102, 20, 203, 30]),       # 3·2 cells; TF's rule crops one after
])
def test_conv1d_transpose_worked_example(padding, expected):
    # each input cell i spreads x[i]·kernel over cells 2i, 2i+1, 2i+2
    layer = layer_of(Conv1DTranspose, filters=1, kernel_size=3, strides=2, padding=padding,
                     use_bias=False)
    x = np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1)
    kernel = np.array([1.0, 10.0, 100.0]).reshape(3, 1, 1)
    y, _ = layer.forward({"kernel": kernel}, x, None, False, None)
    np.testing.assert_array_equal(y.ravel(), expected)
    assert layer.output_shape((None, 3, 1)) == (None, len(expected), 1)


def test_depthwise_and_separable_worked_example():
    # channel c, multiplier m -> output channel 2c + m; x·[1, 2] per channel, summed over a
    # window of 2 steps
    x = np.array([[[1.0, 10.0], [2.0, 20.0]]])                      # (1, 2 steps, 2 channels)
    kernel = np.array([[[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0, 4.0]]])   # (2, 2, 2)
    depthwise = layer_of(DepthwiseConv1D, kernel_size=2, depth_multiplier=2, use_bias=False)
    y, _ = depthwise.forward({"kernel": kernel}, x, None, False, None)
    np.testing.assert_array_equal(y, [[[3.0, 6.0, 90.0, 120.0]]])
    separable = layer_of(SeparableConv1D, filters=1, kernel_size=2, depth_multiplier=2,
                         use_bias=False)
    pointwise = np.array([1.0, 0.0, 0.0, 1.0]).reshape(1, 4, 1)
    y, _ = separable.forward({"depthwise_kernel": kernel, "pointwise_kernel": pointwise}, x,
                             None, False, None)
    np.testing.assert_array_equal(y, [[[123.0]]])


def test_weight_specs_follow_keras_layouts():
    assert [(w.name, w.shape) for w in layer_of(
        Conv2DTranspose, filters=4, kernel_size=(3, 2)).weight_specs((None, 5, 5, 3))] == [
        ("kernel", (3, 2, 4, 3)), ("bias", (4,))]
    assert [(w.name, w.shape) for w in layer_of(
        DepthwiseConv2D, kernel_size=3, depth_multiplier=2).weight_specs((None, 5, 5, 3))] == [
        ("kernel", (3, 3, 3, 2)), ("bias", (6,))]
    assert [(w.name, w.shape) for w in layer_of(
        SeparableConv1D, filters=4, kernel_size=3, depth_multiplier=2,
        data_format="channels_first").weight_specs((None, 3, 9))] == [
        ("depthwise_kernel", (3, 3, 2)), ("pointwise_kernel", (1, 6, 4)), ("bias", (4,))]
    assert layer_of(Conv2D, filters=4, kernel_size=3, groups=2).weight_specs(
        (None, 5, 5, 6))[0].shape == (3, 3, 3, 4)


# ---- float64 gradient checks ---------------------------------------------------------------
@pytest.mark.parametrize("rank", [1, 2])
def test_transposed_gradients_sweep(rank):
    """Every padding/stride/output_padding (and dilation) combination of small geometries."""
    checked = 0
    for n, k, s, padding, op, d in transposed_cases(rank):
        layer = transposed_layer(rank, k, s, padding, op, d)
        x = transposed_input(rank, n)
        if not valid_output(layer, x):
            continue
        check_layer(layer, x)
        checked += 1
    assert checked > (150 if rank == 1 else 40)


@pytest.mark.parametrize("cls, extra", [
    (Conv1DTranspose, {"activation": "tanh", "data_format": "channels_first"}),
    (Conv2DTranspose, {"activation": "softmax", "data_format": "channels_first"}),
    (Conv2DTranspose, {"use_bias": False, "activation": "relu"}),
])
def test_transposed_gradients_formats_and_activations(cls, extra):
    layer = layer_of(cls, filters=3, kernel_size=3, strides=2, padding="same", **extra)
    shape = (2, 3, 4) if cls is Conv1DTranspose else (2, 3, 4, 3)
    check_layer(layer, sample(shape) + 0.1)


DEPTHWISE_OPTIONS = [
    {},
    {"depth_multiplier": 2, "padding": "same"},
    {"strides": 2, "padding": "same", "activation": "tanh"},
    {"dilation_rate": 2, "depth_multiplier": 3},
    {"strides": 2, "dilation_rate": 2},      # Keras allows both here
    {"use_bias": False, "data_format": "channels_first", "activation": "softmax"},
]


@pytest.mark.parametrize("options", DEPTHWISE_OPTIONS, ids=str)
@pytest.mark.parametrize("rank", [1, 2])
def test_depthwise_gradients(rank, options):
    cls = DepthwiseConv1D if rank == 1 else DepthwiseConv2D
    layer = layer_of(cls, kernel_size=2, **options)
    spatial = (7,) * rank
    shape = (2, 3, *spatial) if options.get("data_format") == "channels_first" else (
        2, *spatial, 3)
    check_layer(layer, sample(shape))


@pytest.mark.parametrize("options", DEPTHWISE_OPTIONS, ids=str)
@pytest.mark.parametrize("rank", [1, 2])
def test_separable_gradients(rank, options):
    cls = SeparableConv1D if rank == 1 else SeparableConv2D
    layer = layer_of(cls, filters=4, kernel_size=2, **options)
    spatial = (7,) * rank
    shape = (2, 3, *spatial) if options.get("data_format") == "channels_first" else (
        2, *spatial, 3)
    check_layer(layer, sample(shape))


@pytest.mark.parametrize("cls, shape", [(Conv1D, (2, 7, 6)), (Conv2D, (2, 5, 5, 6))])
@pytest.mark.parametrize("groups", [2, 3, 6])
def test_grouped_conv_gradients(cls, shape, groups):
    layer = layer_of(cls, filters=6, kernel_size=2, groups=groups, padding="same", strides=2)
    check_layer(layer, sample(shape))


def test_first_layer_skips_the_input_gradient():
    layer = layer_of(Conv2DTranspose, filters=2, kernel_size=3, strides=2)
    x = sample((2, 3, 3, 2))
    weights = init_layer_weights(layer, (None, 3, 3, 2))
    y, cache = layer.forward(weights, x, None, False, None)
    dx, grads = layer.backward(weights, cache, np.ones_like(y), need_dx=False)
    _, full = layer.backward(weights, layer.forward(weights, x, None, False, None)[1],
                             np.ones_like(y))
    assert dx is None
    np.testing.assert_allclose(grads["kernel"], full["kernel"])


# ---- Keras's argument errors, located ------------------------------------------------------
@pytest.mark.parametrize("layer, message", [
    ("{type: Conv2DTranspose, filters: 2, kernel_size: 3, strides: 2, output_padding: 2}",
     "`output_padding` must be strictly less than `strides` for all dimensions. At dimension 0, "
     "`output_padding` is 2 but `strides` is 2. Received: output_padding=(2, 2), "
     "strides=(2, 2)"),
    ("{type: Conv2DTranspose, filters: 2, kernel_size: 3, padding: causal}",
     "The `padding` argument must be a list/tuple or one of {'valid', 'same'}. Received: causal"),
    ("{type: Conv2DTranspose, filters: 2, kernel_size: 3, strides: 2, dilation_rate: 2}",
     "`strides > 1` not supported in conjunction with `dilation_rate > 1`. Received: "
     "strides=(2, 2) and dilation_rate=(2, 2)"),
    ("{type: Conv2DTranspose, filters: 0, kernel_size: 3}",
     "Invalid value for argument `filters`. Expected a strictly positive value. "
     "Received filters=0."),
    ("{type: DepthwiseConv2D, kernel_size: 3, depth_multiplier: 0}",
     "Invalid value for argument `depth_multiplier`. Expected a strictly positive value. "
     "Received depth_multiplier=0."),
    ("{type: SeparableConv2D, filters: -1, kernel_size: 3}",
     "Invalid value for argument `filters`. Expected a strictly positive value. "
     "Received filters=-1."),
    ("{type: Conv2D, filters: 6, kernel_size: 3, groups: 4}",
     "The number of filters must be evenly divisible by the number of groups. "
     "Received: groups=4, filters=6."),
])
def test_keras_argument_errors_are_located(layer, message):
    text = f"input_shape: [8, 8, 4]\nlayers:\n  - {layer}\n"
    with pytest.raises(SpecError) as error:
        parse_spec(text, "model.yaml")
    assert str(error.value).startswith("model.yaml:3:")
    assert message in str(error.value)


def test_grouped_input_channels_error_is_located():
    from layerctl.plan import build_plan

    text = "input_shape: [8, 8, 5]\nlayers:\n  - {type: Conv2D, filters: 6, kernel_size: 3, " \
           "groups: 2}\n"
    with pytest.raises(SpecError) as error:
        build_plan(*parse_spec(text, "model.yaml"))
    assert str(error.value).startswith("model.yaml:3:")
    assert "The number of input channels must be evenly divisible by the number of groups. " \
           "Received groups=2, but the input has 5 channels" in str(error.value)


# ---- Keras 3 as the oracle -----------------------------------------------------------------
def keras_twin(layer):
    """The Keras layer with every argument of `layer` (as `layerctl export` builds it)."""
    from types import SimpleNamespace

    from keras_bridge import keras

    from layerctl.export.keras import keras_layer
    return keras_layer(keras, SimpleNamespace(layer=layer.model_copy(update={"name": "twin"})))


def keras_forward_and_gradients(layer, weights, x, projection):
    """Keras's output, and the gradients of sum(output · projection) (torch.autograd)."""
    import torch
    from keras_bridge import keras

    twin = keras_twin(layer)
    twin.build(x.shape)
    twin.set_weights([weights[w.name].astype(np.float32) for w in twin.weights])
    assert [(w.name, tuple(w.shape)) for w in twin.weights] == [
        (name, value.shape) for name, value in weights.items()]
    y = twin(keras.ops.convert_to_tensor(x.astype(np.float32)))
    loss = (y * torch.from_numpy(projection.astype(np.float32))).sum()
    variables = [w.value for w in twin.weights]
    grads = torch.autograd.grad(loss, variables)
    return (keras.ops.convert_to_numpy(y),
            {w.name: g.numpy() for w, g in zip(twin.weights, grads, strict=True)},
            twin.compute_output_shape((None, *x.shape[1:])), twin.count_params())


def check_against_keras(layer, x, seed=0):
    x = x.astype(np.float32)
    weights = {name: value.astype(np.float32) for name, value in
               init_layer_weights(layer, (None, *x.shape[1:]), seed).items()}
    y, cache = layer.forward(weights, x, None, True, None)
    projection = np.random.default_rng(seed + 1).normal(size=y.shape).astype(np.float32)
    _, grads = layer.backward(weights, cache, projection)
    expected, expected_grads, shape, params = keras_forward_and_gradients(
        layer, weights, x, projection)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    assert layer.output_shape((None, *x.shape[1:])) == tuple(shape)
    assert sum(int(np.prod(w.shape)) for w in layer.weight_specs((None, *x.shape[1:]))) == params
    for name, value in expected_grads.items():
        np.testing.assert_allclose(grads[name], value, rtol=1e-4, atol=1e-4, err_msg=name)


@pytest.mark.oracle
@pytest.mark.parametrize("rank", [1, 2])
def test_transposed_sweep_matches_keras(rank):
    for n, k, s, padding, op, d in transposed_cases(rank):
        layer = transposed_layer(rank, k, s, padding, op, d)
        x = transposed_input(rank, n)
        if valid_output(layer, x):
            check_against_keras(layer, x)


@pytest.mark.oracle
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("cls, options, spatial", [
    (Conv1DTranspose, {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same",
                       "activation": "relu"}, (6,)),
    (Conv2DTranspose, {"filters": 4, "kernel_size": (3, 2), "strides": (2, 1),
                       "output_padding": (1, 0), "activation": "softmax"}, (5, 4)),
    (Conv2DTranspose, {"filters": 4, "kernel_size": 3, "dilation_rate": 2, "padding": "same",
                       "use_bias": False}, (5, 4)),
    (DepthwiseConv1D, {"kernel_size": 3, "depth_multiplier": 2, "padding": "same",
                       "strides": 2}, (9,)),
    (DepthwiseConv2D, {"kernel_size": (3, 2), "depth_multiplier": 2, "dilation_rate": 2,
                       "activation": "tanh"}, (7, 6)),
    (DepthwiseConv2D, {"kernel_size": 3, "strides": 2, "dilation_rate": 2}, (9, 9)),
    (SeparableConv1D, {"filters": 5, "kernel_size": 3, "depth_multiplier": 2,
                       "padding": "same"}, (9,)),
    (SeparableConv2D, {"filters": 5, "kernel_size": 3, "strides": 2, "padding": "same",
                       "activation": "relu"}, (7, 6)),
    (Conv1D, {"filters": 6, "kernel_size": 3, "groups": 3, "padding": "causal"}, (9,)),
    (Conv2D, {"filters": 6, "kernel_size": 3, "groups": 2, "strides": 2,
              "padding": "same"}, (7, 6)),
], ids=lambda v: v.__name__ if isinstance(v, type) else None)
def test_layers_match_keras(cls, options, spatial, data_format):
    layer = layer_of(cls, data_format=data_format, **options)
    shape = (3, 6, *spatial) if data_format == "channels_first" else (3, *spatial, 6)
    check_against_keras(layer, sample(shape, seed=2))


# ---- export parity -------------------------------------------------------------------------
EXPORT_SPECS = {
    "transposed_2d": """
input_shape: [5, 4, 3]
layers:
  - {type: Conv2DTranspose, filters: 4, kernel_size: 3, strides: 2, padding: same,
     activation: relu}
  - {type: Conv2DTranspose, filters: 3, kernel_size: [3, 2], strides: [2, 3], padding: valid,
     output_padding: [1, 2]}
  - {type: Conv2DTranspose, filters: 2, kernel_size: 4, strides: 3, padding: same,
     output_padding: 1}
  - {type: Conv2DTranspose, filters: 2, kernel_size: 2, dilation_rate: 2, padding: same,
     data_format: channels_first}
""",
    "transposed_1d": """
input_shape: [6, 3]
layers:
  - {type: Conv1DTranspose, filters: 4, kernel_size: 1, strides: 3}
  - {type: Conv1DTranspose, filters: 3, kernel_size: 3, strides: 2, padding: same,
     output_padding: 0, activation: softmax}
  - {type: Conv1DTranspose, filters: 2, kernel_size: 2, data_format: channels_first}
""",
    "depthwise_separable": """
input_shape: [9, 8, 3]
layers:
  - {type: DepthwiseConv2D, kernel_size: 3, depth_multiplier: 2, padding: same, strides: 2,
     activation: relu}
  - {type: SeparableConv2D, filters: 4, kernel_size: [2, 2], depth_multiplier: 2,
     dilation_rate: 2}
  - {type: DepthwiseConv2D, kernel_size: 2, data_format: channels_first, use_bias: false}
  - {type: SeparableConv2D, filters: 3, kernel_size: 1, data_format: channels_first,
     activation: softmax}
""",
    "depthwise_separable_1d": """
input_shape: [12, 4]
layers:
  - {type: DepthwiseConv1D, kernel_size: 3, depth_multiplier: 3, padding: same}
  - {type: SeparableConv1D, filters: 5, kernel_size: 3, strides: 2, padding: same,
     activation: tanh}
  - {type: SeparableConv1D, filters: 2, kernel_size: 2, data_format: channels_first}
""",
}


@pytest.mark.oracle
@pytest.mark.parametrize("name", sorted(EXPORT_SPECS))
def test_onnx_export_matches_predict(name, tmp_path):
    check_onnx(plan_of(EXPORT_SPECS[name]), tmp_path)


@pytest.mark.oracle
@pytest.mark.parametrize("name", sorted(EXPORT_SPECS))
def test_keras_export_matches_predict(name, tmp_path):
    check_keras(plan_of(EXPORT_SPECS[name]), tmp_path)


@pytest.mark.oracle
def test_transposed_onnx_sweep(tmp_path):
    """ONNX's pads and output_padding reproduce every padding/stride/output_padding window."""
    for n, k, s, padding, op, d in transposed_cases(1):
        layer = transposed_layer(1, k, s, padding, op, d)
        if not valid_output(layer, transposed_input(1, n)):
            continue
        arguments = (f"filters: 2, kernel_size: {k}, strides: {s}, padding: {padding}, "
                     f"dilation_rate: {d[0]}")
        if op is not None:
            arguments += f", output_padding: {op[0]}"
        check_onnx(plan_of(f"input_shape: [{n}, 3]\nlayers:\n"
                           f"  - {{type: Conv1DTranspose, {arguments}}}\n"), tmp_path)


# ---- the ops against independent formulations ------------------------------------------------
def full_transposed_reference(x, kernel, stride, padding, output_padding, dilation):
    """1D: scatter every x[o]·kernel[t] to o·s + t·d, then keep Keras's window of the result."""
    from layerctl.ops.conv import transpose_padding

    batch, n, _ = x.shape
    k, filters, _ = kernel.shape
    span = dilation * (k - 1) + 1
    full = np.zeros((batch, (n - 1) * stride + span + stride, filters))
    for o, t in itertools.product(range(n), range(k)):
        full[:, o * stride + t * dilation] += x[:, o] @ kernel[t].T
    before, _, size = transpose_padding(n, k, stride, padding, output_padding, dilation)
    return full[:, before:before + size]


def test_transposed_op_matches_scatter_definition():
    from layerctl.ops.conv import conv_transpose_forward

    for n, k, s, padding, op, d in transposed_cases(1):
        x, kernel = sample((2, n, 3)), sample((k, 2, 3), seed=1)
        reference = full_transposed_reference(x, kernel, s, padding, None if op is None
                                              else op[0], d[0])
        if reference.shape[1] == 0:
            continue
        y, _ = conv_transpose_forward(x, kernel, (s,), padding, op, d)
        np.testing.assert_allclose(y, reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("strides, padding, dilation, multiplier", [
    ((1, 1), "same", (1, 1), 1), ((2, 1), "valid", (1, 1), 3), ((2, 2), "same", (2, 2), 2),
])
def test_depthwise_op_matches_grouped_conv(strides, padding, dilation, multiplier):
    """Per-tap multiply-adds give what a convolution with one group per channel gives."""
    from layerctl.ops.conv import conv_backward, conv_forward
    from layerctl.ops.depthwise import depthwise_backward, depthwise_forward

    x, kernel = sample((3, 8, 7, 4)), sample((3, 2, 4, multiplier), seed=1)
    y, cache = depthwise_forward(x, kernel, strides, padding, dilation)
    grouped = kernel.reshape(3, 2, 1, 4 * multiplier)
    expected, grouped_cache = conv_forward(x, grouped, strides, padding, dilation, groups=4)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    dy = sample(y.shape, seed=2)
    dx, dkernel = depthwise_backward(cache, dy)
    expected_dx, expected_dkernel = conv_backward(grouped_cache, dy)
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dkernel, expected_dkernel.reshape(kernel.shape), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("op", ["depthwise", "transposed"])
def test_ops_are_bit_identical_split(monkeypatch, op):
    """The batch slices run on several threads give exactly the one-thread numbers."""
    from test_ops_parallel import assert_same_arrays, run_serial_and_split

    from layerctl.ops.conv import conv_transpose_backward, conv_transpose_forward
    from layerctl.ops.depthwise import depthwise_backward, depthwise_forward

    x = sample((7, 9, 8, 4)).astype(np.float32)
    if op == "depthwise":
        kernel = sample((3, 2, 4, 2), seed=1).astype(np.float32)
        forward, backward = depthwise_forward, depthwise_backward
        options = ((2, 1), "same", (1, 1))
    else:
        kernel = sample((3, 2, 5, 4), seed=1).astype(np.float32)
        forward, backward = conv_transpose_forward, conv_transpose_backward
        options = ((2, 3), "same", (1, 2), (1, 1))

    def compute():
        y, cache = forward(x, kernel, *options)
        dy = np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape)
        return (y, *backward(cache, dy))

    assert_same_arrays(*run_serial_and_split(monkeypatch, compute))


def test_digits_encoder_decoder_spec_trains(tmp_path):
    """specs/digits_conv_transpose.yaml (strided, separable, transposed and depthwise
    convolutions) learns the digits far above chance (10 %)."""
    from pathlib import Path

    from click.testing import CliRunner

    from layerctl.cli import cli

    spec = Path(__file__).parent.parent / "specs" / "digits_conv_transpose.yaml"
    result = CliRunner().invoke(cli, ["train", str(spec), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    header, *rows = (tmp_path / "run" / "history.csv").read_text().splitlines()
    accuracy = float(rows[-1].split(",")[header.split(",").index("val_accuracy")])
    assert accuracy > 0.8


def test_graph_gradients_through_every_kind():
    """A float64 graph of all four kinds, relu layers feeding max pooling (whose backward then
    applies the relu's gradient for them), with the first layer skipping its input gradient."""
    from gradcheck import check_graph
    from test_graph import graph_of

    graph = graph_of("""
input_shape: [6, 6, 2]
layers:
  - {type: Conv2DTranspose, filters: 3, kernel_size: 3, strides: 2, padding: same,
     activation: relu}
  - {type: MaxPool}
  - {type: SeparableConv2D, filters: 4, kernel_size: 2, depth_multiplier: 2, activation: relu}
  - {type: MaxPool}
  - {type: DepthwiseConv2D, kernel_size: 2, padding: same, depth_multiplier: 2,
     activation: relu}
  - {type: MaxPool}
  - {type: Flatten}
  - {type: Dense, units: 3}
""")
    assert len(graph._relu_pools) == 3
    for key, value in graph.weights.items():
        if key.endswith("/bias"):   # zero biases would put relu's kink at every dead window
            value[...] = sample(value.shape, seed=6)
    check_graph(graph, sample((2, 6, 6, 2), seed=5))
