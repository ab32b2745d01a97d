"""LSTM as ONNX: the fused LSTM operator when it means the same as Keras, a Scan loop otherwise.

ONNX's LSTM operator computes Keras's recurrence (gate order i, o, f, c instead of i, f, c, o:
the blocks are reordered here) but cannot express a Keras mask: its `sequence_lens` only
describes right-padding, and it writes zeros where Keras carries the previous h over. So:

- no mask reaching the layer and the default activations (tanh, sigmoid): the LSTM operator,
  fed reversed time for `go_backwards` so that outputs come in processing order, as in Keras;
- anything else: a Scan over time whose body is one step written out (z = x_t·W + b + h·U,
  the gates, then `Where(keep, new, previous)` for h and c), which matches layerctl exactly for
  any padding (pre, post or holes), `go_backwards`, `zero_output_for_mask` and every element-wise
  activation. The input projection x·W + b is one MatMul over all steps before the loop.

Dropout is a training-time operation: exported models are inference graphs.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from layerctl.export.onnx_graph import BOOL, FLOAT, OnnxGraph, activation
from layerctl.layers.recurrent import LSTM

# ONNX block k holds Keras block ONNX_GATES[k]: ONNX (i, o, f, c) from Keras (i, f, c, o).
ONNX_GATES = [0, 3, 1, 2]


def lstm(g: OnnxGraph, layer: LSTM, x: str, mask: str | None, weights: dict[str, np.ndarray],
         hint: str) -> str:
    """The layer's output, (B, u) or (B, T, u) with return_sequences, from x (B, T, in)."""
    fused = mask is None and layer.activation == "tanh" and layer.recurrent_activation == "sigmoid"
    if fused:
        return _fused(g, layer, x, weights, hint)
    return _scan(g, layer, x, mask, weights, hint)


def _onnx_blocks(matrix: np.ndarray) -> np.ndarray:
    """Keras (rows, 4u) → ONNX (1, 4u, rows), gate blocks reordered."""
    rows, four_units = matrix.shape
    blocks = matrix.reshape(rows, 4, four_units // 4)[:, ONNX_GATES]
    return blocks.reshape(rows, four_units).T[None]


def _fused(g: OnnxGraph, layer: LSTM, x: str, weights: dict[str, np.ndarray], hint: str) -> str:
    units = layer.units
    steps_first = g.transpose(x, [1, 0, 2], hint)
    if layer.go_backwards:
        steps_first = g.op("Slice", [
            steps_first, g.const([-1], "const/starts", np.int64),
            g.const([np.iinfo(np.int64).min], "const/ends", np.int64),
            g.const([0], "const/axes", np.int64), g.const([-1], "const/steps", np.int64),
        ], hint)
    inputs = [steps_first, g.const(_onnx_blocks(weights["kernel"]), f"{hint}/W"),
              g.const(_onnx_blocks(weights["recurrent_kernel"]), f"{hint}/R")]
    if layer.use_bias:
        bias = weights["bias"].reshape(4, units)[ONNX_GATES].reshape(-1)
        inputs.append(g.const(np.concatenate([bias, np.zeros_like(bias)])[None], f"{hint}/B"))
    sequence, last = g.op_n("LSTM", inputs, hint, 2, hidden_size=units)
    if not layer.return_sequences:
        return g.squeeze(last, [0], hint)
    return g.transpose(g.squeeze(sequence, [1], hint), [1, 0, 2], hint)


def _scan(g: OnnxGraph, layer: LSTM, x: str, mask: str | None,
          weights: dict[str, np.ndarray], hint: str) -> str:
    units = layer.units
    projected = g.op("MatMul", [x, g.const(weights["kernel"], f"{hint}/kernel")], hint)
    if layer.use_bias:
        projected = g.op("Add", [projected, g.const(weights["bias"], f"{hint}/bias")], hint)
    scanned = [g.transpose(projected, [1, 0, 2], hint)]  # (T, B, 4u)
    if mask is not None:
        scanned.append(g.unsqueeze(g.transpose(mask, [1, 0], hint), [2], hint))  # (T, B, 1)
    batch = g.op("Shape", [x], hint, start=0, end=1)
    state_shape = g.op("Concat", [batch, g.const([units], "const/units", np.int64)], hint, axis=0)
    zeros = g.op("ConstantOfShape", [state_shape], hint,
                 value=helper.make_tensor("zero", FLOAT, [1], [0.0]))
    body = _step(g, layer, weights, hint, masked=mask is not None)
    directions = [1 if layer.go_backwards else 0] * len(scanned)
    last_h, _, outputs = g.op_n("Scan", [zeros, zeros, *scanned], hint, 3, body=body,
                                num_scan_inputs=len(scanned), scan_input_directions=directions)
    if layer.return_sequences:
        return g.transpose(outputs, [1, 0, 2], hint)
    if layer.zero_output_for_mask and mask is not None:  # the last step's output may be zeroed
        return g.op("Gather", [outputs, g.const(-1, "const/-1", np.int64)], hint, axis=0)
    return g.op("Identity", [last_h], hint)


def _step(g: OnnxGraph, layer: LSTM, weights: dict[str, np.ndarray], hint: str, masked: bool):
    """The Scan body: (h, c, x_t·W + b[, keep_t]) → (h, c, output_t)."""
    units = layer.units
    body = g.subgraph()
    step = f"{hint}/step"
    h_prev, c_prev = body.fresh(f"{step}/h_prev"), body.fresh(f"{step}/c_prev")
    z_x = body.fresh(f"{step}/x_projected")
    keep = body.fresh(f"{step}/keep") if masked else None
    recurrent = g.const(weights["recurrent_kernel"], f"{hint}/recurrent_kernel")
    z = body.op("Add", [z_x, body.op("MatMul", [h_prev, recurrent], step)], step)
    split = body.const([units] * 4, "const/split", np.int64)
    z_i, z_f, z_c, z_o = body.op_n("Split", [z, split], step, 4, axis=1)

    def gate(name: str | None, value: str, what: str) -> str:
        return activation(body, name, value, f"{step}/{what}", rank=2, layer=layer.name)

    i, f, o = (gate(layer.recurrent_activation, v, w)
               for v, w in ((z_i, "i"), (z_f, "f"), (z_o, "o")))
    candidate = gate(layer.activation, z_c, "c")
    c_new = body.op("Add", [body.op("Mul", [f, c_prev], step),
                            body.op("Mul", [i, candidate], step)], step)
    h_new = body.op("Mul", [o, gate(layer.activation, c_new, "h")], step)
    if keep is None:
        h_out, c_out, y_out = h_new, c_new, h_new
    else:  # a masked step carries h and c over exactly
        h_out = body.op("Where", [keep, h_new, h_prev], step)
        c_out = body.op("Where", [keep, c_new, c_prev], step)
        y_out = (body.op("Where", [keep, h_new, body.scalar(0.0)], step)
                 if layer.zero_output_for_mask else h_out)
    outputs = [h_out, c_out, y_out]
    for position, name in enumerate(outputs):  # graph outputs must be distinct node outputs
        if name in outputs[:position] or name == c_prev or name == h_prev:
            outputs[position] = body.op("Identity", [name], step)
    inputs = [helper.make_tensor_value_info(h_prev, FLOAT, ["batch", units]),
              helper.make_tensor_value_info(c_prev, FLOAT, ["batch", units]),
              helper.make_tensor_value_info(z_x, FLOAT, ["batch", 4 * units])]
    if keep is not None:
        inputs.append(helper.make_tensor_value_info(keep, BOOL, ["batch", 1]))
    return helper.make_graph(
        body.nodes, f"{layer.name}_step", inputs,
        [helper.make_tensor_value_info(name, FLOAT, ["batch", units]) for name in outputs])
