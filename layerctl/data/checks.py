"""Does the data fit the model? Shapes and dtypes checked before the first training step.

`check_against_model` compares a Dataset with the model's input and output (shapes include the
batch axis, None where unknown) and the loss, and raises one DataError with one line per
mismatch, each saying both shapes and the usual fix. Label rules follow Keras 3's losses
(keras/src/losses/loss.py `squeeze_or_expand_to_same_rank`, and the backends' sparse
crossentropy): dense losses accept labels equal to the output after dropping or adding one
trailing axis of size 1; sparse categorical crossentropy takes class ids shaped like the output
without its class axis (or with a trailing 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import DTypeLike

from layerctl.config import snake_case
from layerctl.data.loading import Dataset
from layerctl.errors import DataError, Problem

Shape = Sequence[int | None]
SCAN_ELEMENTS = 1 << 22  # values examined per step, so memory-mapped data is never copied whole
LOSS_ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error",
                "bce": "binary_crossentropy", "huber_loss": "huber"}


def shape_text(shape: Shape) -> str:
    """`(N, 8, 8, 1)` for a model shape (batch axis N, unknown sizes ?), `(1797, 64)` for data."""
    dims = ["?" if d is None else str(d) for d in shape]
    if dims and shape[0] is None:
        dims[0] = "N"
    return f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"


def fits(actual: Sequence[int], expected: Shape) -> bool:
    """Whether a per-sample shape matches a model shape (None matches any size)."""
    if len(actual) != len(expected):
        return False
    return all(e is None or a == e for a, e in zip(actual, expected, strict=True))


def first_where(array: np.ndarray, bad: Callable[[np.ndarray], np.ndarray]) -> int | None:
    """Index of the first sample with any value where `bad(values)` is true, scanning in blocks."""
    rows = max(1, SCAN_ELEMENTS // max(1, int(np.prod(array.shape[1:]))))
    for start in range(0, len(array), rows):
        block = np.asarray(array[start:start + rows])
        hits = bad(block).reshape(len(block), -1).any(axis=1)
        if hits.any():
            return start + int(np.argmax(hits))
    return None


def _value_at(array: np.ndarray, sample: int, bad: Callable[[np.ndarray], np.ndarray]) -> str:
    row = np.asarray(array[sample])
    value = row[bad(row)].flat[0] if row.ndim else row
    return f"{value.item():g}" if np.asarray(value).dtype.kind == "f" else str(value)


def check_against_model(
    dataset: Dataset,
    input_shape: Shape,
    input_dtype: DTypeLike,
    output_shape: Shape,
    loss_name: str | None,
    *,
    ignore_class: int | None = None,
    inputs_checked: bool = False,
) -> None:
    """Raise DataError (one problem per mismatch) unless `dataset` fits the model.

    `input_shape`/`output_shape` include the batch axis (`(None, 8, 8, 1)`); `input_dtype` is
    the dtype the first layer takes (integer for Embedding); `loss_name` is a Keras loss name or
    alias (None skips the label checks); `ignore_class` is sparse crossentropy's.
    """
    problems = ([] if inputs_checked else
                _input_problems(dataset, tuple(input_shape), np.dtype(input_dtype)))
    if loss_name is not None:
        loss = snake_case(loss_name)
        loss = LOSS_ALIASES.get(loss, loss)
        problems += _label_problems(dataset, tuple(output_shape), loss, ignore_class)
    if problems:
        raise DataError(problems=problems)


def _input_problems(dataset: Dataset, expected: Shape, dtype: np.dtype) -> list[Problem]:
    x, name = dataset.x, dataset.name
    problems = []
    if not fits(x.shape[1:], expected[1:]):
        problems.append(Problem(
            f"{name}: x has shape {shape_text(x.shape)} but the model's input is "
            f"{shape_text(expected)}", hint=_reshape_hint(x.shape, expected), code="LC303"))
    if x.dtype.kind not in "biuf":
        problems.append(Problem(f"{name}: x has dtype {x.dtype}; expected numbers", code="LC303"))
    elif dtype.kind in "iu" and x.dtype.kind == "f":
        bad = first_where(x, lambda v: ~np.isfinite(v) | (v != np.round(v)))
        if bad is not None:
            value = _value_at(x, bad, lambda v: ~np.isfinite(v) | (v != np.round(v)))
            problems.append(Problem(
                f"{name}: x holds {value} at sample {bad}, but the model's input takes integer "
                f"ids ({dtype})", hint="token ids must be whole numbers", code="LC303"))
    elif x.dtype.kind == "f":
        bad = first_where(x, lambda v: ~np.isfinite(v))
        if bad is not None:
            value = _value_at(x, bad, lambda v: ~np.isfinite(v))
            problems.append(Problem(f"{name}: x holds {value} at sample {bad}",
                                    hint="inputs must be finite numbers", code="LC303"))
    return problems


def _reshape_hint(actual: Sequence[int], expected: Shape) -> str:
    dims = expected[1:]
    if None not in dims and tuple(actual[1:]) == tuple(dims[:-1]) and dims[-1] == 1:
        return "add a channel axis: x[..., None]"
    if None not in dims and int(np.prod(actual[1:])) == int(np.prod(dims)):
        return f"reshape it: x.reshape(-1, {', '.join(str(d) for d in dims)})"
    return (f"set input_shape: [{', '.join(str(d) for d in actual[1:])}] in the spec, "
            "or reshape the data")


def _label_problems(
    dataset: Dataset, output: Shape, loss: str, ignore_class: int | None
) -> list[Problem]:
    y, name = dataset.y, dataset.name
    if y is None:
        return [Problem(f"{name}: there are no labels, and the loss {loss} needs them",
                        code="LC303")]
    if y.dtype.kind not in "biuf":
        return [Problem(f"{name}: labels have dtype {y.dtype}; expected numbers", code="LC303")]
    if len(y) != len(dataset.x):
        return [Problem(f"{name}: x has {len(dataset.x)} samples but y has {len(y)}", code="LC303")]
    if loss == "sparse_categorical_crossentropy":
        return _sparse_problems(y, name, output, ignore_class)
    labels = tuple(y.shape)
    if not (fits(labels[1:], output[1:]) or _one_axis_apart(labels, output)):
        hint = None
        if loss == "categorical_crossentropy" and _class_ids_shape(labels, output):
            kind, hint = "one-hot ", "use sparse_categorical_crossentropy or one-hot labels"
        else:
            kind = ""
        return [Problem(f"{name}: labels have shape {shape_text(labels)} but {loss} expects "
                        f"{kind}{shape_text(output)}", hint=hint or "match the model's output",
                        code="LC303")]
    if loss == "binary_crossentropy" and y.dtype.kind != "b":
        bad = first_where(y, lambda v: (v < 0) | (v > 1) | np.isnan(v))
        if bad is not None:
            value = _value_at(y, bad, lambda v: (v < 0) | (v > 1) | np.isnan(v))
            return [Problem(f"{name}: label {value} at sample {bad} is outside [0, 1], which "
                            "binary_crossentropy expects",
                            hint="for class ids use sparse_categorical_crossentropy and softmax",
                            code="LC303")]
    return []


def _one_axis_apart(labels: Sequence[int], output: Shape) -> bool:
    """Keras squeezes or adds one trailing axis of size 1 when the ranks differ by one."""
    if len(labels) == len(output) + 1 and labels[-1] == 1:
        return fits(labels[1:-1], output[1:])
    if len(output) == len(labels) + 1 and output[-1] == 1:
        return fits(labels[1:], output[1:-1])
    return False


def _class_ids_shape(labels: Sequence[int], output: Shape) -> bool:
    with_trailing_one = tuple(labels[-1:]) == (1,) and fits(labels[1:-1], output[1:-1])
    return fits(labels[1:], output[1:-1]) or with_trailing_one


def _sparse_problems(
    y: np.ndarray, name: str, output: Shape, ignore_class: int | None
) -> list[Problem]:
    labels, classes = tuple(y.shape), output[-1]
    if not _class_ids_shape(labels, output):
        if fits(labels[1:], output[1:]):
            return [Problem(f"{name}: labels have shape {shape_text(labels)} (one-hot) but "
                            f"sparse_categorical_crossentropy expects class ids "
                            f"{shape_text(output[:-1])}",
                            hint="use categorical_crossentropy, or class ids: y.argmax(-1)",
                            code="LC303")]
        return [Problem(f"{name}: labels have shape {shape_text(labels)} but "
                        f"sparse_categorical_crossentropy expects class ids "
                        f"{shape_text(output[:-1])} for outputs {shape_text(output)}",
                        code="LC303")]
    if y.dtype.kind == "b":
        return []
    top = "?" if classes is None else classes - 1

    def bad(v: np.ndarray) -> np.ndarray:
        wrong = ~np.isfinite(v) | (v != np.round(v)) | (v < 0)
        if classes is not None:
            wrong |= v >= classes
        return wrong if ignore_class is None else wrong & (v != ignore_class)

    sample = first_where(y, bad)
    if sample is None:
        return []
    value = _value_at(y, sample, bad)
    whole = value.lstrip("-").isdigit()
    what = (f"is out of range for {classes} classes" if whole and classes is not None
            else "is not a class id")
    return [Problem(f"{name}: label {value} at sample {sample} {what} (0..{top})",
                    hint="sparse labels are whole numbers from 0 to classes - 1", code="LC303")]
