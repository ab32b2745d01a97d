"""One training step, one epoch, and evaluation: the math of `fit` without any I/O.

A step is Keras's: training-mode forward, loss plus regularization penalties, backward, one
optimizer update over the flat parameter buffer, then constraints. When the model ends in
softmax/sigmoid and the loss takes probabilities, the step feeds the loss the logits instead
(the stable fused gradient `softmax(z) − y`), and metrics still see probabilities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from layerctl import activations
from layerctl.errors import LayerctlError
from layerctl.graph import Graph
from layerctl.training.losses import (
    fused_loss_and_gradient,
    fused_output_activation,
    loss_and_gradient,
    parse_loss,
)
from layerctl.training.metrics import make_metrics
from layerctl.training.optimizers import make_optimizer, parse_optimizer
from layerctl.training.spec import CompileSpec


class NonFiniteLoss(LayerctlError):
    """The loss became NaN or infinite; the run stops with its last good checkpoint kept."""


@dataclass
class Accumulator:
    """The batch-size-weighted mean loss of an epoch plus its metrics, like Keras's trackers."""

    metrics: list
    loss_total: float = 0.0
    seen: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def update(self, loss: float, y_true: np.ndarray, y_pred: np.ndarray, mask) -> None:
        self.loss_total += loss * len(y_true)
        self.seen += len(y_true)
        for metric in self.metrics:
            metric.update(y_true, y_pred, mask)

    def logs(self, prefix: str = "") -> dict[str, float]:
        logs = {f"{prefix}loss": self.loss_total / max(self.seen, 1)}
        logs.update({f"{prefix}{m.name}": float(m.result()) for m in self.metrics})
        return logs

    def state(self) -> dict[str, Any]:
        """Plain numbers (and lists) enough to continue this epoch after a resume."""
        return {
            "loss_total": self.loss_total,
            "seen": self.seen,
            "metrics": [_plain_state(m) for m in self.metrics],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.loss_total, self.seen = state["loss_total"], state["seen"]
        for metric, saved in zip(self.metrics, state["metrics"], strict=True):
            for name, value in saved.items():
                current = getattr(metric, name)
                setattr(
                    metric,
                    name,
                    np.asarray(value, current.dtype) if isinstance(current, np.ndarray) else value,
                )


def _plain_state(metric) -> dict[str, Any]:
    return {
        name: (value.tolist() if isinstance(value, np.ndarray) else value)
        for name, value in vars(metric).items()
        if isinstance(value, (int, float, np.ndarray)) and not isinstance(value, bool)
    }


class Trainer:
    """Steps and evaluation for one graph and its `compile:` block."""

    def __init__(self, graph: Graph, compile_spec: CompileSpec) -> None:
        self.graph = graph
        self.loss = parse_loss(compile_spec.loss)
        self.metric_ids = list(compile_spec.metrics)
        output_activation = graph.fusable_activation()
        self.fused_activation = (
            output_activation if fused_output_activation(self.loss, output_activation) else None
        )
        self.optimizer = make_optimizer(
            parse_optimizer(compile_spec.optimizer), graph.segments, graph.dtype
        )

    def accumulator(self, y: np.ndarray) -> Accumulator:
        y_true_shape = (None,) + tuple(y.shape[1:])
        return Accumulator(
            make_metrics(self.metric_ids, y_true_shape, self.graph.plan.output_shape)
        )

    def _loss(self, y: np.ndarray, output: np.ndarray, fused: bool) -> tuple[float, np.ndarray]:
        mask = self.graph.output_mask
        if fused:
            return fused_loss_and_gradient(self.loss, y, output, mask)
        return loss_and_gradient(self.loss, y, output, mask)

    def train_step(
        self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, accumulator: Accumulator
    ) -> float:
        graph = self.graph
        fused = self.fused_activation is not None
        # Overflow shows up as a non-finite loss, reported below with what to do about it;
        # NumPy's RuntimeWarnings would only add noise to the terminal.
        with np.errstate(over="ignore", invalid="ignore"):
            output = graph.forward(x, training=True, rng=rng, logits=fused)
            loss, d_output = self._loss(y, output, fused)
            loss += graph.activity_penalty + graph.penalty()
        if not math.isfinite(loss):
            raise NonFiniteLoss(f"the loss became {loss}")
        graph.backward(d_output)
        graph.add_penalty_gradients()
        self.optimizer.apply(graph.trainable, graph.gradients)
        graph.apply_constraints()
        y_pred = activations.forward(self.fused_activation, output) if fused else output
        accumulator.update(loss, y, y_pred, graph.output_mask)
        return loss

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> Accumulator:
        """Inference-mode loss (with penalties, as Keras reports it) and metrics over all of x."""
        accumulator = self.accumulator(y)
        penalty = self.graph.penalty()
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            output = self.graph.forward(xb, training=False)
            loss, _ = self._loss(yb, output, fused=False)
            accumulator.update(
                loss + penalty + self.graph.activity_penalty, yb, output, self.graph.output_mask
            )
        return accumulator
