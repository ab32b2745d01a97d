"""What the LSTM, GRU and SimpleRNN recurrences share: activations read off their saved outputs,
time-major layout of inputs, masks and output gradients, gate-major weight blocks, dropout masks
shaped to broadcast over time, and the output (every step or the last) from the carried state.

Each recurrence keeps its arrays time-major and gate-major: x as (T, B, in) in processing order
(reversed for go_backwards), gates as (G, T, B, u), weights as (G, rows, u) blocks, so that one
gate of one step is a contiguous (B, u) slab and the all-steps projections are plain reshapes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from layerctl import activations
from layerctl.ops.parallel import BehindLoop

# Activations whose derivative is read off their saved outputs; any other name goes through the
# layerctl.activations API, which also needs the pre-activations.
FAST = ("tanh", "sigmoid")


def compute_dtype(*weights: np.ndarray) -> np.dtype:
    """The weights' float dtype; x is cast to it, as Keras casts inputs to the compute dtype."""
    dtype = np.result_type(*(np.asarray(w).dtype for w in weights))
    return dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float32)


def time_major(x: np.ndarray, mask: np.ndarray | None, dtype: np.dtype,
               go_backwards: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """x (B, T, in) → (T, B, in) in processing order (a view); mask (B, T) → keep (T, B, 1)."""
    order = slice(None, None, -1) if go_backwards else slice(None)
    x_tm = np.asarray(x, dtype).transpose(1, 0, 2)[order]
    keep = None if mask is None else np.asarray(mask, bool).T[order][:, :, None]
    return x_tm, keep


# Products apart from the time loop (`step_chunks`) are cut into parts of consecutive steps of
# at least this many floating-point operations each (~0.2 ms on a core here: handing a part to
# another thread costs 40-90 µs), at most `MAX_CHUNKS`, each computed on another core while the
# loop goes on; less work than two parts is one part.
MIN_CHUNKED_FLOPS = 16_000_000
MAX_CHUNKS = 8


def step_chunks(steps: int, step_flops: int) -> list[slice]:
    """How a recurrence cuts its steps for the products it can compute apart from the time loop
    (the input projection ahead of the forward loop, the weight and input gradients behind the
    backward one), from the shapes alone: [slice(start, stop), ...] in time order. `step_flops`
    is those products' floating-point operations per step."""
    count = min(MAX_CHUNKS, steps, steps * step_flops // max(MIN_CHUNKED_FLOPS, 1))
    count = max(count, 1)
    bounds = [steps * index // count for index in range(count + 1)]
    return [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]


class StepParts:
    """The products a recurrence computes apart from its time loop, in parts of consecutive
    steps (`step_chunks`) that another core computes while the loop goes on (`BehindLoop`).
    `work(steps)` computes the part of the steps `steps` (a slice) and returns its result.

    Behind the backward loop, which runs back in time: `done_from(t)`, once step t is done,
    hands out the part starting at t; the first part, finished last, is left to `sums()` to
    compute on the loop's own thread, which beats waiting for a pool thread. Ahead of the
    forward loop: `ahead()` hands out every part but the first, and `before(t)` waits for the
    part starting at step t (computing it here if no pool thread has started it).
    """

    def __init__(self, steps: int, step_flops: int, work) -> None:
        chunks = step_chunks(steps, step_flops)
        self._starts = {chunk.start: index for index, chunk in enumerate(chunks)}
        self._parts = BehindLoop(lambda index: work(chunks[index]), len(chunks))

    def __enter__(self) -> StepParts:
        self._parts.__enter__()
        return self

    def __exit__(self, *raised) -> None:
        self._parts.__exit__(*raised)

    def done_from(self, t: int) -> None:
        index = self._starts.get(t)
        if index:   # not the first part: see the class docstring
            self._parts.ready(index)

    def ahead(self) -> None:
        for index in range(1, self._parts.count):
            self._parts.ready(index)

    def before(self, t: int) -> None:
        index = self._starts.get(t)
        if index is not None:
            self._parts.wait(index)

    def finish(self) -> list:
        """Every part's result, in time order, once all are done."""
        return self._parts.finish()

    def sums(self) -> list[np.ndarray]:
        """The parts' results, tuples of arrays, summed position by position in time order."""
        return [sum_in_order(column) for column in zip(*self.finish(), strict=True)]


def sum_in_order(parts) -> np.ndarray:
    """The sum of arrays in the order given (the same rounding for any thread count)."""
    parts = iter(parts)
    total = next(parts).copy()
    for part in parts:
        total += part
    return total


def output_grad(dy: np.ndarray, return_sequences: bool, steps: int,
                dtype: np.dtype) -> np.ndarray:
    """dL/d(output) as one (T, B, u) array in processing order (zeros but the last step without
    return_sequences)."""
    dy = np.asarray(dy, dtype)
    if return_sequences:
        return np.ascontiguousarray(dy.transpose(1, 0, 2))
    dy_tm = np.zeros((steps, *dy.shape), dtype)
    dy_tm[-1] = dy
    return dy_tm


def outputs(hidden: np.ndarray, keep: np.ndarray | None, zero_output_for_mask: bool,
            return_sequences: bool) -> np.ndarray:
    """The output from the carried h (T+1, B, u): every step (B, T, u) in processing order, or
    the last step's (B, u); masked steps give 0 with zero_output_for_mask."""
    sequence = hidden[1:]
    if zero_output_for_mask and keep is not None:
        sequence = sequence * keep
    if return_sequences:
        return np.ascontiguousarray(sequence.transpose(1, 0, 2))
    return sequence[-1].copy()


def gate_blocks(matrix: np.ndarray, order: Sequence[int], dtype: np.dtype) -> np.ndarray:
    """Keras (rows, G·u) → (G, rows, u), Keras's gate blocks stacked in the given order."""
    rows, columns = np.shape(matrix)
    gates = len(order)
    blocks = np.asarray(matrix, dtype).reshape(rows, gates, columns // gates).transpose(1, 0, 2)
    return np.ascontiguousarray(blocks[list(order)])


def keras_columns(blocks: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """(G, rows, u) in the given order → Keras (rows, G·u); inverse of gate_blocks."""
    gates, rows, units = blocks.shape
    inverse = np.argsort(order)
    return np.ascontiguousarray(blocks[inverse].transpose(1, 0, 2)).reshape(rows, gates * units)


def dropout_mask(mask: np.ndarray | None, shape: tuple[int, int], gates: int,
                 order: Sequence[int], dtype: np.dtype, which: str) -> np.ndarray | None:
    """A dropout mask shaped `shape` (shared by the gates) or (G, *shape) (one per gate, Keras's
    order), ready to broadcast over (T, B, ·): per-gate masks become (G, 1, B, ·) in `order`."""
    if mask is None:
        return None
    mask = np.asarray(mask, dtype)
    if mask.shape == shape:
        return mask
    if gates > 1 and mask.shape == (gates, *shape):
        return np.ascontiguousarray(mask[list(order)])[:, None]
    allowed = f"{shape} or {(gates, *shape)}" if gates > 1 else f"{shape}"
    raise ValueError(f"{which} dropout mask must have shape {allowed}, got {mask.shape}")


def one_step(mask: np.ndarray | None) -> np.ndarray | None:
    """A recurrent dropout mask for one step: (B, u), or (G, B, u) per gate."""
    return mask if mask is None or mask.ndim == 2 else mask[:, 0]


def activate(name: str | None, x: np.ndarray, out: np.ndarray | None = None) -> None:
    """out (default x itself) = name(x); tanh, sigmoid inline, others via layerctl.activations."""
    out = x if out is None else out
    if name == "tanh":
        np.tanh(x, out=out)
    elif name == "sigmoid":
        # σ(x) = (1 + tanh(x/2))/2: one transcendental and no exp overflow warnings.
        np.multiply(x, 0.5, out=out)
        np.tanh(out, out=out)
        out *= 0.5
        out += 0.5
    elif name is None or name == "linear":
        if out is not x:
            out[...] = x
    else:
        out[...] = activations.forward(name, x)


def activation_grad(
    name: str | None,
    pre: np.ndarray | None,
    post: np.ndarray,
    grad: np.ndarray,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """dL/dx from dL/dy for y = name(x); tanh and sigmoid use only the saved output y."""
    if name == "tanh":  # 1 - y²
        slope = np.multiply(post, post)
        np.subtract(1, slope, out=slope)
    elif name == "sigmoid":  # y(1 - y)
        slope = np.subtract(1, post)
        slope *= post
    elif name is None or name == "linear":
        if out is None:
            return grad.copy()
        out[...] = grad
        return out
    else:
        result = activations.backward(name, pre, post, grad)
        if out is None:
            return result
        out[...] = result
        return out
    return np.multiply(grad, slope, out=out)


def needs_pre_activations(*names: str | None) -> bool:
    """Whether the backward pass needs the pre-activations (some activation is not read off its
    output)."""
    return any(name not in (*FAST, None, "linear") for name in names)
