"""Weight constraints: their spec models (Keras 3 names and defaults) and the projections.

This module owns the allow-list of constraints a spec may name (`max_norm`, `non_neg`,
`unit_norm`, `min_max_norm`, also as Keras class names `MaxNorm`, ...), combined into the
`Constraint` field type, and `apply_constraint`, which projects a weight with Keras 3's formulas.
With n = sqrt(sum of w² over `axis`) (kept as a broadcastable axis) and ε = 1e-7:

    max_norm      w · clip(n, 0, max_value) / (ε + n)
    unit_norm     w / (ε + n)
    min_max_norm  w · (rate · clip(n, min_value, max_value) + (1 - rate) · n) / (ε + n)
    non_neg       max(w, 0)

Keras applies a constraint after every optimizer step, never at initialisation. For a Dense
kernel (in, units) `axis=0` constrains each unit's incoming vector; for a Conv2D kernel use
`axis: [0, 1, 2]`. The Keras 1/2 spellings `maxnorm`, `nonneg` and `unitnorm` are errors that
name the modern spelling (Keras 3 rejects them too).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BeforeValidator, Field

from layerctl.config import Frozen, by_name_or_mapping, choice_parser
from layerctl.errors import SpecError

EPSILON = 1e-7  # keras.config.epsilon()

NormAxis = int | tuple[int, ...]


class MaxNorm(Frozen):
    type: Literal["max_norm", "MaxNorm"]
    max_value: float = Field(2.0, ge=0)
    axis: NormAxis = 0


class NonNeg(Frozen):
    type: Literal["non_neg", "NonNeg"]


class UnitNorm(Frozen):
    type: Literal["unit_norm", "UnitNorm"]
    axis: NormAxis = 0


class MinMaxNorm(Frozen):
    type: Literal["min_max_norm", "MinMaxNorm"]
    min_value: float = Field(0.0, ge=0)
    max_value: float = Field(1.0, ge=0)
    rate: float = Field(1.0, ge=0, le=1)
    axis: NormAxis = 0


CONSTRAINT_MODELS = (MaxNorm, NonNeg, UnitNorm, MinMaxNorm)
ConstraintSpec = MaxNorm | NonNeg | UnitNorm | MinMaxNorm

# Keras 2 function aliases that Keras 3 dropped ("Could not interpret constraint identifier").
KERAS2_NAMES = {"maxnorm": "max_norm", "nonneg": "non_neg", "unitnorm": "unit_norm"}


def _reject_keras2_names(value: Any) -> Any:
    name = value
    if isinstance(value, dict):
        name = value.get("type", value.get("class_name"))
    if isinstance(name, str) and name in KERAS2_NAMES:
        raise ValueError(f"'{name}' is the Keras 2 name; use '{KERAS2_NAMES[name]}'")
    return value


# Outermost validator runs first: old names are caught before the union reports "unknown tag".
Constraint = Annotated[
    by_name_or_mapping(*CONSTRAINT_MODELS), BeforeValidator(_reject_keras2_names)
]
"""Field type: a constraint by name, by `{type: ...}` mapping or by Keras class_name/config."""


parse_constraint = choice_parser(Constraint, CONSTRAINT_MODELS)
"""A spec model from any accepted spelling of a constraint (a model passes through unchanged)."""


def _norms(spec: MaxNorm | UnitNorm | MinMaxNorm, w: np.ndarray) -> np.ndarray:
    axes = (spec.axis,) if isinstance(spec.axis, int) else spec.axis
    distinct_in_range = {a % w.ndim for a in axes if -w.ndim <= a < w.ndim}
    if len(distinct_in_range) != len(axes):
        raise SpecError(
            f"{spec.type} axis {spec.axis} does not fit a weight of shape {w.shape}",
            hint=f"axes must be distinct and within [{-w.ndim}, {w.ndim - 1}]",
        )
    return np.sqrt(np.sum(np.square(w), axis=axes, keepdims=True))


def apply_constraint(spec: ConstraintSpec | str | dict[str, Any], w: np.ndarray) -> np.ndarray:
    """The projection of weight `w` (a new array, same shape and dtype)."""
    spec = parse_constraint(spec)
    w = np.asarray(w)
    if isinstance(spec, NonNeg):
        return np.maximum(w, 0)
    norms = _norms(spec, w)
    if isinstance(spec, UnitNorm):
        return w / (EPSILON + norms)
    if isinstance(spec, MaxNorm):
        desired = np.clip(norms, 0, spec.max_value)
    else:
        clipped = np.clip(norms, spec.min_value, spec.max_value)
        desired = spec.rate * clipped + (1 - spec.rate) * norms
    return w * (desired / (EPSILON + norms))
