"""What every convolution layer shares: the window arguments, their Keras checks, the output
size rule, and the bias-plus-activation tail of forward and backward.

Subclasses add their own kernels (`kernel`, `depthwise_kernel`, `pointwise_kernel`) with their
Keras argument names; the window math lives in `layerctl.ops.conv`. Data is moved to
channels-last for the ops and back, so both data formats share one code path.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field, field_validator, model_validator

from layerctl.activations import ActivationName
from layerctl.constraints import Constraint
from layerctl.initializers import Initializer
from layerctl.layers.base import (
    DataFormat,
    IncompatibleShape,
    Shape,
    SingleInputLayer,
    WeightSpec,
    format_shape,
    int_tuple,
    lower_string,
    require_rank,
)
from layerctl.layers.core import activate, activate_backward
from layerctl.layers.pooling import from_channels_last, spatial_axes, to_channels_last
from layerctl.ops.blas import matmul
from layerctl.regularizers import Regularizer

IntOrTuple = int | list[int] | tuple[int, ...]


def strict_int(value: Any, info) -> Any:
    """Keras compares these arguments with ints; a float or a bool is an error here."""
    if not isinstance(value, int) or isinstance(value, bool):
        name = info.field_name
        raise ValueError(f"{name} must be an integer. Received {name}={value!r}")
    return value


def positive(value: int | None, argument: str) -> None:
    """Keras's check for `filters` and `depth_multiplier`."""
    if value is not None and value <= 0:
        raise ValueError(f"Invalid value for argument `{argument}`. Expected a strictly "
                         f"positive value. Received {argument}={value}.")


class BaseConv(SingleInputLayer):
    """Window arguments, bias and activation of Keras's convolution layers."""

    kernel_size: IntOrTuple = Field(description="Window size: an int or one int per spatial axis.")
    strides: IntOrTuple = 1
    padding: str = "valid"
    data_format: DataFormat | None = None
    dilation_rate: IntOrTuple = 1
    activation: ActivationName | None = None
    use_bias: bool = True
    bias_initializer: Initializer = "zeros"
    bias_regularizer: Regularizer | None = None
    activity_regularizer: Regularizer | None = None
    bias_constraint: Constraint | None = None

    spatial_rank: ClassVar[int] = 0
    paddings: ClassVar[tuple[str, ...]] = ("valid", "same")
    # Keras's Conv and ConvTranspose refuse strides > 1 with dilation > 1; depthwise and
    # separable layers accept both.
    strides_exclude_dilation: ClassVar[bool] = True
    skips_input_gradient = True
    # A max pooling layer consuming this one may apply its relu gradient (Graph._find_relu_pools)
    leaves_relu_to_consumer: ClassVar[bool] = True

    _lower = field_validator("padding", "data_format", mode="before")(lower_string)

    @model_validator(mode="after")
    def _window_checks(self) -> BaseConv:
        if self.padding not in self.paddings:
            allowed = "{" + ", ".join(repr(p) for p in self.paddings) + "}"
            raise ValueError("The `padding` argument must be a list/tuple or one of "
                             f"{allowed}. Received: {self.padding}")
        self.kernel_tuple()
        strides, dilation = self.stride_tuple(), self.dilation_tuple()
        if self.strides_exclude_dilation and max(strides) > 1 and max(dilation) > 1:
            raise ValueError("`strides > 1` not supported in conjunction with "
                             f"`dilation_rate > 1`. Received: strides={strides} and "
                             f"dilation_rate={dilation}")
        return self

    # ---- arguments as tuples -------------------------------------------------------------
    def kernel_tuple(self) -> tuple[int, ...]:
        return int_tuple(self.kernel_size, self.spatial_rank, "kernel_size")

    def stride_tuple(self) -> tuple[int, ...]:
        return int_tuple(self.strides, self.spatial_rank, "strides")

    def dilation_tuple(self) -> tuple[int, ...]:
        return int_tuple(self.dilation_rate, self.spatial_rank, "dilation_rate")

    # ---- shapes --------------------------------------------------------------------------
    def in_channels(self, input_shape: Shape) -> int:
        """The input's channel count (checked for rank and definedness)."""
        require_rank(input_shape, exact=self.spatial_rank + 2)
        channels = input_shape[1 if self.data_format == "channels_first" else -1]
        if channels is None:
            raise IncompatibleShape("the channel axis of the input must be defined; received "
                                    f"{format_shape(input_shape)}")
        return channels

    def conv_output_shape(self, input_shape: Shape, channels: int,
                          kernel_shape: tuple[int, ...]) -> Shape:
        """A convolution's output shape (Keras's rule and its error when an axis is empty)."""
        from layerctl.ops.windows import output_length

        shape = list(input_shape)
        for axis, k, s, d in zip(spatial_axes(self.data_format, len(shape)), self.kernel_tuple(),
                                 self.stride_tuple(), self.dilation_tuple(), strict=True):
            size = output_length(input_shape[axis], k, self.padding, s, d)
            if size is not None and size <= 0:
                raise IncompatibleShape(
                    "Computed output size would be zero or negative. Received inputs shape="
                    f"{format_shape(input_shape)}, kernel shape={kernel_shape}.")
            shape[axis] = size
        shape[1 if self.data_format == "channels_first" else -1] = channels
        return tuple(shape)

    def bias_spec(self, outputs: int) -> list[WeightSpec]:
        if not self.use_bias:
            return []
        return [WeightSpec("bias", (outputs,), True, self.bias_initializer,
                           self.bias_regularizer, self.bias_constraint)]

    # ---- the tail of forward and backward ------------------------------------------------
    def channels_last(self, x: np.ndarray) -> np.ndarray:
        return to_channels_last(x, self.data_format)

    def finish(self, weights: dict, z: np.ndarray) -> tuple[np.ndarray, tuple]:
        """y = activation(z + bias) in the layer's data format, from the op's channels-last z
        (which the op made for this call alone: it is overwritten). Returns (y, (z, y))."""
        bias = weights["bias"] if self.use_bias else None
        if bias is not None and self.data_format == "channels_first":
            z += bias   # the channels_last z takes it on its last axis
            bias = None
        # Keras activates the output in its own layout: softmax over the last axis of it
        z = from_channels_last(z, self.data_format)
        y = activate(self.activation, z, overwrite=True, bias=bias)
        return y, (z, y)

    def start_backward(self, cache: tuple, dy: np.ndarray, relu_applied: bool
                       ) -> tuple[np.ndarray, dict]:
        """(dz channels-last, {"bias": grad}) from dy, undoing `finish`."""
        z, y = cache
        dz = dy if relu_applied else activate_backward(self.activation, z, y, dy)
        dz = to_channels_last(dz, self.data_format)
        grads = {}
        if self.use_bias:
            # A matmul with ones: BLAS sums the rows several times faster than numpy's
            # column-wise reduce, and in blocks, so with less rounding error too.
            rows = dz.reshape(-1, dz.shape[-1])
            grads["bias"] = matmul(np.ones(rows.shape[0], rows.dtype), rows)
        return dz, grads

    def input_gradient(self, dx: np.ndarray | None) -> np.ndarray | None:
        return None if dx is None else from_channels_last(dx, self.data_format)


class FilterConv(BaseConv):
    """A convolution with `filters` outputs and one `kernel` (Conv and ConvTranspose)."""

    filters: int = Field(description="Number of output channels.")
    kernel_initializer: Initializer = "glorot_uniform"
    kernel_regularizer: Regularizer | None = None
    kernel_constraint: Constraint | None = None

    _int_filters = field_validator("filters", mode="before")(strict_int)

    @model_validator(mode="after")
    def _filters_check(self) -> FilterConv:
        positive(self.filters, "filters")
        return self

    def kernel_spec(self, kernel_shape: tuple[int, ...]) -> list[WeightSpec]:
        return [WeightSpec("kernel", kernel_shape, True, self.kernel_initializer,
                           self.kernel_regularizer, self.kernel_constraint),
                *self.bias_spec(self.filters)]
