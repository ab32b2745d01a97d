"""The spec contract: `ModelSpec` (frozen pydantic) and loading a YAML file into it.

`load_spec(path)` reads the file with `yamlmarks` (safe YAML, every key's line and column kept),
reports Keras-1 argument names with their modern spelling, validates everything with pydantic in
one pass, and turns each pydantic error into a `Problem` located at the offending key or value
with a did-you-mean. All problems of a file are raised together in one `SpecError`.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal, Union

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from layerctl.config import CHOICE_MODELS, Frozen
from layerctl.errors import Location, Problem, SpecError, did_you_mean
from layerctl.interrupts import deferred_interrupt
from layerctl.keras_layers import KERAS_LAYER_CLASSES
from layerctl.layers import LAYER_CLASSES, LAYER_TYPES, layer_class, layer_tag
from layerctl.layers.base import (
    DataFormat,
    LayerInputs,
    PositiveInt,
    lower_string,
    name_problem,
    shown_name,
)
from layerctl.legacy import LEGACY_TRAIN_KEYS, legacy_hint
from layerctl.training.spec import CompileSpec, TrainSpec
from layerctl.yamlmarks import Marks, load_yaml

MAX_SPEC_BYTES = 1_000_000

SCHEMA_COMMENT = "# yaml-language-server: $schema="


InputDtype = Literal["float32", "float64", "int32", "int64", "uint8", "int8", "int16", "bool"]


class InputSpec(Frozen):
    """One model input (DESIGN §3b): its name, shape without the batch axis, and dtype."""

    name: str = Field(description="The name layers use in `inputs:` and data files use as key.")
    shape: tuple[PositiveInt | None, ...] = Field(description="Without the batch axis; [] for "
                                                  "one scalar per sample.")
    dtype: InputDtype = Field(default="float32", description="An integer type for indices.")

    @property
    def integer(self) -> bool:
        return self.dtype.startswith(("int", "uint")) or self.dtype == "bool"


class ApplySpec(Frozen):
    """`{apply: LAYER, inputs: [...]}`: the layer LAYER applied again, with the same weights."""

    apply: str = Field(description="The name of the layer to apply again (its weights are shared).")
    name: str | None = Field(default=None, description="This node's name; default LAYER_1, ...")
    inputs: LayerInputs | None = None


class BlockInstance(Frozen):
    """`{block: NAME, PARAM: value, inputs: [...]}`: an instance of a block of `blocks:`."""

    model_config = ConfigDict(frozen=True, extra="allow", defer_build=True)

    block: str = Field(description="The block to instantiate.")
    name: str | None = Field(default=None, description="Instance name; default the block's, "
                             "numbered.")
    inputs: LayerInputs | None = None

    @property
    def arguments(self) -> dict[str, Any]:
        """The parameter values this instance gives."""
        return dict(self.model_extra or {})


class BlockSpec(Frozen):
    """A reusable sub-graph: parameters with defaults, its own input names, raw layers.

    The layers are validated when an instance substitutes its parameters (`$name`) into them."""

    params: dict[str, Any] | list[str] = Field(
        default_factory=dict, description="Parameter names, with defaults when a mapping.")
    inputs: list[str] = Field(default_factory=lambda: ["input"],
                              description="The block's own input names.")
    layers: list[dict[str, Any]] = Field(min_length=1)
    output: str | None = Field(default=None, description="The output layer; default the last.")


def _entry_tag(value: Any) -> str | None:
    if isinstance(value, ApplySpec) or isinstance(value, dict) and "apply" in value:
        return "Apply"
    if isinstance(value, BlockInstance) or isinstance(value, dict) and "block" in value:
        return "Block"
    return layer_tag(value)


LayerEntry = Annotated[
    Union[  # noqa: UP007
        tuple(Annotated[cls, Tag(cls.__name__)] for cls in LAYER_CLASSES)
        + (Annotated[ApplySpec, Tag("Apply")], Annotated[BlockInstance, Tag("Block")])
    ],
    Discriminator(_entry_tag),
]


@functools.cache
def _entries_adapter() -> TypeAdapter:
    return TypeAdapter(list[LayerEntry])  # built on first use: schemas are slow to build


class ModelSpec(Frozen):
    """A whole model: its inputs, its layers, and optionally how to compile and train it."""

    name: str | None = Field(default=None, description="Model name; default: the file's stem.")
    description: str | None = None
    input_shape: tuple[PositiveInt | None, ...] | None = Field(
        default=None, description="Input shape without the batch axis, e.g. [28, 28, 1]."
    )
    input_dim: PositiveInt | None = Field(
        default=None, description="Shorthand for input_shape: [input_dim]."
    )
    inputs: list[InputSpec] | None = Field(
        default=None, description="Several (or named) inputs, instead of input_shape.")
    data_format: DataFormat = Field(
        default="channels_last",
        description="Default data_format of conv, pooling and Flatten layers.",
    )
    blocks: dict[str, BlockSpec] | None = Field(
        default=None, description="Reusable sub-graphs, instantiated with `{block: NAME}`.")
    layers: list[LayerEntry] = Field(min_length=1, description="The layers, in order.")
    outputs: list[str] | None = Field(
        default=None, description="The model outputs (node names, `lstm.1` for a layer's "
        "second output); default the last layer.")
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
        raise SpecError("no such file", where, code="LC301") from None
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
            marks.value(()), code="LC101",
        )
    data, problems = _strip_legacy(data, marks)
    try:
        with deferred_interrupt():  # the first call builds pydantic's validator (see there)
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


def validate_block_layers(
    raw: list[Any], marks: Marks, block_path: tuple, instance: str
) -> tuple[list[Any], list[Problem]]:
    """A block's layers after an instance substituted its parameters: validated like a spec's
    `layers:` (Keras 1 names, located problems), located at the block's lines, and saying which
    instance they come from."""
    view = _ShiftedMarks(marks, block_path)
    data, problems = _strip_legacy({"layers": raw}, view)
    entries: list[Any] = []
    try:
        entries = _entries_adapter().validate_python(data["layers"])
    except ValidationError as error:
        problems += [_translate({**e, "loc": ("layers", *e["loc"])}, data, view)
                     for e in error.errors()]
    problems = [replace(p, message=f"{p.message} (in block instance '{instance}')")
                for p in problems]
    return entries, problems


class _ShiftedMarks(Marks):
    """The marks of a block's `layers:` seen as if they were a spec's `layers:`."""

    def __init__(self, marks: Marks, block_path: tuple) -> None:
        super().__init__(marks.file, marks.keys, marks.values)
        self._base = tuple(block_path)

    def _shift(self, path: tuple) -> tuple:
        path = tuple(path)
        return self._base + path[1:] if path[:1] == ("layers",) else self._base + path

    def key(self, path: tuple):
        return super().key(self._shift(path))

    def value(self, path: tuple):
        return super().value(self._shift(path))


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
                            f"use {_quote(modern)}", code="LC104",
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
                    f"use {_quote(LEGACY_TRAIN_KEYS[key])}", code="LC104",
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
    node = data
    for part in path:
        node = node[part] if isinstance(node, dict | list) else None
    if isinstance(node, dict) and _is_layer(path):
        cls = layer_class(node)
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
        return Problem(f"unknown argument '{path[-1]}' for {owner}", marks.key(path), hint,
                       code="LC104")
    if kind == "missing":
        missing = loc[-1]
        owner, _ = _fields_at(path, data)
        return Problem(f"{owner} needs `{missing}`", marks.value(path), code="LC105")
    if kind == "union_tag_invalid":
        return _unknown_type(path, ctx, marks)
    if kind == "union_tag_not_found":
        what = "a layer" if _is_layer(path) else f"`{field}`"
        return Problem(f"{what} needs a `type`", marks.value(path), code="LC105")
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
        return Problem(f"invalid value {value!r} for `{field}`", marks.value(path), hint,
                       code="LC106")
    if kind in ("greater_than", "greater_than_equal", "less_than_equal", "less_than"):
        rule = {
            "greater_than": "> {gt}",
            "greater_than_equal": ">= {ge}",
            "less_than_equal": "<= {le}",
            "less_than": "< {lt}",
        }[kind].format(**ctx)
        return Problem(
            f"invalid value for `{field}`: expected a value {rule}, received {value!r}",
            marks.value(path), code="LC106",
        )
    if kind == "too_short" and path == ("layers",):
        return Problem("`layers` is empty; a model needs at least one layer", marks.value(path),
                       code="LC105")
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
            marks.value(path), code="LC106",
        )
    message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    named = isinstance(loc[-1], str) and path and loc[-1] == path[-1] and field not in message
    return Problem(f"{field}: {message}" if named else message, marks.value(path), code="LC106")


def _is_layer(path: tuple) -> bool:
    """Whether `path` names a layer mapping: a model's layer, or a wrapper's `layer:` /
    `backward_layer:` (any depth)."""
    return (len(path) == 2 and path[0] == "layers") or path[-1:] in (("layer",),
                                                                     ("backward_layer",))


def _unknown_type(path: tuple, ctx: dict, marks: Marks) -> Problem:
    tag = ctx.get("tag")
    if _is_layer(path):
        return _unknown_layer_type(str(tag), marks.value(path + ("type",)))
    field = next((p for p in reversed(path) if isinstance(p, str)), "value")
    kind = field.rsplit("_", 1)[-1] if "_" in field else field
    expected = [t.strip().strip("'") for t in ctx.get("expected_tags", "").split(",")]
    where = path + ("type",) if (path + ("type",)) in marks.values else path
    return Problem(
        f"unknown {kind} '{tag}' for `{field}`",
        marks.value(where),
        did_you_mean(str(tag), expected) or "expected one of " + ", ".join(expected), code="LC106",
    )


def _unknown_layer_type(tag: str, where: Location) -> Problem:
    """A Keras layer layerctl lacks is named as such; a did-you-mean only for a misspelling."""
    if tag in KERAS_LAYER_CLASSES:
        return Problem(f"{tag} is a Keras layer that layerctl does not support (yet)", where,
                       "docs/layers.md lists the supported layers", code="LC103")
    unsupported = KERAS_LAYER_CLASSES - set(LAYER_TYPES)
    hint = did_you_mean(tag, [*LAYER_TYPES, *unsupported])
    if hint is not None and hint.removeprefix("did you mean '").removesuffix("'?") in unsupported:
        hint += " (a Keras layer that layerctl does not support yet)"
    return Problem(f"unknown layer type '{tag}'", where, hint or "supported: " + ", ".join(
        sorted(c.keras_class for c in set(LAYER_TYPES.values()))), code="LC102")


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
