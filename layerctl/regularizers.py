"""Weight regularizers: their spec models (Keras 3 names and defaults), penalties and gradients.

This module owns the allow-list of regularizers a spec may name, combined into the
`Regularizer` field type, and the two functions training needs:

    penalty(spec, w)           = l1 · Σ|w| + l2 · Σw²      (added to the loss)
    penalty_gradient(spec, w)  = l1 · sign(w) + 2 · l2 · w   (added to the weight's gradient)

Keras 3 defaults: `l1` is L1(l1=0.01), `l2` is L2(l2=0.01), and `l1_l2` is L1L2(l1=0, l2=0),
so a bare `l1_l2` penalises nothing (Keras 2's `l1_l2()` function defaulted to 0.01 each; in
Keras 3 the name is the class, whose defaults are zero). Factors must be finite and >= 0, as
Keras checks. The Keras class names `L1`, `L2`, `L1L2` and Keras 3's own snake-case `l1l2` are
accepted too.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from layerctl.config import Frozen, by_name_or_mapping, choice_parser

Factor = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class L1(Frozen):
    type: Literal["l1", "L1"]
    l1: Factor = 0.01


class L2(Frozen):
    type: Literal["l2", "L2"]
    l2: Factor = 0.01


class L1L2(Frozen):
    type: Literal["l1_l2", "l1l2", "L1L2"]
    l1: Factor = 0.0
    l2: Factor = 0.0


REGULARIZER_MODELS = (L1, L2, L1L2)
RegularizerSpec = L1 | L2 | L1L2
Regularizer = by_name_or_mapping(*REGULARIZER_MODELS)
"""Field type: a regularizer by name, by `{type: ...}` mapping or by Keras class_name/config."""


parse_regularizer = choice_parser(Regularizer, REGULARIZER_MODELS)
"""A spec model from any accepted spelling of a regularizer (a model passes through unchanged)."""


def _factors(spec: RegularizerSpec) -> tuple[float, float]:
    return getattr(spec, "l1", 0.0), getattr(spec, "l2", 0.0)


def penalty(spec: RegularizerSpec | str | dict[str, Any], w: np.ndarray) -> float:
    """l1 · Σ|w| + l2 · Σw², summed in w's dtype as Keras does."""
    l1, l2 = _factors(parse_regularizer(spec))
    w = np.asarray(w)
    total = 0.0
    if l1:
        total += float(w.dtype.type(l1) * np.sum(np.abs(w)))
    if l2:
        total += float(w.dtype.type(l2) * np.sum(np.square(w)))
    return total


def penalty_gradient(spec: RegularizerSpec | str | dict[str, Any], w: np.ndarray) -> np.ndarray:
    """∂penalty/∂w = l1 · sign(w) + 2 · l2 · w (sign(0) = 0), same shape and dtype as w."""
    l1, l2 = _factors(parse_regularizer(spec))
    w = np.asarray(w)
    return (l1 * np.sign(w) + (2 * l2) * w).astype(w.dtype, copy=False)
