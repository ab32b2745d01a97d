"""Max-pooling kernels: Keras's values and shapes, ties and overlaps, gradients, Keras oracle."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import numerical_gradient
from test_ops_conv import import_keras_torch

from layerctl.ops.pool import max_pool_backward, max_pool_forward

# --------------------------------------------------------------------------- Keras's numbers (§6)

STEPS = np.arange(1, 6, dtype=np.float32).reshape(1, 5, 1)


@pytest.mark.parametrize(("x", "pool", "strides", "padding", "expected"), [
    (STEPS, 2, 1, "valid", [2, 3, 4, 5]),
    (STEPS, 2, 2, "valid", [2, 4]),
    (STEPS, 2, 1, "same", [2, 3, 4, 5, 5]),
    (STEPS, 2, 2, "same", [2, 4, 5]),
    (-STEPS, 3, 1, "same", [-1, -1, -2, -3, -4]),      # one −inf cell before, one after
    (STEPS, 2, None, "valid", [2, 4]),                  # strides default to pool_size
])
def test_keras_1d_values(x, pool, strides, padding, expected):
    y, _ = max_pool_forward(x, pool, strides, padding)
    assert y.ravel().tolist() == expected


GRID = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)


def test_keras_2d_values():
    valid, _ = max_pool_forward(GRID, (2, 2), (1, 1), "valid")
    same, _ = max_pool_forward(GRID, (2, 2), (1, 1), "same")
    assert valid[0, :, :, 0].tolist() == [[5, 6], [8, 9]]
    assert same[0, :, :, 0].tolist() == [[5, 6, 6], [8, 9, 9], [8, 9, 9]]


@pytest.mark.parametrize(("x_shape", "pool", "strides", "padding", "expected"), [
    ((3, 5, 4), 2, 1, "valid", (3, 4, 4)),
    ((3, 5, 4), 2, 2, "valid", (3, 2, 4)),
    ((3, 5, 5, 4), (2, 3), (2, 2), "valid", (3, 2, 2, 4)),
    ((1, 7, 5, 3), (2, 2), None, "valid", (1, 3, 2, 3)),
    ((1, 7, 5, 3), (2, 2), None, "same", (1, 4, 3, 3)),
])
def test_keras_shapes(x_shape, pool, strides, padding, expected):
    y, _ = max_pool_forward(np.zeros(x_shape, np.float32), pool, strides, padding)
    assert y.shape == expected


def test_channels_first_shape_through_transposes():
    # Keras: (3,5,4) channels_first, pool 2, stride 1, same -> (3,5,4); the layer transposes.
    x = np.zeros((3, 5, 4), np.float32)
    y, _ = max_pool_forward(x.transpose(0, 2, 1), 2, 1, "same")
    assert y.transpose(0, 2, 1).shape == (3, 5, 4)


def test_empty_output_raises_keras_message():
    with pytest.raises(ValueError) as info:
        max_pool_forward(np.zeros((1, 2, 2, 3), np.float32), (3, 3), (3, 3), "valid")
    assert str(info.value) == (
        "Computed output size would be zero or negative. Received: inputs.shape=(1, 2, 2, 3), "
        "pool_size=(3, 3), strides=(3, 3), padding=valid.")


def test_padding_spelling():
    y, _ = max_pool_forward(STEPS, 2, 2, "SAME")       # Keras layers lower-case it
    assert y.ravel().tolist() == [2, 4, 5]
    with pytest.raises(ValueError, match="padding='causal'"):
        max_pool_forward(STEPS, 2, 2, "causal")


# --------------------------------------------------------------------------- global max (§7)


def test_global_max_pooling_is_a_pool_over_all_steps():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    y, _ = max_pool_forward(x, 3, 3, "valid")
    assert y.shape == (2, 1, 4)                         # Keras keepdims=True shape
    assert y[:, 0].tolist() == [[8, 9, 10, 11], [20, 21, 22, 23]]
    channels_first, _ = max_pool_forward(np.zeros((3, 5, 4), np.float32).transpose(0, 2, 1), 4)
    assert channels_first[:, 0].shape == (3, 5)


# --------------------------------------------------------------------------- gradient routing


def test_ties_send_the_gradient_to_the_first_occurrence():
    x = np.array([[[1.0], [1.0], [0.0], [2.0], [2.0], [2.0]]])
    y, cache = max_pool_forward(x, 3, 3, "valid")
    dx = max_pool_backward(cache, np.array([[[10.0], [20.0]]]))
    assert y.ravel().tolist() == [1, 2]
    assert dx.ravel().tolist() == [10, 0, 0, 20, 0, 0]


def test_2d_ties_go_to_the_first_cell_in_row_major_order():
    x = np.array([[0.0, 3.0], [3.0, 3.0]]).reshape(1, 2, 2, 1)
    _, cache = max_pool_forward(x, 2, 2, "valid")
    dx = max_pool_backward(cache, np.ones((1, 1, 1, 1)))
    assert dx[0, :, :, 0].tolist() == [[0, 1], [0, 0]]


def test_overlapping_windows_accumulate():
    # pool 2 stride 1 on [1,3,2]: both windows pick the 3.
    x = np.array([1.0, 3.0, 2.0]).reshape(1, 3, 1)
    _, cache = max_pool_forward(x, 2, 1, "valid")
    dx = max_pool_backward(cache, np.array([5.0, 7.0]).reshape(1, 2, 1))
    assert dx.ravel().tolist() == [0, 12, 0]


def test_padding_never_wins_and_gets_no_gradient():
    x = -np.arange(1, 6, dtype=np.float64).reshape(1, 5, 1)
    y, cache = max_pool_forward(x, 3, 1, "same")
    dx = max_pool_backward(cache, np.ones_like(y))
    assert y.ravel().tolist() == [-1, -1, -2, -3, -4]
    assert dx.ravel().tolist() == [2, 1, 1, 1, 0]


def test_nan_propagates():
    x = np.array([1.0, np.nan, 3.0, 2.0]).reshape(1, 4, 1)
    y, _ = max_pool_forward(x, 2, 2, "valid")
    assert np.isnan(y[0, 0, 0]) and y[0, 1, 0] == 3.0


def test_cache_is_a_small_index_array_and_dtype_is_kept():
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32)
    y, cache = max_pool_forward(x, 2, 2, "valid")
    dx = max_pool_backward(cache, np.ones_like(y))
    assert y.dtype == np.float32 and dx.dtype == np.float32 and dx.shape == x.shape
    arrays = [item for item in cache if isinstance(item, np.ndarray)]
    assert [a.dtype for a in arrays] == [np.uint8] and arrays[0].shape == y.shape


# --------------------------------------------------------------------------- gradient checks

GRAD_CASES = [
    # (spatial, pool, strides, padding)
    ((8,), (2,), (2,), "valid"),
    ((9,), (3,), (2,), "valid"),        # overlapping
    ((9,), (3,), (2,), "same"),
    ((7,), (2,), (1,), "same"),
    ((6, 7), (2, 2), (2, 2), "valid"),
    ((7, 7), (2, 2), (2, 2), "same"),
    ((7, 8), (3, 3), (2, 2), "valid"),  # overlapping
    ((7, 8), (3, 3), (2, 2), "same"),
    ((7, 6), (3, 2), (2, 1), "same"),
    ((6, 6), (2, 2), (1, 1), "valid"),
]


@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: f"{c[0]}-p{c[1]}-s{c[2]}-{c[3]}")
def test_gradients_match_central_differences(case):
    spatial, pool, strides, padding = case
    rng = np.random.default_rng(1)
    size = 2 * int(np.prod(spatial)) * 3
    # A permutation of well-separated values: no ties, and ±eps never changes a window's winner.
    x = (rng.permutation(size) * 0.1).reshape(2, *spatial, 3).astype(np.float64)
    y, cache = max_pool_forward(x, pool, strides, padding)
    weights = rng.standard_normal(y.shape)

    def loss():
        return float(np.sum(max_pool_forward(x, pool, strides, padding)[0] * weights))

    dx = max_pool_backward(cache, weights)
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-6)


def test_3d_gradients_match_central_differences():
    rng = np.random.default_rng(3)
    x = (rng.permutation(2 * 5 * 4 * 5 * 2) * 0.1).reshape(2, 5, 4, 5, 2)
    args = ((2, 2, 3), (2, 1, 2), "same")
    y, cache = max_pool_forward(x, *args)
    weights = rng.standard_normal(y.shape)

    def loss():
        return float(np.sum(max_pool_forward(x, *args)[0] * weights))

    np.testing.assert_allclose(max_pool_backward(cache, weights), numerical_gradient(loss, x),
                               rtol=1e-6, atol=1e-6)


def test_non_contiguous_input():
    x_channels_first = np.random.default_rng(4).standard_normal((2, 3, 6, 6))
    x = x_channels_first.transpose(0, 2, 3, 1)
    for padding in ("valid", "same"):
        y, cache = max_pool_forward(x, 3, 2, padding)
        y_contiguous, cache_contiguous = max_pool_forward(np.ascontiguousarray(x), 3, 2, padding)
        np.testing.assert_array_equal(y, y_contiguous)
        np.testing.assert_array_equal(max_pool_backward(cache, y),
                                      max_pool_backward(cache_contiguous, y))


# --------------------------------------------------------------------------- Keras oracle

ORACLE_CASES = [
    ((11,), 2, None, "valid"),
    ((11,), 3, 2, "valid"),
    ((11,), 3, 2, "same"),
    ((10,), 2, 1, "same"),
    ((9, 8), (2, 2), None, "valid"),
    ((9, 8), (2, 2), None, "same"),
    ((9, 9), (3, 3), (2, 2), "valid"),
    ((9, 9), (3, 3), (2, 2), "same"),
    ((9, 8), (3, 2), (2, 1), "same"),
    ((8, 8), (2, 3), (1, 2), "valid"),
]


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("case", ORACLE_CASES, ids=lambda c: f"{c[0]}-p{c[1]}-s{c[2]}-{c[3]}")
def test_matches_keras(case):
    keras, torch = import_keras_torch()
    spatial, pool, strides, padding = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, *spatial, 4), dtype=np.float32)
    layer_type = keras.layers.MaxPooling1D if len(spatial) == 1 else keras.layers.MaxPooling2D
    layer = layer_type(pool, strides=strides, padding=padding, data_format="channels_last")
    x_torch = torch.tensor(x, requires_grad=True)
    expected = layer(x_torch)
    y, cache = max_pool_forward(x, pool, strides, padding)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-5, atol=1e-5)

    dy = rng.standard_normal(y.shape, dtype=np.float32)
    expected.backward(torch.tensor(dy))
    np.testing.assert_allclose(max_pool_backward(cache, dy), x_torch.grad.numpy(), rtol=1e-5,
                               atol=1e-5)
