"""The math and argument rules that the per-sample normalizations share.

`standardize` is `(x − mean) / sqrt(var + ε)` over some axes, with the biased variance, and
`standardize_backward` is its gradient: one reduction per statistic, whatever the axes.
LayerNormalization and GroupNormalization (over the axes of a group) use both;
`axis_argument` and `positive_axes` check an `axis: int | [int, ...]` the way Keras does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from layerctl.layers.base import IncompatibleShape


def standardize(
    x: np.ndarray, axes: tuple[int, ...], epsilon: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x̂, 1/sqrt(var + ε), mean), the statistics kept with a singleton `axes`.

    The variance is the mean of squared deviations (Keras's torch backend takes E[x²] − E[x]²,
    which agrees to rounding and cannot go negative here)."""
    mean = x.mean(axis=axes, keepdims=True)
    x_hat = x - mean
    variance = np.square(x_hat).mean(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(variance + x.dtype.type(epsilon))
    x_hat *= inv_std
    return x_hat, inv_std, mean


def standardize_backward(
    dx_hat: np.ndarray, x_hat: np.ndarray, inv_std: np.ndarray, axes: tuple[int, ...]
) -> np.ndarray:
    """dx from dx̂ for x̂ = standardize(x): mean and variance both depend on x, so
    dx = inv_std · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂)), the means over `axes`."""
    mean_g = dx_hat.mean(axis=axes, keepdims=True)
    mean_g_x_hat = (dx_hat * x_hat).mean(axis=axes, keepdims=True)
    return inv_std * (dx_hat - mean_g - x_hat * mean_g_x_hat)


def axis_argument(value: Any, message: str) -> Any:
    """Keras's check of an `axis` that may be an int or a list of ints (`message` is its text,
    with `{axis}` for the value); Keras 3 then accepts what reduces over no axis at all, so an
    empty list is refused here too."""
    def is_int(item: Any) -> bool:
        return isinstance(item, int) and not isinstance(item, bool)

    if isinstance(value, tuple):
        value = list(value)
    if not (is_int(value) or (isinstance(value, list) and all(is_int(a) for a in value))):
        raise ValueError(message.format(axis=value))
    if value == []:
        raise ValueError("`axis` must name at least one axis. Received: axis=[]")
    return value


def positive_axes(
    axis: int | list[int], rank: int, out_of_bounds: Callable[[int], str]
) -> tuple[int, ...]:
    """`axis` as sorted non-negative axes of an input of rank `rank`; an axis outside the input
    raises IncompatibleShape with `out_of_bounds(axis)`, one named twice (say 1 and −2 of a
    rank-3 input) is refused, as Keras would fail on it later in an obscure way."""
    axes = [axis] if isinstance(axis, int) else axis
    for a in axes:
        if not -rank <= a < rank:
            raise IncompatibleShape(out_of_bounds(a))
    positive = sorted(a % rank for a in axes)
    if len(set(positive)) < len(positive):
        raise IncompatibleShape(
            f"`axis` names an axis twice: axis={axis} for an input of rank {rank}"
        )
    return tuple(positive)
