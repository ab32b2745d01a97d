"""Merge layers: Add and Concatenate, joining several branches of a DAG spec."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Strict

from layerctl.layers.base import IncompatibleShape, Layer, Shape, format_shape


def _combine_masks(masks: list) -> np.ndarray | None:
    """Keras merges input masks with a logical AND; an input without a mask keeps everything."""
    present = [m for m in masks if m is not None]
    if not present:
        return None
    return np.logical_and.reduce(present) if len(present) > 1 else present[0]


class Add(Layer):
    """Element-wise sum of inputs of the same shape."""

    type: Literal["Add"]

    keras_class = "Add"
    supports_masking = True
    min_inputs = 2
    max_inputs = 1_000

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        first = input_shapes[0]
        for shape in input_shapes[1:]:
            if len(shape) != len(first) or any(
                a is not None and b is not None and a != b
                for a, b in zip(first, shape, strict=True)
            ):
                raise IncompatibleShape(
                    "Inputs have incompatible shapes. Received shapes "
                    f"{format_shape(first)} and {format_shape(shape)}"
                )
        return tuple(
            next((d for d in dims if d is not None), None)
            for dims in zip(*input_shapes, strict=True)
        )

    def output_mask(self, xs, masks):
        return _combine_masks(masks)

    def forward(self, weights, xs, masks, training, rng):
        return sum(xs[1:], xs[0].copy()), len(xs)

    def backward(self, weights, cache, dy):
        return [dy] * cache, {}


class Concatenate(Layer):
    """Joins inputs along `axis`; every other axis must match."""

    type: Literal["Concatenate"]
    axis: Annotated[int, Strict()] = -1

    keras_class = "Concatenate"
    supports_masking = True
    min_inputs = 2
    max_inputs = 1_000

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        rank = len(input_shapes[0])
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            raise IncompatibleShape(
                f"axis {self.axis} is not a feature axis of inputs of rank {rank}"
            )
        axis = self.axis % rank
        for shape in input_shapes:
            others = [d for i, d in enumerate(shape) if i != axis]
            firsts = [d for i, d in enumerate(input_shapes[0]) if i != axis]
            if len(shape) != rank or any(
                a is not None and b is not None and a != b
                for a, b in zip(others, firsts, strict=True)
            ):
                raise IncompatibleShape(
                    "A `Concatenate` layer requires inputs with matching shapes except for the "
                    "concatenation axis. Received: input_shape=["
                    + ", ".join(format_shape(s) for s in input_shapes)
                    + "]"
                )
        sizes = [s[axis] for s in input_shapes]
        joined = None if None in sizes else sum(sizes)
        return input_shapes[0][:axis] + (joined,) + input_shapes[0][axis + 1 :]

    def output_mask(self, xs, masks):
        return _combine_masks(masks)

    def forward(self, weights, xs, masks, training, rng):
        axis = self.axis % xs[0].ndim
        return np.concatenate(xs, axis=axis), (axis, np.cumsum([x.shape[axis] for x in xs])[:-1])

    def backward(self, weights, cache, dy):
        axis, splits = cache
        return np.split(dy, splits, axis=axis), {}
