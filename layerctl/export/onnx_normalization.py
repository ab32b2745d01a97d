"""ONNX converters of the per-sample normalizations: LayerNormalization, GroupNormalization and
UnitNormalization (BatchNormalization's, a fixed affine map in inference, is in onnx.py).

LayerNormalization becomes ONNX's LayerNormalization operator (opset 17) when it normalizes the
trailing axes and centres; otherwise (`rms_scaling`, axes that are not the last ones) the
statistics are written out with ReduceMean, as is GroupNormalization's over a grouped view of
the input (Reshape by the input's run-time shape, so unknown sizes stay unknown). A mask passes
through all three, as in layerctl.
"""

from __future__ import annotations

import numpy as np

from layerctl.export.onnx_graph import OnnxGraph
from layerctl.layers.normalization.unit_normalization import NORM_EPSILON


def _inverse_std(g: OnnxGraph, x: str, axes: list[int], epsilon: float,
                 hint: str) -> tuple[str, str]:
    """(x − mean, 1/sqrt(var + ε)) over `axes`, kept as singleton axes."""
    centred = g.op("Sub", [x, g.reduce("ReduceMean", x, axes, hint, keepdims=True)], hint)
    variance = g.reduce("ReduceMean", g.op("Mul", [centred, centred], hint), axes, hint,
                        keepdims=True)
    inverse = g.op("Reciprocal", [g.op("Sqrt", [
        g.op("Add", [variance, g.scalar(epsilon)], hint)], hint)], hint)
    return centred, inverse


def _layer_normalization(g, node, xs, masks, w, want_mask):
    layer, name, x = node.layer, node.name, xs[0]
    shape = node.input_shapes[0]
    rank = len(shape)
    axes = list(layer.normalized_axes(shape))
    normalized = [shape[a] for a in axes]
    gamma = w["gamma"].reshape(normalized) if layer.has_gamma else None
    beta = w["beta"].reshape(normalized) if layer.has_beta else None
    if not layer.rms_scaling and axes == list(range(axes[0], rank)) and None not in normalized:
        scale = gamma if gamma is not None else np.ones(normalized, np.float32)
        inputs = [x, g.const(scale, f"{name}/gamma")]
        if beta is not None:
            inputs.append(g.const(beta, f"{name}/beta"))
        return g.op("LayerNormalization", inputs, name, axis=axes[0],
                    epsilon=float(layer.epsilon)), None
    centred, inverse = _inverse_std(g, x, axes, layer.epsilon, name)
    y = g.op("Mul", [x if layer.rms_scaling else centred, inverse], name)
    broadcast = [shape[a] if a in axes else 1 for a in range(rank)]
    if gamma is not None:
        y = g.op("Mul", [y, g.const(gamma.reshape(broadcast), f"{name}/gamma")], name)
    if beta is not None:
        y = g.op("Add", [y, g.const(beta.reshape(broadcast), f"{name}/beta")], name)
    return y, None


def _group_normalization(g, node, xs, masks, w, want_mask):
    layer, name, x = node.layer, node.name, xs[0]
    grouped, reduce, axis = layer.grouped_shape(node.input_shapes[0])
    # the run-time shape with the channels axis split: [dims before, G, C/G, dims after]
    before = g.op("Shape", [x], name, end=axis)
    after = g.op("Shape", [x], name, start=axis + 1)
    split = g.const(list(grouped[axis:axis + 2]), f"{name}/groups", np.int64)
    grouped_x = g.op("Reshape", [x, g.op("Concat", [before, split, after], name, axis=0)], name)
    centred, inverse = _inverse_std(g, grouped_x, list(reduce), layer.epsilon, name)
    y = g.op("Mul", [centred, inverse], name)
    per_channel = [1] * len(grouped)
    per_channel[axis], per_channel[axis + 1] = grouped[axis], grouped[axis + 1]
    if layer.scale:
        y = g.op("Mul", [y, g.const(w["gamma"].reshape(per_channel), f"{name}/gamma")], name)
    if layer.center:
        y = g.op("Add", [y, g.const(w["beta"].reshape(per_channel), f"{name}/beta")], name)
    return g.op("Reshape", [y, g.op("Shape", [x], name)], name), None


def _unit_normalization(g, node, xs, masks, w, want_mask):
    """x / sqrt(max(Σx², 1e-24)): the norm never drops below Keras's 1e-12."""
    layer, name, x = node.layer, node.name, xs[0]
    axes = list(layer.normalized_axes(node.input_shapes[0]))
    square_sum = g.reduce("ReduceSum", g.op("Mul", [x, x], name), axes, name, keepdims=True)
    norm = g.op("Sqrt", [g.op("Max", [square_sum, g.scalar(NORM_EPSILON**2)], name)], name)
    return g.op("Div", [x, norm], name), None


NORMALIZATION_CONVERTERS = {
    "LayerNormalization": _layer_normalization,
    "GroupNormalization": _group_normalization,
    "UnitNormalization": _unit_normalization,
}
