"""Rescaling: `y = x · scale + offset`, in training and inference alike (Keras 3)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from layerctl.layers.base import IncompatibleShape, Number, Shape, SingleInputLayer, format_shape

Scalars = Number | list[Number]


class Rescaling(SingleInputLayer):
    """Multiply every value by `scale` and add `offset` (e.g. `scale: 0.00392156862745098` maps
    [0, 255] to [0, 1]). A list broadcasts against the trailing axes, as NumPy broadcasts (one
    value per channel of a channels_last image)."""

    type: Literal["Rescaling"]
    scale: Scalars
    offset: Scalars = 0.0

    keras_class = "Rescaling"
    supports_masking = True

    def output_shape(self, input_shape: Shape) -> Shape:
        features = tuple(1 if d is None else d for d in input_shape[1:])
        for name in ("scale", "offset"):
            value = np.asarray(getattr(self, name))
            try:
                grown = np.broadcast_shapes(features, value.shape)
            except ValueError:
                grown = None
            if grown != features:
                raise IncompatibleShape(
                    f"`{name}` of shape {value.shape} cannot be broadcast to the input shape "
                    f"{format_shape(input_shape)}")
        return input_shape

    def forward(self, weights, x, mask, training, rng):
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
        scale = np.asarray(self.scale, dtype)
        return x.astype(dtype, copy=False) * scale + np.asarray(self.offset, dtype), scale

    def backward(self, weights, cache, dy):
        return dy * cache, {}
