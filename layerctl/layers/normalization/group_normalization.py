"""GroupNormalization: the channels along `axis` split into `groups`, each group of each sample
standardized over its channels and every other non-batch axis, then a per-channel gamma and beta.

`groups: -1` means one group per channel (instance normalization); `groups: 1` standardizes all
of a sample, like LayerNormalization over every axis but with per-channel weights. The same in
training and inference. A mask passes through untouched (Keras's call ignores it).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, Strict, field_validator

from layerctl.constraints import Constraint
from layerctl.initializers import Initializer
from layerctl.layers.base import (
    IncompatibleShape,
    Number,
    Shape,
    SingleInputLayer,
    WeightSpec,
    format_shape,
)
from layerctl.layers.normalization.statistics import standardize, standardize_backward
from layerctl.regularizers import Regularizer


class GroupNormalization(SingleInputLayer):
    """`y = gamma · (x − mean_g) / sqrt(var_g + epsilon) + beta` with the statistics of each
    sample's group g of channels; gamma, beta (C,). Output shape: the input's."""

    type: Literal["GroupNormalization"]
    groups: Annotated[int, Strict()] = Field(
        default=32, description="Number of groups; C must be divisible by it; -1: one per channel.")
    axis: Annotated[int, Strict()] = Field(default=-1, description="The channels axis.")
    epsilon: Number = 1e-3
    center: bool = True
    scale: bool = True
    beta_initializer: Initializer = "zeros"
    gamma_initializer: Initializer = "ones"
    beta_regularizer: Regularizer | None = None
    gamma_regularizer: Regularizer | None = None
    beta_constraint: Constraint | None = None
    gamma_constraint: Constraint | None = None

    keras_class = "GroupNormalization"
    supports_masking = True

    @field_validator("groups", mode="before")
    @classmethod
    def _positive_or_minus_one(cls, value: Any) -> Any:
        if not isinstance(value, int) or isinstance(value, bool) or (value <= 0 and value != -1):
            raise ValueError(
                "Received an invalid value for argument `groups`, expected a positive integer "
                f"(or `-1` for instance normalization). Received: groups={value}")
        return value

    @field_validator("axis", mode="before")
    @classmethod
    def _single_axis(cls, value: Any) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            # Keras documents a list but fails on one (a TypeError indexing the shape)
            raise ValueError(
                f"GroupNormalization normalizes along one channels axis: `axis` must be an "
                f"integer. Received: axis={value!r}")
        return value

    # ---- shapes and weights --------------------------------------------------------------
    def _channels(self, input_shape: Shape) -> tuple[int, int, int]:
        """(axis ≥ 0, channels, groups), with Keras's checks and messages."""
        rank = len(input_shape)
        if not -rank <= self.axis < rank:
            raise IncompatibleShape(
                f"Axis {self.axis} is out of bounds for input shape {format_shape(input_shape)}. "
                f"Received: axis={self.axis}")
        channels = input_shape[self.axis]
        if channels is None:
            raise IncompatibleShape(
                f"Axis {self.axis} of input tensor should have a defined dimension but the layer "
                f"received an input with shape {format_shape(input_shape)}.")
        groups = channels if self.groups == -1 else self.groups
        if channels < groups:
            raise IncompatibleShape(
                f"Number of groups ({groups}) cannot be more than the number of channels "
                f"({channels}).")
        if channels % groups:
            # Keras's wording (the channels must be a multiple of the groups, not the reverse)
            raise IncompatibleShape(
                f"Number of groups ({groups}) must be a multiple of the number of channels "
                f"({channels}).")
        return self.axis % rank, channels, groups

    def output_shape(self, input_shape: Shape) -> Shape:
        self._channels(input_shape)
        return input_shape

    def weight_specs(self, input_shape: Shape) -> list[WeightSpec]:
        channels = (self._channels(input_shape)[1],)
        specs = []
        if self.scale:
            specs.append(WeightSpec("gamma", channels, True, self.gamma_initializer,
                                    self.gamma_regularizer, self.gamma_constraint))
        if self.center:
            specs.append(WeightSpec("beta", channels, True, self.beta_initializer,
                                    self.beta_regularizer, self.beta_constraint))
        return specs

    # ---- math ----------------------------------------------------------------------------
    def grouped_shape(self, shape: Shape) -> tuple[tuple[int, ...], tuple[int, ...], int]:
        """(the shape with the channels axis split into (groups, channels per group), the axes
        each group's statistics reduce over, the groups axis) for an input `shape`."""
        axis, channels, groups = self._channels(shape)
        grouped = (*shape[:axis], groups, channels // groups, *shape[axis + 1:])
        reduce = tuple(a for a in range(1, len(grouped)) if a != axis)
        return grouped, reduce, axis

    def _per_channel(self, vector: np.ndarray, grouped: tuple[int, ...], axis: int) -> np.ndarray:
        shape = [1] * len(grouped)
        shape[axis], shape[axis + 1] = grouped[axis], grouped[axis + 1]
        return vector.reshape(shape)

    def forward(self, weights, x, mask, training, rng):
        grouped, reduce, axis = self.grouped_shape(x.shape)
        x_hat, inv_std, _ = standardize(x.reshape(grouped), reduce, self.epsilon)
        y = x_hat
        if self.scale:
            y = y * self._per_channel(weights["gamma"], grouped, axis)
        if self.center:
            y = y + self._per_channel(weights["beta"], grouped, axis)
        return y.reshape(x.shape), (x_hat, inv_std, grouped, reduce, axis)

    def backward(self, weights, cache, dy):
        x_hat, inv_std, grouped, reduce, axis = cache
        dy_grouped = dy.reshape(grouped)
        others = tuple(a for a in range(len(grouped)) if a not in (axis, axis + 1))
        grads = {}
        dx_hat = dy_grouped
        if self.scale:
            grads["gamma"] = (dy_grouped * x_hat).sum(axis=others).reshape(-1)
            dx_hat = dy_grouped * self._per_channel(weights["gamma"], grouped, axis)
        if self.center:
            grads["beta"] = dy_grouped.sum(axis=others).reshape(-1)
        dx = standardize_backward(dx_hat, x_hat, inv_std, reduce)
        return dx.reshape(dy.shape), grads
