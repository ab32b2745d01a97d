"""Datasets shipped inside layerctl, loaded by name (`train: {data: {dataset: digits}}`).

Each dataset is a compressed `.npz` (no pickles) beside this module, documented with its source,
licence and exact transformation in README.md here. `LOADERS` maps a name to a function returning
`(x, y)`; registering another dataset is one line in that dict.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

import numpy as np

from layerctl.errors import DataError, did_you_mean


def _from_npz(filename: str) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """A loader reading arrays `x` and `y` from `filename` in this package."""

    def load_arrays() -> tuple[np.ndarray, np.ndarray]:
        with resources.as_file(resources.files(__package__) / filename) as path:
            with np.load(path, allow_pickle=False) as archive:
                return archive["x"], archive["y"]

    return load_arrays


LOADERS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    # UCI 8x8 handwritten digits: x float32 (1797, 8, 8, 1) in [0, 1], y int64 (1797,) in 0..9.
    "digits": _from_npz("digits.npz"),
}


def available() -> list[str]:
    """The names of the bundled datasets, sorted."""
    return sorted(LOADERS)


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The arrays `(x, y)` of the bundled dataset `name` (fresh copies, safe to modify).

    Raises DataError for an unknown name, with a did-you-mean and the list of names.
    """
    if name not in LOADERS:
        hint = did_you_mean(name, LOADERS)
        listing = f"available: {', '.join(available())}"
        raise DataError(
            f"unknown dataset '{name}'", hint=f"{hint} {listing}" if hint else listing
        )
    return LOADERS[name]()
