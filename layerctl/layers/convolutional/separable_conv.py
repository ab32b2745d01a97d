"""SeparableConv1D and SeparableConv2D: a depthwise convolution, then a 1×1 convolution.

    y = activation(depthwise(x, depthwise_kernel) · pointwise_kernel + bias)

Weights as Keras names and lays them out: `depthwise_kernel` (k…, in, depth_multiplier),
`pointwise_kernel` (1…, in·depth_multiplier, filters), `bias` (filters,). The pointwise step is
one matmul over every output cell.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from layerctl.constraints import Constraint
from layerctl.initializers import Initializer
from layerctl.layers.base import Shape, WeightSpec
from layerctl.layers.convolutional.base_conv import positive, strict_int
from layerctl.layers.convolutional.depthwise_conv import DepthwiseArguments
from layerctl.ops.blas import matmul
from layerctl.ops.depthwise import depthwise_backward
from layerctl.regularizers import Regularizer


class BaseSeparableConv(DepthwiseArguments):
    """Shared by SeparableConv1D/2D."""

    filters: int = Field(description="Number of output channels.")
    pointwise_initializer: Initializer = "glorot_uniform"
    pointwise_regularizer: Regularizer | None = None
    pointwise_constraint: Constraint | None = None

    _int_filters = field_validator("filters", mode="before")(strict_int)

    @model_validator(mode="after")
    def _filters_check(self) -> BaseSeparableConv:
        positive(self.filters, "filters")
        return self

    def output_shape(self, input_shape: Shape) -> Shape:
        return self.conv_output_shape(input_shape, self.filters,
                                      self.depthwise_shape(input_shape))

    def weight_specs(self, input_shape: Shape) -> list[WeightSpec]:
        middle = self.in_channels(input_shape) * self.depth_multiplier
        shape = (1,) * self.spatial_rank + (middle, self.filters)
        pointwise = WeightSpec("pointwise_kernel", shape, True, self.pointwise_initializer,
                               self.pointwise_regularizer, self.pointwise_constraint)
        return [self.depthwise_spec("depthwise_kernel", input_shape), pointwise,
                *self.bias_spec(self.filters)]

    def forward(self, weights, x, mask, training, rng):
        middle, depthwise_cache = self.depthwise(self.channels_last(x), weights["depthwise_kernel"])
        pointwise = weights["pointwise_kernel"].reshape(-1, self.filters)
        y, tail = self.finish(weights, matmul(middle, pointwise))
        return y, (depthwise_cache, middle, tail)

    def backward(self, weights, cache, dy, need_dx=True, relu_applied=False):
        depthwise_cache, middle, tail = cache
        dz, grads = self.start_backward(tail, dy, relu_applied)
        pointwise = weights["pointwise_kernel"]
        rows = dz.reshape(-1, self.filters)
        grads["pointwise_kernel"] = matmul(middle.reshape(rows.shape[0], -1).T, rows).reshape(
            pointwise.shape)
        d_middle = matmul(dz, pointwise.reshape(-1, self.filters).T)
        dx, grads["depthwise_kernel"] = depthwise_backward(depthwise_cache, d_middle, need_dx)
        return self.input_gradient(dx), grads


class SeparableConv1D(BaseSeparableConv):
    """Depthwise-separable 1D convolution over (batch, steps, channels)."""

    type: Literal["SeparableConv1D", "SeparableConvolution1D"]
    keras_class = "SeparableConv1D"
    spatial_rank = 1


class SeparableConv2D(BaseSeparableConv):
    """Depthwise-separable 2D convolution over (batch, rows, cols, channels) or channels_first."""

    type: Literal["SeparableConv2D", "SeparableConvolution2D"]
    keras_class = "SeparableConv2D"
    spatial_rank = 2
