"""The LSTM recurrence (Keras 3 semantics) as pure NumPy: forward over time and backprop through it.

Weights use Keras's layout: kernel (in, 4u), recurrent_kernel (u, 4u), bias (4u,), gate blocks
[i, f, c, o] along the last axis. One step computes z = x_t·W + h_{t-1}·U + b, i = σ(z_i),
f = σ(z_f), o = σ(z_o), c_t = f·c_{t-1} + i·φ(z_c), h_t = o·φ(c_t), with σ = recurrent_activation
and φ = activation. At a masked step the new h and c are discarded (carried over unchanged) and
the step's output is the carried h, or 0 with zero_output_for_mask. go_backwards processes
reversed time and returns outputs in processing order.

Dropout masks come from the caller, already scaled by 1/(1-rate), and are reused at every step.
A 2-D mask ((B, in) for x_t, (B, u) for h_{t-1}) is shared by the four gates, as Keras's
implementation 2 does for input dropout. A 3-D mask (4, B, ·) holds one mask per gate in order
[i, f, c, o], as Keras does for both dropouts once recurrent_dropout > 0 (implementation 1).

Inside, everything is gate-major: weights as (4, rows, u) blocks and gates as (4, T, B, u), in
the internal gate order [i, f, o, c] (the σ gates first, so z[:3] selects them). Each gate of a
step is then a contiguous (B, u) slab (element-wise NumPy on column slices is several times
slower), the projections and their gradients need no transposed copies ((4, T·B, u) is a plain
reshape), and shared and per-gate dropout masks are the same broadcast. With the default
activations the σ blocks of the weights are pre-halved, so one tanh over all of z gives every
gate (σ(z) = (1 + tanh(z/2))/2). The input projection for all steps is one batched matmul before
the loop, and dx, dW, dU one each after the backward loop; the loop itself does only the
h_{t-1}·U matmul and gate arithmetic into preallocated buffers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerctl.ops.blas import matmul
from layerctl.ops.recurrent import FAST as _FAST
from layerctl.ops.recurrent import activate as _activate
from layerctl.ops.recurrent import activation_grad as _activation_grad
from layerctl.ops.recurrent import compute_dtype as _compute_dtype
from layerctl.ops.recurrent import (
    dropout_mask,
    gate_blocks,
    keras_columns,
    output_grad,
    outputs,
    time_major,
)
from layerctl.ops.recurrent import one_step as _one_step

# Keras gate block of each internal gate: internal order [i, f, o, c] from Keras's [i, f, c, o].
_GATES = [0, 1, 3, 2]


@dataclass(frozen=True)
class LSTMCache:
    """What lstm_backward needs, laid out internally: processing order, gate-major, [i, f, o, c]."""

    inputs: np.ndarray  # x after input dropout: (T, B, in), or (4, T, B, in) per gate
    kernel: np.ndarray  # (4, in, u), not pre-halved
    recurrent_kernel: np.ndarray  # (4, u, u), not pre-halved
    has_bias: bool
    gates: np.ndarray  # activated [i, f, o, φ(z_c)]: (4, T, B, u)
    pre_activations: np.ndarray | None  # z (4, T, B, u), kept only for non-fast activations
    cell: np.ndarray  # carried c: (T+1, B, u), cell[0] = 0
    cell_candidate: np.ndarray | None  # unmasked c (T, B, u), kept only for a non-fast activation
    cell_activated: np.ndarray  # φ(unmasked c): (T, B, u)
    hidden: np.ndarray  # carried h: (T+1, B, u), hidden[0] = 0
    keep: np.ndarray | None  # the mask as 0/1 floats (T, B, 1)
    input_dropout_mask: np.ndarray | None  # (B, in) or (4, 1, B, in): broadcasts over (T, B, in)
    recurrent_dropout_mask: np.ndarray | None  # (B, u) or (4, 1, B, u)
    activation: str | None
    recurrent_activation: str | None
    go_backwards: bool
    return_sequences: bool
    zero_output_for_mask: bool


def lstm_forward(
    x: np.ndarray,
    kernel: np.ndarray,
    recurrent_kernel: np.ndarray,
    bias: np.ndarray | None,
    *,
    mask: np.ndarray | None = None,
    activation: str | None = "tanh",
    recurrent_activation: str | None = "sigmoid",
    go_backwards: bool = False,
    return_sequences: bool = False,
    zero_output_for_mask: bool = False,
    input_dropout_mask: np.ndarray | None = None,
    recurrent_dropout_mask: np.ndarray | None = None,
    initial_state: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, LSTMCache]:
    """Run an LSTM over x (B, T, in) → (output, cache); output (B, u), or (B, T, u) with sequences.

    mask (B, T) bool, True = keep. Computes in the weights' dtype (x is cast to it).
    `initial_state` (h0, c0), each (B, u), replaces the zero state; the final state is
    `(cache.hidden[-1], cache.cell[-1])`.
    """
    dtype = _compute_dtype(kernel, recurrent_kernel)
    batch, steps, in_dim = np.shape(x)
    units = np.shape(recurrent_kernel)[0]
    if np.shape(kernel) != (in_dim, 4 * units) or np.shape(recurrent_kernel) != (units, 4 * units):
        raise ValueError(
            f"LSTM weights do not fit: input dim {in_dim}, kernel {np.shape(kernel)}, "
            f"recurrent kernel {np.shape(recurrent_kernel)}"
        )
    kernel, recurrent_kernel = _gate_blocks(kernel, dtype), _gate_blocks(recurrent_kernel, dtype)
    x_tm, keep = time_major(x, mask, dtype, go_backwards)
    in_mask = _internal_mask(input_dropout_mask, (batch, in_dim), dtype, "input")
    rec_mask = _internal_mask(recurrent_dropout_mask, (batch, units), dtype, "recurrent")
    halve = activation == "tanh" and recurrent_activation == "sigmoid"
    scale = np.array([0.5, 0.5, 0.5, 1.0] if halve else [1.0] * 4, dtype)[:, None, None]

    inputs = np.ascontiguousarray(x_tm) if in_mask is None else x_tm * in_mask
    flat = inputs.reshape(*inputs.shape[:-3], -1, in_dim)  # (T·B, in) or (4, T·B, in)
    z = matmul(flat, kernel * scale).reshape(4, steps, batch, units)  # becomes the gates
    if bias is not None:
        z += (_gate_blocks(np.asarray(bias)[None], dtype) * scale)[:, None]
    states = _forward_loop(
        z, recurrent_kernel * scale, rec_mask, keep, activation, recurrent_activation, halve,
        initial_state,
    )
    cache = LSTMCache(
        inputs, kernel, recurrent_kernel, bias is not None, z, *states,
        None if keep is None else keep.astype(dtype), in_mask, rec_mask,
        activation, recurrent_activation, go_backwards, return_sequences, zero_output_for_mask,
    )  # fmt: skip
    return _outputs(cache), cache


def _forward_loop(
    gates: np.ndarray,
    recurrent_kernel: np.ndarray,
    dropout_mask: np.ndarray | None,
    keep: np.ndarray | None,
    activation: str | None,
    recurrent_activation: str | None,
    halved: bool,
    initial_state: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """The time loop. gates holds x_t·W + b, is completed with h_{t-1}·U and activated in place.

    Returns (pre-activations or None, carried c, candidate c or None, φ(candidate c), carried h).
    """
    _, steps, batch, units = gates.shape
    fast = activation in _FAST and recurrent_activation in _FAST
    pre = None if fast else np.empty_like(gates)
    cell = np.zeros((steps + 1, batch, units), gates.dtype)
    hidden = np.zeros((steps + 1, batch, units), gates.dtype)
    cell_activated = np.empty((steps, batch, units), gates.dtype)
    candidate = None if activation in _FAST else np.empty_like(cell_activated)
    recurrent = np.empty_like(gates[:, 0])
    scratch = np.empty_like(cell[0])
    if initial_state is not None:
        hidden[0], cell[0] = initial_state
    dropout_mask = _one_step(dropout_mask)
    for t in range(steps):
        z = gates[:, t]
        if t or initial_state is not None:  # a zero h_0 contributes nothing
            h = hidden[t] if dropout_mask is None else hidden[t] * dropout_mask
            z += matmul(h, recurrent_kernel, out=recurrent)
        if pre is not None:
            pre[:, t] = z
        if halved:  # σ blocks were pre-halved: one tanh, then σ = (1 + tanh)/2 on them
            np.tanh(z, out=z)
            z[:3] *= 0.5
            z[:3] += 0.5
        else:
            _activate(recurrent_activation, z[:3])
            _activate(activation, z[3])
        i, f, o, g = z
        np.multiply(f, cell[t], out=cell[t + 1])
        cell[t + 1] += np.multiply(i, g, out=scratch)
        if candidate is not None:
            candidate[t] = cell[t + 1]
        _activate(activation, cell[t + 1], out=cell_activated[t])
        np.multiply(o, cell_activated[t], out=hidden[t + 1])
        if keep is not None:  # masked step: carry the previous state exactly
            dropped = ~keep[t]
            np.copyto(cell[t + 1], cell[t], where=dropped)
            np.copyto(hidden[t + 1], hidden[t], where=dropped)
    return pre, cell, candidate, cell_activated, hidden


def lstm_backward(
    cache: LSTMCache, dy: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Backpropagate dy through time; return (dx, dkernel, drecurrent_kernel, dbias or None).

    dy has the forward output's shape: (B, u), or (B, T, u) with return_sequences. The
    gradients have the shapes (and Keras layouts) of x, kernel, recurrent_kernel and bias.
    """
    return lstm_backward_states(cache, dy)[:4]


def lstm_backward_states(
    cache: LSTMCache, dy: np.ndarray, final_state_grads: tuple | None = None
) -> tuple:
    """`lstm_backward` with the gradients of the final (h, c) coming in (return_state) and
    those of the initial (h0, c0) going out: (dx, dkernel, drecurrent, dbias, (dh0, dc0))."""
    steps, batch, units = cache.cell_activated.shape
    dtype = cache.gates.dtype
    dy_tm = output_grad(dy, cache.return_sequences, steps, dtype)
    kernel_t = np.ascontiguousarray(cache.recurrent_kernel.transpose(0, 2, 1))
    mask = _one_step(cache.recurrent_dropout_mask)
    dgates = np.empty_like(cache.gates)  # dL/dz of every step
    dh = np.zeros((batch, units), dtype)  # dL/dh_t through later steps (and the final state)
    dc = np.zeros((batch, units), dtype)  # dL/dc_t through later steps
    if final_state_grads is not None:
        dh += final_state_grads[0]
        dc += final_state_grads[1]
    for t in range(steps - 1, -1, -1):
        passed, dc = _backward_step(cache, t, dh, dc, dy_tm[t], dgates[:, t])
        per_gate = matmul(dgates[:, t], kernel_t)  # (4, B, u): dL/dh_{t-1} through each gate
        dh = (per_gate if mask is None else per_gate * mask).sum(axis=0)
        if passed is not None:
            dh += passed
    return (*_parameter_grads(cache, dgates), (dh, dc))


def _backward_step(
    cache: LSTMCache, t: int, dh: np.ndarray, dc: np.ndarray, dy_t: np.ndarray, dz: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray]:
    """Write dL/dz of step t into dz; return (the part of dL/dh_{t-1} that skips z, dL/dc_{t-1})."""
    total = dh + dy_t
    keep = None if cache.keep is None else cache.keep[t]
    # The step's fresh h and c count only where the step is kept.
    dh_fresh = total if keep is None else total * keep
    i, f, o, g = cache.gates[:, t]
    s = cache.cell_activated[t]
    pre_c = cache.cell[t + 1] if cache.cell_candidate is None else cache.cell_candidate[t]
    dc_fresh = _activation_grad(cache.activation, pre_c, s, dh_fresh * o)
    dc_fresh += dc if keep is None else dc * keep
    np.multiply(dc_fresh, g, out=dz[0])
    np.multiply(dc_fresh, cache.cell[t], out=dz[1])
    np.multiply(dh_fresh, s, out=dz[2])
    np.multiply(dc_fresh, i, out=dz[3])
    pre = cache.pre_activations
    for part, name in ((slice(0, 3), cache.recurrent_activation), (3, cache.activation)):
        pre_part = None if pre is None else pre[part, t]
        _activation_grad(name, pre_part, cache.gates[part, t], dz[part], out=dz[part])
    dc_prev = dc_fresh * f
    if keep is None:
        return None, dc_prev
    dropped = 1 - keep
    dc_prev += dc * dropped
    # With zero_output_for_mask a masked step outputs 0, so its dy does not reach h_{t-1}.
    carried = dh if cache.zero_output_for_mask else total
    return carried * dropped, dc_prev


def _parameter_grads(
    cache: LSTMCache, dgates: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """dx, dW, dU and db from dL/dz of all steps, one batched matmul each, in Keras layouts."""
    _, steps, batch, units = dgates.shape
    in_dim = cache.kernel.shape[1]
    flat = dgates.reshape(4, -1, units)  # (4, T·B, u), no copy
    inputs = cache.inputs.reshape(*cache.inputs.shape[:-3], -1, in_dim)
    dkernel = matmul(np.swapaxes(inputs, -1, -2), flat)
    hidden = cache.hidden[:-1]
    if cache.recurrent_dropout_mask is not None:
        hidden = hidden * cache.recurrent_dropout_mask
    hidden = hidden.reshape(*hidden.shape[:-3], -1, units)
    drecurrent = matmul(np.swapaxes(hidden, -1, -2), flat)
    dx = matmul(flat, cache.kernel.transpose(0, 2, 1)).reshape(4, steps, batch, in_dim)
    if cache.input_dropout_mask is not None:
        dx *= cache.input_dropout_mask
    dx = dx.sum(axis=0)
    if cache.go_backwards:
        dx = dx[::-1]
    dbias = _keras_columns(flat.sum(axis=1)[:, None])[0] if cache.has_bias else None
    dx = np.ascontiguousarray(dx.transpose(1, 0, 2))
    return dx, _keras_columns(dkernel), _keras_columns(drecurrent), dbias


def _outputs(cache: LSTMCache) -> np.ndarray:
    """The output from the carried h: every step (B, T, u) in processing order, or the last."""
    return outputs(cache.hidden, cache.keep, cache.zero_output_for_mask, cache.return_sequences)


def _gate_blocks(matrix: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Keras (rows, 4u) → (4, rows, u), gate blocks stacked in internal order [i, f, o, c]."""
    return gate_blocks(matrix, _GATES, dtype)


def _keras_columns(blocks: np.ndarray) -> np.ndarray:
    """(4, rows, u) in internal order → Keras (rows, 4u); inverse of _gate_blocks."""
    return keras_columns(blocks, _GATES)


def _internal_mask(
    mask: np.ndarray | None, shape: tuple[int, int], dtype: np.dtype, which: str
) -> np.ndarray | None:
    """A dropout mask shaped `shape` (shared) or (4, *shape) (per gate), ready to broadcast
    over (T, B, ·): per-gate masks become (4, 1, B, ·) in internal gate order."""
    return dropout_mask(mask, shape, 4, _GATES, dtype, which)
