"""Conv1DTranspose and Conv2DTranspose: the gradient of a convolution, as a layer.

Keras 3's output size along each axis, K = dilation·(kernel − 1) + 1 the dilated kernel:

    valid:  (n − 1)·strides + K + output_padding      (output_padding default max(K, s) − K)
    same:   n·strides                                 (output_padding None)
            (n − 1)·strides + K mod 2 + output_padding (output_padding given)

The kernel is (k…, filters, in_channels), as Keras stores it: exactly the kernel layout of the
convolution whose input gradient this layer computes (`layerctl.ops.conv.conv_transpose_*`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from layerctl.layers.base import IncompatibleShape, Shape, WeightSpec, format_shape, int_tuple
from layerctl.layers.convolutional.base_conv import FilterConv, IntOrTuple
from layerctl.layers.pooling import spatial_axes


class BaseConvTranspose(FilterConv):
    """Shared by Conv1DTranspose/Conv2DTranspose."""

    output_padding: IntOrTuple | None = None

    @model_validator(mode="after")
    def _output_padding_checks(self) -> BaseConvTranspose:
        padding = self.output_padding_tuple()
        if padding is not None:
            strides = self.stride_tuple()
            for i, (extra, stride) in enumerate(zip(padding, strides, strict=True)):
                if extra >= stride:
                    raise ValueError(
                        "`output_padding` must be strictly less than `strides` for all "
                        f"dimensions. At dimension {i}, `output_padding` is {extra} but "
                        f"`strides` is {stride}. Received: output_padding={padding}, "
                        f"strides={strides}")
        return self

    def output_padding_tuple(self) -> tuple[int, ...] | None:
        if self.output_padding is None:
            return None
        return int_tuple(self.output_padding, self.spatial_rank, "output_padding", minimum=0)

    def _kernel_shape(self, input_shape: Shape) -> tuple[int, ...]:
        return self.kernel_tuple() + (self.filters, self.in_channels(input_shape))

    def output_shape(self, input_shape: Shape) -> Shape:
        from layerctl.ops.conv import transpose_padding

        kernel_shape = self._kernel_shape(input_shape)
        extra = self.output_padding_tuple() or (None,) * self.spatial_rank
        shape = list(input_shape)
        for axis, k, s, p, d in zip(spatial_axes(self.data_format, len(shape)),
                                    self.kernel_tuple(), self.stride_tuple(), extra,
                                    self.dilation_tuple(), strict=True):
            if input_shape[axis] is None:
                continue
            shape[axis] = transpose_padding(input_shape[axis], k, s, self.padding, p, d)[2]
            if shape[axis] <= 0:   # Keras would make an empty axis here
                raise IncompatibleShape(
                    "Computed output size would be zero or negative. Received inputs shape="
                    f"{format_shape(input_shape)}, kernel shape={kernel_shape}, "
                    f"output_padding={self.output_padding_tuple()}.")
        shape[1 if self.data_format == "channels_first" else -1] = self.filters
        return tuple(shape)

    def weight_specs(self, input_shape: Shape) -> list[WeightSpec]:
        return self.kernel_spec(self._kernel_shape(input_shape))

    def forward(self, weights, x, mask, training, rng):
        from layerctl.ops.conv import conv_transpose_forward

        z, conv_cache = conv_transpose_forward(
            self.channels_last(x), weights["kernel"], self.stride_tuple(), self.padding,
            self.output_padding_tuple(), self.dilation_tuple())
        y, tail = self.finish(weights, z)
        return y, (conv_cache, tail)

    def backward(self, weights, cache, dy, need_dx=True, relu_applied=False):
        from layerctl.ops.conv import conv_transpose_backward

        conv_cache, tail = cache
        dz, grads = self.start_backward(tail, dy, relu_applied)
        dx, grads["kernel"] = conv_transpose_backward(conv_cache, dz, need_dx)
        return self.input_gradient(dx), grads


class Conv1DTranspose(BaseConvTranspose):
    """1D transposed convolution over (batch, steps, channels)."""

    type: Literal["Conv1DTranspose", "Convolution1DTranspose"]
    keras_class = "Conv1DTranspose"
    spatial_rank = 1


class Conv2DTranspose(BaseConvTranspose):
    """2D transposed convolution over (batch, rows, cols, channels) or channels_first."""

    type: Literal["Conv2DTranspose", "Convolution2DTranspose"]
    keras_class = "Conv2DTranspose"
    spatial_rank = 2
