"""Weight initializers: their spec models (Keras 3 names and defaults) and the NumPy draws.

This module owns the allow-list of initializers a spec may name, as frozen pydantic models
combined into the `Initializer` field type (accepting `"he_normal"`, `{type: random_normal,
stddev: 0.1}` or Keras's `{class_name: RandomNormal, config: {...}}`), Keras's fan computation
(`compute_fans`) and `initialize`, which draws an array with Keras 3's formulas:

- variance scaling (glorot/he/lecun and `variance_scaling` itself): scale / n with
  n = fan_in, fan_out or their mean (each at least 1); "truncated_normal" draws a normal
  truncated at two standard deviations with stddev sqrt(scale/n)/0.87962566 (so that the
  truncated draw has standard deviation sqrt(scale/n)), "untruncated_normal" a plain normal with
  stddev sqrt(scale/n), "uniform" U(-sqrt(3·scale/n), +sqrt(3·scale/n)).
- `orthogonal`: Q of the QR decomposition of a normal matrix (rows = product of all but the last
  axis), signs fixed by diag(R), times `gain`.

Random draws are made in float64 and cast, so float32 and float64 weights drawn with the same
generator state agree to float32 rounding. The exact random streams differ from Keras's (a
different generator), only the distributions agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import Field, field_validator

from layerctl.config import Frozen, by_name_or_mapping, choice_parser
from layerctl.errors import SpecError

if TYPE_CHECKING:
    import numpy.typing as npt

# Standard deviation of a standard normal truncated to (-2, 2): Keras divides by it so that a
# truncated draw keeps the intended standard deviation.
TRUNCATED_NORMAL_STDDEV = 0.87962566103423978

Seed = Annotated[int, Field(ge=0)] | None
Axes = tuple[int, ...] | None


class Zeros(Frozen):
    type: Literal["zeros", "zero", "Zeros"]


class Ones(Frozen):
    type: Literal["ones", "one", "Ones"]


class Constant(Frozen):
    type: Literal["constant", "Constant"]
    value: float = 0.0


class Identity(Frozen):
    """gain · eye(rows, cols); only for 2-D weights."""

    type: Literal["identity", "Identity", "IdentityInitializer"]
    gain: float = 1.0


class RandomNormal(Frozen):
    type: Literal["random_normal", "normal", "RandomNormal"]
    mean: float = 0.0
    stddev: float = Field(0.05, ge=0)
    seed: Seed = None


class RandomUniform(Frozen):
    type: Literal["random_uniform", "uniform", "RandomUniform"]
    minval: float = -0.05
    maxval: float = 0.05
    seed: Seed = None


class TruncatedNormal(Frozen):
    """Normal(mean, stddev) with values beyond two standard deviations drawn again."""

    type: Literal["truncated_normal", "TruncatedNormal"]
    mean: float = 0.0
    stddev: float = Field(0.05, ge=0)
    seed: Seed = None


class Orthogonal(Frozen):
    type: Literal["orthogonal", "Orthogonal", "OrthogonalInitializer"]
    gain: float = 1.0
    seed: Seed = None


class _FanBased(Frozen):
    """Keras 3.15 lets the fans come from chosen axes (both must be given to take effect)."""

    seed: Seed = None
    input_axes: Axes = None
    output_axes: Axes = None


Mode = Literal["fan_in", "fan_out", "fan_avg"]
Distribution = Literal["truncated_normal", "untruncated_normal", "uniform"]


class VarianceScaling(_FanBased):
    type: Literal["variance_scaling", "VarianceScaling"]
    scale: float = Field(1.0, gt=0)
    mode: Mode = "fan_in"
    distribution: Distribution = "truncated_normal"

    @field_validator("distribution", mode="before")
    @classmethod
    def _normal_means_truncated(cls, value: Any) -> Any:
        # Keras lower-cases the name and reads "normal" as "truncated_normal".
        if isinstance(value, str):
            value = value.lower()
            return "truncated_normal" if value == "normal" else value
        return value


class GlorotUniform(_FanBased):
    type: Literal["glorot_uniform", "GlorotUniform"]


class GlorotNormal(_FanBased):
    type: Literal["glorot_normal", "GlorotNormal"]


class HeUniform(_FanBased):
    type: Literal["he_uniform", "HeUniform"]


class HeNormal(_FanBased):
    type: Literal["he_normal", "HeNormal"]


class LecunUniform(_FanBased):
    type: Literal["lecun_uniform", "LecunUniform"]


class LecunNormal(_FanBased):
    type: Literal["lecun_normal", "LecunNormal"]


# The named variance-scaling initializers: (scale, mode, distribution).
_PRESETS: dict[str, tuple[float, Mode, Distribution]] = {
    "glorot_uniform": (1.0, "fan_avg", "uniform"),
    "glorot_normal": (1.0, "fan_avg", "truncated_normal"),
    "he_uniform": (2.0, "fan_in", "uniform"),
    "he_normal": (2.0, "fan_in", "truncated_normal"),
    "lecun_uniform": (1.0, "fan_in", "uniform"),
    "lecun_normal": (1.0, "fan_in", "truncated_normal"),
}

INITIALIZER_MODELS = (
    Zeros, Ones, Constant, Identity, RandomNormal, RandomUniform, TruncatedNormal, Orthogonal,
    VarianceScaling, GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform, LecunNormal,
)  # fmt: skip
InitializerSpec = (
    Zeros | Ones | Constant | Identity | RandomNormal | RandomUniform | TruncatedNormal
    | Orthogonal | VarianceScaling | GlorotUniform | GlorotNormal | HeUniform | HeNormal
    | LecunUniform | LecunNormal
)  # fmt: skip
Initializer = by_name_or_mapping(*INITIALIZER_MODELS)
"""Field type: an initializer by name, by `{type: ...}` mapping or by Keras class_name/config."""


parse_initializer = choice_parser(Initializer, INITIALIZER_MODELS)
"""A spec model from any accepted spelling of a initializer (a model passes through unchanged)."""


def compute_fans(
    shape: Sequence[int], input_axes: Axes = None, output_axes: Axes = None
) -> tuple[int, int]:
    """(fan_in, fan_out) as Keras computes them: scalar 1/1; 1-D both shape[0]; 2-D (in, out);
    a kernel (k..., in, out) multiplies both by the receptive field prod(k). When both
    `input_axes` and `output_axes` are given, the fans are the products over those axes."""
    shape = tuple(int(d) for d in shape)
    if input_axes is not None and output_axes is not None:
        return math.prod(shape[a] for a in input_axes), math.prod(shape[a] for a in output_axes)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def truncated_normal(
    rng: np.random.Generator, shape: Sequence[int], mean: float = 0.0, stddev: float = 1.0
) -> np.ndarray:
    """Normal(mean, stddev) restricted to two standard deviations, by redrawing the values that
    fall outside (about 4.6% each round, so a handful of rounds over ever fewer values)."""
    values = rng.standard_normal(tuple(shape))
    outside = np.flatnonzero(np.abs(values) >= 2)
    while outside.size:
        redrawn = rng.standard_normal(outside.size)
        values.flat[outside] = redrawn
        outside = outside[np.abs(redrawn) >= 2]
    return mean + stddev * values


def _variance_scaling(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    preset: tuple[float, Mode, Distribution],
    axes: tuple[Axes, Axes],
) -> np.ndarray:
    scale, mode, distribution = preset
    fan_in, fan_out = compute_fans(shape, *axes)
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    scale /= max(1.0, n)
    if distribution == "truncated_normal":
        return truncated_normal(rng, shape, 0.0, math.sqrt(scale) / TRUNCATED_NORMAL_STDDEV)
    if distribution == "untruncated_normal":
        return rng.normal(0.0, math.sqrt(scale), shape)
    limit = math.sqrt(3.0 * scale)
    return rng.uniform(-limit, limit, shape)


def _orthogonal(rng: np.random.Generator, shape: tuple[int, ...], gain: float) -> np.ndarray:
    if len(shape) < 2:
        raise SpecError(
            f"the orthogonal initializer needs a weight of rank 2 or more, got shape {shape}",
            hint="use it for kernels, not for biases",
        )
    rows, cols = math.prod(shape[:-1]), shape[-1]
    q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
    # Multiplying by the signs of diag(R) makes the decomposition unique, hence Q Haar-uniform.
    q *= np.where(np.diag(r) < 0, -1.0, 1.0)
    if rows < cols:
        q = q.T
    return gain * q.reshape(shape)


def _identity(shape: tuple[int, ...], gain: float) -> np.ndarray:
    if len(shape) != 2:
        raise SpecError(f"the identity initializer needs a 2-D weight, got shape {shape}")
    return gain * np.eye(*shape)


def _draw(spec: InitializerSpec, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    match spec:
        case Zeros():
            return np.zeros(shape)
        case Ones():
            return np.ones(shape)
        case Constant(value=value):
            return np.full(shape, value)
        case Identity(gain=gain):
            return _identity(shape, gain)
        case RandomNormal(mean=mean, stddev=stddev):
            return rng.normal(mean, stddev, shape)
        case RandomUniform(minval=low, maxval=high):
            return rng.uniform(low, high, shape)
        case TruncatedNormal(mean=mean, stddev=stddev):
            return truncated_normal(rng, shape, mean, stddev)
        case Orthogonal(gain=gain):
            return _orthogonal(rng, shape, gain)
        case VarianceScaling():
            preset = (spec.scale, spec.mode, spec.distribution)
            return _variance_scaling(rng, shape, preset, (spec.input_axes, spec.output_axes))
        case _:
            preset = _PRESETS[spec.type]
            return _variance_scaling(rng, shape, preset, (spec.input_axes, spec.output_axes))


def initialize(
    spec: InitializerSpec | str | dict[str, Any],
    shape: Sequence[int],
    rng: np.random.Generator,
    dtype: npt.DTypeLike = np.float32,
) -> np.ndarray:
    """A new array of `shape` and `dtype` drawn as `spec` says. A spec with its own `seed` draws
    from `numpy.random.default_rng(seed)` instead of `rng` (reproducible on its own, and `rng`
    is left untouched); otherwise `rng` advances."""
    spec = parse_initializer(spec)
    shape = tuple(int(d) for d in shape)
    seed = getattr(spec, "seed", None)
    if seed is not None:
        rng = np.random.default_rng(seed)
    return np.asarray(_draw(spec, shape, rng), dtype=dtype)
