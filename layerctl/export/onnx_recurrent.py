"""LSTM, GRU and SimpleRNN as ONNX: the fused operator when it means the same as Keras, a Scan
loop otherwise.

ONNX's LSTM, GRU and RNN operators compute Keras's recurrences (LSTM gate order i, o, f, c
instead of i, f, c, o: the blocks are reordered here; GRU's z, r, h is Keras's, and Keras's
reset_after is ONNX's linear_before_reset=1) but cannot express a Keras mask: `sequence_lens`
only describes right-padding, and they write zeros where Keras carries the previous state over.
So:

- no mask reaching the layer and the default activations: the fused operator, fed reversed time
  for `go_backwards` so that outputs come in processing order, as in Keras;
- anything else: a Scan over time whose body is one step written out (the layer's cell, then
  `Where(keep, new, previous)` for every state), which matches layerctl exactly for any padding
  (pre, post or holes), `go_backwards`, `zero_output_for_mask` and every element-wise
  activation. The input projection x·W + b is one MatMul over all steps before the loop.

Dropout is a training-time operation: exported models are inference graphs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from onnx import helper

from layerctl.export.onnx_graph import BOOL, FLOAT, OnnxGraph, activation
from layerctl.layers.recurrent import GRU, LSTM, SimpleRNN

# ONNX block k holds Keras block ONNX_GATES[k]: ONNX (i, o, f, c) from Keras (i, f, c, o).
ONNX_GATES = [0, 3, 1, 2]

# cell(body, step, previous states, x_t·W + b) → new states, h first
Cell = Callable[[OnnxGraph, str, list[str], str], list[str]]


def _onnx_blocks(matrix: np.ndarray, order: list[int]) -> np.ndarray:
    """Keras (rows, G·u) → ONNX (1, G·u, rows), gate blocks reordered."""
    rows, columns = matrix.shape
    blocks = matrix.reshape(rows, len(order), columns // len(order))[:, order]
    return blocks.reshape(rows, columns).T[None]


def _fused(g: OnnxGraph, op: str, layer, x: str, kernel: np.ndarray, recurrent: np.ndarray,
           bias: np.ndarray | None, order: list[int], hint: str, **attributes) -> str:
    """The ONNX recurrent operator `op` over x (B, T, in); bias is ONNX's (W_b, R_b) pair."""
    steps_first = g.transpose(x, [1, 0, 2], hint)
    if layer.go_backwards:
        steps_first = g.op("Slice", [
            steps_first, g.const([-1], "const/starts", np.int64),
            g.const([np.iinfo(np.int64).min], "const/ends", np.int64),
            g.const([0], "const/axes", np.int64), g.const([-1], "const/steps", np.int64),
        ], hint)
    inputs = [steps_first, g.const(_onnx_blocks(kernel, order), f"{hint}/W"),
              g.const(_onnx_blocks(recurrent, order), f"{hint}/R")]
    if bias is not None:
        inputs.append(g.const(bias[None], f"{hint}/B"))
    sequence, last = g.op_n(op, inputs, hint, 2, hidden_size=layer.units, **attributes)
    if not layer.return_sequences:
        return g.squeeze(last, [0], hint)
    return g.transpose(g.squeeze(sequence, [1], hint), [1, 0, 2], hint)


def _scan(g: OnnxGraph, layer, x: str, mask: str | None, kernel: np.ndarray,
          input_bias: np.ndarray | None, states: int, cell: Cell, hint: str,
          initial: list[str] | None = None) -> str | list[str]:
    """The layer's output from a Scan over time of `cell`, with `states` states of (B, u)
    (zeros, or `initial`); with return_state, [output, final states...]."""
    units = layer.units
    projected = g.op("MatMul", [x, g.const(kernel, f"{hint}/kernel")], hint)
    if input_bias is not None:
        projected = g.op("Add", [projected, g.const(input_bias, f"{hint}/bias")], hint)
    scanned = [g.transpose(projected, [1, 0, 2], hint)]  # (T, B, G·u)
    if mask is not None:
        scanned.append(g.unsqueeze(g.transpose(mask, [1, 0], hint), [2], hint))  # (T, B, 1)
    batch = g.op("Shape", [x], hint, start=0, end=1)
    state_shape = g.op("Concat", [batch, g.const([units], "const/units", np.int64)], hint, axis=0)
    zeros = g.op("ConstantOfShape", [state_shape], hint,
                 value=helper.make_tensor("zero", FLOAT, [1], [0.0]))
    body = _body(g, layer, kernel.shape[1], states, cell, hint, masked=mask is not None)
    directions = [1 if layer.go_backwards else 0] * len(scanned)
    start = list(initial) if initial else [zeros] * states
    *finals, outputs = g.op_n("Scan", start + scanned, hint, states + 1, body=body,
                              num_scan_inputs=len(scanned), scan_input_directions=directions)
    if layer.return_sequences:
        output = g.transpose(outputs, [1, 0, 2], hint)
    elif layer.zero_output_for_mask and mask is not None:  # the last step's output may be 0
        output = g.op("Gather", [outputs, g.const(-1, "const/-1", np.int64)], hint, axis=0)
    else:
        output = g.op("Identity", [finals[0]], hint)
    if not layer.return_state:
        return output
    return [output, *(g.op("Identity", [f], hint) for f in finals)]


def _fusable(layer, mask: str | None, initial: list[str] | None) -> bool:
    """ONNX's fused operator computes it: no mask, Keras's default activations, and no states
    coming in or going out (those go through the Scan)."""
    return (mask is None and _default_activations(layer) and not initial
            and not layer.return_state)


def _body(g: OnnxGraph, layer, width: int, states: int, cell: Cell, hint: str, masked: bool):
    """The Scan body: (states..., x_t·W + b[, keep_t]) → (states..., output_t)."""
    units = layer.units
    body = g.subgraph()
    step = f"{hint}/step"
    previous = [body.fresh(f"{step}/state{k}_prev") for k in range(states)]
    z_x = body.fresh(f"{step}/x_projected")
    keep = body.fresh(f"{step}/keep") if masked else None
    new = cell(body, step, previous, z_x)
    if keep is None:
        carried, y_out = new, new[0]
    else:  # a masked step carries every state over exactly
        carried = [body.op("Where", [keep, n, p], step) for n, p in zip(new, previous, strict=True)]
        y_out = (body.op("Where", [keep, new[0], body.scalar(0.0)], step)
                 if layer.zero_output_for_mask else carried[0])
    outputs = [*carried, y_out]
    for position, name in enumerate(outputs):  # graph outputs must be distinct node outputs
        if name in outputs[:position] or name in previous:
            outputs[position] = body.op("Identity", [name], step)
    inputs = [helper.make_tensor_value_info(p, FLOAT, ["batch", units]) for p in previous]
    inputs.append(helper.make_tensor_value_info(z_x, FLOAT, ["batch", width]))
    if keep is not None:
        inputs.append(helper.make_tensor_value_info(keep, BOOL, ["batch", 1]))
    return helper.make_graph(
        body.nodes, f"{layer.name}_step", inputs,
        [helper.make_tensor_value_info(name, FLOAT, ["batch", units]) for name in outputs])


def _gate(body: OnnxGraph, layer, name: str | None, value: str, hint: str) -> str:
    return activation(body, name, value, hint, rank=2, layer=layer.name)


def _default_activations(layer) -> bool:
    return layer.activation == "tanh" and getattr(layer, "recurrent_activation",
                                                  "sigmoid") == "sigmoid"


# --- LSTM -----------------------------------------------------------------------------------------


def lstm(g: OnnxGraph, layer: LSTM, x: str, mask: str | None, weights: dict[str, np.ndarray],
         hint: str, initial: list[str] | None = None) -> str | list[str]:
    """The layer's output, (B, u) or (B, T, u) with return_sequences, from x (B, T, in)."""
    units = layer.units
    if _fusable(layer, mask, initial):
        bias = None
        if layer.use_bias:
            bias = weights["bias"].reshape(4, units)[ONNX_GATES].reshape(-1)
            bias = np.concatenate([bias, np.zeros_like(bias)])
        return _fused(g, "LSTM", layer, x, weights["kernel"], weights["recurrent_kernel"], bias,
                      ONNX_GATES, hint)
    recurrent = g.const(weights["recurrent_kernel"], f"{hint}/recurrent_kernel")

    def cell(body: OnnxGraph, step: str, previous: list[str], z_x: str) -> list[str]:
        h_prev, c_prev = previous
        z = body.op("Add", [z_x, body.op("MatMul", [h_prev, recurrent], step)], step)
        split = body.const([units] * 4, "const/split", np.int64)
        z_i, z_f, z_c, z_o = body.op_n("Split", [z, split], step, 4, axis=1)
        i, f, o = (_gate(body, layer, layer.recurrent_activation, v, f"{step}/{w}")
                   for v, w in ((z_i, "i"), (z_f, "f"), (z_o, "o")))
        candidate = _gate(body, layer, layer.activation, z_c, f"{step}/c")
        c_new = body.op("Add", [body.op("Mul", [f, c_prev], step),
                                body.op("Mul", [i, candidate], step)], step)
        h_new = body.op("Mul", [o, _gate(body, layer, layer.activation, c_new, f"{step}/h")],
                        step)
        return [h_new, c_new]

    return _scan(g, layer, x, mask, weights["kernel"], weights.get("bias"), 2, cell, hint,
                 initial)


# --- GRU ------------------------------------------------------------------------------------------


def gru(g: OnnxGraph, layer: GRU, x: str, mask: str | None, weights: dict[str, np.ndarray],
        hint: str, initial: list[str] | None = None) -> str | list[str]:
    """The layer's output, (B, u) or (B, T, u) with return_sequences, from x (B, T, in)."""
    units = layer.units
    bias = weights.get("bias")
    input_bias = recurrent_bias = None
    if bias is not None:
        input_bias = bias[0] if layer.reset_after else bias
        recurrent_bias = bias[1] if layer.reset_after else None
    if _fusable(layer, mask, initial):
        onnx_bias = None
        if bias is not None:
            onnx_bias = np.concatenate([input_bias, recurrent_bias if layer.reset_after
                                        else np.zeros_like(input_bias)])
        return _fused(g, "GRU", layer, x, weights["kernel"], weights["recurrent_kernel"],
                      onnx_bias, [0, 1, 2], hint, linear_before_reset=int(layer.reset_after))
    recurrent = weights["recurrent_kernel"]
    if layer.reset_after:
        kernel_all = g.const(recurrent, f"{hint}/recurrent_kernel")
        rec_bias = None if recurrent_bias is None else g.const(recurrent_bias,
                                                               f"{hint}/recurrent_bias")
    else:
        kernel_zr = g.const(recurrent[:, :2 * units], f"{hint}/recurrent_kernel_zr")
        kernel_h = g.const(recurrent[:, 2 * units:], f"{hint}/recurrent_kernel_h")

    def cell(body: OnnxGraph, step: str, previous: list[str], z_x: str) -> list[str]:
        (h_prev,) = previous
        x_z, x_r, x_h = body.op_n("Split", [z_x, body.const([units] * 3, "const/split3",
                                                            np.int64)], step, 3, axis=1)
        if layer.reset_after:
            rec = body.op("MatMul", [h_prev, kernel_all], step)
            if rec_bias is not None:
                rec = body.op("Add", [rec, rec_bias], step)
            r_z, r_r, r_h = body.op_n("Split", [rec, body.const([units] * 3, "const/split3",
                                                                np.int64)], step, 3, axis=1)
        else:
            rec = body.op("MatMul", [h_prev, kernel_zr], step)
            r_z, r_r = body.op_n("Split", [rec, body.const([units] * 2, "const/split2",
                                                           np.int64)], step, 2, axis=1)
        z = _gate(body, layer, layer.recurrent_activation, body.op("Add", [x_z, r_z], step),
                  f"{step}/z")
        r = _gate(body, layer, layer.recurrent_activation, body.op("Add", [x_r, r_r], step),
                  f"{step}/r")
        if layer.reset_after:
            reset = body.op("Mul", [r, r_h], step)
        else:
            reset = body.op("MatMul", [body.op("Mul", [r, h_prev], step), kernel_h], step)
        hh = _gate(body, layer, layer.activation, body.op("Add", [x_h, reset], step),
                   f"{step}/h")
        # h = ĥ + z·(h_prev - ĥ), as layerctl computes it
        mixed = body.op("Mul", [z, body.op("Sub", [h_prev, hh], step)], step)
        return [body.op("Add", [mixed, hh], step)]

    return _scan(g, layer, x, mask, weights["kernel"], input_bias, 1, cell, hint, initial)


# --- SimpleRNN ------------------------------------------------------------------------------------


def simple_rnn(g: OnnxGraph, layer: SimpleRNN, x: str, mask: str | None,
               weights: dict[str, np.ndarray], hint: str,
               initial: list[str] | None = None) -> str | list[str]:
    """The layer's output, (B, u) or (B, T, u) with return_sequences, from x (B, T, in)."""
    bias = weights.get("bias")
    if mask is None and layer.activation == "tanh" and not initial and not layer.return_state:
        onnx_bias = None if bias is None else np.concatenate([bias, np.zeros_like(bias)])
        return _fused(g, "RNN", layer, x, weights["kernel"], weights["recurrent_kernel"],
                      onnx_bias, [0], hint)
    recurrent = g.const(weights["recurrent_kernel"], f"{hint}/recurrent_kernel")

    def cell(body: OnnxGraph, step: str, previous: list[str], z_x: str) -> list[str]:
        z = body.op("Add", [z_x, body.op("MatMul", [previous[0], recurrent], step)], step)
        h_new = _gate(body, layer, layer.activation, z, f"{step}/h")
        return [h_new if h_new != z else body.op("Identity", [z], step)]

    return _scan(g, layer, x, mask, weights["kernel"], bias, 1, cell, hint, initial)


def _converter(build):
    def convert(g, node, xs, masks, w, want_mask):  # xs: the sequences, then initial states
        return build(g, node.layer, xs[0], masks[0], w, node.name, xs[1:] or None), None
    return convert


RECURRENT_CONVERTERS = {"LSTM": _converter(lstm), "GRU": _converter(gru),
                        "SimpleRNN": _converter(simple_rnn)}
