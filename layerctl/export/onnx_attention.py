"""ONNX converters of the attention layers: MultiHeadAttention, Attention, AdditiveAttention.

Built from MatMul, Softmax and Where, as layerctl computes them: MultiHeadAttention's
projections are MatMuls with the EinsumDense kernels flattened to (features, heads·size), then
a Reshape by the run-time shape (`[0, 0, heads, size]`, so unknown lengths stay unknown) and a
Transpose to (batch, heads, steps, size). Masks (query, value, key, causal from the run-time
lengths, an `attention_mask` input) are joined with And; masked scores become -1e9
(MultiHeadAttention) or lose 1e9 (Attention, AdditiveAttention) before the Softmax, and rows
with every position masked are zeroed where Keras's einsum path zeroes them. The output
carries the query's mask.
"""

from __future__ import annotations

from math import sqrt

import numpy as np
from onnx import numpy_helper

from layerctl.export import ExportError
from layerctl.export.onnx_graph import OnnxGraph
from layerctl.layers.attention.scores import LARGE_NEGATIVE


def _causal(g: OnnxGraph, query: str, value: str, hint: str) -> str:
    """(1, T, S) bool: row index >= column index, from the run-time lengths."""
    zero, one = g.const(0, "const/int_0", np.int64), g.const(1, "const/int_1", np.int64)

    def positions(x: str) -> str:
        length = g.op("Squeeze", [g.op("Shape", [x], hint, start=1, end=2)], hint)
        return g.op("Range", [zero, length, one], hint)

    rows = g.unsqueeze(positions(query), [1], hint)
    causal = g.op("GreaterOrEqual", [rows, positions(value)], f"{hint}/causal")
    return g.unsqueeze(causal, [0], hint)  # (1, T, S)


def _own_mask(g: OnnxGraph, query_mask: str | None, query: str, want_mask: bool,
              hint: str) -> str | None:
    """The output's mask: the query's. An unmasked query (only the value or key masked) gives
    an all-true mask, which every mask reader treats as no mask (layerctl passes none on)."""
    if not want_mask or query_mask is not None:
        return query_mask if want_mask else None
    steps = g.op("Shape", [query], hint, start=0, end=2)
    return g.op("ConstantOfShape", [steps], f"{hint}/mask",
                value=numpy_helper.from_array(np.array([True])))


def _join(g: OnnxGraph, masks: list[str | None], hint: str) -> str | None:
    present = [m for m in masks if m is not None]
    if not present:
        return None
    joined = present[0]
    for other in present[1:]:
        joined = g.op("And", [joined, other], f"{hint}/mask")
    return joined


def _named(layer, values: list) -> dict:
    named = dict(zip(layer.input_roles(len(values)), values, strict=True))
    named.setdefault("key", named.get("value"))
    return named


def _project(g: OnnxGraph, x: str, kernel: np.ndarray, bias: np.ndarray | None,
             hint: str) -> str:
    """x (B, L, d) · kernel (d, N, size) + bias -> (B, N, L, size)."""
    features, heads, size = kernel.shape
    y = g.op("MatMul", [x, g.const(kernel.reshape(features, -1), f"{hint}/kernel")], hint)
    if bias is not None:
        y = g.op("Add", [y, g.const(bias.reshape(-1), f"{hint}/bias")], hint)
    split = g.const([0, 0, heads, size], f"{hint}/heads", np.int64)
    return g.transpose(g.op("Reshape", [y, split], hint), [0, 2, 1, 3], hint)


def multi_head_attention(g, node, xs, masks, w, want_mask):
    """Rank-3 inputs attend over their sequence; others are flattened to (batch · others,
    attended positions, features) around the same computation, as layerctl does."""
    shapes = node.input_shapes
    rank = len(shapes[0])
    if rank == 3 and node.layer.attended_axes(3) == (1,):
        return _multi_head_attention(g, node, xs, masks, w, want_mask)
    layer, name = node.layer, node.name
    others, attended = layer._layout(rank)
    order = [0, *others, *attended, rank - 1]
    if any(d is None for shape in shapes for d in shape[1:]):
        raise ExportError(f"layer '{name}' (MultiHeadAttention) attends over axes "
                          f"{list(attended)}: ONNX export needs every size of its inputs known")
    flat, views = {}, []
    for x, shape in zip(xs, shapes, strict=True):
        if x not in flat:
            positions = int(np.prod([shape[a] for a in attended]))
            flat[x] = g.op("Reshape", [g.transpose(x, order, name), g.const(
                [-1, positions, shape[-1]], f"{name}/flat", np.int64)], name)
        views.append(flat[x])
    y, own = _multi_head_attention(g, node, views, masks, w, want_mask)
    query = shapes[layer.input_roles(len(xs)).index("query")]
    value = shapes[layer.input_roles(len(xs)).index("value")]
    out = node.output_shapes[0][rank - 1:]
    grouped = [-1, *(query[a] for a in order[1:-1]), *out]
    inverse = [*np.argsort(order[:-1]).tolist(), *range(rank - 1, rank - 1 + len(out))]
    outputs = [g.transpose(g.op("Reshape", [y[0] if isinstance(y, list) else y, g.const(
        grouped, f"{name}/grouped", np.int64)], name), inverse, name)]
    if layer.return_attention_scores:
        scores_shape = [-1, *(query[a] for a in others), layer.num_heads,
                        *(query[a] for a in attended), *(value[a] for a in attended)]
        outputs.append(g.op("Reshape", [y[1], g.const(scores_shape, f"{name}/scores",
                                                       np.int64)], name))
        return outputs, own
    return outputs[0], own


def _multi_head_attention(g, node, xs, masks, w, want_mask):
    layer, name = node.layer, node.name
    named, named_masks = _named(layer, xs), _named(layer, masks)
    roles = layer.input_roles(len(xs))

    def weight(key: str) -> np.ndarray | None:
        return w.get(key) if layer.use_bias or not key.endswith("bias") else None

    q, k, v = (_project(g, named[p], w[f"{p}/kernel"], weight(f"{p}/bias"), f"{name}/{p}")
               for p in ("query", "key", "value"))
    q = g.op("Mul", [q, g.scalar(1.0 / sqrt(float(layer.key_dim)))], name)
    logits = g.op("MatMul", [q, g.transpose(k, [0, 1, 3, 2], name)], name)  # (B, N, T, S)
    query_mask, value_mask = named_masks.get("query"), named_masks.get("value")
    key_mask = named_masks.get("key") if "key" in roles else None
    explicit = named.get("attention_mask")
    if explicit is not None:
        explicit = g.op("Not", [g.op("Equal", [explicit, g.scalar(0.0)], name)], name)
        position = roles.index("attention_mask")
        if len(node.input_shapes[position]) == 2:  # (T, S) for every sample
            explicit = g.unsqueeze(explicit, [0], name)
    mask = _join(g, [
        explicit,
        None if query_mask is None else g.unsqueeze(query_mask, [2], name),
        None if value_mask is None else g.unsqueeze(value_mask, [1], name),
        None if key_mask is None else g.unsqueeze(key_mask, [1], name),
        _causal(g, named["query"], named["value"], name) if layer.use_causal_mask else None,
    ], name)
    if mask is not None:
        mask = g.unsqueeze(mask, [1], name)  # (B or 1, 1, T, S): the same for every head
        logits = g.op("Where", [mask, logits, g.scalar(LARGE_NEGATIVE)], name)
    probabilities = g.op("Softmax", [logits], name, axis=-1)
    if mask is not None and not layer.fused:
        probabilities = g.op("Where", [mask, probabilities, g.scalar(0.0)], name)
    heads = g.op("MatMul", [probabilities, v], name)  # (B, N, T, value_dim)
    joined = g.op("Reshape", [g.transpose(heads, [0, 2, 1, 3], name),
                              g.const([0, 0, -1], f"{name}/join", np.int64)], name)
    kernel = w["attention_output/kernel"]
    out = kernel.shape[2:]
    y = g.op("MatMul", [joined, g.const(kernel.reshape(-1, int(np.prod(out))),
                                        f"{name}/attention_output/kernel")], name)
    if layer.use_bias:
        y = g.op("Add", [y, g.const(w["attention_output/bias"].reshape(-1),
                                    f"{name}/attention_output/bias")], name)
    if len(out) > 1:
        y = g.op("Reshape", [y, g.const([0, 0, *out], f"{name}/output_shape", np.int64)], name)
    own = _own_mask(g, query_mask, named["query"], want_mask, name)
    return ([y, probabilities] if layer.return_attention_scores else y), own


def score_attention(g, node, xs, masks, w, want_mask):
    layer, name = node.layer, node.name
    named, named_masks = _named(layer, xs), _named(layer, masks)
    query, value, key = named["query"], named["value"], named["key"]
    if layer.keras_class == "AdditiveAttention":
        tanh = g.op("Tanh", [g.op("Add", [g.unsqueeze(query, [2], name),
                                          g.unsqueeze(key, [1], name)], name)], name)
        logits = (g.op("MatMul", [tanh, g.const(w["scale"], f"{name}/scale")], name)
                  if layer.use_scale else g.reduce("ReduceSum", tanh, [-1], name))
    elif layer.score_mode == "dot":
        logits = g.op("MatMul", [query, g.transpose(key, [0, 2, 1], name)], name)
        if layer.use_scale:
            logits = g.op("Mul", [logits, g.const(w["scale"], f"{name}/scale")], name)
    else:
        summed = g.op("Add", [g.unsqueeze(query, [2], name), g.unsqueeze(key, [1], name)], name)
        if layer.use_scale:
            summed = g.op("Mul", [summed, g.const(w["scale"], f"{name}/scale")], name)
        logits = g.op("Mul", [g.reduce("ReduceSum", g.op("Tanh", [summed], name), [-1], name),
                              g.const(w["concat_score_weight"], f"{name}/concat_score_weight")],
                      name)
    value_mask = named_masks.get("value")
    mask = _join(g, [
        None if value_mask is None else g.unsqueeze(value_mask, [1], name),
        _causal(g, query, key, name) if layer.use_causal_mask else None], name)
    if mask is not None:
        shifted = g.op("Sub", [logits, g.scalar(-LARGE_NEGATIVE)], name)
        logits = g.op("Where", [mask, logits, shifted], name)
    probabilities = g.op("Softmax", [logits], name, axis=-1)
    y = g.op("MatMul", [probabilities, value], name)
    query_mask = named_masks.get("query")
    if query_mask is not None:
        y = g.op("Where", [g.unsqueeze(query_mask, [2], name), y, g.scalar(0.0)], name)
    own = _own_mask(g, query_mask, query, want_mask, name)
    return ([y, probabilities] if layer.return_attention_scores else y), own


ATTENTION_CONVERTERS = {
    "MultiHeadAttention": multi_head_attention,
    "Attention": score_attention,
    "AdditiveAttention": score_attention,
}
