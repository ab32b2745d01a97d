"""ONNX converters of the merge layers, with Keras 3's mask rules (see layerctl/layers/merge/).

Each converter makes its layer's output mask itself when one is wanted: the OR of the inputs'
masks for the element-wise merges (none when an input has none), Concatenate's joined masks,
none for Dot. Inputs of lower rank gain axes after the batch axis (Keras's broadcasting), and
Multiply, Maximum and Minimum apply the masks to the values as layerctl does.
"""

from __future__ import annotations

import numpy as np

from layerctl.export.onnx_graph import BOOL, FLOAT, OnnxGraph


def _aligned(g: OnnxGraph, node, xs: list[str]) -> list[str]:
    rank = len(node.output_shape)
    return [g.unsqueeze(x, list(range(1, 1 + rank - len(shape))), node.name)
            if len(shape) < rank else x for x, shape in zip(xs, node.input_shapes, strict=True)]


def _or_mask(g: OnnxGraph, node, masks, want_mask: bool) -> str | None:
    if not want_mask or any(m is None for m in masks):
        return None
    joined = masks[0]
    for other in masks[1:]:
        joined = g.op("Or", [joined, other], f"{node.name}/mask")
    return joined


def _chain(g: OnnxGraph, op_type: str, xs: list[str], name: str) -> str:
    y = xs[0]
    for x in xs[1:]:  # in order, as layerctl computes (same rounding)
        y = g.op(op_type, [y, x], name)
    return y


def _element_masks(g: OnnxGraph, node, xs: list[str], masks) -> list[str | None]:
    """Each (batch, ...) mask stretched over its input's features (Keras's expand_dims(-1) +
    broadcast_to), only when the inputs' ranks are equal."""
    if len({len(s) for s in node.input_shapes}) > 1:
        return [None] * len(xs)
    return [None if m is None else _stretch(g, m, x, node.name)
            for x, m in zip(xs, masks, strict=True)]


def _stretch(g: OnnxGraph, mask: str, x: str, name: str) -> str:
    return g.op("Expand", [g.unsqueeze(mask, [-1], name), g.op("Shape", [x], name)], name)


def _add(g, node, xs, masks, w, want_mask):
    return _chain(g, "Add", _aligned(g, node, xs), node.name), _or_mask(g, node, masks, want_mask)


def _subtract(g, node, xs, masks, w, want_mask):
    return (_chain(g, "Sub", _aligned(g, node, xs), node.name),
            _or_mask(g, node, masks, want_mask))


def _average(g, node, xs, masks, w, want_mask):
    total = _chain(g, "Add", _aligned(g, node, xs), node.name)
    return (g.op("Div", [total, g.scalar(float(len(xs)))], node.name),
            _or_mask(g, node, masks, want_mask))


def _multiply(g, node, xs, masks, w, want_mask):
    name, xs = node.name, _aligned(g, node, xs)
    stretched = _element_masks(g, node, xs, masks)
    factors = [x if m is None else g.op("Where", [m, x, g.scalar(1.0)], name)
               for x, m in zip(xs, stretched, strict=True)]
    y = _chain(g, "Mul", factors, name)
    if all(m is not None for m in stretched):  # zero where every input is masked
        kept = _chain(g, "Or", stretched, name)
        y = g.op("Where", [kept, y, g.scalar(0.0)], name)
    return y, _or_mask(g, node, masks, want_mask)


def _extremum(op_type: str):
    def convert(g, node, xs, masks, w, want_mask):
        name, xs = node.name, _aligned(g, node, xs)
        stretched = _element_masks(g, node, xs, masks)
        result, result_mask = xs[0], stretched[0]
        for x, mask in zip(xs[1:], stretched[1:], strict=True):
            if mask is not None:
                x = g.op("Where", [mask, x, result], name)
            if result_mask is not None:
                result = g.op("Where", [result_mask, result, x], name)
            result_mask = (None if mask is None or result_mask is None
                           else g.op("Or", [result_mask, mask], name))
            result = g.op(op_type, [result, x], name)
        return result, _or_mask(g, node, masks, want_mask)

    return convert


def _concatenate(g, node, xs, masks, w, want_mask):
    name = node.name
    axis = node.layer.axis % len(node.output_shape)
    y = g.op("Concat", xs, name, axis=axis)
    if not want_mask or all(m is None for m in masks):
        return y, None
    stretched = []
    for x, m in zip(xs, masks, strict=True):
        if m is None:  # an unmasked input counts as all-true
            m = g.op("Not", [g.op("Cast", [g.op("ConstantOfShape", [g.op("Shape", [x], name)],
                                               name)], name, to=BOOL)], name)
        else:  # layerctl's masks have their values' axes but the last
            m = _stretch(g, m, x, name)
        stretched.append(m)
    joined = g.op("Cast", [g.op("Concat", stretched, name, axis=axis)], name, to=FLOAT)
    kept = g.reduce("ReduceMax", joined, [-1], name)
    return y, g.op("Cast", [kept], f"{name}/mask", to=BOOL)


def _dot(g, node, xs, masks, w, want_mask):
    name, layer = node.name, node.layer
    ranks = tuple(len(s) for s in node.input_shapes)
    a, b = layer.normalized_axes(ranks)
    inputs = list(xs)
    if layer.normalize:
        inputs = [_l2_normalize(g, x, axis, name) for x, axis in zip(inputs, (a, b), strict=True)]
    letters = "bcdefghijklmnopqrstuvw"
    x_letters = ["a"] + [letters[i] for i in range(ranks[0] - 1)]
    x_letters[a] = "z"
    y_letters = ["a"] + [letters[ranks[0] - 1 + i] for i in range(ranks[1] - 1)]
    y_letters[b] = "z"
    out = [c for c in x_letters if c != "z"] + [c for c in y_letters[1:] if c != "z"]
    equation = f"{''.join(x_letters)},{''.join(y_letters)}->{''.join(out)}"
    y = g.op("Einsum", inputs, name, equation=equation)
    if len(out) == 1:
        y = g.unsqueeze(y, [1], name)
    return y, None


def _l2_normalize(g: OnnxGraph, x: str, axis: int, name: str) -> str:
    """x · min(1/√Σx², 1/ε), Keras's `ops.normalize`."""
    squares = g.reduce("ReduceSum", g.op("Mul", [x, x], name), [axis], name, keepdims=True)
    inverse = g.op("Reciprocal", [g.op("Sqrt", [squares], name)], name)
    scale = g.op("Min", [inverse, g.const(np.float32(1e7), f"{name}/inverse_epsilon")], name)
    return g.op("Mul", [x, scale], name)


MERGE_CONVERTERS = {
    "Add": _add, "Subtract": _subtract, "Average": _average, "Multiply": _multiply,
    "Maximum": _extremum("Max"), "Minimum": _extremum("Min"), "Concatenate": _concatenate,
    "Dot": _dot,
}
