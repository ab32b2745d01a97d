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

Inside, gates are gate-major, (4, T, B, u) in the internal gate order [i, f, o, c] (the σ gates
first, so z[:3] selects them): each gate of a step is a contiguous (B, u) slab, as element-wise
NumPy on column slices is about twice as slow. The weights, though, keep Keras's column layout
(rows, 4u) (blocks reordered to [i, f, o, c]), so the matmuls in the time loops are one BLAS
call over all four gates: per step one h_{t-1}·U (B, u)·(u, 4u) forward and one dz·Uᵀ
(B, 4u)·(4u, u) backward. A batched (4, B, u) matmul would make four small BLAS calls, each
waking and syncing BLAS's threads, which costs more than the arithmetic when the cores are
shared. Outside the loops, in parts of consecutive steps (`step_chunks`) that another core
computes while the loop runs on (`BehindLoop`): the input projection, written gate-major
straight into the gates buffer, ahead of the forward loop, and dx, dW, dU of the steps the
backward loop has finished, behind it. The layout changes ride on passes that are needed
anyway: a step's (B, 4u) h·U is added into its gate-major slabs through a strided view, and the
backward's last multiply writes the step's dz into a (T, B, 4u) buffer that the matmuls read.
With the default activations the σ columns of the weights are pre-halved, so one tanh over all
of z gives every gate (σ(z) = (1 + tanh(z/2))/2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerctl.ops.blas import matmul
from layerctl.ops.recurrent import FAST as _FAST
from layerctl.ops.recurrent import (
    StepParts,
    dropout_mask,
    output_grad,
    outputs,
    time_major,
)
from layerctl.ops.recurrent import activate as _activate
from layerctl.ops.recurrent import activation_grad as _activation_grad
from layerctl.ops.recurrent import compute_dtype as _compute_dtype
from layerctl.ops.recurrent import one_step as _one_step

# Keras gate block of each internal gate: internal order [i, f, o, c] from Keras's [i, f, c, o].
_GATES = [0, 1, 3, 2]


@dataclass(frozen=True)
class LSTMCache:
    """What lstm_backward needs, laid out internally: processing order, gate-major, [i, f, o, c]."""

    inputs: np.ndarray  # x after input dropout: (T, B, in), or (4, T, B, in) per gate
    kernel: np.ndarray  # (in, 4u), column blocks [i, f, o, c], not pre-halved
    recurrent_kernel: np.ndarray  # (u, 4u), column blocks [i, f, o, c], not pre-halved
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
    kernel = _internal_columns(kernel, dtype)
    recurrent_kernel = _internal_columns(recurrent_kernel, dtype)
    x_tm, keep = time_major(x, mask, dtype, go_backwards)
    in_mask = _internal_mask(input_dropout_mask, (batch, in_dim), dtype, "input")
    rec_mask = _internal_mask(recurrent_dropout_mask, (batch, units), dtype, "recurrent")
    halve = activation == "tanh" and recurrent_activation == "sigmoid"
    scale = np.repeat(np.array([0.5, 0.5, 0.5, 1.0] if halve else [1.0] * 4, dtype), units)

    inputs = np.ascontiguousarray(x_tm) if in_mask is None else x_tm * in_mask
    gates = np.empty((4, steps, batch, units), dtype)  # x_t·W + b, then the activated gates
    gate_rows = gates.reshape(4, steps * batch, units)   # each gate's steps, row after row
    projection = kernel * scale
    gate_bias = None if bias is None else _gate_major(
        _internal_columns(np.asarray(bias)[None], dtype) * scale)[:, None]

    def project(part: slice) -> None:
        rows = slice(part.start * batch, part.stop * batch)
        _input_projection(inputs[..., part, :, :], projection, out=gate_rows[:, rows])
        if gate_bias is not None:
            gates[:, part] += gate_bias

    with StepParts(steps, 2 * batch * in_dim * 4 * units, project) as projected:
        projected.ahead()   # the later steps' projections on another core
        states = _forward_loop(
            gates, recurrent_kernel * scale, rec_mask, keep, activation, recurrent_activation,
            halve, initial_state, projected,
        )  # fmt: skip
        projected.finish()
    cache = LSTMCache(
        inputs, kernel, recurrent_kernel, bias is not None, gates, *states,
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
    projected: StepParts | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """The time loop. gates (4, T, B, u) holds x_t·W + b, is completed with h_{t-1}·U and
    activated in place. With `projected` (the parts computing x_t·W + b) the loop waits for
    each part before its first step.

    Returns (pre-activations or None, carried c, candidate c or None, φ(candidate c), carried h).
    """
    _, steps, batch, units = gates.shape
    fast = activation in _FAST and recurrent_activation in _FAST
    pre = None if fast else np.empty_like(gates)
    cell = np.zeros((steps + 1, batch, units), gates.dtype)
    hidden = np.zeros((steps + 1, batch, units), gates.dtype)
    cell_activated = np.empty((steps, batch, units), gates.dtype)
    candidate = None if activation in _FAST else np.empty_like(cell_activated)
    recurrent = np.empty((batch, 4 * units), gates.dtype)  # h_{t-1}·U in column blocks
    scratch = np.empty_like(cell[0])
    if initial_state is not None:
        hidden[0], cell[0] = initial_state
    dropout_mask = _one_step(dropout_mask)
    for t in range(steps):
        if projected is not None:
            projected.before(t)
        z = gates[:, t]
        if t or initial_state is not None:  # a zero h_0 contributes nothing
            _times_recurrent(hidden[t], recurrent_kernel, dropout_mask, out=recurrent)
            np.add(z, _gate_major(recurrent), out=z)
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


def _times_recurrent(
    h: np.ndarray, recurrent_kernel: np.ndarray, mask: np.ndarray | None, out: np.ndarray
) -> np.ndarray:
    """out (B, 4u) = h_{t-1}·U, h dropped out by a shared (B, u) or per-gate (4, B, u) mask."""
    if mask is None or mask.ndim == 2:
        return matmul(h if mask is None else h * mask, recurrent_kernel, out=out)
    units = h.shape[-1]
    for gate in range(4):  # a mask per gate: each gate's block sees its own dropped-out h
        block = slice(gate * units, (gate + 1) * units)
        out[:, block] = matmul(h * mask[gate], recurrent_kernel[:, block])
    return out


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
    kernel_t = np.ascontiguousarray(cache.recurrent_kernel.T)  # (4u, u)
    mask = _one_step(cache.recurrent_dropout_mask)
    dgates = np.empty((steps, batch, 4 * units), dtype)  # dL/dz of every step, (B, 4u) each
    scratch = np.empty((4, batch, units), dtype)  # one step's dL/d(gate), gate-major
    dh = np.zeros((batch, units), dtype)  # dL/dh_t through later steps (and the final state)
    dc = np.zeros((batch, units), dtype)  # dL/dc_t through later steps
    if final_state_grads is not None:
        dh += final_state_grads[0]
        dc += final_state_grads[1]
    in_dim = cache.kernel.shape[0]
    dx = np.empty(cache.inputs.shape[-3:], dtype)   # (T, B, in), processing order
    step_flops = 2 * batch * 4 * units * (2 * in_dim + units)   # dW, dx, dU
    with StepParts(steps, step_flops, lambda part: _chunk_grads(cache, dgates, part, dx)) as parts:
        for t in range(steps - 1, -1, -1):
            passed, dc = _backward_step(cache, t, dh, dc, dy_tm[t], scratch, dgates[t])
            dh = _times_recurrent_t(dgates[t], kernel_t, mask)
            if passed is not None:
                dh += passed
            parts.done_from(t)
        dkernel, drecurrent = parts.sums()
    return (*_parameter_grads(cache, dgates, dx, dkernel, drecurrent), (dh, dc))


def _times_recurrent_t(
    dz: np.ndarray, kernel_t: np.ndarray, mask: np.ndarray | None
) -> np.ndarray:
    """dL/dh_{t-1} through z: dz (B, 4u) · Uᵀ (B, u), with the forward's shared (B, u) or
    per-gate (4, B, u) recurrent dropout mask."""
    if mask is None or mask.ndim == 2:
        dh = matmul(dz, kernel_t)
        return dh if mask is None else np.multiply(dh, mask, out=dh)
    units = kernel_t.shape[1]
    per_gate = matmul(_gate_major(dz), kernel_t.reshape(4, units, units))  # (4, B, u)
    return (per_gate * mask).sum(axis=0)


def _backward_step(
    cache: LSTMCache, t: int, dh: np.ndarray, dc: np.ndarray, dy_t: np.ndarray,
    scratch: np.ndarray, dz: np.ndarray,
) -> tuple[np.ndarray | None, np.ndarray]:
    """Write dL/dz of step t into dz (B, 4u), using scratch (4, B, u) for dL/d(gate); return
    (the part of dL/dh_{t-1} that skips z, dL/dc_{t-1})."""
    total = dh + dy_t
    keep = None if cache.keep is None else cache.keep[t]
    # The step's fresh h and c count only where the step is kept.
    dh_fresh = total if keep is None else total * keep
    i, f, o, g = cache.gates[:, t]
    s = cache.cell_activated[t]
    pre_c = cache.cell[t + 1] if cache.cell_candidate is None else cache.cell_candidate[t]
    dc_fresh = _activation_grad(cache.activation, pre_c, s, dh_fresh * o)
    dc_fresh += dc if keep is None else dc * keep
    np.multiply(dc_fresh, g, out=scratch[0])
    np.multiply(dc_fresh, cache.cell[t], out=scratch[1])
    np.multiply(dh_fresh, s, out=scratch[2])
    np.multiply(dc_fresh, i, out=scratch[3])
    pre = cache.pre_activations
    dz = _gate_major(dz)  # the last multiply writes the column blocks: no copy of its own
    for part, name in ((slice(0, 3), cache.recurrent_activation), (3, cache.activation)):
        pre_part = None if pre is None else pre[part, t]
        _activation_grad(name, pre_part, cache.gates[part, t], scratch[part], out=dz[part])
    dc_prev = dc_fresh * f
    if keep is None:
        return None, dc_prev
    dropped = 1 - keep
    dc_prev += dc * dropped
    # With zero_output_for_mask a masked step outputs 0, so its dy does not reach h_{t-1}.
    carried = dh if cache.zero_output_for_mask else total
    return carried * dropped, dc_prev


def _chunk_grads(cache: LSTMCache, dgates: np.ndarray, steps: slice, dx: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The part of dW and dU (internal column order) from the steps `steps` of dL/dz, with
    their dL/dx written into dx[steps]: one matmul each over those steps' rows."""
    flat = dgates[steps].reshape(-1, dgates.shape[-1])   # (steps·B, 4u), no copy
    dkernel = _columns_grad(cache.inputs[..., steps, :, :], flat)
    hidden = cache.hidden[steps]   # h_{t-1} of each step t
    if cache.recurrent_dropout_mask is not None:
        hidden = hidden * cache.recurrent_dropout_mask
    drecurrent = _columns_grad(hidden, flat)
    dx[steps] = _input_grad(flat, cache.kernel, cache.input_dropout_mask).reshape(
        dx[steps].shape)
    return dkernel, drecurrent


def _parameter_grads(
    cache: LSTMCache, dgates: np.ndarray, dx: np.ndarray, dkernel: np.ndarray,
    drecurrent: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """dx, dW, dU (from internal order and processing order) and db (over dL/dz of all steps,
    (T, B, 4u)) in Keras's layouts."""
    if cache.go_backwards:
        dx = dx[::-1]
    flat = dgates.reshape(-1, dgates.shape[-1])
    dbias = _keras_columns(flat.sum(axis=0)[None])[0] if cache.has_bias else None
    dx = np.ascontiguousarray(dx.transpose(1, 0, 2))
    return dx, _keras_columns(dkernel), _keras_columns(drecurrent), dbias


def _input_projection(inputs: np.ndarray, kernel: np.ndarray, out: np.ndarray) -> None:
    """x_t·W of some steps into `out` (4, T'·B, u), gate-major, from inputs (T', B, in) or per
    gate (4, T', B, in): written gate-major straight away, with no (T', B, 4u) buffer to
    allocate, page-fault and copy."""
    in_dim = inputs.shape[-1]
    matmul(inputs.reshape(*inputs.shape[:-3], -1, in_dim), _gate_major(kernel), out=out)


def _columns_grad(rows: np.ndarray, dz: np.ndarray) -> np.ndarray:
    """dL/dweights (k, 4u) from rows (T, B, k) or per gate (4, T, B, k), the matrix each gate's
    column block multiplied, and dz (T·B, 4u)."""
    k = rows.shape[-1]
    if rows.ndim == 3:
        return matmul(rows.reshape(-1, k).T, dz)
    units = dz.shape[1] // 4
    grad = np.empty((k, 4 * units), dz.dtype)
    for gate in range(4):
        block = slice(gate * units, (gate + 1) * units)
        grad[:, block] = matmul(rows[gate].reshape(-1, k).T, dz[:, block])
    return grad


def _input_grad(dz: np.ndarray, kernel: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """dL/d(x_t) of every step (T·B, in) from dz (T·B, 4u), through the input dropout mask:
    shared (B, in) or per gate (4, 1, B, in)."""
    if mask is None or mask.ndim == 2:
        dx = matmul(dz, kernel.T)
        if mask is not None:
            dx_steps = dx.reshape(-1, *mask.shape)
            dx_steps *= mask
        return dx
    units, in_dim = kernel.shape[1] // 4, kernel.shape[0]
    dx = np.zeros((dz.shape[0] // mask.shape[-2], mask.shape[-2], in_dim), dz.dtype)
    for gate in range(4):
        block = slice(gate * units, (gate + 1) * units)
        dx += matmul(dz[:, block], kernel[:, block].T).reshape(dx.shape) * mask[gate]
    return dx.reshape(-1, in_dim)


def _gate_major(columns: np.ndarray) -> np.ndarray:
    """A (B, 4u) step in column blocks as a gate-major (4, B, u) view."""
    batch, width = columns.shape
    return columns.reshape(batch, 4, width // 4).transpose(1, 0, 2)


def _outputs(cache: LSTMCache) -> np.ndarray:
    """The output from the carried h: every step (B, T, u) in processing order, or the last."""
    return outputs(cache.hidden, cache.keep, cache.zero_output_for_mask, cache.return_sequences)


def _internal_columns(matrix: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Keras (rows, 4u) → (rows, 4u) with the column blocks in internal order [i, f, o, c]."""
    rows, columns = np.shape(matrix)
    blocks = np.asarray(matrix, dtype).reshape(rows, 4, columns // 4)
    return np.ascontiguousarray(blocks[:, _GATES]).reshape(rows, columns)


def _keras_columns(matrix: np.ndarray) -> np.ndarray:
    """(rows, 4u) in internal order → Keras (rows, 4u); inverse of _internal_columns."""
    rows, columns = matrix.shape
    blocks = matrix.reshape(rows, 4, columns // 4)
    return np.ascontiguousarray(blocks[:, np.argsort(_GATES)]).reshape(rows, columns)


def _internal_mask(
    mask: np.ndarray | None, shape: tuple[int, int], dtype: np.dtype, which: str
) -> np.ndarray | None:
    """A dropout mask shaped `shape` (shared) or (4, *shape) (per gate), ready to broadcast
    over (T, B, ·): per-gate masks become (4, 1, B, ·) in internal gate order."""
    return dropout_mask(mask, shape, 4, _GATES, dtype, which)
