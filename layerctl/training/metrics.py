"""Training metrics: streaming accumulators with Keras 3's values and names.

This module owns the metric names a spec may list under `compile.metrics`, the accumulators
behind them (`update(y_true, y_pred, mask=None)`, `result()`, `reset()`), and the names Keras
prints for them (`metric_names`).

- `accuracy` / `acc` pick binary, categorical or sparse categorical accuracy the way Keras 3's
  `compile` does: from the shapes of the targets and outputs, not from the loss (Keras 2 looked
  at the loss). A last output axis of 1 means binary (threshold 0.5); targets of lower rank, or
  a last target axis of 1 against several outputs, mean sparse; otherwise categorical (argmax
  against argmax). The three are also available by their own names.
- `mae`, `mse` (and their long names): Keras's per-sample mean over the last axis, averaged.
- `auc`: binary ROC AUC as Keras's default `AUC()` computes it: 200 evenly spaced thresholds,
  confusion counts per threshold, trapezoidal ("interpolation") summation. It therefore
  approximates the exact (Mann-Whitney) AUC: scores in the same 1/199-wide bucket count as
  ties.

- `precision`, `recall` (Keras's `Precision()`, `Recall()`): every entry of the output is a
  binary prediction `y_pred > threshold` (0.5) against `y_true` cast to bool; the streaming
  `tp / (tp + fp)` and `tp / (tp + fn)`, 0 when nothing is predicted (resp. positive).
- `f1_score` (Keras's `F1Score`): per class, on 2D outputs; a prediction is the row's maximum
  (`threshold` None, Keras's default) or `y_pred > threshold`. Keras's default `average=None`
  gives one value per class, which a history column cannot hold: give
  `{type: f1_score, average: macro}` (or `micro`, `weighted`).
- `top_k_categorical_accuracy` (one-hot targets) and `sparse_top_k_categorical_accuracy`
  (integer targets), `k` 5 by default (`{type: ..., k: 3}`): whether the target's score is
  among the k highest; a tie with the k-th score counts as in, as Keras's `in_top_k`.

Like Keras's mean metrics, a mask (the model output's Keras mask) gives masked entries weight
0; `auc` applies it too (Keras's AUC ignores output masks). Metrics take the model's outputs
after its final activation, even when the loss is fused with that activation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, Protocol, Union, get_args

import numpy as np
from pydantic import Discriminator, Field, Strict, Tag

from layerctl.config import Frozen
from layerctl.errors import SpecError, did_you_mean
from layerctl.training.losses import align_mask, squeeze_or_expand_to_same_rank

MetricName = Literal[
    "accuracy", "acc",
    "binary_accuracy", "BinaryAccuracy",
    "categorical_accuracy", "CategoricalAccuracy",
    "sparse_categorical_accuracy", "SparseCategoricalAccuracy",
    "mae", "MAE", "mean_absolute_error", "MeanAbsoluteError",
    "mse", "MSE", "mean_squared_error", "MeanSquaredError",
    "auc", "AUC",
    "precision", "Precision", "recall", "Recall", "f1_score", "F1Score",
    "top_k_categorical_accuracy", "TopKCategoricalAccuracy",
    "sparse_top_k_categorical_accuracy", "SparseTopKCategoricalAccuracy",
]
METRIC_NAMES: tuple[str, ...] = get_args(MetricName)
Threshold = Annotated[float, Strict(), Field(ge=0.0, le=1.0)]


class TopK(Frozen):
    """`{type: top_k_categorical_accuracy, k: 3}` (or the sparse one, for integer targets)."""

    type: Literal["top_k_categorical_accuracy", "TopKCategoricalAccuracy",
                  "sparse_top_k_categorical_accuracy", "SparseTopKCategoricalAccuracy"]
    k: Annotated[int, Strict(), Field(gt=0)] = 5
    name: str | None = None


class PrecisionRecall(Frozen):
    """`{type: precision, thresholds: 0.7}`: Keras's Precision/Recall with one threshold."""

    type: Literal["precision", "Precision", "recall", "Recall"]
    thresholds: Threshold = 0.5
    name: str | None = None


class F1(Frozen):
    """`{type: f1_score, average: macro, threshold: 0.5}`: Keras's F1Score."""

    type: Literal["f1_score", "F1Score"]
    average: Literal["micro", "macro", "weighted"] | None = None
    threshold: Threshold | None = None
    name: str | None = None


MetricConfig = Annotated[TopK | PrecisionRecall | F1, Field(discriminator="type")]
# a string is a name, anything else a mapping: one error for a misspelt name, not one per form
MetricEntry = Annotated[
    Union[Annotated[MetricName, Tag("name")], Annotated[MetricConfig, Tag("config")]],  # noqa: UP007
    Discriminator(lambda value: "name" if isinstance(value, str) else "config")]

Shape = tuple[int | None, ...]
ValuesFn = Callable[["np.ndarray", "np.ndarray"], "np.ndarray"]


class Metric(Protocol):
    """What the training loop needs from every metric."""

    name: str

    def update(self, y_true: Any, y_pred: np.ndarray, mask: np.ndarray | None = None) -> None: ...

    def result(self) -> float: ...

    def reset(self) -> None: ...


class MeanMetric:
    """The weighted mean of per-entry values over everything seen since `reset`, reduced as
    Keras's `MeanMetricWrapper`: each sample contributes the mean of its weighted values over
    the non-batch axes, and counts the mean of its weights."""

    def __init__(self, name: str, values: ValuesFn) -> None:
        self.name = name
        self._values = values
        self.reset()

    def reset(self) -> None:
        self._total = 0.0
        self._count = 0.0

    def update(self, y_true: Any, y_pred: np.ndarray, mask: np.ndarray | None = None) -> None:
        values = self._values(np.asarray(y_true), np.asarray(y_pred)).astype(np.float64)
        if values.ndim == 0:
            values = values[None]
        if mask is None:
            self._total += float(np.sum(np.mean(values.reshape(len(values), -1), axis=1)))
            self._count += len(values)
            return
        weights = align_mask(mask, values.shape).astype(np.float64)
        per_sample = (values * weights).reshape(len(values), -1)
        self._total += float(np.sum(np.mean(per_sample, axis=1)))
        self._count += float(np.sum(np.mean(weights.reshape(len(values), -1), axis=1)))

    def result(self) -> float:
        return self._total / self._count if self._count else 0.0


class AUC:
    """Streaming binary ROC AUC with Keras's default 200 thresholds (see the module doc)."""

    def __init__(self, name: str = "auc", num_thresholds: int = 200) -> None:
        if num_thresholds < 2:
            raise ValueError(f"num_thresholds must be > 1; received {num_thresholds}")
        self.name = name
        self.num_thresholds = num_thresholds
        self.reset()

    def reset(self) -> None:
        # Weighted positives / negatives whose score falls in each bucket.
        self._positives = np.zeros(self.num_thresholds)
        self._negatives = np.zeros(self.num_thresholds)

    def update(self, y_true: Any, y_pred: np.ndarray, mask: np.ndarray | None = None) -> None:
        y_pred = np.asarray(y_pred)
        positive = np.asarray(y_true).astype(bool)
        if positive.size != y_pred.size:
            raise SpecError(f"metric auc needs one target per output; got {positive.shape} "
                            f"targets for outputs {y_pred.shape}",
                            hint="auc is binary: use it with one sigmoid output, or with one-hot "
                            "targets (categorical_crossentropy)")
        weights = np.ones(y_pred.size) if mask is None else (
            align_mask(mask, y_pred.shape).astype(np.float64).ravel())
        # Keras's bucketing in float32: a score s passes the thresholds -eps, 1/(n-1), ...,
        # 1+eps strictly below it, i.e. bucket max(ceil(s (n - 1)) - 1, 0) after clipping to
        # [0, 1].
        scores = np.clip(y_pred.astype(np.float32).ravel(), 0.0, 1.0)
        bucket = np.ceil(scores * np.float32(self.num_thresholds - 1)) - 1
        bucket = np.maximum(bucket, 0).astype(np.int64)
        positive = positive.ravel()
        size = self.num_thresholds
        self._positives += np.bincount(bucket, weights=weights * positive, minlength=size)
        self._negatives += np.bincount(bucket, weights=weights * ~positive, minlength=size)

    def result(self) -> float:
        # Counts above threshold i are the counts in buckets >= i.
        true_pos = np.cumsum(self._positives[::-1])[::-1]
        false_pos = np.cumsum(self._negatives[::-1])[::-1]
        recall = _ratio(true_pos, self._positives.sum())
        fp_rate = _ratio(false_pos, self._negatives.sum())
        heights = (recall[:-1] + recall[1:]) / 2
        return float(np.sum((fp_rate[:-1] - fp_rate[1:]) * heights))


def accuracy_kind(y_true_shape: Shape, y_pred_shape: Shape) -> str:
    """Which accuracy Keras 3 means by `accuracy` for these target and output shapes."""
    if y_pred_shape[-1] == 1:
        return "binary_accuracy"
    if len(y_true_shape) < len(y_pred_shape) or (y_true_shape[-1] == 1 and y_pred_shape[-1] != 1):
        return "sparse_categorical_accuracy"
    return "categorical_accuracy"


class ConfusionRatio:
    """Keras's Precision / Recall with one threshold: streaming confusion counts over every
    entry of the output (a masked entry counts 0)."""

    def __init__(self, name: str, kind: str, threshold: float = 0.5) -> None:
        self.name, self.kind, self.threshold = name, kind, threshold
        self.reset()

    def reset(self) -> None:
        self._true_positives = 0.0
        self._false = 0.0  # false positives (precision) or false negatives (recall)

    def update(self, y_true: Any, y_pred: np.ndarray, mask: np.ndarray | None = None) -> None:
        y_true, y_pred = squeeze_or_expand_to_same_rank(np.asarray(y_true), np.asarray(y_pred))
        if y_true.shape != y_pred.shape:
            raise SpecError(f"{self.name} needs targets shaped like the outputs; got "
                            f"{y_true.shape} for outputs {y_pred.shape}",
                            hint="for integer class labels use sparse_top_k_categorical_accuracy"
                                 " or one-hot targets")
        truth, predicted = y_true.astype(bool), y_pred > self.threshold
        weights = np.ones(y_pred.shape)
        if mask is not None:  # (batch, steps) for (batch, steps, units): over the last axis too
            mask = np.asarray(mask, np.float64)
            weights = weights * mask.reshape(mask.shape + (1,) * (y_pred.ndim - mask.ndim))
        self._true_positives += float(np.sum(weights * (truth & predicted)))
        other = (~truth & predicted) if self.kind == "precision" else (truth & ~predicted)
        self._false += float(np.sum(weights * other))

    def result(self) -> float:
        total = self._true_positives + self._false
        return self._true_positives / total if total else 0.0


class F1Score:
    """Keras's F1Score on (batch, classes) outputs (see the module doc), in Keras's float32
    arithmetic with its epsilon 1e-7."""

    def __init__(self, name: str, classes: int, average: str | None,
                 threshold: float | None) -> None:
        if average is None:
            raise SpecError(f"{name}: Keras's F1Score(average=None) gives one value per class, "
                            "which a history column cannot hold",
                            hint="give `{type: f1_score, average: macro}` (or micro, weighted)")
        self.name, self.classes, self.average, self.threshold = name, classes, average, threshold
        self.reset()

    def reset(self) -> None:
        shape = () if self.average == "micro" else (self.classes,)
        self._tp, self._fp, self._fn, self._support = (np.zeros(shape) for _ in range(4))

    def update(self, y_true: Any, y_pred: np.ndarray, mask: np.ndarray | None = None) -> None:
        y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
        if y_pred.ndim != 2 or y_true.shape != y_pred.shape:
            raise SpecError(f"{self.name} needs 2D one-hot targets shaped like the outputs "
                            f"(batch, classes); got {y_true.shape} for outputs {y_pred.shape}")
        if self.threshold is None:
            hit = (y_pred >= y_pred.max(axis=-1, keepdims=True)) & (np.abs(y_pred) > 1e-9)
        else:
            hit = y_pred > self.threshold
        hit = hit.astype(np.float64)
        weights = np.ones((len(y_pred), 1)) if mask is None else (
            np.asarray(mask, np.float64).reshape(len(y_pred), 1))
        axis = None if self.average == "micro" else 0
        self._tp += np.sum(weights * hit * y_true, axis=axis)
        self._fp += np.sum(weights * hit * (1 - y_true), axis=axis)
        self._fn += np.sum(weights * (1 - hit) * y_true, axis=axis)
        self._support += np.sum(weights * y_true, axis=axis)

    def result(self) -> float:
        f32, eps = np.float32, np.float32(1e-7)
        tp, fp, fn = f32(self._tp), f32(self._fp), f32(self._fn)
        precision = tp / (tp + fp + eps)
        recall = tp / (tp + fn + eps)
        f1 = precision * recall / (precision + recall + eps) * f32(2)
        if self.average == "weighted":
            support = f32(self._support)
            return float(np.sum(f1 * (support / (np.sum(support) + eps))))
        return float(np.mean(f1))


def entry_identifier(entry: Any) -> str:
    """The metric's Keras name as a history key: the string given, or the config's `name`, or
    the snake-case name Keras gives the metric object (`TopKCategoricalAccuracy(k=3)` logs
    `top_k_categorical_accuracy`)."""
    if isinstance(entry, str):
        return entry
    if entry.name:
        return entry.name
    return _CANONICAL.get(entry.type, entry.type)


def make_metric(identifier: Any, y_true_shape: Shape, y_pred_shape: Shape,
                name: str | None = None) -> Metric:
    """The accumulator for `identifier` (one of METRIC_NAMES, or a metric mapping), named
    `name` (default: the identifier, as Keras names a metric given by string)."""
    config = None
    if not isinstance(identifier, str):
        config, identifier = identifier, identifier.type
    if identifier not in METRIC_NAMES:
        hint = did_you_mean(identifier, METRIC_NAMES)
        raise SpecError(f"unknown metric '{identifier}'", hint=hint)
    name = name or identifier
    kind = _CANONICAL.get(identifier, identifier)
    if kind == "accuracy":
        kind = accuracy_kind(y_true_shape, y_pred_shape)
    if kind == "auc":
        return AUC(name)
    if kind in ("precision", "recall"):
        return ConfusionRatio(name, kind, 0.5 if config is None else config.thresholds)
    if kind == "f1_score":
        return F1Score(name, int(y_pred_shape[-1]), getattr(config, "average", None),
                       getattr(config, "threshold", None))
    if kind in ("top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy"):
        k = 5 if config is None else config.k
        values = _top_k(k, sparse=kind.startswith("sparse"))
        return MeanMetric(name, values)
    return MeanMetric(name, _VALUE_FUNCTIONS[kind])


def _top_k(k: int, sparse: bool) -> ValuesFn:
    def values(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        if sparse:
            if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
                y_true = y_true[..., 0]
            target = y_true.astype(np.int64)
        else:
            target = np.argmax(y_true, axis=-1)
        if k >= y_pred.shape[-1]:
            return np.ones(target.shape)
        scores = np.take_along_axis(y_pred, target[..., None], axis=-1)[..., 0]
        kth = -np.partition(-y_pred, k - 1, axis=-1)[..., k - 1]
        return (scores >= kth).astype(np.float64)

    return values


def make_metrics(identifiers: Sequence[str], y_true_shape: Shape,
                 y_pred_shape: Shape) -> list[Metric]:
    """Accumulators for a spec's `metrics:` list, named as Keras names them."""
    names = metric_names(identifiers)[1:]
    return [make_metric(identifier, y_true_shape, y_pred_shape, name)
            for identifier, name in zip(identifiers, names, strict=True)]


def metric_names(identifiers: Sequence[str], validation: bool = False) -> list[str]:
    """The keys Keras logs for `loss` plus these metrics, in order: each metric under the
    string it was given, a repeated name suffixed `_1`, `_2`, ...; `val_` first for validation."""
    names, seen = ["loss"], {"loss": 1}
    for identifier in map(entry_identifier, identifiers):
        if identifier in seen:
            seen[identifier] += 1
            names.append(f"{identifier}_{seen[identifier] - 1}")
        else:
            seen[identifier] = 1
            names.append(identifier)
    return [f"val_{n}" for n in names] if validation else names


def _binary_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return (y_true == (y_pred > 0.5)).astype(np.float64)


def _categorical_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float64)


def _sparse_categorical_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    return (y_true == np.argmax(y_pred, axis=-1)).astype(np.float64)


def _mean_absolute_error(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return np.mean(np.abs(y_true - y_pred), axis=-1)


def _mean_squared_error(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return np.mean(np.square(y_true - y_pred), axis=-1)


_VALUE_FUNCTIONS: dict[str, ValuesFn] = {
    "binary_accuracy": _binary_accuracy,
    "categorical_accuracy": _categorical_accuracy,
    "sparse_categorical_accuracy": _sparse_categorical_accuracy,
    "mean_absolute_error": _mean_absolute_error,
    "mean_squared_error": _mean_squared_error,
}
_CANONICAL = {
    "acc": "accuracy", "AUC": "auc",
    "BinaryAccuracy": "binary_accuracy", "CategoricalAccuracy": "categorical_accuracy",
    "SparseCategoricalAccuracy": "sparse_categorical_accuracy",
    "mae": "mean_absolute_error", "MAE": "mean_absolute_error",
    "MeanAbsoluteError": "mean_absolute_error",
    "mse": "mean_squared_error", "MSE": "mean_squared_error",
    "MeanSquaredError": "mean_squared_error",
    "Precision": "precision", "Recall": "recall", "F1Score": "f1_score",
    "TopKCategoricalAccuracy": "top_k_categorical_accuracy",
    "SparseTopKCategoricalAccuracy": "sparse_top_k_categorical_accuracy",
}


def _ratio(numerator: np.ndarray, denominator: float) -> np.ndarray:
    """Keras's divide_no_nan: 0 where the denominator is 0."""
    return numerator / denominator if denominator else np.zeros_like(numerator)
