"""Image resampling along one axis at a time (Keras Resizing / CenterCrop math), as pure NumPy.

Resizing an image is separable: each spatial axis is resampled on its own, so an output axis of
length m is a fixed linear map of an input axis of length n. `Resampler` holds that map for one
axis and applies it to a whole batch at once:

- `nearest` and plain crops pick one input cell per output cell (a gather, `np.take`); backward
  sums the gradients of the output cells that picked the same input cell (the picks are sorted,
  so that is one `np.add.reduceat`) and leaves zeros where nothing was picked;
- `bilinear` is an (m, n) matrix with at most two non-zeros per row, applied as one matmul over
  the batch (x viewed as (before, n, after)); backward multiplies by its transpose.

The source coordinates follow Keras 3's torch backend, our oracle (`F.interpolate`, half-pixel
centres, `align_corners=False`): output cell i samples input coordinate s = (i + ½)·n/m − ½;
bilinear clamps s below at 0 and blends cells ⌊s⌋ and min(⌊s⌋ + 1, n − 1); nearest (torch's
`nearest-exact`, also jax.image.resize's) takes cell min(⌊(i + ½)·n/m⌋, n − 1), with the scale
n/m rounded to float32 first as torch does, so ties fall on the same side. A crop (a start and a
length inside the axis) is folded into the same map: columns outside it stay zero.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Resampler:
    """The map from an input axis of length `n_in` to an output axis of length `n_out`: either
    sorted `indices` into the input (a gather) or a dense (n_out, n_in) `matrix`."""

    n_in: int
    n_out: int
    indices: np.ndarray | None
    matrix: np.ndarray | None

    def forward(self, x: np.ndarray, axis: int) -> np.ndarray:
        if self.indices is not None:
            return np.take(x, self.indices, axis=axis)
        return _apply_matrix(self.matrix.astype(x.dtype, copy=False), x, axis)

    def backward(self, dy: np.ndarray, axis: int) -> np.ndarray:
        if self.indices is None:
            return _apply_matrix(self.matrix.T.astype(dy.dtype, copy=False), dy, axis)
        picked, first = np.unique(self.indices, return_index=True)  # sorted: runs of repeats
        shape = list(dy.shape)
        shape[axis] = self.n_in
        dx = np.zeros(shape, dy.dtype)
        where = [slice(None)] * dy.ndim
        where[axis] = picked
        dx[tuple(where)] = np.add.reduceat(dy, first, axis=axis)
        return dx


def _apply_matrix(matrix: np.ndarray, x: np.ndarray, axis: int) -> np.ndarray:
    """matrix (m, n) applied along `axis` of x: one batched matmul on x as (before, n, after)."""
    before = int(np.prod(x.shape[:axis], dtype=np.int64))
    after = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    y = np.matmul(matrix, np.ascontiguousarray(x).reshape(before, x.shape[axis], after))
    return y.reshape(x.shape[:axis] + (matrix.shape[0],) + x.shape[axis + 1:])


@functools.lru_cache(maxsize=256)
def resampler(n_in: int, n_out: int, interpolation: str, start: int = 0,
              length: int | None = None) -> Resampler:
    """The map resampling cells [start, start + length) of an axis of `n_in` cells onto
    `n_out` cells; `interpolation` is `nearest`, `bilinear`, or `crop` (length == n_out, a
    plain slice)."""
    length = n_in - start if length is None else length
    if interpolation == "crop" or length == n_out:  # every method maps cell i to cell i
        return Resampler(n_in, n_out, start + np.arange(n_out), None)
    if interpolation == "nearest":
        scale = np.float64(np.float32(length / n_out))  # torch rounds the scale to float32
        picks = np.floor((np.arange(n_out) + 0.5) * scale).astype(np.int64)
        return Resampler(n_in, n_out, start + np.minimum(picks, length - 1), None)
    source = np.maximum((np.arange(n_out) + 0.5) * (length / n_out) - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(np.int64), length - 1)
    high = np.minimum(low + 1, length - 1)
    weight_high = source - low
    matrix = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    np.add.at(matrix, (rows, start + low), 1.0 - weight_high)  # low == high at the last cell
    np.add.at(matrix, (rows, start + high), weight_high)
    return Resampler(n_in, n_out, None, matrix)


def aspect_crop(height: int, width: int, target_height: int,
                target_width: int) -> tuple[int, int, int, int]:
    """(top, left, crop height, crop width): the largest centred window of the target's aspect
    ratio, exactly as Keras computes it (`crop_to_aspect_ratio`, `smart_resize`)."""
    crop_height = max(min(height, int(float(width * target_height) / target_width)), 1)
    crop_width = max(min(width, int(float(height * target_width) / target_height)), 1)
    top = int(float(height - crop_height) / 2)
    left = int(float(width - crop_width) / 2)
    return top, left, crop_height, crop_width
