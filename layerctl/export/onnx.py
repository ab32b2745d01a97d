"""A Plan plus weights as an ONNX model (`layerctl export --format onnx`), built with onnx.helper.

Tensors keep layerctl's layouts, so the model takes and returns exactly what `layerctl predict`
does: one input named `input` (float32, or int64 indices when the model starts with an
Embedding) and one output named after the last layer, with a dynamic batch axis named `batch`.
Every layer's output tensor carries the layer's name. Operators that ONNX defines channels-first
(Conv, MaxPool) are wrapped in Transposes for channels_last layers; explicit pads come from
`layerctl.ops.windows.padding_amounts` (TensorFlow's `same` rule: the odd cell after; `causal`
pads before), or `auto_pad=SAME_UPPER` (the same rule) when a spatial size is unknown.

Masks follow the Plan: Masking and Embedding(mask_zero) make them, layers that support masking
pass them on (merges make their own, by Keras's rules: export/onnx_merge.py), and they are
computed only where a layer reads them. Anything without an ONNX counterpart raises an
ExportError naming the layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from layerctl import __version__
from layerctl.export import DEFAULT_OPSET, ExportError
from layerctl.export.onnx_activation_layers import ACTIVATION_LAYER_CONVERTERS
from layerctl.export.onnx_attention import ATTENTION_CONVERTERS
from layerctl.export.onnx_convolution import CONVOLUTION_CONVERTERS
from layerctl.export.onnx_graph import BOOL, FLOAT, INT64, OnnxGraph, activation
from layerctl.export.onnx_merge import MERGE_CONVERTERS
from layerctl.export.onnx_normalization import NORMALIZATION_CONVERTERS
from layerctl.export.onnx_pooling import POOLING_CONVERTERS
from layerctl.export.onnx_preprocessing import PREPROCESSING_CONVERTERS
from layerctl.export.onnx_recurrent import RECURRENT_CONVERTERS
from layerctl.export.onnx_regularization import REGULARIZATION_CONVERTERS
from layerctl.export.onnx_reshaping import RESHAPING_CONVERTERS
from layerctl.export.onnx_wrappers import WRAPPERS_CONVERTERS
from layerctl.ops.windows import padding_amounts
from layerctl.plan import Node, Plan

# (graph, node, input tensors, input masks (bool, or None), the layer's weights, whether the
# layer's own mask is needed) -> (output tensor, the mask the layer makes itself or None)
Converter = Callable[[OnnxGraph, Node, list[str], list[str | None], dict[str, np.ndarray], bool],
                     tuple[str, str | None]]
MIN_OPSET = 17
ONNX_FILE_LIMIT = 2**31 - 2**24  # protobuf's 2 GiB, less room for the graph itself


def build_onnx_model(plan: Plan, weights: Mapping[str, np.ndarray],
                     opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """The ONNX model computing `plan` in inference mode with `weights` ("layer/weight")."""
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ExportError(f"opset {opset} is not supported: choose {MIN_OPSET} to {newest} "
                          f"(default {DEFAULT_OPSET})")
    size = sum(np.asarray(value).size * 4 for value in weights.values())
    if size >= ONNX_FILE_LIMIT:
        raise ExportError(f"the weights take {size / 2**30:.1f} GiB as float32, more than an "
                          "ONNX file can hold (2 GiB, a protobuf limit)")
    g = OnnxGraph(opset)
    outputs = _convert_layers(g, plan, weights)
    graph = helper.make_graph(
        g.nodes, plan.name,
        [_value_info(i.name, INT64 if i.integer else FLOAT, i.shape) for i in plan.inputs],
        [_value_info(tensor, FLOAT, plan.shape_of(ref)) for ref, tensor in outputs],
        initializer=g.initializers)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="layerctl",
                              producer_version=__version__,
                              ir_version=helper.find_min_ir_version_for(opsets))
    model.doc_string = f"{plan.name}: exported by layerctl {__version__} (inference mode)"
    onnx.checker.check_model(model)
    return model


def export_onnx(plan: Plan, weights: Mapping[str, np.ndarray], path: str | Path,
                opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Build the ONNX model and write it to `path` atomically; returns the model."""
    from layerctl.atomic import atomic_path

    model = build_onnx_model(plan, weights, opset)
    with atomic_path(path) as temporary:
        onnx.save_model(model, str(temporary))
    return model


def _convert_layers(g: OnnxGraph, plan: Plan,
                    weights: Mapping[str, np.ndarray]) -> list[tuple[str, str]]:
    """Every node of the plan, in order; each layer's output tensor takes the layer's name
    (a second output `lstm.1`). Returns (output reference, tensor) for the model outputs."""
    for model_input in plan.inputs:
        g.reserve(model_input.name)
    for node in plan.nodes:
        g.reserve(node.name)
    values: dict[str, str] = {i.name: i.name for i in plan.inputs}
    masks: dict[str, str | None] = dict.fromkeys(values)
    integer = {i.name for i in plan.inputs if i.integer}
    wanted = _masks_needed(plan)
    for node in plan.nodes:
        convert = CONVERTERS.get(node.layer.keras_class)
        if convert is None:
            raise ExportError(f"layer '{node.name}' ({node.layer.keras_class}) cannot be exported "
                              "to ONNX: there is no converter for this layer type")
        xs = [_float_input(g, values, s) if s in integer and not node.layer.integer_input
              else values[s] for s in node.inputs]
        owner = plan.node(node.owner)
        layer_weights = {w.name: np.asarray(weights[f"{owner.name}/{w.name}"], np.float32)
                         for w in owner.weights}
        y, own_mask = convert(g, node, xs, [masks[s] for s in node.inputs], layer_weights,
                              node.name in wanted)
        ys = list(y) if isinstance(y, list | tuple) else [y]
        for k, tensor in enumerate(ys):
            ref = node.output_refs[k]
            if k and ref not in g._taken:
                g.reserve(ref)
            if not (_produced(g, tensor, values) and g.rename_output(tensor, ref)):
                g.nodes.append(helper.make_node("Identity", [tensor], [ref],
                                                name=g.fresh(f"{ref}/Identity:")))
            values[ref] = ref
            masks[ref] = (_output_mask(g, node, own_mask, [masks[s] for s in node.inputs])
                          if node.name in wanted else None)
    outputs = []
    for ref in plan.outputs:
        tensor = values[ref]
        if tensor in plan.input_names or tensor in (t for _, t in outputs):
            tensor = g.op("Identity", [tensor], f"output/{ref}")
        outputs.append((ref, tensor))
    return outputs


def _value_info(name: str, elem_type: int, shape: tuple) -> onnx.ValueInfoProto:
    dims = ["batch"] + [d for d in shape[1:]]  # None stays an unnamed, unknown dimension
    return helper.make_tensor_value_info(name, elem_type, dims)


def _produced(g: OnnxGraph, tensor: str, values: dict[str, str]) -> bool:
    """Whether `tensor` is a fresh node output of this layer (so it can take the layer's name)."""
    return tensor not in values.values() and any(tensor in n.output for n in g.nodes)


def _float_input(g: OnnxGraph, values: dict[str, str], name: str) -> str:
    """An integer model input as floats, for a layer other than Embedding that reads it."""
    key = f"{name}:float"
    if key not in values:
        values[key] = g.op("Cast", [name], name, to=FLOAT)
    return values[key]


def _masks_needed(plan: Plan) -> set[str]:
    """Layers whose output mask some mask reader (an LSTM) reads, directly or through layers
    passing it on."""
    needed: set[str] = set()
    for node in reversed(plan.nodes):
        for consumer in plan.nodes:
            if node.name not in consumer.inputs or not consumer.receives_mask:
                continue
            passes_on = consumer.emits_mask and consumer.layer.keras_class not in (
                "Masking", "Embedding")
            if consumer.layer.reads_mask or (passes_on and consumer.name in needed):
                needed.add(node.name)
    return needed


def _output_mask(g: OnnxGraph, node: Node, own: str | None,
                 inputs: list[str | None]) -> str | None:
    if not node.emits_mask:
        return None
    if own is not None or len(inputs) != 1:
        return own  # a layer of several inputs (a merge) makes its own mask, by its own rule
    return inputs[0]


# ---- one converter per layer type ------------------------------------------------------------
def _dense(g, node, xs, masks, w, want_mask):
    layer, name = node.layer, node.name
    y = g.op("MatMul", [xs[0], g.const(w["kernel"], f"{name}/kernel")], name)
    if layer.use_bias:
        y = g.op("Add", [y, g.const(w["bias"], f"{name}/bias")], name)
    return activation(g, layer.activation, y, name, rank=len(node.output_shape),
                      layer=name), None


def _activation(g, node, xs, masks, w, want_mask):
    return activation(g, node.layer.activation, xs[0], node.name,
                      rank=len(node.output_shape), layer=node.name), None


def _identity(g, node, xs, masks, w, want_mask):
    return xs[0], None  # Dropout: inference mode


def _channels_first(g: OnnxGraph, x: str, rank: int, name: str) -> str:
    return g.transpose(x, [0, rank - 1, *range(1, rank - 1)], name)


def _channels_last(g: OnnxGraph, x: str, rank: int, name: str) -> str:
    return g.transpose(x, [0, *range(2, rank), 1], name)


def _window_attributes(node: Node, window: tuple[int, ...], strides: tuple[int, ...],
                       padding: str, dilation: tuple[int, ...]) -> dict:
    """kernel_shape/strides/dilations and explicit pads ([begins..., ends...])."""
    layer = node.layer
    shape = node.input_shapes[0]
    spatial = shape[2:] if layer.data_format == "channels_first" else shape[1:-1]
    attributes = {"kernel_shape": list(window), "strides": list(strides)}
    # With stride 1 the pads do not depend on the size; otherwise an unknown size needs
    # SAME_UPPER (TF's rule too), which ONNX Runtime allows since dilation is then 1 (Keras).
    if padding == "same" and any(
            n is None and s > 1 for n, s in zip(spatial, strides, strict=True)):
        attributes["auto_pad"] = "SAME_UPPER"
        return attributes
    pads = [padding_amounts(n or 1, k, padding, s, d)
            for n, k, s, d in zip(spatial, window, strides, dilation, strict=True)]
    attributes["pads"] = [lo for lo, _ in pads] + [hi for _, hi in pads]
    return attributes


def _conv(g, node, xs, masks, w, want_mask):
    layer, name = node.layer, node.name
    rank = layer.spatial_rank + 2
    last = layer.data_format != "channels_first"
    x = _channels_first(g, xs[0], rank, name) if last else xs[0]
    # Keras kernel (k..., in/groups, filters) -> ONNX (filters, in/groups, k...)
    kernel = np.transpose(w["kernel"], (rank - 1, rank - 2, *range(rank - 2)))
    inputs = [x, g.const(kernel, f"{name}/kernel")]
    if layer.use_bias:
        inputs.append(g.const(w["bias"], f"{name}/bias"))
    dilation = layer.dilation_tuple()
    attributes = _window_attributes(node, layer.kernel_tuple(), layer.stride_tuple(),
                                    layer.padding, dilation)
    y = g.op("Conv", inputs, name, dilations=list(dilation), group=layer.groups, **attributes)
    if last:
        y = _channels_last(g, y, rank, name)
    # as in Keras, softmax-like activations act on the last axis of the output's own layout
    y = activation(g, layer.activation, y, name, axis=rank - 1, rank=rank, layer=name)
    return y, None


def _max_pool(g, node, xs, masks, w, want_mask):
    layer, name = node.layer, node.name
    rank = layer.spatial_rank + 2
    last = layer.data_format != "channels_first"
    x = _channels_first(g, xs[0], rank, name) if last else xs[0]
    # ONNX MaxPool ignores padding cells (they never win), as layerctl's −inf padding does
    attributes = _window_attributes(node, layer.pool_tuple(), layer.stride_tuple(),
                                    layer.padding, (1,) * layer.spatial_rank)
    y = g.op("MaxPool", [x], name, **attributes)
    return (_channels_last(g, y, rank, name) if last else y), None


def _global_max_pool(g, node, xs, masks, w, want_mask):
    axis = 2 if node.layer.data_format == "channels_first" else 1
    return g.reduce("ReduceMax", xs[0], [axis], node.name, keepdims=node.layer.keepdims), None


def _flatten(g, node, xs, masks, w, want_mask):
    x, rank = xs[0], len(node.input_shapes[0])
    if node.layer.data_format == "channels_first" and rank > 2:
        x = _channels_last(g, x, rank, node.name)  # Keras flattens channels-last order
    return g.op("Flatten", [x], node.name, axis=1), None


def _batch_normalization(g, node, xs, masks, w, want_mask):
    """Inference form: (x − moving_mean) · gamma / sqrt(moving_variance + ε) + beta."""
    layer, name = node.layer, node.name
    rank = len(node.input_shapes[0])
    trailing = (1,) * (rank - 1 - layer.axis % rank)  # broadcasts along the layer's axis

    def vector(value: np.ndarray, what: str) -> str:
        return g.const(value.reshape(value.shape + trailing), f"{name}/{what}")

    variance = w["moving_variance"]
    scale = np.float32(1.0) / np.sqrt(variance + variance.dtype.type(layer.epsilon))
    if layer.scale:
        scale = scale * w["gamma"]
    y = g.op("Mul", [g.op("Sub", [xs[0], vector(w["moving_mean"], "moving_mean")], name),
                     vector(scale, "scale")], name)
    if layer.center:
        y = g.op("Add", [y, vector(w["beta"], "beta")], name)
    return y, None


def _masking(g, node, xs, masks, w, want_mask):
    """Steps whose features all equal mask_value become 0 and are masked."""
    x, name = xs[0], node.name
    differs = g.op("Not", [g.op("Equal", [x, g.scalar(node.layer.mask_value)], name)], name)
    keep = g.reduce("ReduceMax", g.op("Cast", [differs], name, to=FLOAT), [-1], name,
                    keepdims=True)
    y = g.op("Mul", [x, keep], name)
    if not want_mask:
        return y, None
    return y, g.op("Cast", [g.squeeze(keep, [-1], name)], f"{name}/mask", to=BOOL)


def _embedding(g, node, xs, masks, w, want_mask):
    name, indices = node.name, xs[0]
    # float indices (from another layer) are truncated to integers, as layerctl does; a Cast
    # of int64 model indices is a no-op
    indices = g.op("Cast", [indices], name, to=INT64)
    y = g.op("Gather", [g.const(w["embeddings"], f"{name}/embeddings"), indices], name, axis=0)
    mask = None
    if node.layer.mask_zero and want_mask:
        zero = g.const(0, "const/index_0", np.int64)
        mask = g.op("Not", [g.op("Equal", [indices, zero], f"{name}/mask")], f"{name}/mask")
    return y, mask


CONVERTERS: dict[str, Converter] = {
    "Dense": _dense, "Activation": _activation, "Dropout": _identity, "Masking": _masking,
    "Flatten": _flatten, "BatchNormalization": _batch_normalization,
    "MaxPooling1D": _max_pool, "MaxPooling2D": _max_pool, "GlobalMaxPooling1D": _global_max_pool,
    "Conv1D": _conv, "Conv2D": _conv, "Embedding": _embedding,
}
CONVERTERS.update(NORMALIZATION_CONVERTERS)
CONVERTERS.update(POOLING_CONVERTERS)
CONVERTERS.update(REGULARIZATION_CONVERTERS)
CONVERTERS.update(MERGE_CONVERTERS)
CONVERTERS.update(ACTIVATION_LAYER_CONVERTERS)
CONVERTERS.update(PREPROCESSING_CONVERTERS)
CONVERTERS.update(CONVOLUTION_CONVERTERS)
CONVERTERS.update(RESHAPING_CONVERTERS)
CONVERTERS.update(RECURRENT_CONVERTERS)
CONVERTERS.update(ATTENTION_CONVERTERS)
CONVERTERS.update(WRAPPERS_CONVERTERS)
