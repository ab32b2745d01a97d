"""Resizing and CenterCrop: images resampled to a fixed height and width (Keras 3).

Both are separable maps, one per spatial axis (`layerctl.ops.resize`), computed from the actual
height and width of the batch (so unknown sizes work) and applied to the whole batch at once.
Their gradients flow to the input; neither has weights nor passes a mask on (Keras's image
layers do not support masking).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import field_validator

from layerctl.layers.base import (
    DataFormat,
    PositiveInt,
    Shape,
    SingleInputLayer,
    lower_string,
    require_rank,
)
from layerctl.ops.resize import Resampler, aspect_crop, resampler

INTERPOLATIONS = ("bilinear", "nearest")
KERAS_ONLY_INTERPOLATIONS = ("bicubic", "lanczos3", "lanczos5", "area")


class _ImageLayer(SingleInputLayer):
    """Shared by Resizing and CenterCrop: a (batch, h, w, c) or (batch, c, h, w) image batch
    becomes (batch, height, width, c) or (batch, c, height, width)."""

    height: PositiveInt
    width: PositiveInt
    data_format: DataFormat | None = None

    _lower = field_validator("data_format", mode="before")(lower_string)

    def spatial_axes(self) -> tuple[int, int]:
        return (2, 3) if self.data_format == "channels_first" else (1, 2)

    def output_shape(self, input_shape: Shape) -> Shape:
        require_rank(input_shape, exact=4)
        shape = list(input_shape)
        rows, cols = self.spatial_axes()
        shape[rows], shape[cols] = self.height, self.width
        return tuple(shape)

    def resamplers(self, height: int, width: int) -> tuple[Resampler, Resampler]:
        raise NotImplementedError

    def forward(self, weights, x, mask, training, rng):
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32)
        rows_axis, cols_axis = self.spatial_axes()
        rows, cols = self.resamplers(x.shape[rows_axis], x.shape[cols_axis])
        # the axis that shrinks more goes first: the intermediate image is the smaller one
        steps = [(rows, rows_axis), (cols, cols_axis)]
        if self.width * x.shape[rows_axis] < self.height * x.shape[cols_axis]:
            steps.reverse()
        for axis_map, axis in steps:
            x = axis_map.forward(x, axis)
        return x, steps

    def backward(self, weights, cache, dy):
        for axis_map, axis in reversed(cache):
            dy = axis_map.backward(dy, axis)
        return dy, {}


class Resizing(_ImageLayer):
    """Resample images to (height, width) with half-pixel centres: `bilinear` (the default) or
    `nearest`. With `crop_to_aspect_ratio`, the largest centred window of the target's aspect
    ratio is resized instead of the whole image (no distortion)."""

    type: Literal["Resizing"]
    interpolation: str = "bilinear"
    crop_to_aspect_ratio: bool = False

    keras_class = "Resizing"

    @field_validator("interpolation", mode="before")
    @classmethod
    def _known_interpolation(cls, value: Any) -> Any:
        if isinstance(value, str) and value in KERAS_ONLY_INTERPOLATIONS:
            raise ValueError(f"interpolation={value!r} is a Keras option that layerctl does not "
                             f"support (yet): use 'bilinear' or 'nearest'")
        if value not in INTERPOLATIONS:
            raise ValueError("Invalid value for argument `interpolation`. Expected of one "
                             f"{INTERPOLATIONS}. Received: interpolation={value}")
        return value

    def resamplers(self, height: int, width: int) -> tuple[Resampler, Resampler]:
        top, left, crop_height, crop_width = 0, 0, height, width
        if self.crop_to_aspect_ratio:
            top, left, crop_height, crop_width = aspect_crop(height, width, self.height,
                                                             self.width)
        return (resampler(height, self.height, self.interpolation, top, crop_height),
                resampler(width, self.width, self.interpolation, left, crop_width))


class CenterCrop(_ImageLayer):
    """The central (height, width) window of each image. An image smaller than that along
    either axis is resized as Keras's `smart_resize` does: its largest centred window of the
    target's aspect ratio, resized bilinearly to (height, width)."""

    type: Literal["CenterCrop"]

    keras_class = "CenterCrop"

    def crops(self, height: int, width: int) -> bool:
        """Whether a (height, width) image is cropped (fits) rather than resized."""
        return height >= self.height and width >= self.width

    def resamplers(self, height: int, width: int) -> tuple[Resampler, Resampler]:
        if self.crops(height, width):
            return (resampler(height, self.height, "crop", (height - self.height) // 2,
                              self.height),
                    resampler(width, self.width, "crop", (width - self.width) // 2, self.width))
        top, left, crop_height, crop_width = aspect_crop(height, width, self.height, self.width)
        return (resampler(height, self.height, "bilinear", top, crop_height),
                resampler(width, self.width, "bilinear", left, crop_width))
