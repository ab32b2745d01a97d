"""ONNX converters of the reshaping layers (Reshape, Permute, RepeatVector, Cropping, ZeroPadding,
UpSampling, Identity; Flatten stays with the core converters in `onnx.py`).

Each is one or two ONNX operators in layerctl's layout: Reshape keeps the batch axis from the
input's shape, cropping is a Slice, padding a Pad, and UpSampling a Resize with scales 1 on the
batch and channel axes (`nearest` as asymmetric/floor, which repeats cells; `bilinear` as linear
with `half_pixel` coordinates, which clamps at the edges as Keras 3 does). None of these layers
makes a mask; Identity passes one on.
"""

from __future__ import annotations

import numpy as np

from layerctl.export.onnx_graph import OnnxGraph


def _reshape(g: OnnxGraph, node, xs, masks, w, want_mask):
    name = node.name
    batch = g.op("Shape", [xs[0]], name, start=0, end=1)
    target = g.const(list(node.layer.target_shape), f"{name}/target_shape", np.int64)
    shape = g.op("Concat", [batch, target], name, axis=0)
    # allowzero: a 0 in target_shape means an empty axis (as in Keras), not "copy the input's"
    return g.op("Reshape", [xs[0], shape], name, allowzero=1), None


def _permute(g, node, xs, masks, w, want_mask):
    return g.transpose(xs[0], [0, *node.layer.dims], node.name), None


def _repeat_vector(g, node, xs, masks, w, want_mask):
    name = node.name
    steps = g.const([1, node.layer.n, 1], f"{name}/repeats", np.int64)
    return g.op("Expand", [g.unsqueeze(xs[0], [1], name), steps], name), None


def _crop(g, node, xs, masks, w, want_mask):
    layer, name = node.layer, node.name
    axes = layer.axes()
    starts = [before for before, _ in layer.margins()]
    ends = [-after if after else np.iinfo(np.int64).max for _, after in layer.margins()]
    inputs = [xs[0], g.const(starts, f"{name}/starts", np.int64),
              g.const(ends, f"{name}/ends", np.int64), g.const(list(axes), f"{name}/axes",
                                                                np.int64)]
    return g.op("Slice", inputs, name), None


def _pad(g, node, xs, masks, w, want_mask):
    layer, name = node.layer, node.name
    rank = len(node.output_shape)
    before, after = [0] * rank, [0] * rank
    for axis, (low, high) in zip(layer.axes(), layer.margins(), strict=True):
        before[axis], after[axis] = low, high
    pads = g.const(before + after, f"{name}/pads", np.int64)
    return g.op("Pad", [xs[0], pads], name, mode="constant"), None


def _upsample(g, node, xs, masks, w, want_mask):
    layer, name = node.layer, node.name
    scales = [1.0] * len(node.output_shape)
    for axis, factor in zip(layer.axes(), layer.factors(), strict=True):
        scales[axis] = float(factor)
    if getattr(layer, "interpolation", "nearest") == "nearest":
        attributes = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                      "nearest_mode": "floor"}
    else:
        attributes = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
    # ONNX's linear Resize interpolates along every axis whose scale is not 1, so channels_last
    # needs no transposes (ONNX Runtime supports both NCHW and NHWC layouts)
    y = g.op("Resize", [xs[0], "", g.const(scales, f"{name}/scales")], name, **attributes)
    return y, None


def _identity(g, node, xs, masks, w, want_mask):
    return xs[0], None


RESHAPING_CONVERTERS = {
    "Reshape": _reshape, "Permute": _permute, "RepeatVector": _repeat_vector,
    "Cropping1D": _crop, "Cropping2D": _crop, "ZeroPadding1D": _pad, "ZeroPadding2D": _pad,
    "UpSampling1D": _upsample, "UpSampling2D": _upsample, "Identity": _identity,
}
