"""AdditiveAttention: Bahdanau-style attention, Keras 3's `keras.layers.AdditiveAttention`.

    scores = Σ_d scale_d · tanh(q_t,d + k_s,d)          (B, Tq, Tv)

`scale` (query's last size, Glorot-uniform, `use_scale=True` by default) weights the features;
without it they add up unweighted. Masks, softmax, dropout, causal masking and the attention
scores output are Attention's (attention.py).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from layerctl.layers.attention.attention import ScoreAttention
from layerctl.layers.base import Shape, WeightSpec


class AdditiveAttention(ScoreAttention):
    """Additive attention: `[query, value]` or `[query, value, key]`."""

    type: Literal["AdditiveAttention"]
    use_scale: bool = Field(default=True, description="Learn a per-feature `scale` of the "
                            "tanh terms.")

    keras_class = "AdditiveAttention"

    def weight_specs(self, input_shapes: list[Shape]) -> list[WeightSpec]:
        if not self.use_scale:
            return []
        query = self._arranged(input_shapes)["query"]
        return [WeightSpec("scale", (query[-1],), initializer="glorot_uniform")]

    def scores(self, weights, q, k):
        tanh = np.tanh(q[:, :, None, :] + k[:, None, :, :])  # (B, Tq, Tv, d)
        if self.use_scale:
            return np.einsum("btsd,d->bts", tanh, weights["scale"], optimize=True), tanh
        return tanh.sum(axis=-1), tanh

    def scores_backward(self, weights, cache, d_scores, grads):
        tanh = cache
        if self.use_scale:
            grads["scale"] = np.einsum("bts,btsd->d", d_scores, tanh, optimize=True)
            d_inner = d_scores[..., None] * weights["scale"]
        else:
            d_inner = np.repeat(d_scores[..., None], tanh.shape[-1], axis=-1)
        d_inner *= 1 - tanh * tanh
        return d_inner.sum(axis=2), d_inner.sum(axis=1)
