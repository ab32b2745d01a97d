"""Pooling: max and average over windows (1D, 2D) and over all steps or pixels (global).

`MaxPool` and `AvgPool` (no rank in their names) become the 1D or 2D class from the rank of their
input. The window math lives in `layerctl.ops.pool` (strided slices over the whole batch, shared
by max and average); these classes validate Keras's arguments, compute shapes, and move
channels_first inputs to channels-last. Global pooling is one reduction over the spatial axes;
GlobalAveragePooling1D leaves masked steps out of its mean and, as in Keras, makes no mask.
"""

from __future__ import annotations

import math
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


class _Pooling(SingleInputLayer):
    """Shared by the window pools: windows of `pool_size`, moved by `strides` (default
    pool_size), `valid` or `same` (TF's rule: the odd padding cell at the end)."""

    pool_size: PoolSize | None = None
    strides: PoolSize | None = None
    padding: Literal["valid", "same"] = "valid"
    data_format: DataFormat | None = None

    spatial_rank: ClassVar[int] = 0

    _lower = field_validator("padding", "data_format", mode="before")(lower_string)

    @field_validator("padding", mode="before")
    @classmethod
    def _padding_message(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in ("valid", "same"):
            raise ValueError("Argument `padding` must be either 'valid' or 'same'. "
                             f"Received: padding={value}")
        return value

    @model_validator(mode="after")
    def _check_tuples(self) -> _Pooling:
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

    def pool_arguments(self) -> tuple:
        """(pool size, strides, padding) as the pooling ops (and inference's steps) take them."""
        return self.pool_tuple(), self.stride_tuple(), self.padding


class BaseMaxPooling(_Pooling):
    """What MaxPooling1D, MaxPooling2D and MaxPool share, the gradient of a relu that feeds only
    them included (see `applies_input_relu`)."""

    applies_input_relu: ClassVar[bool] = True   # see Graph._find_relu_pools

    def forward(self, weights, x, mask, training, rng):
        from layerctl.ops.pool import max_pool_forward

        y, cache = max_pool_forward(to_channels_last(x, self.data_format), *self.pool_arguments())
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


class _AveragePooling(_Pooling):
    def forward(self, weights, x, mask, training, rng):
        from layerctl.ops.pool import average_pool_forward

        y, cache = average_pool_forward(to_channels_last(x, self.data_format),
                                        *self.pool_arguments())
        return from_channels_last(y, self.data_format), cache

    def backward(self, weights, cache, dy):
        from layerctl.ops.pool import average_pool_backward

        dx = average_pool_backward(cache, to_channels_last(dy, self.data_format))
        return from_channels_last(dx, self.data_format), {}


def _by_rank(layer: _Pooling, input_shape: Shape, data_format: str,
             classes: tuple[type[_Pooling], type[_Pooling]]) -> Layer:
    """The 1D or 2D class of `classes` for an input of rank 3 or 4, with the same arguments."""
    concrete = {3: classes[0], 4: classes[1]}.get(len(input_shape))
    if concrete is None:
        raise IncompatibleShape(f"{layer.keras_class} needs an input of rank 3 "
                                f"({classes[0].keras_class}) or 4 ({classes[1].keras_class}); "
                                f"received {format_shape(input_shape)}")
    fields = layer.model_dump(exclude={"type"}, exclude_unset=True)
    fields["type"] = concrete.keras_class
    return concrete.model_validate(fields).resolve(input_shape, data_format)


class MaxPooling1D(BaseMaxPooling):
    """Max over windows of `pool_size` steps; input (batch, steps, features)."""

    type: Literal["MaxPooling1D", "MaxPool1D"]
    pool_size: PoolSize = 2
    keras_class = "MaxPooling1D"
    spatial_rank = 1


class MaxPooling2D(BaseMaxPooling):
    """Max over `pool_size` windows of rows × columns; input (batch, rows, cols, channels)."""

    type: Literal["MaxPooling2D", "MaxPool2D"]
    pool_size: PoolSize = (2, 2)
    keras_class = "MaxPooling2D"
    spatial_rank = 2


class MaxPool(BaseMaxPooling):
    """MaxPooling1D or MaxPooling2D, chosen by the rank of the input (3 or 4)."""

    type: Literal["MaxPool"]
    keras_class = "MaxPool"

    def resolve(self, input_shape: Shape, data_format: str) -> Layer:
        return _by_rank(self, input_shape, data_format, (MaxPooling1D, MaxPooling2D))

    def output_shape(self, input_shape: Shape) -> Shape:  # only reached before resolve()
        return self.resolve(input_shape, self.data_format or "channels_last").output_shape(
            input_shape)


class AveragePooling1D(_AveragePooling):
    """Mean over windows of `pool_size` steps; with `same`, over the window's cells inside the
    input only. Input (batch, steps, features)."""

    type: Literal["AveragePooling1D", "AvgPool1D"]
    pool_size: PoolSize = Field(description="Window size (steps).")
    keras_class = "AveragePooling1D"
    spatial_rank = 1


class AveragePooling2D(_AveragePooling):
    """Mean over `pool_size` windows of rows × columns; with `same`, over the window's cells
    inside the input only. Input (batch, rows, cols, channels)."""

    type: Literal["AveragePooling2D", "AvgPool2D"]
    pool_size: PoolSize = Field(description="Window size (rows, columns) or one int for both.")
    keras_class = "AveragePooling2D"
    spatial_rank = 2


class AvgPool(_AveragePooling):
    """AveragePooling1D or AveragePooling2D, chosen by the rank of the input (3 or 4)."""

    type: Literal["AvgPool"]
    pool_size: PoolSize = Field(description="Window size; an int is used on every axis.")
    keras_class = "AvgPool"

    def resolve(self, input_shape: Shape, data_format: str) -> Layer:
        return _by_rank(self, input_shape, data_format, (AveragePooling1D, AveragePooling2D))

    def output_shape(self, input_shape: Shape) -> Shape:  # only reached before resolve()
        return self.resolve(input_shape, self.data_format or "channels_last").output_shape(
            input_shape)


# ---- global pooling ----------------------------------------------------------------------------
class _GlobalPooling(SingleInputLayer):
    """Shared by the global pools: one reduction over every spatial axis (steps, or rows and
    columns); `keepdims` keeps them with length 1."""

    data_format: DataFormat | None = None
    keepdims: bool = Field(default=False, description="Keep the pooled axes with length 1.")

    spatial_rank: ClassVar[int] = 1
    _lower = field_validator("data_format", mode="before")(lower_string)

    def pooled_axes(self) -> tuple[int, ...]:
        first = 2 if self.data_format == "channels_first" else 1
        return tuple(range(first, first + self.spatial_rank))

    def output_shape(self, input_shape: Shape) -> Shape:
        require_rank(input_shape, exact=self.spatial_rank + 2)
        axes = self.pooled_axes()
        return tuple(1 if axis in axes else size for axis, size in enumerate(input_shape)
                     if self.keepdims or axis not in axes)

    def _expand(self, dy: np.ndarray) -> np.ndarray:
        """dy with the pooled axes back (length 1), to broadcast over the input."""
        return dy if self.keepdims else np.expand_dims(dy, self.pooled_axes())


class _GlobalMaxPooling(_GlobalPooling):
    def _flat(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """x with its spatial axes (adjacent in both layouts) as one axis, and that axis."""
        axes = self.pooled_axes()
        return x.reshape(*x.shape[:axes[0]], -1, *x.shape[axes[-1] + 1:]), axes[0]

    def forward(self, weights, x, mask, training, rng):
        flat, axis = self._flat(x)
        winner = np.expand_dims(np.argmax(flat, axis=axis), axis)   # ties: the first cell
        y = np.take_along_axis(flat, winner, axis=axis)
        kept = tuple(1 if a in self.pooled_axes() else n for a, n in enumerate(x.shape))
        y = y.reshape(kept) if self.keepdims else y.squeeze(axis)
        return y, (x.shape, winner)

    def backward(self, weights, cache, dy):
        shape, winner = cache
        axis = self.pooled_axes()[0]
        flat_shape = (*shape[:axis], -1, *shape[axis + self.spatial_rank:])
        dx = np.zeros(shape, dtype=dy.dtype).reshape(flat_shape)
        np.put_along_axis(dx, winner, self._expand(dy).reshape(winner.shape), axis=axis)
        return dx.reshape(shape), {}


class _GlobalAveragePooling(_GlobalPooling):
    def forward(self, weights, x, mask, training, rng):
        return np.mean(x, axis=self.pooled_axes(), keepdims=self.keepdims), (x.shape, None, None)

    def backward(self, weights, cache, dy):
        """dy / cells to every cell; with a mask (`keep`), dy / count to the unmasked steps."""
        shape, keep, count = cache
        if keep is None:
            cells = math.prod(shape[axis] for axis in self.pooled_axes())
            return np.broadcast_to(self._expand(dy) / dy.dtype.type(cells), shape).copy(), {}
        with np.errstate(invalid="ignore", divide="ignore"):
            share = self._expand(dy) / count
        return np.where(keep > 0, np.broadcast_to(share, shape), 0).astype(dy.dtype), {}


class GlobalMaxPooling1D(_GlobalMaxPooling):
    """Max over the steps axis: (batch, steps, features) → (batch, features)."""

    type: Literal["GlobalMaxPooling1D", "GlobalMaxPool1D"]
    keras_class = "GlobalMaxPooling1D"


class GlobalMaxPooling2D(_GlobalMaxPooling):
    """Max over rows and columns: (batch, rows, cols, channels) → (batch, channels)."""

    type: Literal["GlobalMaxPooling2D", "GlobalMaxPool2D"]
    keras_class = "GlobalMaxPooling2D"
    spatial_rank = 2


class GlobalAveragePooling2D(_GlobalAveragePooling):
    """Mean over rows and columns: (batch, rows, cols, channels) → (batch, channels)."""

    type: Literal["GlobalAveragePooling2D", "GlobalAvgPool2D"]
    keras_class = "GlobalAveragePooling2D"
    spatial_rank = 2


class GlobalAveragePooling1D(_GlobalAveragePooling):
    """Mean over the steps axis: (batch, steps, features) → (batch, features).

    With a mask, the mean of the unmasked steps only (a sample with every step masked gives NaN,
    0/0, as in Keras). The mask stops here: Keras's compute_mask returns None.
    """

    type: Literal["GlobalAveragePooling1D", "GlobalAvgPool1D"]
    keras_class = "GlobalAveragePooling1D"
    supports_masking = True
    reads_mask = True

    def emits_mask(self, receives_mask: bool) -> bool:
        return False

    def output_mask(self, x, mask):
        return None

    def forward(self, weights, x, mask, training, rng):
        if mask is None:
            return super().forward(weights, x, mask, training, rng)
        # the mask (batch, steps) as 0/1 in x's layout: (batch, steps, 1) or (batch, 1, steps)
        features = 1 if self.data_format == "channels_first" else 2
        keep = np.expand_dims(mask, features).astype(x.dtype)
        axis = self.pooled_axes()
        count = np.sum(keep, axis=axis, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.sum(np.where(keep > 0, x, 0), axis=axis, keepdims=True) / count
        return (y if self.keepdims else np.squeeze(y, axis)), (x.shape, keep, count)
