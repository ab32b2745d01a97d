"""Losses: Keras 3's values and their exact gradients with respect to the model output.

This module owns the loss specs (Keras names and aliases, Keras arguments and defaults) and
`loss_and_gradient(spec, y_true, y_pred, mask)`, which returns the reduced loss and
`d loss / d y_pred`. Each loss computes per-entry values (one per entry of `y_pred` without its
class/feature axis) beside the closure that back-propagates through them, then
`loss_and_gradient` reduces them as Keras's `Loss.__call__` does
(`keras/src/losses/loss.py`):

- "sum_over_batch_size" (the default) and "mean": the sum over every entry divided by their
  number; "sum": the sum; "mean_with_sample_weight": divided by the sum of the weights.
- A mask (the model output's Keras mask, e.g. `(batch, timesteps)`) gives masked entries weight
  0, and the mean is taken over valid entries only: `sum(values[mask]) / count(mask)`, and 0
  when nothing is valid. `ignore_class` of sparse categorical crossentropy masks the same way.

Cross-entropies on probabilities clip them to `[1e-7, 1 - 1e-7]` (Keras's epsilon), after
normalising categorical predictions to sum 1, exactly as Keras's backends do; the clip has zero
gradient outside that range, as in Keras. With `from_logits` they use the stable log-sum-exp
and softplus forms.

When the model ends in softmax/sigmoid and the loss takes probabilities, the graph may instead
feed the pre-activation logits to `fused_loss_and_gradient` (see `fused_output_activation`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, get_args

import numpy as np
from pydantic import Field, Strict

from layerctl.config import Frozen, by_name_or_mapping, choice_parser
from layerctl.errors import DataError

EPSILON = 1e-7  # keras.config.epsilon()

Reduction = Literal["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight"]
Smoothing = Annotated[float, Strict(), Field(ge=0.0, le=1.0)]
Backward = Callable[["np.ndarray"], "np.ndarray"]


class LossSpec(Frozen):
    """Arguments every Keras loss takes (`dtype` is layerctl's model-wide float type)."""

    type: str
    reduction: Reduction = "sum_over_batch_size"
    name: str | None = None

    def entries(self, y_true: np.ndarray, y_pred: np.ndarray
                ) -> tuple[np.ndarray, Backward, np.ndarray | None]:
        """Per-entry losses, the map from their cotangent to `d/d y_pred`, and a validity mask
        (or None) the loss itself contributes."""
        raise NotImplementedError


class MeanSquaredError(LossSpec):
    """`mean((y_true - y_pred)^2)` over the last axis."""

    type: Literal["mean_squared_error", "mse", "MeanSquaredError", "MSE"] = "mean_squared_error"

    def entries(self, y_true, y_pred):
        y_true, y_pred = _same_rank_2d(y_true, y_pred)
        error = y_pred - y_true
        return _mean_over_last_axis(np.square(error), 2 * error)


class MeanAbsoluteError(LossSpec):
    """`mean(|y_true - y_pred|)` over the last axis (gradient 0 where they are equal)."""

    type: Literal["mean_absolute_error", "mae", "MeanAbsoluteError", "MAE"] = (
        "mean_absolute_error"
    )

    def entries(self, y_true, y_pred):
        y_true, y_pred = _same_rank_2d(y_true, y_pred)
        error = y_pred - y_true
        return _mean_over_last_axis(np.abs(error), np.sign(error))


class Huber(LossSpec):
    """`0.5 e^2` where `|e| <= delta`, else `delta |e| - 0.5 delta^2`, averaged over the last
    axis, with `e = y_pred - y_true`."""

    type: Literal["huber", "Huber"] = "huber"
    delta: Annotated[float, Strict(), Field(ge=0.0)] = 1.0

    def entries(self, y_true, y_pred):
        y_true, y_pred = _same_rank_2d(y_true, y_pred)
        error = y_pred - y_true
        size = np.abs(error)
        quadratic = size <= self.delta
        per_value = np.where(quadratic, 0.5 * np.square(error),
                             self.delta * size - 0.5 * self.delta**2)
        slope = np.where(quadratic, error, self.delta * np.sign(error))
        return _mean_over_last_axis(per_value, slope)


class BinaryCrossentropy(LossSpec):
    """`-(t log p + (1 - t) log(1 - p))` averaged over `axis`; `label_smoothing` moves the
    targets toward 0.5: `t (1 - s) + s / 2`."""

    type: Literal["binary_crossentropy", "BinaryCrossentropy", "bce", "BCE"] = (
        "binary_crossentropy"
    )
    from_logits: bool = False
    label_smoothing: Smoothing = 0.0
    axis: Annotated[int, Strict()] = -1

    def entries(self, y_true, y_pred):
        y_true, y_pred = _same_rank_2d(y_true, y_pred)
        target = y_true * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        target, x = _class_axis_last(target, self.axis), _class_axis_last(y_pred, self.axis)
        if self.from_logits:
            # softplus form: max(z, 0) - z t + log(1 + exp(-|z|)); d/dz = sigmoid(z) - t
            per_value = np.maximum(x, 0) - x * target + np.log1p(np.exp(-np.abs(x)))
            slope = _sigmoid(x) - target
        else:
            p, inside = _clipped(x)
            per_value = -(target * np.log(p) + (1 - target) * np.log(1 - p))
            slope = (-target / p + (1 - target) / (1 - p)) * inside
        width = x.shape[-1]

        def backward(d: np.ndarray) -> np.ndarray:
            return _class_axis_back(slope * (d[..., None] / width), self.axis)

        return np.mean(per_value, axis=-1), backward, None


class CategoricalCrossentropy(LossSpec):
    """`-sum(t log p)` over `axis` with one-hot (or soft) targets; `label_smoothing`:
    `t (1 - s) + s / num_classes`, num_classes being the last axis's size as in Keras."""

    type: Literal["categorical_crossentropy", "CategoricalCrossentropy"] = (
        "categorical_crossentropy"
    )
    from_logits: bool = False
    label_smoothing: Smoothing = 0.0
    axis: Annotated[int, Strict()] = -1

    def entries(self, y_true, y_pred):
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        if y_true.shape != y_pred.shape:
            raise DataError(
                f"categorical_crossentropy needs one-hot targets shaped like the predictions "
                f"{y_pred.shape}; received {y_true.shape}",
                hint="for integer class labels use sparse_categorical_crossentropy",
            )
        if self.label_smoothing:
            classes = y_true.shape[-1]
            y_true = y_true * (1.0 - self.label_smoothing) + self.label_smoothing / classes
        target, x = _class_axis_last(y_true, self.axis), _class_axis_last(y_pred, self.axis)
        if self.from_logits:
            log_prob, prob = _log_softmax(x)
            # d/dz of -sum(t log softmax(z)) is softmax(z) sum(t) - t (sum(t) = 1 when one-hot).
            slope = prob * np.sum(target, axis=-1, keepdims=True) - target
            return -np.sum(target * log_prob, axis=-1), self._back(slope), None
        total = np.sum(x, axis=-1, keepdims=True)
        q, inside = _clipped(x / total)
        d_q = -target / q * inside
        # Back through q = x / total: d/dx = (d_q - sum(d_q x / total)) / total.
        slope = (d_q - np.sum(d_q * x / total, axis=-1, keepdims=True)) / total
        return -np.sum(target * np.log(q), axis=-1), self._back(slope), None

    def _back(self, slope: np.ndarray) -> Backward:
        return lambda d: _class_axis_back(slope * d[..., None], self.axis)


class SparseCategoricalCrossentropy(LossSpec):
    """Categorical crossentropy with integer labels (int or integral float, shape `(N,)` or
    `(N, 1)`, or the predictions' shape without `axis`); `ignore_class` entries are masked."""

    type: Literal["sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"] = (
        "sparse_categorical_crossentropy"
    )
    from_logits: bool = False
    ignore_class: Annotated[int, Strict()] | None = None
    axis: Annotated[int, Strict()] = -1

    def entries(self, y_true, y_pred):
        labels, valid = self._labels(y_true, y_pred)
        x = _class_axis_last(y_pred, self.axis)
        index = labels[..., None]
        if self.from_logits:
            log_prob, prob = _log_softmax(x)
            values = -np.take_along_axis(log_prob, index, axis=-1)[..., 0]

            def backward(d: np.ndarray) -> np.ndarray:
                grad = prob * d[..., None]
                np.put_along_axis(grad, index, np.take_along_axis(grad, index, -1) - d[..., None],
                                  axis=-1)
                return _class_axis_back(grad, self.axis)
        else:
            total = np.sum(x, axis=-1, keepdims=True)
            q_label, inside = _clipped(np.take_along_axis(x / total, index, axis=-1)[..., 0])
            values = -np.log(q_label)
            p_label = np.take_along_axis(x, index, axis=-1)

            def backward(d: np.ndarray) -> np.ndarray:
                d_q = (-d / q_label * inside)[..., None]
                grad = np.broadcast_to(-d_q * p_label / np.square(total), x.shape).copy()
                np.put_along_axis(grad, index, np.take_along_axis(grad, index, -1) + d_q / total,
                                  axis=-1)
                return _class_axis_back(grad, self.axis)
        if valid is not None:
            values = np.where(valid, values, 0)
        return values, backward, valid

    def _labels(self, y_true: np.ndarray, y_pred: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray | None]:
        """Integer labels shaped like `y_pred` without its class axis, checked, and the
        `ignore_class` validity mask."""
        axis = self.axis % y_pred.ndim
        if y_true.ndim == y_pred.ndim and y_true.shape[axis] == 1:
            y_true = np.squeeze(y_true, axis=axis)
        expected = y_pred.shape[:axis] + y_pred.shape[axis + 1:]
        if y_true.shape != expected:
            raise DataError(
                f"sparse_categorical_crossentropy needs one integer label per prediction, shape "
                f"{expected}; received labels of shape {y_true.shape}",
                hint="for one-hot targets use categorical_crossentropy",
            )
        if y_true.dtype.kind == "f":
            whole = np.isfinite(y_true) & (y_true == np.round(y_true))
            if not np.all(whole):
                raise DataError("sparse_categorical_crossentropy labels must be whole numbers")
        labels = y_true.astype(np.int64)
        valid = None if self.ignore_class is None else labels != self.ignore_class
        if valid is not None:
            labels = np.where(valid, labels, 0)
        classes = y_pred.shape[axis]
        bad = (labels < 0) | (labels >= classes)
        if np.any(bad):
            raise DataError(
                f"label {labels[bad].flat[0]} is outside the {classes} classes 0..{classes - 1} "
                "the model predicts"
            )
        return labels, valid


LossModel = (MeanSquaredError | MeanAbsoluteError | Huber | BinaryCrossentropy
             | CategoricalCrossentropy | SparseCategoricalCrossentropy)
Loss = by_name_or_mapping(MeanSquaredError, MeanAbsoluteError, Huber, BinaryCrossentropy,
                          CategoricalCrossentropy, SparseCategoricalCrossentropy)


parse_loss = choice_parser(Loss, get_args(LossModel))
"""A loss spec from `"mse"`, `{type: huber, delta: 2}` or Keras's `{class_name, config}`;
raises pydantic's ValidationError (the spec loader locates it)."""


def loss_and_gradient(spec: LossModel, y_true: Any, y_pred: np.ndarray,
                      mask: np.ndarray | None = None,
                      sample_weight: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """The reduced loss and its gradient with respect to `y_pred` (same shape and dtype).

    `mask` (bool, or 0/1) marks the valid entries of the per-entry losses, i.e. `y_pred`'s shape
    without the class axis, e.g. `(batch, timesteps)` for a sequence output. `sample_weight`
    (one per sample) multiplies each sample's entries, as Keras's `reduce_weighted_values`:
    "sum_over_batch_size" still divides by the number of (valid) entries, not by the weights'
    sum; only "mean_with_sample_weight" divides by the sum of the (masked) weights.
    """
    y_pred = np.asarray(y_pred)
    if y_pred.dtype.kind != "f":
        y_pred = y_pred.astype(np.float32)
    y_true = np.asarray(y_true)
    if not isinstance(spec, SparseCategoricalCrossentropy):
        y_true = y_true.astype(y_pred.dtype, copy=False)
    values, backward, valid = spec.entries(y_true, y_pred)
    weights = _valid_entries(values.shape, mask, valid)
    if weights is None:
        count = values.size
        weights = np.ones_like(values)
    else:
        weights = weights.astype(values.dtype)
        count = np.sum(weights)
    if sample_weight is not None:
        per_sample = np.asarray(sample_weight, values.dtype).reshape(
            (len(values),) + (1,) * (values.ndim - 1))
        weights = weights * per_sample
        if spec.reduction == "mean_with_sample_weight":
            count = np.sum(weights)
    divisor = 1 if spec.reduction == "sum" else count
    if divisor == 0:
        return 0.0, np.zeros_like(y_pred)
    loss = np.sum(values * weights) / divisor
    gradient = backward(weights / values.dtype.type(divisor))
    return float(loss), gradient.reshape(y_pred.shape).astype(y_pred.dtype, copy=False)


def fused_output_activation(spec: LossModel, activation_name: str | None) -> bool:
    """Whether the graph may feed this loss the logits before a final `activation_name`.

    True for (sparse) categorical crossentropy on probabilities after softmax, and binary
    crossentropy on probabilities after sigmoid, when the loss's class axis is the last one
    (the one Keras's softmax normalises). The fused loss is the `from_logits` loss on the
    logits: its gradient is the stable `softmax(z) - y` / `sigmoid(z) - y`, never 0/0.

    Where they differ: the unfused Keras computation clips the probabilities to
    `[1e-7, 1 - 1e-7]`, so each entry's loss saturates at `-log(1e-7) ~= 16.12` and its
    gradient vanishes once a probability leaves that range; the fused value keeps growing
    (`-log_softmax`) and keeps its gradient. Inside the range they agree to rounding.
    """
    if getattr(spec, "from_logits", True) or spec.axis != -1:
        return False
    if isinstance(spec, CategoricalCrossentropy | SparseCategoricalCrossentropy):
        return activation_name == "softmax"
    return isinstance(spec, BinaryCrossentropy) and activation_name == "sigmoid"


def fused_loss_and_gradient(spec: LossModel, y_true: Any, logits: np.ndarray,
                            mask: np.ndarray | None = None,
                            sample_weight: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """`loss_and_gradient` of the probability loss `spec` composed with the final activation
    `fused_output_activation` allowed, taking the logits and returning `d loss / d logits`."""
    if getattr(spec, "from_logits", True):
        raise ValueError(f"{spec.type} with these arguments has no fused logits form")
    return loss_and_gradient(spec.model_copy(update={"from_logits": True}), y_true, logits, mask,
                             sample_weight)


def align_mask(mask: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A boolean mask broadcast to the entries' `shape`; like Keras, a mask differing from it
    by a trailing axis of 1 (e.g. `(N, 1)` against `(N,)`) is aligned first."""
    mask = np.asarray(mask).astype(bool)
    if mask.ndim == len(shape) + 1 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    elif len(shape) == mask.ndim + 1 and shape[-1] == 1:
        mask = mask[..., None]
    return np.broadcast_to(mask, shape)


def squeeze_or_expand_to_same_rank(y_true: np.ndarray, y_pred: np.ndarray
                                   ) -> tuple[np.ndarray, np.ndarray]:
    """Keras's rule for ranks differing by a trailing axis of 1: expand a rank-1 side, else
    squeeze the longer side."""
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        return (y_true, y_pred[:, None]) if y_pred.ndim == 1 else (y_true[..., 0], y_pred)
    if y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        return (y_true[:, None], y_pred) if y_true.ndim == 1 else (y_true, y_pred[..., 0])
    return y_true, y_pred


def _valid_entries(shape: tuple[int, ...], mask: Any,
                   valid: np.ndarray | None) -> np.ndarray | None:
    """The output mask and the loss's own validity mask combined, or None if neither."""
    if mask is not None:
        mask = align_mask(mask, shape)
    if valid is None:
        return mask
    return valid if mask is None else mask & valid


def _mean_over_last_axis(per_value: np.ndarray, slope: np.ndarray
                         ) -> tuple[np.ndarray, Backward, None]:
    """Entries averaging `per_value` over the last axis; `slope` is d per_value / d y_pred."""
    width = per_value.shape[-1]
    return np.mean(per_value, axis=-1), lambda d: slope * (d[..., None] / width), None


def _same_rank_2d(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """As Keras, then shape-checked; a rank-1 output `(N,)` is treated as `(N, 1)` (the same
    mean, and a `(N,)` mask then means what it says)."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    if y_pred.ndim <= 1:
        y_true, y_pred = y_true.reshape(-1, 1), y_pred.reshape(-1, 1)
    if y_true.shape != y_pred.shape:
        raise DataError(
            f"targets of shape {y_true.shape} do not match the model's output shape {y_pred.shape}"
        )
    return y_true, y_pred


def _class_axis_last(x: np.ndarray, axis: int) -> np.ndarray:
    return x if axis in (-1, x.ndim - 1) else np.moveaxis(x, axis, -1)


def _class_axis_back(x: np.ndarray, axis: int) -> np.ndarray:
    return x if axis in (-1, x.ndim - 1) else np.moveaxis(x, -1, axis)


def _clipped(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities clipped to [eps, 1 - eps], and where the clip passes gradient (inclusive
    bounds, like torch's clamp)."""
    low, high = p.dtype.type(EPSILON), p.dtype.type(1.0 - EPSILON)
    return np.clip(p, low, high), (p >= low) & (p <= high)


def _log_softmax(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    shifted = z - np.max(z, axis=-1, keepdims=True)
    log_prob = shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
    return log_prob, np.exp(log_prob)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # exp of a non-positive number only: no overflow for large |z|.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)
