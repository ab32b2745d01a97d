"""Rescaling, Resizing, CenterCrop, Normalization (and its adapt): hand-derived values, float64
gradient checks, Keras 3 as the oracle (values, shapes, parameter counts, adapt statistics,
input gradients), located argument errors, ONNX/Keras export parity, and adapting in `train`."""

import numpy as np
import pytest
from click.testing import CliRunner
from gradcheck import check_layer
from test_export import TOLERANCE, check_onnx, export_model, need, plan_of, run_keras_file

from layerctl.cli import cli
from layerctl.errors import LayerctlError
from layerctl.graph import Graph
from layerctl.layers import CenterCrop, Normalization, Rescaling, Resizing
from layerctl.training.adapt import RunningMoments, adapt_layers
from layerctl.training.runs import load_checkpoint
from layerctl.weights import read_npz

CLASSES = {"Rescaling": Rescaling, "Resizing": Resizing, "CenterCrop": CenterCrop,
           "Normalization": Normalization}


def make(type_, **kwargs):
    return CLASSES[type_](type=type_, **kwargs).resolve((None,), "channels_last")


def forward(layer, x, weights=None):
    return layer.forward(weights or {}, x, None, False, None)[0]


def images(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


# ---- hand-derived values ------------------------------------------------------------------
def test_rescaling_maps_bytes_to_minus_one_one():
    layer = make("Rescaling", scale=1 / 127.5, offset=-1.0)
    np.testing.assert_allclose(forward(layer, np.array([[0.0, 127.5, 255.0]])), [[-1, 0, 1]])


def test_rescaling_per_channel_list_broadcasts_on_the_last_axis():
    layer = make("Rescaling", scale=[1.0, 2.0], offset=[0.0, 10.0])
    np.testing.assert_allclose(forward(layer, np.ones((1, 3, 2))), [[[1, 12]] * 3])


def test_bilinear_upsampling_uses_half_pixel_centres():
    # 2 -> 4 cells: sources (i + ½)/2 − ½ = −¼ (clamped to 0), ¼, ¾, 1¼ (past the last cell)
    layer = make("Resizing", height=1, width=4)
    x = np.array([0.0, 1.0]).reshape(1, 1, 2, 1)
    np.testing.assert_allclose(forward(layer, x).ravel(), [0, 0.25, 0.75, 1])


def test_nearest_picks_floor_of_the_half_pixel_centre():
    # 3 -> 2 cells: ⌊(i + ½)·1.5⌋ = 0, 2; 2 -> 3 cells: ⌊(i + ½)·⅔⌋ = 0, 1, 1 (a tie at 1)
    down = make("Resizing", height=1, width=2, interpolation="nearest")
    np.testing.assert_allclose(forward(down, np.array([5.0, 6, 7]).reshape(1, 1, 3, 1)).ravel(),
                               [5, 7])
    up = make("Resizing", height=1, width=3, interpolation="nearest")
    np.testing.assert_allclose(forward(up, np.array([5.0, 6]).reshape(1, 1, 2, 1)).ravel(),
                               [5, 6, 6])


def test_center_crop_takes_the_middle_and_resizes_a_smaller_image():
    x = np.arange(25.0).reshape(1, 5, 5, 1)
    crop = make("CenterCrop", height=2, width=3)
    np.testing.assert_array_equal(forward(crop, x)[0, :, :, 0], x[0, 1:3, 1:4, 0])
    # 2x5 into 4x4: the centred 2x2 window (columns 1-2), upsampled bilinearly
    small = make("CenterCrop", height=4, width=4)
    y = forward(small, np.arange(10.0).reshape(1, 2, 5, 1))
    expected = forward(make("Resizing", height=4, width=4),
                       np.arange(10.0).reshape(1, 2, 5, 1)[:, :, 1:3])
    np.testing.assert_allclose(y, expected)


def test_normalization_keras_docstring_examples():
    given = make("Normalization", mean=3.0, variance=2.0)
    np.testing.assert_allclose(forward(given, np.array([[1.0], [2.0], [3.0]])).ravel(),
                               [-1.4142135, -0.70710677, 0.0], rtol=1e-6)
    data = np.array([[0.0, 7, 4], [2, 9, 6], [0, 7, 4], [2, 9, 6]])
    moments = RunningMoments((0,))
    moments.update(data)
    weights = {"mean": moments.mean, "variance": moments.variance, "count": moments.count}
    np.testing.assert_allclose(forward(make("Normalization"), data[:1], weights), [[-1, -1, -1]])
    inverse = make("Normalization", invert=True)
    np.testing.assert_allclose(forward(inverse, np.array([[1.0, 2, 3]]), weights), [[2, 10, 8]])


def test_running_moments_merge_batches_exactly():
    data = images((37, 4, 3), seed=2) * 5 + 100  # a large mean: the naive Σx² formula suffers
    moments = RunningMoments((0, 1))
    for start in range(0, 37, 8):
        moments.update(data[start : start + 8])
    assert moments.count == 37 * 4
    np.testing.assert_allclose(moments.mean, data.mean(axis=(0, 1)), rtol=1e-12)
    np.testing.assert_allclose(moments.variance, data.var(axis=(0, 1)), rtol=1e-10)


def test_normalization_weights_exist_only_when_statistics_are_not_given():
    adapted = make("Normalization", axis=[1, 3])
    assert [(w.name, w.shape, w.trainable) for w in adapted.weight_specs((None, 4, 5, 6))] == [
        ("mean", (4, 6), False), ("variance", (4, 6), False), ("count", (), False)]
    assert make("Normalization", mean=[1.0, 2], variance=[1.0, 1]).weight_specs((None, 2)) == []


# ---- gradients (float64 central differences) ----------------------------------------------
@pytest.mark.parametrize("kwargs", [
    {"scale": 0.5}, {"scale": [1.0, -2.0, 3.0], "offset": [0.0, 1.0, 2.0]},
])
def test_rescaling_gradient(kwargs):
    check_layer(make("Rescaling", **kwargs), images((2, 4, 3)))


@pytest.mark.parametrize("kwargs,shape", [
    ({"height": 7, "width": 9}, (2, 4, 5, 2)),                           # bilinear up
    ({"height": 3, "width": 2}, (2, 7, 6, 2)),                           # bilinear down
    ({"height": 7, "width": 3, "interpolation": "nearest"}, (2, 4, 5, 2)),  # repeats picks
    ({"height": 2, "width": 4, "interpolation": "nearest"}, (2, 7, 9, 2)),  # skips cells
    ({"height": 4, "width": 4, "crop_to_aspect_ratio": True}, (2, 5, 8, 2)),
    ({"height": 3, "width": 6, "data_format": "channels_first"}, (2, 2, 5, 4)),
])
def test_resizing_gradient(kwargs, shape):
    check_layer(make("Resizing", **kwargs), images(shape))


@pytest.mark.parametrize("kwargs,shape", [
    ({"height": 3, "width": 2}, (2, 6, 5, 2)),                               # crop
    ({"height": 6, "width": 4}, (2, 4, 7, 2)),                               # resize (too small)
    ({"height": 2, "width": 3, "data_format": "channels_first"}, (2, 2, 5, 4)),
])
def test_center_crop_gradient(kwargs, shape):
    check_layer(make("CenterCrop", **kwargs), images(shape))


def statistics(shape, seed=3):
    rng = np.random.default_rng(seed)
    return {"mean": rng.normal(size=shape), "variance": rng.uniform(0.2, 3.0, size=shape),
            "count": np.array(10.0)}


@pytest.mark.parametrize("kwargs,stat_shape", [
    ({}, (3,)), ({"invert": True}, (3,)), ({"axis": None}, ()), ({"axis": [1, 2]}, (4, 3)),
])
def test_normalization_gradient(kwargs, stat_shape):
    check_layer(make("Normalization", **kwargs), images((2, 4, 3)),
                weights=statistics(stat_shape))


@pytest.mark.parametrize("invert", [False, True])
def test_normalization_given_statistics_gradient(invert):
    layer = make("Normalization", axis=[1, 2], mean=[1.0, 2.0, 3.0], variance=[0.5, 2.0, 4.0],
                 invert=invert)  # broadcast from the right: one value per feature, every step
    check_layer(layer, images((2, 4, 3)), weights={})


# ---- errors: Keras's messages, located ----------------------------------------------------
def spec_with(layer: str, input_shape="[4, 3]") -> str:
    return f"input_shape: {input_shape}\nlayers:\n  - {layer}\n"


@pytest.mark.parametrize("layer,message", [
    ("{type: Normalization, mean: 1.0}",
     "When setting values directly, both `mean` and `variance` must be set. Received: "
     "mean=1.0 and variance=None"),
    ("{type: Normalization, mean: [1.0, 2.0], variance: [1.0]}",
     "When setting values directly, `mean` and `variance` must have the same shape. Received: "
     "mean shape (2,) and variance shape (1,)"),
    ("{type: Normalization, mean: [[1.0]], variance: [[1.0]]}",
     "The rank of `mean` must be less than or equal to the number of axes (1). Received: mean "
     "shape (1, 1) for axis (-1,)"),
    ("{type: Normalization, adapt: true, mean: 1.0, variance: 1.0}", "give them, or adapt"),
    ("{type: Resizing, height: 2, width: 2, interpolation: cubic}",
     "Invalid value for argument `interpolation`. Expected of one ('bilinear', 'nearest'). "
     "Received: interpolation=cubic"),
    ("{type: Resizing, height: 2, width: 2, interpolation: bicubic}",
     "is a Keras option that layerctl does not support (yet)"),
])
def test_argument_errors_are_located(layer, message):
    with pytest.raises(LayerctlError) as error:
        plan_of(spec_with(layer))
    text = str(error.value)
    assert message in text
    assert ":3:" in text  # the layer's line


@pytest.mark.parametrize("layer,input_shape,message", [
    ("{type: Normalization, axis: 3}", "[4, 3]",
     "All `axis` values must be in the range [-ndim, ndim). Received inputs with ndim=3, while "
     "axis=(3,)"),
    ("{type: Normalization, axis: 1}", "[null, 3]",
     "All `axis` values to be kept must have a known shape. Received axis=(1,), "
     "inputs.shape=(None, None, 3), with unknown axis at index 1"),
    ("{type: Normalization, mean: [1.0, 2.0], variance: [1.0, 2.0]}", "[4, 3]",
     "cannot be broadcast"),
    ("{type: Resizing, height: 2, width: 2}", "[4, 3]", "expected ndim=4, found ndim=3"),
    ("{type: Rescaling, scale: [1.0, 2.0]}", "[4, 3]", "cannot be broadcast"),
])
def test_shape_errors_are_located(layer, input_shape, message):
    with pytest.raises(LayerctlError) as error:
        plan_of(spec_with(layer, input_shape))
    assert message in str(error.value) and ":3:" in str(error.value)


# ---- Keras 3 as the oracle ----------------------------------------------------------------
ORACLE_CASES = [
    ("Rescaling", {"scale": 0.25, "offset": -1.5}, (3, 5, 6, 2)),
    ("Rescaling", {"scale": [1.0, -2.0], "offset": [0.5, 0.0]}, (3, 5, 6, 2)),
    ("Resizing", {"height": 9, "width": 4}, (3, 5, 6, 2)),
    ("Resizing", {"height": 3, "width": 13}, (3, 7, 5, 2)),
    ("Resizing", {"height": 9, "width": 4, "interpolation": "nearest"}, (3, 5, 6, 2)),
    ("Resizing", {"height": 2, "width": 3, "interpolation": "nearest"}, (3, 4, 9, 2)),  # ties
    ("Resizing", {"height": 3, "width": 3, "interpolation": "nearest"}, (3, 7, 7, 2)),
    ("Resizing", {"height": 4, "width": 6, "crop_to_aspect_ratio": True}, (3, 9, 7, 2)),
    ("Resizing", {"height": 6, "width": 2, "crop_to_aspect_ratio": True,
                  "interpolation": "nearest"}, (3, 5, 9, 2)),
    ("Resizing", {"height": 4, "width": 3, "data_format": "channels_first"}, (3, 2, 6, 5)),
    ("CenterCrop", {"height": 3, "width": 4}, (3, 6, 7, 2)),
    ("CenterCrop", {"height": 8, "width": 4}, (3, 6, 7, 2)),
    ("CenterCrop", {"height": 9, "width": 11}, (3, 6, 7, 2)),
    ("CenterCrop", {"height": 2, "width": 3, "data_format": "channels_first"}, (3, 2, 5, 5)),
    ("Normalization", {"mean": [1.0, -2.0], "variance": [4.0, 0.5]}, (3, 5, 2)),
    ("Normalization", {"axis": [1, 2], "mean": [1.0, -2.0], "variance": [4.0, 0.5]}, (3, 5, 2)),
    ("Normalization", {"axis": None, "mean": 2.0, "variance": 9.0, "invert": True}, (3, 5, 2)),
]


def keras_twin(keras, type_, kwargs):
    return getattr(keras.layers, type_)(**{k: v for k, v in kwargs.items() if k != "adapt"})


@pytest.mark.oracle
@pytest.mark.parametrize("type_,kwargs,shape", ORACLE_CASES)
def test_forward_shapes_and_input_gradients_match_keras(type_, kwargs, shape):
    keras = need("keras")
    import torch

    layer = make(type_, **kwargs)
    x = images(shape, seed=4, dtype=np.float32) * 3
    twin = keras_twin(keras, type_, kwargs)
    x_torch = torch.tensor(x, requires_grad=True)
    expected = twin(x_torch)
    y, cache = layer.forward({}, x, None, False, None)
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-5, atol=1e-5)
    assert layer.output_shape((None,) + shape[1:]) == twin.compute_output_shape(
        (None,) + shape[1:])
    assert twin.count_params() == 0 and layer.weight_specs((None,) + shape[1:]) == []
    assert twin.supports_masking == layer.supports_masking
    dy = images(y.shape, seed=5, dtype=np.float32)
    (expected * torch.tensor(dy)).sum().backward()
    dx, grads = layer.backward({}, cache, dy)
    np.testing.assert_allclose(dx, x_torch.grad.numpy(), rtol=1e-5, atol=1e-5)
    assert grads == {}


ADAPT_SPEC = """
input_shape: {shape}
layers:
  - {{type: Dense, units: 3, name: before}}
  - {{type: Normalization, adapt: true, axis: {axis}, invert: {invert}}}
  - {{type: Flatten}}
  - {{type: Dense, units: 2, name: after}}
"""


@pytest.mark.oracle
@pytest.mark.parametrize("axis,invert,shape", [
    (-1, False, [4, 5]), (None, False, [4, 5]), ([1, 2], True, [4, 5]), (-1, True, [5]),
])
def test_adapt_and_a_training_step_match_keras(axis, invert, shape):
    """Keras's own adapt() on the data the layer receives gives the same statistics; then
    one step's gradients (through the normalization, into the Dense before it) agree."""
    keras = need("keras")
    import torch

    yaml_axis = "null" if axis is None else axis
    plan = plan_of(ADAPT_SPEC.format(shape=shape, axis=yaml_axis, invert=str(invert).lower()))
    graph = Graph(plan)
    graph.initialize(np.random.default_rng(0))
    x = images((45,) + tuple(shape), seed=6, dtype=np.float32) * 2 + 3
    assert adapt_layers(graph, x, batch_size=8) == ["normalization"]

    inputs = keras.Input(tuple(shape))
    before = keras.layers.Dense(3, name="before")
    normalization = keras.layers.Normalization(axis=axis, invert=invert)
    after = keras.layers.Dense(2, name="after")
    hidden = before(inputs)
    model = keras.Model(inputs, after(keras.layers.Flatten()(normalization(hidden))))
    for layer in (before, after):
        layer.set_weights([graph.weights[f"{layer.name}/{w.name}"] for w in layer.weights])
    normalization.adapt(keras.ops.convert_to_numpy(keras.Model(inputs, hidden)(x)))
    mean, variance, count = normalization.get_weights()
    np.testing.assert_allclose(graph.weights["normalization/mean"], mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(graph.weights["normalization/variance"], variance, rtol=1e-5)
    assert count == 0  # Keras 3 never fills `count`; layerctl stores how many values it saw
    hidden_size = x.size // x.shape[-1] * 3  # the Dense before has 3 units
    assert graph.weights["normalization/count"] == hidden_size // max(mean.size, 1)
    assert model.get_layer(normalization.name).count_params() == plan.nodes[1].params

    batch = x[:6]
    projection = images((6, 2), seed=7, dtype=np.float32)
    out = model(torch.tensor(batch))
    (out * torch.tensor(projection)).sum().backward()
    np.testing.assert_allclose(graph.forward(batch, training=True), out.detach().numpy(),
                               rtol=1e-5, atol=1e-5)
    graph.backward(projection)
    for layer in (before, after):
        for w in layer.weights:
            np.testing.assert_allclose(graph.grads[f"{layer.name}/{w.name}"],
                                       w.value.grad.numpy(), rtol=1e-4, atol=1e-5)


# ---- export parity ------------------------------------------------------------------------
IMAGE_SPEC = """
input_shape: {shape}
data_format: {data_format}
layers:
  - {{type: Rescaling, scale: 0.5, offset: -0.25}}
  - {{type: CenterCrop, height: {crop_h}, width: {crop_w}}}
  - {{type: Resizing, height: 5, width: 7, interpolation: {interpolation},
      crop_to_aspect_ratio: {crop}}}
  - {{type: Normalization, adapt: true, axis: {axis}}}
  - {{type: Conv2D, filters: 2, kernel_size: 3}}
  - {{type: Normalization, mean: 0.5, variance: 2.0, invert: true}}
  - {{type: Flatten}}
  - {{type: Dense, units: 3}}
"""

EXPORT_CASES = [
    {"shape": [9, 8, 2], "data_format": "channels_last", "crop_h": 6, "crop_w": 5,
     "interpolation": "bilinear", "crop": "false", "axis": -1},
    {"shape": [9, 8, 2], "data_format": "channels_last", "crop_h": 11, "crop_w": 5,
     "interpolation": "nearest", "crop": "true", "axis": "null"},
    {"shape": [2, 9, 8], "data_format": "channels_first", "crop_h": 4, "crop_w": 12,
     "interpolation": "bilinear", "crop": "true", "axis": 1},
    {"shape": [2, 9, 8], "data_format": "channels_first", "crop_h": 7, "crop_w": 7,
     "interpolation": "nearest", "crop": "false", "axis": "[1, 2]"},
]


def adapted_graph(plan):
    graph = Graph(plan)
    graph.initialize(np.random.default_rng(0))
    adapt_layers(graph, images((20,) + plan.input_shape[1:], seed=8, dtype=np.float32) * 3 + 1,
                 batch_size=7)
    return graph


@pytest.mark.oracle
@pytest.mark.parametrize("case", EXPORT_CASES)
def test_onnx_and_keras_exports_match_predict(case, tmp_path):
    need("onnx")
    plan = plan_of(IMAGE_SPEC.format(**case))
    graph = adapted_graph(plan)
    assert graph.weights["normalization/count"] > 0
    x = images((4,) + plan.input_shape[1:], seed=9, dtype=np.float32) * 3
    check_onnx(plan, tmp_path, x=x, graph=graph)
    export_model(plan, graph.weights, tmp_path / "model.keras", "keras")
    y, model = run_keras_file(tmp_path / "model.keras", x)
    np.testing.assert_allclose(y, graph.predict(x), **TOLERANCE)
    mean, variance, _ = model.get_layer("normalization").get_weights()
    np.testing.assert_allclose(mean, graph.weights["normalization/mean"])
    np.testing.assert_allclose(variance, graph.weights["normalization/variance"])


# ---- train adapts before the first step, and a resumed run keeps the statistics ------------
TRAIN_SPEC = """
name: adapt
input_shape: [3]
layers:
  - {type: Normalization, adapt: true}
  - {type: Dense, units: 2, activation: softmax}
compile:
  loss: sparse_categorical_crossentropy
  optimizer: {type: sgd, learning_rate: 0.1}
train:
  data: {path: d.npz}
  validation: {split: 0.25}
  batch_size: 7
  epochs: 1
  seed: 0
"""


def test_train_adapts_normalization_and_resume_keeps_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(TRAIN_SPEC)
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(40, 3)) * [1.0, 10.0, 0.1] + [5.0, -3.0, 100.0]).astype(np.float32)
    y = (x[:, 0] > 5).astype(np.int64)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    assert CliRunner().invoke(cli, ["train", "s.yaml", "-q"]).exit_code == 0
    seen = x[:30]  # the last quarter is the validation split, which adapt never sees
    run = tmp_path / "runs/adapt"
    for weights in (read_npz(run / "weights.npz"), load_checkpoint(run / "checkpoint.npz").weights):
        np.testing.assert_allclose(weights["normalization/mean"], seen.mean(0), rtol=1e-5)
        np.testing.assert_allclose(weights["normalization/variance"], seen.var(0), rtol=1e-4)
        assert weights["normalization/count"] == 30
    # resumed on other data, the run keeps the statistics it adapted (no second adapt)
    np.savez(tmp_path / "other.npz", x=x * 2, y=y)
    result = CliRunner().invoke(cli, ["train", "s.yaml", "-q", "--resume", "--epochs", "2",
                                      "--data", "other.npz"])
    assert result.exit_code == 0, result.output
    resumed = read_npz(tmp_path / "runs/adapt/weights.npz")
    np.testing.assert_allclose(resumed["normalization/mean"], seen.mean(0), rtol=1e-5)
    assert resumed["normalization/count"] == 30


def test_adapted_layers_see_the_data_through_the_ones_adapted_before():
    plan = plan_of("""
input_shape: [4]
layers:
  - {type: Normalization, adapt: true}
  - {type: Dense, units: 3}
  - {type: Normalization, adapt: true, name: second}
""")
    graph = Graph(plan)
    graph.initialize(np.random.default_rng(0))
    x = images((50, 4), seed=10, dtype=np.float32) * [1, 5, 10, 50] + [3, -1, 0, 200]
    assert adapt_layers(graph, x, batch_size=16) == ["normalization", "second"]
    y = graph.predict(x)
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(0), 1, rtol=1e-4)


@pytest.mark.oracle
def test_unknown_image_sizes_are_resized_from_each_batch(tmp_path):
    plan = plan_of("""
input_shape: [null, null, 2]
layers:
  - {type: Resizing, height: 4, width: 3}
  - {type: Flatten}
  - {type: Dense, units: 2}
""")
    assert plan.nodes[0].output_shape == (None, 4, 3, 2)
    graph = Graph(plan)
    graph.initialize(np.random.default_rng(0))
    for size in [(5, 7), (2, 2)]:
        x = images((3, *size, 2), seed=11, dtype=np.float32)
        expected = forward(make("Resizing", height=4, width=3), x)
        np.testing.assert_allclose(graph.forward(x),
                                   expected.reshape(3, -1) @ graph.weights["dense/kernel"]
                                   + graph.weights["dense/bias"], rtol=1e-5, atol=1e-5)
        check_onnx(plan, tmp_path, x=x, graph=graph)


@pytest.mark.oracle
def test_center_crop_of_unknown_size_is_not_exported_to_onnx(tmp_path):
    need("onnx")
    plan = plan_of("input_shape: [null, null, 1]\nlayers:\n  - {type: CenterCrop, height: 2, "
                   "width: 2}\n")
    with pytest.raises(LayerctlError, match="unknown input height or width"):
        export_model(plan, {}, tmp_path / "m.onnx", "onnx")


def test_masks_pass_through_rescaling_and_normalization_only():
    assert make("Normalization").emits_mask(True) and make("Rescaling", scale=2.0).emits_mask(True)
    assert not make("Resizing", height=2, width=2).emits_mask(True)
    assert not make("CenterCrop", height=2, width=2).emits_mask(True)


@pytest.mark.oracle
def test_per_channel_rescaling_exports(tmp_path):
    need("onnx")
    plan = plan_of("input_shape: [3, 4, 2]\nlayers:\n  - {type: Rescaling, scale: [0.5, -2.0], "
                   "offset: [1.0, 0.0]}\n  - {type: Flatten}\n  - {type: Dense, units: 2}\n")
    graph = Graph(plan)
    graph.initialize(np.random.default_rng(0))
    x = images((4, 3, 4, 2), seed=12, dtype=np.float32)
    check_onnx(plan, tmp_path, x=x, graph=graph)
    export_model(plan, graph.weights, tmp_path / "model.keras", "keras")
    np.testing.assert_allclose(run_keras_file(tmp_path / "model.keras", x)[0], graph.predict(x),
                               **TOLERANCE)
