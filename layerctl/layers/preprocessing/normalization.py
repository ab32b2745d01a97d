"""Normalization: `y = (x − mean) / max(sqrt(variance), 1e-7)` per index of the kept axes.

As in Keras 3, `axis` names the axes that keep their own statistics (default −1, the features;
`null` for one scalar mean and variance); every other axis is reduced. The statistics are either
given (`mean` and `variance`, broadcast onto the kept axes from the right; the layer then has no
weights) or non-trainable weights `mean`, `variance` (the kept axes' shape) and `count` (a
scalar), initialised to 0, 1, 0 and set from the training data by `layerctl train` when
`adapt: true` (layerctl's spelling of Keras's `layer.adapt(data)`; see
`layerctl.training.adapt`). An un-adapted layer computes with 0 and 1, as Keras's does.
`invert` applies the inverse map, `mean + x · max(sqrt(variance), 1e-7)`. The mask passes on.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field, Strict, model_validator

from layerctl.layers.base import (
    IncompatibleShape,
    Number,
    Shape,
    SingleInputLayer,
    WeightSpec,
    format_shape,
)

EPSILON = 1e-7  # Keras's backend.epsilon(): the smallest standard deviation divided by
Values = Number | list[Number] | list[list[Number]] | list[list[list[Number]]]
StrictInt = Annotated[int, Strict()]


def _tuple_text(values: tuple) -> str:
    return f"({values[0]},)" if len(values) == 1 else str(values)


class Normalization(SingleInputLayer):
    """Shift and scale inputs to mean 0 and variance 1 with fixed or adapted statistics."""

    type: Literal["Normalization"]
    axis: StrictInt | list[StrictInt] | None = -1
    mean: Values | None = None
    variance: Values | None = None
    invert: bool = False
    adapt: bool = Field(
        default=False, description="layerctl: compute mean and variance from the training data "
        "before the first step (Keras: `layer.adapt(data)`).")

    keras_class = "Normalization"
    supports_masking = True

    @model_validator(mode="after")
    def _check_statistics(self) -> Normalization:
        if (self.mean is None) != (self.variance is None):
            raise ValueError("When setting values directly, both `mean` and `variance` must be "
                             f"set. Received: mean={self.mean} and variance={self.variance}")
        if self.mean is None:
            return self
        mean_shape, variance_shape = np.shape(self.mean), np.shape(self.variance)
        if mean_shape != variance_shape:
            raise ValueError("When setting values directly, `mean` and `variance` must have the "
                             f"same shape. Received: mean shape {mean_shape} and variance shape "
                             f"{variance_shape}")
        if len(mean_shape) > len(self.axes()):
            raise ValueError("The rank of `mean` must be less than or equal to the number of "
                             f"axes ({len(self.axes())}). Received: mean shape {mean_shape} for "
                             f"axis {_tuple_text(self.axes())}")
        if self.adapt:
            raise ValueError("`adapt: true` computes `mean` and `variance` from the training "
                             "data: give them, or adapt, not both")
        return self

    # ---- axes and shapes -----------------------------------------------------------------
    def axes(self) -> tuple[int, ...]:
        """`axis` as Keras stores it: a tuple (empty for None)."""
        if self.axis is None:
            return ()
        return (self.axis,) if isinstance(self.axis, int) else tuple(self.axis)

    def kept_axes(self, rank: int) -> tuple[int, ...]:
        """The axes with their own statistics, non-negative and sorted."""
        return tuple(sorted(a % rank for a in self.axes()))

    def reduced_axes(self, rank: int) -> tuple[int, ...]:
        kept = self.kept_axes(rank)
        return tuple(a for a in range(rank) if a not in kept)

    def output_shape(self, input_shape: Shape) -> Shape:
        rank = len(input_shape)
        if any(not -rank <= a < rank for a in self.axes()):
            raise IncompatibleShape("All `axis` values must be in the range [-ndim, ndim). "
                                    f"Received inputs with ndim={rank}, while axis="
                                    f"{_tuple_text(self.axes())}")
        for a in self.kept_axes(rank):
            if input_shape[a] is None:
                raise IncompatibleShape(
                    "All `axis` values to be kept must have a known shape. Received axis="
                    f"{_tuple_text(self.axes())}, inputs.shape={format_shape(input_shape)}, "
                    f"with unknown axis at index {a}")
        if self.mean is not None:
            self.given_statistics(input_shape, np.float64)  # raises when mean does not broadcast
        return input_shape

    def statistics_shape(self, input_shape: Shape) -> tuple[int, ...]:
        return tuple(input_shape[a] for a in self.kept_axes(len(input_shape)))

    def weight_specs(self, input_shape: Shape) -> list[WeightSpec]:
        if self.mean is not None:
            return []
        shape = self.statistics_shape(input_shape)
        return [WeightSpec("mean", shape, False, "zeros"),
                WeightSpec("variance", shape, False, "ones"),
                WeightSpec("count", (), False, "zeros")]

    def broadcast_shape(self, input_shape: Shape) -> list[int]:
        kept = self.kept_axes(len(input_shape))
        return [input_shape[a] if a in kept else 1 for a in range(len(input_shape))]

    def given_statistics(self, input_shape: Shape, dtype) -> tuple[np.ndarray, np.ndarray]:
        """The given mean and variance aligned with the kept axes from the right, as Keras's
        build() aligns them, then broadcast to their shape."""
        target = self.broadcast_shape(input_shape)
        kept = self.kept_axes(len(input_shape))
        arrays = []
        for value in (self.mean, self.variance):
            array = np.asarray(value, dtype)
            expanded = [1] * len(input_shape)
            for i in range(1, array.ndim + 1):
                expanded[kept[-i]] = array.shape[-i]
            try:
                arrays.append(np.broadcast_to(array.reshape(expanded), target))
            except ValueError:
                raise IncompatibleShape(
                    f"`mean` and `variance` of shape {array.shape} cannot be broadcast to the "
                    f"kept axes' shape {self.statistics_shape(input_shape)} (axis="
                    f"{_tuple_text(self.axes())}, inputs.shape={format_shape(input_shape)})"
                ) from None
        return arrays[0], arrays[1]

    # ---- math ----------------------------------------------------------------------------
    def _statistics(self, weights, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.mean is not None:
            return self.given_statistics(x.shape, x.dtype)
        shape = self.broadcast_shape(x.shape)
        return (weights["mean"].astype(x.dtype, copy=False).reshape(shape),
                weights["variance"].astype(x.dtype, copy=False).reshape(shape))

    def forward(self, weights, x, mask, training, rng):
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32)
        mean, variance = self._statistics(weights, x)
        std = np.maximum(np.sqrt(variance), x.dtype.type(EPSILON))
        y = mean + x * std if self.invert else (x - mean) / std
        return y, std

    def backward(self, weights, cache, dy):
        std = cache
        return (dy * std if self.invert else dy / std), {}
