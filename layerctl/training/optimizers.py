"""Optimizers that update one flat parameter buffer in place, with Keras 3's update rules.

The graph keeps every trainable weight as a view into one contiguous array, and the gradients
likewise, so an optimizer step is a handful of whole-buffer NumPy operations written into
preallocated buffers (`out=`), not a Python loop over variables: the flat in-place Adam measured
about 7x faster than a per-array one with temporaries (`benchmarks/optimizer.py`). Large buffers
are updated in slices on every core (`layerctl.ops.parallel`): the rules are elementwise.

This module owns the optimizer specs (`sgd`, `adam`, `adamw`, `rmsprop`, `adagrad`, with Keras's
argument names, defaults and update rules from `keras/src/optimizers/*.py`) and `FlatOptimizer`,
their running state. One step does what Keras's `BaseOptimizer.apply` does, in Keras's order:

1. clip the gradients: `clipnorm` clips each variable's gradient by its own L2 norm (so the
   optimizer is told the variables' `[start, stop)` segments), `global_clipnorm` clips all of
   them by their joint norm, `clipvalue` clips elementwise; at most one may be set, and a
   value of 0 means off, as in Keras;
2. decay the weights (decoupled): `w -= w * weight_decay * lr` for every variable the decay
   mask keeps (Keras decays every trainable variable unless excluded);
3. apply the algorithm's update with the learning rate for this step;
4. increment `iterations` (schedules and Adam's bias correction read it).

Constraints (max_norm, ...) are applied after the step by the graph, not here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, get_args

import numpy as np
from pydantic import Field, Strict, model_validator

from layerctl.config import Frozen, by_name_or_mapping, choice_parser
from layerctl.errors import Problem, WeightsError
from layerctl.ops.parallel import for_each_chunk
from layerctl.training.schedules import (
    LearningRate,
    NonNegativeNumber,
    Number,
    ScheduleModel,
    learning_rate_at,
)

Fraction = Annotated[float, Strict(), Field(ge=0.0, le=1.0)]
Beta = Annotated[float, Strict(), Field(ge=0.0, lt=1.0)]
Slots = dict[str, "np.ndarray"]


class OptimizerSpec(Frozen):
    """Arguments every Keras optimizer takes. Keras's EMA, loss scaling and gradient
    accumulation are accepted only at their defaults, so pasted Keras configs load."""

    type: str
    learning_rate: LearningRate = 0.001
    weight_decay: NonNegativeNumber | None = None
    clipnorm: NonNegativeNumber | None = None
    clipvalue: NonNegativeNumber | None = None
    global_clipnorm: NonNegativeNumber | None = None
    name: str | None = None
    use_ema: bool = False
    ema_momentum: Fraction = 0.99
    ema_overwrite_frequency: Annotated[int, Strict()] | None = None
    loss_scale_factor: Number | None = None
    gradient_accumulation_steps: Annotated[int, Strict()] | None = None

    @model_validator(mode="after")
    def _check_common(self) -> OptimizerSpec:
        clips = {"clipnorm": self.clipnorm, "clipvalue": self.clipvalue,
                 "global_clipnorm": self.global_clipnorm}
        chosen = [f"{k}={v}" for k, v in clips.items() if v is not None]
        if len(chosen) > 1:
            raise ValueError(
                "only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set; "
                f"received {', '.join(chosen)}"
            )
        unsupported = {"use_ema": self.use_ema or None,
                       "ema_overwrite_frequency": self.ema_overwrite_frequency,
                       "loss_scale_factor": self.loss_scale_factor,
                       "gradient_accumulation_steps": self.gradient_accumulation_steps}
        for key, value in unsupported.items():
            if value is not None:
                raise ValueError(f"`{key}: {value}` is not supported by layerctl; remove it")
        return self

    def slot_initial_values(self) -> dict[str, float]:
        """Per-parameter state buffers this algorithm keeps (Keras's names), and their start."""
        return {}

    def update(self, params: np.ndarray, grads: np.ndarray, slots: Slots,
               scratch: np.ndarray, lr: np.floating, step: int) -> None:
        """Apply one step to `params` in place; `step` counts from 1; `scratch` is free."""
        raise NotImplementedError


class SGD(OptimizerSpec):
    """`w -= lr * g`; with momentum `m = momentum * m - lr * g`, then `w += m`, or with
    Nesterov `w += momentum * m - lr * g` (using the new `m`)."""

    type: Literal["sgd", "SGD"] = "sgd"
    learning_rate: LearningRate = 0.01
    momentum: Fraction = 0.0
    nesterov: bool = False

    def slot_initial_values(self) -> dict[str, float]:
        return {"momentum": 0.0} if self.momentum != 0 else {}

    def update(self, params, grads, slots, scratch, lr, step) -> None:
        step_size = np.multiply(grads, lr, out=scratch)
        if self.momentum == 0:
            params -= step_size
            return
        momentum = slots["momentum"]
        momentum *= self.momentum
        momentum -= step_size
        if self.nesterov:
            params -= step_size
            params += np.multiply(momentum, self.momentum, out=scratch)
        else:
            params += momentum


class Adam(OptimizerSpec):
    """`m += (g - m)(1 - beta_1)`, `v += (g^2 - v)(1 - beta_2)`, then
    `w -= lr_t * m / (sqrt(v) + epsilon)` with `lr_t = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)`;
    AMSGrad uses the running maximum of `v`."""

    type: Literal["adam", "Adam"] = "adam"
    beta_1: Beta = 0.9
    beta_2: Beta = 0.999
    epsilon: NonNegativeNumber = 1e-7
    amsgrad: bool = False

    def slot_initial_values(self) -> dict[str, float]:
        slots = {"momentum": 0.0, "velocity": 0.0}
        return slots | {"velocity_hat": 0.0} if self.amsgrad else slots

    def update(self, params, grads, slots, scratch, lr, step) -> None:
        dtype = params.dtype.type
        # Bias correction in the parameters' dtype, as Keras casts it to the variable's.
        t = dtype(step)
        alpha = lr * np.sqrt(1 - dtype(self.beta_2) ** t) / (1 - dtype(self.beta_1) ** t)
        momentum, velocity = slots["momentum"], slots["velocity"]
        momentum += np.multiply(np.subtract(grads, momentum, out=scratch), 1 - self.beta_1,
                                out=scratch)
        np.square(grads, out=scratch)
        scratch -= velocity
        scratch *= 1 - self.beta_2
        velocity += scratch
        if self.amsgrad:
            velocity = np.maximum(slots["velocity_hat"], velocity, out=slots["velocity_hat"])
        np.sqrt(velocity, out=scratch)
        scratch += self.epsilon
        np.divide(momentum, scratch, out=scratch)
        scratch *= alpha
        params -= scratch


class AdamW(Adam):
    """Adam with decoupled weight decay on by default (`weight_decay=0.004`)."""

    type: Literal["adamw", "AdamW"] = "adamw"  # type: ignore[assignment]
    weight_decay: NonNegativeNumber = 0.004  # type: ignore[assignment]


class RMSprop(OptimizerSpec):
    """`v = rho v + (1 - rho) g^2`; centered also tracks `a = rho a + (1 - rho) g` and divides
    by `sqrt(v - a^2 + epsilon)` instead of `sqrt(v + epsilon)`; the increment
    `lr g / sqrt(...)` goes through a momentum buffer when `momentum > 0`."""

    type: Literal["rmsprop", "RMSprop"] = "rmsprop"
    rho: Fraction = 0.9
    momentum: NonNegativeNumber = 0.0
    epsilon: NonNegativeNumber = 1e-7
    centered: bool = False

    def slot_initial_values(self) -> dict[str, float]:
        slots = {"velocity": 0.0}
        if self.momentum > 0:
            slots["momentum"] = 0.0
        if self.centered:
            slots["average_gradient"] = 0.0
        return slots

    def update(self, params, grads, slots, scratch, lr, step) -> None:
        velocity = slots["velocity"]
        velocity *= self.rho
        velocity += np.multiply(np.square(grads, out=scratch), 1 - self.rho, out=scratch)
        if self.centered:
            average = slots["average_gradient"]
            average *= self.rho
            average += np.multiply(grads, 1 - self.rho, out=scratch)
            np.subtract(velocity, np.square(average, out=scratch), out=scratch)
            scratch += self.epsilon
        else:
            np.add(velocity, self.epsilon, out=scratch)
        np.sqrt(scratch, out=scratch)
        increment = np.divide(grads, scratch, out=scratch)
        increment *= lr
        if self.momentum > 0:
            momentum = slots["momentum"]
            momentum *= self.momentum
            momentum += increment
            params -= momentum
        else:
            params -= increment


class Adagrad(OptimizerSpec):
    """`acc += g^2`, `w -= lr g / sqrt(acc + epsilon)`; `acc` starts at
    `initial_accumulator_value`."""

    type: Literal["adagrad", "Adagrad"] = "adagrad"
    initial_accumulator_value: NonNegativeNumber = 0.1
    epsilon: NonNegativeNumber = 1e-7

    def slot_initial_values(self) -> dict[str, float]:
        return {"accumulator": self.initial_accumulator_value}

    def update(self, params, grads, slots, scratch, lr, step) -> None:
        accumulator = slots["accumulator"]
        accumulator += np.square(grads, out=scratch)
        np.add(accumulator, self.epsilon, out=scratch)
        np.sqrt(scratch, out=scratch)
        np.divide(grads, scratch, out=scratch)
        scratch *= lr
        params -= scratch


OptimizerModel = SGD | Adam | AdamW | RMSprop | Adagrad
Optimizer = by_name_or_mapping(SGD, Adam, AdamW, RMSprop, Adagrad)


parse_optimizer = choice_parser(Optimizer, get_args(OptimizerModel))
"""An optimizer spec from `"adam"`, `{type: adam, ...}` or Keras's `{class_name, config}`;
raises pydantic's ValidationError (the spec loader locates it)."""


class FlatOptimizer:
    """One optimizer's running state over one flat parameter buffer.

    `segments` are the `[start, stop)` slices of the variables, in order, tiling the buffer;
    `decay_mask` (one bool per segment, default all True) says which variables weight decay
    applies to. `apply(params, grads)` updates `params` in place and never writes to `grads`.
    """

    def __init__(self, spec: OptimizerModel, segments: Sequence[tuple[int, int]],
                 dtype: Any = np.float32, decay_mask: Sequence[bool] | None = None) -> None:
        self.spec = spec
        self.segments = _checked_segments(segments)
        self.size = self.segments[-1][1] if self.segments else 0
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"optimizer buffers must be floating point; received {self.dtype}")
        self.iterations = 0
        self.learning_rate_scale = 1.0
        self.slots: Slots = {
            name: np.full(self.size, start, self.dtype)
            for name, start in spec.slot_initial_values().items()
        }
        self._scratch = np.empty(self.size, self.dtype)
        clipping = bool(spec.clipnorm or spec.clipvalue or spec.global_clipnorm)
        self._clipped = np.empty(self.size, self.dtype) if clipping else None
        self._decay_vector = self._make_decay_vector(decay_mask)

    def _make_decay_vector(self, decay_mask: Sequence[bool] | None) -> np.ndarray | None:
        """None when weight decay applies to the whole buffer, else 1 where it applies."""
        if decay_mask is None:
            return None
        if len(decay_mask) != len(self.segments):
            raise ValueError(
                f"decay_mask has {len(decay_mask)} entries for {len(self.segments)} segments"
            )
        if all(decay_mask):
            return None
        vector = np.zeros(self.size, self.dtype)
        for (start, stop), decays in zip(self.segments, decay_mask, strict=True):
            vector[start:stop] = 1.0 if decays else 0.0
        return vector

    def learning_rate_now(self) -> float:
        """The rate the next `apply` uses: the schedule at `iterations`, times the scale."""
        return learning_rate_at(self.spec.learning_rate, self.iterations) * self.learning_rate_scale

    def set_learning_rate_scale(self, scale: float) -> None:
        """Multiply the spec's learning rate (or schedule) by `scale` from the next step on."""
        if not np.isfinite(scale) or scale < 0:
            raise ValueError(f"learning-rate scale must be finite and >= 0; received {scale}")
        self.learning_rate_scale = float(scale)

    def set_learning_rate(self, rate: float) -> None:
        """Make the next step's rate `rate`, as Keras's `optimizer.learning_rate = rate` does
        for ReduceLROnPlateau; a schedule keeps its shape, scaled (Keras refuses schedules)."""
        base = learning_rate_at(self.spec.learning_rate, self.iterations)
        if base == 0:
            raise ValueError("cannot rescale a learning rate of 0")
        self.set_learning_rate_scale(rate / base)

    def apply(self, params: np.ndarray, grads: np.ndarray) -> None:
        """One optimizer step: clip, decay, update `params` in place, count the iteration."""
        self._check_buffer(params, "params")
        self._check_buffer(grads, "grads")
        lr = self.dtype.type(self.learning_rate_now())
        grads = self._clip(grads)   # norms need the whole buffer: before the split
        step = self.iterations + 1

        # Decay and update are elementwise, so updating slices at once computes the same bits.
        def update_part(part: slice) -> None:
            slots = {name: slot[part] for name, slot in self.slots.items()}
            self._decay_weights(params[part], lr, part)
            self.spec.update(params[part], grads[part], slots, self._scratch[part], lr, step)

        touched = (3 + len(self.slots)) * params.nbytes
        for_each_chunk(update_part, self.size, touched)
        self.iterations += 1

    def _check_buffer(self, array: np.ndarray, what: str) -> None:
        if array.shape != (self.size,) or array.dtype != self.dtype:
            raise ValueError(
                f"{what} must be a flat {self.dtype} buffer of {self.size} values; "
                f"received {array.dtype} {array.shape}"
            )

    def _clip(self, grads: np.ndarray) -> np.ndarray:
        spec, out = self.spec, self._clipped
        if spec.clipnorm:
            np.copyto(out, grads)
            limit = self.dtype.type(spec.clipnorm)
            # Keras clips each variable by its own norm: one loop over variables, not values.
            for start, stop in self.segments:
                segment = out[start:stop]
                squared = np.dot(segment, segment)
                norm = np.sqrt(squared) if squared > 0 else squared
                segment *= limit
                segment /= max(norm, limit)
            return out
        if spec.global_clipnorm:
            limit = self.dtype.type(spec.global_clipnorm)
            norm = np.sqrt(np.dot(grads, grads))
            with np.errstate(divide="ignore", invalid="ignore"):
                # As Keras: a no-op for a finite norm <= limit, NaN for an inf/NaN norm.
                scale = limit * np.minimum(1 / norm, 1 / limit) + (norm - norm)
            return np.multiply(grads, scale, out=out)
        if spec.clipvalue:
            return np.clip(grads, -spec.clipvalue, spec.clipvalue, out=out)
        return grads

    def _decay_weights(self, params: np.ndarray, lr: np.floating, part: slice) -> None:
        """Decoupled weight decay of `params`, the `part` of the buffer."""
        if not self.spec.weight_decay:
            return
        rate = self.dtype.type(self.spec.weight_decay) * lr
        decay = np.multiply(params, rate, out=self._scratch[part])
        if self._decay_vector is not None:
            decay *= self._decay_vector[part]
        params -= decay

    def keras_variable_count(self) -> int:
        """What Keras's summary counts as "Optimizer params": the iteration counter, the
        learning-rate variable (absent for a schedule) and every slot value."""
        has_rate_variable = not isinstance(self.spec.learning_rate, ScheduleModel)
        return 1 + int(has_rate_variable) + self.size * len(self.slots)

    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to resume exactly: iterations, learning-rate scale, slot copies."""
        return {
            "iterations": np.array(self.iterations, dtype=np.int64),
            "learning_rate_scale": np.array(self.learning_rate_scale, dtype=np.float64),
            **{name: buffer.copy() for name, buffer in self.slots.items()},
        }

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore `state()`'s output; checks everything before changing anything."""
        problems = _state_problems(state, self.slots.keys(), self.size, self.spec.type)
        if problems:
            raise WeightsError(problems=[Problem(p) for p in problems])
        for name, buffer in self.slots.items():
            np.copyto(buffer, np.asarray(state[name]), casting="same_kind")
        self.iterations = int(state["iterations"])
        self.learning_rate_scale = float(state["learning_rate_scale"])


def make_optimizer(spec: OptimizerModel, segments: Sequence[tuple[int, int]],
                   dtype: Any = np.float32,
                   decay_mask: Sequence[bool] | None = None) -> FlatOptimizer:
    """A fresh optimizer (iterations 0, zeroed slots) for a buffer tiled by `segments`."""
    return FlatOptimizer(spec, segments, dtype, decay_mask)


def _checked_segments(segments: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Segments must tile `[0, size)` in order: every value belongs to exactly one variable."""
    checked = tuple((int(start), int(stop)) for start, stop in segments)
    expected_start = 0
    for start, stop in checked:
        if start != expected_start or stop < start:
            raise ValueError(f"segments must tile the buffer in order; received {list(checked)}")
        expected_start = stop
    return checked


def _state_problems(state: Mapping[str, np.ndarray], slot_names: Iterable[str], size: int,
                    optimizer: str) -> list[str]:
    expected = {"iterations", "learning_rate_scale", *slot_names}
    problems = [
        f"optimizer state lacks '{name}' (was it saved by a different {optimizer} setup?)"
        for name in sorted(expected - state.keys())
    ]
    problems += [
        f"optimizer state has '{name}', which {optimizer} with these arguments does not keep"
        for name in sorted(state.keys() - expected)
    ]
    for name in sorted(expected & state.keys()):
        value = np.asarray(state[name])
        if name == "iterations":
            ok = value.shape == () and value.dtype.kind in "iu" and value >= 0
        elif name == "learning_rate_scale":
            ok = value.shape == () and value.dtype.kind == "f" and np.isfinite(value) and value >= 0
        else:
            ok = value.shape == (size,) and value.dtype.kind == "f"
        if not ok:
            problems.append(
                f"optimizer state '{name}' has dtype {value.dtype} and shape {value.shape}, "
                f"which does not fit {size} parameters"
            )
    return problems
