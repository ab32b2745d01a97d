"""Forward-only inference: what `layerctl predict` runs.

`Graph.forward` serves training: every layer keeps what its backward needs (im2col columns,
max pooling's winners, pre-activations) and allocates fresh outputs for every batch. Predicting
needs none of that. `Predictor` compiles a graph's plan and weights once into one step per node:

- Dense and convolutions (Conv1D/2D/3D with one group, channels_last) write into an output
  buffer of their own, kept across batches, and add the bias and apply the activation in place
  there. A convolution lays out its im2col columns a few samples at a time in one small reused
  buffer (`COLUMN_BYTES`), so they are still in cache when the matmul reads them; training
  keeps the whole batch's columns for backward instead.
- BatchNormalization in inference is an affine map per channel, x·scale + shift with
  scale = γ/√(var + ε) and shift = β − mean·scale. It is folded into the kernel and bias of the
  Dense or convolution before it when that layer has no activation and feeds nothing else, or
  else into the kernel and bias of a Dense after it that is its only consumer (through dropout
  and noise layers, identities in inference); otherwise it is one multiply and one add.
- Max pooling takes the window maxima only (training also finds each window's winner).
- Dropout and the noise layers pass their input through.
- Every other layer runs its own `forward(training=False)`, and its cache is dropped.

The network's leading layers that work sample by sample (`sub_batched_nodes`) run on
sub-batches of each batch sized so that one sub-batch's largest activation stays in cache
(`SUB_BATCH_BYTES`), so a layer reads its input where the layer before left it instead of from
memory: the second convolution of `specs/mnist_cnn.yaml` writes 38 MB per batch of 256, 4 MB
per sub-batch. The sub-batches are shared out among the threads, each running its matmuls
with single-threaded BLAS: measured on this 2-core machine with other work running, BLAS
splitting every small matmul over both cores made the CNN several times slower than one core,
as each call waits for the thread whose core is taken. The rest of the network (from a Dense
whose kernel outweighs a sub-batch, as after a CNN's Flatten) runs on the whole batch, its
products cut among the threads by `layerctl.ops.blas.matmul`.

Numbers: the same arithmetic as `Graph.forward(training=False)` except for BatchNormalization,
whose folded (or precomputed) scale and shift reassociate its five operations: outputs differ
from the training path's by float32 rounding (about 1e-7 relative per folded layer), and BLAS
may round a sub-batch's matmul differently from the whole batch's. Results are bit-identical
from run to run. The predictor copies the weights it uses when it is built.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from layerctl import activations
from layerctl.graph import predict_in_batches
from layerctl.layers.convolutional.conv import BaseConvolution
from layerctl.layers.core import Dense, Dropout
from layerctl.layers.normalization.batch_normalization import BatchNormalization
from layerctl.layers.pooling import BaseMaxPooling
from layerctl.layers.regularization import NoiseLayer
from layerctl.layers.reshaping import Flatten, Reshape
from layerctl.ops.blas import can_limit_blas, matmul, one_blas_thread
from layerctl.ops.conv import TAP_MAJOR_CHANNELS
from layerctl.ops.parallel import MIN_PARALLEL_BYTES, for_each_chunk, thread_count
from layerctl.ops.windows import Geometry
from layerctl.plan import Node

# im2col columns laid out per matmul: a few samples' worth, well inside a core's L2 cache.
COLUMN_BYTES = 2 << 20
# One sub-batch's largest activation: small enough to stay in cache from layer to layer, large
# enough that the per-node Python work (a few µs per step) stays small against the arithmetic.
SUB_BATCH_BYTES = 4 << 20


class Predictor:
    """Inference-mode outputs of a Graph, forward only; build it once the weights are loaded.

    `predictor(batch)` takes what `Graph.forward` takes (an array, or {input name: array}) and
    returns new arrays, as `Graph.forward(batch, training=False)` does.
    """

    def __init__(self, graph) -> None:
        self.plan, self.graph = graph.plan, graph
        self._lanes = threading.local()   # each thread's own steps: their buffers are its own
        split = sub_batched_nodes(self.plan, self._steps())
        self.prefix, self.suffix = self.plan.nodes[:split], self.plan.nodes[split:]
        self.sample_bytes = largest_output_bytes(self.prefix, graph.dtype)
        # what the whole-batch part (or the caller) reads from the sub-batched one
        needed = {ref for node in self.suffix for ref in node.inputs} | set(self.plan.outputs)
        self.crossing = [ref for node in self.prefix for ref in node.output_refs if ref in needed]

    def __call__(self, x: Any) -> Any:
        inputs = self.graph.prepare_input(x)
        length = len(next(iter(inputs.values())))
        rows = length if not self.sample_bytes else max(1, SUB_BATCH_BYTES // self.sample_bytes)
        if rows >= length:
            values = self._run(self.plan.nodes, inputs)
        else:
            values = {**inputs, **self._run_sub_batches(inputs, length, rows)}
            values = self._run(self.suffix, values)
        outputs = {ref: np.array(values[ref]) for ref in self.plan.outputs}   # not our buffers
        return outputs[self.plan.output] if len(self.plan.outputs) == 1 else outputs

    def _run_sub_batches(self, inputs: dict[str, np.ndarray], length: int,
                         rows: int) -> dict[str, np.ndarray]:
        """The crossing values of the sub-batched nodes for the whole batch, computed `rows`
        samples at a time, sub-batches shared out among the threads."""
        starts = range(0, length, rows)
        results = {ref: np.empty((length, *self.plan.shape_of(ref)[1:]), self.graph.dtype)
                   for ref in self.crossing}

        def run_sub_batches(indices: slice) -> None:
            with one_blas_thread():   # every thread runs a sub-batch of its own: no hand-offs
                for start in starts[indices]:
                    part = {name: value[start:start + rows] for name, value in inputs.items()}
                    values = self._run(self.prefix, part)
                    for ref in self.crossing:
                        results[ref][start:start + rows] = values[ref]

        threaded = can_limit_blas() and thread_count() > 1
        for_each_chunk(run_sub_batches, len(starts), MIN_PARALLEL_BYTES if threaded else 0)
        return results

    def predict(self, x: Any, batch_size: int = 32) -> Any:
        """All of `x` batch by batch, as `Graph.predict` returns it."""
        return predict_in_batches(self, self.plan, x, batch_size, self.graph.dtype)

    def _steps(self) -> dict[str, Any]:
        """This thread's steps, compiled on its first call (the weights copied, a few MB)."""
        steps = getattr(self._lanes, "steps", None)
        if steps is None:
            steps = {node.name: compile_step(node, self.graph) for node in self.plan.nodes}
            fold_batch_normalizations(self.plan, steps)
            self._lanes.steps = steps
        return steps

    def _run(self, nodes: tuple[Node, ...], values: dict[str, Any]) -> dict[str, Any]:
        """`values` (the inputs, and whatever `nodes` read that was computed before) with the
        outputs of `nodes` added; these may be the steps' buffers."""
        steps = self._steps()
        values = dict(values)
        masks: dict[str, Any] = dict.fromkeys(values)
        for node in nodes:   # as Graph.forward, through the compiled steps
            x_in, m_in = node.arguments(values, masks)
            y = steps[node.name](x_in, m_in)
            node.keep_outputs(y, node.layer.output_mask(x_in, m_in), values, masks)
        return values


# ---- steps ------------------------------------------------------------------------------------
class OutputBuffer:
    """A step's output array, allocated once for the largest batch seen and reused after."""

    def __init__(self, sample_shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.sample_shape, self.dtype = sample_shape, dtype
        self.array = np.empty((0, *sample_shape), dtype)

    def take(self, rows: int) -> np.ndarray:
        if rows > len(self.array):
            self.array = np.empty((rows, *self.sample_shape), self.dtype)
        return self.array[:rows]


def finish_in_place(z: np.ndarray, bias: np.ndarray | None, activation: str | None) -> None:
    """z ← activation(z + bias), in z's own memory (relu and linear without a temporary)."""
    if bias is not None:
        z += bias
    if activation == "relu":
        np.maximum(z, 0, out=z)
    elif activation not in (None, "linear"):
        z[...] = activations.forward(activation, z)


class LayerStep:
    """Any layer, through its own inference-mode forward (its cache is dropped)."""

    samplewise = False

    def __init__(self, node: Node, weights: dict[str, np.ndarray]) -> None:
        self.layer, self.weights = node.layer, weights
        self.samplewise = isinstance(node.layer, Flatten | Reshape)
        self.rng = np.random.default_rng(0)   # as Graph.forward's; inference draws nothing

    def __call__(self, x: Any, mask: Any) -> Any:
        return self.layer.forward(self.weights, x, mask, False, self.rng)[0]


class IdentityStep:
    """Dropout and noise layers in inference, and a BatchNormalization folded elsewhere."""

    samplewise = True

    def __call__(self, x: np.ndarray, mask: Any) -> np.ndarray:
        return x


class AffineStep:
    """A BatchNormalization that could not be folded: x·scale + shift per channel."""

    samplewise = True

    def __init__(self, scale: np.ndarray, shift: np.ndarray, sample_shape: tuple[int, ...],
                 dtype: np.dtype) -> None:
        self.exact = scale, shift   # float64, for folding into a neighbour's kernel
        self.scale, self.shift = scale.astype(dtype), shift.astype(dtype)
        self.out = OutputBuffer(sample_shape, dtype)

    def __call__(self, x: np.ndarray, mask: Any) -> np.ndarray:
        y = self.out.take(len(x))
        np.multiply(x, self.scale, out=y)
        y += self.shift
        return y


class KernelStep:
    """Shared by Dense and convolution steps: a (inputs, units) kernel matrix, a bias and an
    activation, and the folding of an affine map applied to the output (or, Dense, the input)."""

    samplewise = True

    def __init__(self, node: Node, kernel: np.ndarray, bias: np.ndarray | None,
                 dtype: np.dtype) -> None:
        self.activation = node.layer.activation
        self.kernel = np.array(kernel.reshape(-1, kernel.shape[-1]), dtype)   # our own copy
        self.bias = None if bias is None else np.array(bias, dtype)
        self.out = OutputBuffer(tuple(node.output_shape[1:]), dtype)

    def fold_after(self, scale: np.ndarray, shift: np.ndarray) -> None:
        """Make this step compute (its linear output)·scale + shift: scale the kernel's columns;
        the bias becomes bias·scale + shift."""
        bias = np.zeros(self.kernel.shape[1]) if self.bias is None else self.bias
        self.bias = (bias * scale + shift).astype(self.kernel.dtype)
        self.kernel = (self.kernel * scale).astype(self.kernel.dtype)

    def fold_before(self, scale: np.ndarray, shift: np.ndarray) -> None:
        """Make this step read x·scale + shift instead of x: (x·s + t)·W + b =
        x·(s ⊙ rows of W) + (t·W + b)."""
        bias = np.zeros(self.kernel.shape[1]) if self.bias is None else self.bias
        self.bias = (shift @ self.kernel.astype(np.float64) + bias).astype(self.kernel.dtype)
        self.kernel = (self.kernel * scale[:, None]).astype(self.kernel.dtype)


class DenseStep(KernelStep):
    """y = activation(x·W + b) over the last axis, into the reused buffer."""

    def __call__(self, x: np.ndarray, mask: Any) -> np.ndarray:
        y = self.out.take(len(x))
        rows = y.reshape(-1, y.shape[-1])
        matmul(x.reshape(-1, x.shape[-1]), self.kernel, out=rows)  # shared by the threads
        finish_in_place(rows, self.bias, self.activation)
        return y


class ConvStep(KernelStep):
    """A convolution (one group, channels_last) as im2col and a matmul, a few samples at a
    time through one small reused column buffer, bias and activation applied to each part of
    the output while it is in cache."""

    def __init__(self, node: Node, kernel: np.ndarray, bias: np.ndarray | None,
                 dtype: np.dtype) -> None:
        super().__init__(node, kernel, bias, dtype)
        layer, input_shape = node.layer, node.input_shapes[0]
        self.geometry = Geometry(input_shape[1:-1], layer.kernel_tuple(), layer.stride_tuple(),
                                 layer.padding, layer.dilation_tuple())
        self.channels = input_shape[-1]
        # Few channels: copy tap by tap into a transposed layout (see ops.conv._im2col_tap_major)
        self.tap_major = self.channels <= TAP_MAJOR_CHANNELS
        sample_columns = math.prod(self.geometry.out) * self.kernel.shape[0]
        self.chunk = max(1, COLUMN_BYTES // (sample_columns * self.kernel.dtype.itemsize))
        self.columns = np.empty(self.chunk * sample_columns, dtype)

    def __call__(self, x: np.ndarray, mask: Any) -> np.ndarray:
        y = self.out.take(len(x))
        x_padded = self.geometry.pad(x)
        for start in range(0, len(x), self.chunk):
            rows = slice(start, min(start + self.chunk, len(x)))
            z = y[rows].reshape(-1, y.shape[-1])
            np.matmul(self._im2col(x_padded, rows), self.kernel, out=z)
            finish_in_place(z, self.bias, self.activation)
        return y

    def _im2col(self, x_padded: np.ndarray, rows: slice) -> np.ndarray:
        """The (samples·out, K·C) columns of the samples `rows`, in the reused buffer."""
        samples = rows.stop - rows.start
        out, window = self.geometry.out, self.geometry.window
        size = samples * math.prod(out) * self.kernel.shape[0]
        if not self.tap_major:
            cols = self.columns[:size].reshape(samples, *out, *window, self.channels)
            np.copyto(cols, self.geometry.windows(x_padded[rows]))
            return cols.reshape(-1, self.kernel.shape[0])
        taps = math.prod(window)
        cols = self.columns[:size].reshape(taps, self.channels, samples, *out)
        for tap, slices in self.geometry.taps():
            np.copyto(cols[tap], np.moveaxis(x_padded[(rows, *slices)], -1, 0))
        return cols.reshape(taps * self.channels, -1).T


class MaxPoolStep:
    """Window maxima (channels_last) into the reused buffer: the numbers of training's pass,
    without finding each window's winner."""

    samplewise = True

    def __init__(self, node: Node, dtype: np.dtype) -> None:
        from layerctl.ops.pool import pool_geometry

        layer = node.layer
        self.geometry = pool_geometry(node.input_shapes[0], *layer.pool_arguments())
        self.taps = [(slice(None), *slices) for _, slices in self.geometry.taps()]
        self.out = OutputBuffer(tuple(node.output_shape[1:]), dtype)

    def __call__(self, x: np.ndarray, mask: Any) -> np.ndarray:
        y = self.out.take(len(x))
        x_padded = self.geometry.pad(x, -np.inf)

        def pool_rows(rows: slice) -> None:
            part, y_part = x_padded[rows], y[rows]
            np.copyto(y_part, part[self.taps[0]])
            for slices in self.taps[1:]:
                np.maximum(y_part, part[slices], out=y_part)   # propagates NaN, as training's

        for_each_chunk(pool_rows, len(x), 2 * x.nbytes)
        return y


def compile_step(node: Node, graph) -> Callable[[Any, Any], Any]:
    """The inference step for one node (`LayerStep` for layers without a faster one)."""
    layer, weights, dtype = node.layer, graph.layer_weights(node), graph.dtype
    channels_last = getattr(layer, "data_format", None) != "channels_first"
    bias = weights.get("bias") if getattr(layer, "use_bias", False) else None
    if isinstance(layer, Dense):
        return DenseStep(node, weights["kernel"], bias, dtype)
    if isinstance(layer, BaseConvolution) and layer.groups == 1 and channels_last:
        return ConvStep(node, weights["kernel"], bias, dtype)
    if isinstance(layer, BaseMaxPooling) and channels_last:
        return MaxPoolStep(node, dtype)
    if isinstance(layer, Dropout | NoiseLayer):
        return IdentityStep()
    if isinstance(layer, BatchNormalization) and _normalizes_last_axis(node):
        return AffineStep(*batch_norm_affine(layer, weights), tuple(node.output_shape[1:]), dtype)
    return LayerStep(node, weights)


# ---- BatchNormalization folding ----------------------------------------------------------------
def _normalizes_last_axis(node: Node) -> bool:
    rank = len(node.input_shapes[0])
    return node.layer.axis % rank == rank - 1


def batch_norm_affine(layer: BatchNormalization, weights: dict) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift), in float64, with x·scale + shift = BatchNormalization(x) in inference."""
    inv_std = 1.0 / np.sqrt(weights["moving_variance"].astype(np.float64) + layer.epsilon)
    scale = inv_std * (weights["gamma"] if layer.scale else 1.0)
    shift = (weights["beta"] if layer.center else 0.0) - weights["moving_mean"] * scale
    return scale, shift


def fold_batch_normalizations(plan, steps: dict[str, Any]) -> None:
    """Fold each BatchNormalization's affine map into a neighbouring kernel where exact (see
    the module docstring); the BatchNormalization's step becomes an identity."""
    consumers: dict[str, list[Node]] = {node.name: [] for node in plan.nodes}
    for node in plan.nodes:
        for source in dict.fromkeys(node.inputs):
            if source in consumers:
                consumers[source].append(node)
    outputs = set(plan.outputs)

    def only_consumer(name: str) -> Node | None:
        """The one node reading `name`'s output (None when several do or it is an output)."""
        readers = consumers.get(name, [])
        return readers[0] if len(readers) == 1 and name not in outputs else None

    for node in plan.nodes:
        step = steps[node.name]
        if not isinstance(step, AffineStep):
            continue
        scale, shift = step.exact
        producer = steps.get(node.inputs[0])
        if (isinstance(producer, KernelStep) and producer.activation in (None, "linear")
                and only_consumer(node.inputs[0]) is node):
            producer.fold_after(scale, shift)
            steps[node.name] = IdentityStep()
            continue
        reader = only_consumer(node.name)
        while reader is not None and isinstance(steps[reader.name], IdentityStep):
            reader = only_consumer(reader.name)
        if reader is not None and isinstance(steps[reader.name], DenseStep):
            steps[reader.name].fold_before(scale, shift)
            steps[node.name] = IdentityStep()


def sub_batched_nodes(plan, steps: dict[str, Any]) -> int:
    """How many of the plan's nodes (in order) run on sub-batches: those before the first
    that is not known to work sample by sample, passes a mask, has an output shape known only
    at run time, or has a kernel larger than a sub-batch's activations (BLAS would repack it
    for every sub-batch, more traffic than reading its whole-batch input once: the Dense after
    a CNN's Flatten). A model output or the input of a later node crossing the split is
    gathered into a whole-batch array."""
    for index, node in enumerate(plan.nodes):
        step = steps[node.name]
        if (not step.samplewise or node.emits_mask
                or any(d is None for shape in node.output_shapes for d in shape[1:])
                or (isinstance(step, KernelStep) and step.kernel.nbytes > SUB_BATCH_BYTES)):
            return index
    return len(plan.nodes)


def largest_output_bytes(nodes: tuple[Node, ...], dtype: np.dtype) -> int:
    """Bytes per sample of the largest output of `nodes` (0 for none)."""
    return max((math.prod(shape[1:]) * dtype.itemsize for node in nodes
                for shape in node.output_shapes), default=0)
