"""Writing ONNX nodes: a small graph builder and every layerctl activation as ONNX operators.

`OnnxGraph` collects nodes and initializers (float32 constants) with unique tensor names, and
hides the few operator signatures that changed between the opsets layerctl writes (ReduceMax
takes its axes as an input from opset 18 on). Subgraphs (the body of an LSTM's Scan) share the
parent's names and initializers: ONNX lets a body read tensors of the enclosing graph.

Activations follow `layerctl.activations` formula by formula, with Keras 3's default parameters.
Where ONNX has no operator of the same meaning (gelu, softplus, mish, sparsemax, ...) it is
composed from elementary ones, written in the numerically safe form layerctl itself uses
(softplus as max(x, 0) + log(1 + exp(−|x|)), so nothing overflows for large |x|).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from layerctl.activations import (
    CELU_ALPHA,
    ELU_ALPHA,
    LEAKY_RELU_SLOPE,
    SELU_ALPHA,
    SELU_SCALE,
    SHRINK_THRESHOLD,
    SQUAREPLUS_B,
)
from layerctl.errors import LayerctlError

FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64
BOOL = TensorProto.BOOL


class OnnxGraph:
    """Nodes and constants of one ONNX graph, named `<layer>/<what>` and never twice the same."""

    def __init__(self, opset: int, parent: OnnxGraph | None = None) -> None:
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = parent.initializers if parent else []
        self._taken: set[str] = parent._taken if parent else set()
        self._constants: dict[tuple, str] = parent._constants if parent else {}

    def subgraph(self) -> OnnxGraph:
        """A graph for a loop body: its own nodes, the parent's names and constants."""
        return OnnxGraph(self.opset, parent=self)

    def reserve(self, name: str) -> str:
        """Claim an exact tensor name (graph inputs, layer outputs)."""
        if name in self._taken:
            raise ValueError(f"tensor name {name!r} is used twice")
        self._taken.add(name)
        return name

    def fresh(self, hint: str) -> str:
        """A new unique tensor name starting with `hint`."""
        name, count = hint, 0
        while name in self._taken:
            count += 1
            name = f"{hint}_{count}"
        self._taken.add(name)
        return name

    def const(self, value: Any, hint: str, dtype: Any = np.float32) -> str:
        """An initializer holding `value`; small constants of equal value are shared."""
        array = np.asarray(value, dtype=dtype)
        key = None
        if array.size <= 16:
            key = (array.dtype.str, array.shape, array.tobytes())
            if key in self._constants:
                return self._constants[key]
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(array, name))
        if key is not None:
            self._constants[key] = name
        return name

    def scalar(self, value: float) -> str:
        return self.const(value, f"const/{value:g}")

    def op(self, op_type: str, inputs: Sequence[str], hint: str, **attributes: Any) -> str:
        """Append one node with a single output; returns the output's name."""
        return self.op_n(op_type, inputs, hint, 1, **attributes)[0]

    def op_n(
        self, op_type: str, inputs: Sequence[str], hint: str, outputs: int, **attributes: Any
    ) -> list[str]:
        """Append one node with `outputs` outputs."""
        names = [self.fresh(f"{hint}/{op_type}" if outputs == 1 else f"{hint}/{op_type}_{i}")
                 for i in range(outputs)]
        node = helper.make_node(op_type, list(inputs), names, name=self.fresh(f"{hint}/{op_type}:"),
                                **attributes)
        self.nodes.append(node)
        return names

    def rename_output(self, old: str, new: str) -> bool:
        """Give the node that produces `old` the output name `new` (already reserved); False if
        no node does."""
        for node in reversed(self.nodes):
            for position, output in enumerate(node.output):
                if output == old:
                    node.output[position] = new
                    for consumer in self.nodes:
                        for i, name in enumerate(consumer.input):
                            if name == old:
                                consumer.input[i] = new
                    return True
        return False

    # ---- operators whose signature depends on the opset ---------------------------------
    def reduce(self, op_type: str, x: str, axes: Sequence[int], hint: str,
               keepdims: bool = False) -> str:
        """ReduceMax/ReduceSum over `axes` (axes are an input from opset 18, ReduceSum from 13)."""
        if op_type == "ReduceSum" or self.opset >= 18:
            axes_name = self.const(list(axes), "const/axes", np.int64)
            return self.op(op_type, [x, axes_name], hint, keepdims=int(keepdims))
        return self.op(op_type, [x], hint, axes=list(axes), keepdims=int(keepdims))

    def unsqueeze(self, x: str, axes: Sequence[int], hint: str) -> str:
        return self.op("Unsqueeze", [x, self.const(list(axes), "const/axes", np.int64)], hint)

    def squeeze(self, x: str, axes: Sequence[int], hint: str) -> str:
        return self.op("Squeeze", [x, self.const(list(axes), "const/axes", np.int64)], hint)

    def transpose(self, x: str, perm: Sequence[int], hint: str) -> str:
        return self.op("Transpose", [x], hint, perm=list(perm))


# ---- activations ----------------------------------------------------------------------------
Emitter = Callable[[OnnxGraph, str, str, int, int], str]  # (graph, x, hint, axis, rank) -> y


def _unary(op_type: str, **attributes: Any) -> Emitter:
    return lambda g, x, hint, axis, rank: g.op(op_type, [x], hint, **attributes)


def _clip(low: float, high: float) -> Emitter:
    return lambda g, x, hint, axis, rank: g.op("Clip", [x, g.scalar(low), g.scalar(high)], hint)


def _softplus(g: OnnxGraph, x: str, hint: str, axis: int = -1, rank: int = 0) -> str:
    """max(x, 0) + log(1 + exp(−|x|)): never overflows (ONNX's Softplus may, for large x)."""
    tail = g.op("Log", [g.op("Add", [g.scalar(1.0), g.op("Exp", [
        g.op("Neg", [g.op("Abs", [x], hint)], hint)], hint)], hint)], hint)
    return g.op("Add", [g.op("Max", [x, g.scalar(0.0)], hint), tail], hint)


def _log_sigmoid(g, x, hint, axis, rank):
    """min(x, 0) − log(1 + exp(−|x|))."""
    tail = g.op("Log", [g.op("Add", [g.scalar(1.0), g.op("Exp", [
        g.op("Neg", [g.op("Abs", [x], hint)], hint)], hint)], hint)], hint)
    return g.op("Sub", [g.op("Min", [x, g.scalar(0.0)], hint), tail], hint)


def _gelu(g, x, hint, axis, rank):
    """Exact gelu x·Φ(x) = x · (1 + erf(x/√2)) / 2 (opset 20's Gelu op is not needed)."""
    erf = g.op("Erf", [g.op("Mul", [x, g.scalar(1 / math.sqrt(2.0))], hint)], hint)
    half = g.op("Mul", [g.op("Add", [erf, g.scalar(1.0)], hint), g.scalar(0.5)], hint)
    return g.op("Mul", [x, half], hint)


def _silu(g, x, hint, axis, rank):
    return g.op("Mul", [x, g.op("Sigmoid", [x], hint)], hint)


def _sparse_sigmoid(g, x, hint, axis, rank):
    half = g.op("Mul", [g.op("Add", [x, g.scalar(1.0)], hint), g.scalar(0.5)], hint)
    return g.op("Clip", [half, g.scalar(0.0), g.scalar(1.0)], hint)


def _tanh_shrink(g, x, hint, axis, rank):
    return g.op("Sub", [x, g.op("Tanh", [x], hint)], hint)


def _squareplus(g, x, hint, axis, rank):
    """(x + sqrt(x² + b)) / 2."""
    root = g.op("Sqrt", [g.op("Add", [g.op("Mul", [x, x], hint), g.scalar(SQUAREPLUS_B)], hint)],
                hint)
    return g.op("Mul", [g.op("Add", [x, root], hint), g.scalar(0.5)], hint)


def _sparse_plus(g, x, hint, axis, rank):
    """0 for x ≤ −1, (x + 1)²/4 for −1 < x < 1, x from 1 on."""
    shifted = g.op("Add", [x, g.scalar(1.0)], hint)
    middle = g.op("Mul", [g.op("Mul", [shifted, shifted], hint), g.scalar(0.25)], hint)
    upper = g.op("Where", [g.op("Less", [x, g.scalar(1.0)], hint), middle, x], hint)
    low = g.op("LessOrEqual", [x, g.scalar(-1.0)], hint)
    return g.op("Where", [low, g.scalar(0.0), upper], hint)


def _mish(g, x, hint, axis, rank):
    return g.op("Mul", [x, g.op("Tanh", [_softplus(g, x, hint)], hint)], hint)


def _sparsemax(g, x, hint, axis, rank):
    """Martins & Astudillo (2016), as layerctl computes it: sort z decreasing, support size
    k = #{j : 1 + j·z_j > z_1 + … + z_j}, τ = (z_1 + … + z_k − 1)/k, y = max(x − τ, 0)."""
    axis %= rank
    size = g.op("Shape", [x], hint, start=axis, end=axis + 1)  # [n], known only at run time
    z = g.op_n("TopK", [x, size], hint, 2, axis=axis, largest=1, sorted=1)[0]
    cumulative = g.op("CumSum", [z, g.const(axis, "const/axis", np.int64)], hint)
    count = g.op("Cast", [g.squeeze(size, [0], hint)], hint, to=FLOAT)
    ranks = g.op("Range", [g.scalar(1.0), g.op("Add", [count, g.scalar(1.0)], hint),
                           g.scalar(1.0)], hint)
    shape = [1] * rank
    shape[axis] = -1
    ranks = g.op("Reshape", [ranks, g.const(shape, "const/shape", np.int64)], hint)
    bound = g.op("Add", [g.scalar(1.0), g.op("Mul", [ranks, z], hint)], hint)
    support = g.op("Cast", [g.op("Greater", [bound, cumulative], hint)], hint, to=FLOAT)
    k = g.reduce("ReduceSum", support, [axis], hint, keepdims=True)
    last = g.op("Sub", [g.op("Cast", [k], hint, to=INT64), g.const(1, "const/1", np.int64)], hint)
    top = g.op("GatherElements", [cumulative, last], hint, axis=axis)
    tau = g.op("Div", [g.op("Sub", [top, g.scalar(1.0)], hint), k], hint)
    return g.op("Relu", [g.op("Sub", [x, tau], hint)], hint)


ACTIVATIONS: dict[str, Emitter] = {
    "relu": _unary("Relu"),
    "relu6": _clip(0.0, 6.0),
    "leaky_relu": _unary("LeakyRelu", alpha=LEAKY_RELU_SLOPE),
    "elu": _unary("Elu", alpha=ELU_ALPHA),
    "selu": _unary("Selu", alpha=SELU_ALPHA, gamma=SELU_SCALE),
    "celu": _unary("Celu", alpha=CELU_ALPHA),
    "gelu": _gelu,
    "silu": _silu,
    "swish": _silu,
    "sigmoid": _unary("Sigmoid"),
    "hard_sigmoid": _unary("HardSigmoid", alpha=1 / 6, beta=0.5),  # Keras 3: clip(x/6 + 1/2)
    "log_sigmoid": _log_sigmoid,
    "sparse_sigmoid": _sparse_sigmoid,
    "hard_silu": _unary("HardSwish"),  # x · clip(x/6 + 1/2, 0, 1)
    "hard_swish": _unary("HardSwish"),
    "tanh": _unary("Tanh"),
    "hard_tanh": _clip(-1.0, 1.0),
    "tanh_shrink": _tanh_shrink,
    "softmax": lambda g, x, hint, axis, rank: g.op("Softmax", [x], hint, axis=axis),
    "log_softmax": lambda g, x, hint, axis, rank: g.op("LogSoftmax", [x], hint, axis=axis),
    "sparsemax": _sparsemax,
    "softplus": _softplus,
    "softsign": _unary("Softsign"),
    "squareplus": _squareplus,
    "sparse_plus": _sparse_plus,
    "soft_shrink": _unary("Shrink", lambd=SHRINK_THRESHOLD, bias=SHRINK_THRESHOLD),
    "hard_shrink": _unary("Shrink", lambd=SHRINK_THRESHOLD, bias=0.0),
    "exponential": _unary("Exp"),
    "mish": _mish,
}


def activation(g: OnnxGraph, name: str | None, x: str, hint: str, *, axis: int = -1,
               rank: int, layer: str) -> str:
    """`name`(x) as ONNX nodes (x itself for None/linear); softmax-like ones act on `axis`."""
    if name in (None, "linear"):
        return x
    emit = ACTIVATIONS.get(name)
    if emit is None:
        raise LayerctlError(f"layer '{layer}': activation '{name}' cannot be exported to ONNX "
                            "(no ONNX formula for it)")
    return emit(g, x, f"{hint}/{name}", axis, rank)
