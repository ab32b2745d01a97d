"""LayerNormalization: each sample standardized over `axis`, then scaled and shifted.

`y = gamma · (x − mean) / sqrt(var + epsilon) + beta`, mean and (biased) variance over the
axes in `axis` of each sample, the same in training and inference. `gamma` and `beta` span the
normalized axes. Keras 3's deprecated `rms_scaling=True` divides the *uncentred* x by the same
standard deviation, `y = gamma · x / sqrt(var + epsilon)`, and then has a `gamma` even with
`scale=False` and never a `beta`. A mask passes through untouched (Keras's call ignores it).
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
from layerctl.layers.normalization.statistics import (
    as_rows,
    axis_argument,
    from_rows,
    mean_of_product,
    positive_axes,
    standardize,
    standardize_backward,
)
from layerctl.regularizers import Regularizer

Axis = Annotated[int, Strict()] | list[Annotated[int, Strict()]]
ROWS = (1,)  # the axis of features in `as_rows`


class LayerNormalization(SingleInputLayer):
    """Per-sample standardization over `axis` (an int or a list of axes), then gamma and beta.

    gamma, beta: the input's sizes along `axis`, in the order of `sorted(axis)` (Keras's layout:
    a list mixing negative and non-negative axes is laid out in that order and read in flat
    order, as Keras reads it). Output shape: the input's.
    """

    type: Literal["LayerNormalization"]
    axis: Axis = Field(default=-1, description="The axis or axes to normalize across.")
    epsilon: Number = 1e-3
    center: bool = True
    scale: bool = True
    rms_scaling: bool = Field(
        default=False, description="Deprecated in Keras 3: divide x (not x − mean) by the "
        "standard deviation; gamma only.")
    beta_initializer: Initializer = "zeros"
    gamma_initializer: Initializer = "ones"
    beta_regularizer: Regularizer | None = None
    gamma_regularizer: Regularizer | None = None
    beta_constraint: Constraint | None = None
    gamma_constraint: Constraint | None = None

    keras_class = "LayerNormalization"
    supports_masking = True

    @field_validator("axis", mode="before")
    @classmethod
    def _axis_is_int_or_list(cls, value: Any) -> Any:
        return axis_argument(
            value, "Expected an int or a list/tuple of ints for the argument 'axis', "
            "but received: {axis!r}")

    # ---- shapes and weights --------------------------------------------------------------
    @property
    def has_gamma(self) -> bool:
        return self.scale or self.rms_scaling

    @property
    def has_beta(self) -> bool:
        return self.center and not self.rms_scaling

    def normalized_axes(self, input_shape: Shape) -> tuple[int, ...]:
        return positive_axes(self.axis, len(input_shape), lambda a: (
            f"Axis {a} is out of bounds for input shape {format_shape(input_shape)}. "
            f"Received: axis={self.axis}"))

    def _weight_shape(self, input_shape: Shape) -> tuple[int | None, ...]:
        axes = [self.axis] if isinstance(self.axis, int) else sorted(self.axis)
        return tuple(input_shape[a] for a in axes)

    def output_shape(self, input_shape: Shape) -> Shape:
        self.normalized_axes(input_shape)
        shape = self._weight_shape(input_shape)
        if (self.has_gamma or self.has_beta) and None in shape:
            weight = "gamma" if self.has_gamma else "beta"
            raise IncompatibleShape(
                "Shapes used to initialize variables must be fully-defined (no `None` "
                f"dimensions). Received: shape={format_shape(shape)} for variable "
                f"path='{self.name}/{weight}'")
        return input_shape

    def weight_specs(self, input_shape: Shape) -> list[WeightSpec]:
        shape = self._weight_shape(input_shape)
        specs = []
        if self.has_gamma:
            specs.append(WeightSpec("gamma", shape, True, self.gamma_initializer,
                                    self.gamma_regularizer, self.gamma_constraint))
        if self.has_beta:
            specs.append(WeightSpec("beta", shape, True, self.beta_initializer,
                                    self.beta_regularizer, self.beta_constraint))
        return specs

    # ---- math ----------------------------------------------------------------------------
    # Computed on `as_rows(x)`: one row per sample (and per position outside `axis`), the
    # normalized axes flattened in order, so gamma and beta are flat vectors (Keras's reshape).
    def forward(self, weights, x, mask, training, rng):
        axes = self.normalized_axes(x.shape)
        x_hat, inv_std, mean = standardize(as_rows(x, axes), ROWS, self.epsilon)
        # rms_scaling scales x itself: x · inv_std = x̂ + mean · inv_std
        scaled = x_hat + mean * inv_std if self.rms_scaling else x_hat
        y = scaled
        if self.has_gamma:
            y = scaled * weights["gamma"].reshape(-1)
        if self.has_beta:
            beta = weights["beta"].reshape(-1)
            y = y + beta if y is scaled else np.add(y, beta, out=y)
        return from_rows(y, x.shape, axes), (x_hat, inv_std, scaled, axes)

    def backward(self, weights, cache, dy):
        x_hat, inv_std, scaled, axes = cache
        dy_rows = as_rows(dy, axes)
        grads = {}
        dscaled = dy_rows
        if self.has_gamma:
            gamma = weights["gamma"]
            grads["gamma"] = np.einsum("ij,ij->j", dy_rows, scaled).reshape(gamma.shape)
            dscaled = dy_rows * gamma.reshape(-1)
        if self.has_beta:
            column_sums = np.ones(len(dy_rows), dy.dtype) @ dy_rows  # one BLAS call
            grads["beta"] = column_sums.reshape(weights["beta"].shape)
        if self.rms_scaling:
            # s = x · inv_std: only the variance depends on x (through x̂), so
            # dx = inv_std · (ds − x̂ · mean(ds · s))
            dx = dscaled - x_hat * mean_of_product(dscaled, scaled, ROWS)
            dx *= inv_std
        else:
            dx = standardize_backward(dscaled, x_hat, inv_std, ROWS)
        return from_rows(dx, dy.shape, axes), grads
