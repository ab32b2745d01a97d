"""ONNX converters of the pooling family beyond max pooling: AveragePooling1D/2D and the global
pools (GlobalAveragePooling1D/2D, GlobalMaxPooling2D).

AveragePool is written with count_include_pad=0, so a `same` window averages only its cells
inside the input, as layerctl and Keras do; it shares max pooling's transposes and explicit pads.
Global pools are one ReduceMean/ReduceMax over the spatial axes. A masked GlobalAveragePooling1D
sums the unmasked steps (Where, so masked values never enter) and divides by their count; like
Keras it makes no mask.
"""

from __future__ import annotations

from layerctl.export.onnx_graph import FLOAT, OnnxGraph


def _average_pool(g: OnnxGraph, node, xs, masks, w, want_mask):
    from layerctl.export.onnx import _channels_first, _channels_last, _window_attributes

    layer, name = node.layer, node.name
    rank = layer.spatial_rank + 2
    last = layer.data_format != "channels_first"
    x = _channels_first(g, xs[0], rank, name) if last else xs[0]
    attributes = _window_attributes(node, layer.pool_tuple(), layer.stride_tuple(),
                                    layer.padding, (1,) * layer.spatial_rank)
    y = g.op("AveragePool", [x], name, count_include_pad=0, **attributes)
    return (_channels_last(g, y, rank, name) if last else y), None


def _global_pool(op_type: str):
    def convert(g: OnnxGraph, node, xs, masks, w, want_mask):
        axes = list(node.layer.pooled_axes())
        return g.reduce(op_type, xs[0], axes, node.name, keepdims=node.layer.keepdims), None

    return convert


def _global_average_pool_1d(g: OnnxGraph, node, xs, masks, w, want_mask):
    layer, name = node.layer, node.name
    if masks[0] is None:
        return _global_pool("ReduceMean")(g, node, xs, masks, w, want_mask)
    axis = layer.pooled_axes()[0]
    keep = g.unsqueeze(masks[0], [1 if layer.data_format == "channels_first" else 2], name)
    kept = g.op("Where", [keep, xs[0], g.scalar(0.0)], name)
    total = g.reduce("ReduceSum", kept, [axis], name, keepdims=layer.keepdims)
    count = g.reduce("ReduceSum", g.op("Cast", [keep], name, to=FLOAT), [axis], name,
                     keepdims=layer.keepdims)
    return g.op("Div", [total, count], name), None


POOLING_CONVERTERS = {
    "AveragePooling1D": _average_pool, "AveragePooling2D": _average_pool,
    "GlobalAveragePooling1D": _global_average_pool_1d,
    "GlobalAveragePooling2D": _global_pool("ReduceMean"),
    "GlobalMaxPooling2D": _global_pool("ReduceMax"),
}
