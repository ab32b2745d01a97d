"""MultiHeadAttention: `num_heads` scaled dot-product attentions of learned projections.

For query (B, T, dq), value (B, S, dv) and key (B, S, dk) (key defaults to value):

    q = query·Wq + bq  (B, T, N, key_dim)     k = key·Wk + bk  (B, S, N, key_dim)
    v = value·Wv + bv  (B, S, N, value_dim)
    a = softmax(q·kᵀ / sqrt(key_dim), masked)  (B, N, T, S)
    y = (a·v)·Wo + bo  (B, T, *output_shape), output_shape defaulting to (dq,)

with Keras 3's EinsumDense weights: `query/kernel` (dq, N, key_dim), `query/bias` (N, key_dim),
the same for `key` and `value` (value_dim), `attention_output/kernel` (N, value_dim,
*output_shape) and `attention_output/bias` (*output_shape). Every head runs in one batched
matmul. The mask of a position pair is the AND of the query's mask (over T), the value's and the
key's (over S), the causal mask (`use_causal_mask`) and an `attention_mask` input (B, T, S);
the output carries the query's mask. Dropout (training only) drops attention weights.
Inputs of higher rank attend over `attention_axes` (default: every axis between batch and
features) jointly, the other axes acting as batch axes: they are viewed as (batch · others,
attended positions, features) around the same computation (masks: rank 3 only).

A query row with every position masked softmaxes to a uniform row. Keras zeroes such a row when
it computes the scores itself (dropout > 0 or `return_attention_scores`) and keeps it uniform
when it calls the fused `ops.dot_product_attention` (the other cases); layerctl does the same.
The gradient is the derivative of that forward pass (central differences check it); Keras's
torch backend differentiates such rows through its fused kernel into gradients that do not
match its own forward pass.
"""

from __future__ import annotations

from math import sqrt
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
from pydantic import Field, field_validator

from layerctl.constraints import Constraint
from layerctl.initializers import Initializer
from layerctl.layers.attention import scores
from layerctl.layers.base import (
    IncompatibleShape,
    Layer,
    PositiveInt,
    Rate,
    Shape,
    WeightSpec,
    format_shape,
)
from layerctl.ops.blas import matmul
from layerctl.regularizers import Regularizer

PROJECTIONS = ("query", "key", "value")


class Flattened(NamedTuple):
    """The cache of attention over other axes than the sequence's: the (batch · others,
    attended, features) computation's cache and the original inputs."""

    cache: tuple
    inputs: list


def _positive(argument: str, value: Any, *, optional: bool = False) -> Any:
    if value is None and optional:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        expected = "a positive integer or `None`" if optional else "a positive integer"
        raise ValueError(f"Received an invalid value for argument `{argument}`, expected "
                         f"{expected}. Received: {argument}={value}")
    return value


class MultiHeadAttention(Layer):
    """Multi-head attention of `query` over `value` (and `key`), Keras 3's layer.

    Inputs: `[query, value]`, `[query, value, key]` or a mapping with `query`, `value`, `key`,
    `attention_mask`. Outputs: the attention output (B, T, *output_shape) and, with
    `return_attention_scores`, the attention weights (B, num_heads, T, S).
    """

    type: Literal["MultiHeadAttention"]
    num_heads: int = Field(description="Number of attention heads.")
    key_dim: int = Field(description="Size of each head for query and key.")
    value_dim: int | None = Field(default=None, description="Size of each head for value; "
                                  "default key_dim.")
    dropout: Rate = Field(default=0.0, description="Dropout of the attention weights "
                          "(training only).")
    use_bias: bool = True
    projection_shape: PositiveInt | list[PositiveInt] | None = Field(
        default=None, alias="output_shape",
        description="Shape of the output without the batch and query axes; default the "
        "query's last size.")
    attention_axes: int | list[int] | None = Field(
        default=None, description="Axes attention runs over, jointly; default every axis "
        "between batch and features.")
    kernel_initializer: Initializer = "glorot_uniform"
    bias_initializer: Initializer = "zeros"
    kernel_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None
    kernel_constraint: Constraint | None = None
    bias_constraint: Constraint | None = None
    seed: int | None = None
    return_attention_scores: bool = Field(
        default=False, description="A second output: the attention weights (B, heads, T, S); "
        "a Keras call argument.")
    use_causal_mask: bool = Field(
        default=False, description="Position t attends to positions <= t only; a Keras call "
        "argument.")

    keras_class = "MultiHeadAttention"
    supports_masking = True
    reads_mask = True
    min_inputs = 2
    max_inputs = 4
    call_arguments = ("query", "value", "key", "attention_mask")
    keras_call_options: ClassVar[tuple[str, ...]] = ("return_attention_scores",
                                                     "use_causal_mask")

    @field_validator("num_heads", "key_dim", mode="before")
    @classmethod
    def _positive_sizes(cls, value: Any, info) -> Any:
        return _positive(info.field_name, value)

    @field_validator("value_dim", mode="before")
    @classmethod
    def _value_dim(cls, value: Any) -> Any:
        return _positive("value_dim", value, optional=True)

    @field_validator("dropout", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not 0 <= value <= 1:
            raise ValueError("Invalid value received for argument rate. Expected a float value "
                             f"between 0 and 1. Received: rate={value}")
        return value

    @field_validator("projection_shape", mode="before")
    @classmethod
    def _output_shape(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, int | list | tuple):
            raise ValueError(f"Invalid `output_shape`: {value}. When specified, the "
                             "`output_shape` should be of type tuple, list, or int.")
        return value or None  # Keras reads `if output_shape:`, so 0 and [] mean the default

    @field_validator("attention_axes", mode="before")
    @classmethod
    def _attention_axes(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, int | list | tuple):
            raise ValueError("`attention_axes` must be an int, list, or tuple."
                             f"Received: attention_axes={value}")
        if isinstance(value, int):
            value = [value]
        return value

    # ---- shapes and weights ------------------------------------------------------------
    @property
    def head_value_dim(self) -> int:
        return self.value_dim or self.key_dim

    @property
    def fused(self) -> bool:
        """Whether Keras computes this layer with `ops.dot_product_attention` (so a fully
        masked row stays uniform) rather than its own einsums and masked Softmax."""
        return self.dropout == 0 and not self.return_attention_scores

    def input_roles(self, count: int) -> tuple[str, ...]:
        """Each input's call argument (positional order when the layer is used unbound)."""
        return self.roles or self.call_arguments[:count]

    def _arranged(self, inputs: list) -> dict[str, Any]:
        """The inputs by call argument (key defaulting to value)."""
        named = dict(zip(self.input_roles(len(inputs)), inputs, strict=True))
        named.setdefault("key", named.get("value"))
        return named

    def _projected_shape(self, query_shape: Shape) -> tuple[int | None, ...]:
        if self.projection_shape is None:
            return (query_shape[-1],)
        shape = self.projection_shape
        return (shape,) if isinstance(shape, int) else tuple(shape)

    def attended_axes(self, rank: int) -> tuple[int, ...]:
        """The input axes attention runs over, for inputs of `rank`: every axis between batch
        and features by default; a negative axis counts as Keras counts it in the projected
        (…, heads, size) tensor."""
        if self.attention_axes is None:
            return tuple(range(1, rank - 1))
        axes = tuple(a if a >= 0 else rank + a for a in self.attention_axes)
        if len(set(axes)) != len(axes) or not all(1 <= a <= rank - 2 for a in axes):
            raise IncompatibleShape(
                f"attention_axes={list(self.attention_axes)} must name distinct axes between "
                f"the batch and the features of inputs of rank {rank}")
        return axes

    def _layout(self, rank: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(the other axes, the attended axes): inputs are viewed as (batch · others,
        attended positions, features)."""
        attended = self.attended_axes(rank)
        return tuple(a for a in range(1, rank - 1) if a not in attended), attended

    def output_shapes(self, input_shapes: list[Shape]) -> list[Shape]:
        shapes = self._arranged(input_shapes)
        if "query" not in shapes or "value" not in shapes:
            raise IncompatibleShape("MultiHeadAttention needs a `query` and a `value` input; "
                                    f"got {', '.join(shapes)}")
        query, value, key = shapes["query"], shapes["value"], shapes["key"]
        if value[1:-1] != key[1:-1]:
            raise IncompatibleShape(
                "All dimensions of `value` and `key`, except the last one, must be equal. "
                f"Received: value_shape={format_shape(value)} and "
                f"key_shape={format_shape(key)}")
        rank = len(query)
        if rank < 3 or len(value) != rank:
            raise IncompatibleShape(
                f"query {format_shape(query)} and value {format_shape(value)} must have the "
                "same rank, at least 3 (batch, positions..., features)")
        others, attended = self._layout(rank)
        if [query[a] for a in others] != [value[a] for a in others]:
            raise IncompatibleShape(
                f"query {format_shape(query)} and value {format_shape(value)} must agree on "
                f"the axes attention does not run over ({', '.join(map(str, others))})")
        if None in (query[-1], value[-1], key[-1]):
            raise IncompatibleShape("the last (feature) axis of query, value and key must be "
                                    "known to build the projections")
        mask = shapes.get("attention_mask")
        if rank > 3 and (mask is not None or self.use_causal_mask):
            raise IncompatibleShape("layerctl's MultiHeadAttention takes `attention_mask` and "
                                    "`use_causal_mask` with (batch, sequence, features) inputs "
                                    f"only; the query has shape {format_shape(query)}")
        if mask is not None and (len(mask) not in (2, 3) or any(
                a is not None and b is not None and a != b
                for a, b in zip(mask[::-1], (value[1], query[1]), strict=False))):
            raise IncompatibleShape(
                f"`attention_mask` of shape {format_shape(mask)} does not broadcast to "
                f"(batch, query steps, value steps) = (None, {query[1]}, {value[1]})")
        outputs = [query[:-1] + self._projected_shape(query)]
        if self.return_attention_scores:  # Keras's (batch, others, heads, query, value) layout
            outputs.append((query[0], *(query[a] for a in others), self.num_heads,
                            *(query[a] for a in attended), *(value[a] for a in attended)))
        return outputs

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        return self.output_shapes(input_shapes)[0]

    def weight_specs(self, input_shapes: list[Shape]) -> list[WeightSpec]:
        shapes = self._arranged(input_shapes)
        heads, out = self.num_heads, self._projected_shape(shapes["query"])
        specs = []
        for name in PROJECTIONS:
            size = self.head_value_dim if name == "value" else self.key_dim
            specs.append(self._kernel(f"{name}/kernel", (shapes[name][-1], heads, size)))
            if self.use_bias:
                specs.append(self._bias(f"{name}/bias", (heads, size)))
        specs.append(self._kernel("attention_output/kernel", (heads, self.head_value_dim, *out)))
        if self.use_bias:
            specs.append(self._bias("attention_output/bias", out))
        return specs

    def _kernel(self, name: str, shape: tuple[int, ...]) -> WeightSpec:
        return WeightSpec(name, shape, initializer=self.kernel_initializer,
                          regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)

    def _bias(self, name: str, shape: tuple[int, ...]) -> WeightSpec:
        return WeightSpec(name, shape, initializer=self.bias_initializer,
                          regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    # ---- masks ---------------------------------------------------------------------------
    def output_mask(self, xs: list, masks: list) -> Any:
        query_mask = self._arranged(masks).get("query")
        if self.return_attention_scores:
            return [query_mask, None]
        return query_mask

    def attention_mask(self, xs: dict, masks: dict) -> np.ndarray | None:
        """(B or 1, T, S) bool, or None: Keras's `_compute_attention_mask`."""
        query_mask, value_mask = scores.as_bool(masks.get("query")), scores.as_bool(
            masks.get("value"))
        key_mask = scores.as_bool(masks.get("key"))
        joined = scores.join(
            None if query_mask is None else query_mask[:, :, None],
            None if value_mask is None else value_mask[:, None, :],
            None if key_mask is None else key_mask[:, None, :],
            scores.causal_mask(xs["query"].shape[1], xs["value"].shape[1])
            if self.use_causal_mask else None)
        explicit = scores.as_bool(xs.get("attention_mask"))
        if explicit is not None and explicit.ndim == 2:
            explicit = explicit[None]
        return scores.join(explicit, joined)

    def keras_call(self, keras_layer: Any, tensors: list) -> Any:
        """Call the Keras layer as Keras takes it: tensors by argument, call options too."""
        named = dict(zip(self.input_roles(len(tensors)), tensors, strict=True))
        return keras_layer(named["query"], named["value"], key=named.get("key"),
                           attention_mask=named.get("attention_mask"),
                           return_attention_scores=self.return_attention_scores,
                           use_causal_mask=self.use_causal_mask)

    # ---- math ----------------------------------------------------------------------------
    def _flatten(self, x: np.ndarray, rank: int | None = None) -> np.ndarray:
        """(batch, others..., attended..., features...) as (batch · others, attended,
        features...), the axes before the features laid out as in inputs of `rank` (default
        x's: an output's gradient has the query's layout and the output's features)."""
        rank = rank or x.ndim
        others, attended = self._layout(rank)
        order = (0, *others, *attended, *range(rank - 1, x.ndim))
        return x.transpose(order).reshape(-1, int(np.prod([x.shape[a] for a in attended])),
                                          *x.shape[rank - 1:])

    def _unflatten(self, y: np.ndarray, like: np.ndarray) -> np.ndarray:
        """`_flatten`'s inverse for an array laid out as `like` up to its trailing axes."""
        others, attended = self._layout(like.ndim)
        order = (0, *others, *attended)
        trailing = y.shape[2:]
        y = y.reshape(*(like.shape[a] for a in order), *trailing)
        inverse = tuple(np.argsort(order)) + tuple(range(len(order), y.ndim))
        return y.transpose(inverse)

    def forward(self, weights, xs, masks, training, rng):
        query = xs[self.input_roles(len(xs)).index("query")]
        if query.ndim == 3 and self.attended_axes(3) == (1,):
            return self._attend(weights, xs, masks, training, rng)
        if any(m is not None for m in masks):
            raise ValueError("layerctl's MultiHeadAttention takes masks with (batch, sequence, "
                             f"features) inputs only; the query has shape {query.shape}")
        flat: dict[int, np.ndarray] = {}  # one view per array, so a shared input stays shared
        views = [flat.setdefault(id(x), self._flatten(x)) for x in xs]
        y, cache = self._attend(weights, views, masks, training, rng)
        others, attended = self._layout(query.ndim)
        if self.return_attention_scores:
            y, probabilities = y
            value = xs[self.input_roles(len(xs)).index("value")]
            probabilities = probabilities.reshape(
                query.shape[0], *(query.shape[a] for a in others), self.num_heads,
                *(query.shape[a] for a in attended), *(value.shape[a] for a in attended))
            return (self._unflatten(y, query), probabilities), Flattened(cache, xs)
        return self._unflatten(y, query), Flattened(cache, xs)

    def _attend(self, weights, xs, masks, training, rng):
        """Attention of (batch, sequence, features) inputs."""
        roles = self.input_roles(len(xs))
        named, named_masks = self._arranged(xs), self._arranged(masks)
        if "key" not in roles:  # Keras ignores the key's mask when the key is the value
            named_masks["key"] = None
        query = named["query"]
        batch, steps = query.shape[:2]
        heads, head_dim = self.num_heads, self.key_dim
        projected = self._project(weights, named)
        q, k, v = projected["query"], projected["key"], projected["value"]  # (B, N, L, size)
        q *= q.dtype.type(1.0 / sqrt(float(head_dim)))
        logits = matmul(q, k.transpose(0, 1, 3, 2))  # (B, N, T, S)
        mask = self.attention_mask(named, named_masks)
        if mask is not None:
            mask = mask[:, None]  # broadcast over heads
        # Keras's Softmax(mask=...) zeroes rows with every position masked; its fused path not
        probabilities = scores.softmax(logits, mask, zero_masked=not self.fused)
        keep = None
        if training and self.dropout > 0:
            keep = scores.dropout_keep(rng, probabilities.shape, self.dropout, query.dtype)
        used = probabilities if keep is None else probabilities * keep
        heads_out = matmul(used, v)  # (B, N, T, value_dim)
        joined = heads_out.transpose(0, 2, 1, 3).reshape(batch * steps, -1)
        kernel = weights["attention_output/kernel"]
        y = matmul(joined, kernel.reshape(heads * self.head_value_dim, -1))
        if self.use_bias:
            y += weights["attention_output/bias"].reshape(-1)
        y = y.reshape(batch, steps, *kernel.shape[2:])
        cache = (roles, named, q, k, v, probabilities, keep, used, joined, mask)
        if self.return_attention_scores:
            return (y, probabilities), cache
        return y, cache

    def _sharing(self, named: dict) -> list[tuple[str, ...]]:
        """The projections grouped by the array they read: self-attention (query, key and value
        one tensor) projects with one matmul of the joined kernels, as does a key that is the
        value."""
        groups: list[list[str]] = []
        for name in PROJECTIONS:
            group = next((g for g in groups if named[g[0]] is named[name]), None)
            if group is None:
                groups.append([name])
            else:
                group.append(name)
        return [tuple(g) for g in groups]

    def _joined(self, weights, group: tuple[str, ...], part: str, rows: int) -> np.ndarray:
        pieces = [weights[f"{name}/{part}"].reshape(rows, -1) for name in group]
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=1)

    def _project(self, weights, named: dict) -> dict[str, np.ndarray]:
        """query, key, value: x (B, L, d) · kernel (d, N, size) + bias -> (B, N, L, size)."""
        projected = {}
        for group in self._sharing(named):
            x = named[group[0]]
            batch, steps, features = x.shape
            y = matmul(x.reshape(-1, features), self._joined(weights, group, "kernel", features))
            if self.use_bias:
                y += self._joined(weights, group, "bias", 1).reshape(-1)
            start = 0
            for name in group:
                size = self.head_value_dim if name == "value" else self.key_dim
                stop = start + self.num_heads * size
                projected[name] = y[:, start:stop].reshape(
                    batch, steps, self.num_heads, size).transpose(0, 2, 1, 3)
                start = stop
        return projected

    def backward(self, weights, cache, dy):
        if not isinstance(cache, Flattened):
            return self._attend_backward(weights, cache, dy)
        rank = cache.inputs[0].ndim
        if self.return_attention_scores:
            dy, d_probabilities = dy
            probabilities = cache.cache[5]  # (batch · others, heads, T, S)
            dy = [self._flatten(dy, rank), d_probabilities.reshape(probabilities.shape)]
        else:
            dy = self._flatten(dy, rank)
        dxs, grads = self._attend_backward(weights, cache.cache, dy)
        return [None if d is None else self._unflatten(d, x)
                for d, x in zip(dxs, cache.inputs, strict=True)], grads

    def _attend_backward(self, weights, cache, dy):
        roles, named, q, k, v, probabilities, keep, used, joined, mask = cache
        if self.return_attention_scores:
            dy, d_probabilities_out = dy
        else:
            d_probabilities_out = None
        query = named["query"]
        batch, steps = query.shape[:2]
        heads = self.num_heads
        grads: dict[str, np.ndarray] = {}
        kernel = weights["attention_output/kernel"]
        dy_rows = dy.reshape(batch * steps, -1)
        grads["attention_output/kernel"] = matmul(joined.T, dy_rows).reshape(kernel.shape)
        if self.use_bias:
            grads["attention_output/bias"] = dy_rows.sum(axis=0).reshape(kernel.shape[2:])
        d_heads = matmul(dy_rows, kernel.reshape(heads * self.head_value_dim, -1).T).reshape(
            batch, steps, heads, -1).transpose(0, 2, 1, 3)
        d_v = matmul(used.transpose(0, 1, 3, 2), d_heads)
        d_probabilities = matmul(d_heads, v.transpose(0, 1, 3, 2))
        if keep is not None:
            d_probabilities *= keep
        if d_probabilities_out is not None:
            d_probabilities += d_probabilities_out
        d_logits = scores.softmax_backward(probabilities, d_probabilities, mask,
                                           zero_masked=not self.fused)
        d_q = matmul(d_logits, k)  # d of the scaled q
        d_k = matmul(d_logits.transpose(0, 1, 3, 2), q)
        d_q *= d_q.dtype.type(1.0 / sqrt(float(self.key_dim)))
        dxs = self._project_backward(weights, named, {"query": d_q, "key": d_k, "value": d_v},
                                     roles, grads)
        return [dxs.get(role) for role in roles], grads

    def _project_backward(self, weights, named: dict, d_projected: dict, roles: tuple,
                          grads: dict) -> dict[str, np.ndarray]:
        """Kernel and bias gradients of the projections, and d input of each projected array,
        given to the first of its call arguments among `roles` (an input read twice, as in
        `[x, x]`, takes its whole gradient at its first use; the graph adds them up)."""
        dxs = {}
        for group in self._sharing(named):
            x = named[group[0]]
            features = x.shape[-1]
            pieces = [d_projected[name].transpose(0, 2, 1, 3).reshape(x.shape[0] * x.shape[1], -1)
                      for name in group]
            d_rows = pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=1)
            d_kernel = matmul(x.reshape(-1, features).T, d_rows)
            d_bias = d_rows.sum(axis=0) if self.use_bias else None
            start = 0
            for name, piece in zip(group, pieces, strict=True):
                stop = start + piece.shape[1]
                kernel = weights[f"{name}/kernel"]
                grads[f"{name}/kernel"] = d_kernel[:, start:stop].reshape(kernel.shape)
                if d_bias is not None:
                    grads[f"{name}/bias"] = d_bias[start:stop].reshape(kernel.shape[1:])
                start = stop
            taker = next(role for role in ("query", "value", "key")
                         if role in group and role in roles)
            dxs[taker] = matmul(d_rows, self._joined(weights, group, "kernel", features).T).reshape(
                x.shape)
        return dxs
