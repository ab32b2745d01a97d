"""The forward-only inference path (`layerctl.inference.Predictor`) against the training path.

Predictor must give Graph.forward(training=False)'s numbers on every bundled spec. Folding
BatchNormalization into a neighbouring kernel reassociates its arithmetic, so values agree to
float32 rounding (1e-5 here), not bit for bit; every other step computes the same operations.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_export import SPECS, plan_of, sample_inputs, trained_graph

from layerctl import inference
from layerctl.inference import AffineStep, DenseStep, IdentityStep, Predictor
from layerctl.plan import build_plan
from layerctl.spec import load_spec

TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


def assert_same_outputs(graph, x, predictor=None) -> None:
    expected = graph.forward(x, training=False)
    actual = (predictor or Predictor(graph))(x)
    if isinstance(expected, dict):
        assert actual.keys() == expected.keys()
        for ref, value in expected.items():
            np.testing.assert_allclose(actual[ref], value, **TOLERANCE, err_msg=ref)
    else:
        assert actual.dtype == expected.dtype
        np.testing.assert_allclose(actual, expected, **TOLERANCE)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_bundled_spec_predicts_as_the_training_path(path):
    plan = build_plan(*load_spec(path))
    assert_same_outputs(trained_graph(plan), sample_inputs(plan, n=6))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_sub_batches_give_the_whole_batch_numbers(path, monkeypatch):
    """Sub-batches of one sample, on the pool's threads too, change no value."""
    plan = build_plan(*load_spec(path))
    graph = trained_graph(plan)
    predictor = Predictor(graph)   # the split is decided here, the sub-batch size per call
    monkeypatch.setattr(inference, "SUB_BATCH_BYTES", 1)
    assert_same_outputs(graph, sample_inputs(plan, n=7), predictor)


def test_a_cnn_runs_its_convolutions_on_sub_batches_and_its_dense_tail_on_the_batch():
    plan = build_plan(*load_spec(SPECS[[p.name for p in SPECS].index("mnist_cnn.yaml")]))
    predictor = Predictor(trained_graph(plan))
    assert [node.name for node in predictor.prefix] == [
        "conv2d", "conv2d_1", "max_pooling2d", "dropout", "flatten"]
    assert predictor.crossing == ["flatten"]


def test_predictions_are_bit_identical_run_to_run():
    plan = build_plan(*load_spec(SPECS[[p.name for p in SPECS].index("mnist_cnn.yaml")]))
    graph = trained_graph(plan)
    x = sample_inputs(plan, n=40)
    first = Predictor(graph)(x)
    predictor = Predictor(graph)
    for _ in range(2):   # reused buffers leave nothing behind
        assert np.array_equal(predictor(x), first)
    # another batch size splits differently: BLAS may round other matmul shapes differently
    np.testing.assert_allclose(predictor(x[:3]), first[:3], **TOLERANCE)


def test_results_are_new_arrays_not_the_reused_buffers():
    graph = trained_graph(plan_of(DENSE_BN_DENSE))
    predictor = Predictor(graph)
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    first = predictor(x)
    kept = first.copy()
    predictor(x * 2)
    assert np.array_equal(first, kept)


DENSE_BN_DENSE = """
name: folds
input_shape: [6]
layers:
  - {type: Dense, units: 5, activation: relu}
  - {type: BatchNormalization}
  - {type: Dropout, rate: 0.5}
  - {type: Dense, units: 4, activation: softmax}
"""

CONV_BN = """
name: folds-conv
input_shape: [9, 9, 3]
layers:
  - {type: Conv2D, filters: 4, kernel_size: 3, padding: same, use_bias: false}
  - {type: BatchNormalization, epsilon: 0.01}
  - {type: Activation, activation: relu}
  - {type: Flatten}
  - {type: BatchNormalization, center: false}
"""


def test_batch_norm_after_an_activation_folds_into_the_next_dense():
    graph = trained_graph(plan_of(DENSE_BN_DENSE))
    steps = Predictor(graph)._steps()
    assert isinstance(steps["batch_normalization"], IdentityStep)
    assert isinstance(steps["dense_1"], DenseStep)
    assert_same_outputs(graph, np.random.default_rng(1).normal(size=(9, 6)).astype(np.float32))


def test_batch_norm_folds_into_the_convolution_before_it_or_stays_a_multiply_add():
    graph = trained_graph(plan_of(CONV_BN))
    steps = Predictor(graph)._steps()
    assert isinstance(steps["batch_normalization"], IdentityStep)   # into the bias-less conv
    assert isinstance(steps["batch_normalization_1"], AffineStep)   # a model output: kept
    x = np.random.default_rng(2).normal(size=(4, 9, 9, 3)).astype(np.float32)
    assert_same_outputs(graph, x)


def test_predict_over_batches_matches_graph_predict():
    plan = build_plan(*load_spec(SPECS[[p.name for p in SPECS].index("digits_two_heads.yaml")]))
    graph = trained_graph(plan)
    x = sample_inputs(plan, n=11)
    expected = graph.predict(x, batch_size=4)
    actual = Predictor(graph).predict(x, batch_size=4)
    expected = expected if isinstance(expected, dict) else {"y": expected}
    actual = actual if isinstance(actual, dict) else {"y": actual}
    for ref, value in expected.items():
        np.testing.assert_allclose(actual[ref], value, **TOLERANCE)
