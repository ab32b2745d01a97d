"""Activation layers with arguments: ReLU, LeakyReLU, PReLU (a learned slope), ELU, Softmax.

Each follows its Keras 3 class (keras/src/layers/activations/): the same arguments, defaults and
argument messages, output shape = input shape, and the mask passed on. Softmax also reads the
mask, as Keras does: masked logits become −1e9 before the softmax and masked outputs become 0,
the mask broadcast against the input by NumPy's (and Keras's) rule, aligned from the last axis.
At kinks the derivative is the one Keras computes on the torch backend (relu's is 0 at 0).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import field_validator, model_validator

from layerctl.activations import elu, elu_backward
from layerctl.constraints import Constraint
from layerctl.errors import DataError
from layerctl.initializers import Initializer
from layerctl.layers.base import (
    IncompatibleShape,
    Number,
    PositiveInt,
    Shape,
    SingleInputLayer,
    WeightSpec,
    format_shape,
)
from layerctl.regularizers import Regularizer

MASKED_LOGIT = -1e9  # Keras's `_large_negative_number` for float32 and float64


def _relu_argument(argument: str, value: Any, none_allowed: bool = False) -> Any:
    """Keras's checks of ReLU's arguments, with its wording (the value as written)."""
    if value is None and none_allowed:
        return value
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                         and value < 0):
        rule = "cannot be " + ("a negative value" if none_allowed else "None or a negative value")
        raise ValueError(f"{argument} of a ReLU layer {rule}. Received: {argument}={value}")
    return value


class _ActivationLayer(SingleInputLayer):
    """Output shape = input shape; the mask is passed on."""

    supports_masking = True


class ReLU(_ActivationLayer):
    """f(x) = min(x, max_value) for x > threshold, negative_slope · (x − threshold) otherwise.

    max_value None means no upper bound; with the defaults this is max(x, 0).
    """

    type: Literal["ReLU"]
    max_value: Number | None = None
    negative_slope: Number = 0.0
    threshold: Number = 0.0

    keras_class = "ReLU"

    @field_validator("max_value", mode="before")
    @classmethod
    def _max_value(cls, value: Any) -> Any:
        return _relu_argument("max_value", value, none_allowed=True)

    @field_validator("negative_slope", "threshold", mode="before")
    @classmethod
    def _slope_and_threshold(cls, value: Any, info) -> Any:
        return _relu_argument(info.field_name, value)

    def computes_leaky_relu(self) -> bool:
        """Whether Keras computes this case as leaky_relu (its gradient at 0 is the slope)."""
        return self.negative_slope != 0 and self.max_value is None and self.threshold == 0

    def forward(self, weights, x, mask, training, rng):
        if self.computes_leaky_relu():
            return np.where(x >= 0, x, x * x.dtype.type(self.negative_slope)), x
        kept = np.where(x > self.threshold, x, x.dtype.type(0))
        if self.max_value is not None:
            kept = np.minimum(kept, x.dtype.type(self.max_value))
        if self.negative_slope != 0:
            below = np.maximum(x.dtype.type(self.threshold) - x, 0)
            kept = kept - x.dtype.type(self.negative_slope) * below
        return kept, x

    def backward(self, weights, cache, dy):
        x = cache
        slope = dy.dtype.type(self.negative_slope)
        if self.computes_leaky_relu():
            return dy * np.where(x > 0, dy.dtype.type(1), slope), {}
        passes = x > self.threshold
        if self.max_value is not None:
            # Keras on torch: relu6 (threshold 0, max 6) is open at 6, a clip is closed
            relu6 = self.threshold == 0 and self.max_value == 6
            passes &= (x < self.max_value) if relu6 else (x <= self.max_value)
        gain = passes.astype(dy.dtype)
        if self.negative_slope != 0:
            gain += slope * (x < self.threshold)
        return dy * gain, {}


class LeakyReLU(_ActivationLayer):
    """f(x) = x for x ≥ 0, negative_slope · x otherwise (Keras 3's default slope 0.3).

    Keras 3 still accepts the deprecated `alpha` (it overrides `negative_slope`); so does
    layerctl, storing it as `negative_slope`.
    """

    type: Literal["LeakyReLU"]
    negative_slope: Number = 0.3

    keras_class = "LeakyReLU"

    @model_validator(mode="before")
    @classmethod
    def _legacy_alpha(cls, data: Any) -> Any:
        if isinstance(data, dict) and "alpha" in data:
            data = dict(data)
            data["negative_slope"] = data.pop("alpha")
        return data

    @field_validator("negative_slope", mode="before")
    @classmethod
    def _slope(cls, value: Any) -> Any:
        if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                             and value < 0):
            raise ValueError("The negative_slope value of a Leaky ReLU layer cannot be None or "
                             f"negative value. Expected a float. Received: negative_slope={value}")
        return value

    def forward(self, weights, x, mask, training, rng):
        return np.where(x >= 0, x, x * x.dtype.type(self.negative_slope)), x

    def backward(self, weights, cache, dy):
        return dy * np.where(cache > 0, dy.dtype.type(1), dy.dtype.type(self.negative_slope)), {}


class PReLU(_ActivationLayer):
    """f(x) = x for x ≥ 0, alpha · x otherwise, with a learned `alpha` per input entry.

    alpha has the input's shape without the batch axis, with 1 on each of `shared_axes` (axis
    numbers counting the batch axis as 0), so one slope serves all entries along those axes.
    """

    type: Literal["PReLU"]
    alpha_initializer: Initializer = "zeros"
    alpha_regularizer: Regularizer | None = None
    alpha_constraint: Constraint | None = None
    shared_axes: list[PositiveInt] | None = None

    keras_class = "PReLU"

    @field_validator("shared_axes", mode="before")
    @classmethod
    def _one_axis(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) and not isinstance(value, bool) else value

    def _alpha_shape(self, input_shape: Shape) -> tuple[int, ...]:
        shared = set(self.shared_axes or ())
        bad = sorted(a for a in shared if a >= len(input_shape))
        if bad:
            raise IncompatibleShape(f"shared_axes {bad} are not axes of an input of rank "
                                    f"{len(input_shape)}")
        shape = [1 if axis in shared else size for axis, size in enumerate(input_shape)][1:]
        if None in shape:
            raise IncompatibleShape(
                "PReLU needs a known size on every axis it does not share: "
                f"input shape {format_shape(input_shape)}, shared_axes={self.shared_axes}")
        return tuple(shape)

    def output_shape(self, input_shape: Shape) -> Shape:
        self._alpha_shape(input_shape)
        return input_shape

    def weight_specs(self, input_shape: Shape) -> list[WeightSpec]:
        return [WeightSpec("alpha", self._alpha_shape(input_shape), True,
                           self.alpha_initializer, self.alpha_regularizer,
                           self.alpha_constraint)]

    def forward(self, weights, x, mask, training, rng):
        alpha = weights["alpha"].astype(x.dtype, copy=False)
        negative = np.minimum(x, 0)
        return np.maximum(x, 0) + alpha * negative, (x, negative, alpha)

    def backward(self, weights, cache, dy):
        x, negative, alpha = cache
        d_alpha = np.sum(dy * negative, axis=0)
        shared = tuple(i for i, size in enumerate(alpha.shape) if size == 1)
        d_alpha = np.sum(d_alpha, axis=shared, keepdims=True) if shared else d_alpha
        dx = dy * np.where(x > 0, dy.dtype.type(1), np.where(x < 0, alpha, dy.dtype.type(0)))
        return dx, {"alpha": d_alpha.reshape(alpha.shape)}


class ELU(_ActivationLayer):
    """f(x) = x for x > 0, alpha · (exp(x) − 1) otherwise."""

    type: Literal["ELU"]
    alpha: Number = 1.0

    keras_class = "ELU"

    def forward(self, weights, x, mask, training, rng):
        return elu(x, self.alpha), x

    def backward(self, weights, cache, dy):
        return elu_backward(cache, dy, self.alpha), {}


class Softmax(_ActivationLayer):
    """exp(x) / Σ exp(x) over `axis` (an int, or a list of axes normalised together)."""

    type: Literal["Softmax"]
    axis: int | list[int] = -1

    keras_class = "Softmax"
    reads_mask = True

    @field_validator("axis", mode="before")
    @classmethod
    def _integers(cls, value: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(a, int) and not isinstance(a, bool) for a in items):
            raise ValueError(f"`axis` must be an integer or a list of integers. "
                             f"Received: axis={value}")
        return value

    def normalized_axes(self, rank: int) -> tuple[int, ...]:
        """The softmax axes as non-negative numbers, for an input of rank `rank`."""
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        return tuple(a % rank for a in axes)

    def output_shape(self, input_shape: Shape) -> Shape:
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        rank = len(input_shape)
        in_range = all(-rank <= a < rank for a in axes)
        if not in_range or len(set(self.normalized_axes(rank))) < len(axes):
            raise IncompatibleShape(f"axis={self.axis} is out of range or repeated for an "
                                    f"input of rank {rank}")
        return input_shape

    def forward(self, weights, x, mask, training, rng):
        axes = self.normalized_axes(x.ndim)
        if mask is not None:
            _check_broadcastable(mask, x)
            x = np.where(mask, x, x.dtype.type(MASKED_LOGIT))
        e = np.exp(x - np.max(x, axis=axes, keepdims=True))
        y = e / np.sum(e, axis=axes, keepdims=True)
        out = y if mask is None else np.where(mask, y, y.dtype.type(0))
        return out, (y, mask, axes)

    def backward(self, weights, cache, dy):
        y, mask, axes = cache
        if mask is not None:
            dy = np.where(mask, dy, dy.dtype.type(0))
        dx = y * (dy - np.sum(dy * y, axis=axes, keepdims=True))
        return (dx if mask is None else np.where(mask, dx, dx.dtype.type(0))), {}


def _check_broadcastable(mask: np.ndarray, x: np.ndarray) -> None:
    """Keras's Softmax mask check: aligned from the last axis, each mask axis 1 or equal."""
    if mask.ndim > x.ndim or any(m not in (1, i) for m, i in
                                 zip(mask.shape[::-1], x.shape[::-1], strict=False)):
        rule = (" and must not have more dimensions." if mask.ndim > x.ndim else
                ". Each mask dimension must be 1 or match the corresponding input dimension.")
        raise DataError(f"The `mask` must be broadcastable to `inputs`{rule} Received: "
                        f"inputs.shape={x.shape}, mask.shape={mask.shape}")
