"""`layerctl import`: Keras models and Keras code become specs (Keras 1 and 2 included).

A source is recognized by its content: a zip archive is a Keras 3 `.keras` file, an HDF5
signature a legacy `.h5` file, a JSON object a `model.to_json()` config, anything else Python
source (read with `ast`, never run). Each reader produces an `ImportedModel`
(`importer.writer`), which is written as readable YAML and checked with the spec loader before
it is returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from layerctl.errors import LayerctlError, Location, Problem

MAX_SOURCE_BYTES = 5_000_000


class ImportError_(LayerctlError):  # noqa: N801 (ImportError is Python's)
    """The source cannot be imported exactly; every problem is located in the source."""

    code = "LC600"


@dataclass
class Imported:
    text: str  # the spec YAML
    kind: str  # python, json, keras, hdf5
    weights: dict | None = None
    warnings: list[Problem] = field(default_factory=list)
    plan: object = None  # the layerctl Plan of the spec


def source_kind(head: bytes) -> str:
    if head.startswith(b"PK\x03\x04"):
        return "keras"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if head.lstrip()[:1] == b"{":
        return "json"
    return "python"


def model_stem(path: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(path).stem).strip("-.")
    return stem or "imported"


def import_source(path: str, dim_ordering: str | None = None) -> Imported:
    """Read the model in `path` and return its spec text (validated) and weights."""
    where = Location(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SOURCE_BYTES + 1)
    except FileNotFoundError:
        raise ImportError_("no such file", where, code="LC301") from None
    except IsADirectoryError:
        raise ImportError_("is a folder, not a model file", where) from None
    kind = source_kind(data[:64])
    if kind == "python":
        if len(data) > MAX_SOURCE_BYTES:
            raise ImportError_(f"more than {MAX_SOURCE_BYTES:,} bytes; not a Python model file",
                               where)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ImportError_("neither a Keras model file (.keras, .h5, JSON) nor UTF-8 "
                               "Python source", where) from None
        from layerctl.importer.python_source import read_python

        model, problems, warnings = read_python(text, path, model_stem(path), dim_ordering)
        if problems:
            raise ImportError_(problems=problems + warnings)
        return finish(model, kind, None, warnings, path)
    if kind == "json":
        from layerctl.importer.json_config import read_json

        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ImportError_("a JSON config must be UTF-8", where) from None
        if len(data) > MAX_SOURCE_BYTES:
            raise ImportError_(f"more than {MAX_SOURCE_BYTES:,} bytes; not a model config",
                               where)
        model, problems, warnings = read_json(text, path, model_stem(path))
        if problems:
            raise ImportError_(problems=problems)
        return finish(model, kind, None, warnings, path)
    if kind == "keras":
        return _keras_archive(path, where)
    return _legacy_hdf5(path, where)


def _legacy_hdf5(path: str, where: Location) -> Imported:
    """A Keras 1 or 2 `.h5` model file: `model_config` read as a JSON config, the
    `model_weights` groups converted to Keras 3 layouts."""
    from layerctl.importer.hdf5 import (
        convert_legacy,
        legacy_layer_weights,
        legacy_model,
        open_hdf5,
        place_weights,
    )
    from layerctl.importer.json_config import read_json

    with open_hdf5(path, where) as file:
        config, version, backend = legacy_model(file, where)
        arrays = legacy_layer_weights(file, where)
    model, problems, warnings = read_json(config, f"{path}:model_config", model_stem(path))
    if problems:
        raise ImportError_(problems=problems)
    model.header.append(f"Saved by Keras {version}" + (f" ({backend} backend)." if backend
                                                        else "."))
    imported = finish(model, "hdf5", None, warnings, path)
    keras1 = version.startswith("1")
    types = {n.name: n.layer.keras_class for n in imported.plan.nodes}
    formats = {n.name: getattr(n.layer, "data_format", None) for n in imported.plan.nodes}
    placed = {}
    for layer, source in model.keras_names.items():
        placed[layer] = convert_legacy(types.get(layer, ""), arrays.get(source, []), keras1,
                                       formats.get(layer) == "channels_first",
                                       backend == "theano")
    imported.weights = place_weights(imported.plan, placed, where)
    return imported


def _keras_archive(path: str, where: Location) -> Imported:
    from layerctl.importer.json_config import read_json
    from layerctl.importer.keras_archive import read_members

    members = read_members(path)
    try:
        text = members["config.json"].decode("utf-8")
    except UnicodeDecodeError:
        raise ImportError_("config.json is not UTF-8", where) from None
    model, problems, warnings = read_json(text, f"{path}:config.json", model_stem(path))
    if problems:
        raise ImportError_(problems=problems)
    imported = finish(model, "keras", None, warnings, path)
    if "model.weights.h5" in members:
        from layerctl.importer.hdf5 import keras3_layer_weights, open_hdf5, place_weights

        with open_hdf5(members["model.weights.h5"], Location(f"{path}:model.weights.h5")) as f:
            classes = {model.weight_groups[n.name]: n.layer.keras_class
                       for n in imported.plan.nodes if n.name in model.weight_groups}
            arrays = keras3_layer_weights(f, classes)
        arrays = {layer: arrays.get(group, []) for layer, group in model.weight_groups.items()}
        imported.weights = place_weights(imported.plan, arrays, where)
    return imported


def finish(model, kind: str, weights, warnings: list[Problem], path: str) -> Imported:
    from layerctl.errors import SpecError
    from layerctl.importer.writer import render
    from layerctl.plan import build_plan
    from layerctl.spec import parse_spec

    text = render(model)
    try:
        spec, marks = parse_spec(text, "<imported spec>")
        plan = build_plan(spec, marks)
    except SpecError as error:
        raise ImportError_(f"the spec written from {path} is not valid (a bug in the importer; "
                           "please report it with the source)", Location(path),
                           problems=error.problems) from None
    return Imported(text, kind, weights, warnings, plan)
