"""Regularizers: hand-computed penalties, float64 gradient checks, Keras 3 defaults and spellings,
and (oracle) agreement with Keras 3 for the penalty and its autograd gradient."""

from __future__ import annotations

import os

import numpy as np
import pytest
from pydantic import ValidationError

from layerctl.config import Frozen
from layerctl.regularizers import (
    L1,
    L1L2,
    L2,
    Regularizer,
    parse_regularizer,
    penalty,
    penalty_gradient,
)

W = np.array([[1.0, -2.0], [3.0, 0.0]])  # Σ|w| = 6, Σw² = 14


class _Layer(Frozen):
    kernel_regularizer: Regularizer


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("l1", 0.01 * 6),
        ("l2", 0.01 * 14),
        ("l1_l2", 0.0),  # Keras 3: L1L2 defaults to l1 = l2 = 0
        ({"type": "l1", "l1": 0.5}, 3.0),
        ({"type": "l2", "l2": 0.25}, 3.5),
        ({"type": "l1_l2", "l1": 0.1, "l2": 0.2}, 0.6 + 2.8),
        ({"type": "l1_l2", "l2": 0.1}, 1.4),
    ],
)
def test_penalty_by_hand(spec, expected: float) -> None:
    assert penalty(spec, W) == pytest.approx(expected, rel=1e-12, abs=0)
    assert isinstance(penalty(spec, W), float)


def test_gradient_by_hand() -> None:
    spec = {"type": "l1_l2", "l1": 0.1, "l2": 0.2}
    # 0.1·sign(w) + 0.4·w, with sign(0) = 0.
    expected = [[0.1 + 0.4, -0.1 - 0.8], [0.1 + 1.2, 0.0]]
    np.testing.assert_allclose(penalty_gradient(spec, W), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "spec", ["l1", "l2", {"type": "l1_l2", "l1": 0.3, "l2": 0.7}, {"type": "l2", "l2": 2.0}]
)
def test_gradient_matches_central_differences(spec) -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3))
    w = np.where(np.abs(w) < 0.05, 0.3, w)  # |w| has a kink at 0
    h = 1e-6
    numerical = np.zeros_like(w)
    for i in np.ndindex(w.shape):
        step = np.zeros_like(w)
        step[i] = h
        numerical[i] = (penalty(spec, w + step) - penalty(spec, w - step)) / (2 * h)
    np.testing.assert_allclose(penalty_gradient(spec, w), numerical, rtol=1e-6, atol=1e-9)


def test_dtypes() -> None:
    w32 = W.astype(np.float32)
    assert penalty_gradient("l1", w32).dtype == np.float32
    assert penalty_gradient({"type": "l1_l2"}, w32).dtype == np.float32
    assert penalty("l2", w32) == pytest.approx(0.14, rel=1e-6)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("l1", L1(type="l1")),
        ("L1", L1(type="l1")),
        ("l2", L2(type="l2", l2=0.01)),
        ("L2", L2(type="l2")),
        ("l1_l2", L1L2(type="l1_l2", l1=0.0, l2=0.0)),
        ("l1l2", L1L2(type="l1_l2")),  # Keras 3's own snake case of L1L2
        ("L1L2", L1L2(type="l1_l2")),
        ({"type": "L1", "l1": 0.3}, L1(type="l1", l1=0.3)),
        (
            {"class_name": "L1L2", "config": {"l1": 0.1, "l2": 0.2}},
            L1L2(type="l1_l2", l1=0.1, l2=0.2),
        ),
    ],
)
def test_spellings_and_defaults(value, expected) -> None:
    assert _Layer(kernel_regularizer=value).kernel_regularizer == expected
    assert parse_regularizer(value) == expected
    assert L1(type="l1").l1 == 0.01


@pytest.mark.parametrize(
    "bad",
    [
        "l3",
        "orthogonal",
        {"type": "l1", "l1": -0.1},
        {"type": "l2", "l2": float("inf")},
        {"type": "l1_l2", "l1": float("nan")},
        {"type": "l1", "l2": 0.1},
    ],
)
def test_invalid_specs(bad) -> None:
    with pytest.raises(ValidationError):
        _Layer(kernel_regularizer=bad)


# --- oracle --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras", reason="Keras 3 (the oracle extra) is not installed")


ORACLE_CASES = [
    {"class_name": "L1", "config": {}},
    {"class_name": "L2", "config": {}},
    {"class_name": "L1L2", "config": {}},
    {"class_name": "L1", "config": {"l1": 0.3}},
    {"class_name": "L2", "config": {"l2": 1.5}},
    {"class_name": "L1L2", "config": {"l1": 0.02, "l2": 0.05}},
]


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spelled", ORACLE_CASES)
def test_penalty_matches_keras(keras, spelled: dict, dtype: type) -> None:
    w = np.random.default_rng(1).normal(size=(7, 5)).astype(dtype)
    regularizer = keras.regularizers.get(spelled)
    expected = float(keras.ops.convert_to_numpy(regularizer(keras.ops.convert_to_tensor(w))))
    assert penalty(spelled, w) == pytest.approx(expected, rel=1e-6, abs=1e-7)


@pytest.mark.oracle
@pytest.mark.parametrize("spelled", ORACLE_CASES)
def test_gradient_matches_torch_autograd_through_keras(keras, spelled: dict) -> None:
    torch = pytest.importorskip("torch", reason="the Keras oracle runs on the torch backend")
    if keras.backend.backend() != "torch":
        pytest.skip("autograd comparison needs KERAS_BACKEND=torch")
    w = np.random.default_rng(2).normal(size=(6, 4))
    w_torch = torch.tensor(w, requires_grad=True)
    value = keras.regularizers.get(spelled)(w_torch)
    if not value.requires_grad:  # L1L2(0, 0) returns a constant zero
        np.testing.assert_array_equal(penalty_gradient(spelled, w), 0)
        return
    value.backward()
    np.testing.assert_allclose(penalty_gradient(spelled, w), w_torch.grad.numpy(), rtol=1e-6)
