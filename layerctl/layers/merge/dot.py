"""Dot: the per-sample dot product of two inputs along one axis of each (Keras 3's `batch_dot`).

With inputs x (batch, a…, k, b…) contracted at its axis `axes[0]` and y (batch, c…, k, d…) at
`axes[1]`, the output is (batch, a…, b…, c…, d…): x's remaining axes, then y's; a result of rank
1 becomes (batch, 1). `normalize` first divides each input by its L2 norm along its axis (Keras:
x · min(1/‖x‖, 1/ε), ε = 1e-7), so the output is the cosine proximity. Masks are accepted and
dropped (Keras's `compute_mask` returns None).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import field_validator

from layerctl.layers.base import IncompatibleShape, Layer, Shape, format_shape
from layerctl.ops.blas import matmul

EPSILON = 1e-7  # keras.backend.epsilon()


class Dot(Layer):
    """y = Σₖ x[…, k, …] · y[…, k, …] per sample, along `axes` (an int, or one per input)."""

    type: Literal["Dot"]
    axes: int | tuple[int, int]
    normalize: bool = False

    keras_class = "Dot"
    supports_masking = True
    min_inputs = 2
    max_inputs = 2

    @field_validator("axes", mode="before")
    @classmethod
    def _keras_axes(cls, value: Any) -> Any:
        """Keras's constructor checks, with its messages."""
        if isinstance(value, bool) or not isinstance(value, (int, list, tuple)):
            raise ValueError("Invalid type for argument `axes`: it should be a list or an int. "
                             f"Received: axes={value}")
        if isinstance(value, int):
            if value == 0:
                raise ValueError(_BATCH_AXIS)
            return value
        if len(value) != 2:
            raise ValueError("Invalid format for argument `axes`: it should contain two "
                             f"elements. Received: axes={value}")
        if not all(isinstance(a, int) and not isinstance(a, bool) for a in value):
            raise ValueError("Invalid format for argument `axes`: list elements should be "
                             f"integers. Received: axes={value}")
        if 0 in value:
            raise ValueError(_BATCH_AXIS)
        return tuple(value)

    def emits_mask(self, receives_mask: Any) -> bool:
        return False

    def output_mask(self, xs, masks):
        return None

    def normalized_axes(self, ranks: tuple[int, int]) -> tuple[int, int]:
        """The contracted axis of each input, as non-negative numbers."""
        pair = (self.axes, self.axes) if isinstance(self.axes, int) else self.axes
        return pair[0] % ranks[0], pair[1] % ranks[1]

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        first, second = input_shapes
        if len(first) < 2 or len(second) < 2:
            raise IncompatibleShape(
                "Cannot do batch_dot on inputs with rank < 2. Received inputs with shapes "
                f"{format_shape(first)} and {format_shape(second)}.")
        a, b = self.normalized_axes((len(first), len(second)))
        if not (-len(first) <= _pair(self.axes)[0] < len(first)
                and -len(second) <= _pair(self.axes)[1] < len(second)):
            raise IncompatibleShape(f"axes={self.axes} are out of range for inputs of shapes "
                                    f"{format_shape(first)} and {format_shape(second)}")
        if 0 in (a, b):
            raise IncompatibleShape(_BATCH_AXIS)
        if first[a] != second[b]:
            shown = _pair(self.axes) if not isinstance(self.axes, int) or self.axes > 0 else (a, b)
            raise IncompatibleShape(
                f"Incompatible input shapes: axis values {first[a]} (at axis {shown[0]}) != "
                f"{second[b]} (at axis {shown[1]}). Full input shapes: "
                f"{format_shape(first)}, {format_shape(second)}")
        rest = first[:a] + first[a + 1:] + second[1:b] + second[b + 1:]
        return rest + (1,) if len(rest) == 1 else rest

    # ---- math: x (B, M, K) @ y (B, K, N), the contracted axes moved next to each other -----
    def forward(self, weights, xs, masks, training, rng):
        x, y = xs
        a, b = self.normalized_axes((x.ndim, y.ndim))
        scales = (None, None)
        if self.normalize:
            (x, x_scale), (y, y_scale) = _l2_normalize(x, a), _l2_normalize(y, b)
            scales = (x_scale, y_scale)
        x3 = np.moveaxis(x, a, -1)
        y3 = np.moveaxis(y, b, 1)
        x_rest, y_rest = x3.shape[1:-1], y3.shape[2:]
        x3 = x3.reshape(len(x3), -1, x3.shape[-1])
        y3 = y3.reshape(len(y3), y3.shape[1], -1)
        out = matmul(x3, y3).reshape((len(x3),) + x_rest + y_rest)
        if out.ndim == 1:
            out = out[:, None]
        return out, (x3, y3, x.shape, y.shape, (a, b), xs, scales)

    def backward(self, weights, cache, dy):
        x3, y3, x_shape, y_shape, (a, b), xs, scales = cache
        d3 = dy.reshape(len(dy), x3.shape[1], y3.shape[2])
        dx3 = matmul(d3, np.swapaxes(y3, 1, 2))
        dy3 = matmul(np.swapaxes(x3, 1, 2), d3)
        moved_x = np.moveaxis(np.empty(x_shape, bool), a, -1).shape
        moved_y = np.moveaxis(np.empty(y_shape, bool), b, 1).shape
        dx = np.moveaxis(dx3.reshape(moved_x), -1, a)
        dy_ = np.moveaxis(dy3.reshape(moved_y), 1, b)
        if self.normalize:
            dx = _l2_normalize_backward(xs[0], scales[0], dx, a)
            dy_ = _l2_normalize_backward(xs[1], scales[1], dy_, b)
        return [dx, dy_], {}


_BATCH_AXIS = ("Cannot perform batch_dot over axis 0. If your inputs are not batched, add a "
               "dummy batch dimension to your inputs using keras.ops.expand_dims(x, 0)")


def _pair(axes: int | tuple[int, int]) -> tuple[int, int]:
    return (axes, axes) if isinstance(axes, int) else axes


def _l2_normalize(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """x · min(1/‖x‖, 1/ε) along `axis`, and that scale (Keras's `ops.normalize`)."""
    squares = np.sum(x * x, axis=axis, keepdims=True)
    with np.errstate(divide="ignore"):
        scale = np.minimum(1 / np.sqrt(squares), x.dtype.type(1 / EPSILON))
    return x * scale, scale


def _l2_normalize_backward(x: np.ndarray, scale: np.ndarray, dy: np.ndarray,
                           axis: int) -> np.ndarray:
    """Where the norm is above ε: (dy − x̂ (x̂·dy)) / ‖x‖; below, the scale is constant."""
    unit = x * scale
    along = np.sum(unit * dy, axis=axis, keepdims=True)
    clipped = scale >= x.dtype.type(1 / EPSILON)
    return np.where(clipped, dy * scale, (dy - unit * along) * scale)
