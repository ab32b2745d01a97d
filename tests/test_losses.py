"""Losses: hand values, masks, float64 gradient checks, the fused logits path, Keras as oracle."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from pydantic import ValidationError

from layerctl.errors import DataError
from layerctl.training.losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Huber,
    MeanAbsoluteError,
    MeanSquaredError,
    SparseCategoricalCrossentropy,
    fused_loss_and_gradient,
    fused_output_activation,
    loss_and_gradient,
    parse_loss,
)


def value(spec, y_true, y_pred, mask=None):
    return loss_and_gradient(parse_loss(spec), np.asarray(y_true),
                             np.asarray(y_pred, dtype=np.float64), mask)[0]


# --- hand values ------------------------------------------------------------------------------

def test_mean_squared_error():
    # ((0.1)^2 + (0.1)^2 + (0.2)^2) / 3 = 0.02
    assert value("mse", [1.0, 0.0, 1.0], [0.9, 0.1, 0.8]) == pytest.approx(0.02, rel=1e-12)
    assert value("mean_squared_error", [[0, 1], [0, 0]], [[1, 1], [1, 0]]) == 0.5


def test_mean_absolute_error():
    # |1 - 1.9| + |0.3 - 0.3| + |1 - 1.8| = 1.7, / 3
    assert value("mae", [1.0, 0.3, 1.0], [1.9, 0.3, 1.8]) == pytest.approx(1.7 / 3, rel=1e-12)


def test_huber():
    # errors 0.6, -0.6, 0.4, 0.6, all <= delta 1: 0.5 e^2 -> (0.18+0.18+0.08+0.18)/4 = 0.155
    assert value("huber", [[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]) == pytest.approx(0.155)
    # delta 0.5: errors 2 and 0.25 -> 0.5*2 - 0.125 = 0.875 and 0.03125 -> mean 0.453125
    assert value({"type": "huber", "delta": 0.5}, [0.0, 0.0], [2.0, 0.25]) == pytest.approx(
        0.453125, rel=1e-12)


def test_binary_crossentropy_probabilities():
    # sample 1: -(log 0.4 + log 0.6)/2 ... per Keras's docstring, [0.916, 0.714] -> 0.815
    expected = (-(math.log(0.4) + math.log(0.4)) / 2 - (math.log(0.6) + math.log(0.4)) / 2) / 2
    assert value("binary_crossentropy", [[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]) == (
        pytest.approx(expected, rel=1e-12))
    assert expected == pytest.approx(0.815, abs=1e-3)


def test_binary_crossentropy_logits():
    logits = [-18.6, 0.51, 2.94, -12.8]
    expected = np.mean([math.log1p(math.exp(-18.6)), math.log1p(math.exp(-0.51)),
                        math.log1p(math.exp(2.94)), math.log1p(math.exp(-12.8))])
    got = value({"type": "bce", "from_logits": True}, [0, 1, 0, 0], logits)
    assert got == pytest.approx(expected, rel=1e-12)
    assert got == pytest.approx(0.8654, abs=1e-4)


def test_binary_crossentropy_label_smoothing():
    # s = 0.2: targets 1 -> 0.9, 0 -> 0.1
    got = value({"type": "binary_crossentropy", "label_smoothing": 0.2}, [1.0, 0.0], [0.7, 0.2])
    expected = -(0.9 * math.log(0.7) + 0.1 * math.log(0.3) + 0.1 * math.log(0.2)
                 + 0.9 * math.log(0.8)) / 2
    assert got == pytest.approx(expected, rel=1e-12)


def test_binary_crossentropy_clips_like_keras():
    # p = 0 for a positive: log(clip(0)) = log(1e-7).
    assert value("bce", [1.0], [0.0]) == pytest.approx(-math.log(1e-7), rel=1e-9)
    assert value("bce", [0.0], [1.0]) == pytest.approx(-math.log(1e-7), rel=1e-6)


def test_categorical_crossentropy():
    y_true = [[0, 1, 0], [0, 0, 1]]
    y_pred = [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]]
    expected = (-math.log(0.95) - math.log(0.1)) / 2  # Keras docstring: [0.0513, 2.303]
    assert value("categorical_crossentropy", y_true, y_pred) == pytest.approx(expected, rel=1e-12)
    # Predictions are normalised to sum 1 first.
    doubled = np.asarray(y_pred) * 2
    assert value("categorical_crossentropy", y_true, doubled) == pytest.approx(expected, rel=1e-12)


def test_categorical_crossentropy_logits_and_smoothing():
    logits = np.array([[1.0, 2.0, 3.0]])
    log_softmax = logits - np.log(np.exp(logits).sum())
    smoothed = np.array([0.1 / 3, 0.1 / 3, 0.9 + 0.1 / 3])
    spec = {"type": "categorical_crossentropy", "from_logits": True, "label_smoothing": 0.1}
    assert value(spec, [[0, 0, 1]], logits) == pytest.approx(-(smoothed * log_softmax).sum())


@pytest.mark.parametrize("labels", [
    [1, 2], [[1], [2]], np.array([1.0, 2.0]), np.array([[1.0], [2.0]], dtype=np.float32),
])
def test_sparse_categorical_crossentropy_label_forms(labels):
    y_pred = [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]]
    expected = (-math.log(0.95) - math.log(0.1)) / 2
    assert value("sparse_categorical_crossentropy", labels, y_pred) == pytest.approx(expected)


def test_sparse_equals_categorical_on_one_hot():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6, 4))
    labels = rng.integers(0, 4, 6)
    for from_logits in (False, True):
        pred = logits if from_logits else np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        sparse = loss_and_gradient(SparseCategoricalCrossentropy(from_logits=from_logits),
                                   labels, pred)
        dense = loss_and_gradient(CategoricalCrossentropy(from_logits=from_logits),
                                  np.eye(4)[labels], pred)
        assert sparse[0] == pytest.approx(dense[0], rel=1e-12)
        np.testing.assert_allclose(sparse[1], dense[1], rtol=1e-10, atol=1e-14)


# --- masks and reductions ---------------------------------------------------------------------

def test_mask_averages_over_valid_entries_only():
    probabilities = np.array([[[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]],
                              [[0.3, 0.7], [0.6, 0.4], [0.99, 0.01]]])
    labels = np.array([[0, 0, 1], [1, 1, 0]])
    mask = np.array([[True, True, False], [True, False, False]])
    expected = -(math.log(0.5) + math.log(0.9) + math.log(0.7)) / 3
    loss, grad = loss_and_gradient(SparseCategoricalCrossentropy(), labels, probabilities, mask)
    assert loss == pytest.approx(expected, rel=1e-12)
    assert not grad[~mask].any()


def test_all_masked_gives_zero_loss_and_gradient():
    loss, grad = loss_and_gradient(MeanSquaredError(), np.ones((2, 3)), np.zeros((2, 3)),
                                   np.zeros(2, bool))
    assert loss == 0.0 and not grad.any()


def test_mask_may_carry_a_trailing_axis():
    y_true, y_pred = np.zeros((3, 2)), np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    assert value("mse", y_true, y_pred, np.array([[1], [0], [1]])) == pytest.approx(5.0)


@pytest.mark.parametrize(("reduction", "expected"), [
    ("sum_over_batch_size", 4 / 3), ("mean", 4 / 3), ("sum", 4.0),
    ("mean_with_sample_weight", 4 / 3),
])
def test_reductions(reduction, expected):
    # per-sample squared errors 1, 0, 3 (mean over the last axis of [1,1], [0,0], [3,3])
    y_pred = np.array([[1.0, -1.0], [0.0, 0.0], [math.sqrt(3), math.sqrt(3)]])
    got = value({"type": "mse", "reduction": reduction}, np.zeros((3, 2)), y_pred)
    assert got == pytest.approx(expected, rel=1e-12)


def test_sum_reduction_with_mask_sums_valid_entries():
    y_pred = np.array([[1.0], [2.0], [3.0]])
    assert value({"type": "mae", "reduction": "sum"}, np.zeros((3, 1)), y_pred,
                 np.array([True, False, True])) == 4.0


def test_ignore_class_masks_entries():
    probabilities = np.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]])
    spec = {"type": "sparse_categorical_crossentropy", "ignore_class": -1}
    loss, grad = loss_and_gradient(parse_loss(spec), np.array([0, -1, 1]), probabilities)
    assert loss == pytest.approx(-(math.log(0.5) + math.log(0.8)) / 2, rel=1e-12)
    assert not grad[1].any()


# --- shapes, dtypes, errors -------------------------------------------------------------------

def test_float32_in_float32_out():
    loss, grad = loss_and_gradient(BinaryCrossentropy(), np.array([[1], [0]], np.int64),
                                   np.array([[0.7], [0.4]], np.float32))
    assert grad.dtype == np.float32 and isinstance(loss, float)


def test_rank_one_output_is_one_column():
    a = loss_and_gradient(MeanSquaredError(), np.array([1.0, 2.0]), np.array([0.0, 0.0]))
    b = loss_and_gradient(MeanSquaredError(), np.array([[1.0], [2.0]]), np.array([0.0, 0.0]))
    assert a[0] == b[0] == 2.5 and a[1].shape == b[1].shape == (2,)


@pytest.mark.parametrize(("spec", "y_true", "y_pred", "message"), [
    ("sparse_categorical_crossentropy", [0, 3], [[0.5, 0.5], [0.5, 0.5]], "label 3 is outside"),
    ("sparse_categorical_crossentropy", [0, -1], [[0.5, 0.5], [0.5, 0.5]], "label -1"),
    ("sparse_categorical_crossentropy", [0.5, 1.0], [[0.5, 0.5], [0.5, 0.5]], "whole numbers"),
    ("sparse_categorical_crossentropy", [[0, 1], [1, 0]], [[0.5, 0.5], [0.5, 0.5]],
     "one integer label"),
    ("categorical_crossentropy", [0, 1], [[0.5, 0.5], [0.5, 0.5]], "one-hot targets"),
    ("mse", [[1.0, 2.0, 3.0]], [[1.0, 2.0]], "do not match"),
])
def test_data_errors(spec, y_true, y_pred, message):
    with pytest.raises(DataError, match=message):
        value(spec, y_true, y_pred)


@pytest.mark.parametrize(("spelling", "model"), [
    ("mse", MeanSquaredError), ("MSE", MeanSquaredError), ("MeanSquaredError", MeanSquaredError),
    ("mean_absolute_error", MeanAbsoluteError), ("mae", MeanAbsoluteError),
    ("huber", Huber), ("Huber", Huber), ("bce", BinaryCrossentropy),
    ("BinaryCrossentropy", BinaryCrossentropy),
    ("categorical_crossentropy", CategoricalCrossentropy),
    ("SparseCategoricalCrossentropy", SparseCategoricalCrossentropy),
])
def test_spellings(spelling, model):
    assert isinstance(parse_loss(spelling), model)


def test_keras_serialized_loss_loads():
    config = {"module": "keras.losses", "class_name": "CategoricalCrossentropy",
              "config": {"name": "categorical_crossentropy", "reduction": "sum_over_batch_size",
                         "from_logits": True, "label_smoothing": 0.1, "axis": -1},
              "registered_name": None}
    assert parse_loss(config) == CategoricalCrossentropy(
        from_logits=True, label_smoothing=0.1, name="categorical_crossentropy")


@pytest.mark.parametrize(("spec", "message"), [
    ({"type": "binary_crossentropy", "label_smoothing": 1.5}, "less than or equal to 1"),
    ({"type": "mse", "from_logits": True}, "from_logits"),
    ({"type": "huber", "delta": -1}, "greater than or equal to 0"),
    ({"type": "mse", "reduction": "none"}, "reduction"),
    ("categorical_crossentropie", "categorical_crossentropie"),
])
def test_invalid_specs(spec, message):
    with pytest.raises(ValidationError, match=message):
        parse_loss(spec)


# --- float64 central-difference gradient checks -----------------------------------------------

def numeric_gradient(spec, y_true, y_pred, mask, step=1e-6):
    grad = np.zeros_like(y_pred)
    for index in np.ndindex(y_pred.shape):
        shifted = y_pred.copy()
        shifted[index] += step
        plus = loss_and_gradient(spec, y_true, shifted, mask)[0]
        shifted[index] -= 2 * step
        minus = loss_and_gradient(spec, y_true, shifted, mask)[0]
        grad[index] = (plus - minus) / (2 * step)
    return grad


def gradient_cases():
    rng = np.random.default_rng(42)
    regression_true = rng.normal(size=(4, 3))
    # Away from the kinks of |e| (0) and Huber's delta.
    regression_pred = regression_true + rng.choice([-1, 1], (4, 3)) * rng.uniform(0.1, 0.4, (4, 3))
    huber_pred = regression_true + rng.choice([-1, 1], (4, 3)) * rng.choice([0.2, 0.9], (4, 3))
    binary_true = rng.integers(0, 2, (4, 3)).astype(float)
    probs = rng.uniform(0.05, 0.95, (4, 3))
    logits = rng.normal(size=(4, 3)) * 3
    simplex = rng.uniform(0.1, 1.0, (4, 3))  # not normalised: checks the normalisation too
    one_hot = np.eye(3)[rng.integers(0, 3, 4)]
    labels = rng.integers(0, 3, 4)
    seq_logits = rng.normal(size=(2, 5, 3))
    seq_labels = rng.integers(0, 3, (2, 5))
    seq_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], bool)
    channels_first = rng.uniform(0.1, 1.0, (2, 3, 4))
    channels_first_true = np.moveaxis(np.eye(3)[rng.integers(0, 3, (2, 4))], -1, 1)
    row_mask = np.array([True, False, True, True])
    return [
        ("mse", regression_true, regression_pred, None),
        ("mse", regression_true, regression_pred, row_mask),
        ({"type": "mse", "reduction": "sum"}, regression_true, regression_pred, row_mask),
        ("mae", regression_true, regression_pred, None),
        ({"type": "huber", "delta": 0.5}, regression_true, huber_pred, None),
        ("bce", binary_true, probs, None),
        ("bce", binary_true, probs, row_mask),
        ({"type": "bce", "label_smoothing": 0.1}, binary_true, probs, None),
        ({"type": "bce", "from_logits": True}, binary_true, logits, None),
        ({"type": "bce", "from_logits": True, "label_smoothing": 0.3}, binary_true, logits,
         row_mask),
        ("categorical_crossentropy", one_hot, simplex, None),
        ({"type": "categorical_crossentropy", "label_smoothing": 0.2}, one_hot, simplex, row_mask),
        ({"type": "categorical_crossentropy", "from_logits": True}, one_hot, logits, None),
        ({"type": "categorical_crossentropy", "from_logits": True, "label_smoothing": 0.2},
         one_hot, logits, None),
        ({"type": "categorical_crossentropy", "axis": 1}, channels_first_true, channels_first,
         None),
        ("sparse_categorical_crossentropy", labels, simplex, None),
        ({"type": "sparse_categorical_crossentropy", "from_logits": True}, labels, logits,
         row_mask),
        ({"type": "sparse_categorical_crossentropy", "from_logits": True}, seq_labels,
         seq_logits, seq_mask),
        ({"type": "sparse_categorical_crossentropy", "ignore_class": 2}, seq_labels,
         np.exp(seq_logits), None),
        ({"type": "sparse_categorical_crossentropy", "axis": 1}, seq_labels[:, :4],
         channels_first, None),
        ({"type": "sparse_categorical_crossentropy", "reduction": "sum"}, labels, simplex,
         row_mask),
    ]


@pytest.mark.parametrize(("spec", "y_true", "y_pred", "mask"), gradient_cases())
def test_gradient_matches_central_differences(spec, y_true, y_pred, mask):
    spec = parse_loss(spec)
    _, analytic = loss_and_gradient(spec, y_true, y_pred, mask)
    numeric = numeric_gradient(spec, y_true, y_pred, mask)
    assert analytic.shape == y_pred.shape
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)
    assert np.abs(analytic).max() > 1e-3  # the check compared something


# --- fused output activation ------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "activation", "fused"), [
    ("categorical_crossentropy", "softmax", True),
    ("sparse_categorical_crossentropy", "softmax", True),
    ("binary_crossentropy", "sigmoid", True),
    ("binary_crossentropy", "softmax", False),
    ("categorical_crossentropy", "sigmoid", False),
    ("categorical_crossentropy", None, False),
    ("binary_crossentropy", "linear", False),
    ({"type": "categorical_crossentropy", "from_logits": True}, "softmax", False),
    ({"type": "categorical_crossentropy", "axis": 1}, "softmax", False),
    ("mse", "sigmoid", False),
    ("huber", "softmax", False),
])
def test_fused_output_activation(spec, activation, fused):
    assert fused_output_activation(parse_loss(spec), activation) is fused


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def fused_cases():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(5, 4)) * 2
    labels = rng.integers(0, 4, 5)
    binary = rng.integers(0, 2, (5, 4)).astype(float)
    mask = np.array([True, True, False, True, False])
    softmax_back = lambda z, dp: softmax(z) * (dp - (dp * softmax(z)).sum(-1, keepdims=True))  # noqa: E731
    sigmoid_back = lambda z, dp: dp * sigmoid(z) * (1 - sigmoid(z))  # noqa: E731
    return [
        ("categorical_crossentropy", np.eye(4)[labels], logits, None, softmax, softmax_back),
        ({"type": "categorical_crossentropy", "label_smoothing": 0.1}, np.eye(4)[labels], logits,
         mask, softmax, softmax_back),
        ("sparse_categorical_crossentropy", labels, logits, mask, softmax, softmax_back),
        ("binary_crossentropy", binary, logits, None, sigmoid, sigmoid_back),
        ({"type": "bce", "label_smoothing": 0.2}, binary, logits, mask, sigmoid, sigmoid_back),
    ]


@pytest.mark.parametrize(("spec", "y_true", "logits", "mask", "activation", "back"),
                         fused_cases())
def test_fused_equals_chain_rule_through_the_activation(spec, y_true, logits, mask, activation,
                                                        back):
    # Moderate logits: every probability inside [1e-7, 1 - 1e-7], where the clip is inactive.
    spec = parse_loss(spec)
    probabilities = activation(logits)
    assert probabilities.min() > 1e-6 and probabilities.max() < 1 - 1e-6
    unfused_loss, d_probabilities = loss_and_gradient(spec, y_true, probabilities, mask)
    fused_loss, d_logits = fused_loss_and_gradient(spec, y_true, logits, mask)
    assert fused_loss == pytest.approx(unfused_loss, rel=1e-12)
    np.testing.assert_allclose(d_logits, back(logits, d_probabilities), rtol=1e-9, atol=1e-15)


def test_fused_softmax_gradient_is_probabilities_minus_targets():
    logits = np.array([[1.0, -2.0, 0.5]])
    _, d_logits = fused_loss_and_gradient(CategoricalCrossentropy(), np.array([[0, 0, 1.0]]),
                                          logits)
    np.testing.assert_allclose(d_logits, softmax(logits) - [0, 0, 1], rtol=1e-12)


def test_fused_and_unfused_differ_only_where_keras_clips():
    # The true class has probability e^-30 ~ 1e-13 < 1e-7: Keras clips it, so its loss saturates
    # at -log(1e-7) and its gradient vanishes; the fused loss is the exact -log_softmax.
    logits = np.array([[0.0, 30.0, 0.0]])
    spec = SparseCategoricalCrossentropy()
    unfused_loss, d_probabilities = loss_and_gradient(spec, np.array([0]), softmax(logits))
    fused_loss, d_logits = fused_loss_and_gradient(spec, np.array([0]), logits)
    assert unfused_loss == pytest.approx(-math.log(1e-7), rel=1e-6)
    assert fused_loss == pytest.approx(30.0, rel=1e-9)
    assert np.abs(d_probabilities[0, 0]) == 0.0
    np.testing.assert_allclose(d_logits, softmax(logits) - [1, 0, 0], atol=1e-12)

    spec = BinaryCrossentropy()
    unfused_loss, _ = loss_and_gradient(spec, np.array([[0.0]]), sigmoid(np.array([[40.0]])))
    fused_loss, d_logit = fused_loss_and_gradient(spec, np.array([[0.0]]), np.array([[40.0]]))
    assert unfused_loss == pytest.approx(-math.log(1e-7), rel=1e-6)
    assert fused_loss == pytest.approx(40.0, rel=1e-9)
    assert d_logit[0, 0] == pytest.approx(1.0)


@pytest.mark.parametrize("spec", ["mse", {"type": "bce", "from_logits": True}])
def test_fused_path_refuses_losses_without_a_probability_form(spec):
    with pytest.raises(ValueError, match="no fused logits form"):
        fused_loss_and_gradient(parse_loss(spec), np.zeros((2, 1)), np.zeros((2, 1)))


def test_fused_logits_never_overflow():
    logits = np.array([[1000.0, -1000.0, 0.0]], dtype=np.float32)
    loss, grad = fused_loss_and_gradient(CategoricalCrossentropy(), np.array([[0, 1, 0]]), logits)
    assert loss == pytest.approx(2000.0) and np.isfinite(grad).all()
    loss, grad = fused_loss_and_gradient(BinaryCrossentropy(), np.array([[1.0, 0.0]]),
                                         np.array([[-1000.0, 1000.0]], np.float32))
    assert loss == pytest.approx(1000.0) and np.isfinite(grad).all()


# --- Keras 3 as the oracle --------------------------------------------------------------------

@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip(
        "keras", reason="Keras 3 is the test oracle (pip install .[oracle])")
    if keras.backend.backend() != "torch":
        pytest.skip("the gradient oracle needs KERAS_BACKEND=torch")
    return keras


def keras_loss_and_gradient(keras, loss, y_true, y_pred, mask=None):
    import torch
    from keras.src.backend import set_keras_mask

    prediction = torch.tensor(y_pred, requires_grad=True)
    output = prediction * 1.0  # a non-leaf tensor to carry the Keras mask
    if mask is not None:
        set_keras_mask(output, torch.tensor(mask))
    result = loss(torch.tensor(y_true), output)
    result.backward()
    return float(result.detach()), prediction.grad.numpy()


def oracle_cases():
    rng = np.random.default_rng(5)
    f32 = np.float32
    probs = rng.uniform(0.02, 0.98, (6, 3)).astype(f32)
    logits = (rng.normal(size=(6, 3)) * 3).astype(f32)
    binary = rng.integers(0, 2, (6, 3)).astype(f32)
    regression = rng.normal(size=(6, 3)).astype(f32)
    simplex = (probs / probs.sum(1, keepdims=True)).astype(f32)
    labels = rng.integers(0, 3, 6)
    seq_logits = rng.normal(size=(3, 4, 5)).astype(f32)
    seq_labels = rng.integers(0, 5, (3, 4))
    seq_mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], bool)
    row_mask = np.array([1, 0, 1, 1, 0, 1], bool)
    return [
        ("MeanSquaredError", {}, "mse", regression, logits, None),
        ("MeanSquaredError", {}, "mse", regression, logits, row_mask),
        ("MeanAbsoluteError", {"reduction": "sum"}, {"type": "mae", "reduction": "sum"},
         regression, logits, row_mask),
        ("Huber", {"delta": 0.7}, {"type": "huber", "delta": 0.7}, regression, logits, None),
        ("BinaryCrossentropy", {}, "bce", binary, probs, None),
        ("BinaryCrossentropy", {"label_smoothing": 0.2},
         {"type": "bce", "label_smoothing": 0.2}, binary, probs, row_mask),
        ("BinaryCrossentropy", {"from_logits": True}, {"type": "bce", "from_logits": True},
         binary, logits, None),
        ("BinaryCrossentropy", {"from_logits": True, "axis": 0},
         {"type": "bce", "from_logits": True, "axis": 0}, binary, logits, None),
        ("CategoricalCrossentropy", {}, "categorical_crossentropy", np.eye(3, dtype=f32)[labels],
         probs, None),
        ("CategoricalCrossentropy", {"label_smoothing": 0.1, "from_logits": True},
         {"type": "categorical_crossentropy", "label_smoothing": 0.1, "from_logits": True},
         np.eye(3, dtype=f32)[labels], logits, row_mask),
        ("CategoricalCrossentropy", {"reduction": "mean_with_sample_weight"},
         {"type": "categorical_crossentropy", "reduction": "mean_with_sample_weight"},
         np.eye(3, dtype=f32)[labels], simplex, row_mask),
        ("SparseCategoricalCrossentropy", {}, "sparse_categorical_crossentropy", labels, probs,
         None),
        ("SparseCategoricalCrossentropy", {}, "sparse_categorical_crossentropy",
         labels[:, None].astype(f32), simplex, None),
        ("SparseCategoricalCrossentropy", {"from_logits": True},
         {"type": "sparse_categorical_crossentropy", "from_logits": True},
         seq_labels, seq_logits, seq_mask),
        ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": 0},
         {"type": "sparse_categorical_crossentropy", "from_logits": True, "ignore_class": 0},
         seq_labels, seq_logits, seq_mask),
    ]


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(("class_name", "kwargs", "spec", "y_true", "y_pred", "mask"),
                         oracle_cases())
def test_value_and_gradient_match_keras(keras, class_name, kwargs, spec, y_true, y_pred, mask):
    expected_loss, expected_grad = keras_loss_and_gradient(
        keras, getattr(keras.losses, class_name)(**kwargs), y_true, y_pred, mask)
    loss, grad = loss_and_gradient(parse_loss(spec), y_true, y_pred, mask)
    assert loss == pytest.approx(expected_loss, rel=2e-6, abs=1e-7)
    np.testing.assert_allclose(grad, expected_grad, rtol=2e-5, atol=1e-7)
