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
)
from layerctl.training.metrics import make_metrics
from layerctl.training.optimizers import make_optimizer, parse_optimizer
from layerctl.training.outputs import per_output
from layerctl.training.spec import CompileSpec


class NonFiniteLoss(LayerctlError):
    """The loss became NaN or infinite; the run stops with its last good checkpoint kept."""

    code = "LC402"


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


@dataclass
class MultiAccumulator:
    """Several outputs: the weighted total loss plus one Accumulator per output, logged under
    Keras's names (`loss`, `<output>_loss`, `<output>_<metric>`)."""

    outputs: dict[str, Accumulator]
    prefixes: dict[str, str]
    loss_total: float = 0.0
    seen: int = 0

    def update_total(self, loss: float, count: int) -> None:
        self.loss_total += loss * count
        self.seen += count

    def logs(self, prefix: str = "") -> dict[str, float]:
        logs = {f"{prefix}loss": self.loss_total / max(self.seen, 1)}
        for ref, accumulator in self.outputs.items():
            logs.update(accumulator.logs(prefix + self.prefixes[ref]))
        return logs

    def state(self) -> dict[str, Any]:
        return {"loss_total": self.loss_total, "seen": self.seen,
                "outputs": {ref: a.state() for ref, a in self.outputs.items()}}

    def load_state(self, state: dict[str, Any]) -> None:
        self.loss_total, self.seen = state["loss_total"], state["seen"]
        for ref, accumulator in self.outputs.items():
            accumulator.load_state(state["outputs"][ref])


def take(data: Any, index: Any) -> Any:
    """Rows `index` of an array or of every array of a mapping."""
    if isinstance(data, dict):
        return {key: value[index] for key, value in data.items()}
    return data[index]


def class_weight_to_sample_weight(y: np.ndarray, class_weight: dict[int, float]) -> np.ndarray:
    """Keras's rule: the class of a one-hot row is its argmax, of an integer label its rounded
    value; a class missing from `class_weight` weighs 1."""
    y = np.asarray(y)
    if y.ndim > 1:
        y = np.argmax(y, axis=-1) if y.shape[-1] != 1 else y[..., 0]
    classes = np.round(y).astype(np.int64)
    weights = np.ones(len(classes), np.float32)
    for label, weight in class_weight.items():
        weights[classes == int(label)] = weight
    return weights


def sample_count(data: Any) -> int:
    return len(next(iter(data.values()))) if isinstance(data, dict) else len(data)


class Trainer:
    """Steps and evaluation for one graph and its `compile:` block."""

    def __init__(self, graph: Graph, compile_spec: CompileSpec) -> None:
        self.graph = graph
        self.outputs = per_output(compile_spec, graph.plan.outputs)
        self.fused: dict[str, str] = {}  # output -> the activation its loss takes logits for
        for out in self.outputs:
            activation = graph.fusable_activation(out.ref)
            if fused_output_activation(out.loss, activation):
                self.fused[out.ref] = activation
        # one-output shorthands (the names callers and tests use)
        self.loss = self.outputs[0].loss
        self.metric_ids = list(self.outputs[0].metrics)
        self.fused_activation = self.fused.get(self.outputs[0].ref)
        self.optimizer = make_optimizer(
            parse_optimizer(compile_spec.optimizer), graph.segments, graph.dtype
        )

    @property
    def several(self) -> bool:
        return len(self.outputs) > 1

    def accumulator(self, y: Any) -> Accumulator | MultiAccumulator:
        if not self.several:
            return self._output_accumulator(self.outputs[0], y)
        return MultiAccumulator({o.ref: self._output_accumulator(o, y[o.ref])
                                 for o in self.outputs},
                                {o.ref: o.prefix for o in self.outputs})

    def _output_accumulator(self, out, y: np.ndarray) -> Accumulator:
        y_true_shape = (None,) + tuple(y.shape[1:])
        return Accumulator(make_metrics(list(out.metrics), y_true_shape,
                                        self.graph.plan.shape_of(out.ref)))

    def _loss(self, out, y: np.ndarray, output: np.ndarray, fused: bool,
              sample_weight: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        mask = self.graph.output_masks.get(out.ref)
        if fused:
            return fused_loss_and_gradient(out.loss, y, output, mask, sample_weight)
        return loss_and_gradient(out.loss, y, output, mask, sample_weight)

    def train_step(self, x: Any, y: Any, rng: np.random.Generator,
                   accumulator: Accumulator | MultiAccumulator,
                   sample_weight: np.ndarray | None = None) -> float:
        """One step; `sample_weight` (one per sample, e.g. from `class_weight`) weights the
        loss as Keras's `fit(sample_weight=...)` does (metrics stay unweighted, as Keras's
        `metrics`; only its `weighted_metrics` would take them)."""
        graph = self.graph
        # Overflow shows up as a non-finite loss, reported below with what to do about it;
        # NumPy's RuntimeWarnings would only add noise to the terminal.
        with np.errstate(over="ignore", invalid="ignore"):
            output = graph.forward(x, training=True, rng=rng, logits=tuple(self.fused))
            loss, d_output, per_output_loss = self._total(y, output, fused=True,
                                                          sample_weight=sample_weight)
            loss += graph.activity_penalty + graph.penalty()
        if not math.isfinite(loss):
            raise NonFiniteLoss(f"the loss became {loss}")
        graph.backward(d_output)
        graph.add_penalty_gradients()
        self.optimizer.apply(graph.trainable, graph.gradients)
        graph.apply_constraints()
        self._update(accumulator, loss, y, output, per_output_loss, fused=True)
        return loss

    def _total(self, y: Any, output: Any, fused: bool, sample_weight: np.ndarray | None = None):
        """(total loss, d loss / d outputs, each output's own loss)."""
        if not self.several:
            out = self.outputs[0]
            loss, d = self._loss(out, y, output, fused and out.ref in self.fused, sample_weight)
            return loss, d, [loss]
        total, grads, losses = 0.0, {}, []
        for out in self.outputs:
            loss, d = self._loss(out, y[out.ref], output[out.ref], fused and out.ref in self.fused,
                                 sample_weight)
            total += out.weight * loss
            grads[out.ref] = d * d.dtype.type(out.weight)
            losses.append(loss)
        return total, grads, losses

    def _update(self, accumulator, loss, y, output, per_output_loss, fused: bool) -> None:
        if not self.several:
            out = self.outputs[0]
            y_pred = (activations.forward(self.fused[out.ref], output)
                      if fused and out.ref in self.fused else output)
            accumulator.update(loss, y, y_pred, self.graph.output_masks.get(out.ref))
            return
        accumulator.update_total(loss, sample_count(y))
        for out, own in zip(self.outputs, per_output_loss, strict=True):
            y_pred = output[out.ref]
            if fused and out.ref in self.fused:
                y_pred = activations.forward(self.fused[out.ref], y_pred)
            accumulator.outputs[out.ref].update(own, y[out.ref], y_pred,
                                                self.graph.output_masks.get(out.ref))

    def evaluate(self, x: Any, y: Any, batch_size: int,
                 sample_weight: np.ndarray | None = None) -> Accumulator | MultiAccumulator:
        """Inference-mode loss (with penalties, as Keras reports it) and metrics over all of x;
        `sample_weight` weights the loss (Keras's `evaluate(sample_weight=...)`)."""
        accumulator = self.accumulator(y)
        penalty = self.graph.penalty()
        for start in range(0, sample_count(x), batch_size):
            rows = slice(start, start + batch_size)
            xb, yb = take(x, rows), take(y, rows)
            output = self.graph.forward(xb, training=False)
            weights = None if sample_weight is None else sample_weight[rows]
            loss, _, per_output_loss = self._total(yb, output, fused=False,
                                                   sample_weight=weights)
            self._update(accumulator, loss + penalty + self.graph.activity_penalty, yb, output,
                         per_output_loss, fused=False)
        return accumulator
