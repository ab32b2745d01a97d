"""Reshaping layers: Reshape, Flatten, Permute, RepeatVector, Cropping1D/2D, ZeroPadding1D/2D,
UpSampling1D/2D and Identity.

None of them has weights; each moves, copies or drops cells, so its backward is the matching
reshape, transpose, sum or zero-fill. Arguments are validated and normalized as Keras 3's
constructors do (`cropping: 2` becomes `((2, 2), (2, 2))`, as in Keras's get_config), with
Keras's messages. As in Keras 3 only Identity supports masking: every other layer here drops an
incoming mask (the plan warns). The cell-moving kernels live in `layerctl.ops.resample`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, Strict, field_validator

from layerctl.layers.base import (
    DataFormat,
    IncompatibleShape,
    NonNegativeInt,
    PositiveInt,
    Shape,
    SingleInputLayer,
    format_shape,
    lower_string,
    require_rank,
)
from layerctl.ops.resample import (
    crop_slices,
    linear_backward,
    linear_forward,
    repeat_backward,
    repeat_forward,
    zero_pad,
)

Pair = tuple[NonNegativeInt, NonNegativeInt]
# What a spec may write for Cropping2D/ZeroPadding2D; stored as the pair of pairs.
PairOfPairs = NonNegativeInt | Pair | tuple[Pair, Pair]
SizePair = PositiveInt | tuple[PositiveInt, PositiveInt]


# ---- Keras's argument checks ---------------------------------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: Any) -> Any:
    """The value as Keras prints it, lists written as the tuples a Python user would pass."""
    return tuple(_shown(v) for v in value) if isinstance(value, (list, tuple)) else value


def standardize_tuple(value: Any, n: int, name: str, *, allow_zero: bool) -> tuple[int, ...]:
    """An int or `n` ints, checked with the messages of Keras's `standardize_tuple`."""
    message = (f"The `{name}` argument must be a tuple of {n} integers. "
               f"Received {name}={_shown(value)}")
    if _is_int(value):
        values = (value,) * n
    elif isinstance(value, (list, tuple)) and len(value) == n:
        for element in value:
            if not _is_int(element):
                raise ValueError(f"{message}including element {element} of type "
                                 f"{type(element)}")
        values = tuple(value)
    else:
        raise ValueError(message)
    bad = {v for v in values if v < 0} if allow_zero else {v for v in values if v <= 0}
    if bad:
        rule = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{message}, including values {bad} that do not satisfy `value {rule}`")
    return values


def standardize_pairs(value: Any, name: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """Cropping2D/ZeroPadding2D's int, (symmetric height, width) or ((top, bottom), (left,
    right)), as ((top, bottom), (left, right)); Keras's messages (its text says `crop` for
    padding too)."""
    if _is_int(value):
        if value < 0:  # Keras checks this for cropping only; a negative padding fails later
            raise ValueError(f"`{name}` cannot be negative. Received: {name}={value}.")
        return ((value, value), (value, value))
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"`{name}` should have two elements. "
                             f"Received: {name}={_shown(value)}.")
        height = standardize_tuple(value[0], 2, f"1st entry of {name}", allow_zero=True)
        width = standardize_tuple(value[1], 2, f"2nd entry of {name}", allow_zero=True)
        return (height, width)  # type: ignore[return-value]
    raise ValueError(
        f"`{name}` should be either an int, a tuple of 2 ints (symmetric_height_crop, "
        "symmetric_width_crop), or a tuple of 2 tuples of 2 ints ((top_crop, bottom_crop), "
        f"(left_crop, right_crop)). Received: {name}={_shown(value)}.")


def positive_int(value: Any, name: str) -> Any:
    """RepeatVector's `n`, UpSampling1D's `size` (Keras raises TypeError for the first)."""
    if not _is_int(value):
        raise ValueError(f"Expected an integer value for `{name}`, got {type(value)}.")
    if value <= 0:
        raise ValueError(f"Argument `{name}` should be a positive integer. "
                         f"Received: {name}={value}")
    return value


def spatial_axes(data_format: str | None, spatial_rank: int) -> tuple[int, ...]:
    start = 2 if data_format == "channels_first" else 1
    return tuple(range(start, start + spatial_rank))


# ---- shapes ----------------------------------------------------------------------------------
class Reshape(SingleInputLayer):
    """`(batch, *target_shape)`; one entry may be −1, inferred from the input's size (None when
    the input has an unknown dimension). Cells keep their row-major order."""

    type: Literal["Reshape"]
    target_shape: tuple[Annotated[int, Strict()], ...] = Field(
        description="Shape without the batch axis; one entry may be -1.")

    keras_class = "Reshape"

    @field_validator("target_shape", mode="before")
    @classmethod
    def _keras_checks(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)) and all(_is_int(v) for v in value):
            shown = tuple(value)
            if any(v < -1 for v in value):
                raise ValueError("Each dimension in `target_shape` must be a non-negative "
                                 "integer, or `-1` for a single unknown dimension. Received: "
                                 f"target_shape={shown}.")
            if shown.count(-1) > 1:
                raise ValueError("There must be at most one unknown dimension (-1) in "
                                 f"`target_shape`. Received: target_shape={shown}.")
        return value

    def output_shape(self, input_shape: Shape) -> Shape:
        target, cells = self.target_shape, input_shape[1:]
        if None in cells:
            return (input_shape[0], *(None if d == -1 else d for d in target))
        size, known = math.prod(cells), math.prod(d for d in target if d != -1)
        if -1 not in target:
            if size != known:
                raise IncompatibleShape("The total size of the tensor must be unchanged. "
                                        f"Received: input_shape={tuple(cells)}, "
                                        f"target_shape={target}")
            return (input_shape[0], *target)
        if known == 0 or size % known:
            raise IncompatibleShape(
                "The total size of the tensor must be unchanged, however, the input size cannot "
                "by divided by the specified dimensions in target_shape. Received: "
                f"input_shape={tuple(cells)}, target_shape={target}")
        return (input_shape[0], *(size // known if d == -1 else d for d in target))

    def forward(self, weights, x, mask, training, rng):
        return x.reshape(x.shape[0], *self.target_shape), x.shape

    def backward(self, weights, cache, dy):
        return dy.reshape(cache), {}


class Flatten(SingleInputLayer):
    """Flattens all non-batch axes; channels_first inputs are moved to channels-last first, so
    the following Dense kernel means the same in both formats (as in Keras)."""

    type: Literal["Flatten"]
    data_format: DataFormat | None = None

    keras_class = "Flatten"

    _lower = field_validator("data_format", mode="before")(lower_string)

    def output_shape(self, input_shape: Shape) -> Shape:
        require_rank(input_shape, minimum=1)
        rest = input_shape[1:]
        size = None if None in rest else math.prod(rest)
        return (input_shape[0], size)

    def _to_channels_last(self, x: np.ndarray) -> np.ndarray:
        if self.data_format == "channels_first" and x.ndim > 2:
            return np.moveaxis(x, 1, -1)
        return x

    def forward(self, weights, x, mask, training, rng):
        return self._to_channels_last(x).reshape(x.shape[0], -1), x.shape

    def backward(self, weights, cache, dy):
        shape = cache
        if self.data_format == "channels_first" and len(shape) > 2:
            last = (shape[0],) + tuple(shape[2:]) + (shape[1],)
            return np.moveaxis(dy.reshape(last), -1, 1), {}
        return dy.reshape(shape), {}


class Permute(SingleInputLayer):
    """Reorders the non-batch axes: output axis k is input axis `dims[k-1]` (1-based, as in
    Keras); `dims: [2, 1]` swaps steps and features."""

    type: Literal["Permute"]
    dims: tuple[PositiveInt, ...] = Field(
        description="Permutation of 1..rank, without the batch axis.")

    keras_class = "Permute"

    @field_validator("dims", mode="before")
    @classmethod
    def _keras_check(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)) and all(_is_int(v) for v in value) and (
                sorted(value) != list(range(1, len(value) + 1))):
            raise ValueError("Invalid permutation argument `dims` for Permute Layer. The set of "
                             "indices in `dims` must be consecutive and start from 1. "
                             f"Received dims={_shown(value)}")
        return value

    def output_shape(self, input_shape: Shape) -> Shape:
        require_rank(input_shape, exact=len(self.dims) + 1)
        return (input_shape[0], *(input_shape[d] for d in self.dims))

    def forward(self, weights, x, mask, training, rng):
        # a copy: the next layers then read contiguous memory (Keras's transpose copies too)
        return np.ascontiguousarray(x.transpose(0, *self.dims)), None

    def backward(self, weights, cache, dy):
        return np.ascontiguousarray(dy.transpose(0, *np.argsort(self.dims) + 1)), {}


class RepeatVector(SingleInputLayer):
    """(batch, features) → (batch, n, features): the vector repeated `n` times."""

    type: Literal["RepeatVector"]
    n: PositiveInt = Field(description="Repetition factor.")

    keras_class = "RepeatVector"

    @field_validator("n", mode="before")
    @classmethod
    def _keras_check(cls, value: Any) -> Any:
        return positive_int(value, "n")

    def output_shape(self, input_shape: Shape) -> Shape:
        require_rank(input_shape, exact=2)
        return (input_shape[0], self.n, input_shape[1])

    def forward(self, weights, x, mask, training, rng):
        return np.repeat(x[:, None, :], self.n, axis=1), None

    def backward(self, weights, cache, dy):
        return dy.sum(axis=1), {}


class Identity(SingleInputLayer):
    """Returns its input; passes a mask on (Keras 3's Identity supports masking)."""

    type: Literal["Identity"]

    keras_class = "Identity"
    supports_masking = True

    def forward(self, weights, x, mask, training, rng):
        return x, None

    def backward(self, weights, cache, dy):
        return dy, {}


# ---- cropping and padding --------------------------------------------------------------------
class _Margins(SingleInputLayer):
    """Shared by the cropping and padding layers: (before, after) cells per spatial axis."""

    def margins(self) -> tuple[tuple[int, int], ...]:
        raise NotImplementedError

    def axes(self) -> tuple[int, ...]:
        margins = self.margins()
        return spatial_axes(getattr(self, "data_format", None), len(margins))


class Cropping1D(_Margins):
    """Drops `cropping` = (start, end) steps of (batch, steps, features)."""

    type: Literal["Cropping1D"]
    cropping: Pair = Field(default=(1, 1), description="Steps cut at the start and the end; "
                                                      "an int cuts as many at each.")

    keras_class = "Cropping1D"

    @field_validator("cropping", mode="before")
    @classmethod
    def _keras_check(cls, value: Any) -> Any:
        return standardize_tuple(value, 2, "cropping", allow_zero=True)

    def margins(self):
        return (self.cropping,)

    def output_shape(self, input_shape: Shape) -> Shape:
        require_rank(input_shape, exact=3)
        steps = input_shape[1]
        if steps is not None:
            steps -= sum(self.cropping)
            if steps <= 0:
                raise IncompatibleShape(
                    "`cropping` parameter of `Cropping1D` layer must be smaller than the input "
                    f"length. Received: input_shape={format_shape(input_shape)}, "
                    f"cropping={self.cropping}")
        return (input_shape[0], steps, input_shape[2])

    def forward(self, weights, x, mask, training, rng):
        return x[crop_slices(x.shape, self.margins(), self.axes())], None

    def backward(self, weights, cache, dy):
        return zero_pad(dy, self.margins(), self.axes()), {}


class Cropping2D(Cropping1D):
    """Drops `cropping` = ((top, bottom), (left, right)) rows and columns of an image, in
    either data format."""

    type: Literal["Cropping2D"]  # type: ignore[assignment]
    cropping: PairOfPairs = Field(  # type: ignore[assignment]
        default=((0, 0), (0, 0)),
        description="((top, bottom), (left, right)), (symmetric height, width) or an int.")
    data_format: DataFormat | None = None

    keras_class = "Cropping2D"

    _lower = field_validator("data_format", mode="before")(lower_string)

    @field_validator("cropping", mode="before")
    @classmethod
    def _keras_check(cls, value: Any) -> Any:
        return standardize_pairs(value, "cropping")

    def margins(self):
        return self.cropping

    def output_shape(self, input_shape: Shape) -> Shape:
        require_rank(input_shape, exact=4)
        shape = list(input_shape)
        for axis, crop in zip(self.axes(), self.cropping, strict=True):
            if shape[axis] is not None and sum(crop) >= shape[axis]:
                raise IncompatibleShape(
                    "Values in `cropping` argument should be smaller than the corresponding "
                    f"spatial dimension of the input. Received: input_shape="
                    f"{format_shape(input_shape)}, cropping={self.cropping}")
        for axis, crop in zip(self.axes(), self.cropping, strict=True):
            shape[axis] = None if shape[axis] is None else shape[axis] - sum(crop)
        return tuple(shape)


class ZeroPadding1D(_Margins):
    """Adds `padding` = (start, end) zero steps to (batch, steps, features)."""

    type: Literal["ZeroPadding1D"]
    padding: Pair = Field(default=(1, 1), description="Zero steps added at the start and the "
                                                     "end; an int adds as many at each.")
    data_format: DataFormat | None = None

    keras_class = "ZeroPadding1D"

    _lower = field_validator("data_format", mode="before")(lower_string)

    @field_validator("padding", mode="before")
    @classmethod
    def _keras_check(cls, value: Any) -> Any:
        return standardize_tuple(value, 2, "padding", allow_zero=True)

    def margins(self):
        return (self.padding,)

    def output_shape(self, input_shape: Shape) -> Shape:
        require_rank(input_shape, exact=len(self.margins()) + 2)
        shape = list(input_shape)
        for axis, pad in zip(self.axes(), self.margins(), strict=True):
            shape[axis] = None if shape[axis] is None else shape[axis] + sum(pad)
        return tuple(shape)

    def forward(self, weights, x, mask, training, rng):
        return zero_pad(x, self.margins(), self.axes()), x.shape

    def backward(self, weights, cache, dy):
        return dy[crop_slices(dy.shape, self.margins(), self.axes())], {}


class ZeroPadding2D(ZeroPadding1D):
    """Adds `padding` = ((top, bottom), (left, right)) rows and columns of zeros to an image."""

    type: Literal["ZeroPadding2D"]  # type: ignore[assignment]
    padding: PairOfPairs = Field(  # type: ignore[assignment]
        default=((1, 1), (1, 1)),
        description="((top, bottom), (left, right)), (symmetric height, width) or an int.")

    keras_class = "ZeroPadding2D"

    @field_validator("padding", mode="before")
    @classmethod
    def _keras_check(cls, value: Any) -> Any:
        return standardize_pairs(value, "padding")

    def margins(self):
        return self.padding


# ---- upsampling ------------------------------------------------------------------------------
class UpSampling1D(SingleInputLayer):
    """Repeats each step `size` times: (batch, steps, features) → (batch, steps·size, features)."""

    type: Literal["UpSampling1D"]
    size: PositiveInt = Field(default=2, description="Upsampling factor.")

    keras_class = "UpSampling1D"

    @field_validator("size", mode="before")
    @classmethod
    def _keras_check(cls, value: Any) -> Any:
        return positive_int(value, "size")

    def factors(self) -> tuple[int, ...]:
        return (self.size,)

    def axes(self) -> tuple[int, ...]:
        return (1,)

    def output_shape(self, input_shape: Shape) -> Shape:
        require_rank(input_shape, exact=len(self.factors()) + 2)
        shape = list(input_shape)
        for axis, factor in zip(self.axes(), self.factors(), strict=True):
            shape[axis] = None if shape[axis] is None else shape[axis] * factor
        return tuple(shape)

    def forward(self, weights, x, mask, training, rng):
        return repeat_forward(x, self.axes(), self.factors()), None

    def backward(self, weights, cache, dy):
        return repeat_backward(dy, self.axes(), self.factors()), {}


class UpSampling2D(UpSampling1D):
    """Scales an image's rows by size[0] and columns by size[1]: `nearest` repeats pixels,
    `bilinear` interpolates them as Keras 3 does (half-pixel centres, edge pixels clamped)."""

    type: Literal["UpSampling2D"]  # type: ignore[assignment]
    size: SizePair = Field(default=(2, 2),  # type: ignore[assignment]
                           description="Factors for rows and columns; an int for both.")
    data_format: DataFormat | None = None
    interpolation: Literal["nearest", "bilinear"] = "nearest"

    keras_class = "UpSampling2D"

    @field_validator("size", mode="before")
    @classmethod
    def _keras_check(cls, value: Any) -> Any:
        return standardize_tuple(value, 2, "size", allow_zero=False)

    @field_validator("interpolation", mode="before")
    @classmethod
    def _interpolation_message(cls, value: Any) -> Any:
        value = lower_string(value)
        if value in ("bicubic", "lanczos3", "lanczos5", "area"):
            raise ValueError(f"interpolation '{value}' is a Keras option that layerctl does not "
                             "support (yet): use 'nearest' or 'bilinear'")
        if isinstance(value, str) and value not in ("nearest", "bilinear"):
            raise ValueError("Invalid value for argument `interpolation`. Expected one of "
                             f"'nearest', 'bilinear'. Received: interpolation={value}")
        return value

    def factors(self) -> tuple[int, ...]:
        return self.size  # type: ignore[return-value]

    def axes(self) -> tuple[int, ...]:
        return spatial_axes(self.data_format, 2)

    def _linear_passes(self) -> list[tuple[int, int]]:
        """(axis, factor) of the bilinear passes, columns first: the column axis's phases are
        the strided ones (short runs of cells), so they run on the smaller, not-yet-upsampled
        array forward, and last, on the already-reduced gradient, backward."""
        passes = zip(self.axes(), self.factors(), strict=True)
        return [(axis, factor) for axis, factor in reversed(list(passes)) if factor > 1]

    def forward(self, weights, x, mask, training, rng):
        if self.interpolation == "nearest":
            return super().forward(weights, x, mask, training, rng)
        for axis, factor in self._linear_passes():
            x = linear_forward(x, axis, factor)
        return x, None

    def backward(self, weights, cache, dy):
        if self.interpolation == "nearest":
            return super().backward(weights, cache, dy)
        for axis, factor in reversed(self._linear_passes()):
            dy = linear_backward(dy, axis, factor)
        return dy, {}
