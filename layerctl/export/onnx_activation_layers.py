"""ONNX converters of the activation layers (ReLU, LeakyReLU, PReLU, ELU, Softmax), formula by
formula as layerctl/layers/activation_layers.py computes them; the mask passes on unchanged."""

from __future__ import annotations

from layerctl.export.onnx_graph import OnnxGraph
from layerctl.layers.activation_layers import MASKED_LOGIT


def _relu(g: OnnxGraph, node, xs, masks, w, want_mask):
    layer, name, x = node.layer, node.name, xs[0]
    if layer.computes_leaky_relu():
        return g.op("LeakyRelu", [x], name, alpha=layer.negative_slope), None
    threshold = g.scalar(float(layer.threshold))
    kept = g.op("Where", [g.op("Greater", [x, threshold], name), x, g.scalar(0.0)], name)
    if layer.max_value is not None:
        kept = g.op("Min", [kept, g.scalar(float(layer.max_value))], name)
    if layer.negative_slope != 0:
        below = g.op("Relu", [g.op("Sub", [threshold, x], name)], name)
        kept = g.op("Sub", [kept, g.op("Mul", [below, g.scalar(float(layer.negative_slope))],
                                       name)], name)
    return kept, None


def _leaky_relu(g, node, xs, masks, w, want_mask):
    return g.op("LeakyRelu", [xs[0]], node.name, alpha=node.layer.negative_slope), None


def _prelu(g, node, xs, masks, w, want_mask):
    alpha = g.const(w["alpha"], f"{node.name}/alpha")
    return g.op("PRelu", [xs[0], alpha], node.name), None


def _elu(g, node, xs, masks, w, want_mask):
    return g.op("Elu", [xs[0]], node.name, alpha=node.layer.alpha), None


def _softmax(g, node, xs, masks, w, want_mask):
    name, x = node.name, xs[0]
    axes = node.layer.normalized_axes(len(node.output_shape))
    mask = masks[0]
    if mask is not None:
        x = g.op("Where", [mask, x, g.scalar(MASKED_LOGIT)], name)
    if len(axes) == 1:
        y = g.op("Softmax", [x], name, axis=axes[0])
    else:
        shifted = g.op("Sub", [x, g.reduce("ReduceMax", x, axes, name, keepdims=True)], name)
        e = g.op("Exp", [shifted], name)
        y = g.op("Div", [e, g.reduce("ReduceSum", e, axes, name, keepdims=True)], name)
    if mask is not None:
        y = g.op("Where", [mask, y, g.scalar(0.0)], name)
    return y, None


ACTIVATION_LAYER_CONVERTERS = {
    "ReLU": _relu, "LeakyReLU": _leaky_relu, "PReLU": _prelu, "ELU": _elu, "Softmax": _softmax,
}
