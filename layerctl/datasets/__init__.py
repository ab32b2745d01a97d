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


def _digits_two_heads() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The digits for a model with two inputs and two outputs: the image and a small feature
    vector (each row's mean ink) in; the digit and whether it is even out."""
    x, y = LOADERS["digits"]()
    inputs = {"image": x, "row_ink": x.mean(axis=(2, 3)).astype(np.float32)}
    return inputs, {"digit": y, "even": (y % 2 == 0).astype(np.float32)[:, None]}


def _digits_pairs() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Pairs of digit images for a siamese model: `left`, `right` and whether they show the
    same digit (half of the pairs do), drawn with a fixed seed, so always the same pairs."""
    x, y = LOADERS["digits"]()
    rng = np.random.default_rng(0)
    left = rng.permutation(len(x))
    by_digit = [np.flatnonzero(y == d) for d in range(10)]
    same = np.arange(len(x)) % 2 == 0
    right = rng.permutation(len(x))
    for i in np.flatnonzero(same):
        right[i] = rng.choice(by_digit[y[left[i]]])
    target = (y[left] == y[right]).astype(np.float32)[:, None]
    return {"left": x[left], "right": x[right]}, target


def _digits_reconstruct() -> tuple[np.ndarray, np.ndarray]:
    """The digit images as both inputs and targets, for autoencoders."""
    x, _ = LOADERS["digits"]()
    return x, x.copy()


def _reverse_sequences() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A sequence-to-sequence task: reverse 2,000 sequences of 6 tokens 1..10 (0 is padding,
    11 the start token). Inputs `source` and `target_in` (the start token, then the reversed
    sequence shifted right: teacher forcing); output `y`, the reversed sequence. Drawn with a
    fixed seed, so always the same."""
    rng = np.random.default_rng(0)
    source = rng.integers(1, 11, size=(2000, 6))
    target = source[:, ::-1].copy()
    target_in = np.concatenate([np.full((2000, 1), 11), target[:, :-1]], axis=1)
    return {"source": source, "target_in": target_in}, target


Arrays = np.ndarray | dict[str, np.ndarray]
LOADERS: dict[str, Callable[[], tuple[Arrays, Arrays]]] = {
    # UCI 8x8 handwritten digits: x float32 (1797, 8, 8, 1) in [0, 1], y int64 (1797,) in 0..9.
    "digits": _from_npz("digits.npz"),
    # derived from digits (README.md here): inputs image, row_ink; outputs digit, even
    "digits_two_heads": _digits_two_heads,
    # derived from digits: inputs left, right; output 1.0 when both show the same digit
    "digits_pairs": _digits_pairs,
    # derived from digits: the images as inputs and as targets (autoencoders)
    "digits_reconstruct": _digits_reconstruct,
    # synthetic: reverse sequences of 6 tokens (a seq2seq task); inputs source, target_in
    "reverse_sequences": _reverse_sequences,
}


def available() -> list[str]:
    """The names of the bundled datasets, sorted."""
    return sorted(LOADERS)


def load(name: str) -> tuple[Arrays, Arrays]:
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
