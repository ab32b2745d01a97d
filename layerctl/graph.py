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
from typing import Any

import numpy as np

from layerctl import constraints, initializers, regularizers
from layerctl.plan import INPUT, Node, Plan

FUSABLE_ACTIVATIONS = ("softmax", "sigmoid")


class Graph:
    """Weights plus forward/backward for a Plan; dtype float32 by default (float64 for checks)."""

    def __init__(self, plan: Plan, dtype: Any = np.float32) -> None:
        self.plan = plan
        self.dtype = np.dtype(dtype)
        self.nodes: tuple[Node, ...] = plan.nodes
        self._consumers = {
            node.name: [n for n in plan.nodes if node.name in n.inputs] for node in plan.nodes
        }
        trainable = [
            (n, w) for n in self.nodes for w in n.weights if w.trainable and n.layer.trainable
        ]
        frozen = [
            (n, w) for n in self.nodes for w in n.weights if not (w.trainable and n.layer.trainable)
        ]
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
            if getattr(n.layer, "seed", None) is not None
        }
        self._caches: dict[str, Any] = {}
        self.output_mask: np.ndarray | None = None
        self.values: dict[str, np.ndarray] = {}
        self.activity_penalty = 0.0
        self._fused = False
        self._relu_pools = self._find_relu_pools()

    def _find_relu_pools(self) -> dict[str, str]:
        """{max pooling node: the relu layer it alone consumes}. In backward such a pool applies
        that relu's gradient to its own small dy (dy · [pooled y > 0]; the winning cell of a
        window is positive exactly when the window's max is) and the layer skips it on its
        pool-size times larger output: the same numbers, one full-size pass fewer."""
        by_name = {node.name: node for node in self.nodes}
        pairs = {}
        for node in self.nodes:
            source = node.inputs[0] if len(node.inputs) == 1 else INPUT
            if not getattr(node.layer, "applies_input_relu", False) or source == INPUT:
                continue
            producer = by_name[source].layer
            if (getattr(producer, "leaves_relu_to_consumer", False)
                    and producer.activation == "relu"
                    and producer.activity_regularizer is None   # its penalty needs the relu
                    and source != self.plan.output
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
        return {w.name: self.weights[f"{node.name}/{w.name}"] for w in node.weights}

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
    def fusable_activation(self) -> str | None:
        """The output layer's activation when it is softmax/sigmoid (a loss may fuse with it)."""
        layer = self.plan.output_node.layer
        if getattr(layer, "activity_regularizer", None) is not None:
            return None  # the penalty needs the activated output
        activation = getattr(layer, "activation", None)
        return activation if activation in FUSABLE_ACTIVATIONS else None

    def prepare_input(self, x: np.ndarray) -> np.ndarray:
        if self.plan.integer_input:
            return x if np.issubdtype(x.dtype, np.integer) else x.astype(np.int64)
        return x.astype(self.dtype, copy=False)

    def forward(
        self,
        x: np.ndarray,
        training: bool = False,
        rng: np.random.Generator | None = None,
        logits: bool = False,
    ) -> np.ndarray:
        """Run the model on a batch. With `logits`, the output layer's softmax/sigmoid is left
        out (for a fused loss); `backward` then takes the gradient w.r.t. those logits."""
        rng = rng if rng is not None else np.random.default_rng(0)
        values: dict[str, np.ndarray] = {INPUT: self.prepare_input(x)}
        masks: dict[str, np.ndarray | None] = {INPUT: None}
        self._caches.clear()
        self._activity_outputs: dict[str, np.ndarray] = {}
        self._fused = logits
        self.activity_penalty = 0.0
        for node in self.nodes:
            layer = self._layer_for(node)
            multi = layer.max_inputs > 1
            xs = [values[s] for s in node.inputs]
            ms = [masks[s] for s in node.inputs]
            x_in, m_in = (xs, ms) if multi else (xs[0], ms[0])
            weights = self.layer_weights(node)
            layer_rng = self.layer_rngs.get(node.name, rng)
            y, cache = layer.forward(weights, x_in, m_in, training, layer_rng)
            if training and hasattr(layer, "state_updates"):
                for name, value in layer.state_updates(weights, cache, training).items():
                    weights[name][...] = value
            values[node.name], masks[node.name] = y, layer.output_mask(x_in, m_in)
            self._caches[node.name] = cache
            activity = getattr(layer, "activity_regularizer", None)
            if activity is not None:  # Keras divides the penalty by the batch size
                self.activity_penalty += regularizers.penalty(activity, y) / max(y.shape[0], 1)
                self._activity_outputs[node.name] = y
        self.output_mask = masks[self.plan.output]
        self.values = values  # every node's output of this batch (Normalization's adapt reads it)
        return values[self.plan.output]

    def _layer_for(self, node: Node):
        if self._fused and node.name == self.plan.output and self.fusable_activation():
            return node.layer.model_copy(update={"activation": None})
        return node.layer

    def backward(self, d_output: np.ndarray) -> None:
        """Accumulate d loss / d weight into `gradients` (zeroed first) from d loss / d output."""
        self.gradients[...] = 0
        upstream: dict[str, np.ndarray] = {
            self.plan.output: d_output.astype(self.dtype, copy=False)
        }
        for node in reversed(self.nodes):
            dy = upstream.pop(node.name, None)
            if dy is None:
                continue  # not connected to the output
            layer = self._layer_for(node)
            weights = self.layer_weights(node)
            if node.name in self._activity_outputs:
                y = self._activity_outputs[node.name]
                dy = dy + regularizers.penalty_gradient(layer.activity_regularizer, y) / max(
                    y.shape[0], 1
                )
            from_data = layer.skips_input_gradient and all(s == INPUT for s in node.inputs)
            extra = {"need_dx": False} if from_data else {}
            if node.name in self._relu_pools:
                extra["input_relu"] = True
            elif node.name in self._relu_pools.values():
                extra["relu_applied"] = True
            dx, grads = layer.backward(weights, self._caches[node.name], dy, **extra)
            if node.layer.trainable:
                for name, grad in grads.items():
                    key = f"{node.name}/{name}"
                    if key in self.grads:
                        self.grads[key] += grad
            dxs = dx if layer.max_inputs > 1 else [dx]
            for source, d in zip(node.inputs, dxs, strict=True):
                if source != INPUT and d is not None:
                    upstream[source] = upstream[source] + d if source in upstream else d
        self._caches.clear()

    def predict(self, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Inference-mode outputs for all of `x`, batch by batch into one preallocated array."""
        n = x.shape[0]
        out = None
        for start in range(0, n, batch_size):
            y = self.forward(x[start : start + batch_size], training=False)
            if out is None:
                out = np.empty((n,) + y.shape[1:], dtype=y.dtype)
            out[start : start + y.shape[0]] = y
        if out is None:
            out = np.empty((0,) + tuple(d or 0 for d in self.plan.output_shape[1:]), self.dtype)
        return out
