"""Building blocks for the spec schema: frozen pydantic models and "by name or by mapping" choices.

Keras lets a user name a component by string (`kernel_initializer: he_normal`) or configure it
(`{class_name: RandomNormal, config: {stddev: 0.1}}`). layerctl accepts three spellings of the
same thing and validates them against an allow-list of pydantic models, discriminated by `type`:

    kernel_initializer: he_normal
    kernel_initializer: {type: random_normal, stddev: 0.1}
    kernel_initializer: {class_name: RandomNormal, config: {stddev: 0.1}}

Nothing named in a spec is ever imported or evaluated: a name only selects one of these models.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Tag, TypeAdapter

# canonical `type` name -> its model, for every choice made with `by_name_or_mapping`, so error
# messages can suggest the right argument names ("did you mean 'stddev'?").
CHOICE_MODELS: dict[str, type[BaseModel]] = {}


class Frozen(BaseModel):
    """Base of every spec model: immutable, unknown keys are errors."""

    # defer_build: schemas are built once, when a spec is first validated, instead of once per
    # class at import (which rebuilt the shared initializer/regularizer unions for every layer).
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, defer_build=True)


def snake_case(name: str) -> str:
    """`GlorotUniform` -> `glorot_uniform`, `MaxNorm` -> `max_norm`, `L1L2` -> `l1_l2`."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return name.lower()


def type_names(model: type[BaseModel]) -> tuple[str, ...]:
    """The accepted `type` spellings of a choice model; the first is canonical."""
    return get_args(model.model_fields["type"].annotation)


def choice_parser(field_type: Any, models: tuple[type[BaseModel], ...]):
    """A function turning any accepted spelling of `field_type` into its model (a model passes
    through unchanged); raises pydantic's ValidationError, which the spec loader locates."""
    adapters: list[TypeAdapter] = []

    def parse(value: Any) -> Any:
        if isinstance(value, models):
            return value
        if not adapters:  # built on first use: schema building is the slow part of start-up
            adapters.append(TypeAdapter(field_type))
        return adapters[0].validate_python(value)

    return parse


def by_name_or_mapping(*models: type[BaseModel]) -> Any:
    """An annotated union that accepts `"name"`, `{type: name, ...}` or Keras's
    `{class_name: Name, config: {...}}`, choosing the model by its `type` literal."""
    by_spelling: dict[str, str] = {}
    for model in models:
        canonical = type_names(model)[0]
        CHOICE_MODELS.setdefault(canonical, model)
        for spelling in type_names(model):
            by_spelling[spelling] = canonical
            by_spelling[snake_case(spelling)] = canonical

    def normalise(value: Any) -> Any:
        if isinstance(value, str):
            value = {"type": value}
        elif isinstance(value, dict) and "class_name" in value and "type" not in value:
            config = value.get("config") or {}
            if isinstance(config, dict):
                value = {"type": value["class_name"], **config}
        if isinstance(value, dict) and isinstance(value.get("type"), str):
            spelled = value["type"]
            canonical = by_spelling.get(spelled) or by_spelling.get(snake_case(spelled))
            if canonical is not None:
                value = {**value, "type": canonical}
        return value

    def tag_of(value: Any) -> str | None:
        if isinstance(value, dict):
            return value.get("type")
        return getattr(value, "type", None)

    union = Union[tuple(Annotated[m, Tag(type_names(m)[0])] for m in models)]  # noqa: UP007
    names = Literal[tuple(by_spelling)]  # type: ignore[valid-type]
    return Annotated[
        Annotated[union, Discriminator(tag_of)],
        BeforeValidator(normalise, json_schema_input_type=Union[names, union]),  # noqa: UP007
    ]
