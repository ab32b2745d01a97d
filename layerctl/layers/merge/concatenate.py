"""Concatenate: joins its inputs along `axis`, and their masks as Keras 3 does.

Keras's mask rule (keras/src/layers/merging/concatenate.py): an input without a mask counts as
all-true; each (batch, ...) mask is stretched over its input's last axis, the stretched masks are
joined along `axis`, and the result is reduced with any() over the last axis. So along the time
axis the mask gets longer, and along the feature axis the masks are ORed (an unmasked input
makes every step kept).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Strict

from layerctl.layers.base import IncompatibleShape, Layer, Shape, format_shape


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
        if all(m is None for m in masks):
            return None
        axis = self.axis % xs[0].ndim
        stretched = [np.ones(x.shape, bool) if m is None
                     else m if m.ndim == x.ndim else np.broadcast_to(m[..., None], x.shape)
                     for x, m in zip(xs, masks, strict=True)]
        return np.any(np.concatenate(stretched, axis=axis), axis=-1)

    def forward(self, weights, xs, masks, training, rng):
        axis = self.axis % xs[0].ndim
        return np.concatenate(xs, axis=axis), (axis, np.cumsum([x.shape[axis] for x in xs])[:-1])

    def backward(self, weights, cache, dy):
        axis, splits = cache
        return np.split(dy, splits, axis=axis), {}
