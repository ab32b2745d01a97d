"""Bidirectional and TimeDistributed as ONNX, built from their inner layers' own converters.

- Bidirectional: the inner layer's converter twice, on the forward layer and on its
  `go_backwards` copy (which the converter already runs over reversed time, giving outputs in
  processing order); the backward sequence is reversed back with a step −1 Slice, then the two
  are merged (Concat on the last axis, Add, Mul, or their half for `ave`), or both returned.
- TimeDistributed: a Reshape folding time into the batch, the inner converter on
  (batch·timesteps, ...), and a Reshape unfolding it, all with shapes read at run time so batch
  and time may stay unknown.

The inner layer is presented to its converter as a node of its own, named
`<wrapper>/<inner name>` (so its constants read `bi/forward_lstm/kernel`) and given its own
weights.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from layerctl.export import ExportError
from layerctl.export.onnx_graph import OnnxGraph
from layerctl.layers.base import Layer, Shape
from layerctl.layers.wrappers.wrapper import own_weights
from layerctl.plan import Node


def _inner_node(node: Node, layer: Layer, input_shape: Shape, receives_mask: bool) -> Node:
    name = f"{node.name}/{layer.name}"
    return replace(node, layer=layer, name=name, owner=name, input_shapes=(input_shape,),
                   output_shapes=tuple(layer.output_shapes(input_shape)),
                   receives_mask=receives_mask, emits_mask=layer.emits_mask(receives_mask),
                   weights=tuple(layer.weight_specs(input_shape)))


def _convert_inner(g: OnnxGraph, node: Node, x: str, mask: str | None,
                   weights: dict[str, np.ndarray]) -> list[str]:
    """The inner layer's output tensors (a list, whatever their number)."""
    from layerctl.export.onnx import CONVERTERS  # the registry holding this module's entries

    convert = CONVERTERS.get(node.layer.keras_class)
    if convert is None:
        raise ExportError(f"layer '{node.name}' ({node.layer.keras_class}) cannot be exported "
                          "to ONNX: there is no converter for this layer type")
    y, _ = convert(g, node, [x], [mask], own_weights(weights, node.layer.name), False)
    return list(y) if isinstance(y, list | tuple) else [y]


def _reverse_time(g: OnnxGraph, x: str, hint: str) -> str:
    return g.op("Slice", [
        x, g.const([-1], "const/starts", np.int64),
        g.const([np.iinfo(np.int64).min], "const/ends", np.int64),
        g.const([1], "const/time_axis", np.int64), g.const([-1], "const/steps", np.int64),
    ], hint)


def _bidirectional(g, node, xs, masks, w, want_mask):
    layer, name = node.layer, node.name
    directions = [_convert_inner(g, _inner_node(node, inner, node.input_shapes[0],
                                                masks[0] is not None), xs[0], masks[0], w)
                  for inner in layer.directions()]
    (y, *forward_states), (y_reversed, *backward_states) = directions
    if layer.return_sequences:
        y_reversed = _reverse_time(g, y_reversed, name)
    states = forward_states + backward_states
    if layer.merge_mode is None:
        return [y, y_reversed, *states], None
    if layer.merge_mode == "concat":
        merged = g.op("Concat", [y, y_reversed], name, axis=-1)
    elif layer.merge_mode == "sum":
        merged = g.op("Add", [y, y_reversed], name)
    elif layer.merge_mode == "mul":
        merged = g.op("Mul", [y, y_reversed], name)
    else:  # ave
        merged = g.op("Div", [g.op("Add", [y, y_reversed], name), g.scalar(2.0)], name)
    return ([merged, *states] if states else merged), None


def _time_distributed(g, node, xs, masks, w, want_mask):
    x, name = xs[0], node.name
    inner = node.layer.inner()
    minus_one = g.const([-1], "const/-1_vector", np.int64)
    steps = g.op("Shape", [x], name, start=0, end=2)  # (batch, timesteps)
    step_shape = g.op("Shape", [x], name, start=2)
    folded = g.op("Reshape", [x, g.op("Concat", [minus_one, step_shape], name, axis=0)], name)
    child = (None,) + tuple(node.input_shapes[0][2:])
    (y,) = _convert_inner(g, _inner_node(node, inner, child, False), folded, None, w)
    unfolded = g.op("Concat", [steps, g.op("Shape", [y], name, start=1)], name, axis=0)
    return g.op("Reshape", [y, unfolded], name), None


WRAPPERS_CONVERTERS = {"Bidirectional": _bidirectional, "TimeDistributed": _time_distributed}
