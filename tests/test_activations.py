"""Activations: hand-derived values, float64 gradient checks for every name, dtype and numerical
stability, pydantic field use, and (oracle) agreement with Keras 3 on the torch backend."""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest
from pydantic import ValidationError

from layerctl import activations
from layerctl.activations import ACTIVATION_NAMES, ActivationName, backward, forward
from layerctl.config import Frozen
from layerctl.errors import SpecError

E = math.e
SIGMOID_1 = 1 / (1 + math.exp(-1))
PHI_1 = 0.8413447460685429  # standard normal CDF at 1 (tables)

# (name, x, expected y), each worked out by hand from the definition.
HAND_VALUES = [
    ("linear", -2.5, -2.5),
    ("relu", -1.0, 0.0),
    ("relu", 2.0, 2.0),
    ("relu6", 7.0, 6.0),
    ("leaky_relu", -1.0, -0.2),
    ("elu", -1.0, 1 / E - 1),
    ("elu", 2.0, 2.0),
    ("selu", 1.0, 1.0507009873554805),
    ("selu", -1.0, 1.0507009873554805 * 1.6732632423543772 * (1 / E - 1)),
    ("celu", -1.0, 1 / E - 1),
    ("gelu", 1.0, PHI_1),
    ("gelu", -1.0, -(1 - PHI_1)),
    ("gelu", 0.0, 0.0),
    ("silu", 1.0, SIGMOID_1),
    ("swish", 1.0, SIGMOID_1),
    ("sigmoid", 0.0, 0.5),
    ("sigmoid", 1.0, SIGMOID_1),
    ("hard_sigmoid", 1.0, 2 / 3),  # Keras 3 formula; Keras 2's 0.2x + 0.5 would give 0.7
    ("hard_sigmoid", -4.0, 0.0),
    ("hard_sigmoid", 4.0, 1.0),
    ("log_sigmoid", 0.0, -math.log(2)),
    ("sparse_sigmoid", 0.5, 0.75),
    ("hard_silu", 1.0, 2 / 3),
    ("hard_swish", -1.0, -1 / 3),
    ("hard_silu", 4.0, 4.0),
    ("tanh", 1.0, math.tanh(1)),
    ("hard_tanh", -2.0, -1.0),
    ("hard_tanh", 0.5, 0.5),
    ("tanh_shrink", 1.0, 1 - math.tanh(1)),
    ("softplus", 0.0, math.log(2)),
    ("softsign", 1.0, 0.5),
    ("squareplus", 0.0, 1.0),  # (0 + sqrt(0 + 4)) / 2
    ("squareplus", 1.5, (1.5 + 2.5) / 2),  # sqrt(2.25 + 4) = 2.5
    ("sparse_plus", 0.0, 0.25),
    ("sparse_plus", -2.0, 0.0),
    ("sparse_plus", 3.0, 3.0),
    ("soft_shrink", 1.0, 0.5),
    ("soft_shrink", -0.2, 0.0),
    ("hard_shrink", 0.4, 0.0),
    ("hard_shrink", -0.6, -0.6),
    ("exponential", 1.0, E),
    ("mish", 1.0, math.tanh(math.log(1 + E))),
]


@pytest.mark.parametrize(("name", "x", "expected"), HAND_VALUES)
def test_hand_values(name: str, x: float, expected: float) -> None:
    assert forward(name, np.array([x]))[0] == pytest.approx(expected, rel=1e-12, abs=1e-14)


def test_softmax_family_by_hand() -> None:
    x = np.array([[1.0, 2.0, 3.0]])
    total = 1 + E + E**2
    expected = np.array([[1, E, E**2]]) / total
    np.testing.assert_allclose(forward("softmax", x), expected, rtol=1e-14)
    np.testing.assert_allclose(forward("log_softmax", x), np.log(expected), rtol=1e-14)
    # sorted 1, .8, .1, -2: support {1, .8} since 1 + 2·0.8 > 1.8 but 1 + 3·0.1 < 1.9;
    # tau = (1.8 - 1)/2 = 0.4.
    sparse = forward("sparsemax", np.array([[0.1, 1.0, -2.0, 0.8]]))
    np.testing.assert_allclose(sparse, [[0.0, 0.6, 0.0, 0.4]], atol=1e-15)


def test_softmax_acts_on_the_last_axis_and_subtracts_the_max() -> None:
    x = np.array([[[1000.0, 1001.0], [-1000.0, -999.0]]], dtype=np.float32)
    y = forward("softmax", x)
    expected = np.array([1, E]) / (1 + E)
    np.testing.assert_allclose(y[0], [expected, expected], rtol=1e-6)
    np.testing.assert_allclose(np.exp(forward("log_softmax", x)), y, rtol=1e-6)
    np.testing.assert_allclose(forward("sparsemax", x).sum(axis=-1), 1.0, rtol=1e-6)


def test_normal_cdf_matches_math_erf() -> None:
    x = np.concatenate([np.linspace(-12, 12, 4801), [-0.0, 1e-300, 8.99999, 9.0, 9.00001]])
    expected = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in x])
    np.testing.assert_allclose(activations.normal_cdf(x), expected, rtol=0, atol=5e-15)


def test_none_and_linear_are_identity() -> None:
    x = np.arange(6.0).reshape(2, 3)
    for name in (None, "linear"):
        np.testing.assert_array_equal(forward(name, x), x)
        np.testing.assert_array_equal(backward(name, x, None, x + 1), x + 1)


def test_required_names_present() -> None:
    required = {
        "linear", "relu", "sigmoid", "tanh", "softmax", "elu", "selu", "softplus", "softsign",
        "leaky_relu", "gelu", "silu", "swish", "hard_sigmoid", "hard_silu", "hard_swish",
        "exponential", "log_softmax", "relu6", "mish", "log_sigmoid", "hard_tanh",
    }  # fmt: skip
    assert required <= set(ACTIVATION_NAMES)
    assert len(set(ACTIVATION_NAMES)) == len(ACTIVATION_NAMES)


def test_aliases_are_the_same_function() -> None:
    x = np.linspace(-5, 5, 41)
    np.testing.assert_array_equal(forward("swish", x), forward("silu", x))
    np.testing.assert_array_equal(forward("hard_swish", x), forward("hard_silu", x))


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_float32_stays_float32_and_ints_become_float32(name: str) -> None:
    x = np.linspace(-4, 4, 12, dtype=np.float32).reshape(3, 4)
    y = forward(name, x)
    dx = backward(name, x, y, np.ones_like(x))
    assert y.dtype == np.float32 and dx.dtype == np.float32 and y.shape == x.shape
    assert forward(name, np.array([[-1, 0, 2]])).dtype == np.float32
    assert forward(name, x.astype(np.float64)).dtype == np.float64


@pytest.mark.parametrize("name", sorted(set(ACTIVATION_NAMES) - {"exponential"}))
def test_large_inputs_give_finite_values_without_warnings(name: str) -> None:
    x = np.array([[-1e4, -100, -30, 0, 30, 100, 1e4]], dtype=np.float32)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        y = forward(name, x)
        dx = backward(name, x, y, np.ones_like(x))
    assert np.isfinite(y).all() and np.isfinite(dx).all()


def test_saturation_values() -> None:
    x = np.array([-1e4, 1e4], dtype=np.float32)
    np.testing.assert_array_equal(forward("sigmoid", x), [0, 1])
    np.testing.assert_array_equal(forward("softplus", x), [0, 1e4])
    np.testing.assert_array_equal(forward("log_sigmoid", x), [-1e4, 0])
    np.testing.assert_array_equal(forward("gelu", x), [0, 1e4])


# --- gradient checks -------------------------------------------------------------------------

KINKS = np.array([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 6.0])


def _points_away_from_kinks(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    x = rng.uniform(-7, 7, shape)
    near = np.min(np.abs(x[..., None] - KINKS), axis=-1) < 0.05
    return np.where(near, x + 0.1, x)


def _numerical_vjp(name: str, x: np.ndarray, dy: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Σ dy · ∂y/∂x_i by central differences, one input element at a time."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = h
        grad[i] = np.sum(dy * (forward(name, x + step) - forward(name, x - step))) / (2 * h)
    return grad


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_gradient_matches_central_differences(name: str) -> None:
    rng = np.random.default_rng(7)
    x = _points_away_from_kinks(rng, (3, 6))
    if name == "sparsemax":
        # Keep every entry clear of the support boundary, where sparsemax has a kink.
        tau = (x - forward(name, x))[forward(name, x) > 0]
        assert np.min(np.abs(x[..., None] - np.unique(tau))) > 1e-4
    dy = rng.standard_normal(x.shape)
    y = forward(name, x)
    analytic = backward(name, x, y, dy)
    np.testing.assert_allclose(analytic, _numerical_vjp(name, x, dy), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(backward(name, x, None, dy), analytic, rtol=1e-15)


def test_sparsemax_gradient_with_a_wide_support() -> None:
    x = np.array([[0.3, 0.1, 0.25, -0.2, 0.05]])
    assert (forward("sparsemax", x) > 0).sum() == 4
    dy = np.array([[1.0, -2.0, 0.5, 3.0, 0.25]])
    np.testing.assert_allclose(
        backward("sparsemax", x, None, dy), _numerical_vjp("sparsemax", x, dy), atol=1e-8
    )


def test_one_sided_derivatives_at_kinks() -> None:
    zero = np.array([0.0])
    assert backward("relu", zero, None, np.ones(1))[0] == 0.0
    assert backward("hard_sigmoid", np.array([3.0]), None, np.ones(1))[0] == 0.0
    assert backward("hard_silu", np.array([3.0]), None, np.ones(1))[0] == 1.0


# --- errors and pydantic -----------------------------------------------------------------------


def test_unknown_name_is_a_spec_error_with_a_hint() -> None:
    with pytest.raises(SpecError) as excinfo:
        forward("reLu", np.zeros(2))
    assert "reLu" in str(excinfo.value) and "relu" in str(excinfo.value)
    with pytest.raises(SpecError):
        backward("glu", np.zeros(2), None, np.zeros(2))


class _Layer(Frozen):
    activation: ActivationName | None = None


def test_activation_name_as_a_pydantic_field() -> None:
    assert _Layer(activation="gelu").activation == "gelu"
    assert _Layer().activation is None
    for bad in ("Relu", "foo", "threshold", 3):
        with pytest.raises(ValidationError):
            _Layer(activation=bad)


# --- oracle ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras", reason="Keras 3 (the oracle extra) is not installed")


def _keras_sparsemax_is_fixed(keras) -> bool:
    """Keras <= 3.15.1 gets the sparsemax threshold wrong when the support has two or more
    entries (keras#23425, fixed by keras#23469): [0, .5, 1] must give [0, .25, .75]."""
    x = keras.ops.convert_to_tensor(np.array([[0.0, 0.5, 1.0]]))
    y = keras.ops.convert_to_numpy(keras.activations.sparsemax(x))
    return bool(np.allclose(y, [[0.0, 0.25, 0.75]]))


def _keras_forward(keras, name: str, x: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(keras.activations.get(name)(keras.ops.convert_to_tensor(x)))


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_forward_matches_keras(keras, name: str, dtype: type) -> None:
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-8, 8, (4, 9)), [[-40, -3, -1, -0.5, 0, 0.5, 1, 3, 40]]])
    x = np.concatenate([x, rng.uniform(-0.5, 0.5, (2, 9))]).astype(dtype)
    if name == "sparsemax" and not _keras_sparsemax_is_fixed(keras):
        # Compare only the rows whose support is a single entry, where the bug does not show.
        x = x[(forward(name, x) > 0).sum(axis=-1) == 1]
        assert len(x) >= 3
    np.testing.assert_allclose(
        forward(name, x), _keras_forward(keras, name, x), rtol=1e-6, atol=1e-6
    )


@pytest.mark.oracle
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_backward_matches_torch_autograd_through_keras(keras, name: str) -> None:
    torch = pytest.importorskip("torch", reason="the Keras oracle runs on the torch backend")
    if keras.backend.backend() != "torch":
        pytest.skip("autograd comparison needs KERAS_BACKEND=torch")
    rng = np.random.default_rng(5)
    x = _points_away_from_kinks(rng, (4, 7))
    if name == "sparsemax" and not _keras_sparsemax_is_fixed(keras):
        # Keras 3.15.1's sparsemax is wrong when the support has several entries (keras#23425):
        # compare on single-support rows there; the central-difference check covers the rest.
        x = np.concatenate([x, x * 20])
        x = x[(forward(name, x) > 0).sum(axis=-1) == 1]
        assert len(x) >= 1
    dy = rng.standard_normal(x.shape)
    x_torch = torch.tensor(x, requires_grad=True)
    (keras.activations.get(name)(x_torch) * torch.tensor(dy)).sum().backward()
    np.testing.assert_allclose(
        backward(name, x, None, dy), x_torch.grad.numpy(), rtol=1e-6, atol=1e-9
    )
