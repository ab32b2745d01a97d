"""Opening array files safely: existence, format sniffing, and .npy/.npz reading without pickles.

Every array layerctl reads goes through `read_npy` or `read_npz`, which always pass
`allow_pickle=False` (a pickle can run code; an object array is refused with a clear message).
Before NumPy sees a file its first bytes are checked, so a CSV renamed to `.npz` says so instead
of NumPy's "Cannot load file containing pickled data".
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from layerctl.errors import DataError, did_you_mean
from layerctl.inputs import refuse_special
from layerctl.memory import NPZ_DAMAGE

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK"
PICKLE_HINT = "layerctl never loads pickles; save numeric arrays (np.save / np.savez)"


def display_path(base_dir: str | os.PathLike, path: str) -> tuple[Path, str]:
    """(the path to open, the name messages use) for `path` relative to `base_dir`."""
    resolved = Path(base_dir) / Path(path).expanduser()
    return resolved, str(resolved)


def existing_file(path: Path, display: str) -> Path:
    """`path` when it is a readable file; DataError naming what is there instead."""
    if path.is_file():
        return path
    if path.is_dir():
        raise DataError(f"{display} is a folder, not a data file")
    refuse_special(path, DataError, display)
    from layerctl.suggest import missing_file_hint

    raise DataError(f"{display}: file not found", hint=missing_file_hint(path), code="LC301")


def describe_content(head: bytes) -> str:
    """What the first bytes of a file look like, for 'it looks like ...' messages."""
    if not head:
        return "an empty file"
    if head.startswith(NPY_MAGIC):
        return "a .npy array"
    if head.startswith(ZIP_MAGIC):
        return "a zip archive (.npz)"
    if head[:1] == b"\x80":
        return "a Python pickle"
    if head.startswith(b"\x1f\x8b"):
        return "gzip-compressed data"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data"
    return "text"


def expect_format(path: Path, display: str, magic: bytes, what: str) -> None:
    """DataError unless the file starts with `magic` (what = '.npy array', '.npz archive')."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    if not head.startswith(magic):
        raise DataError(f"{display} is not a {what}; it looks like {describe_content(head)}")


def _refuse_objects(error: ValueError, display: str, what: str) -> DataError:
    text = str(error)
    if "object" in text.lower() or "pickle" in text.lower():
        return DataError(f"{display}: {what} holds Python objects (a pickle)", hint=PICKLE_HINT)
    return DataError(f"{display}: {what} could not be read: {text}")


def read_npy(path: Path, display: str, mmap: bool = True) -> np.ndarray:
    """The array in a .npy file, memory-mapped read-only when `mmap` (it is read on demand)."""
    existing_file(path, display)
    expect_format(path, display, NPY_MAGIC, ".npy array")
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as error:
        raise _refuse_objects(error, display, "the array") from None
    except (OSError, EOFError) as error:
        raise DataError(f"{display} is a damaged .npy file: {error}") from None
    return check_numeric(array, display, "the array")


def npz_keys(path: Path, display: str) -> list[str]:
    """The array names in an .npz archive (without reading any array)."""
    existing_file(path, display)
    expect_format(path, display, ZIP_MAGIC, ".npz archive")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return list(archive.files)
    except (*NPZ_DAMAGE, OSError) as error:
        raise DataError(f"{display} is a damaged .npz archive: {error}") from None


def missing_key(display: str, key: str, keys: list[str], role: str) -> DataError:
    """The error for an absent key, listing the keys present."""
    close = did_you_mean(key, keys)
    listing = "keys present: " + (", ".join(f"'{k}'" for k in keys) or "none")
    return DataError(f"{display} has no array '{key}' ({role})",
                     hint=f"{close} {listing}" if close else listing)


def read_npz(path: Path, display: str, key: str, role: str = "the inputs") -> np.ndarray:
    """One array of an .npz archive (an .npz member cannot be memory-mapped: it is read whole)."""
    keys = npz_keys(path, display)
    if key not in keys:
        raise missing_key(display, key, keys, role)
    what = f"array '{key}'"
    from layerctl.memory import npz_member_fits

    npz_member_fits(path, key, DataError, display)  # before inflating: a bomb is refused
    try:
        with np.load(path, allow_pickle=False) as archive:
            array = archive[key]
    except ValueError as error:
        raise _refuse_objects(error, display, what) from None
    except (*NPZ_DAMAGE, OSError) as error:
        raise DataError(f"{display}: {what} is damaged: {error}") from None
    return check_numeric(array, display, what)


def check_numeric(array: np.ndarray, display: str, what: str) -> np.ndarray:
    """`array` when it holds numbers (bool, int, float) along a sample axis; else DataError."""
    kind = array.dtype.kind
    if kind in "OV" and array.dtype.hasobject:
        raise DataError(f"{display}: {what} holds Python objects (a pickle)", hint=PICKLE_HINT)
    if kind not in "biuf":
        names = {"U": "text", "S": "bytes", "c": "complex numbers", "V": "structured records",
                 "M": "dates", "m": "time spans"}
        raise DataError(f"{display}: {what} holds {names.get(kind, 'non-numbers')} "
                        f"(dtype {array.dtype}); expected numbers")
    if array.ndim == 0:
        raise DataError(f"{display}: {what} is a single number; expected one row per sample")
    if len(array) == 0:
        raise DataError(f"{display}: {what} has no samples (shape {array.shape})")
    return array
