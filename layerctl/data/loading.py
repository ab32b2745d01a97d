"""From a data source (spec `train.data`, `train.validation`, or `--data`) to arrays in memory.

`load_dataset` turns any of the four source forms into a `Dataset(x, y, name)`; every problem is
a one-line DataError naming the file and what was expected. `.npy` files are memory-mapped
read-only (rows are read when a batch needs them); `.npz` members and CSV files are read whole.
Arrays keep the dtype they were saved with (CSV gives float64 inputs, and int64 labels when they
are all whole numbers); `check_against_model` decides whether they fit the model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from layerctl import datasets
from layerctl.data import csvfile
from layerctl.data.files import (
    NPY_MAGIC,
    ZIP_MAGIC,
    describe_content,
    display_path,
    existing_file,
    missing_key,
    npz_keys,
    read_npy,
    read_npz,
)
from layerctl.data.sources import (
    ArchiveData,
    ArrayPairData,
    BundledData,
    CsvData,
    SourceModel,
    parse_data_source,
)
from layerctl.errors import DataError

LABELS_HINT = "give labels as {x: X.npy, y: Y.npy} or in an .npz: np.savez(FILE, x=x, y=y)"


@dataclass(frozen=True, eq=False)
class Dataset:
    """Inputs `x` (samples first), labels `y` (None when there are none), and a display name.

    A model with several inputs (outputs) has `x` (`y`) as {input (output) name: array}."""

    x: np.ndarray | dict[str, np.ndarray]
    y: np.ndarray | dict[str, np.ndarray] | None
    name: str
    sample_weight: np.ndarray | None = None  # one loss weight per sample (Keras's sample_weight)

    def __len__(self) -> int:
        first = next(iter(self.x.values())) if isinstance(self.x, dict) else self.x
        return int(first.shape[0])


def load_dataset(
    source: SourceModel | str | dict[str, Any],
    base_dir: str | os.PathLike = ".",
    *,
    require_labels: bool = True,
    inputs: tuple[str, ...] = ("input",),
    outputs: tuple[str, ...] = ("output",),
) -> Dataset:
    """Load `source`; relative paths resolve against `base_dir` (the spec's folder, or the
    current directory for `--data`). With `require_labels`, a source without labels is an error;
    without it (predict-style inputs) `y` may be None.
    """
    if not isinstance(source, BundledData | ArchiveData | CsvData | ArrayPairData):
        source = parse_data_source(source)
    if isinstance(source, BundledData):
        x, y = datasets.load(source.dataset)
        if isinstance(x, dict) or isinstance(y, dict) or len(inputs) > 1 or len(outputs) > 1:
            return _bundled_named(source.dataset, x, y, inputs, outputs)
    elif len(inputs) > 1 or len(outputs) > 1:
        return _load_named(source, base_dir, require_labels, inputs, outputs)
    if isinstance(source, BundledData):
        name = source.dataset  # x, y loaded above
    elif isinstance(source, CsvData):
        path, name = display_path(base_dir, source.path)
        existing_file(path, name)
        x, y = csvfile.load_csv(path, name, source.label, require_labels)
    elif isinstance(source, ArrayPairData):
        x, y, name = _load_pair(source, base_dir, require_labels)
    else:
        x, y, name = _load_archive(source, base_dir, require_labels)
    if y is not None and len(y) != len(x):
        raise DataError(f"{name}: x has {len(x)} samples but y has {len(y)}",
                        hint="inputs and labels need one row per sample")
    return Dataset(x=x, y=y, name=name)


def _bundled_named(name: str, x: Any, y: Any, inputs: tuple[str, ...],
                   outputs: tuple[str, ...]) -> Dataset:
    """A bundled dataset with named arrays, matched to the model's input and output names."""

    def match(arrays: Any, names: tuple[str, ...], role: str) -> Any:
        if not isinstance(arrays, dict):
            if len(names) == 1:
                return arrays
            raise DataError(f"the bundled dataset '{name}' has one array of {role}, but the "
                            f"model has {len(names)}: {', '.join(names)}")
        if len(names) == 1 and names[0] not in arrays:
            raise DataError(f"the bundled dataset '{name}' has {role} "
                            f"{', '.join(arrays)}; the model's are named {names[0]}",
                            hint=f"name the model's {role} " + ", ".join(arrays))
        missing = [n for n in names if n not in arrays]
        if missing:
            raise DataError(f"the bundled dataset '{name}' has no {role} named "
                            f"{', '.join(missing)}",
                            hint=f"its {role}: " + ", ".join(arrays))
        chosen = {n: arrays[n] for n in names}
        return chosen if len(names) > 1 else chosen[names[0]]

    return Dataset(x=match(x, inputs, "inputs"), y=match(y, outputs, "outputs"), name=name)


def _load_named(source: SourceModel, base_dir: str | os.PathLike, require_labels: bool,
                inputs: tuple[str, ...], outputs: tuple[str, ...]) -> Dataset:
    """A model with several inputs or outputs reads an .npz whose keys are their names (`x`
    and `y` stay the keys of a single input and a single output)."""
    if not isinstance(source, ArchiveData):
        raise DataError("a model with several inputs or outputs reads its data from an .npz "
                        "whose keys are the input and output names: "
                        + ", ".join(inputs + outputs),
                        hint="np.savez(FILE, " + ", ".join(f"{n}=..." for n in inputs + outputs)
                        + ")")
    path, name = display_path(base_dir, source.path)
    keys = npz_keys(path, name)

    def arrays(names: tuple[str, ...], single: str, role: str, required: bool):
        wanted = {n: (single if len(names) == 1 and n not in keys else n) for n in names}
        missing = [key for key in wanted.values() if key not in keys]
        if missing:
            if not required:
                return None
            raise DataError(
                f"{name} lacks the array(s) {', '.join(repr(k) for k in missing)} ({role})",
                hint="expected keys: " + ", ".join(repr(k) for k in wanted.values())
                + "; keys present: " + (", ".join(repr(k) for k in keys) or "none"))
        values = {n: read_npz(path, name, key, role) for n, key in wanted.items()}
        return values if len(names) > 1 else next(iter(values.values()))

    x = arrays(inputs, "x", "the inputs", True)
    y = arrays(outputs, "y", "the targets", require_labels)
    counts = {len(a) for a in (list(x.values()) if isinstance(x, dict) else [x])}
    if y is not None:
        counts |= {len(a) for a in (list(y.values()) if isinstance(y, dict) else [y])}
    if len(counts) > 1:
        raise DataError(f"{name}: the arrays have different numbers of samples "
                        f"({', '.join(str(c) for c in sorted(counts))})",
                        hint="inputs and targets need one row per sample")
    return Dataset(x=x, y=y, name=name)


def _load_pair(
    source: ArrayPairData, base_dir: str | os.PathLike, require_labels: bool
) -> tuple[np.ndarray, np.ndarray | None, str]:
    x_path, x_name = display_path(base_dir, source.x)
    x = read_npy(x_path, x_name)
    if source.y is None:
        if require_labels:
            raise DataError(f"{x_name}: no labels given", hint="add `y: LABELS.npy`")
        return x, None, x_name
    y_path, y_name = display_path(base_dir, source.y)
    return x, read_npy(y_path, y_name), x_name


def _load_archive(
    source: ArchiveData, base_dir: str | os.PathLike, require_labels: bool
) -> tuple[np.ndarray, np.ndarray | None, str]:
    path, name = display_path(base_dir, source.path)
    existing_file(path, name)
    if file_format(path, name) == "npy":
        if require_labels:
            raise DataError(f"{name} holds only inputs (a .npy file has one array)",
                            hint=LABELS_HINT)
        return read_npy(path, name), None, name
    keys = npz_keys(path, name)
    x = read_npz(path, name, source.x, "the inputs")
    if source.y in keys:
        return x, read_npz(path, name, source.y, "the labels"), name
    if require_labels or "y" in source.model_fields_set:
        error = missing_key(name, source.y, keys, "the labels")
        raise DataError(error.message, hint=f"{error.problems[0].hint}; name the labels with "
                        "`y: KEY`")
    return x, None, name


def file_format(path: Path, display: str) -> str:
    """'npy', 'npz' or 'csv' from the extension, or from the first bytes when it is unusual."""
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz", ".csv"):
        return suffix[1:]
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(ZIP_MAGIC):
        return "npz"
    raise DataError(f"{display}: unknown data format '{suffix or path.name}' "
                    f"(it looks like {describe_content(head)})", hint="expected .npz, .npy or .csv")
