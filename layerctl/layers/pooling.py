"""Max pooling over windows (1D, 2D) and over a whole sequence (GlobalMaxPooling1D).

`MaxPool` (no rank in its name) becomes MaxPooling1D or MaxPooling2D from the rank of its input.
The window math lives in `layerctl.ops.pool` (strided views, one reduction); these classes only
validate Keras's arguments, compute shapes, and move channels_first inputs to channels-last.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from layerctl.layers.base import (
    DataFormat,
    IncompatibleShape,
    Layer,
    Shape,
    SingleInputLayer,
    format_shape,
    int_tuple,
    lower_string,
    require_rank,
)

PoolSize = int | list[int] | tuple[int, ...]


def spatial_axes(data_format: str | None, rank: int) -> list[int]:
    return list(range(2, rank)) if data_format == "channels_first" else list(range(1, rank - 1))


def to_channels_last(x: np.ndarray, data_format: str | None) -> np.ndarray:
    return np.moveaxis(x, 1, -1) if data_format == "channels_first" else x


def from_channels_last(y: np.ndarray, data_format: str | None) -> np.ndarray:
    return np.moveaxis(y, -1, 1) if data_format == "channels_first" else y


class _MaxPooling(SingleInputLayer):
    """Shared by MaxPooling1D/2D: windows of `pool_size`, moved by `strides` (default pool_size)."""

    pool_size: PoolSize | None = None
    strides: PoolSize | None = None
    padding: Literal["valid", "same"] = "valid"
    data_format: DataFormat | None = None

    spatial_rank: ClassVar[int] = 0
    applies_input_relu: ClassVar[bool] = True   # see Graph._find_relu_pools

    _lower = field_validator("padding", "data_format", mode="before")(lower_string)

    @field_validator("padding", mode="before")
    @classmethod
    def _padding_message(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in ("valid", "same"):
            raise ValueError("Argument padding must be either 'valid' or 'same'. "
                             f"Received: padding={value}")
        return value

    @model_validator(mode="after")
    def _check_tuples(self) -> _MaxPooling:
        if self.spatial_rank:
            self.pool_tuple()
            self.stride_tuple()
        return self

    def pool_tuple(self) -> tuple[int, ...]:
        return int_tuple(2 if self.pool_size is None else self.pool_size, self.spatial_rank,
                         "pool_size")

    def stride_tuple(self) -> tuple[int, ...]:
        if self.strides is None:
            return self.pool_tuple()
        return int_tuple(self.strides, self.spatial_rank, "strides")

    def output_shape(self, input_shape: Shape) -> Shape:
        from layerctl.ops.windows import output_length

        require_rank(input_shape, exact=self.spatial_rank + 2)
        shape = list(input_shape)
        axes = spatial_axes(self.data_format, len(shape))
        for axis, pool, stride in zip(axes, self.pool_tuple(), self.stride_tuple(), strict=True):
            size = output_length(input_shape[axis], pool, self.padding, stride)
            if size is not None and size <= 0:
                raise IncompatibleShape(
                    "Computed output size would be zero or negative. Received: inputs.shape="
                    f"{format_shape(input_shape)}, pool_size={self.pool_tuple()}, strides="
                    f"{self.stride_tuple()}, padding={self.padding}.")
            shape[axis] = size
        return tuple(shape)

    def forward(self, weights, x, mask, training, rng):
        from layerctl.ops.pool import max_pool_forward

        y, cache = max_pool_forward(to_channels_last(x, self.data_format), self.pool_tuple(),
                                    self.stride_tuple(), self.padding)
        y = from_channels_last(y, self.data_format)
        return y, (cache, y)

    def backward(self, weights, cache, dy, input_relu=False):
        """With `input_relu` (set by the graph) x was relu(z) of a layer that left its relu
        gradient to this one: a window's dy reaches z only where the window's max is > 0.
        (In a window holding NaN that drops the gradient the layer's relu would pass to the
        first cell; the loss is NaN by then anyway.)"""
        from layerctl.ops.pool import max_pool_backward

        pool_cache, y = cache
        if input_relu:
            dy = dy * (y > 0)
        dx = max_pool_backward(pool_cache, to_channels_last(dy, self.data_format))
        return from_channels_last(dx, self.data_format), {}


class MaxPooling1D(_MaxPooling):
    """Max over windows of `pool_size` steps; input (batch, steps, features)."""

    type: Literal["MaxPooling1D", "MaxPool1D"]
    pool_size: PoolSize = 2
    keras_class = "MaxPooling1D"
    spatial_rank = 1


class MaxPooling2D(_MaxPooling):
    """Max over `pool_size` windows of rows × columns; input (batch, rows, cols, channels)."""

    type: Literal["MaxPooling2D", "MaxPool2D"]
    pool_size: PoolSize = (2, 2)
    keras_class = "MaxPooling2D"
    spatial_rank = 2


class MaxPool(_MaxPooling):
    """MaxPooling1D or MaxPooling2D, chosen by the rank of the input (3 or 4)."""

    type: Literal["MaxPool"]
    keras_class = "MaxPool"

    def resolve(self, input_shape: Shape, data_format: str) -> Layer:
        concrete = {3: MaxPooling1D, 4: MaxPooling2D}.get(len(input_shape))
        if concrete is None:
            raise IncompatibleShape("MaxPool needs an input of rank 3 (MaxPooling1D) or 4 "
                                    f"(MaxPooling2D); received {format_shape(input_shape)}")
        fields = self.model_dump(exclude={"type"}, exclude_unset=True)
        fields["type"] = concrete.keras_class
        return concrete.model_validate(fields).resolve(input_shape, data_format)

    def output_shape(self, input_shape: Shape) -> Shape:  # only reached before resolve()
        return self.resolve(input_shape, self.data_format or "channels_last").output_shape(
            input_shape)


class GlobalMaxPooling1D(SingleInputLayer):
    """Max over the steps axis: (batch, steps, features) → (batch, features)."""

    type: Literal["GlobalMaxPooling1D", "GlobalMaxPool1D"]
    data_format: DataFormat | None = None
    keepdims: bool = Field(default=False, description="Keep the steps axis with length 1.")

    keras_class = "GlobalMaxPooling1D"
    _lower = field_validator("data_format", mode="before")(lower_string)

    def _axis(self) -> int:
        return 2 if self.data_format == "channels_first" else 1

    def output_shape(self, input_shape: Shape) -> Shape:
        require_rank(input_shape, exact=3)
        axis = self._axis()
        if self.keepdims:
            return input_shape[:axis] + (1,) + input_shape[axis + 1:]
        return input_shape[:axis] + input_shape[axis + 1:]

    def forward(self, weights, x, mask, training, rng):
        axis = self._axis()
        winner = np.argmax(x, axis=axis)
        y = np.take_along_axis(x, np.expand_dims(winner, axis), axis=axis)
        return (y if self.keepdims else np.squeeze(y, axis)), (x.shape, winner)

    def backward(self, weights, cache, dy):
        shape, winner = cache
        axis = self._axis()
        dx = np.zeros(shape, dtype=dy.dtype)
        dy = dy if self.keepdims else np.expand_dims(dy, axis)
        np.put_along_axis(dx, np.expand_dims(winner, axis), dy, axis=axis)
        return dx, {}
