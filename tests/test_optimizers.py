"""Flat in-place optimizers: hand-computed steps, checkpoint/resume, and Keras 3 as the oracle."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from pydantic import ValidationError

from layerctl.errors import WeightsError
from layerctl.training.optimizers import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    FlatOptimizer,
    RMSprop,
    make_optimizer,
    parse_optimizer,
)

SEGMENTS = [(0, 2), (2, 3)]


def run(spec, grads_per_step, params=(1.0, -2.0, 3.0), segments=SEGMENTS, decay_mask=None,
        dtype=np.float64):
    optimizer = make_optimizer(parse_optimizer(spec), segments, dtype, decay_mask)
    params = np.array(params, dtype=dtype)
    for grads in grads_per_step:
        optimizer.apply(params, np.array(grads, dtype=dtype))
    return params, optimizer


G = [0.5, -1.0, 2.0]
P0 = np.array([1.0, -2.0, 3.0])


# --- SGD ------------------------------------------------------------------------------------

def test_sgd_plain_step():
    params, optimizer = run({"type": "sgd", "learning_rate": 0.1}, [G])
    np.testing.assert_allclose(params, [0.95, -1.9, 2.8], rtol=1e-15)
    assert optimizer.iterations == 1 and optimizer.slots == {}


def test_sgd_default_learning_rate_is_keras_0_01():
    params, _ = run("sgd", [G])
    np.testing.assert_allclose(params, P0 - 0.01 * np.array(G), rtol=1e-15)


def test_sgd_momentum_two_steps():
    # m1 = -0.1 g, m2 = 0.9 m1 - 0.1 g = -0.19 g; w moves by m1 + m2 = -0.29 g.
    params, optimizer = run({"type": "sgd", "learning_rate": 0.1, "momentum": 0.9}, [G, G])
    np.testing.assert_allclose(params, P0 - 0.29 * np.array(G), rtol=1e-14)
    np.testing.assert_allclose(optimizer.slots["momentum"], -0.19 * np.array(G), rtol=1e-14)


def test_sgd_nesterov_two_steps():
    # step 1: m = -0.1 g, w += 0.9 m - 0.1 g = -0.19 g
    # step 2: m = -0.19 g, w += 0.9 m - 0.1 g = -0.271 g   -> total -0.461 g
    spec = {"type": "sgd", "learning_rate": 0.1, "momentum": 0.9, "nesterov": True}
    params, _ = run(spec, [G, G])
    np.testing.assert_allclose(params, P0 - 0.461 * np.array(G), rtol=1e-14)


# --- Adam / AdamW -----------------------------------------------------------------------------

def adam_reference(grads_per_step, lr=0.001, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False,
                   params=P0):
    """Adam written out per element in plain Python floats, straight from Keras's formulas."""
    params = [float(p) for p in params]
    m = [0.0] * len(params)
    v = [0.0] * len(params)
    v_hat = [0.0] * len(params)
    for t, grads in enumerate(grads_per_step, start=1):
        alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        for i, g in enumerate(grads):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            v_hat[i] = max(v_hat[i], v[i])
            denominator = math.sqrt(v_hat[i] if amsgrad else v[i]) + eps
            params[i] -= alpha * m[i] / denominator
    return np.array(params)


def test_adam_first_step_is_about_lr_times_sign():
    params, optimizer = run({"type": "adam", "learning_rate": 0.01}, [G])
    # m = 0.1 g, v = 0.001 g^2, alpha = 0.01 sqrt(0.001) / 0.1: the step is 0.01 sign(g) up
    # to epsilon.
    expected = P0 - 0.01 * np.sqrt(0.001) * np.array(G) / (np.sqrt(0.001) * np.abs(G) + 1e-7)
    np.testing.assert_allclose(params, expected, rtol=1e-14)
    np.testing.assert_allclose(params, P0 - 0.01 * np.sign(G), rtol=1e-5)
    np.testing.assert_allclose(optimizer.slots["momentum"], 0.1 * np.array(G), rtol=1e-14)
    np.testing.assert_allclose(optimizer.slots["velocity"], 0.001 * np.square(G), rtol=1e-14)


def test_adam_three_steps_match_per_element_reference():
    grads = [G, [0.1, 0.3, -0.2], [-1.0, 0.0, 4.0]]
    params, _ = run({"type": "adam", "learning_rate": 0.05, "beta_1": 0.8, "beta_2": 0.95}, grads)
    np.testing.assert_allclose(params, adam_reference(grads, 0.05, 0.8, 0.95), rtol=1e-13)


def test_amsgrad_keeps_the_largest_velocity():
    # v1 = 0.001 * 100 = 0.1; v2 = 0.0999 + 0.00001 = 0.09991 < v1, so v_hat stays 0.1.
    grads = [[10.0, 10.0, 10.0], [0.1, 0.1, 0.1]]
    params, optimizer = run({"type": "adam", "amsgrad": True}, grads)
    np.testing.assert_allclose(optimizer.slots["velocity_hat"], [0.1] * 3, rtol=1e-14)
    np.testing.assert_allclose(optimizer.slots["velocity"], [0.09991] * 3, rtol=1e-13)
    np.testing.assert_allclose(params, adam_reference(grads, amsgrad=True), rtol=1e-13)
    plain, _ = run("adam", grads)
    assert not np.allclose(plain, params, rtol=1e-9)


def test_adamw_decays_by_lr_times_weight_decay_before_adam():
    spec = parse_optimizer("adamw")
    assert isinstance(spec, AdamW) and spec.weight_decay == 0.004
    params, _ = run({"type": "adamw", "learning_rate": 0.1, "weight_decay": 0.5}, [G])
    decayed = P0 * (1 - 0.5 * 0.1)
    np.testing.assert_allclose(params, adam_reference([G], lr=0.1, params=decayed), rtol=1e-14)


# --- RMSprop ----------------------------------------------------------------------------------

def test_rmsprop_step():
    params, optimizer = run({"type": "rmsprop", "learning_rate": 0.01}, [G])
    g = np.array(G)
    np.testing.assert_allclose(params, P0 - 0.01 * g / np.sqrt(0.1 * g**2 + 1e-7), rtol=1e-14)
    assert set(optimizer.slots) == {"velocity"}


def test_rmsprop_centered_step():
    params, optimizer = run({"type": "rmsprop", "learning_rate": 0.01, "centered": True}, [G])
    g = np.array(G)
    # v = 0.1 g^2, a = 0.1 g, denominator = v - a^2 + eps = 0.09 g^2 + eps.
    np.testing.assert_allclose(params, P0 - 0.01 * g / np.sqrt(0.09 * g**2 + 1e-7), rtol=1e-14)
    np.testing.assert_allclose(optimizer.slots["average_gradient"], 0.1 * g, rtol=1e-14)


def test_rmsprop_momentum_two_steps():
    spec = {"type": "rmsprop", "learning_rate": 0.01, "momentum": 0.5, "rho": 0.5}
    params, optimizer = run(spec, [G, G])
    g = np.array(G)
    inc1 = 0.01 * g / np.sqrt(0.5 * g**2 + 1e-7)
    inc2 = 0.01 * g / np.sqrt(0.75 * g**2 + 1e-7)
    np.testing.assert_allclose(params, P0 - inc1 - (0.5 * inc1 + inc2), rtol=1e-14)
    np.testing.assert_allclose(optimizer.slots["momentum"], 0.5 * inc1 + inc2, rtol=1e-14)


# --- Adagrad ----------------------------------------------------------------------------------

def test_adagrad_two_steps():
    params, optimizer = run({"type": "adagrad", "learning_rate": 0.1}, [G, G])
    g = np.array(G)
    step1 = 0.1 * g / np.sqrt(0.1 + g**2 + 1e-7)
    step2 = 0.1 * g / np.sqrt(0.1 + 2 * g**2 + 1e-7)
    np.testing.assert_allclose(params, P0 - step1 - step2, rtol=1e-14)
    np.testing.assert_allclose(optimizer.slots["accumulator"], 0.1 + 2 * g**2, rtol=1e-14)


# --- clipping and weight decay ----------------------------------------------------------------

def test_clipnorm_clips_each_variable_by_its_own_norm():
    grads = np.array([3.0, 4.0, 0.5])
    params, _ = run({"type": "sgd", "learning_rate": 1.0, "clipnorm": 1.0}, [grads])
    # Variable 1 has norm 5 -> scaled to [0.6, 0.8]; variable 2 has norm 0.5 < 1 -> unchanged.
    np.testing.assert_allclose(params, P0 - [0.6, 0.8, 0.5], rtol=1e-14)


def test_clipnorm_all_zero_gradient_stays_zero():
    params, _ = run({"type": "sgd", "learning_rate": 1.0, "clipnorm": 1.0}, [[0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(params, P0)


def test_global_clipnorm_clips_by_the_joint_norm():
    params, _ = run({"type": "sgd", "learning_rate": 1.0, "global_clipnorm": 2.5},
                    [[3.0, 0.0, 4.0]])
    np.testing.assert_allclose(params, P0 - [1.5, 0.0, 2.0], rtol=1e-14)
    params, _ = run({"type": "sgd", "learning_rate": 1.0, "global_clipnorm": 6.0},
                    [[3.0, 0.0, 4.0]])
    np.testing.assert_allclose(params, P0 - [3.0, 0.0, 4.0], rtol=1e-14)


def test_global_clipnorm_of_infinite_gradient_is_nan_like_keras():
    params, _ = run({"type": "sgd", "learning_rate": 1.0, "global_clipnorm": 1.0},
                    [[np.inf, 0.0, 1.0]])
    assert np.isnan(params).all()


def test_clipvalue_clips_elementwise():
    params, _ = run({"type": "sgd", "learning_rate": 1.0, "clipvalue": 0.5}, [[3.0, -4.0, 0.2]])
    np.testing.assert_allclose(params, P0 - [0.5, -0.5, 0.2], rtol=1e-14)


def test_clip_value_zero_means_off_as_in_keras():
    params, _ = run({"type": "sgd", "learning_rate": 1.0, "clipvalue": 0}, [[3.0, -4.0, 0.2]])
    np.testing.assert_allclose(params, P0 - [3.0, -4.0, 0.2], rtol=1e-14)


def test_clipping_never_writes_to_the_callers_gradients():
    optimizer = make_optimizer(parse_optimizer({"type": "adam", "clipnorm": 0.1}), SEGMENTS,
                               np.float64)
    grads = np.array([3.0, 4.0, 0.5])
    optimizer.apply(P0.copy(), grads)
    np.testing.assert_array_equal(grads, [3.0, 4.0, 0.5])


def test_weight_decay_applies_to_every_variable_by_default():
    params, _ = run({"type": "sgd", "learning_rate": 0.1, "weight_decay": 0.5}, [G])
    np.testing.assert_allclose(params, P0 * (1 - 0.05) - 0.1 * np.array(G), rtol=1e-14)


def test_decay_mask_excludes_variables():
    params, _ = run({"type": "sgd", "learning_rate": 0.1, "weight_decay": 0.5}, [G],
                    decay_mask=[False, True])
    expected = np.array([1.0, -2.0, 3.0 * 0.95]) - 0.1 * np.array(G)
    np.testing.assert_allclose(params, expected, rtol=1e-14)


# --- learning rate: schedules and the plateau scale -------------------------------------------

def test_schedule_is_read_at_iterations_before_the_step():
    spec = {"type": "sgd", "learning_rate": {"type": "exponential_decay",
                                             "initial_learning_rate": 1.0, "decay_steps": 1,
                                             "decay_rate": 0.5}}
    params, optimizer = run(spec, [[1.0, 1.0, 1.0]] * 3)
    np.testing.assert_allclose(params, P0 - (1.0 + 0.5 + 0.25), rtol=1e-14)
    assert optimizer.learning_rate_now() == 0.125


def test_learning_rate_scale_multiplies_the_rate_and_is_checkpointed():
    optimizer = make_optimizer(parse_optimizer({"type": "sgd", "learning_rate": 0.1}), SEGMENTS,
                               np.float64)
    optimizer.set_learning_rate_scale(0.5)
    assert optimizer.learning_rate_now() == pytest.approx(0.05)
    params = P0.copy()
    optimizer.apply(params, np.array(G))
    np.testing.assert_allclose(params, P0 - 0.05 * np.array(G), rtol=1e-14)
    assert optimizer.state()["learning_rate_scale"] == 0.5
    with pytest.raises(ValueError, match="finite"):
        optimizer.set_learning_rate_scale(float("nan"))


def test_set_learning_rate_rescales_a_schedule_from_now_on():
    spec = parse_optimizer({"type": "sgd", "learning_rate": {
        "type": "exponential_decay", "initial_learning_rate": 1.0, "decay_steps": 1,
        "decay_rate": 0.5}})
    optimizer = make_optimizer(spec, SEGMENTS, np.float64)
    params = P0.copy()
    optimizer.apply(params, np.array(G))
    assert optimizer.learning_rate_now() == 0.5
    optimizer.set_learning_rate(0.1)  # what ReduceLROnPlateau(factor=0.2) would do
    assert optimizer.learning_rate_now() == pytest.approx(0.1, rel=1e-15)
    optimizer.apply(params, np.array(G))
    assert optimizer.learning_rate_now() == pytest.approx(0.05, rel=1e-15)


# --- state: exact resume --------------------------------------------------------------------

RESUMABLE = [
    {"type": "adam", "amsgrad": True, "clipnorm": 1.0},
    {"type": "rmsprop", "momentum": 0.9, "centered": True},
    {"type": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    {"type": "adagrad"},
    {"type": "adamw", "learning_rate": {"type": "cosine_decay", "initial_learning_rate": 0.01,
                                        "decay_steps": 5}},
]


@pytest.mark.parametrize("spec", RESUMABLE)
def test_state_round_trip_resumes_bit_for_bit(spec):
    rng = np.random.default_rng(0)
    segments = [(0, 6), (6, 9), (9, 17)]
    grads = rng.normal(size=(6, 17)).astype(np.float32)
    start = rng.normal(size=17).astype(np.float32)

    straight = make_optimizer(parse_optimizer(spec), segments)
    params = start.copy()
    for step in range(6):
        straight.apply(params, grads[step])

    first = make_optimizer(parse_optimizer(spec), segments)
    resumed_params = start.copy()
    for step in range(3):
        first.apply(resumed_params, grads[step])
    saved = first.state()
    first.apply(resumed_params.copy(), grads[3])  # must not leak into `saved`
    second = make_optimizer(parse_optimizer(spec), segments)
    second.load_state(saved)
    assert second.iterations == 3
    for step in range(3, 6):
        second.apply(resumed_params, grads[step])
    np.testing.assert_array_equal(resumed_params, params)
    assert second.iterations == straight.iterations == 6


def test_load_state_reports_every_problem_and_changes_nothing():
    optimizer = make_optimizer(parse_optimizer("adam"), SEGMENTS)
    bad = {"iterations": np.array(2), "learning_rate_scale": np.array(1.0),
           "momentum": np.zeros(4, np.float32), "accumulator": np.zeros(3, np.float32)}
    with pytest.raises(WeightsError) as caught:
        optimizer.load_state(bad)
    messages = [p.message for p in caught.value.problems]
    assert any("lacks 'velocity'" in m for m in messages)
    assert any("'accumulator'" in m for m in messages)
    assert any("'momentum'" in m and "(4,)" in m for m in messages)
    assert optimizer.iterations == 0


def test_state_keys():
    optimizer = make_optimizer(parse_optimizer({"type": "rmsprop", "momentum": 0.5,
                                                "centered": True}), SEGMENTS)
    assert set(optimizer.state()) == {"iterations", "learning_rate_scale", "velocity",
                                      "momentum", "average_gradient"}


# --- construction -----------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "defaults"), [
    ("sgd", {"learning_rate": 0.01, "momentum": 0.0, "nesterov": False}),
    ("adam", {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7,
              "amsgrad": False, "weight_decay": None}),
    ("AdamW", {"learning_rate": 0.001, "weight_decay": 0.004}),
    ("RMSprop", {"learning_rate": 0.001, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-7,
                 "centered": False}),
    ("adagrad", {"learning_rate": 0.001, "initial_accumulator_value": 0.1, "epsilon": 1e-7}),
])
def test_keras_defaults(spec, defaults):
    parsed = parse_optimizer(spec)
    for key, value in defaults.items():
        assert getattr(parsed, key) == value
    assert parsed.clipnorm is None and parsed.clipvalue is None and parsed.global_clipnorm is None


def test_keras_serialized_config_loads():
    config = {"class_name": "Adam", "config": {
        "name": "adam", "learning_rate": 0.002, "weight_decay": None, "clipnorm": None,
        "global_clipnorm": None, "clipvalue": None, "use_ema": False, "ema_momentum": 0.99,
        "ema_overwrite_frequency": None, "loss_scale_factor": None,
        "gradient_accumulation_steps": None, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07,
        "amsgrad": False}}
    assert parse_optimizer(config) == Adam(learning_rate=0.002, name="adam")


@pytest.mark.parametrize(("spec", "message"), [
    ({"type": "adam", "clipnorm": 1.0, "global_clipnorm": 1.0}, "only one of"),
    ({"type": "sgd", "momentum": 1.5}, "less than or equal to 1"),
    ({"type": "adam", "beta_1": 1.0}, "less than 1"),
    ({"type": "adam", "learning_rate": -0.1}, "greater than or equal to 0"),
    ({"type": "adam", "use_ema": True}, "not supported"),
    ({"type": "adam", "gradient_accumulation_steps": 4}, "not supported"),
    ({"type": "adam", "lr": 0.1}, "lr"),
    ({"type": "adamm"}, "adamm"),
])
def test_invalid_specs(spec, message):
    with pytest.raises(ValidationError, match=message):
        parse_optimizer(spec)


@pytest.mark.parametrize("segments", [[(1, 3)], [(0, 2), (3, 4)], [(0, 2), (2, 1)]])
def test_segments_must_tile_the_buffer(segments):
    with pytest.raises(ValueError, match="tile"):
        make_optimizer(SGD(), segments)


def test_apply_checks_the_buffers():
    optimizer = make_optimizer(Adagrad(), SEGMENTS, np.float32)
    with pytest.raises(ValueError, match="float32 buffer of 3"):
        optimizer.apply(np.zeros(3, np.float64), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="float32 buffer of 3"):
        optimizer.apply(np.zeros(3, np.float32), np.zeros(4, np.float32))


def test_float32_stays_float32():
    params, optimizer = run(RMSprop(centered=True).model_dump(), [G], dtype=np.float32)
    assert params.dtype == np.float32
    assert all(s.dtype == np.float32 for s in optimizer.slots.values())


def test_keras_optimizer_variable_count():
    # Keras reference §14: Dense(3) on 2 inputs + Adam after fit -> "Optimizer params: 20".
    optimizer = make_optimizer(Adam(), [(0, 6), (6, 9)])
    assert optimizer.keras_variable_count() == 20
    assert make_optimizer(SGD(), [(0, 6), (6, 9)]).keras_variable_count() == 2


def test_flat_optimizer_is_the_constructor():
    assert isinstance(make_optimizer(SGD(), SEGMENTS), FlatOptimizer)


# --- Keras 3 as the oracle --------------------------------------------------------------------

@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras", reason="Keras 3 is the test oracle (pip install .[oracle])")


SHAPES = [(2, 3), (3,), (2, 2, 2)]
ORACLE_CASES = [
    ("SGD", {"learning_rate": 0.1}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"learning_rate": 0.1, "clipnorm": 1.0}),
    ("SGD", {"learning_rate": 0.1, "clipvalue": 0.3}),
    ("SGD", {"learning_rate": 0.1, "global_clipnorm": 1.5}),
    ("SGD", {"learning_rate": 0.1, "weight_decay": 0.2}),
    ("Adam", {"learning_rate": 0.01}),
    ("Adam", {"learning_rate": 0.01, "amsgrad": True, "beta_1": 0.7}),
    ("Adam", {"learning_rate": 0.01, "clipnorm": 0.8}),
    ("Adam", {"learning_rate": 0.01, "global_clipnorm": 1.0, "weight_decay": 0.1}),
    ("AdamW", {"learning_rate": 0.01}),
    ("AdamW", {"learning_rate": 0.01, "weight_decay": 0.3, "amsgrad": True}),
    ("RMSprop", {"learning_rate": 0.01}),
    ("RMSprop", {"learning_rate": 0.01, "momentum": 0.9}),
    ("RMSprop", {"learning_rate": 0.01, "centered": True}),
    ("RMSprop", {"learning_rate": 0.01, "centered": True, "momentum": 0.5, "clipvalue": 0.5}),
    ("Adagrad", {"learning_rate": 0.1}),
    ("Adagrad", {"learning_rate": 0.1, "initial_accumulator_value": 0.5, "weight_decay": 0.1}),
]


def keras_trajectory(keras, class_name, config, start, grads, exclude_from_decay=()):
    optimizer = getattr(keras.optimizers, class_name)(**config)
    if exclude_from_decay:
        optimizer.exclude_from_weight_decay(var_names=list(exclude_from_decay))
    variables = [keras.Variable(value, name=f"v{i}") for i, value in enumerate(start)]
    for step_grads in grads:
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in step_grads], variables)
    return [keras.ops.convert_to_numpy(v) for v in variables]


def flat_trajectory(spec, start, grads, decay_mask=None):
    sizes = [a.size for a in start]
    stops = np.cumsum(sizes)
    segments = list(zip(stops - sizes, stops, strict=True))
    optimizer = make_optimizer(parse_optimizer(spec), segments, np.float32, decay_mask)
    params = np.concatenate([a.ravel() for a in start])
    for step_grads in grads:
        optimizer.apply(params, np.concatenate([g.ravel() for g in step_grads]))
    return [params[a:b].reshape(s.shape) for (a, b), s in zip(segments, start, strict=True)]


def random_problem(seed, steps=5):
    rng = np.random.default_rng(seed)
    start = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
    grads = [[rng.normal(size=s).astype(np.float32) for s in SHAPES] for _ in range(steps)]
    return start, grads


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(("class_name", "config"), ORACLE_CASES)
def test_five_steps_match_keras(keras, class_name, config):
    start, grads = random_problem(len(config) + len(class_name))
    expected = keras_trajectory(keras, class_name, config, start, grads)
    actual = flat_trajectory({"class_name": class_name, "config": config}, start, grads)
    for ours, theirs in zip(actual, expected, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_decay_mask_matches_keras_exclusion(keras):
    start, grads = random_problem(7)
    config = {"learning_rate": 0.05, "weight_decay": 0.5}
    expected = keras_trajectory(keras, "AdamW", config, start, grads, exclude_from_decay=["v1"])
    actual = flat_trajectory({"type": "adamw", **config}, start, grads,
                             decay_mask=[True, False, True])
    for ours, theirs in zip(actual, expected, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_schedule_learning_rate_matches_keras(keras):
    start, grads = random_problem(11)
    schedule = {"initial_learning_rate": 0.1, "decay_steps": 2, "decay_rate": 0.5}
    optimizer_config = {"momentum": 0.9,
                        "learning_rate": keras.optimizers.schedules.ExponentialDecay(**schedule)}
    expected = keras_trajectory(keras, "SGD", optimizer_config, start, grads)
    spec = {"type": "sgd", "momentum": 0.9,
            "learning_rate": {"class_name": "ExponentialDecay", "config": schedule}}
    actual = flat_trajectory(spec, start, grads)
    for ours, theirs in zip(actual, expected, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
