"""Weights files: `.npz` with one entry per weight, key `"<layer>/<weight>"` (DESIGN.md §4).

Saving is atomic (temporary file + rename), so an interrupted run never leaves a corrupt file.
Loading never unpickles (`allow_pickle=False`) and checks every name, shape and dtype against the
graph, reporting every mismatch in one error.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from layerctl.atomic import atomic_path
from layerctl.errors import Location, Problem, WeightsError


def save_npz(path: str | Path, arrays: dict[str, np.ndarray], compress: bool = False) -> None:
    """Write `arrays` to `path` atomically."""
    with atomic_path(path, suffix=".npz") as temporary:
        (np.savez_compressed if compress else np.savez)(temporary, **arrays)


def read_npz(path: str | Path, only: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Every array of an .npz file (or those named in `only`), with clear errors for missing,
    corrupt or pickled files."""
    where = Location(str(path))
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files if only is None or key in only}
    except FileNotFoundError:
        raise WeightsError("no such weights file", where) from None
    except IsADirectoryError:
        raise WeightsError("is a folder, not a weights file", where) from None
    except (zipfile.BadZipFile, EOFError, OSError) as error:
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
    """Load a weights file into `graph` after checking it completely."""
    arrays = read_npz(path)
    expected = {key: value.shape for key, value in graph.weights.items()}
    problems = check_weights(arrays, expected, path)
    if problems:
        raise WeightsError(problems=problems)
    graph.set_weights({key: arrays[key] for key in expected})


def save_weights(graph, path: str | Path) -> None:
    save_npz(path, graph.get_weights())
