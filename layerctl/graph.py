"""The executable model: a Plan plus weights, with forward and backward over the whole DAG.

All trainable weights are views into ONE contiguous buffer (`trainable`), and their gradients
into a second one (`gradients`), so an optimizer updates every parameter with a few in-place
vectorised operations. Non-trainable weights (BatchNormalization's moving statistics, weights of
frozen layers) live in a third buffer. `weights` maps `"layer/weight"` (Keras names and layouts)
to those views.

All randomness (initialisation, dropout) comes from numpy Generators: the run's generator, or a
layer's own when its spec sets `seed`, so a seeded run is reproducible bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from layerctl import constraints, initializers, regularizers
from layerctl.plan import Node, Plan, split_ref

FUSABLE_ACTIVATIONS = ("softmax", "sigmoid")


class Graph:
    """Weights plus forward/backward for a Plan; dtype float32 by default (float64 for checks)."""

    def __init__(self, plan: Plan, dtype: Any = np.float32) -> None:
        self.plan = plan
        self.dtype = np.dtype(dtype)
        self.nodes: tuple[Node, ...] = plan.nodes
        self._consumers: dict[str, list[Node]] = {node.name: [] for node in plan.nodes}
        for node in plan.nodes:
            for source in dict.fromkeys(node.inputs):
                if source in self._consumers:
                    self._consumers[source].append(node)
        # an `apply:` node owns no weights (Node.weights is empty): it uses its owner's
        trainable = [
            (n, w) for n in self.nodes for w in n.weights if w.trainable and n.layer.trainable
        ]
        frozen = [
            (n, w) for n in self.nodes for w in n.weights if not (w.trainable and n.layer.trainable)
        ]
        self._input_names = set(plan.input_names)
        self._owners = {n.name: n for n in self.nodes if not n.shared}
        self.trainable = np.zeros(sum(math.prod(w.shape) for _, w in trainable), self.dtype)
        self.gradients = np.zeros_like(self.trainable)
        self.frozen = np.zeros(sum(math.prod(w.shape) for _, w in frozen), self.dtype)
        self.weights: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.segments: list[tuple[int, int]] = []  # [start, stop) of each trainable weight
        self.weight_specs = {f"{n.name}/{w.name}": (n, w) for n, w in trainable + frozen}
        self._place(trainable, self.trainable, self.gradients)
        self._place(frozen, self.frozen, None)
        self.weights = {key: self.weights[key] for key in self.keys()}  # Keras order
        self.layer_rngs = {
            n.name: np.random.default_rng(n.layer.seed)
            for n in self.nodes
            if getattr(n.layer, "seed", None) is not None and not n.shared
        }
        self._caches: dict[str, Any] = {}
        self.output_mask: np.ndarray | None = None
        self.output_masks: dict[str, np.ndarray | None] = {}
        self._fused: set[str] = set()
        self.values: dict[str, np.ndarray] = {}
        self.activity_penalty = 0.0
        self._relu_pools = self._find_relu_pools()

    def _find_relu_pools(self) -> dict[str, str]:
        """{max pooling node: the relu layer it alone consumes}. In backward such a pool applies
        that relu's gradient to its own small dy (dy · [pooled y > 0]; the winning cell of a
        window is positive exactly when the window's max is) and the layer skips it on its
        pool-size times larger output: the same numbers, one full-size pass fewer."""
        by_name = {node.name: node for node in self.nodes}
        pairs = {}
        for node in self.nodes:
            source = node.inputs[0] if len(node.inputs) == 1 else None
            if not getattr(node.layer, "applies_input_relu", False) or source not in by_name:
                continue  # fed by a model input, several tensors or a second output
            producer = by_name[source].layer
            if (getattr(producer, "leaves_relu_to_consumer", False)
                    and producer.activation == "relu"
                    and producer.activity_regularizer is None   # its penalty needs the relu
                    and source not in self.plan.outputs
                    and [n.name for n in self._consumers[source]] == [node.name]):
                pairs[node.name] = source
        return pairs

    def _place(self, items, buffer: np.ndarray, grad_buffer: np.ndarray | None) -> None:
        offset = 0
        for node, spec in items:
            size = math.prod(spec.shape)
            key = f"{node.name}/{spec.name}"
            self.weights[key] = buffer[offset : offset + size].reshape(spec.shape)
            if grad_buffer is not None:
                self.grads[key] = grad_buffer[offset : offset + size].reshape(spec.shape)
                self.segments.append((offset, offset + size))
            offset += size

    def keys(self) -> list[str]:
        """Weight keys in Keras's `get_weights()` order: layer by layer, each layer's own order."""
        return [f"{n.name}/{w.name}" for n in self.nodes for w in n.weights]

    def layer_weights(self, node: Node) -> dict[str, np.ndarray]:
        owner = self._owners[node.owner]
        return {w.name: self.weights[f"{owner.name}/{w.name}"] for w in owner.weights}

    # ---- weights -------------------------------------------------------------------------
    def initialize(self, rng: np.random.Generator) -> None:
        """Draw every weight with its initializer, in Keras order, from `rng`."""
        for key in self.keys():
            node, spec = self.weight_specs[key]
            if callable(spec.initializer):
                value = spec.initializer(spec.shape, rng, self.dtype)
            else:
                value = initializers.initialize(spec.initializer, spec.shape, rng, self.dtype)
            self.weights[key][...] = value

    def get_weights(self) -> dict[str, np.ndarray]:
        return {key: value.copy() for key, value in self.weights.items()}

    def set_weights(self, values: dict[str, np.ndarray]) -> None:
        """Copy `values` in (names and shapes must already have been checked: see weights.py)."""
        for key, value in values.items():
            self.weights[key][...] = value

    def apply_constraints(self) -> None:
        """Keras applies constraints after each optimizer step, never at initialisation."""
        for key, (_, spec) in self.weight_specs.items():
            if spec.constraint is not None and key in self.grads:
                self.weights[key][...] = constraints.apply_constraint(
                    spec.constraint, self.weights[key]
                )

    def penalty(self) -> float:
        """Weight regularization penalties (added to the loss)."""
        return float(
            sum(
                regularizers.penalty(spec.regularizer, self.weights[key])
                for key, (_, spec) in self.weight_specs.items()
                if spec.regularizer is not None and key in self.grads
            )
        )

    def add_penalty_gradients(self) -> None:
        for key, (_, spec) in self.weight_specs.items():
            if spec.regularizer is not None and key in self.grads:
                self.grads[key] += regularizers.penalty_gradient(
                    spec.regularizer, self.weights[key]
                )

    # ---- forward / backward --------------------------------------------------------------
    def fusable_activation(self, output: str | None = None) -> str | None:
        """An output layer's activation when it is softmax/sigmoid (a loss may fuse with it)."""
        ref = output or self.plan.output
        name, index = split_ref(ref)
        layer = self.plan.node(name).layer
        if index or getattr(layer, "activity_regularizer", None) is not None:
            return None  # a second output, or the penalty needs the activated output
        if sum(split_ref(o)[0] == name for o in self.plan.outputs) > 1 or any(
                name == split_ref(s)[0] for n in self.nodes for s in n.inputs):
            return None  # the activated output is needed elsewhere too
        activation = getattr(layer, "activation", None)
        return activation if activation in FUSABLE_ACTIVATIONS else None

    def prepare_input(self, x: Any) -> dict[str, np.ndarray]:
        """{input name: array of the right dtype} from an array (one input) or a mapping."""
        if not isinstance(x, dict):
            if len(self.plan.inputs) != 1:
                raise TypeError(f"the model has {len(self.plan.inputs)} inputs: pass "
                                "{input name: array}")
            x = {self.plan.inputs[0].name: x}
        prepared = {}
        for model_input in self.plan.inputs:
            value = x[model_input.name]
            if model_input.integer:
                prepared[model_input.name] = (value if np.issubdtype(value.dtype, np.integer)
                                              else value.astype(np.int64))
            else:
                prepared[model_input.name] = value.astype(self.dtype, copy=False)
        return prepared

    def forward(
        self,
        x: Any,
        training: bool = False,
        rng: np.random.Generator | None = None,
        logits: bool | tuple[str, ...] = False,
    ) -> Any:
        """Run the model on a batch: an array (one input) or {input name: array}; returns an
        array (one output) or {output name: array}. With `logits` (True: every fusable output,
        or the outputs named), those outputs' softmax/sigmoid is left out (for a fused loss);
        `backward` then takes the gradient w.r.t. those logits."""
        rng = rng if rng is not None else np.random.default_rng(0)
        values: dict[str, Any] = self.prepare_input(x)
        masks: dict[str, Any] = dict.fromkeys(values)
        self._caches.clear()
        self._activity_outputs: dict[str, np.ndarray] = {}
        if logits is True:
            logits = tuple(o for o in self.plan.outputs if self.fusable_activation(o))
        self._fused = set(logits or ())
        self.activity_penalty = 0.0
        for node in self.nodes:
            layer = self._layer_for(node)
            x_in, m_in = node.arguments(values, masks)
            weights = self.layer_weights(node)
            layer_rng = self.layer_rngs.get(node.owner, rng)
            y, cache = layer.forward(weights, x_in, m_in, training, layer_rng)
            if training and hasattr(layer, "state_updates"):
                for name, value in layer.state_updates(weights, cache, training).items():
                    weights[name][...] = value
            node.keep_outputs(y, layer.output_mask(x_in, m_in), values, masks)
            self._caches[node.name] = cache
            activity = getattr(layer, "activity_regularizer", None)
            if activity is not None:  # Keras divides the penalty by the batch size
                y0 = values[node.name]
                self.activity_penalty += regularizers.penalty(activity, y0) / max(y0.shape[0], 1)
                self._activity_outputs[node.name] = y0
        self.values = values  # every node's output of this batch (Normalization's adapt reads it)
        self.output_masks = {o: masks[o] for o in self.plan.outputs}
        self.output_mask = self.output_masks[self.plan.output]
        if len(self.plan.outputs) == 1:
            return values[self.plan.output]
        return {o: values[o] for o in self.plan.outputs}

    def _layer_for(self, node: Node):
        if node.name in self._fused:
            return node.layer.model_copy(update={"activation": None})
        return node.layer

    def backward(self, d_output: Any) -> None:
        """Accumulate d loss / d weight into `gradients` (zeroed first) from d loss / d output:
        an array (one output) or {output name: array}. Gradients of a shared layer's uses add
        up in its one set of weights."""
        self.gradients[...] = 0
        if not isinstance(d_output, dict):
            d_output = {self.plan.output: d_output}
        upstream: dict[str, np.ndarray] = {
            ref: d.astype(self.dtype, copy=False) for ref, d in d_output.items() if d is not None
        }
        for node in reversed(self.nodes):
            dy = self._node_gradient(node, upstream)
            if dy is None:
                continue  # not connected to the output
            layer = self._layer_for(node)
            weights = self.layer_weights(node)
            if node.name in self._activity_outputs:
                y = self._activity_outputs[node.name]
                d_penalty = regularizers.penalty_gradient(layer.activity_regularizer, y)
                dy = self._add_to_first(dy, d_penalty / max(y.shape[0], 1))
            from_data = layer.skips_input_gradient and all(s in self._input_names
                                                           for s in node.inputs)
            extra = {"need_dx": False} if from_data else {}
            if node.name in self._relu_pools:
                extra["input_relu"] = True
            elif node.name in self._relu_pools.values():
                extra["relu_applied"] = True
            dx, grads = layer.backward(weights, self._caches[node.name], dy, **extra)
            if node.layer.trainable:
                for name, grad in grads.items():
                    key = f"{node.owner}/{name}"
                    if key in self.grads:
                        self.grads[key] += grad
            dxs = dx if node.list_input else [dx]
            for source, d in zip(node.inputs, dxs, strict=True):
                if source not in self._input_names and d is not None:
                    upstream[source] = upstream[source] + d if source in upstream else d
        self._caches.clear()

    def _node_gradient(self, node: Node, upstream: dict[str, np.ndarray]) -> Any:
        """dy for a node: an array, or for several outputs a list (zeros where unused)."""
        if len(node.output_shapes) == 1:
            return upstream.pop(node.name, None)
        refs = list(node.output_refs)
        dys = [upstream.pop(ref, None) for ref in refs]
        if all(d is None for d in dys):
            return None
        outputs = self._output_arrays(refs)
        return [np.zeros_like(outputs[k]) if d is None else d for k, d in enumerate(dys)]

    def _output_arrays(self, refs: list[str]) -> list[np.ndarray]:
        return [self.values[ref] for ref in refs]

    @staticmethod
    def _add_to_first(dy: Any, extra: np.ndarray) -> Any:
        if isinstance(dy, list):
            return [dy[0] + extra, *dy[1:]]
        return dy + extra

    def predict(self, x: Any, batch_size: int = 32) -> Any:
        """Inference-mode outputs for all of `x` (an array or {input name: array}), batch by
        batch into preallocated arrays; an array, or {output name: array}. (For speed, see
        `layerctl.inference.Predictor`: the same numbers without anything backward needs.)"""
        return predict_in_batches(lambda batch: self.forward(batch, training=False), self.plan,
                                  x, batch_size, self.dtype)


def predict_in_batches(forward: Callable[[Any], Any], plan: Plan, x: Any, batch_size: int,
                       dtype: Any = np.float32) -> Any:
    """`forward` over all of `x` (an array or {input name: array}) batch by batch, into
    preallocated arrays: an array, or {output name: array} (empty ones of `dtype` for no
    samples)."""
    inputs = x if isinstance(x, dict) else {plan.inputs[0].name: x}
    n = len(next(iter(inputs.values())))
    out: dict[str, np.ndarray] = {}
    for start in range(0, n, batch_size):
        batch = {k: v[start : start + batch_size] for k, v in inputs.items()}
        y = forward(batch if isinstance(x, dict) else batch[plan.inputs[0].name])
        y = y if isinstance(y, dict) else {plan.output: y}
        for ref, value in y.items():
            if ref not in out:
                out[ref] = np.empty((n,) + value.shape[1:], dtype=value.dtype)
            out[ref][start : start + value.shape[0]] = value
    for ref in plan.outputs:
        if ref not in out:
            shape = plan.shape_of(ref)
            out[ref] = np.empty((0,) + tuple(d or 0 for d in shape[1:]), dtype)
    return out[plan.output] if len(plan.outputs) == 1 else out
