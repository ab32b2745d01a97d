"""Learning-rate schedules: hand-computed values, validation, and Keras 3 as the oracle."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from layerctl.training.schedules import (
    CosineDecay,
    ExponentialDecay,
    PiecewiseConstantDecay,
    Schedule,
    learning_rate_at,
)

parse = TypeAdapter(Schedule).validate_python


def test_float_learning_rate_is_constant():
    assert learning_rate_at(0.01, 0) == 0.01
    assert learning_rate_at(0.01, 12345) == 0.01


@pytest.mark.parametrize(("step", "expected"), [
    (0, 0.1), (5, 0.1 * math.sqrt(0.5)), (10, 0.05), (20, 0.025), (15, 0.1 * 0.5**1.5),
])
def test_exponential_decay(step, expected):
    schedule = parse({"type": "exponential_decay", "initial_learning_rate": 0.1,
                      "decay_steps": 10, "decay_rate": 0.5})
    assert learning_rate_at(schedule, step) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("step", "expected"), [(0, 0.1), (9, 0.1), (10, 0.05), (15, 0.05),
                                                (29, 0.025), (30, 0.0125)])
def test_exponential_decay_staircase(step, expected):
    schedule = ExponentialDecay(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5,
                                staircase=True)
    assert learning_rate_at(schedule, step) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("alpha", "step", "expected"), [
    (0.0, 0, 1.0), (0.0, 5, 0.5), (0.0, 10, 0.0), (0.0, 25, 0.0),
    (0.1, 5, 0.55), (0.1, 10, 0.1), (0.1, 99, 0.1),
    (0.0, 2.5, (1 + math.cos(math.pi / 4)) / 2),
])
def test_cosine_decay(alpha, step, expected):
    schedule = CosineDecay(initial_learning_rate=1.0, decay_steps=10, alpha=alpha)
    assert learning_rate_at(schedule, step) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("step", "expected"), [
    (0, 0.0), (1, 0.25), (2, 0.5), (4, 1.0), (9, 0.5), (14, 0.0), (100, 0.0),
])
def test_cosine_decay_with_warmup(step, expected):
    schedule = CosineDecay(initial_learning_rate=0.0, decay_steps=10, warmup_target=1.0,
                           warmup_steps=4)
    assert learning_rate_at(schedule, step) == pytest.approx(expected, abs=1e-12)


def test_cosine_warmup_steps_ignored_without_target():
    with_steps = CosineDecay(initial_learning_rate=1.0, decay_steps=10, warmup_steps=4)
    without = CosineDecay(initial_learning_rate=1.0, decay_steps=10)
    assert [with_steps.at(s) for s in range(12)] == [without.at(s) for s in range(12)]


@pytest.mark.parametrize(("step", "expected"), [(0, 1.0), (10, 1.0), (11, 0.5), (20, 0.5),
                                                (21, 0.1), (10**6, 0.1)])
def test_piecewise_constant(step, expected):
    schedule = parse({"class_name": "PiecewiseConstantDecay",
                      "config": {"boundaries": [10, 20], "values": [1.0, 0.5, 0.1]}})
    assert learning_rate_at(schedule, step) == expected


@pytest.mark.parametrize("spelling", [
    "exponential_decay", "ExponentialDecay",
])
def test_schedule_spellings(spelling):
    schedule = parse({"type": spelling, "initial_learning_rate": 1.0, "decay_steps": 1,
                      "decay_rate": 0.5})
    assert isinstance(schedule, ExponentialDecay)


def test_keras_serialized_schedule_loads():
    # What `keras.optimizers.schedules.serialize(CosineDecay(...))` writes.
    schedule = parse({"module": "keras.optimizers.schedules", "class_name": "CosineDecay",
                      "config": {"initial_learning_rate": 0.1, "decay_steps": 100, "alpha": 0.0,
                                 "name": "CosineDecay", "warmup_target": None,
                                 "warmup_steps": 0}, "registered_name": None})
    assert isinstance(schedule, CosineDecay) and schedule.decay_steps == 100


@pytest.mark.parametrize(("value", "message"), [
    ({"type": "piecewise_constant", "boundaries": [10, 20], "values": [1.0, 0.5]},
     "one more entry"),
    ({"type": "piecewise_constant", "boundaries": [20, 10], "values": [1.0, 0.5, 0.1]},
     "strictly increasing"),
    ({"type": "piecewise_constant", "boundaries": [10, 10], "values": [1.0, 0.5, 0.1]},
     "strictly increasing"),
    ({"type": "exponential_decay", "initial_learning_rate": 0.1, "decay_steps": 0,
      "decay_rate": 0.5}, "greater than 0"),
    ({"type": "cosine_decay", "initial_learning_rate": 0.1, "decay_steps": -5}, "greater than 0"),
    ({"type": "cosine_decay", "initial_learning_rate": "0.1", "decay_steps": 5}, "valid number"),
    ({"type": "cosine_decay", "initial_learning_rate": 0.1, "decay_step": 5}, "decay_step"),
])
def test_invalid_schedules(value, message):
    with pytest.raises(ValidationError, match=message):
        parse(value)


def test_piecewise_model_direct():
    schedule = PiecewiseConstantDecay(boundaries=[3], values=[2.0, 1.0])
    assert [schedule.at(s) for s in range(6)] == [2.0, 2.0, 2.0, 2.0, 1.0, 1.0]


# --- Keras 3 as the oracle ----------------------------------------------------------------


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras", reason="Keras 3 is the test oracle (pip install .[oracle])")


ORACLE_CASES = [
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 7, "decay_rate": 0.8}),
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 7, "decay_rate": 0.8,
                          "staircase": True}),
    ("CosineDecay", {"initial_learning_rate": 0.05, "decay_steps": 20, "alpha": 0.2}),
    ("CosineDecay", {"initial_learning_rate": 0.0, "decay_steps": 20, "warmup_target": 0.1,
                     "warmup_steps": 6}),
    ("CosineDecay", {"initial_learning_rate": 0.01, "decay_steps": 20, "warmup_target": 0.1,
                     "warmup_steps": 6, "alpha": 0.1}),
    ("PiecewiseConstantDecay", {"boundaries": [3, 8, 20], "values": [0.1, 0.05, 0.01, 0.001]}),
]


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(("class_name", "config"), ORACLE_CASES)
def test_schedules_match_keras(keras, class_name, config):
    ours = parse({"class_name": class_name, "config": config})
    theirs = getattr(keras.optimizers.schedules, class_name)(**config)
    steps = range(40)
    expected = [float(keras.ops.convert_to_numpy(theirs(step))) for step in steps]
    actual = [learning_rate_at(ours, step) for step in steps]
    # Keras evaluates in float32.
    np.testing.assert_allclose(actual, expected, rtol=2e-6, atol=1e-9)
