"""Conv1D and Conv2D: cross-correlation with Keras's arguments, padding rules and kernel layout.

The kernel is (k…, in_channels / groups, filters) in both data formats, as in Keras; filter f
reads the input channels of group f // (filters / groups). The window math lives in
`layerctl.ops.conv` (strided views and one matmul).
"""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator, model_validator

from layerctl.layers.base import IncompatibleShape, Shape, WeightSpec, format_shape
from layerctl.layers.convolutional.base_conv import FilterConv, strict_int


class BaseConvolution(FilterConv):
    """Shared by Conv1D/2D: `groups` splits the channels into independent convolutions."""

    groups: int = 1

    _int_groups = field_validator("groups", mode="before")(strict_int)

    @model_validator(mode="after")
    def _groups_checks(self) -> BaseConvolution:
        if self.groups <= 0:
            raise ValueError("The number of groups must be a positive integer. "
                             f"Received: groups={self.groups}.")
        if self.filters % self.groups:
            raise ValueError("The number of filters must be evenly divisible by the number of "
                             f"groups. Received: groups={self.groups}, filters={self.filters}.")
        return self

    def _kernel_shape(self, input_shape: Shape) -> tuple[int, ...]:
        channels = self.in_channels(input_shape)
        if channels % self.groups:
            raise IncompatibleShape(
                "The number of input channels must be evenly divisible by the number of groups. "
                f"Received groups={self.groups}, but the input has {channels} channels "
                f"(full input shape is {format_shape(input_shape)}).")
        return self.kernel_tuple() + (channels // self.groups, self.filters)

    def output_shape(self, input_shape: Shape) -> Shape:
        return self.conv_output_shape(input_shape, self.filters, self._kernel_shape(input_shape))

    def weight_specs(self, input_shape: Shape) -> list[WeightSpec]:
        return self.kernel_spec(self._kernel_shape(input_shape))

    def forward(self, weights, x, mask, training, rng):
        from layerctl.ops.conv import conv_forward

        z, conv_cache = conv_forward(self.channels_last(x), weights["kernel"],
                                     self.stride_tuple(), self.padding, self.dilation_tuple(),
                                     self.groups)
        y, tail = self.finish(weights, z)
        return y, (conv_cache, tail)

    def backward(self, weights, cache, dy, need_dx=True, relu_applied=False):
        from layerctl.ops.conv import conv_backward

        conv_cache, tail = cache
        dz, grads = self.start_backward(tail, dy, relu_applied)
        dx, grads["kernel"] = conv_backward(conv_cache, dz, need_dx)
        return self.input_gradient(dx), grads


class Conv1D(BaseConvolution):
    """1D convolution over (batch, steps, channels); `causal` padding looks only backwards."""

    type: Literal["Conv1D", "Convolution1D"]
    keras_class = "Conv1D"
    spatial_rank = 1
    paddings = ("valid", "same", "causal")


class Conv2D(BaseConvolution):
    """2D convolution over (batch, rows, cols, channels) or channels_first (batch, channels, …)."""

    type: Literal["Conv2D", "Convolution2D"]
    keras_class = "Conv2D"
    spatial_rank = 2
