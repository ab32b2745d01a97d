"""The GRU recurrence (Keras 3 semantics) as pure NumPy: forward over time and backprop through it.

Weights use Keras's layout: kernel (in, 3u), recurrent_kernel (u, 3u), gate blocks [z, r, h]
along the last axis; bias (2, 3u) with reset_after (row 0 for x_t·W, row 1 for h·U), else (3u,).
One step, with σ = recurrent_activation and φ = activation:

    z = σ(x_t·W_z + b_z + h·U_z + b'_z)      r = σ(x_t·W_r + b_r + h·U_r + b'_r)
    reset_after:     ĥ = φ(x_t·W_h + b_h + r ⊙ (h·U_h + b'_h))
    not reset_after: ĥ = φ(x_t·W_h + b_h + (r ⊙ h)·U_h)
    h_t = z ⊙ h + (1 - z) ⊙ ĥ

At a masked step the new h is discarded (carried over unchanged) and the step's output is the
carried h, or 0 with zero_output_for_mask. go_backwards processes reversed time and returns
outputs in processing order. Dropout masks come from the caller, already scaled by 1/(1-rate),
reused at every step: 2-D ((B, in) for x_t, (B, u) for h) shared by the gates, or 3-D (3, B, ·)
one per gate, as Keras draws them once recurrent_dropout > 0.

Layout as in `layerctl.ops.lstm`: gate-major (3, T, B, u) in Keras's order [z, r, h] (the σ gates
first). The input projection of all steps is one batched matmul before the loop; dx, dW, dU are
computed in parts of consecutive steps on another core while the backward loop goes on, as the
LSTM's are; the loops do h·U and gate arithmetic into preallocated buffers.
The final state is `cache.hidden[-1]` (the carried h after the last processed step).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerctl.ops.blas import matmul
from layerctl.ops.recurrent import (
    StepParts,
    activate,
    activation_grad,
    compute_dtype,
    dropout_mask,
    gate_blocks,
    keras_columns,
    needs_pre_activations,
    one_step,
    output_grad,
    outputs,
    time_major,
)

_GATES = [0, 1, 2]  # internal order = Keras's [z, r, h]


@dataclass(frozen=True)
class GRUCache:
    """What gru_backward needs, laid out internally: processing order, gate-major, [z, r, h]."""

    inputs: np.ndarray  # x after input dropout: (T, B, in), or (3, T, B, in) per gate
    kernel: np.ndarray  # (3, in, u)
    recurrent_kernel: np.ndarray  # (3, u, u)
    bias_shape: tuple[int, ...] | None
    reset_after: bool
    gates: np.ndarray  # activated [z, r, ĥ]: (3, T, B, u)
    pre_activations: np.ndarray | None  # (3, T, B, u), kept only for non-fast activations
    # reset_after: h·U_h + b'_h (before r multiplies it); else r ⊙ h (what U_h multiplies)
    recurrent_candidate: np.ndarray  # (T, B, u)
    hidden: np.ndarray  # carried h: (T+1, B, u), hidden[0] = 0
    keep: np.ndarray | None  # the mask as 0/1 floats (T, B, 1)
    input_dropout_mask: np.ndarray | None  # (B, in) or (3, 1, B, in)
    recurrent_dropout_mask: np.ndarray | None  # (B, u) or (3, 1, B, u)
    activation: str | None
    recurrent_activation: str | None
    go_backwards: bool
    return_sequences: bool
    zero_output_for_mask: bool


def gru_forward(
    x: np.ndarray,
    kernel: np.ndarray,
    recurrent_kernel: np.ndarray,
    bias: np.ndarray | None,
    *,
    mask: np.ndarray | None = None,
    activation: str | None = "tanh",
    recurrent_activation: str | None = "sigmoid",
    reset_after: bool = True,
    go_backwards: bool = False,
    return_sequences: bool = False,
    zero_output_for_mask: bool = False,
    input_dropout_mask: np.ndarray | None = None,
    recurrent_dropout_mask: np.ndarray | None = None,
    initial_state: np.ndarray | None = None,
) -> tuple[np.ndarray, GRUCache]:
    """Run a GRU over x (B, T, in) → (output, cache); output (B, u), or (B, T, u) with sequences.

    mask (B, T) bool, True = keep. Computes in the weights' dtype (x is cast to it).
    `initial_state` h0 (B, u) replaces the zero state; the final state is `cache.hidden[-1]`.
    """
    dtype = compute_dtype(kernel, recurrent_kernel)
    batch, steps, in_dim = np.shape(x)
    units = np.shape(recurrent_kernel)[0]
    bias_shape = (2, 3 * units) if reset_after else (3 * units,)
    if (np.shape(kernel) != (in_dim, 3 * units) or np.shape(recurrent_kernel) != (units, 3 * units)
            or (bias is not None and np.shape(bias) != bias_shape)):
        raise ValueError(
            f"GRU weights do not fit: input dim {in_dim}, kernel {np.shape(kernel)}, recurrent "
            f"kernel {np.shape(recurrent_kernel)}, bias {None if bias is None else np.shape(bias)}"
        )
    kernel = gate_blocks(kernel, _GATES, dtype)
    recurrent_kernel = gate_blocks(recurrent_kernel, _GATES, dtype)
    x_tm, keep = time_major(x, mask, dtype, go_backwards)
    in_mask = dropout_mask(input_dropout_mask, (batch, in_dim), 3, _GATES, dtype, "input")
    rec_mask = dropout_mask(recurrent_dropout_mask, (batch, units), 3, _GATES, dtype, "recurrent")

    inputs = np.ascontiguousarray(x_tm) if in_mask is None else x_tm * in_mask
    flat = inputs.reshape(*inputs.shape[:-3], -1, in_dim)  # (T·B, in) or (3, T·B, in)
    gates = matmul(flat, kernel).reshape(3, steps, batch, units)  # becomes the gates
    recurrent_bias = None
    if bias is not None:
        rows = np.asarray(bias, dtype).reshape(-1, 3 * units)
        gates += gate_blocks(rows[:1], _GATES, dtype)[:, None]
        if reset_after:
            recurrent_bias = gate_blocks(rows[1:], _GATES, dtype)  # (3, 1, u)
    loop = _reset_after_loop if reset_after else _reset_before_loop
    pre, candidate, hidden = loop(gates, recurrent_kernel, recurrent_bias, rec_mask, keep,
                                  activation, recurrent_activation, initial_state)
    cache = GRUCache(
        inputs, kernel, recurrent_kernel, None if bias is None else bias_shape, reset_after,
        gates, pre, candidate, hidden, None if keep is None else keep.astype(dtype), in_mask,
        rec_mask, activation, recurrent_activation, go_backwards, return_sequences,
        zero_output_for_mask,
    )  # fmt: skip
    return outputs(hidden, cache.keep, zero_output_for_mask, return_sequences), cache


def _buffers(gates: np.ndarray, activation: str | None, recurrent_activation: str | None,
             initial_state: np.ndarray | None):
    _, steps, batch, units = gates.shape
    pre = np.empty_like(gates) if needs_pre_activations(activation, recurrent_activation) else None
    hidden = np.zeros((steps + 1, batch, units), gates.dtype)
    if initial_state is not None:
        hidden[0] = initial_state
    candidate = np.empty((steps, batch, units), gates.dtype)
    return pre, candidate, hidden


def _mix(z: np.ndarray, h: np.ndarray, hh: np.ndarray, out: np.ndarray,
         keep: np.ndarray | None) -> None:
    """out = z ⊙ h + (1 - z) ⊙ ĥ = ĥ + z ⊙ (h - ĥ); a masked row keeps h."""
    np.subtract(h, hh, out=out)
    out *= z
    out += hh
    if keep is not None:
        np.copyto(out, h, where=~keep)


def _reset_after_loop(gates, recurrent_kernel, recurrent_bias, dropout_mask, keep, activation,
                      recurrent_activation, initial_state=None):
    """The time loop for reset_after: one h·U (all three blocks) per step."""
    pre, candidate, hidden = _buffers(gates, activation, recurrent_activation, initial_state)
    recurrent = np.empty_like(gates[:, 0])
    scratch = np.empty_like(hidden[0])
    dropout_mask = one_step(dropout_mask)
    for t in range(gates.shape[1]):
        g = gates[:, t]
        h = hidden[t] if dropout_mask is None else hidden[t] * dropout_mask
        matmul(h, recurrent_kernel, out=recurrent)
        if recurrent_bias is not None:
            recurrent += recurrent_bias
        g[:2] += recurrent[:2]
        if pre is not None:
            pre[:2, t] = g[:2]
        activate(recurrent_activation, g[:2])
        z, r, hh = g
        candidate[t] = recurrent[2]
        hh += np.multiply(r, recurrent[2], out=scratch)
        if pre is not None:
            pre[2, t] = hh
        activate(activation, hh)
        _mix(z, hidden[t], hh, hidden[t + 1], None if keep is None else keep[t])
    return pre, candidate, hidden


def _reset_before_loop(gates, recurrent_kernel, recurrent_bias, dropout_mask, keep, activation,
                       recurrent_activation, initial_state=None):
    """The time loop for reset_after=False: h·U_{z,r}, then (r ⊙ h)·U_h."""
    pre, candidate, hidden = _buffers(gates, activation, recurrent_activation, initial_state)
    recurrent = np.empty_like(gates[:2, 0])
    scratch = np.empty_like(hidden[0])
    dropout_mask = one_step(dropout_mask)
    for t in range(gates.shape[1]):
        g = gates[:, t]
        h = hidden[t] if dropout_mask is None else hidden[t] * dropout_mask
        g[:2] += matmul(h[:2] if h.ndim == 3 else h, recurrent_kernel[:2], out=recurrent)
        if pre is not None:
            pre[:2, t] = g[:2]
        activate(recurrent_activation, g[:2])
        z, r, hh = g
        np.multiply(r, h[2] if h.ndim == 3 else h, out=candidate[t])
        hh += matmul(candidate[t], recurrent_kernel[2], out=scratch)
        if pre is not None:
            pre[2, t] = hh
        activate(activation, hh)
        _mix(z, hidden[t], hh, hidden[t + 1], None if keep is None else keep[t])
    return pre, candidate, hidden


def gru_backward(
    cache: GRUCache, dy: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Backpropagate dy through time; return (dx, dkernel, drecurrent_kernel, dbias or None).

    dy has the forward output's shape: (B, u), or (B, T, u) with return_sequences. The
    gradients have the shapes (and Keras layouts) of x, kernel, recurrent_kernel and bias.
    """
    return gru_backward_states(cache, dy)[:4]


def gru_backward_states(cache: GRUCache, dy: np.ndarray,
                        final_state_grads: tuple | None = None) -> tuple:
    """`gru_backward` with the final h's gradient coming in (return_state) and the initial
    h0's going out: (dx, dkernel, drecurrent, dbias, (dh0,))."""
    _, steps, batch, units = cache.gates.shape
    dtype = cache.gates.dtype
    dy_tm = output_grad(dy, cache.return_sequences, steps, dtype)
    kernel_t = np.ascontiguousarray(cache.recurrent_kernel.transpose(0, 2, 1))
    mask = one_step(cache.recurrent_dropout_mask)
    mask_h = None if mask is None else mask[2] if mask.ndim == 3 else mask
    mask_zr = None if mask is None else mask[:2] if mask.ndim == 3 else mask
    dgates = np.empty_like(cache.gates)  # dL/d(pre-activation) of every step, x side
    # reset_after: dL/d(h·U_h + b'_h); else dL/d(r ⊙ h), of every step
    dcandidate = np.empty((steps, batch, units), dtype)
    dh = np.zeros((batch, units), dtype)  # dL/dh_t through later steps (and the final state)
    if final_state_grads is not None:
        dh += final_state_grads[0]
    in_dim = cache.kernel.shape[1]
    dx = np.empty(cache.inputs.shape[-3:], dtype)   # (T, B, in), processing order
    step_flops = 2 * batch * 3 * units * (2 * in_dim + units)   # dW, dx, dU
    with StepParts(steps, step_flops,
                   lambda part: _chunk_grads(cache, dgates, dcandidate, part, dx)) as parts:
        dh = _backward_loop(cache, dy_tm, dh, kernel_t, mask_h, mask_zr, dgates, dcandidate,
                            parts)
        dkernel, drecurrent = parts.sums()
    return (*_parameter_grads(cache, dgates, dcandidate, dx, dkernel, drecurrent), (dh,))


def _backward_loop(cache, dy_tm, dh, kernel_t, mask_h, mask_zr, dgates, dcandidate, parts):
    """The backward time loop, filling dgates and dcandidate and handing each finished part of
    the steps to `parts`; returns dL/dh0."""
    steps = dgates.shape[1]
    pre = cache.pre_activations
    for t in range(steps - 1, -1, -1):
        total = dh + dy_tm[t]
        keep = None if cache.keep is None else cache.keep[t]
        dh_fresh = total if keep is None else total * keep
        z, r, hh = cache.gates[:, t]
        h = cache.hidden[t]
        dz, dr, dhh = dgates[:, t]
        # h_t = ĥ + z ⊙ (h - ĥ)
        np.multiply(dh_fresh, h - hh, out=dz)
        np.multiply(dh_fresh, 1 - z, out=dhh)
        activation_grad(cache.activation, None if pre is None else pre[2, t], hh, dhh, out=dhh)
        direct = dh_fresh * z
        if cache.reset_after:
            np.multiply(dhh, cache.recurrent_candidate[t], out=dr)
            np.multiply(dhh, r, out=dcandidate[t])
        else:
            matmul(dhh, kernel_t[2], out=dcandidate[t])
            h_h = h if mask_h is None else h * mask_h
            np.multiply(dcandidate[t], h_h, out=dr)
        activation_grad(cache.recurrent_activation, None if pre is None else pre[:2, t],
                        cache.gates[:2, t], dgates[:2, t], out=dgates[:2, t])
        per_gate = matmul(dgates[:2, t], kernel_t[:2])  # (2, B, u): through U_z, U_r
        through = (per_gate if mask_zr is None else per_gate * mask_zr).sum(axis=0)
        if cache.reset_after:
            through_h = matmul(dcandidate[t], kernel_t[2])
        else:
            through_h = dcandidate[t] * r
        through += through_h if mask_h is None else through_h * mask_h
        if keep is not None:
            # A masked step carries h; with zero_output_for_mask it outputs 0, so its dy does
            # not reach h.
            carried = dh if cache.zero_output_for_mask else total
            through += carried * (1 - keep)
        dh = through + direct
        parts.done_from(t)
    return dh


def _chunk_grads(cache: GRUCache, dgates: np.ndarray, dcandidate: np.ndarray, steps: slice,
                 dx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The part of dW and dU (gate blocks) from the steps `steps` of the per-step gradients,
    with their dL/dx written into dx[steps]: one batched matmul each over those steps' rows."""
    units = dgates.shape[-1]
    in_dim = cache.kernel.shape[1]
    flat = dgates[:, steps].reshape(3, -1, units)  # (3, steps·B, u), no copy
    flat_candidate = dcandidate[steps].reshape(-1, units)
    inputs = cache.inputs[..., steps, :, :]
    inputs = inputs.reshape(*inputs.shape[:-3], -1, in_dim)
    dkernel = matmul(np.swapaxes(inputs, -1, -2), flat)
    hidden = cache.hidden[steps]   # h_{t-1} of each step t
    mask = cache.recurrent_dropout_mask
    if mask is not None:
        hidden = hidden * mask  # (steps, B, u) or (3, steps, B, u)
    hidden = hidden.reshape(*hidden.shape[:-3], -1, units)
    hidden_zr = hidden[:2] if hidden.ndim == 3 else hidden
    drecurrent = np.empty_like(cache.recurrent_kernel)
    matmul(np.swapaxes(hidden_zr, -1, -2), flat[:2], out=drecurrent[:2])
    if cache.reset_after:
        hidden_h = hidden[2] if hidden.ndim == 3 else hidden
        matmul(hidden_h.T, flat_candidate, out=drecurrent[2])
    else:
        matmul(cache.recurrent_candidate[steps].reshape(-1, units).T, flat[2],
               out=drecurrent[2])
    dx_gates = matmul(flat, cache.kernel.transpose(0, 2, 1)).reshape(3, *dx[steps].shape)
    if cache.input_dropout_mask is not None:
        dx_gates *= cache.input_dropout_mask
    dx[steps] = dx_gates.sum(axis=0)
    return dkernel, drecurrent


def _parameter_grads(cache: GRUCache, dgates: np.ndarray, dcandidate: np.ndarray,
                     dx: np.ndarray, dkernel: np.ndarray, drecurrent: np.ndarray):
    """dx, dW, dU (from gate blocks and processing order) and db (over the gradients of all
    steps) in Keras's layouts."""
    units = dgates.shape[-1]
    if cache.go_backwards:
        dx = dx[::-1]
    dbias = None
    if cache.bias_shape is not None:
        flat = dgates.reshape(3, -1, units)
        rows = [flat.sum(axis=1)[:, None]]
        if cache.reset_after:
            recurrent_rows = rows[0].copy()  # b'_z, b'_r add where b_z, b_r do
            recurrent_rows[2] = dcandidate.reshape(-1, units).sum(axis=0)
            rows.append(recurrent_rows)
        dbias = np.concatenate([keras_columns(row, _GATES) for row in rows])
        dbias = dbias.reshape(cache.bias_shape)
    dx = np.ascontiguousarray(dx.transpose(1, 0, 2))
    return dx, keras_columns(dkernel, _GATES), keras_columns(drecurrent, _GATES), dbias
