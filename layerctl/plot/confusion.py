"""Confusion matrices for the classification outputs of a model, and per-class scores.

An output is a classification when its loss is a crossentropy: sparse (integer labels) or
categorical (one-hot) over the last axis, or binary with one unit (two classes, threshold 0.5
on probabilities, 0 on logits). Sequence outputs count every position. Vectorized: one
`bincount` per matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CROSSENTROPIES = ("SparseCategoricalCrossentropy", "CategoricalCrossentropy",
                  "BinaryCrossentropy")


def classification_outputs(compile_spec, plan) -> dict[str, Any]:
    """{output reference: its loss} for the outputs a confusion matrix describes."""
    from layerctl.training.outputs import per_output

    chosen = {}
    for out in per_output(compile_spec, plan.outputs):
        kind = type(out.loss).__name__
        if kind not in CROSSENTROPIES:
            continue
        if kind == "BinaryCrossentropy" and plan.shape_of(out.ref)[-1] != 1:
            continue  # multi-label: one matrix per label would be another picture
        chosen[out.ref] = out.loss
    return chosen


def confusion_matrix(loss, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Counts [true class, predicted class] (int64)."""
    kind = type(loss).__name__
    if kind == "BinaryCrossentropy":
        classes = 2
        threshold = 0.0 if loss.from_logits else 0.5
        predicted = (y_pred.reshape(-1) > threshold).astype(np.int64)
        true = (np.asarray(y_true).reshape(-1) > 0.5).astype(np.int64)
    else:
        classes = y_pred.shape[-1]
        predicted = y_pred.reshape(-1, classes).argmax(axis=-1)
        if kind == "CategoricalCrossentropy":
            true = np.asarray(y_true).reshape(-1, classes).argmax(axis=-1)
        else:
            true = np.asarray(y_true).reshape(-1).astype(np.int64)
    keep = (true >= 0) & (true < classes)  # ignore_class and padding labels stay out
    counts = np.bincount(true[keep] * classes + predicted[keep], minlength=classes * classes)
    return counts.reshape(classes, classes)


def per_class_scores(matrix: np.ndarray) -> list[dict[str, float]]:
    """Precision, recall, F1 and support per class (0 where undefined, as scikit-learn's
    `zero_division=0`)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    hits = np.diag(matrix)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, hits / predicted, 0.0)
        recall = np.where(actual > 0, hits / actual, 0.0)
        f1 = np.where(precision + recall > 0,
                      2 * precision * recall / (precision + recall), 0.0)
    return [{"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for p, r, f, s in zip(precision, recall, f1, actual, strict=True)]


def confusions(graph, compile_spec, dataset, batch_size: int = 128) -> dict[str, list]:
    """{output: confusion matrix as nested lists} of `graph` on `dataset` (inference mode)."""
    outputs = classification_outputs(compile_spec, graph.plan)
    if not outputs or dataset is None:
        return {}
    predicted = graph.predict(dataset.x, batch_size)
    if not isinstance(predicted, dict):
        predicted = {graph.plan.output: predicted}
    targets = dataset.y if isinstance(dataset.y, dict) else {graph.plan.output: dataset.y}
    return {ref: confusion_matrix(loss, targets[ref], predicted[ref]).tolist()
            for ref, loss in outputs.items() if ref in targets}
