"""Weights files: `.npz` with one entry per weight, key `"<layer>/<weight>"` (DESIGN.md §4).

Saving is atomic (temporary file + rename), so an interrupted run never leaves a corrupt file.
Loading never unpickles (`allow_pickle=False`) and checks every name, shape and dtype against the
graph, reporting every mismatch in one error. A file that is not an .npz archive is named for what
it is (a .npy array, an ONNX or Keras model, a spec, a pickle, text) from its first bytes, and a
run's `checkpoint.npz` is accepted wherever weights are: its `weights/...` entries are the weights.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from layerctl.atomic import atomic_path
from layerctl.data.files import NPY_MAGIC, ZIP_MAGIC, describe_content
from layerctl.errors import Location, Problem, WeightsError
from layerctl.inputs import refuse_special
from layerctl.memory import NPZ_DAMAGE, npz_headers

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
WEIGHTS_HINT = ("weights are an .npz with one array per '<layer>/<weight>', like a run's "
                "weights.npz or checkpoint.npz")
# ModelProto's first fields (protobuf tags): ir_version, then producer, domain, graph, opsets...
_ONNX_SECOND_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42}


def save_npz(path: str | Path, arrays: dict[str, np.ndarray], compress: bool = False) -> None:
    """Write `arrays` to `path` atomically."""
    with atomic_path(path, suffix=".npz") as temporary:
        (np.savez_compressed if compress else np.savez)(temporary, **arrays)


def _looks_like_onnx(head: bytes) -> bool:
    return len(head) > 2 and head[0] == 0x08 and head[1] < 0x80 and head[2] in _ONNX_SECOND_TAGS


def _zip_kind(path: Path) -> str | None:
    """What a zip archive that is not an .npz is (a .keras model, a PyTorch file), if known."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    if "config.json" in names and "model.weights.h5" in names:
        return "a Keras model (.keras)"
    if any(name.endswith("data.pkl") for name in names):
        return "a PyTorch file (torch.save)"
    if names and not any(name.endswith(".npy") for name in names):
        return "a zip archive without arrays"
    return None


def _text_kind(head: bytes) -> str:
    """'a layerctl spec (YAML)', 'a YAML file', 'a JSON file' or 'a text file'."""
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        return "a JSON file"
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if any(line.startswith(("layers:", "input_shape:", "inputs:", "compile:")) for line in lines):
        return "a layerctl spec (YAML)"
    if lines and all("," in line and ":" not in line for line in lines[:5]):
        return "a CSV file"
    if lines and all(":" in line or line.lstrip().startswith("- ") for line in lines[:5]):
        return "a YAML file"
    return "a text file"


def describe_weights_file(path: Path) -> str | None:
    """What a file that is not an .npz archive of arrays is, or None when it may be one."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if head.startswith(ZIP_MAGIC):
        return _zip_kind(path)
    if head.startswith(NPY_MAGIC):
        return "a single NumPy array (.npy)"
    if head.startswith(HDF5_MAGIC):
        return "an HDF5 file (Keras .h5 weights?)"
    if path.suffix.lower() == ".onnx" or _looks_like_onnx(head):
        return "an ONNX model"
    kind = describe_content(head)
    if kind == "text":
        return _text_kind(head)
    return {"a Python pickle": "a Python pickle (layerctl never loads pickles)"}.get(kind, kind)


def read_npz(path: str | Path, only: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Every array of an .npz file (or those named in `only`), with clear errors for missing,
    corrupt, pickled or oversized files and for files that are something else."""
    where = Location(str(path))
    refuse_special(path, WeightsError)
    path = Path(path)
    try:
        kind = describe_weights_file(path)
    except FileNotFoundError:
        raise WeightsError("no such weights file", where) from None
    except IsADirectoryError:
        raise WeightsError("is a folder, not a weights file", where) from None
    except OSError as error:
        raise WeightsError(f"cannot be read ({error.strerror or error})", where) from None
    if kind is not None:
        raise WeightsError(f"is {kind}, not a weights file", where, WEIGHTS_HINT)
    try:
        npz_headers(path, WeightsError, str(path), only)  # sizes checked before inflating
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files if only is None or key in only}
    except (*NPZ_DAMAGE, zipfile.BadZipFile, EOFError, OSError) as error:
        raise WeightsError(f"not a valid .npz weights file ({error})", where) from None
    except ValueError as error:
        if "pickle" in str(error):
            raise WeightsError("holds pickled objects, which layerctl never loads", where) from None
        raise WeightsError(f"cannot read weights: {error}", where) from None


def weight_entries(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The weights in `arrays`: a checkpoint's `weights/...` entries, or every array."""
    if "state" in arrays and any(key.startswith("weights/") for key in arrays):
        return {key.removeprefix("weights/"): value for key, value in arrays.items()
                if key.startswith("weights/")}
    return arrays


def check_weights(arrays: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]],
                  path: str | Path) -> list[Problem]:
    """Problems with `arrays` as weights for a graph expecting `expected` names and shapes."""
    where = Location(str(path))
    problems = []
    for key, shape in expected.items():
        if key not in arrays:
            problems.append(Problem(f"missing weight '{key}' (shape {shape})", where))
            continue
        value = arrays[key]
        if value.shape != tuple(shape):
            problems.append(Problem(f"weight '{key}' has shape {value.shape}, the spec needs "
                                    f"{tuple(shape)}", where))
        elif not np.issubdtype(value.dtype, np.floating):
            problems.append(Problem(f"weight '{key}' has dtype {value.dtype}, expected a float "
                                    "dtype", where))
        elif not np.all(np.isfinite(value)):
            problems.append(Problem(f"weight '{key}' holds NaN or infinite values", where))
    for key in arrays:
        if key not in expected:
            problems.append(Problem(f"unexpected weight '{key}' (not in the spec)", where,
                                    "is this weights file from another spec?"))
    return problems


def load_weights_into(graph, path: str | Path) -> None:
    """Load a weights file (or a run's checkpoint) into `graph` after checking it completely
    (names and shapes from the headers first, so a file that does not fit the model is never
    inflated)."""
    expected = {key: value.shape for key, value in graph.weights.items()}
    check_declared(path, expected)
    arrays = weight_entries(read_npz(path))
    problems = check_weights(arrays, expected, path)
    if problems:
        raise WeightsError(problems=problems)
    graph.set_weights({key: arrays[key] for key in expected})


def check_declared(path: str | Path, expected: dict[str, tuple[int, ...]]) -> None:
    """For a file far bigger than the model (a zip bomb), WeightsError listing every name or
    shape its headers get wrong for `expected`, before anything is inflated (the arrays are
    stood in for by zero-stride views)."""
    try:
        headers = npz_headers(path, WeightsError, str(path), check_memory=False)
    except (FileNotFoundError, IsADirectoryError, OSError, WeightsError):
        return  # read_npz names these (and what a file that is no .npz is)
    needed = sum(math.prod(shape) for shape in expected.values()) * 8  # float64 at most
    if sum(h.file_size for h in headers.values()) <= 2 * needed + (16 << 20):
        return  # small enough to read: the full check reports every problem, NaN included
    stand_ins = weight_entries({key: np.broadcast_to(np.zeros((), h.dtype), h.shape)
                                for key, h in headers.items()})
    problems = [p for p in check_weights(stand_ins, expected, path) if "NaN" not in p.message]
    if problems:
        raise WeightsError(problems=problems)


def save_weights(graph, path: str | Path) -> None:
    save_npz(path, graph.get_weights())
