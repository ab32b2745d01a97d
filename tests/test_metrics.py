"""Metrics: hand values, streaming, masks, Keras 3's accuracy choice and names; AUC vs Keras."""

from __future__ import annotations

import os

import numpy as np
import pytest

from layerctl.errors import SpecError
from layerctl.training.metrics import (
    AUC,
    METRIC_NAMES,
    MeanMetric,
    accuracy_kind,
    make_metric,
    make_metrics,
    metric_names,
)


def result(identifier, y_true, y_pred, mask=None):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred, dtype=float)
    metric = make_metric(identifier, y_true.shape, y_pred.shape)
    metric.update(y_true, y_pred, mask)
    return metric.result()


@pytest.mark.parametrize(("y_true_shape", "y_pred_shape", "kind"), [
    ((32, 1), (32, 1), "binary_accuracy"),
    ((32,), (32, 1), "binary_accuracy"),
    ((32,), (32, 10), "sparse_categorical_accuracy"),
    ((32, 1), (32, 10), "sparse_categorical_accuracy"),
    ((8, 20), (8, 20, 5), "sparse_categorical_accuracy"),
    ((32, 10), (32, 10), "categorical_accuracy"),
    ((32, 3), (32, 3), "categorical_accuracy"),  # multi-label outputs too, as in Keras 3
])
def test_accuracy_is_chosen_from_shapes_like_keras_3(y_true_shape, y_pred_shape, kind):
    assert accuracy_kind(y_true_shape, y_pred_shape) == kind


def test_binary_accuracy():
    # Keras's docstring example: 3 of 4 right at threshold 0.5.
    assert result("accuracy", [[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]]) == 0.75
    assert result("binary_accuracy", [1, 0], [[0.5], [0.5]]) == 0.5  # 0.5 is not > 0.5


def test_categorical_accuracy():
    assert result("accuracy", [[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]]) == 0.5
    assert result("categorical_accuracy", [[0, 0, 1], [0, 1, 0]],
                  [[0.1, 0.2, 0.8], [0.05, 0.95, 0]]) == 1.0


@pytest.mark.parametrize("labels", [[2, 1], [[2], [1]], [2.0, 1.0]])
def test_sparse_categorical_accuracy(labels):
    assert result("acc", labels, [[0.1, 0.9, 0.8], [0.05, 0.95, 0]]) == 0.5


def test_accuracy_streams_over_batches_and_resets():
    metric = make_metric("accuracy", (4,), (4, 3))
    metric.update(np.array([0, 1, 2, 0]), np.eye(3)[[0, 1, 2, 1]])  # 3 of 4
    metric.update(np.array([1, 1]), np.eye(3)[[0, 0]])  # 0 of 2
    assert metric.result() == pytest.approx(3 / 6)
    metric.reset()
    assert metric.result() == 0.0
    metric.update(np.array([2]), np.eye(3)[[2]])
    assert metric.result() == 1.0


def test_masked_sequence_accuracy_counts_valid_steps_only():
    labels = np.array([[0, 1, 2], [2, 2, 0]])
    predictions = np.eye(3)[[[0, 1, 0], [2, 0, 0]]]  # right: (0,0) (0,1) (1,0) (1,2)
    mask = np.array([[True, True, True], [True, False, False]])
    # valid steps: (0,0) right, (0,1) right, (0,2) wrong, (1,0) right -> 3 of 4
    assert result("accuracy", labels, predictions, mask) == pytest.approx(0.75)
    assert result("accuracy", labels, predictions) == pytest.approx(4 / 6)


def test_mae_and_mse():
    y_true = [[0.0, 1.0], [2.0, 2.0]]
    y_pred = [[1.0, 1.0], [0.0, 5.0]]
    assert result("mae", y_true, y_pred) == pytest.approx((0.5 + 2.5) / 2)
    assert result("mean_squared_error", y_true, y_pred) == pytest.approx((0.5 + 6.5) / 2)
    assert result("MSE", y_true, y_pred, np.array([False, True])) == pytest.approx(6.5)


def test_mean_metric_weights_samples_by_their_valid_fraction_like_keras():
    # Keras's MeanMetricWrapper: each sample adds mean(values * mask) and counts mean(mask).
    metric = MeanMetric("m", lambda t, p: p)
    metric.update(None, np.array([[1.0, 3.0], [5.0, 7.0]]), np.array([[1, 1], [1, 0]]))
    assert metric.result() == pytest.approx((1 + 3 + 5) / 3)


def test_auc_hand_values():
    # Keras's docstring: with 3 thresholds (-eps, 0.5, 1+eps): TP [2,1,0], FP [2,0,0],
    # recall [1, 0.5, 0], fp rate [1, 0, 0] -> trapezoids: (1 - 0) * (1 + 0.5) / 2 = 0.75.
    metric = AUC(num_thresholds=3)
    metric.update(np.array([0, 0, 1, 1]), np.array([0.0, 0.5, 0.3, 0.9]))
    assert metric.result() == pytest.approx(0.75)


@pytest.mark.parametrize(("scores", "expected"), [
    ([0.1, 0.2, 0.8, 0.9], 1.0),   # perfectly separated
    ([0.9, 0.8, 0.2, 0.1], 0.0),   # perfectly reversed
    ([0.5, 0.5, 0.5, 0.5], 0.5),   # uninformative
])
def test_auc_extremes(scores, expected):
    assert result("auc", [0, 0, 1, 1], scores) == pytest.approx(expected)


def test_auc_is_close_to_the_exact_value_and_streams():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 2000)
    scores = np.clip(labels * 0.3 + rng.normal(0.35, 0.2, 2000), 0, 1)
    positives, negatives = scores[labels == 1], scores[labels == 0]
    exact = (np.mean(positives[:, None] > negatives[None, :])
             + 0.5 * np.mean(positives[:, None] == negatives[None, :]))
    metric = make_metric("AUC", (2000,), (2000,))
    metric.update(labels[:1200], scores[:1200])
    metric.update(labels[1200:], scores[1200:])
    assert metric.name == "AUC"
    assert metric.result() == pytest.approx(exact, abs=5e-3)


def test_auc_mask_drops_entries():
    masked = result("auc", [0, 0, 1, 1, 1], [0.1, 0.2, 0.8, 0.9, 0.05],
                    np.array([1, 1, 1, 1, 0]))
    assert masked == pytest.approx(1.0)


def test_unknown_metric_suggests_a_name():
    with pytest.raises(SpecError, match="unknown metric 'acuracy'") as caught:
        make_metric("acuracy", (2,), (2, 3))
    assert "accuracy" in caught.value.problems[0].hint


def test_metric_names_as_keras_logs_them():
    assert metric_names(["accuracy", "mae"]) == ["loss", "accuracy", "mae"]
    assert metric_names(["acc", "acc", "acc"]) == ["loss", "acc", "acc_1", "acc_2"]
    assert metric_names(["auc"], validation=True) == ["val_loss", "val_auc"]
    assert metric_names([]) == ["loss"]


def test_make_metrics_names_each_accumulator():
    metrics = make_metrics(["accuracy", "accuracy", "mse"], (4,), (4, 3))
    assert [m.name for m in metrics] == ["accuracy", "accuracy_1", "mse"]


def test_every_listed_name_builds():
    for name in METRIC_NAMES:
        if name in ("f1_score", "F1Score"):  # Keras's average=None: refused, one value per class
            continue
        metric = make_metric(name, (4, 1), (4, 1))
        metric.update(np.array([[1.0], [0.0], [1.0], [0.0]]),
                      np.array([[0.9], [0.2], [0.4], [0.1]]))
        assert 0.0 <= metric.result() <= 1.0


# --- Keras 3 as the oracle --------------------------------------------------------------------

@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras", reason="Keras 3 is the test oracle (pip install .[oracle])")


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_auc_matches_keras(keras):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, (300, 1)).astype(np.float32)
    scores = np.clip(labels * 0.2 + rng.uniform(0, 0.8, (300, 1)), 0, 1).astype(np.float32)
    theirs = keras.metrics.AUC()
    ours = make_metric("auc", labels.shape, scores.shape)
    for batch in (slice(0, 100), slice(100, 300)):
        theirs.update_state(labels[batch], scores[batch])
        ours.update(labels[batch], scores[batch])
    assert ours.result() == pytest.approx(float(keras.ops.convert_to_numpy(theirs.result())),
                                          abs=1e-6)


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(("y_true", "y_pred"), [
    (np.array([[1.0], [0.0], [1.0]]), np.array([[0.7], [0.6], [0.2]])),
    (np.array([2, 0, 1, 1]), np.eye(3)[[2, 1, 1, 0]] * 0.8 + 0.05),
    (np.eye(4)[[0, 3, 3]], np.eye(4)[[0, 3, 1]] * 0.7 + 0.1),
])
def test_accuracy_matches_keras_compile_choice(keras, y_true, y_pred):
    model = keras.Sequential([keras.Input(y_pred.shape[1:]), keras.layers.Identity()])
    loss = "mse" if y_true.ndim == y_pred.ndim else "sparse_categorical_crossentropy"
    model.compile(loss=loss, metrics=["accuracy"])
    expected = model.evaluate(y_pred, y_true, verbose=0, return_dict=True)["accuracy"]
    assert result("accuracy", y_true, y_pred) == pytest.approx(expected, abs=1e-6)
