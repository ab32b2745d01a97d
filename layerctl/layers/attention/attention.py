"""Attention: Luong-style attention of a query over a value, Keras 3's `keras.layers.Attention`.

For query (B, Tq, d), value (B, Tv, dv) and key (B, Tv, d) (key defaulting to value):

    scores = scale · q·kᵀ                              (score_mode "dot")
    scores = w · Σ_d tanh(scale · (q_t + k_s))          (score_mode "concat")
    weights = softmax(scores − 1e9 where masked)       (B, Tq, Tv)
    output = weights · v, zero where the query is masked

`scale` (a scalar, `use_scale`) and `concat_score_weight` (a scalar, concat only) start at 1.
The value's mask (over Tv) and the causal mask (`use_causal_mask`) hide positions; the output
carries the query's mask. Dropout (training only) drops attention weights. With
`return_attention_scores` the weights (before dropout) are a second output.

`AdditiveAttention` (additive_attention.py) shares the masking, softmax and value product.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from layerctl.layers.attention import scores
from layerctl.layers.base import IncompatibleShape, Layer, Rate, Shape, WeightSpec, format_shape
from layerctl.ops.blas import matmul


class ScoreAttention(Layer):
    """What Attention and AdditiveAttention share: inputs, masks, softmax and the value product.
    A subclass computes `scores(weights, q, k)` and its backward."""

    dropout: Rate = Field(default=0.0, description="Dropout of the attention weights "
                          "(training only).")
    seed: int | None = None
    return_attention_scores: bool = Field(
        default=False, description="A second output: the attention weights (B, Tq, Tv); a "
        "Keras call argument.")
    use_causal_mask: bool = Field(
        default=False, description="Query step t attends to value steps <= t only; a Keras "
        "call argument.")

    supports_masking = True
    reads_mask = True
    min_inputs = 2
    max_inputs = 3
    call_arguments = ("query", "value", "key")
    keras_call_options: ClassVar[tuple[str, ...]] = ("return_attention_scores",
                                                     "use_causal_mask")

    def input_roles(self, count: int) -> tuple[str, ...]:
        return self.roles or self.call_arguments[:count]

    def _arranged(self, inputs: list) -> dict[str, Any]:
        named = dict(zip(self.input_roles(len(inputs)), inputs, strict=True))
        named.setdefault("key", named.get("value"))
        return named

    def output_shapes(self, input_shapes: list[Shape]) -> list[Shape]:
        shapes = self._arranged(input_shapes)
        query, value, key = shapes.get("query"), shapes.get("value"), shapes.get("key")
        if query is None or value is None:
            raise IncompatibleShape(f"{self.keras_class} layer accepts inputs list of length 2 "
                                    "or 3, namely [query, value] or [query, value, key].")
        for name, shape in (("query", query), ("value", value), ("key", key)):
            if len(shape) != 3:
                raise IncompatibleShape(f"layerctl's {self.keras_class} takes (batch, steps, "
                                        f"features) inputs; `{name}` has shape "
                                        f"{format_shape(shape)}")
        if None not in (value[1], key[1]) and value[1] != key[1]:
            raise IncompatibleShape(f"`value` {format_shape(value)} and `key` "
                                    f"{format_shape(key)} must have the same number of steps")
        self._check_features(query, key)
        outputs = [query[:-1] + (value[-1],)]
        if self.return_attention_scores:
            outputs.append(query[:-1] + (key[1],))
        return outputs

    def _check_features(self, query: Shape, key: Shape) -> None:
        if None not in (query[-1], key[-1]) and query[-1] != key[-1]:
            raise IncompatibleShape(f"`query` {format_shape(query)} and `key` "
                                    f"{format_shape(key)} must have the same last size")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        return self.output_shapes(input_shapes)[0]

    def output_mask(self, xs: list, masks: list) -> Any:
        query_mask = masks[self.input_roles(len(masks)).index("query")]
        return [query_mask, None] if self.return_attention_scores else query_mask

    def keras_call(self, keras_layer: Any, tensors: list) -> Any:
        """Call the Keras layer on `[query, value(, key)]` with the call options."""
        named = dict(zip(self.input_roles(len(tensors)), tensors, strict=True))
        inputs = [named["query"], named["value"]] + ([named["key"]] if "key" in named else [])
        return keras_layer(inputs, return_attention_scores=self.return_attention_scores,
                           use_causal_mask=self.use_causal_mask)

    # ---- math ----------------------------------------------------------------------------
    def scores(self, weights: dict, q: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def scores_backward(self, weights: dict, cache: Any, d_scores: np.ndarray,
                        grads: dict) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def forward(self, weights, xs, masks, training, rng):
        roles = self.input_roles(len(xs))
        named, named_masks = self._arranged(xs), self._arranged(masks)
        query, value, key = named["query"], named["value"], named["key"]
        logits, score_cache = self.scores(weights, query, key)
        value_mask = scores.as_bool(named_masks["value"])
        mask = scores.join(
            None if value_mask is None else value_mask[:, None, :],
            scores.causal_mask(query.shape[1], key.shape[1]) if self.use_causal_mask else None)
        if mask is not None:  # Keras subtracts 1e9 from the masked scores
            logits = np.where(mask, logits, logits - logits.dtype.type(-scores.LARGE_NEGATIVE))
        else:
            logits = logits.copy()
        probabilities = scores.softmax(logits)
        keep = None
        if training and self.dropout > 0:
            keep = scores.dropout_keep(rng, probabilities.shape, self.dropout, query.dtype)
        used = probabilities if keep is None else probabilities * keep
        y = matmul(used, value)
        query_mask = scores.as_bool(named_masks["query"])
        if query_mask is not None:
            y *= query_mask[:, :, None]
        cache = (roles, named, score_cache, probabilities, keep, used, query_mask)
        if self.return_attention_scores:
            return (y, probabilities), cache
        return y, cache

    def backward(self, weights, cache, dy):
        roles, named, score_cache, probabilities, keep, used, query_mask = cache
        d_probabilities_out = None
        if self.return_attention_scores:
            dy, d_probabilities_out = dy
        if query_mask is not None:
            dy = dy * query_mask[:, :, None]
        d_value = matmul(used.transpose(0, 2, 1), dy)
        d_probabilities = matmul(dy, named["value"].transpose(0, 2, 1))
        if keep is not None:
            d_probabilities *= keep
        if d_probabilities_out is not None:
            d_probabilities += d_probabilities_out
        d_logits = scores.softmax_backward(probabilities, d_probabilities)
        grads: dict[str, np.ndarray] = {}
        d_query, d_key = self.scores_backward(weights, score_cache, d_logits, grads)
        dxs = {"query": d_query, "value": d_value, "key": d_key}
        if "key" not in roles:  # the key was the value
            dxs["value"] = d_value + dxs.pop("key")
        return [dxs[role] for role in roles], grads


class Attention(ScoreAttention):
    """Dot-product (or concat) attention: `[query, value]` or `[query, value, key]`."""

    type: Literal["Attention"]
    use_scale: bool = Field(default=False, description="Learn a scalar `scale` of the scores.")
    score_mode: str = Field(default="dot", description="`dot` (q·kᵀ) or `concat` "
                            "(Σ tanh(q + k)).")

    keras_class = "Attention"

    @field_validator("score_mode")
    @classmethod
    def _score_mode(cls, value: str) -> str:
        if value not in ("dot", "concat"):
            raise ValueError("Invalid value for argument score_mode. Expected one of "
                             f"{{'dot', 'concat'}}. Received: score_mode={value}")
        return value

    def weight_specs(self, input_shapes: list[Shape]) -> list[WeightSpec]:
        specs = []
        if self.use_scale:
            specs.append(WeightSpec("scale", (), initializer="ones"))
        if self.score_mode == "concat":
            specs.append(WeightSpec("concat_score_weight", (), initializer="ones"))
        return specs

    def scores(self, weights, q, k):
        if self.score_mode == "dot":
            product = matmul(q, k.transpose(0, 2, 1))
            if not self.use_scale:
                return product, (q, k, product)
            return product * weights["scale"], (q, k, product)
        summed = q[:, :, None, :] + k[:, None, :, :]  # (B, Tq, Tv, d)
        inner = summed * weights["scale"] if self.use_scale else summed
        tanh = np.tanh(inner)
        tanh_sum = tanh.sum(axis=-1)
        return weights["concat_score_weight"] * tanh_sum, (summed, tanh, tanh_sum)

    def scores_backward(self, weights, cache, d_scores, grads):
        if self.score_mode == "dot":
            q, k, product = cache
            if self.use_scale:
                grads["scale"] = np.asarray(np.sum(d_scores * product))
                d_scores = d_scores * weights["scale"]
            return matmul(d_scores, k), matmul(d_scores.transpose(0, 2, 1), q)
        summed, tanh, tanh_sum = cache
        weight = weights["concat_score_weight"]
        grads["concat_score_weight"] = np.asarray(np.sum(d_scores * tanh_sum))
        d_inner = (weight * d_scores)[..., None] * (1 - tanh * tanh)
        if self.use_scale:
            grads["scale"] = np.asarray(np.sum(d_inner * summed))
            d_inner *= weights["scale"]
        return d_inner.sum(axis=2), d_inner.sum(axis=1)
