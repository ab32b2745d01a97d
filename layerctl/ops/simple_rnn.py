"""The SimpleRNN recurrence (Keras 3 semantics) as pure NumPy: forward over time and backprop.

Weights use Keras's layout: kernel (in, u), recurrent_kernel (u, u), bias (u,). One step computes
h_t = φ(x_t·W + b + h_{t-1}·U) with φ = activation (None = linear). Masks, go_backwards,
zero_output_for_mask and the dropout masks ((B, in) on x_t, (B, u) on h_{t-1}, drawn once per
call and reused at every step) behave as in `layerctl.ops.lstm`. The input projection of all
steps is one matmul before the loop; dx, dW and dU are computed in parts of consecutive steps on
another core while the backward loop goes on (as the LSTM's are). The final state is
`cache.hidden[-1]`.
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
    needs_pre_activations,
    output_grad,
    outputs,
    time_major,
)


@dataclass(frozen=True)
class SimpleRNNCache:
    """What simple_rnn_backward needs, in processing order, time-major."""

    inputs: np.ndarray  # x after input dropout: (T, B, in)
    kernel: np.ndarray  # (in, u)
    recurrent_kernel: np.ndarray  # (u, u)
    has_bias: bool
    activated: np.ndarray  # φ(pre-activation) of every step, before masking: (T, B, u)
    pre_activations: np.ndarray | None  # (T, B, u), kept only for non-fast activations
    hidden: np.ndarray  # carried h: (T+1, B, u), hidden[0] = 0
    keep: np.ndarray | None  # the mask as 0/1 floats (T, B, 1)
    input_dropout_mask: np.ndarray | None  # (B, in)
    recurrent_dropout_mask: np.ndarray | None  # (B, u)
    activation: str | None
    go_backwards: bool
    return_sequences: bool
    zero_output_for_mask: bool


def simple_rnn_forward(
    x: np.ndarray,
    kernel: np.ndarray,
    recurrent_kernel: np.ndarray,
    bias: np.ndarray | None,
    *,
    mask: np.ndarray | None = None,
    activation: str | None = "tanh",
    go_backwards: bool = False,
    return_sequences: bool = False,
    zero_output_for_mask: bool = False,
    input_dropout_mask: np.ndarray | None = None,
    recurrent_dropout_mask: np.ndarray | None = None,
    initial_state: np.ndarray | None = None,
) -> tuple[np.ndarray, SimpleRNNCache]:
    """Run a SimpleRNN over x (B, T, in) → (output, cache); output (B, u), or (B, T, u) with
    sequences. mask (B, T) bool, True = keep. Computes in the weights' dtype. `initial_state`
    h0 (B, u) replaces the zero state; the final state is `cache.hidden[-1]`."""
    dtype = compute_dtype(kernel, recurrent_kernel)
    batch, steps, in_dim = np.shape(x)
    units = np.shape(recurrent_kernel)[0]
    if np.shape(kernel) != (in_dim, units) or np.shape(recurrent_kernel) != (units, units):
        raise ValueError(
            f"SimpleRNN weights do not fit: input dim {in_dim}, kernel {np.shape(kernel)}, "
            f"recurrent kernel {np.shape(recurrent_kernel)}"
        )
    kernel = np.asarray(kernel, dtype)
    recurrent_kernel = np.asarray(recurrent_kernel, dtype)
    x_tm, keep = time_major(x, mask, dtype, go_backwards)
    in_mask = dropout_mask(input_dropout_mask, (batch, in_dim), 1, [0], dtype, "input")
    rec_mask = dropout_mask(recurrent_dropout_mask, (batch, units), 1, [0], dtype, "recurrent")
    inputs = np.ascontiguousarray(x_tm) if in_mask is None else x_tm * in_mask
    activated = matmul(inputs.reshape(-1, in_dim), kernel).reshape(steps, batch, units)
    if bias is not None:
        activated += np.asarray(bias, dtype)
    pre = np.empty_like(activated) if needs_pre_activations(activation) else None
    hidden = np.zeros((steps + 1, batch, units), dtype)
    if initial_state is not None:
        hidden[0] = initial_state
    recurrent = np.empty((batch, units), dtype)
    for t in range(steps):
        a = activated[t]
        if t or initial_state is not None:  # a zero h_0 contributes nothing
            h = hidden[t] if rec_mask is None else hidden[t] * rec_mask
            a += matmul(h, recurrent_kernel, out=recurrent)
        if pre is not None:
            pre[t] = a
        activate(activation, a)
        if keep is None:
            hidden[t + 1] = a
        else:  # masked step: carry the previous state exactly
            np.copyto(hidden[t + 1], np.where(keep[t], a, hidden[t]))
    cache = SimpleRNNCache(
        inputs, kernel, recurrent_kernel, bias is not None, activated, pre, hidden,
        None if keep is None else keep.astype(dtype), in_mask, rec_mask, activation,
        go_backwards, return_sequences, zero_output_for_mask,
    )  # fmt: skip
    return outputs(hidden, cache.keep, zero_output_for_mask, return_sequences), cache


def simple_rnn_backward(
    cache: SimpleRNNCache, dy: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Backpropagate dy through time; return (dx, dkernel, drecurrent_kernel, dbias or None)."""
    return simple_rnn_backward_states(cache, dy)[:4]


def simple_rnn_backward_states(cache: SimpleRNNCache, dy: np.ndarray,
                               final_state_grads: tuple | None = None) -> tuple:
    """`simple_rnn_backward` with the final h's gradient coming in (return_state) and the
    initial h0's going out: (dx, dkernel, drecurrent, dbias, (dh0,))."""
    steps, batch, units = cache.activated.shape
    dtype = cache.activated.dtype
    dy_tm = output_grad(dy, cache.return_sequences, steps, dtype)
    kernel_t = np.ascontiguousarray(cache.recurrent_kernel.T)
    mask = cache.recurrent_dropout_mask
    da = np.empty_like(cache.activated)  # dL/d(pre-activation) of every step
    dh = np.zeros((batch, units), dtype)  # dL/dh_t through later steps (and the final state)
    if final_state_grads is not None:
        dh += final_state_grads[0]
    pre = cache.pre_activations
    in_dim = cache.kernel.shape[0]
    dx = np.empty(cache.inputs.shape, dtype)   # (T, B, in), processing order
    step_flops = 2 * batch * units * (2 * in_dim + units)   # dW, dx, dU
    with StepParts(steps, step_flops, lambda part: _chunk_grads(cache, da, part, dx)) as parts:
        for t in range(steps - 1, -1, -1):
            total = dh + dy_tm[t]
            keep = None if cache.keep is None else cache.keep[t]
            dh_fresh = total if keep is None else total * keep
            activation_grad(cache.activation, None if pre is None else pre[t],
                            cache.activated[t], dh_fresh, out=da[t])
            through = matmul(da[t], kernel_t)
            if mask is not None:
                through *= mask
            if keep is not None:
                # A masked step carries h; with zero_output_for_mask it outputs 0, so its dy
                # does not reach h.
                carried = dh if cache.zero_output_for_mask else total
                through += carried * (1 - keep)
            dh = through
            parts.done_from(t)
        dkernel, drecurrent = parts.sums()
    if cache.go_backwards:
        dx = dx[::-1]
    dbias = da.reshape(-1, units).sum(axis=0) if cache.has_bias else None
    return np.ascontiguousarray(dx.transpose(1, 0, 2)), dkernel, drecurrent, dbias, (dh,)


def _chunk_grads(cache: SimpleRNNCache, da: np.ndarray, steps: slice, dx: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The part of dW and dU from the steps `steps` of dL/d(pre-activation), with their dL/dx
    written into dx[steps]: one matmul each over those steps' rows."""
    units, in_dim = da.shape[-1], cache.kernel.shape[0]
    flat = da[steps].reshape(-1, units)
    dkernel = matmul(cache.inputs[steps].reshape(-1, in_dim).T, flat)
    hidden = cache.hidden[steps]   # h_{t-1} of each step t
    if cache.recurrent_dropout_mask is not None:
        hidden = hidden * cache.recurrent_dropout_mask
    drecurrent = matmul(hidden.reshape(-1, units).T, flat)
    part = matmul(flat, cache.kernel.T).reshape(dx[steps].shape)
    if cache.input_dropout_mask is not None:
        part *= cache.input_dropout_mask
    dx[steps] = part
    return dkernel, drecurrent
