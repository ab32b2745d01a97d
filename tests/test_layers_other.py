"""BatchNormalization, Embedding, Add, Concatenate, GlobalMaxPooling1D: values and gradients."""

import numpy as np
import pytest
from gradcheck import check_layer

from layerctl.errors import DataError
from layerctl.layers import (
    Add,
    BatchNormalization,
    Concatenate,
    Embedding,
    GlobalMaxPooling1D,
    IncompatibleShape,
)

RNG = np.random.default_rng(0)


def bn(**kwargs):
    return BatchNormalization(type="BatchNormalization", **kwargs)


def bn_weights(c=2):
    return {
        "gamma": np.ones(c),
        "beta": np.zeros(c),
        "moving_mean": np.zeros(c),
        "moving_variance": np.ones(c),
    }


def test_batchnorm_keras_worked_example():
    # keras-reference §2: x=[[1,2],[3,6]], defaults
    layer, weights = bn(), bn_weights()
    x = np.array([[1.0, 2.0], [3.0, 6.0]])
    y, cache = layer.forward(weights, x, None, True, None)
    np.testing.assert_allclose(y, [[-0.9995, -0.999875], [0.9995, 0.999875]], atol=1e-6)
    updates = layer.state_updates(weights, cache, True)
    np.testing.assert_allclose(updates["moving_mean"], [0.02, 0.04])
    np.testing.assert_allclose(updates["moving_variance"], [1.0, 1.03])
    weights.update(updates)
    y, _ = layer.forward(weights, x, None, False, None)
    np.testing.assert_allclose(y, [[0.97951, 1.930309], [2.978511, 5.869714]], atol=1e-5)


def test_batchnorm_frozen_uses_moving_statistics():
    layer = bn(trainable=False)
    x = RNG.normal(size=(4, 2))
    y, cache = layer.forward(bn_weights(), x, None, True, None)
    np.testing.assert_allclose(y, x / np.sqrt(1 + 1e-3))
    assert layer.state_updates(bn_weights(), cache, True) == {}


def test_batchnorm_masked_statistics():
    # keras-reference §17.9: masked rows take no part in the statistics
    x = np.array([[[1, 5], [2, 5], [0, 0], [0, 0]]], dtype=np.float64).repeat(10, axis=0)
    mask = np.array([[True, True, False, False]]).repeat(10, axis=0)
    layer = bn(momentum=0.0)
    _, cache = layer.forward(bn_weights(), x, mask, True, None)
    updates = layer.state_updates(bn_weights(), cache, True)
    np.testing.assert_allclose(updates["moving_mean"], [1.5, 5.0], rtol=1e-6)
    np.testing.assert_allclose(updates["moving_variance"], [0.25, 0.0], atol=1e-6)


def test_batchnorm_all_masked_gives_zeros():
    y, _ = bn().forward(bn_weights(), np.zeros((2, 3, 2)), np.zeros((2, 3), bool), True, None)
    np.testing.assert_array_equal(y, 0)


def test_batchnorm_weights_and_counts():
    assert [(w.name, w.trainable) for w in bn().weight_specs((None, 3))] == [
        ("gamma", True),
        ("beta", True),
        ("moving_mean", False),
        ("moving_variance", False),
    ]
    assert [w.name for w in bn(center=False, scale=False).weight_specs((None, 3))] == [
        "moving_mean",
        "moving_variance",
    ]
    with pytest.raises(IncompatibleShape, match="out of bounds"):
        bn(axis=3).output_shape((None, 3))


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("kwargs", [{}, {"axis": 1}, {"center": False}, {"scale": False}])
def test_batchnorm_gradients(training, kwargs):
    check_layer(bn(**kwargs), RNG.normal(size=(5, 3, 2)), training=training)


def test_batchnorm_masked_gradient():
    mask = np.array([[True, True, False], [True, False, True]])
    check_layer(bn(), RNG.normal(size=(2, 3, 4)), mask=mask, training=True)


def test_embedding_lookup_and_mask():
    layer = Embedding(type="Embedding", input_dim=3, output_dim=2, mask_zero=True)
    weights = {"embeddings": np.array([[0.0, 0], [2, 2], [3, 3]])}
    y, _ = layer.forward(weights, np.array([2, 1, 0]), None, False, None)
    np.testing.assert_array_equal(y, [[3, 3], [2, 2], [0, 0]])
    np.testing.assert_array_equal(
        layer.output_mask(np.array([[1, 0, 2, 0]]), None), [[True, False, True, False]]
    )
    assert layer.output_shape((None, 7)) == (None, 7, 2)


@pytest.mark.parametrize("bad", [-1, 3])
def test_embedding_rejects_out_of_range(bad):
    layer = Embedding(type="Embedding", input_dim=3, output_dim=2)
    with pytest.raises(DataError, match=f"index {bad}"):
        layer.forward({"embeddings": np.zeros((3, 2))}, np.array([[0, bad]]), None, False, None)


def test_embedding_gradient_accumulates_repeats():
    layer = Embedding(type="Embedding", input_dim=5, output_dim=3)
    weights = {"embeddings": RNG.normal(size=(5, 3))}
    idx = np.array([[1, 3, 1], [0, 1, 4]])
    check_layer(layer, idx, weights=weights, check_input=False)


def test_add_and_concatenate():
    a, b = RNG.normal(size=(2, 3)), RNG.normal(size=(2, 3))
    y, _ = Add(type="Add").forward({}, [a, b], [None, None], False, None)
    np.testing.assert_allclose(y, a + b)
    check_layer(Add(type="Add"), [a, b])
    c = RNG.normal(size=(2, 4))
    layer = Concatenate(type="Concatenate")
    assert layer.output_shape([(None, 3), (None, 4)]) == (None, 7)
    check_layer(layer, [a, c])
    with pytest.raises(IncompatibleShape, match="incompatible shapes"):
        Add(type="Add").output_shape([(None, 3), (None, 4)])
    with pytest.raises(IncompatibleShape, match="matching shapes"):
        layer.output_shape([(None, 3, 2), (None, 4, 3)])


def test_merge_masks_combine_with_or_as_keras():
    m1, m2 = np.array([[True, False, False]]), np.array([[True, True, False]])
    np.testing.assert_array_equal(
        Add(type="Add").output_mask(None, [m1, m2]), [[True, True, False]]
    )
    assert Add(type="Add").output_mask(None, [m1, None]) is None  # one input has none
    assert Add(type="Add").output_mask(None, [None, None]) is None


def test_global_max_pooling_values_and_shapes():
    layer = GlobalMaxPooling1D(type="GlobalMaxPooling1D")
    y, _ = layer.forward({}, np.arange(24.0).reshape(2, 3, 4), None, False, None)
    np.testing.assert_array_equal(y, [[8, 9, 10, 11], [20, 21, 22, 23]])
    assert layer.output_shape((3, 5, 4)) == (3, 4)
    keep = GlobalMaxPooling1D(type="GlobalMaxPooling1D", keepdims=True)
    assert keep.output_shape((3, 5, 4)) == (3, 1, 4)
    first = GlobalMaxPooling1D(type="GlobalMaxPooling1D", data_format="channels_first")
    assert first.output_shape((3, 5, 4)) == (3, 5)


@pytest.mark.parametrize("kwargs", [{}, {"keepdims": True}, {"data_format": "channels_first"}])
def test_global_max_pooling_gradient(kwargs):
    check_layer(GlobalMaxPooling1D(type="GlobalMaxPooling1D", **kwargs), RNG.normal(size=(2, 5, 3)))


def test_lstm_rejects_last_axis_activations():
    from pydantic import ValidationError

    from layerctl.layers import LAYER_TYPES

    with pytest.raises(ValidationError, match="normalises over the last axis"):
        LAYER_TYPES["LSTM"](type="LSTM", units=2, activation="softmax")


def test_lstm_dropout_masks_follow_keras_layout():
    from layerctl.layers import LAYER_TYPES
    from layerctl.ops import lstm as lstm_ops

    seen = {}
    original = lstm_ops.lstm_forward

    def spy(*args, **kwargs):
        seen["input"] = kwargs["input_dropout_mask"]
        seen["recurrent"] = kwargs["recurrent_dropout_mask"]
        return original(*args, **kwargs)

    lstm_ops.lstm_forward = spy
    try:
        x = RNG.normal(size=(2, 3, 4))
        for recurrent, shapes in ((0.0, ((2, 4), None)), (0.5, ((4, 2, 4), (4, 2, 5)))):
            layer = LAYER_TYPES["LSTM"](
                type="LSTM", units=5, dropout=0.5, recurrent_dropout=recurrent
            )
            from gradcheck import init_layer_weights

            layer.forward(
                init_layer_weights(layer, (None, 3, 4)), x, None, True, np.random.default_rng(0)
            )
            assert seen["input"].shape == shapes[0]
            assert (seen["recurrent"] is None) == (shapes[1] is None)
            if shapes[1]:
                assert seen["recurrent"].shape == shapes[1]
    finally:
        lstm_ops.lstm_forward = original
