"""UnitNormalization: each sample scaled to unit L2 norm over `axis`.

`y = x · min(1/sqrt(Σ x²), 1e12)`, the sum over the axes in `axis` (Keras's `ops.normalize`
with order 2 and epsilon 1e-12: a norm below 1e-12 is treated as 1e-12, so zeros stay zeros).
No weights; the same in training and inference; a mask passes through.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from layerctl.layers.base import Shape, SingleInputLayer, format_shape
from layerctl.layers.normalization.layer_normalization import Axis
from layerctl.layers.normalization.statistics import axis_argument, positive_axes

NORM_EPSILON = 1e-12  # the smallest norm Keras divides by


class UnitNormalization(SingleInputLayer):
    """x / max(‖x‖₂, 1e-12) over `axis` (an int or a list of axes). Output shape: the input's."""

    type: Literal["UnitNormalization"]
    axis: Axis = Field(default=-1, description="The axis or axes to normalize across.")

    keras_class = "UnitNormalization"
    supports_masking = True

    @field_validator("axis", mode="before")
    @classmethod
    def _axis_is_int_or_list(cls, value: Any) -> Any:
        return axis_argument(
            value, "Invalid value for `axis` argument: expected an int or a list/tuple of ints. "
            "Received: axis={axis}")

    def normalized_axes(self, input_shape: Shape) -> tuple[int, ...]:
        return positive_axes(self.axis, len(input_shape), lambda a: (
            f"Axis {self.axis} is out of bounds for input shape {format_shape(input_shape)}."))

    def output_shape(self, input_shape: Shape) -> Shape:
        self.normalized_axes(input_shape)
        return input_shape

    def forward(self, weights, x, mask, training, rng):
        axes = self.normalized_axes(x.shape)
        square_sum = np.square(x).sum(axis=axes, keepdims=True)
        floor = x.dtype.type(NORM_EPSILON**2)
        inv_norm = 1.0 / np.sqrt(np.maximum(square_sum, floor))  # = min(rsqrt(Σx²), 1/ε)
        return x * inv_norm, (x, inv_norm, square_sum > floor, axes)

    def backward(self, weights, cache, dy):
        x, inv_norm, above_floor, axes = cache
        # y = x · n with n = (Σx²)^(−1/2): dx = n · dy − x · n³ · Σ(dy · x); below the floor n is
        # a constant and dx = n · dy
        inner = (dy * x).sum(axis=axes, keepdims=True) * np.where(above_floor, inv_norm**3, 0)
        return inv_norm * dy - x * inner, {}
