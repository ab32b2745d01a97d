"""Core layers: Dense, Activation, Dropout, Masking (Flatten is in `layers.reshaping`).

Each layer's forward and backward sit side by side so one can be checked against the other.
Formulas and argument validation follow Keras 3 (see shared/keras-reference.md §1, §3-§4, §11).
"""

from __future__ import annotations

from types import EllipsisType
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from layerctl import activations
from layerctl.activations import ActivationName
from layerctl.constraints import Constraint
from layerctl.initializers import Initializer
from layerctl.layers.base import (
    IncompatibleShape,
    Number,
    PositiveInt,
    Rate,
    Shape,
    SingleInputLayer,
    WeightSpec,
    require_rank,
)
from layerctl.ops.blas import matmul
from layerctl.ops.parallel import for_each_chunk
from layerctl.regularizers import Regularizer


def activate(name: str | None, z: np.ndarray, overwrite: bool = False,
             bias: np.ndarray | None = None) -> np.ndarray:
    """activation(z + bias); with `overwrite` (the caller owns z and needs it no more) the bias
    and relu are applied inside z, sparing full-size temporaries, in batch slices on every core.
    relu's backward reads only the sign of its input, which y = max(z, 0) keeps, so such callers
    may pass y as z to `activate_backward`.
    """
    in_place_relu = overwrite and name == "relu" and np.issubdtype(z.dtype, np.floating)
    if bias is not None and not overwrite:
        z = z + bias
    elif bias is not None or in_place_relu:
        def finish_rows(rows: slice | EllipsisType) -> None:
            part = z[rows]
            if bias is not None:
                part += bias
            if in_place_relu:
                np.maximum(part, 0, out=part)

        if z.ndim >= 2:   # axis 0 is the batch
            for_each_chunk(finish_rows, len(z), 2 * z.nbytes)
        else:
            finish_rows(Ellipsis)
    if name in (None, "linear") or in_place_relu:
        return z
    return activations.forward(name, z)


def activate_backward(name: str | None, z: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """dz from dy; relu's (the common case) runs in batch slices on every core."""
    if name in (None, "linear"):
        return dy
    if name == "relu" and dy.shape == z.shape and dy.ndim >= 2:
        dz = np.empty_like(dy)

        def relu_rows(rows: slice) -> None:   # as activations' relu gradient: dy · (z > 0)
            np.multiply(dy[rows], z[rows] > 0, out=dz[rows])

        for_each_chunk(relu_rows, len(dz), 3 * dz.nbytes)
        return dz
    return activations.backward(name, z, y, dy)


class KernelLayer(SingleInputLayer):
    """Keras's arguments shared by layers with a kernel, a bias and a fused activation."""

    activation: ActivationName | None = None
    use_bias: bool = True
    kernel_initializer: Initializer = "glorot_uniform"
    bias_initializer: Initializer = "zeros"
    kernel_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None
    activity_regularizer: Regularizer | None = None
    kernel_constraint: Constraint | None = None
    bias_constraint: Constraint | None = None

    # A max pooling layer consuming this one may apply its relu gradient (Graph._find_relu_pools)
    leaves_relu_to_consumer: ClassVar[bool] = True

    def activation_gradient(self, z: np.ndarray, y: np.ndarray, dy: np.ndarray,
                            relu_applied: bool) -> np.ndarray:
        """dz from dy, unless the consumer already applied the relu's gradient to dy."""
        return dy if relu_applied else activate_backward(self.activation, z, y, dy)

    def kernel_and_bias(self, kernel_shape: tuple[int, ...], outputs: int) -> list[WeightSpec]:
        specs = [WeightSpec("kernel", kernel_shape, True, self.kernel_initializer,
                            self.kernel_regularizer, self.kernel_constraint)]
        if self.use_bias:
            specs.append(WeightSpec("bias", (outputs,), True, self.bias_initializer,
                                    self.bias_regularizer, self.bias_constraint))
        return specs


class Dense(KernelLayer):
    """`y = activation(x · kernel + bias)`, contracting the last axis of an input of rank ≥ 2.

    kernel (in, units), bias (units,). Output shape: the input's with the last axis = units.
    """

    type: Literal["Dense"]
    units: PositiveInt = Field(description="Dimensionality of the output space.")

    keras_class = "Dense"
    supports_masking = True
    skips_input_gradient = True

    def output_shape(self, input_shape: Shape) -> Shape:
        require_rank(input_shape, minimum=2)
        if input_shape[-1] is None:
            raise IncompatibleShape("the last axis of the input to Dense must be defined. "
                                    f"Received input shape {input_shape}")
        return input_shape[:-1] + (self.units,)

    def weight_specs(self, input_shape: Shape) -> list[WeightSpec]:
        return self.kernel_and_bias((input_shape[-1], self.units), self.units)

    def forward(self, weights, x, mask, training, rng):
        z = matmul(x, weights["kernel"])
        bias = weights["bias"] if self.use_bias else None
        y = activate(self.activation, z, overwrite=True, bias=bias)  # z is ours: relu may reuse it
        return y, (x, z, y)

    def backward(self, weights, cache, dy, need_dx=True, relu_applied=False):
        x, z, y = cache
        dz = self.activation_gradient(z, y, dy, relu_applied)
        flat_dz = dz.reshape(-1, self.units)
        grads = {"kernel": matmul(x.reshape(-1, x.shape[-1]).T, flat_dz)}
        if self.use_bias:
            grads["bias"] = flat_dz.sum(axis=0)
        return (matmul(dz, weights["kernel"].T) if need_dx else None), grads


class Activation(SingleInputLayer):
    """Applies an activation function element-wise (softmax over the last axis)."""

    type: Literal["Activation"]
    activation: ActivationName | None = Field(description="Activation name, e.g. relu.")

    keras_class = "Activation"
    supports_masking = True

    def forward(self, weights, x, mask, training, rng):
        y = activate(self.activation, x)
        return y, (x, y)

    def backward(self, weights, cache, dy):
        x, y = cache
        return activate_backward(self.activation, x, y, dy), {}


def between_0_and_1(argument: str):
    """A before-validator raising Keras 3's message for a number outside [0, 1] (Dropout and
    the noise layers check `rate` or `stddev` so)."""

    def check(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not 0 <= value <= 1:
            raise ValueError(f"Invalid value received for argument `{argument}`. Expected a "
                             f"float value between 0 and 1. Received: {argument}={value}")
        return value

    return field_validator(argument, mode="before")(check)


class Dropout(SingleInputLayer):
    """Training: zero each element with probability `rate`, scale the rest by 1/(1−rate).

    Inference: identity. `noise_shape` entries that are None take the input's size, so a
    `[null, 1, null]` noise shape drops the same features at every timestep.
    """

    type: Literal["Dropout"]
    rate: Rate = Field(description="Fraction of the input units to drop, in [0, 1].")
    noise_shape: list[PositiveInt | None] | None = None
    seed: int | None = None

    keras_class = "Dropout"
    supports_masking = True

    _rate = between_0_and_1("rate")

    def output_shape(self, input_shape: Shape) -> Shape:
        check_noise_shape(self.noise_shape, input_shape)
        return input_shape

    def forward(self, weights, x, mask, training, rng):
        if not training or self.rate == 0:
            return x, None
        if self.rate == 1:
            return np.zeros_like(x), np.zeros((1,) * x.ndim, dtype=x.dtype)
        shape = noise_shape_of(self.noise_shape, x.shape)
        keep = dropout_keep(rng, shape, self.rate, x.dtype)
        return x * keep, keep

    def backward(self, weights, cache, dy):
        return (dy if cache is None else dy * cache), {}


def check_noise_shape(noise_shape: list | None, input_shape: Shape) -> None:
    """A dropout `noise_shape` has one entry per input axis."""
    if noise_shape is not None and len(noise_shape) != len(input_shape):
        raise IncompatibleShape(f"noise_shape {noise_shape} has {len(noise_shape)} entries but "
                                f"the input has rank {len(input_shape)}")


def noise_shape_of(noise_shape: list | None, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape a dropout mask is drawn in: `noise_shape`'s None entries take the input's."""
    if noise_shape is None:
        return shape
    return tuple(size if n is None else n for n, size in zip(noise_shape, shape, strict=True))


def dropout_keep(rng: np.random.Generator, shape: tuple[int, ...], rate: float,
                 dtype: np.dtype) -> np.ndarray:
    """Inverted dropout's multiplier: 1/(1−rate) with probability 1−rate, else 0 (rate < 1)."""
    keep = (rng.random(shape, dtype=np.float64) >= rate).astype(dtype)
    keep *= dtype.type(1.0 / (1.0 - rate))
    return keep


class Masking(SingleInputLayer):
    """Masks timesteps whose features all equal `mask_value`; those steps become 0.

    The mask (batch, timesteps) flows to the following layers; an LSTM skips masked steps.
    """

    type: Literal["Masking"]
    mask_value: Number = 0.0

    keras_class = "Masking"
    supports_masking = True

    def emits_mask(self, receives_mask: bool) -> bool:
        return True

    def output_shape(self, input_shape: Shape) -> Shape:
        require_rank(input_shape, minimum=2)
        return input_shape

    def _keep(self, x: np.ndarray) -> np.ndarray:
        return np.any(x != self.mask_value, axis=-1)

    def output_mask(self, x, mask):
        return self._keep(x)

    def forward(self, weights, x, mask, training, rng):
        keep = self._keep(x)
        return x * keep[..., None].astype(x.dtype), keep

    def backward(self, weights, cache, dy):
        return dy * cache[..., None].astype(dy.dtype), {}

