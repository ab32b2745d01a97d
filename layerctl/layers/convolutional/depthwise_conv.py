"""DepthwiseConv1D and DepthwiseConv2D: each input channel convolved with its own filters.

Output channel c·depth_multiplier + m is input channel c cross-correlated with kernel[…, c, m]
(Keras's kernel layout (k…, in_channels, depth_multiplier), weight name `kernel`). The math is
`layerctl.ops.depthwise`: per-tap multiply-adds, measured faster than a grouped convolution with
one group per channel (whose matmuls have nothing to contract).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import field_validator, model_validator

from layerctl.constraints import Constraint
from layerctl.initializers import Initializer
from layerctl.layers.base import Shape, WeightSpec
from layerctl.layers.convolutional.base_conv import BaseConv, positive, strict_int
from layerctl.ops.depthwise import depthwise_backward, depthwise_forward
from layerctl.regularizers import Regularizer


class DepthwiseArguments(BaseConv):
    """`depth_multiplier` and the depthwise kernel's initializer, regularizer, constraint."""

    depth_multiplier: int = 1
    depthwise_initializer: Initializer = "glorot_uniform"
    depthwise_regularizer: Regularizer | None = None
    depthwise_constraint: Constraint | None = None

    strides_exclude_dilation = False

    _int_multiplier = field_validator("depth_multiplier", mode="before")(strict_int)

    @model_validator(mode="after")
    def _multiplier_check(self) -> DepthwiseArguments:
        positive(self.depth_multiplier, "depth_multiplier")
        return self

    def depthwise_shape(self, input_shape: Shape) -> tuple[int, ...]:
        return self.kernel_tuple() + (self.in_channels(input_shape), self.depth_multiplier)

    def depthwise_spec(self, name: str, input_shape: Shape) -> WeightSpec:
        return WeightSpec(name, self.depthwise_shape(input_shape), True,
                          self.depthwise_initializer, self.depthwise_regularizer,
                          self.depthwise_constraint)

    def depthwise(self, x: np.ndarray, kernel: np.ndarray) -> tuple[np.ndarray, Any]:
        return depthwise_forward(x, kernel, self.stride_tuple(), self.padding,
                                 self.dilation_tuple())


class BaseDepthwiseConv(DepthwiseArguments):
    """Shared by DepthwiseConv1D/2D."""

    def output_shape(self, input_shape: Shape) -> Shape:
        kernel_shape = self.depthwise_shape(input_shape)
        return self.conv_output_shape(input_shape, kernel_shape[-2] * self.depth_multiplier,
                                      kernel_shape)

    def weight_specs(self, input_shape: Shape) -> list[WeightSpec]:
        specs = [self.depthwise_spec("kernel", input_shape)]
        return specs + self.bias_spec(self.in_channels(input_shape) * self.depth_multiplier)

    def forward(self, weights, x, mask, training, rng):
        z, conv_cache = self.depthwise(self.channels_last(x), weights["kernel"])
        y, tail = self.finish(weights, z)
        return y, (conv_cache, tail)

    def backward(self, weights, cache, dy, need_dx=True, relu_applied=False):
        conv_cache, tail = cache
        dz, grads = self.start_backward(tail, dy, relu_applied)
        dx, grads["kernel"] = depthwise_backward(conv_cache, dz, need_dx)
        return self.input_gradient(dx), grads


class DepthwiseConv1D(BaseDepthwiseConv):
    """Depthwise 1D convolution over (batch, steps, channels)."""

    type: Literal["DepthwiseConv1D"]
    keras_class = "DepthwiseConv1D"
    spatial_rank = 1


class DepthwiseConv2D(BaseDepthwiseConv):
    """Depthwise 2D convolution over (batch, rows, cols, channels) or channels_first."""

    type: Literal["DepthwiseConv2D"]
    keras_class = "DepthwiseConv2D"
    spatial_rank = 2
