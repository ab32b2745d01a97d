"""ONNX converters for the preprocessing layers: Rescaling, Resizing, CenterCrop, Normalization.

Resizing is ONNX's `Resize` with `coordinate_transformation_mode=half_pixel`, the pixel-centre
convention of Keras 3 (torch's `align_corners=False`): `linear` for bilinear, and for nearest
the `round_prefer_ceil` rounding of the half-pixel coordinate, i.e. ⌊(i + ½)·n/m⌋ (torch's
`nearest-exact`). It runs channels-first (channels_last images are transposed around it) and is
given the output `sizes` (never `scales`, whose float products may round one cell short).
Crops, CenterCrop's and `crop_to_aspect_ratio`'s, are `Slice`s, which need the input's height
and width to be known.
"""

from __future__ import annotations

import numpy as np

from layerctl.export import ExportError
from layerctl.export.onnx_graph import OnnxGraph
from layerctl.layers.preprocessing.normalization import EPSILON
from layerctl.ops.resize import aspect_crop
from layerctl.plan import Node


def _rescaling(g, node, xs, masks, w, want_mask):
    layer, name = node.layer, node.name
    y = g.op("Mul", [xs[0], g.const(layer.scale, f"{name}/scale")], name)
    return g.op("Add", [y, g.const(layer.offset, f"{name}/offset")], name), None


def _normalization(g, node, xs, masks, w, want_mask):
    layer, name = node.layer, node.name
    shape = node.input_shapes[0]
    if layer.mean is not None:
        mean, variance = layer.given_statistics(shape, np.float32)
    else:
        broadcast = layer.broadcast_shape(shape)
        mean, variance = w["mean"].reshape(broadcast), w["variance"].reshape(broadcast)
    std = np.maximum(np.sqrt(variance.astype(np.float32)), np.float32(EPSILON))
    mean_name, std_name = g.const(mean, f"{name}/mean"), g.const(std, f"{name}/std")
    if layer.invert:
        return g.op("Add", [g.op("Mul", [xs[0], std_name], name), mean_name], name), None
    return g.op("Div", [g.op("Sub", [xs[0], mean_name], name), std_name], name), None


def _spatial_size(node: Node) -> tuple[int, int]:
    layer, shape = node.layer, node.input_shapes[0]
    rows, cols = layer.spatial_axes()
    if shape[rows] is None or shape[cols] is None:
        raise ExportError(f"layer '{node.name}' ({layer.keras_class}) cannot be exported to "
                          "ONNX with an unknown input height or width: it crops by them",
                          hint="give the model input a fixed image size")
    return shape[rows], shape[cols]


def _crop(g: OnnxGraph, x: str, node: Node, top: int, left: int, height: int,
          width: int) -> str:
    rows, cols = node.layer.spatial_axes()
    starts = g.const([top, left], f"{node.name}/starts", np.int64)
    ends = g.const([top + height, left + width], f"{node.name}/ends", np.int64)
    axes = g.const([rows, cols], f"{node.name}/axes", np.int64)
    return g.op("Slice", [x, starts, ends, axes], node.name)


def _resize(g: OnnxGraph, x: str, node: Node, interpolation: str) -> str:
    """x resized to the layer's (height, width) by ONNX Resize, channels-first inside."""
    layer, name = node.layer, node.name
    last = layer.data_format != "channels_first"
    if last:
        x = g.transpose(x, [0, 3, 1, 2], name)
    leading = g.op("Shape", [x], name, start=0, end=2)  # batch and channels, known at run time
    sizes = g.op("Concat", [leading, g.const([layer.height, layer.width], f"{name}/size",
                                             np.int64)], name, axis=0)
    attributes = {"mode": "linear"} if interpolation == "bilinear" else {
        "mode": "nearest", "nearest_mode": "round_prefer_ceil"}
    y = g.op("Resize", [x, "", "", sizes], name, coordinate_transformation_mode="half_pixel",
             **attributes)
    return g.transpose(y, [0, 2, 3, 1], name) if last else y


def _resizing(g, node, xs, masks, w, want_mask):
    x, layer = xs[0], node.layer
    if layer.crop_to_aspect_ratio:
        height, width = _spatial_size(node)
        x = _crop(g, x, node, *aspect_crop(height, width, layer.height, layer.width))
    return _resize(g, x, node, layer.interpolation), None


def _center_crop(g, node, xs, masks, w, want_mask):
    layer = node.layer
    height, width = _spatial_size(node)
    if layer.crops(height, width):
        top, left = (height - layer.height) // 2, (width - layer.width) // 2
        return _crop(g, xs[0], node, top, left, layer.height, layer.width), None
    x = _crop(g, xs[0], node, *aspect_crop(height, width, layer.height, layer.width))
    return _resize(g, x, node, "bilinear"), None


PREPROCESSING_CONVERTERS = {
    "Rescaling": _rescaling, "Normalization": _normalization, "Resizing": _resizing,
    "CenterCrop": _center_crop,
}

