"""Add token positions to a padded-text archive, for models with a position Embedding.

`layerctl pad` writes `x` (padded ids, one row per sample) and `y`. A transformer adds a learned
embedding of each token's position (0, 1, ..., maxlen − 1), fed as a second model input; a
model with several inputs reads them from the `.npz` by input name. This writes a copy of the
archive with `x` renamed to `tokens` and a `positions` array of the same shape (every row
0..maxlen − 1, int32), every other array unchanged:

    layerctl pad --dataset languages --level char --maxlen 16 -o lang.npz
    python tools/add_positions.py lang.npz -o lang_positions.npz

`specs/transformer_text.yaml` reads `lang_positions.npz`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def with_positions(arrays: dict[str, np.ndarray], tokens: str = "tokens",
                   positions: str = "positions") -> dict[str, np.ndarray]:
    """The arrays with `x` renamed to `tokens` and `positions` (0..maxlen − 1 per row) added."""
    x = arrays["x"]
    out = {tokens if key == "x" else key: value for key, value in arrays.items()}
    out[positions] = np.broadcast_to(np.arange(x.shape[1], dtype=np.int32), x.shape).copy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path, help="a .npz written by `layerctl pad`")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the .npz to write")
    args = parser.parse_args()
    with np.load(args.archive, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    np.savez_compressed(args.output, **with_positions(arrays))


if __name__ == "__main__":
    main()
