"""Attention weights from scores: Keras 3's masked softmax and its gradient, causal masks, and
dropout of the weights, shared by the attention layers.

Keras hides masked scores behind a large negative number before the softmax (MultiHeadAttention
replaces them by -1e9, Attention subtracts 1e9), so a masked position gets exactly zero weight.
A row with every position masked softmaxes to a uniform row; MultiHeadAttention's einsum path
then zeroes it (`Softmax(mask=...)`), its fused `dot_product_attention` path keeps it uniform.
"""

from __future__ import annotations

import numpy as np

from layerctl.ops.parallel import for_each_chunk

LARGE_NEGATIVE = -1e9  # keras.layers.Softmax's masked value (and Attention's subtrahend)


def causal_mask(query_length: int, value_length: int) -> np.ndarray:
    """(1, T, S): position t attends to positions s <= t (Keras's row index >= column index)."""
    rows = np.arange(query_length)[:, None]
    return (rows >= np.arange(value_length)[None, :])[None]


def as_bool(mask: np.ndarray | None) -> np.ndarray | None:
    """Keras casts a mask tensor to bool: non-zero keeps."""
    return None if mask is None else np.asarray(mask) != 0


def join(*masks: np.ndarray | None) -> np.ndarray | None:
    """The AND of the masks given (None means no constraint)."""
    present = [m for m in masks if m is not None]
    if not present:
        return None
    joined = present[0]
    for other in present[1:]:
        joined = joined & other
    return joined


def _rows(array: np.ndarray | None, rows: slice) -> np.ndarray | None:
    """The batch slice of an array that may broadcast over the batch (a causal mask)."""
    return array if array is None or array.shape[0] == 1 else array[rows]


def softmax(logits: np.ndarray, mask: np.ndarray | None = None,
            zero_masked: bool = False) -> np.ndarray:
    """softmax along the last axis, in place on `logits` (a temporary the caller owns): masked
    logits (where `mask`, broadcast to them, is False) first become -1e9, and with
    `zero_masked` masked weights end exactly zero (rows with every position masked too). Runs in
    batch slices on every core (`ops.parallel`)."""
    def rows_softmax(rows: slice) -> None:
        part, keep = logits[rows], _rows(mask, rows)
        if keep is not None:
            np.copyto(part, part.dtype.type(LARGE_NEGATIVE), where=~keep)
        part -= part.max(axis=-1, keepdims=True)
        np.exp(part, out=part)
        part /= part.sum(axis=-1, keepdims=True)
        if keep is not None and zero_masked:
            part *= keep

    for_each_chunk(rows_softmax, len(logits), 3 * logits.nbytes)
    return logits


def softmax_backward(weights: np.ndarray, d_weights: np.ndarray,
                     mask: np.ndarray | None = None, zero_masked: bool = False) -> np.ndarray:
    """d logits from d weights, in place on `d_weights`: w ⊙ (dw − Σ w ⊙ dw) along the last
    axis; masked logits (constants in `softmax`) get none, and with `zero_masked` the zeroed
    weights pass none back."""
    def rows_backward(rows: slice) -> None:
        w, dw, keep = weights[rows], d_weights[rows], _rows(mask, rows)
        if keep is not None and zero_masked:
            dw *= keep
        dw -= np.einsum("...s,...s->...", w, dw)[..., None]
        dw *= w
        if keep is not None:
            dw *= keep

    for_each_chunk(rows_backward, len(d_weights), 3 * d_weights.nbytes)
    return d_weights


def dropout_keep(rng: np.random.Generator, shape: tuple[int, ...], rate: float,
                 dtype: np.dtype) -> np.ndarray:
    """Keras's Dropout: keep with probability 1 − rate, scale kept values by 1/(1 − rate)."""
    if rate >= 1:
        return np.zeros(shape, dtype)
    keep = (rng.random(shape, dtype=np.float64) >= rate).astype(dtype)
    keep *= dtype.type(1.0 / (1.0 - rate))
    return keep
