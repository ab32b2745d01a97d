"""Splitting off validation data and cutting an epoch into batches, with Keras's semantics.

`split_validation` follows Keras's `validation_split`
(keras/src/trainers/data_adapters/array_slicing.py, `train_validation_split`): the split point is
`floor(n * (1 - fraction))` and the validation samples are the LAST ones, taken before any
shuffling; a split leaving either side empty is an error. `batches` follows Keras's array
adapter: one permutation per epoch when shuffling, and the last partial batch is kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from layerctl.data.loading import Dataset
from layerctl.errors import DataError


def split_validation(
    dataset: Dataset, fraction: float, seed: int | None = None
) -> tuple[Dataset, Dataset]:
    """(train, validation): validation is the last `fraction` of the samples, like Keras.

    `seed=None` (what `validation: {split: f}` means) keeps Keras's order exactly. An integer
    seed first permutes the samples with `np.random.default_rng(seed)`, for data sorted by class;
    Keras has no such option.
    """
    if not 0.0 < fraction < 1.0:
        raise DataError(f"validation split must be between 0 and 1 (exclusive), got {fraction}")
    count = len(dataset)
    split_at = int(math.floor(count * (1.0 - fraction)))
    if split_at in (0, count):
        raise DataError(
            f"{dataset.name}: {count} samples are too few to split off a validation fraction "
            f"of {fraction}", hint="use more data, another fraction, or `validation: {path: ...}`"
        )
    x, y, weights = dataset.x, dataset.y, dataset.sample_weight
    if seed is not None:
        order = np.random.default_rng(seed).permutation(count)
        x = _rows(x, order)
        y = None if y is None else _rows(y, order)
        weights = None if weights is None else weights[order]
    head, tail = slice(None, split_at), slice(split_at, None)
    train = Dataset(_rows(x, head), None if y is None else _rows(y, head), dataset.name,
                    None if weights is None else weights[head])
    validation = Dataset(_rows(x, tail), None if y is None else _rows(y, tail),
                         f"{dataset.name} (validation split)",
                         None if weights is None else weights[tail])
    return train, validation


def _rows(data, index):
    """Rows of an array, or of each array of {name: array} (several inputs or outputs)."""
    return {k: v[index] for k, v in data.items()} if isinstance(data, dict) else data[index]


def batches(
    count: int, batch_size: int, shuffle: bool = False, rng: np.random.Generator | None = None
) -> Iterator[np.ndarray]:
    """Index arrays covering `range(count)` once, `batch_size` at a time; the last may be short.

    With `shuffle`, the order is `rng.permutation(count)`, drawn when `batches` is called (not
    on the first iteration), so the same Generator state gives the same batches.
    """
    if batch_size < 1:
        raise DataError(f"batch_size must be a positive integer, got {batch_size}")
    if shuffle:
        if rng is None:
            raise ValueError("batches(shuffle=True) needs a numpy Generator")
        order = rng.permutation(count)
    else:
        order = np.arange(count)
    return (order[start:start + batch_size] for start in range(0, count, batch_size))
