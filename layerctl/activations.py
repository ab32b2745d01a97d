"""Activation functions by Keras 3 name: forward values and their vector-Jacobian products.

This module owns the allow-list of activation names a spec may use (`ActivationName`, a
`Literal` for pydantic fields) and, for each name, a NumPy forward function written right beside
its backward (micrograd style), so one can be checked against the other at a glance. Every
function keeps the input's floating dtype (float32 in, float32 out), never overflows for large
|x| (sigmoid, softplus, log_sigmoid, mish), and uses Keras 3's default parameters
(leaky_relu slope 0.2, elu/celu alpha 1, gelu exact (erf), hard_sigmoid clip(x/6 + 1/2, 0, 1),
squareplus b 4, soft/hard_shrink threshold 0.5). softmax, log_softmax and sparsemax act on the
last axis; every other activation is element-wise. `None` and `"linear"` are the identity.

sparsemax follows Martins & Astudillo (2016), as Keras master does since keras#23469; Keras
3.15.1 and earlier compute a wrong threshold whenever two or more entries are in the support
(keras#23425: their outputs do not sum to 1).

Two Keras 3 names are left out on purpose: `glu` halves the last axis (it is not shape
preserving) and `threshold` has no default parameters, so neither works as a bare name.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Literal, get_args

import numpy as np

from layerctl.errors import SpecError, did_you_mean

ActivationName = Literal[
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "swish",
    "sigmoid", "hard_sigmoid", "log_sigmoid", "sparse_sigmoid", "hard_silu", "hard_swish",
    "tanh", "hard_tanh", "tanh_shrink", "softmax", "log_softmax", "sparsemax", "softplus",
    "softsign", "squareplus", "sparse_plus", "soft_shrink", "hard_shrink", "exponential", "mish",
]  # fmt: skip
ACTIVATION_NAMES: tuple[str, ...] = get_args(ActivationName)

Forward = Callable[["np.ndarray"], "np.ndarray"]
Backward = Callable[["np.ndarray", "np.ndarray", "np.ndarray"], "np.ndarray"]  # (x, y, dy) -> dx

# Keras 3 defaults (keras/src/activations/activations.py and the backend ops).
LEAKY_RELU_SLOPE = 0.2
ELU_ALPHA = 1.0
CELU_ALPHA = 1.0
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
SQUAREPLUS_B = 4.0
SHRINK_THRESHOLD = 0.5


# --- the standard normal CDF, for the exact gelu ----------------------------------------------
# NumPy has no erf and layerctl may not import scipy. Φ(u) - 1/2 for u = |x| in [0, 9) is stored
# as one polynomial per interval of width 1/2, interpolated at import time (Chebyshev nodes, then
# converted to powers of the local variable) from the standard library's correctly rounded
# `math.erf`: degree 11 gives about 1e-15 absolute error against math.erf, so forward and
# backward (Φ + x·φ, with φ computed exactly) agree to float64 precision. Beyond 9, Φ is 1 or 0
# to within 1e-19.
_CDF_WIDTH = 0.5
_CDF_TOP = 9.0
_CDF_DEGREE = 11


@functools.cache
def _cdf_table() -> np.ndarray:
    """Built on first use (not at import: `validate` and `shapes` never need it)."""
    from numpy.polynomial import chebyshev

    pieces = int(_CDF_TOP / _CDF_WIDTH)
    table = np.zeros((_CDF_DEGREE + 1, pieces))
    for k in range(pieces):
        middle = (k + 0.5) * _CDF_WIDTH

        def half_erf(t: np.ndarray, middle: float = middle) -> np.ndarray:
            u = middle + 0.5 * _CDF_WIDTH * t
            return np.array([0.5 * math.erf(v / math.sqrt(2.0)) for v in u])

        powers = chebyshev.cheb2poly(chebyshev.chebinterpolate(half_erf, _CDF_DEGREE))
        table[: len(powers), k] = powers
    return table




def normal_cdf(x: np.ndarray) -> np.ndarray:
    """Φ(x) = (1 + erf(x/√2))/2, vectorized, to about 1e-15 absolute error."""
    # Clamped so that the polynomial is never evaluated far outside its interval (overflow).
    u = np.minimum(np.abs(x), _CDF_TOP)
    piece = np.minimum((u * (1 / _CDF_WIDTH)).astype(np.intp), _cdf_table().shape[1] - 1)
    t = (u - (piece * _CDF_WIDTH + _CDF_WIDTH / 2).astype(x.dtype)) * (2 / _CDF_WIDTH)
    table = _cdf_table().astype(x.dtype, copy=False)
    half = np.take(table[-1], piece)
    for row in table[-2::-1]:  # Horner over the polynomial degree, not over elements
        half *= t
        half += np.take(row, piece)
    half = np.where(u >= _CDF_TOP, x.dtype.type(0.5), half)
    return 0.5 + np.copysign(half, x)


def _normal_pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))


# --- forward / backward pairs ------------------------------------------------------------------


def _linear(x):
    return x


def _linear_grad(x, y, dy):
    return dy


def _relu(x):
    return np.maximum(x, 0)


def _relu_grad(x, y, dy):
    return dy * (x > 0)


def _relu6(x):
    return np.clip(x, 0, 6)


def _relu6_grad(x, y, dy):
    return dy * ((x > 0) & (x < 6))


def _leaky_relu(x):
    return np.maximum(x, LEAKY_RELU_SLOPE * x)


def _leaky_relu_grad(x, y, dy):
    return dy * np.where(x > 0, x.dtype.type(1), x.dtype.type(LEAKY_RELU_SLOPE))


def _elu(x, alpha=ELU_ALPHA):
    # expm1 of the negative part only: the unused branch must not overflow for large x.
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def _elu_grad(x, y, dy, alpha=ELU_ALPHA):
    return dy * np.where(x > 0, x.dtype.type(1), alpha * np.exp(np.minimum(x, 0)))


def _selu(x):
    return SELU_SCALE * _elu(x, SELU_ALPHA)


def _selu_grad(x, y, dy):
    return SELU_SCALE * _elu_grad(x, None, dy, SELU_ALPHA)


def _celu(x):
    return np.maximum(x, 0) + CELU_ALPHA * np.expm1(np.minimum(x, 0) / CELU_ALPHA)


def _celu_grad(x, y, dy):
    return dy * np.where(x > 0, x.dtype.type(1), np.exp(np.minimum(x, 0) / CELU_ALPHA))


def _gelu(x):
    return x * normal_cdf(x)


def _gelu_grad(x, y, dy):
    return dy * (normal_cdf(x) + x * _normal_pdf(x))


def _sigmoid(x):
    # exp(-|x|) lies in (0, 1]: no overflow, and the two branches are the same function.
    e = np.exp(-np.abs(x))
    r = 1 / (1 + e)
    return np.where(x >= 0, r, e * r)


def _sigmoid_grad(x, y, dy):
    return dy * y * (1 - y)


def _silu(x):
    return x * _sigmoid(x)


def _silu_grad(x, y, dy):
    s = _sigmoid(x)
    return dy * s * (1 + x * (1 - s))


def _hard_sigmoid(x):
    return np.clip(x / 6 + 0.5, 0, 1)


def _hard_sigmoid_grad(x, y, dy):
    return dy * ((x > -3) & (x < 3)) / 6


def _hard_silu(x):
    return x * _hard_sigmoid(x)


def _hard_silu_grad(x, y, dy):
    inside = (x > -3) & (x < 3)
    return dy * np.where(inside, (2 * x + 3) / 6, (x >= 3).astype(x.dtype))


def _softplus(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _softplus_grad(x, y, dy):
    return dy * _sigmoid(x)


def _log_sigmoid(x):
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


def _log_sigmoid_grad(x, y, dy):
    return dy * _sigmoid(-x)


def _sparse_sigmoid(x):
    return np.clip(0.5 * (x + 1), 0, 1)


def _sparse_sigmoid_grad(x, y, dy):
    return dy * ((x > -1) & (x < 1)) * 0.5


def _tanh(x):
    return np.tanh(x)


def _tanh_grad(x, y, dy):
    return dy * (1 - y * y)


def _hard_tanh(x):
    return np.clip(x, -1, 1)


def _hard_tanh_grad(x, y, dy):
    return dy * ((x > -1) & (x < 1))


def _tanh_shrink(x):
    return x - np.tanh(x)


def _tanh_shrink_grad(x, y, dy):
    return dy * np.tanh(x) ** 2


def _softmax(x):
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def _softmax_grad(x, y, dy):
    return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))


def _log_softmax(x):
    shifted = x - np.max(x, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def _log_softmax_grad(x, y, dy):
    return dy - np.exp(y) * np.sum(dy, axis=-1, keepdims=True)


def _sparsemax(x):
    # Martins & Astudillo (2016): project onto the simplex; the support is the k largest entries
    # with 1 + k·z_(k) > z_(1) + ... + z_(k) (z sorted in decreasing order).
    z = -np.sort(-x, axis=-1)
    cumulative = np.cumsum(z, axis=-1)
    rank = np.arange(1, x.shape[-1] + 1, dtype=x.dtype)
    k = np.sum(1 + rank * z > cumulative, axis=-1, keepdims=True)
    tau = (np.take_along_axis(cumulative, k - 1, axis=-1) - 1) / k.astype(x.dtype)
    return np.maximum(x - tau, 0)


def _sparsemax_grad(x, y, dy):
    support = y > 0
    mean_dy = np.sum(dy * support, axis=-1, keepdims=True) / np.sum(support, axis=-1, keepdims=True)
    return support * (dy - mean_dy.astype(dy.dtype, copy=False))


def _softsign(x):
    return x / (1 + np.abs(x))


def _softsign_grad(x, y, dy):
    return dy / (1 + np.abs(x)) ** 2


def _squareplus(x):
    # hypot(x, √b) = sqrt(x² + b) without squaring x, so no overflow.
    return (x + np.hypot(x, x.dtype.type(math.sqrt(SQUAREPLUS_B)))) / 2


def _squareplus_grad(x, y, dy):
    return dy * (1 + x / np.hypot(x, x.dtype.type(math.sqrt(SQUAREPLUS_B)))) / 2


def _sparse_plus(x):
    return np.where(x <= -1, 0, np.where(x < 1, (x + 1) ** 2 / 4, x)).astype(x.dtype)


def _sparse_plus_grad(x, y, dy):
    return dy * np.clip((x + 1) / 2, 0, 1)


def _soft_shrink(x):
    return np.sign(x) * np.maximum(np.abs(x) - SHRINK_THRESHOLD, 0)


def _soft_shrink_grad(x, y, dy):
    return dy * (np.abs(x) > SHRINK_THRESHOLD)


def _hard_shrink(x):
    return np.where(np.abs(x) > SHRINK_THRESHOLD, x, 0).astype(x.dtype)


def _hard_shrink_grad(x, y, dy):
    return dy * (np.abs(x) > SHRINK_THRESHOLD)


def _exponential(x):
    return np.exp(x)


def _exponential_grad(x, y, dy):
    return dy * y


def _mish(x):
    return x * np.tanh(_softplus(x))


def _mish_grad(x, y, dy):
    t = np.tanh(_softplus(x))
    return dy * (t + x * (1 - t * t) * _sigmoid(x))


_FUNCTIONS: dict[str, tuple[Forward, Backward]] = {
    "linear": (_linear, _linear_grad),
    "relu": (_relu, _relu_grad),
    "relu6": (_relu6, _relu6_grad),
    "leaky_relu": (_leaky_relu, _leaky_relu_grad),
    "elu": (_elu, _elu_grad),
    "selu": (_selu, _selu_grad),
    "celu": (_celu, _celu_grad),
    "gelu": (_gelu, _gelu_grad),
    "silu": (_silu, _silu_grad),
    "swish": (_silu, _silu_grad),
    "sigmoid": (_sigmoid, _sigmoid_grad),
    "hard_sigmoid": (_hard_sigmoid, _hard_sigmoid_grad),
    "log_sigmoid": (_log_sigmoid, _log_sigmoid_grad),
    "sparse_sigmoid": (_sparse_sigmoid, _sparse_sigmoid_grad),
    "hard_silu": (_hard_silu, _hard_silu_grad),
    "hard_swish": (_hard_silu, _hard_silu_grad),
    "tanh": (_tanh, _tanh_grad),
    "hard_tanh": (_hard_tanh, _hard_tanh_grad),
    "tanh_shrink": (_tanh_shrink, _tanh_shrink_grad),
    "softmax": (_softmax, _softmax_grad),
    "log_softmax": (_log_softmax, _log_softmax_grad),
    "sparsemax": (_sparsemax, _sparsemax_grad),
    "softplus": (_softplus, _softplus_grad),
    "softsign": (_softsign, _softsign_grad),
    "squareplus": (_squareplus, _squareplus_grad),
    "sparse_plus": (_sparse_plus, _sparse_plus_grad),
    "soft_shrink": (_soft_shrink, _soft_shrink_grad),
    "hard_shrink": (_hard_shrink, _hard_shrink_grad),
    "exponential": (_exponential, _exponential_grad),
    "mish": (_mish, _mish_grad),
}
assert set(_FUNCTIONS) == set(ACTIVATION_NAMES)


def _lookup(name: str | None) -> tuple[Forward, Backward]:
    try:
        return _FUNCTIONS["linear" if name is None else name]
    except KeyError:
        raise SpecError(
            f"unknown activation {name!r}", hint=did_you_mean(str(name), ACTIVATION_NAMES)
        ) from None


def _as_float(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)


def forward(name: str | None, x: np.ndarray) -> np.ndarray:
    """y = activation(x), same shape and floating dtype as x (integers become float32)."""
    return _lookup(name)[0](_as_float(x))


def backward(name: str | None, x: np.ndarray, y: np.ndarray | None, dy: np.ndarray) -> np.ndarray:
    """dx = dy · ∂y/∂x (a vector-Jacobian product); `y` is the saved forward output, or None to
    recompute it. At kinks (relu at 0, hard_sigmoid at ±3, …) the derivative is one-sided."""
    forward_fn, backward_fn = _lookup(name)
    x = _as_float(x)
    if y is None:
        y = forward_fn(x)
    return backward_fn(x, np.asarray(y), np.asarray(dy))


# --- parameterised forms, for the activation layers (ELU's `alpha`) ----------------------------


def elu(x: np.ndarray, alpha: float = ELU_ALPHA) -> np.ndarray:
    """x for x > 0, alpha · (exp(x) − 1) otherwise, in x's dtype."""
    return _elu(x, x.dtype.type(alpha))


def elu_backward(x: np.ndarray, dy: np.ndarray, alpha: float = ELU_ALPHA) -> np.ndarray:
    return _elu_grad(x, None, dy, dy.dtype.type(alpha))
