"""Noise and regularization layers: statistics of the noise (random streams differ from Keras's,
so the draws are tested by their distribution), identity outside training, whole channels
dropped, gradients with a fixed rng, Keras 3's formulas and errors, and export parity."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gradcheck import check_graph, check_layer
from test_export import check_keras, check_onnx, plan_of

from layerctl.errors import SpecError
from layerctl.graph import Graph
from layerctl.layers.regularization import (
    SELU_ALPHA,
    SELU_SCALE,
    ActivityRegularization,
    AlphaDropout,
    GaussianDropout,
    GaussianNoise,
    SpatialDropout1D,
    SpatialDropout2D,
)


def layer(cls, **arguments):
    return cls.model_validate({"type": cls.keras_class, **arguments})


def rng(seed=0):
    return np.random.default_rng(seed)


ALL = [(SpatialDropout1D, {"rate": 0.5}, (4, 5, 6)),
       (SpatialDropout2D, {"rate": 0.5, "data_format": "channels_last"}, (4, 3, 3, 6)),
       (GaussianNoise, {"stddev": 0.5}, (4, 5, 6)),
       (GaussianDropout, {"rate": 0.5}, (4, 5, 6)),
       (AlphaDropout, {"rate": 0.5}, (4, 5, 6)),
       (ActivityRegularization, {"l1": 0.1, "l2": 0.2}, (4, 5, 6))]


@pytest.mark.parametrize(("cls", "arguments", "shape"), ALL)
def test_identity_outside_training_and_masks_pass(cls, arguments, shape):
    noise = layer(cls, **arguments)
    x = rng().standard_normal(shape)
    y, cache = noise.forward({}, x, None, False, rng())
    assert y is x
    assert noise.backward({}, cache, x)[0] is x
    assert noise.supports_masking and noise.emits_mask(True) and not noise.emits_mask(False)
    mask = np.ones(shape[:2], bool)
    assert noise.output_mask(x, mask) is mask
    assert noise.output_shape((None, *shape[1:])) == (None, *shape[1:])
    assert noise.weight_specs((None, *shape[1:])) == []


# ---- SpatialDropout ---------------------------------------------------------------------------
def test_spatial_dropout_1d_drops_whole_channels():
    x = np.ones((200, 7, 50), np.float32)
    y, _ = layer(SpatialDropout1D, rate=0.3).forward({}, x, None, True, rng())
    assert y.dtype == np.float32
    assert (y == y[:, :1, :]).all()                            # the same channels at every step
    assert set(np.unique(y).tolist()) == {0.0, np.float32(1 / 0.7)}
    assert abs((y[:, 0] == 0).mean() - 0.3) < 0.02 and abs(y.mean() - 1) < 0.03


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_spatial_dropout_2d_drops_whole_feature_maps(data_format):
    shape = (200, 4, 4, 30) if data_format == "channels_last" else (200, 30, 4, 4)
    y, keep = layer(SpatialDropout2D, rate=0.5, data_format=data_format).forward(
        {}, np.ones(shape), None, True, rng())
    maps = y if data_format == "channels_last" else np.moveaxis(y, 1, -1)
    assert (maps == maps[:, :1, :1, :]).all()
    assert keep.shape == ((200, 1, 1, 30) if data_format == "channels_last" else (200, 30, 1, 1))
    assert abs(y.mean() - 1) < 0.05 and set(np.unique(y).tolist()) == {0.0, 2.0}


def test_spatial_dropout_rate_one_and_zero():
    x = np.ones((2, 3, 4))
    assert not layer(SpatialDropout1D, rate=1.0).forward({}, x, None, True, rng())[0].any()
    assert layer(SpatialDropout1D, rate=0.0).forward({}, x, None, True, rng())[0] is x


@pytest.mark.parametrize(("cls", "arguments", "shape"), [
    (SpatialDropout1D, {"rate": 0.4}, (3, 4, 5)),
    (SpatialDropout2D, {"rate": 0.4, "data_format": "channels_first"}, (3, 4, 3, 2)),
    (SpatialDropout2D, {"rate": 0.4, "data_format": "channels_last"}, (3, 3, 2, 4)),
    (GaussianNoise, {"stddev": 0.7}, (3, 4, 5)),
    (GaussianDropout, {"rate": 0.4}, (3, 4, 5)),
    (AlphaDropout, {"rate": 0.4}, (3, 4, 5)),
    (AlphaDropout, {"rate": 0.4, "noise_shape": [None, 1, None]}, (3, 4, 5)),
])
def test_training_gradients_with_a_fixed_rng(cls, arguments, shape):
    check_layer(layer(cls, **arguments), rng(1).standard_normal(shape), training=True)


# ---- GaussianNoise / GaussianDropout ------------------------------------------------------------
def test_gaussian_noise_statistics():
    x = np.full((200, 500), 3.0, np.float32)
    y, _ = layer(GaussianNoise, stddev=0.4).forward({}, x, None, True, rng())
    assert y.dtype == np.float32
    assert abs(y.mean() - 3) < 0.01 and abs(y.std() - 0.4) < 0.01


def test_gaussian_dropout_statistics():
    # Keras's own test: ones (20, 500), rate 0.3 -> std sqrt(0.3 / 0.7) within 0.02
    x = np.ones((20, 500), np.float32)
    y, noise = layer(GaussianDropout, rate=0.3).forward({}, x, None, True, rng())
    assert abs(y.std() - math.sqrt(0.3 / 0.7)) < 0.02 and abs(y.mean() - 1) < 0.02
    np.testing.assert_array_equal(y, x * noise)


def test_seeded_layers_repeat_their_draws_in_a_graph():
    text = "input_shape: [50]\nlayers:\n  - {type: GaussianNoise, stddev: 0.5, seed: 3}\n"
    first, second = Graph(plan_of(text)), Graph(plan_of(text))
    x = np.zeros((4, 50), np.float32)
    np.testing.assert_array_equal(first.forward(x, training=True),
                                  second.forward(x, training=True, rng=rng(99)))


# ---- AlphaDropout -------------------------------------------------------------------------------
def test_alpha_dropout_is_keras_affine_formula():
    rate = 0.3
    x = rng(2).standard_normal((400, 500))
    y, _ = layer(AlphaDropout, rate=rate).forward({}, x, None, True, rng(5))
    kept = rng(5).random(x.shape) >= rate                      # the same draws
    saturation = -SELU_ALPHA * SELU_SCALE
    a = ((1 - rate) * (1 + rate * saturation**2)) ** -0.5
    b = -a * saturation * rate
    np.testing.assert_allclose(y, a * np.where(kept, x, saturation) + b, rtol=1e-12)
    # it keeps a standardized input standardized (Keras's test: std 1 within 0.1)
    assert abs(y.mean()) < 0.01 and abs(y.std() - 1) < 0.01


def test_alpha_dropout_noise_shape_shares_draws():
    y, _ = layer(AlphaDropout, rate=0.5, noise_shape=[None, 1, None]).forward(
        {}, np.ones((20, 5, 10)), None, True, rng())
    assert (y == y[:, :1, :]).all()


def test_alpha_dropout_keeps_float32():
    x = np.ones((4, 6), np.float32)
    y, cache = layer(AlphaDropout, rate=0.2).forward({}, x, None, True, rng())
    assert y.dtype == np.float32 and layer(AlphaDropout, rate=0.2).backward(
        {}, cache, x)[0].dtype == np.float32


@pytest.mark.parametrize("cls", [GaussianDropout, AlphaDropout])
def test_rate_one_cannot_train(cls):
    noise = layer(cls, rate=1)
    x = np.ones((2, 3))
    assert noise.forward({}, x, None, False, rng())[0] is x     # inference: identity, as Keras
    with pytest.raises(SpecError, match="cannot train with rate=1"):
        noise.forward({}, x, None, True, rng())


# ---- ActivityRegularization ---------------------------------------------------------------------
def test_activity_regularization_penalty_keras_example():
    # Keras's test: l1=0.2, l2=0.3 on 2·ones((1,)) gives the loss 4·0.3 + 2·0.2
    graph = Graph(plan_of("input_shape: [1]\nlayers:\n"
                          "  - {type: ActivityRegularization, l1: 0.2, l2: 0.3}\n"), np.float64)
    y = graph.forward(np.full((1, 1), 2.0), training=True)
    assert y.tolist() == [[2.0]]
    assert graph.activity_penalty == pytest.approx(4 * 0.3 + 2 * 0.2)
    graph.forward(np.full((4, 1), 2.0), training=True)       # divided by the batch size
    assert graph.activity_penalty == pytest.approx(4 * 0.3 + 2 * 0.2)


def test_activity_regularization_without_factors_adds_nothing():
    assert layer(ActivityRegularization).activity_regularizer is None


def test_activity_regularization_gradient_through_a_graph():
    graph = Graph(plan_of("input_shape: [4]\nlayers:\n  - {type: Dense, units: 3}\n"
                          "  - {type: ActivityRegularization, l1: 0.05, l2: 0.1}\n"
                          "  - {type: Dense, units: 2}\n"), np.float64)
    graph.initialize(rng())
    check_graph(graph, rng(1).standard_normal((5, 4)), training=True)


# ---- Keras's argument errors, located -----------------------------------------------------------
@pytest.mark.parametrize(("entry", "message"), [
    ("{type: SpatialDropout1D, rate: 1.5}",
     "Invalid value received for argument `rate`. Expected a float value between 0 and 1. "
     "Received: rate=1.5"),
    ("{type: SpatialDropout2D, rate: -0.5}",
     "Invalid value received for argument `rate`. Expected a float value between 0 and 1. "
     "Received: rate=-0.5"),
    ("{type: GaussianDropout, rate: 2}",
     "Invalid value received for argument `rate`. Expected a float value between 0 and 1. "
     "Received: rate=2"),
    ("{type: AlphaDropout, rate: -0.5}",
     "Invalid value received for argument `rate`. Expected a float value between 0 and 1. "
     "Received: rate=-0.5"),
    ("{type: GaussianNoise, stddev: 1.5}",
     "Invalid value received for argument `stddev`. Expected a float value between 0 and 1. "
     "Received: stddev=1.5"),
    ("{type: ActivityRegularization, l1: -1}",
     "Invalid value for argument l1: expected a non-negative float.Received: l1=-1"),
    ("{type: ActivityRegularization, l2: .nan}",
     "Invalid value for argument l2: expected a non-negative float.Received: l2=nan"),
    ("{type: GaussianNoise}", "GaussianNoise needs `stddev`"),
    ("{type: SpatialDropout1D, rate: 0.5, noise_shape: [null, 1, null]}",
     "unknown argument 'noise_shape' for SpatialDropout1D"),
])
def test_invalid_arguments_are_located(entry, message):
    with pytest.raises(SpecError) as info:
        plan_of(f"input_shape: [6, 4]\nlayers:\n  - {entry}\n")
    problem = info.value.problems[0]
    assert message in problem.message, problem.message
    assert problem.location is not None and problem.location.line == 3


@pytest.mark.parametrize(("entry", "message"), [
    ("{type: SpatialDropout2D, rate: 0.5}", "expected ndim=4, found ndim=3"),
    ("{type: AlphaDropout, rate: 0.5, noise_shape: [null, 1]}", "noise_shape [None, 1] has 2"),
])
def test_shape_errors_are_located(entry, message):
    with pytest.raises(SpecError) as info:
        plan_of(f"input_shape: [6, 4]\nlayers:\n  - {entry}\n")
    assert message in info.value.problems[0].message
    assert info.value.problems[0].location.line == 3


# ---- Keras 3 as the oracle ----------------------------------------------------------------------
@pytest.mark.oracle
@pytest.mark.parametrize(("cls", "arguments", "shape"), ALL)
def test_inference_and_masks_match_keras(cls, arguments, shape):
    from keras_bridge import keras_layer

    ours = layer(cls, **arguments)
    theirs = keras_layer(ours)
    x = rng(3).standard_normal(shape).astype(np.float32)
    y = np.asarray(theirs(x, training=False))
    np.testing.assert_array_equal(ours.forward({}, x, None, False, rng())[0], y)
    assert theirs.supports_masking and ours.supports_masking
    assert theirs.compute_output_shape((None, *shape[1:])) == ours.output_shape((None, *shape[1:]))
    assert theirs.count_params() == 0


@pytest.mark.oracle
def test_keras_spatial_dropout_statistics_agree():
    """Same distribution as Keras's draws: the fraction of dropped channels and the scale."""
    from keras_bridge import keras

    x = np.ones((400, 3, 50), np.float32)
    theirs = np.asarray(keras.layers.SpatialDropout1D(0.3, seed=1)(x, training=True))
    ours, _ = layer(SpatialDropout1D, rate=0.3).forward({}, x, None, True, rng())
    assert set(np.unique(theirs).tolist()) == set(np.unique(ours).tolist())
    assert abs((theirs == 0).mean() - (ours == 0).mean()) < 0.02


@pytest.mark.oracle
def test_one_training_step_with_activity_regularization_matches_keras():
    """The loss Keras minimises (output · R plus model.losses) has the graph's gradients."""
    import torch
    from keras_bridge import copy_weights, keras_model

    plan = plan_of("input_shape: [4]\nlayers:\n  - {type: Dense, units: 3, activation: tanh}\n"
                   "  - {type: ActivityRegularization, l1: 0.05, l2: 0.1}\n"
                   "  - {type: GaussianNoise, stddev: 0.0}\n  - {type: Dense, units: 2}\n")
    graph = Graph(plan)
    graph.initialize(rng())
    model = keras_model(plan)
    copy_weights(model, graph.weights)
    x = rng(1).standard_normal((6, 4)).astype(np.float32)
    out = model(x, training=True)
    projection = rng(2).standard_normal((6, 2)).astype(np.float32)
    loss = (out * torch.tensor(projection)).sum() + sum(model.losses)
    loss.backward()
    graph.forward(x, training=True)
    np.testing.assert_allclose(graph.activity_penalty, float(sum(model.losses).detach()), rtol=1e-5)
    graph.backward(projection)
    for keras_layer in model.layers:
        for weight in keras_layer.trainable_weights:
            key = f"{keras_layer.name}/{weight.name}"
            np.testing.assert_allclose(graph.grads[key], weight.value.grad.numpy(), rtol=1e-4,
                                       atol=1e-6, err_msg=key)


# ---- export parity ------------------------------------------------------------------------------
NOISY_CNN = """\
input_shape: [6, 6, 2]
layers:
  - {type: Conv2D, filters: 4, kernel_size: 3, padding: same}
  - {type: SpatialDropout2D, rate: 0.3}
  - {type: GaussianNoise, stddev: 0.2, seed: 1}
  - {type: AveragePooling2D, pool_size: 2}
  - {type: Flatten}
  - {type: GaussianDropout, rate: 0.2}
  - {type: AlphaDropout, rate: 0.1, noise_shape: [null, 1]}
  - {type: ActivityRegularization, l2: 0.01}
  - {type: Dense, units: 3}
"""

NOISY_TEXT = """\
input_shape: [8]
layers:
  - {type: Embedding, input_dim: 20, output_dim: 4, mask_zero: true}
  - {type: SpatialDropout1D, rate: 0.2}
  - {type: GaussianNoise, stddev: 0.1}
  - {type: LSTM, units: 3}
"""


@pytest.mark.oracle
@pytest.mark.parametrize("text", [NOISY_CNN, NOISY_TEXT], ids=["cnn", "masked-text"])
def test_exports_match_predict(text, tmp_path):
    plan = plan_of(text)
    check_onnx(plan, tmp_path)
    check_keras(plan, tmp_path)
