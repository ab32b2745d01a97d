"""The spec contract: `ModelSpec` (frozen pydantic) and loading a YAML file into it.

`load_spec(path)` reads the file with `yamlmarks` (safe YAML, every key's line and column kept),
reports Keras-1 argument names with their modern spelling, validates everything with pydantic in
one pass, and turns each pydantic error into a `Problem` located at the offending key or value
with a did-you-mean. All problems of a file are raised together in one `SpecError`.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Any

from pydantic import Field, ValidationError, field_validator

from layerctl.config import CHOICE_MODELS, Frozen
from layerctl.errors import Location, Problem, SpecError, did_you_mean
from layerctl.layers import LAYER_TYPES, AnyLayer, layer_class
from layerctl.layers.base import DataFormat, PositiveInt, lower_string, name_problem, shown_name
from layerctl.legacy import LEGACY_TRAIN_KEYS, legacy_hint
from layerctl.training.spec import CompileSpec, TrainSpec
from layerctl.yamlmarks import Marks, load_yaml

MAX_SPEC_BYTES = 1_000_000

SCHEMA_COMMENT = "# yaml-language-server: $schema="


class ModelSpec(Frozen):
    """A whole model: its input, its layers, and optionally how to compile and train it."""

    name: str | None = Field(default=None, description="Model name; default: the file's stem.")
    description: str | None = None
    input_shape: tuple[PositiveInt | None, ...] | None = Field(
        default=None, description="Input shape without the batch axis, e.g. [28, 28, 1]."
    )
    input_dim: PositiveInt | None = Field(
        default=None, description="Shorthand for input_shape: [input_dim]."
    )
    data_format: DataFormat = Field(
        default="channels_last",
        description="Default data_format of conv, pooling and Flatten layers.",
    )
    layers: list[AnyLayer] = Field(min_length=1, description="The layers, in order.")
    compile: CompileSpec | None = None
    train: TrainSpec | None = None

    _lower = field_validator("data_format", mode="before")(lower_string)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        """The name is the default run folder (runs/<name>): one safe path component."""
        if value is None:
            return value
        reason = name_problem(value, forbidden="/\\")
        if reason is None and value in (".", ".."):
            reason = "it must not be '.' or '..'"
        if reason is not None:
            raise ValueError(f"invalid model name {shown_name(value)}: {reason} (it names the "
                             "run folder)")
        return value


def read_spec_text(path: str | FilePath) -> str:
    """The text of a spec file, with clear errors for missing, huge or non-UTF-8 files."""
    path = FilePath(path)
    where = Location(str(path))
    try:
        if path.is_dir():
            raise SpecError("is a folder, not a spec file", where)
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpecError("no such file", where) from None
    except OSError as error:
        raise SpecError(f"cannot read: {error.strerror}", where) from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(f"file is {len(data):,} bytes; a spec is at most {MAX_SPEC_BYTES:,}", where)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise SpecError("not valid UTF-8", Location(str(path), line)) from None


def load_spec(path: str | FilePath) -> tuple[ModelSpec, Marks]:
    """Read and validate a spec file. Raises SpecError holding every problem found."""
    text = read_spec_text(path)
    return parse_spec(text, str(path))


def parse_spec(text: str, file: str = "<spec>") -> tuple[ModelSpec, Marks]:
    """Validate spec text; `file` is only used in locations and as the default model name."""
    data, marks = load_yaml(text, file)
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        raise SpecError(
            f"a spec is a mapping with at least `layers:`, but this document is {kind}",
            marks.value(()),
        )
    data, problems = _strip_legacy(data, marks)
    try:
        spec = ModelSpec.model_validate(data)
    except ValidationError as error:
        problems += [_translate(e, data, marks) for e in error.errors()]
        spec = None
    if problems:
        problems.sort(
            key=lambda p: (p.location.line or 0, p.location.col or 0) if p.location else (0, 0)
        )
        raise SpecError(problems=_unique(problems))
    if spec.name is None:
        spec = spec.model_copy(update={"name": FilePath(file).stem})
    return spec, marks


def _unique(problems: list[Problem]) -> list[Problem]:
    seen, kept = set(), []
    for problem in problems:
        key = (problem.location, problem.message)
        if key not in seen:
            seen.add(key)
            kept.append(problem)
    return kept


# ---- Keras 1 names ---------------------------------------------------------------------------
def _strip_legacy(data: dict, marks: Marks) -> tuple[dict, list[Problem]]:
    """Report Keras-1 names (and drop them, so pydantic does not report them a second time)."""
    problems: list[Problem] = []
    layers = data.get("layers")
    if isinstance(layers, list):
        cleaned = []
        for index, layer in enumerate(layers):
            cls = layer_class(layer)
            if cls is None:
                cleaned.append(layer)
                continue
            accepted = set(cls.model_fields)
            kept = {}
            for key, value in layer.items():
                modern = legacy_hint(key, accepted) if isinstance(key, str) else None
                if modern is None:
                    kept[key] = value
                else:
                    problems.append(
                        Problem(
                            f"`{key}` is a Keras 1 argument of {cls.keras_class}",
                            marks.key(("layers", index, key)),
                            f"use {_quote(modern)}",
                        )
                    )
            cleaned.append(kept)
        data = {**data, "layers": cleaned}
    train = data.get("train")
    if isinstance(train, dict):
        for key in [k for k in train if k in LEGACY_TRAIN_KEYS]:
            problems.append(
                Problem(
                    f"`{key}` is a Keras 1 argument of fit()",
                    marks.key(("train", key)),
                    f"use {_quote(LEGACY_TRAIN_KEYS[key])}",
                )
            )
        data = {**data, "train": {k: v for k, v in train.items() if k not in LEGACY_TRAIN_KEYS}}
    return data, problems


def _quote(modern: str) -> str:
    head, _, rest = modern.partition(" ")
    return f"`{head}`" + (f" {rest}" if rest else "") if head.isidentifier() else modern


# ---- pydantic errors -> located problems -----------------------------------------------------
def _data_path(loc: tuple, data: Any) -> tuple:
    """The path into the YAML data named by a pydantic `loc` (which also holds union tags)."""
    path, node = [], data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            path.append(part)
    return tuple(path)


def _fields_at(path: tuple, data: Any) -> tuple[str, list[str]]:
    """(what the mapping at `path` is, its allowed keys) for did-you-mean on unknown keys."""
    if len(path) == 2 and path[0] == "layers":
        layer = data["layers"][path[1]]
        cls = layer_class(layer)
        if cls is not None:
            return cls.keras_class, [f for f in cls.model_fields if f != "type"]
    if not path:
        return "the spec", list(ModelSpec.model_fields)
    if path in (("compile",), ("train",)):
        model = CompileSpec if path[0] == "compile" else TrainSpec
        return f"`{path[0]}`", list(model.model_fields)
    return f"`{path[-1]}`", []


def _translate(error: dict, data: Any, marks: Marks) -> Problem:
    kind, loc, ctx = error["type"], error["loc"], error.get("ctx") or {}
    path = _data_path(loc, data)
    field = next((p for p in reversed(path) if isinstance(p, str)), "value")
    value = error.get("input")

    if kind == "extra_forbidden":
        owner, allowed = _fields_at(path[:-1], data)
        choice = CHOICE_MODELS.get(loc[-2]) if len(loc) > 1 else None
        if choice is not None:
            allowed = [f for f in choice.model_fields if f != "type"]
        modern = legacy_hint(str(path[-1]), set(allowed))
        hint = f"use {_quote(modern)}" if modern else did_you_mean(str(path[-1]), allowed)
        return Problem(f"unknown argument '{path[-1]}' for {owner}", marks.key(path), hint)
    if kind == "missing":
        missing = loc[-1]
        owner, _ = _fields_at(path, data)
        return Problem(f"{owner} needs `{missing}`", marks.value(path))
    if kind == "union_tag_invalid":
        return _unknown_type(path, ctx, marks)
    if kind == "union_tag_not_found":
        what = "a layer" if _is_layer(path) else f"`{field}`"
        return Problem(f"{what} needs a `type`", marks.value(path))
    if kind == "literal_error":
        expected = [
            s.strip().strip("'") for s in ctx.get("expected", "").replace(" or ", ", ").split(",")
        ]
        hint = did_you_mean(str(value), expected)
        if hint is None:
            hint = (
                "expected one of "
                + ", ".join(f"'{e}'" for e in expected[:8])
                + (", ..." if len(expected) > 8 else "")
            )
        return Problem(f"invalid value {value!r} for `{field}`", marks.value(path), hint)
    if kind in ("greater_than", "greater_than_equal", "less_than_equal", "less_than"):
        rule = {
            "greater_than": "> {gt}",
            "greater_than_equal": ">= {ge}",
            "less_than_equal": "<= {le}",
            "less_than": "< {lt}",
        }[kind].format(**ctx)
        return Problem(
            f"invalid value for `{field}`: expected a value {rule}, received {value!r}",
            marks.value(path),
        )
    if kind == "too_short" and path == ("layers",):
        return Problem("`layers` is empty; a model needs at least one layer", marks.value(path))
    if kind.endswith("_type") or kind.endswith("_parsing") or kind in ("model_type", "list_type"):
        expected = {
            "int_type": "an integer",
            "float_type": "a number",
            "bool_type": "true or false",
            "string_type": "a string",
            "list_type": "a list",
            "tuple_type": "a list",
            "model_type": "a mapping",
            "dict_type": "a mapping",
            "model_attributes_type": "a mapping",
        }.get(kind, error["msg"].removeprefix("Input should be "))
        return Problem(
            f"invalid value for `{field}`: expected {expected}, received {_describe(value)}",
            marks.value(path),
        )
    message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    named = isinstance(loc[-1], str) and path and loc[-1] == path[-1] and field not in message
    return Problem(f"{field}: {message}" if named else message, marks.value(path))


def _is_layer(path: tuple) -> bool:
    return len(path) == 2 and path[0] == "layers"


def _unknown_type(path: tuple, ctx: dict, marks: Marks) -> Problem:
    tag = ctx.get("tag")
    if _is_layer(path):
        return Problem(
            f"unknown layer type '{tag}'",
            marks.value(path + ("type",)),
            did_you_mean(str(tag), LAYER_TYPES)
            or "supported: " + ", ".join(sorted(c.keras_class for c in set(LAYER_TYPES.values()))),
        )
    field = next((p for p in reversed(path) if isinstance(p, str)), "value")
    kind = field.rsplit("_", 1)[-1] if "_" in field else field
    expected = [t.strip().strip("'") for t in ctx.get("expected_tags", "").split(",")]
    where = path + ("type",) if (path + ("type",)) in marks.values else path
    return Problem(
        f"unknown {kind} '{tag}' for `{field}`",
        marks.value(where),
        did_you_mean(str(tag), expected) or "expected one of " + ", ".join(expected),
    )


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)
