"""Learning-rate schedules: Keras 3's ExponentialDecay, CosineDecay and PiecewiseConstantDecay.

This module owns the schedule specs an optimizer's `learning_rate` may hold instead of a float,
and `learning_rate_at(learning_rate, step)`, the rate for optimizer step `step` (0-based: Keras
evaluates a schedule at the optimizer's `iterations` *before* the update that uses it). Formulas
and argument names follow `keras/src/optimizers/schedules/learning_rate_schedule.py`; Keras
evaluates them in float32, layerctl in float64 (the optimizer then casts the rate to the
parameters' dtype), so values agree to float32 rounding.

    learning_rate: {type: exponential_decay, initial_learning_rate: 0.1, decay_steps: 1000,
                    decay_rate: 0.96}
    learning_rate: {class_name: CosineDecay, config: {initial_learning_rate: 0.1,
                                                      decay_steps: 1000}}
"""

from __future__ import annotations

import bisect
import math
from typing import Annotated, Literal

from pydantic import Field, Strict, model_validator

from layerctl.config import Frozen, by_name_or_mapping

# Numbers in specs: ints are accepted where Keras takes floats (YAML writes `1` for `1.0`), but
# booleans and strings are not, so `learning_rate: "0.1"` or `staircase: 1.0` are errors.
Number = Annotated[float, Strict()]
NonNegativeNumber = Annotated[float, Strict(), Field(ge=0.0)]
PositiveNumber = Annotated[float, Strict(), Field(gt=0.0)]


class ExponentialDecay(Frozen):
    """`initial_learning_rate * decay_rate ** (step / decay_steps)`; with `staircase`, the
    exponent is floored so the rate drops every `decay_steps` steps."""

    type: Literal["exponential_decay", "ExponentialDecay"] = "exponential_decay"
    initial_learning_rate: Number
    decay_steps: PositiveNumber
    decay_rate: Number
    staircase: bool = False
    name: str = "ExponentialDecay"

    def at(self, step: int) -> float:
        exponent = step / self.decay_steps
        if self.staircase:
            exponent = math.floor(exponent)
        return self.initial_learning_rate * self.decay_rate**exponent


class CosineDecay(Frozen):
    """Optional linear warmup from `initial_learning_rate` to `warmup_target` over
    `warmup_steps`, then a half cosine from the peak down to `alpha * peak` over `decay_steps`,
    constant afterwards. Without `warmup_target` the peak is `initial_learning_rate` and
    `warmup_steps` is ignored, as in Keras."""

    type: Literal["cosine_decay", "CosineDecay"] = "cosine_decay"
    initial_learning_rate: Number
    decay_steps: PositiveNumber
    alpha: Number = 0.0
    name: str = "CosineDecay"
    warmup_target: Number | None = None
    warmup_steps: NonNegativeNumber = 0

    def at(self, step: int) -> float:
        if self.warmup_target is None:
            return self._cosine(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            fraction = step / self.warmup_steps
            rise = self.warmup_target - self.initial_learning_rate
            return rise * fraction + self.initial_learning_rate
        return self._cosine(step - self.warmup_steps, self.warmup_target)

    def _cosine(self, step: float, peak: float) -> float:
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return peak * ((1.0 - self.alpha) * cosine + self.alpha)


class PiecewiseConstantDecay(Frozen):
    """`values[0]` while `step <= boundaries[0]`, `values[i]` while
    `boundaries[i-1] < step <= boundaries[i]`, `values[-1]` after the last boundary."""

    type: Literal["piecewise_constant", "PiecewiseConstantDecay", "piecewise_constant_decay"] = (
        "piecewise_constant"
    )
    boundaries: list[Annotated[int, Strict()]] = Field(min_length=1)
    values: list[Number]
    name: str = "PiecewiseConstant"

    @model_validator(mode="after")
    def _check_lengths(self) -> PiecewiseConstantDecay:
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(
                "`values` must have one more entry than `boundaries`; received "
                f"{len(self.boundaries)} boundaries and {len(self.values)} values"
            )
        if any(b >= a for b, a in zip(self.boundaries, self.boundaries[1:], strict=False)):
            raise ValueError(
                f"`boundaries` must be strictly increasing; received {self.boundaries}"
            )
        return self

    def at(self, step: int) -> float:
        # bisect_left counts the boundaries strictly below `step`: step == boundary stays in
        # the earlier interval, as Keras's `step <= boundary` test does.
        return self.values[bisect.bisect_left(self.boundaries, step)]


ScheduleModel = ExponentialDecay | CosineDecay | PiecewiseConstantDecay
Schedule = by_name_or_mapping(ExponentialDecay, CosineDecay, PiecewiseConstantDecay)
LearningRate = NonNegativeNumber | Schedule


def learning_rate_at(learning_rate: float | ScheduleModel, step: int) -> float:
    """The learning rate for 0-based optimizer step `step`: a float as is, a schedule evaluated."""
    if isinstance(learning_rate, int | float):
        return float(learning_rate)
    return float(learning_rate.at(step))
