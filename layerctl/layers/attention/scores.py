"""Attention weights from scores: Keras 3's masked softmax and its gradient, causal masks, and
dropout of the weights, shared by the attention layers.

Keras hides masked scores behind a large negative number before the softmax (MultiHeadAttention
replaces them by -1e9, Attention subtracts 1e9), so a masked position gets exactly zero weight.
A row with every position masked softmaxes to a uniform row; MultiHeadAttention's einsum path
then zeroes it (`Softmax(mask=...)`), its fused `dot_product_attention` path keeps it uniform.
"""

from __future__ import annotations

import numpy as np

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


def softmax(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """softmax along `axis`, in place on `scores` (a temporary the caller owns)."""
    scores -= scores.max(axis=axis, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=axis, keepdims=True)
    return scores


def softmax_backward(weights: np.ndarray, d_weights: np.ndarray) -> np.ndarray:
    """d scores from d weights: w ⊙ (dw − Σ w ⊙ dw) along the last axis, in place on
    `d_weights`."""
    inner = np.einsum("...s,...s->...", weights, d_weights)[..., None]
    d_weights -= inner
    d_weights *= weights
    return d_weights


def dropout_keep(rng: np.random.Generator, shape: tuple[int, ...], rate: float,
                 dtype: np.dtype) -> np.ndarray:
    """Keras's Dropout: keep with probability 1 − rate, scale kept values by 1/(1 − rate)."""
    if rate >= 1:
        return np.zeros(shape, dtype)
    keep = (rng.random(shape, dtype=np.float64) >= rate).astype(dtype)
    keep *= dtype.type(1.0 / (1.0 - rate))
    return keep
