"""Dense, Activation, Dropout, Masking, Flatten: hand-derived values and gradient checks."""

import numpy as np
import pytest
from gradcheck import check_layer

from layerctl.layers import Activation, Dense, Dropout, Flatten, Masking

RNG = np.random.default_rng(0)


def test_dense_keras_values():
    # keras-reference §1: kernel [[1,-2],[3,-4]], bias [5,-6], relu, x [[-1,2]] -> [[10,0]]
    layer = Dense(type="Dense", units=2, activation="relu")
    weights = {"kernel": np.array([[1.0, -2.0], [3.0, -4.0]]), "bias": np.array([5.0, -6.0])}
    y, _ = layer.forward(weights, np.array([[-1.0, 2.0]]), None, False, None)
    np.testing.assert_array_equal(y, [[10, 0]])
    linear = Dense(type="Dense", units=2, use_bias=False)
    y, _ = linear.forward({"kernel": weights["kernel"]}, np.array([[-1.0, 2.0]]), None, False, None)
    np.testing.assert_array_equal(y, [[5, -6]])


def test_dense_rank3_contracts_last_axis():
    layer = Dense(type="Dense", units=5)
    assert layer.output_shape((None, 3, 4)) == (None, 3, 5)
    assert [w.shape for w in layer.weight_specs((None, 3, 4))] == [(4, 5), (5,)]


@pytest.mark.parametrize("activation", [None, "relu", "tanh", "softmax", "sigmoid", "gelu"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_gradients(activation, use_bias):
    layer = Dense(type="Dense", units=3, activation=activation, use_bias=use_bias)
    check_layer(layer, RNG.normal(size=(4, 5)))


def test_dense_gradients_rank3():
    check_layer(Dense(type="Dense", units=3, activation="tanh"), RNG.normal(size=(2, 3, 4)))


@pytest.mark.parametrize(
    "activation", ["softmax", "elu", "selu", "softplus", "silu", "log_softmax"]
)
def test_activation_layer_gradients(activation):
    check_layer(Activation(type="Activation", activation=activation), RNG.normal(size=(3, 4)))


def test_dropout_statistics_and_scaling():
    layer = Dropout(type="Dropout", rate=0.5)
    x = np.ones((20, 500), np.float32)
    y, _ = layer.forward({}, x, None, True, np.random.default_rng(0))
    assert abs(y.mean() - 1.0) < 0.02 and y.max() == 2.0 and y.dtype == np.float32
    y, _ = layer.forward({}, x, None, False, np.random.default_rng(0))
    assert y is x  # inference is the identity


def test_dropout_noise_shape_shares_mask_across_steps():
    layer = Dropout(type="Dropout", rate=0.5, noise_shape=[None, 1, None])
    y, _ = layer.forward({}, np.ones((4, 6, 8)), None, True, np.random.default_rng(1))
    for step in range(6):
        np.testing.assert_array_equal(y[:, step], y[:, 0])


def test_dropout_rate_one_and_zero():
    x = np.arange(6.0).reshape(2, 3)
    zero, _ = Dropout(type="Dropout", rate=1.0).forward({}, x, None, True, np.random.default_rng())
    np.testing.assert_array_equal(zero, 0)
    same, _ = Dropout(type="Dropout", rate=0.0).forward({}, x, None, True, np.random.default_rng())
    np.testing.assert_array_equal(same, x)


def test_dropout_gradient_training():
    check_layer(Dropout(type="Dropout", rate=0.3), RNG.normal(size=(5, 4)), training=True)


def test_masking_keras_example():
    # keras-reference §4 test values
    x = np.array([[[0, 0], [1, 2], [0, 0]], [[2, 2], [0, 0], [2, 1]]], dtype=np.float64)
    layer = Masking(type="Masking")
    y, _ = layer.forward({}, x, None, False, None)
    np.testing.assert_array_equal(
        layer.output_mask(x, None), [[False, True, False], [True, False, True]]
    )
    np.testing.assert_array_equal(y, x)
    y2, _ = Masking(type="Masking", mask_value=2.0).forward(
        {}, np.array([[[2.0, 2], [2, 1]]]), None, False, None
    )
    np.testing.assert_array_equal(y2, [[[0, 0], [2, 1]]])


def test_masking_gradient():
    x = RNG.normal(size=(2, 3, 2))
    x[0, 1] = 0.0
    check_layer(Masking(type="Masking"), x, check_input=False)
    layer = Masking(type="Masking")
    _, cache = layer.forward({}, x, None, False, None)
    dx, _ = layer.backward({}, cache, np.ones_like(x))
    np.testing.assert_array_equal(dx[0, 1], 0)
    np.testing.assert_array_equal(dx[0, 0], 1)


def test_flatten_channels_first_order():
    # keras-reference §5: a (1,3,2,2) tensor of 0..11 -> [0,4,8,1,5,9,2,6,10,3,7,11]
    x = np.arange(12.0).reshape(1, 3, 2, 2)
    y, _ = Flatten(type="Flatten", data_format="channels_first").forward({}, x, None, False, None)
    np.testing.assert_array_equal(y, [[0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]])
    x = RNG.normal(size=(10, 3, 5, 5))
    y, _ = Flatten(type="Flatten", data_format="channels_first").forward({}, x, None, False, None)
    np.testing.assert_array_equal(y, x.transpose(0, 2, 3, 1).reshape(10, -1))


def test_flatten_shapes():
    layer = Flatten(type="Flatten")
    assert layer.output_shape((None, 2, 3)) == (None, 6)
    assert layer.output_shape((5, 2, None)) == (5, None)
    assert layer.output_shape((10,)) == (10, 1)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_flatten_gradient(data_format):
    check_layer(Flatten(type="Flatten", data_format=data_format), RNG.normal(size=(2, 3, 2, 2)))
