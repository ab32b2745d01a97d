"""Conv1D and Conv2D: cross-correlation with Keras's arguments, padding rules and kernel layout.

The kernel is (k…, in_channels / groups, filters) in both data formats, as in Keras. The window
math lives in `layerctl.ops.conv` (strided views and one matmul); these classes validate
arguments with Keras's messages, compute shapes, and move channels_first data to channels-last.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from layerctl.layers.base import (
    DataFormat,
    IncompatibleShape,
    Shape,
    WeightSpec,
    format_shape,
    int_tuple,
    lower_string,
    require_rank,
)
from layerctl.layers.core import KernelLayer, activate
from layerctl.layers.pooling import from_channels_last, spatial_axes, to_channels_last

IntOrTuple = int | list[int] | tuple[int, ...]


class _Conv(KernelLayer):
    filters: int = Field(description="Number of output channels.")
    kernel_size: IntOrTuple = Field(description="Window size: an int or one int per spatial axis.")
    strides: IntOrTuple = 1
    padding: str = "valid"
    data_format: DataFormat | None = None
    dilation_rate: IntOrTuple = 1
    groups: int = 1

    spatial_rank: ClassVar[int] = 0
    skips_input_gradient = True
    paddings: ClassVar[tuple[str, ...]] = ("valid", "same")

    _lower = field_validator("padding", "data_format", mode="before")(lower_string)

    @field_validator("filters", "groups", mode="before")
    @classmethod
    def _strict_int(cls, value: Any, info) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(
                f"{info.field_name} must be an integer. Received {info.field_name}={value!r}"
            )
        return value

    @model_validator(mode="after")
    def _keras_checks(self) -> _Conv:
        rank = self.spatial_rank
        if self.filters <= 0:
            raise ValueError(
                "Invalid value for argument filters. Expected a strictly positive "
                f"value. Received filters={self.filters}."
            )
        if self.groups <= 0:
            raise ValueError(
                f"The number of groups must be a positive integer. Received: groups={self.groups}."
            )
        if self.filters % self.groups:
            raise ValueError(
                "The number of filters must be evenly divisible by the number of "
                f"groups. Received: groups={self.groups}, filters={self.filters}."
            )
        if self.padding not in self.paddings:
            allowed = "{" + ", ".join(repr(p) for p in self.paddings) + "}"
            raise ValueError(
                f"The padding argument must be one of {allowed}. Received: {self.padding}"
            )
        kernel = int_tuple(self.kernel_size, rank, "kernel_size")
        strides = int_tuple(self.strides, rank, "strides")
        dilation = int_tuple(self.dilation_rate, rank, "dilation_rate")
        if max(strides) > 1 and max(dilation) > 1:
            raise ValueError(
                "strides > 1 not supported in conjunction with dilation_rate > 1. "
                f"Received: strides={strides} and dilation_rate={dilation}"
            )
        del kernel
        return self

    def kernel_tuple(self) -> tuple[int, ...]:
        return int_tuple(self.kernel_size, self.spatial_rank, "kernel_size")

    def stride_tuple(self) -> tuple[int, ...]:
        return int_tuple(self.strides, self.spatial_rank, "strides")

    def dilation_tuple(self) -> tuple[int, ...]:
        return int_tuple(self.dilation_rate, self.spatial_rank, "dilation_rate")

    def _in_channels(self, input_shape: Shape) -> int:
        axis = 1 if self.data_format == "channels_first" else len(input_shape) - 1
        channels = input_shape[axis]
        if channels is None:
            raise IncompatibleShape(
                "the channel axis of the input must be defined; received "
                f"{format_shape(input_shape)}"
            )
        if channels % self.groups:
            raise IncompatibleShape(
                "The number of input channels must be evenly divisible by the number of groups. "
                f"Received groups={self.groups}, but the input has {channels} channels "
                f"(full input shape is {format_shape(input_shape)})."
            )
        return channels

    def output_shape(self, input_shape: Shape) -> Shape:
        from layerctl.ops.windows import output_length

        require_rank(input_shape, exact=self.spatial_rank + 2)
        self._in_channels(input_shape)
        shape = list(input_shape)
        axes = spatial_axes(self.data_format, len(shape))
        for axis, k, s, d in zip(
            axes, self.kernel_tuple(), self.stride_tuple(), self.dilation_tuple(), strict=True
        ):
            size = output_length(input_shape[axis], k, self.padding, s, d)
            if size is not None and size <= 0:
                raise IncompatibleShape(
                    "Computed output size would be zero or negative. Received inputs shape="
                    f"{format_shape(input_shape)}, kernel shape="
                    f"{self._kernel_shape(input_shape)}."
                )
            shape[axis] = size
        shape[1 if self.data_format == "channels_first" else -1] = self.filters
        return tuple(shape)

    def _kernel_shape(self, input_shape: Shape) -> tuple[int, ...]:
        channels = self._in_channels(input_shape) // self.groups
        return self.kernel_tuple() + (channels, self.filters)

    def weight_specs(self, input_shape: Shape) -> list[WeightSpec]:
        return self.kernel_and_bias(self._kernel_shape(input_shape), self.filters)

    def forward(self, weights, x, mask, training, rng):
        from layerctl.ops.conv import conv_forward

        z, conv_cache = conv_forward(
            to_channels_last(x, self.data_format),
            weights["kernel"],
            self.stride_tuple(),
            self.padding,
            self.dilation_tuple(),
            self.groups,
        )
        bias = weights["bias"] if self.use_bias else None
        if bias is not None and self.data_format == "channels_first":
            z += bias   # the channels_last z takes it on its last axis
            bias = None
        # Keras activates the output in its own layout: softmax over the last axis of it
        z = from_channels_last(z, self.data_format)
        # conv_forward's output is ours alone: relu may overwrite it (then z is y, see activate)
        y = activate(self.activation, z, overwrite=True, bias=bias)
        return y, (conv_cache, z, y)

    def backward(self, weights, cache, dy, need_dx=True, relu_applied=False):
        from layerctl.ops.conv import conv_backward

        conv_cache, z, y = cache
        dz = to_channels_last(self.activation_gradient(z, y, dy, relu_applied), self.data_format)
        dx, dkernel = conv_backward(conv_cache, dz, need_dx)
        grads = {"kernel": dkernel}
        if self.use_bias:
            # A matmul with ones: BLAS sums the rows several times faster than numpy's
            # column-wise reduce, and in blocks, so with less rounding error too.
            rows = dz.reshape(-1, self.filters)
            grads["bias"] = np.ones(rows.shape[0], rows.dtype) @ rows
        return (from_channels_last(dx, self.data_format) if need_dx else None), grads


class Conv1D(_Conv):
    """1D convolution over (batch, steps, channels); `causal` padding looks only backwards."""

    type: Literal["Conv1D", "Convolution1D"]
    keras_class = "Conv1D"
    spatial_rank = 1
    paddings = ("valid", "same", "causal")


class Conv2D(_Conv):
    """2D convolution over (batch, rows, cols, channels) or channels_first (batch, channels, …)."""

    type: Literal["Conv2D", "Convolution2D"]
    keras_class = "Conv2D"
    spatial_rank = 2
