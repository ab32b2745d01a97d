"""Initializers: Keras's fans, the distributions' moments and bounds on large draws,
orthogonality, seeds, pydantic spellings, and (oracle) agreement with Keras 3."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from pydantic import ValidationError

from layerctl.config import Frozen
from layerctl.errors import SpecError
from layerctl.initializers import (
    TRUNCATED_NORMAL_STDDEV,
    GlorotUniform,
    Initializer,
    RandomNormal,
    VarianceScaling,
    compute_fans,
    initialize,
    parse_initializer,
    truncated_normal,
)


class _Layer(Frozen):
    kernel_initializer: Initializer


def _draw(spec, shape, seed: int = 0, dtype=np.float64) -> np.ndarray:
    return initialize(spec, shape, np.random.default_rng(seed), dtype=dtype)


# --- fans ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "fans"),
    [
        ((), (1, 1)),
        ((7,), (7, 7)),
        ((3, 4), (3, 4)),  # Dense kernel (in, units)
        ((5, 8, 16), (40, 80)),  # Conv1D kernel (k, in, filters)
        ((3, 3, 8, 16), (72, 144)),  # Conv2D kernel (kh, kw, in, filters)
        ((2, 3, 4, 5, 6), (120, 144)),  # Conv3D kernel
    ],
)
def test_compute_fans(shape: tuple[int, ...], fans: tuple[int, int]) -> None:
    assert compute_fans(shape) == fans


def test_compute_fans_with_explicit_axes() -> None:
    assert compute_fans((3, 4, 5), input_axes=(0, 1), output_axes=(2,)) == (12, 5)
    # Both must be given to take effect, as in Keras.
    assert compute_fans((3, 4, 5), input_axes=(0, 1)) == (12, 15)


# --- distributions -------------------------------------------------------------------------------

DENSE = (400, 500)  # fan_in 400, fan_out 500: 200 000 draws
CONV = (3, 3, 40, 50)  # fan_in 360, fan_out 450: 54 000 draws


def _check_moments(w: np.ndarray, std: float, rel: float = 0.015) -> None:
    assert abs(w.mean()) < 5 * std / math.sqrt(w.size)
    assert w.std() == pytest.approx(std, rel=rel)


@pytest.mark.parametrize(
    ("name", "shape", "limit"),
    [
        ("glorot_uniform", DENSE, math.sqrt(6 / 900)),
        ("he_uniform", DENSE, math.sqrt(6 / 400)),
        ("lecun_uniform", DENSE, math.sqrt(3 / 400)),
        ("glorot_uniform", CONV, math.sqrt(6 / 810)),
        ("he_uniform", CONV, math.sqrt(6 / 360)),
        ("random_uniform", DENSE, 0.05),
        ("uniform", DENSE, 0.05),
    ],
)
def test_uniform_initializers(name: str, shape: tuple[int, ...], limit: float) -> None:
    w = _draw(name, shape)
    assert w.shape == shape
    assert w.min() >= -limit and w.max() < limit
    assert w.min() < -0.99 * limit and w.max() > 0.99 * limit  # fills the whole interval
    _check_moments(w, limit / math.sqrt(3))


@pytest.mark.parametrize(
    ("name", "shape", "std"),
    [
        ("glorot_normal", DENSE, math.sqrt(2 / 900)),
        ("he_normal", DENSE, math.sqrt(2 / 400)),
        ("lecun_normal", DENSE, math.sqrt(1 / 400)),
        ("he_normal", CONV, math.sqrt(2 / 360)),
        ("lecun_normal", CONV, math.sqrt(1 / 360)),
    ],
)
def test_truncated_variance_scaling_keeps_the_target_std(name: str, shape, std: float) -> None:
    # stddev = target/0.8796, truncated at two of those: the draw's std is the target itself.
    w = _draw(name, shape)
    bound = 2 * std / TRUNCATED_NORMAL_STDDEV
    assert np.abs(w).max() < bound and np.abs(w).max() > 0.99 * bound
    _check_moments(w, std)


def test_random_normal_and_truncated_normal() -> None:
    w = _draw("normal", DENSE)
    _check_moments(w, 0.05)
    assert np.abs(w).max() > 0.2  # untruncated: 4-sigma values exist among 200 000
    w = _draw({"type": "random_normal", "mean": 1.0, "stddev": 0.1}, DENSE)
    assert w.mean() == pytest.approx(1.0, abs=1e-3)
    w = _draw("truncated_normal", DENSE)
    assert np.abs(w).max() < 0.1
    _check_moments(w, 0.05 * TRUNCATED_NORMAL_STDDEV)


def test_truncated_normal_helper_redraws_everything_outside() -> None:
    values = truncated_normal(np.random.default_rng(1), (1000, 1000), mean=3.0, stddev=2.0)
    assert values.min() > -1.0 and values.max() < 7.0
    assert values.std() == pytest.approx(2 * TRUNCATED_NORMAL_STDDEV, rel=3e-3)


@pytest.mark.parametrize(
    ("config", "std"),
    [
        (
            {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"},
            math.sqrt(2 / 500),
        ),
        ({"scale": 0.5, "mode": "fan_avg", "distribution": "uniform"}, math.sqrt(0.5 / 450)),
        ({"scale": 3.0, "mode": "fan_in", "distribution": "normal"}, math.sqrt(3 / 400)),
    ],
)
def test_variance_scaling(config: dict, std: float) -> None:
    w = _draw({"type": "variance_scaling", **config}, DENSE)
    _check_moments(w, std)
    if config["distribution"] == "untruncated_normal":
        assert np.abs(w).max() > 3 * std


@pytest.mark.parametrize(
    ("shape", "gain"), [((50, 50), 1.0), ((60, 20), 1.0), ((20, 60), 2.0), ((3, 3, 4, 8), 0.5)]
)
def test_orthogonal(shape: tuple[int, ...], gain: float) -> None:
    w = _draw({"type": "orthogonal", "gain": gain}, shape)
    assert w.shape == shape
    flat = w.reshape(-1, shape[-1])
    gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
    np.testing.assert_allclose(gram, gain**2 * np.eye(len(gram)), atol=1e-12)


def test_orthogonal_is_not_always_the_same_matrix() -> None:
    a, b = _draw("orthogonal", (4, 4), seed=1), _draw("orthogonal", (4, 4), seed=2)
    assert not np.allclose(a, b)


def test_rank_errors() -> None:
    with pytest.raises(SpecError, match="orthogonal"):
        _draw("orthogonal", (5,))
    with pytest.raises(SpecError, match="identity"):
        _draw("identity", (2, 2, 2))


def test_constant_initializers() -> None:
    np.testing.assert_array_equal(_draw("zeros", (2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(_draw("one", (4,)), np.ones(4))
    np.testing.assert_array_equal(_draw({"type": "constant", "value": 0.25}, (2,)), [0.25, 0.25])
    np.testing.assert_array_equal(
        _draw({"type": "identity", "gain": 3.0}, (2, 3)), [[3, 0, 0], [0, 3, 0]]
    )


# --- dtype, rng and seeds ------------------------------------------------------------------------


def test_dtype_defaults_to_float32_and_float64_agrees_to_rounding() -> None:
    w32 = initialize("glorot_uniform", (30, 20), np.random.default_rng(4))
    w64 = initialize("glorot_uniform", (30, 20), np.random.default_rng(4), dtype=np.float64)
    assert w32.dtype == np.float32 and w64.dtype == np.float64
    np.testing.assert_array_equal(w32, w64.astype(np.float32))


def test_unseeded_spec_advances_the_generator() -> None:
    rng = np.random.default_rng(0)
    assert not np.array_equal(
        initialize("he_normal", (5, 5), rng), initialize("he_normal", (5, 5), rng)
    )


def test_seeded_spec_is_reproducible_on_its_own_and_leaves_rng_alone() -> None:
    spec = {"type": "glorot_normal", "seed": 42}
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    first = initialize(spec, (6, 7), rng)
    assert rng.bit_generator.state == state
    np.testing.assert_array_equal(first, initialize(spec, (6, 7), np.random.default_rng(99)))
    expected = initialize("glorot_normal", (6, 7), np.random.default_rng(42))
    np.testing.assert_array_equal(first, expected)


# --- pydantic spellings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("he_normal", "he_normal"),
        ("HeNormal", "he_normal"),
        ("normal", "random_normal"),
        ("uniform", "random_uniform"),
        ("zero", "zeros"),
        ("one", "ones"),
        ("OrthogonalInitializer", "orthogonal"),
        ("IdentityInitializer", "identity"),
        ({"type": "TruncatedNormal", "stddev": 0.1}, "truncated_normal"),
        ({"class_name": "GlorotUniform", "config": {"seed": None}}, "glorot_uniform"),
        ({"class_name": "RandomUniform", "config": {"minval": 0, "maxval": 1}}, "random_uniform"),
    ],
)
def test_spellings(value, canonical: str) -> None:
    assert _Layer(kernel_initializer=value).kernel_initializer.type == canonical


def test_keras_config_fields_are_kept() -> None:
    config = {
        "class_name": "VarianceScaling",
        "config": {"seed": 3, "scale": 2.0, "mode": "fan_out", "distribution": "uniform",
                   "input_axes": None, "output_axes": [1]},
    }  # fmt: skip
    spec = parse_initializer(config)
    assert spec == VarianceScaling(
        type="variance_scaling", seed=3, scale=2.0, mode="fan_out", distribution="uniform",
        output_axes=(1,),
    )  # fmt: skip
    assert parse_initializer({"type": "normal", "stddev": 0.2}) == RandomNormal(
        type="random_normal", stddev=0.2
    )
    assert parse_initializer(GlorotUniform(type="glorot_uniform")).type == "glorot_uniform"


@pytest.mark.parametrize(
    "bad",
    [
        "glorot",
        "init",
        {"type": "he_normal", "scale": 2.0},  # the presets take no scale
        {"type": "random_normal", "stddev": -1},
        {"type": "variance_scaling", "scale": 0},
        {"type": "variance_scaling", "mode": "fan_sum"},
        {"type": "variance_scaling", "distribution": "cauchy"},
        {"type": "zeros", "seed": 1},  # Keras's Zeros takes no seed
        {"type": "glorot_uniform", "seed": -1},
    ],
)
def test_invalid_specs(bad) -> None:
    with pytest.raises(ValidationError):
        _Layer(kernel_initializer=bad)


# --- oracle --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras", reason="Keras 3 (the oracle extra) is not installed")


@pytest.mark.oracle
@pytest.mark.parametrize("shape", [(), (7,), (3, 4), (5, 8, 16), (3, 3, 8, 16), (2, 3, 4, 5, 6)])
def test_compute_fans_matches_keras(keras, shape) -> None:
    from keras.src.initializers.random_initializers import compute_fans as keras_fans

    assert compute_fans(shape) == keras_fans(shape)


KERAS_CLASSES = [
    "Zeros", "Ones", "Constant", "Identity", "RandomNormal", "RandomUniform", "TruncatedNormal",
    "Orthogonal", "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal",
    "LecunUniform", "LecunNormal",
]  # fmt: skip


@pytest.mark.oracle
@pytest.mark.parametrize("class_name", KERAS_CLASSES)
def test_keras_serialized_configs_parse(keras, class_name: str) -> None:
    keras_initializer = getattr(keras.initializers, class_name)()
    spec = parse_initializer(keras.initializers.serialize(keras_initializer))
    assert type(spec).__name__ == class_name
    # Every Keras default equals ours.
    for key, value in keras_initializer.get_config().items():
        assert getattr(spec, key) == (tuple(value) if isinstance(value, list) else value), key


@pytest.mark.oracle
@pytest.mark.parametrize(
    "config",
    [
        "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
        "lecun_normal", "random_normal", "random_uniform", "truncated_normal",
        {"class_name": "VarianceScaling",
         "config": {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"}},
        {"class_name": "Constant", "config": {"value": 0.3}},
        {"class_name": "Identity", "config": {"gain": 2.0}},
        "zeros", "ones",
    ],
)  # fmt: skip
def test_distribution_matches_keras(keras, config) -> None:
    shape = (300, 200)
    keras.utils.set_random_seed(0)  # deterministic Keras draws: the test cannot flake
    expected = keras.ops.convert_to_numpy(keras.initializers.get(config)(shape)).astype(np.float64)
    ours = _draw(config, shape, dtype=np.float32).astype(np.float64)
    std = expected.std()
    assert ours.std() == pytest.approx(std, rel=0.02)
    assert ours.mean() == pytest.approx(expected.mean(), abs=8 * std / math.sqrt(ours.size) + 1e-12)
    # Tails by quantile, not min/max: Keras's torch truncated_normal keeps the first of four draws
    # when all four fall outside two sigma (about 1 in 230 000), so its extremes are not sharp.
    for q in (0.01, 0.99):
        assert np.quantile(ours, q) == pytest.approx(np.quantile(expected, q), rel=0.03, abs=1e-7)
