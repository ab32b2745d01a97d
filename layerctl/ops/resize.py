"""Image resampling along one axis at a time (Keras Resizing / CenterCrop math), as pure NumPy.

Resizing an image is separable: each spatial axis is resampled on its own, so an output axis of
length m is a fixed linear map of an input axis of length n. `Resampler` holds that map for one
axis and applies it to a whole batch at once:

- `nearest` and plain crops pick one input cell per output cell (a gather, `np.take`);
- `bilinear` blends two gathered cells with per-output-cell weights (gather and lerp), so the
  work is proportional to the output, whatever the scale.

Backward is the transposed map, itself a few weighted gathers: each input cell gathers the
gradients of the (consecutive) output cells that read it, about n_out/n_in + 1 of them (none:
its gradient is 0), so neither pass scatters.

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
class Taps:
    """A map from an axis of `n_in` cells to `len(indices)` cells: output cell i is
    Σ_t weights[i, t] · x[indices[i, t]] (weights None: a single tap of weight 1, a gather)."""

    indices: np.ndarray  # (n_out, taps), int
    weights: np.ndarray | None  # (n_out, taps), float64

    def apply(self, x: np.ndarray, axis: int) -> np.ndarray:
        if self.weights is None:
            return _take(x, self.indices[:, 0], axis)
        y = self._term(x, 0, axis)
        for t in range(1, self.indices.shape[1]):  # a loop over the (few) taps
            y += self._term(x, t, axis)
        return y

    def _term(self, x: np.ndarray, tap: int, axis: int) -> np.ndarray:
        term = _take(x, self.indices[:, tap], axis)
        weights = self.weights[:, tap]
        if not np.all(weights == 1.0):  # (a nearest upsampling's gradient taps are all 1)
            term *= _spread(weights.astype(x.dtype), x.shape[axis + 1:])
        return term


@dataclass(frozen=True)
class Resampler:
    """One axis's resampling: `forward` taps, and `backward` taps of the transposed map (each
    input cell gathers the gradients of the few output cells that read it), so both passes are
    a couple of weighted gathers over the whole batch."""

    forward_taps: Taps
    backward_taps: Taps

    def forward(self, x: np.ndarray, axis: int) -> np.ndarray:
        return self.forward_taps.apply(x, axis)

    def backward(self, dy: np.ndarray, axis: int) -> np.ndarray:
        return self.backward_taps.apply(dy, axis)


def _with_transpose(n_in: int, reads: np.ndarray, weights: np.ndarray | None) -> Resampler:
    """The forward taps (output cell i reads cells `reads[i]` with `weights[i]`; the cells
    read never decrease down the rows) and those of the transposed map."""
    n_out = len(reads)
    rows = np.arange(n_out)[:, None]
    matrix = np.zeros((n_out, n_in))
    np.add.at(matrix, (rows, reads), 1.0 if weights is None else weights)
    forward = Taps(reads, weights)
    read = np.zeros((n_out, n_in), bool)
    read[rows, reads] = True
    counts = read.sum(axis=0)
    first = np.argmax(read, axis=0)  # the output cells reading a column are consecutive
    taps = max(int(counts.max()), 1)
    sources = np.minimum(first[:, None] + np.arange(taps), n_out - 1)
    weights = np.where(np.arange(taps) < counts[:, None], matrix[sources, np.arange(n_in)[:, None]],
                       0.0)
    return Resampler(forward, Taps(sources, weights))


@functools.lru_cache(maxsize=256)
def resampler(n_in: int, n_out: int, interpolation: str, start: int = 0,
              length: int | None = None) -> Resampler:
    """The map resampling cells [start, start + length) of an axis of `n_in` cells onto
    `n_out` cells; `interpolation` is `nearest`, `bilinear`, or `crop` (length == n_out, a
    plain slice)."""
    length = n_in - start if length is None else length
    if interpolation == "crop" or length == n_out:  # every method maps cell i to cell i
        reads = np.arange(n_out)[:, None]
    elif interpolation == "nearest":
        scale = np.float64(np.float32(length / n_out))  # torch rounds the scale to float32
        picks = np.floor((np.arange(n_out) + 0.5) * scale).astype(np.int64)
        reads = np.minimum(picks, length - 1)[:, None]
    else:
        source = np.maximum((np.arange(n_out) + 0.5) * (length / n_out) - 0.5, 0.0)
        low = np.minimum(np.floor(source).astype(np.int64), length - 1)
        high = np.minimum(low + 1, length - 1)  # == low at the last cell, with weight 0 then
        weight_high = np.where(high > low, source - low, 0.0)
        return _with_transpose(n_in, start + np.stack([low, high], axis=1),
                               np.stack([1.0 - weight_high, weight_high], axis=1))
    return _with_transpose(n_in, start + reads, None)


# Gathering along an axis followed by a few values each (a channels_last width axis: 1-4
# channels) moves tiny chunks, which NumPy does slowly; such an axis is folded with the ones
# after it and gathered element by element on the flattened axis instead. Weights are spread
# over those trailing axes for the same reason (a broadcast over 3 values is slow too).
SMALL_INNER = 64


def _spread(weights: np.ndarray, inner: tuple[int, ...]) -> np.ndarray:
    size = int(np.prod(inner, dtype=np.int64))
    if size >= SMALL_INNER:
        return weights.reshape((-1,) + (1,) * len(inner))
    return np.ascontiguousarray(np.broadcast_to(weights.reshape((-1,) + (1,) * len(inner)),
                                                weights.shape + inner))


def _take(x: np.ndarray, indices: np.ndarray, axis: int) -> np.ndarray:
    inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    if inner == 1 or inner >= SMALL_INNER:
        return np.take(x, indices, axis=axis)
    wide = (indices[:, None] * inner + np.arange(inner)).reshape(-1)
    flat = np.take(x.reshape(x.shape[:axis] + (-1,)), wide, axis=axis)
    return flat.reshape(x.shape[:axis] + (indices.size,) + x.shape[axis + 1:])


def aspect_crop(height: int, width: int, target_height: int,
                target_width: int) -> tuple[int, int, int, int]:
    """(top, left, crop height, crop width): the largest centred window of the target's aspect
    ratio, exactly as Keras computes it (`crop_to_aspect_ratio`, `smart_resize`)."""
    crop_height = max(min(height, int(float(width * target_height) / target_width)), 1)
    crop_width = max(min(width, int(float(height * target_width) / target_height)), 1)
    top = int(float(height - crop_height) / 2)
    left = int(float(width - crop_width) / 2)
    return top, left, crop_height, crop_width
