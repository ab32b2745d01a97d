"""Weights files: `.npz` with one entry per weight, key `"<layer>/<weight>"` (DESIGN.md §4).

Saving is atomic (temporary file + rename), so an interrupted run never leaves a corrupt file.
Loading never unpickles (`allow_pickle=False`) and checks every name, shape and dtype against the
graph, reporting every mismatch in one error.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from layerctl.atomic import atomic_path
from layerctl.errors import Location, Problem, WeightsError
from layerctl.inputs import refuse_special
from layerctl.memory import NPZ_DAMAGE, npz_headers


def save_npz(path: str | Path, arrays: dict[str, np.ndarray], compress: bool = False) -> None:
    """Write `arrays` to `path` atomically."""
    with atomic_path(path, suffix=".npz") as temporary:
        (np.savez_compressed if compress else np.savez)(temporary, **arrays)


def read_npz(path: str | Path, only: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Every array of an .npz file (or those named in `only`), with clear errors for missing,
    corrupt or pickled files."""
    where = Location(str(path))
    refuse_special(path, WeightsError)
    try:
        npz_headers(path, WeightsError, str(path), only)  # sizes checked before inflating
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files if only is None or key in only}
    except FileNotFoundError:
        raise WeightsError("no such weights file", where) from None
    except IsADirectoryError:
        raise WeightsError("is a folder, not a weights file", where) from None
    except (*NPZ_DAMAGE, OSError) as error:
        raise WeightsError(f"not a valid .npz weights file ({error})", where) from None
    except ValueError as error:
        if "pickle" in str(error):
            raise WeightsError("holds pickled objects, which layerctl never loads", where) from None
        raise WeightsError(f"cannot read weights: {error}", where) from None


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
    """Load a weights file into `graph` after checking it completely (names and shapes from
    the headers first, so a file that does not fit the model is never inflated)."""
    expected = {key: value.shape for key, value in graph.weights.items()}
    check_declared(path, expected)
    arrays = read_npz(path)
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
    except (FileNotFoundError, IsADirectoryError, OSError):
        return  # read_npz names these
    needed = sum(math.prod(shape) for shape in expected.values()) * 8  # float64 at most
    if sum(h.file_size for h in headers.values()) <= 2 * needed + (16 << 20):
        return  # small enough to read: the full check reports every problem, NaN included
    stand_ins = {key: np.broadcast_to(np.zeros((), h.dtype), h.shape)
                 for key, h in headers.items()}
    problems = [p for p in check_weights(stand_ins, expected, path) if "NaN" not in p.message]
    if problems:
        raise WeightsError(problems=problems)


def save_weights(graph, path: str | Path) -> None:
    save_npz(path, graph.get_weights())
