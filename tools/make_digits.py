"""Convert the UCI 8x8 handwritten digits into `layerctl/datasets/digits.npz` (run once).

The bundled `digits` dataset is the test part of the UCI "Optical Recognition of Handwritten
Digits" data (1,797 images, CC BY 4.0), in the copy scikit-learn ships as
`sklearn/datasets/data/digits.csv.gz`. That file, like UCI's own `optdigits.tes`, has one image per
line: 64 comma-separated integers 0..16 (an 8x8 image, row by row) followed by the class 0..9.

The conversion is exact and documented in `layerctl/datasets/README.md`:

    x = pixels.reshape(1797, 8, 8, 1).astype(float32) / 16     # in [0, 1], channels-last
    y = labels.astype(int64)

scikit-learn is NOT a layerctl dependency. Install it in a scratch environment to get the source
file, then run this script with that environment's Python (it needs only NumPy):

    python3 -m venv /tmp/skl && /tmp/skl/bin/pip install scikit-learn
    /tmp/skl/bin/python tools/make_digits.py                  # finds sklearn's digits.csv.gz
    /tmp/skl/bin/python tools/make_digits.py --source optdigits.tes   # or UCI's own file
    /tmp/skl/bin/python tools/make_digits.py --check          # compare with the committed file

The archive is written byte-for-byte reproducibly (fixed member timestamps, deflate level 9, no
pickles), so `--check` can compare SHA-256 digests of the arrays and of the file.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import io
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

OUTPUT = Path(__file__).resolve().parent.parent / "layerctl" / "datasets" / "digits.npz"
IMAGES, SIDE, LEVELS, CLASSES = 1797, 8, 16, 10


def sklearn_source() -> Path:
    """The path of scikit-learn's digits.csv.gz, found without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        sys.exit("scikit-learn is not installed here; pass --source FILE (see this script's help)")
    return Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"


def read_source(source: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and verify the integer pixels (1797, 64) and labels (1797,) from the source file."""
    opener = gzip.open if source.suffix == ".gz" else open
    with opener(source, "rt", encoding="ascii") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.int64, ndmin=2)
    if table.shape != (IMAGES, SIDE * SIDE + 1):
        sys.exit(f"{source}: expected {IMAGES} rows of 65 integers, found shape {table.shape}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > LEVELS:
        sys.exit(f"{source}: pixel values outside 0..{LEVELS}")
    if set(np.unique(labels).tolist()) != set(range(CLASSES)):
        sys.exit(f"{source}: labels are not the classes 0..{CLASSES - 1}")
    return pixels, labels


def convert(pixels: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """The documented transformation: channels-last float32 images in [0, 1], int64 labels."""
    # Dividing by a power of two is exact in float32, so the values are k/16 exactly.
    x = pixels.reshape(IMAGES, SIDE, SIDE, 1).astype(np.float32) / np.float32(LEVELS)
    y = labels.astype(np.int64)
    return {"x": np.ascontiguousarray(x), "y": np.ascontiguousarray(y)}


def archive_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A compressed .npz archive with fixed timestamps, so the same arrays give the same bytes."""
    payload = io.BytesIO()
    with zipfile.ZipFile(payload, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, array, version=(1, 0), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue(), compresslevel=9)
    return payload.getvalue()


def digests(arrays: dict[str, np.ndarray], data: bytes) -> dict[str, str]:
    """SHA-256 of each array's raw little-endian C-order bytes, and of the archive file."""
    found = {f"{name} bytes": hashlib.sha256(a.astype(a.dtype.newbyteorder("<")).tobytes())
             for name, a in arrays.items()}
    found["digits.npz"] = hashlib.sha256(data)
    return {name: digest.hexdigest() for name, digest in found.items()}


def cross_check_with_sklearn(arrays: dict[str, np.ndarray]) -> None:
    """When scikit-learn is importable, confirm the arrays equal `load_digits()` scaled by 1/16."""
    if importlib.util.find_spec("sklearn") is None:
        return
    from sklearn.datasets import load_digits

    bunch = load_digits()
    expected = (bunch.images / LEVELS).reshape(IMAGES, SIDE, SIDE, 1)
    if not (np.array_equal(arrays["x"], expected) and np.array_equal(arrays["y"], bunch.target)):
        sys.exit("the conversion does not match sklearn.datasets.load_digits()")
    print("matches sklearn.datasets.load_digits() (images / 16, target)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="digits.csv.gz or UCI optdigits.tes")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    options = parser.parse_args()

    source = options.source or sklearn_source()
    print(f"source: {source}  sha256 {hashlib.sha256(source.read_bytes()).hexdigest()}")
    arrays = convert(*read_source(source))
    cross_check_with_sklearn(arrays)
    data = archive_bytes(arrays)
    for name, digest in digests(arrays, data).items():
        print(f"{name:12} sha256 {digest}")
    if options.check:
        same = options.output.exists() and options.output.read_bytes() == data
        print(f"{options.output}: {'identical' if same else 'DIFFERS'}")
        sys.exit(0 if same else 1)
    temporary = options.output.with_name(f".{options.output.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, options.output)
    print(f"wrote {options.output} ({len(data):,} bytes)")


if __name__ == "__main__":
    main()
