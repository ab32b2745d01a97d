"""Constraints: Keras's documented examples, hand-derived projections, axes, dtype, the Keras 2
spellings as errors, and (oracle) agreement with Keras 3."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from pydantic import ValidationError

from layerctl.config import Frozen
from layerctl.constraints import (
    Constraint,
    MaxNorm,
    MinMaxNorm,
    NonNeg,
    UnitNorm,
    apply_constraint,
    parse_constraint,
)
from layerctl.errors import SpecError


class _Layer(Frozen):
    kernel_constraint: Constraint


def test_max_norm_reference_example() -> None:
    w = np.array([[3.0, 0.0], [4.0, 1.0]], dtype=np.float32)
    # Column norms 5 and 1: the first is scaled to 2, the second is under the limit.
    np.testing.assert_allclose(apply_constraint("max_norm", w), [[1.2, 0], [1.6, 1]], rtol=1e-6)


def test_max_norm_keras_column_test() -> None:
    columns = np.array([[0, 0, 0], [1, 0, 0], [3, 0, 0], [3, 3, 3]], dtype=np.float64).T
    expected = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [2 / math.sqrt(3)] * 3]).T
    np.testing.assert_allclose(apply_constraint("max_norm", columns), expected, rtol=1e-6)


def test_epsilon_is_added_to_the_norm() -> None:
    # w / (1e-7 + ||w||): a tiny weight is shrunk, not blown up to unit norm.
    tiny = np.array([[1e-8]])
    assert apply_constraint("unit_norm", tiny)[0, 0] == pytest.approx(1e-8 / 1.1e-7, rel=1e-12)
    # max_norm under the limit is the identity up to the same factor n/(n + 1e-7).
    w = np.array([[0.6], [0.8]])
    np.testing.assert_allclose(apply_constraint("max_norm", w), w / (1 + 1e-7), rtol=1e-15)
    np.testing.assert_array_equal(apply_constraint("unit_norm", np.zeros((3, 2))), 0)


def test_axis_choices() -> None:
    w = np.array([[3.0, 4.0], [0.0, 0.5]])
    rows = apply_constraint({"type": "max_norm", "axis": 1}, w)
    np.testing.assert_allclose(rows, [[1.2, 1.6], [0, 0.5]], rtol=1e-6)
    np.testing.assert_allclose(apply_constraint({"type": "max_norm", "axis": -1}, w), rows)
    everything = apply_constraint({"type": "unit_norm", "axis": [0, 1]}, w)
    assert np.sum(everything**2) == pytest.approx(1, rel=1e-6)


def test_conv_kernel_constrained_per_filter() -> None:
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 4, 6)) * np.array([0.1, 1, 2, 0.2, 3, 5])
    projected = apply_constraint({"type": "max_norm", "max_value": 1.5, "axis": [0, 1, 2]}, kernel)
    before = np.sqrt((kernel**2).sum(axis=(0, 1, 2)))
    after = np.sqrt((projected**2).sum(axis=(0, 1, 2)))
    np.testing.assert_allclose(after, np.minimum(before, 1.5), rtol=1e-6)
    # Each filter is only rescaled, never rotated.
    np.testing.assert_allclose(projected, kernel * (after / before), rtol=1e-12)


def test_unit_norm() -> None:
    w = np.array([[3.0, 0.0], [4.0, 2.0]])
    np.testing.assert_allclose(apply_constraint("unit_norm", w), [[0.6, 0], [0.8, 1]], rtol=1e-6)


def test_min_max_norm() -> None:
    w = np.array([[0.3, 3.0, 0.0], [0.4, 4.0, 2.0]])  # column norms 0.5, 5, 2
    strict = apply_constraint({"type": "min_max_norm", "min_value": 1, "max_value": 3}, w)
    np.testing.assert_allclose(np.linalg.norm(strict, axis=0), [1, 3, 2], rtol=1e-6)
    # rate 0.5: half-way between the norm and its clipped value: 0.75, 4, 2.
    half = apply_constraint(
        {"type": "min_max_norm", "min_value": 1, "max_value": 3, "rate": 0.5}, w
    )
    np.testing.assert_allclose(np.linalg.norm(half, axis=0), [0.75, 4, 2], rtol=1e-6)
    # Keras defaults: min 0, max 1.
    np.testing.assert_allclose(
        np.linalg.norm(apply_constraint("min_max_norm", w), axis=0), [0.5, 1, 1], rtol=1e-6
    )


def test_non_neg() -> None:
    w = np.array([[-1.0, 2.0], [0.5, -0.0]], dtype=np.float32)
    out = apply_constraint("non_neg", w)
    np.testing.assert_array_equal(out, [[0, 2], [0.5, 0]])
    assert out.dtype == np.float32


@pytest.mark.parametrize("name", ["max_norm", "unit_norm", "min_max_norm", "non_neg"])
def test_dtype_and_shape_kept(name: str) -> None:
    w = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    out = apply_constraint(name, w)
    assert out.dtype == np.float32 and out.shape == w.shape
    assert apply_constraint(name, w.astype(np.float64)).dtype == np.float64


@pytest.mark.parametrize("axis", [2, -3, [0, 0], [0, 5]])
def test_axis_that_does_not_fit_is_a_spec_error(axis) -> None:
    with pytest.raises(SpecError, match="axis"):
        apply_constraint({"type": "max_norm", "axis": axis}, np.ones((2, 3)))


# --- spellings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("max_norm", MaxNorm(type="max_norm")),
        ("MaxNorm", MaxNorm(type="max_norm")),
        (
            {"type": "max_norm", "max_value": 3, "axis": [0, 1]},
            MaxNorm(type="max_norm", max_value=3, axis=(0, 1)),
        ),
        (
            {"class_name": "MaxNorm", "config": {"max_value": 3, "axis": 1}},
            MaxNorm(type="max_norm", max_value=3, axis=1),
        ),
        (
            {"class_name": "MinMaxNorm", "config": {"rate": 0.5}},
            MinMaxNorm(type="min_max_norm", rate=0.5),
        ),
        ("min_max_norm", MinMaxNorm(type="min_max_norm")),
        ("non_neg", NonNeg(type="non_neg")),
        ("NonNeg", NonNeg(type="non_neg")),
        ("unit_norm", UnitNorm(type="unit_norm")),
        ({"type": "UnitNorm", "axis": -1}, UnitNorm(type="unit_norm", axis=-1)),
    ],
)
def test_spellings(value, expected) -> None:
    assert _Layer(kernel_constraint=value).kernel_constraint == expected
    assert parse_constraint(value) == expected


@pytest.mark.parametrize(
    ("value", "modern"),
    [
        ("maxnorm", "max_norm"),
        ("nonneg", "non_neg"),
        ("unitnorm", "unit_norm"),
        ({"type": "maxnorm", "max_value": 2}, "max_norm"),
        ({"class_name": "nonneg", "config": {}}, "non_neg"),
    ],
)
def test_keras2_names_are_errors_naming_the_modern_spelling(value, modern: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        _Layer(kernel_constraint=value)
    assert "Keras 2" in str(excinfo.value) and f"'{modern}'" in str(excinfo.value)


@pytest.mark.parametrize(
    "bad",
    [
        "max",
        "norm",
        {"type": "max_norm", "m": 2},  # Keras 1's argument name
        {"type": "max_norm", "max_value": -1},
        {"type": "min_max_norm", "rate": 2},
        {"type": "non_neg", "axis": 0},
    ],
)
def test_invalid_specs(bad) -> None:
    with pytest.raises(ValidationError):
        _Layer(kernel_constraint=bad)


# --- oracle --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras", reason="Keras 3 (the oracle extra) is not installed")


ORACLE_CASES = [
    ("MaxNorm", {}),
    ("MaxNorm", {"max_value": 0.5, "axis": 1}),
    ("MaxNorm", {"max_value": 1.0, "axis": [0, 1, 2]}),
    ("UnitNorm", {}),
    ("UnitNorm", {"axis": -1}),
    ("UnitNorm", {"axis": [0, 1]}),
    ("MinMaxNorm", {}),
    ("MinMaxNorm", {"min_value": 0.5, "max_value": 1.5, "rate": 0.3, "axis": 2}),
    ("NonNeg", {}),
]


@pytest.mark.oracle
@pytest.mark.parametrize(("class_name", "config"), ORACLE_CASES)
def test_matches_keras(keras, class_name: str, config: dict) -> None:
    rng = np.random.default_rng(2)
    w = (rng.normal(size=(3, 3, 4, 5)) * rng.uniform(0.01, 3, size=5)).astype(np.float32)
    if isinstance(config.get("axis"), int) or class_name == "NonNeg":
        w = w.reshape(9, 4, 5) if config.get("axis") == 2 else w.reshape(36, 5)
    spelled = {"class_name": class_name, "config": config}
    expected = keras.ops.convert_to_numpy(keras.constraints.get(spelled)(w))
    np.testing.assert_allclose(apply_constraint(spelled, w), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["maxnorm", "nonneg", "unitnorm"])
def test_keras3_rejects_the_keras2_names_too(keras, name: str) -> None:
    with pytest.raises(ValueError, match="Could not interpret constraint identifier"):
        keras.constraints.get(name)
