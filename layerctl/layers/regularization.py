"""Noise and regularization layers: SpatialDropout1D/2D, GaussianNoise, GaussianDropout,
AlphaDropout, ActivityRegularization (Dropout itself lives in `layers.core`).

Every one is the identity outside training, as in Keras, and passes its input's mask on. The
random draws come from the generator the graph hands to `forward` (the layer's own when its spec
sets `seed`), so the noise follows Keras's distribution, not its stream. Backward multiplies dy
by the same noise the forward pass drew. ActivityRegularization changes no number: it exposes
its penalty as `activity_regularizer`, which the graph adds to the loss (divided by the batch
size, as Keras does) like any layer's activity regularizer.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from layerctl.errors import SpecError
from layerctl.layers.base import (
    DataFormat,
    Number,
    PositiveInt,
    Rate,
    Shape,
    SingleInputLayer,
    lower_string,
    require_rank,
)
from layerctl.layers.core import (
    between_0_and_1,
    check_noise_shape,
    dropout_keep,
    noise_shape_of,
)
from layerctl.regularizers import L1L2

# Keras 3's SELU constants, which AlphaDropout's saturation value is made of
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _infinite_noise(layer: SingleInputLayer) -> SpecError:
    return SpecError(f"{layer.keras_class} cannot train with rate=1: its noise would have an "
                     "infinite scale (Keras fails there too, with ZeroDivisionError)",
                     hint="use a rate below 1")


class NoiseLayer(SingleInputLayer):
    """Identity in inference; passes the mask on."""

    supports_masking: ClassVar[bool] = True

    def backward(self, weights, cache, dy):
        return (dy if cache is None else dy * cache), {}


class _SpatialDropout(NoiseLayer):
    """Dropout of whole feature maps: one draw per sample and channel, shared by every step or
    pixel, kept maps scaled by 1/(1−rate)."""

    rate: Rate = Field(description="Fraction of the channels to drop, in [0, 1].")
    seed: int | None = None

    spatial_rank: ClassVar[int] = 1
    _rate = between_0_and_1("rate")

    def output_shape(self, input_shape: Shape) -> Shape:
        require_rank(input_shape, exact=self.spatial_rank + 2)
        return input_shape

    def _noise_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        channel = 1 if getattr(self, "data_format", None) == "channels_first" else len(shape) - 1
        return tuple(n if axis in (0, channel) else 1 for axis, n in enumerate(shape))

    def forward(self, weights, x, mask, training, rng):
        if not training or self.rate == 0:
            return x, None
        if self.rate == 1:
            return np.zeros_like(x), np.zeros((1,) * x.ndim, dtype=x.dtype)
        keep = dropout_keep(rng, self._noise_shape(x.shape), self.rate, x.dtype)
        return x * keep, keep


class SpatialDropout1D(_SpatialDropout):
    """Drops whole channels of (batch, steps, channels): the same channels at every step."""

    type: Literal["SpatialDropout1D"]
    keras_class = "SpatialDropout1D"


class SpatialDropout2D(_SpatialDropout):
    """Drops whole channels of (batch, rows, cols, channels), or (batch, channels, rows, cols)
    with channels_first."""

    type: Literal["SpatialDropout2D"]
    data_format: DataFormat | None = None

    keras_class = "SpatialDropout2D"
    spatial_rank = 2
    _lower = field_validator("data_format", mode="before")(lower_string)


class GaussianNoise(NoiseLayer):
    """Training: adds zero-centred Gaussian noise of standard deviation `stddev`."""

    type: Literal["GaussianNoise"]
    stddev: Number = Field(description="Standard deviation of the noise, in [0, 1] (as Keras).")
    seed: int | None = None

    keras_class = "GaussianNoise"
    _stddev = between_0_and_1("stddev")

    def forward(self, weights, x, mask, training, rng):
        if not training or self.stddev == 0:
            return x, None
        noise = rng.standard_normal(x.shape, dtype=np.float64).astype(x.dtype, copy=False)
        noise *= x.dtype.type(self.stddev)
        return x + noise, None


class GaussianDropout(NoiseLayer):
    """Training: multiplies by 1-centred Gaussian noise of standard deviation
    sqrt(rate / (1 − rate)), so the expected value is unchanged."""

    type: Literal["GaussianDropout"]
    rate: Rate = Field(description="Drop probability (as with Dropout), in [0, 1].")
    seed: int | None = None

    keras_class = "GaussianDropout"
    _rate = between_0_and_1("rate")

    def forward(self, weights, x, mask, training, rng):
        if not training or self.rate == 0:
            return x, None
        if self.rate == 1:
            raise _infinite_noise(self)
        noise = rng.standard_normal(x.shape, dtype=np.float64)
        noise = (noise * math.sqrt(self.rate / (1.0 - self.rate)) + 1.0).astype(x.dtype)
        return x * noise, noise


class AlphaDropout(NoiseLayer):
    """Training: dropped units become SELU's saturation value α' = −scale·alpha, then
    y = a·x' + b with a = ((1 − rate)(1 + rate·α'²))^−½ and b = −a·α'·rate, which keeps a
    standardized input's mean and variance (Keras 3's formula). `noise_shape` as in Dropout."""

    type: Literal["AlphaDropout"]
    rate: Rate = Field(description="Fraction of the input units to drop, in [0, 1].")
    noise_shape: list[PositiveInt | None] | None = None
    seed: int | None = None

    keras_class = "AlphaDropout"
    _rate = between_0_and_1("rate")

    def output_shape(self, input_shape: Shape) -> Shape:
        check_noise_shape(self.noise_shape, input_shape)
        return input_shape

    def forward(self, weights, x, mask, training, rng):
        if not training or self.rate == 0:
            return x, None
        if self.rate == 1:
            raise _infinite_noise(self)
        saturation = -SELU_ALPHA * SELU_SCALE
        a = ((1 - self.rate) * (1 + self.rate * saturation**2)) ** -0.5
        b = -a * saturation * self.rate
        shape = noise_shape_of(self.noise_shape, x.shape)
        kept = (rng.random(shape, dtype=np.float64) >= self.rate).astype(x.dtype)
        # a·(x·kept + α'·(1 − kept)) + b = x·(a·kept) + (a·α'·(1 − kept) + b)
        scale = kept * x.dtype.type(a)
        offset = (1 - kept) * x.dtype.type(a * saturation) + x.dtype.type(b)
        return x * scale + offset, scale


class ActivityRegularization(NoiseLayer):
    """The identity, adding l1·Σ|x| + l2·Σx² (per sample: divided by the batch size) to the
    training loss."""

    type: Literal["ActivityRegularization"]
    l1: Number = Field(default=0.0, description="L1 factor (>= 0).")
    l2: Number = Field(default=0.0, description="L2 factor (>= 0).")

    keras_class = "ActivityRegularization"

    @field_validator("l1", "l2", mode="before")
    @classmethod
    def _factor_message(cls, value: Any, info) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and value >= 0):
            name = info.field_name
            # Keras's text, without a space after the first sentence
            raise ValueError(f"Invalid value for argument {name}: expected a non-negative "
                             f"float.Received: {name}={value}")
        return value

    @property
    def activity_regularizer(self) -> L1L2 | None:
        """The penalty the graph adds, as for any layer's `activity_regularizer`."""
        if not (self.l1 or self.l2):
            return None
        return L1L2(type="l1_l2", l1=self.l1, l2=self.l2)

    def forward(self, weights, x, mask, training, rng):
        return x, None
