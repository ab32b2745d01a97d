"""LSTM kernels: Keras's published numbers (keras-reference §8), a hand-derived step that pins the
gate order, masked-carry semantics, float64 central-difference gradient checks over every option,
and (oracle) agreement with Keras 3's LSTM on the torch backend with random weights."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from gradcheck import numerical_gradient

from layerctl.ops import recurrent
from layerctl.ops.lstm import lstm_backward, lstm_forward

T, F = True, False


def _constant_weights(in_dim: int, units: int, unit_forget_bias: bool = True):
    """Keras's test initializers: kernel .01, recurrent .02, bias .03 (forget slice 1)."""
    kernel = np.full((in_dim, 4 * units), 0.01, np.float32)
    recurrent = np.full((units, 4 * units), 0.02, np.float32)
    bias = np.full(4 * units, 0.03, np.float32)
    if unit_forget_bias:
        bias[units : 2 * units] = 1.0
    return kernel, recurrent, bias


# --- Keras's numbers (keras-reference §8) --------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, [0.6288687, 0.86899155, 0.9460773]),
        ({"go_backwards": True}, [0.35622165, 0.74789524, 0.8872726]),
        ({"unit_forget_bias": False}, [0.57019705, 0.8661914, 0.9459622]),
        ({"use_bias": False}, [0.54986924, 0.86226785, 0.9443936]),
    ],
)
def test_keras_reference_numbers(options: dict, expected: list[float]) -> None:
    x = np.arange(72).reshape(3, 6, 4).astype(np.float32)
    kernel, recurrent, bias = _constant_weights(4, 3, options.get("unit_forget_bias", True))
    if not options.get("use_bias", True):
        bias = None
    y, _ = lstm_forward(x, kernel, recurrent, bias, go_backwards=options.get("go_backwards", False))
    assert y.shape == (3, 3) and y.dtype == np.float32
    # Every unit has the same value, so each row repeats one number.
    np.testing.assert_allclose(y, np.repeat(np.array(expected)[:, None], 3, axis=1), rtol=1e-6)


def _masked_case(mask, **options):
    x = np.arange(24).reshape(2, 4, 3).astype(np.float32)
    y, _ = lstm_forward(x, *_constant_weights(3, 2), mask=np.array(mask), **options)
    return y


def test_mask_final_output_is_the_last_kept_step() -> None:
    y = _masked_case([[T, T, T, F], [T, T, F, F]])
    np.testing.assert_allclose(y, [[0.11755939] * 2, [0.28556206] * 2], rtol=1e-6)


def test_mask_return_sequences_repeats_the_carried_h() -> None:
    y = _masked_case([[T, T, T, F], [T, T, F, F]], return_sequences=True)
    expected = [[0.0158891, 0.05552048, 0.11755939, 0.11755939],
                [0.14185596, 0.28556206, 0.28556206, 0.28556206]]  # fmt: skip
    assert y.shape == (2, 4, 2)
    np.testing.assert_allclose(y, np.repeat(np.array(expected)[..., None], 2, axis=2), rtol=1e-5)


def test_zero_output_for_mask_zeroes_masked_steps_and_final_output() -> None:
    mask = [[T, T, T, F], [T, T, F, F]]
    carried = _masked_case(mask, return_sequences=True)
    zeroed = _masked_case(mask, return_sequences=True, zero_output_for_mask=True)
    np.testing.assert_array_equal(zeroed, carried * np.array(mask)[..., None])
    # The last step of both rows is masked, so the final output is 0 (Keras's last_output).
    np.testing.assert_array_equal(_masked_case(mask, zero_output_for_mask=True), 0)


def test_go_backwards_reverses_the_mask_with_the_input() -> None:
    y = _masked_case([[F, T, T, T], [F, F, T, T]], go_backwards=True)
    np.testing.assert_allclose(y, [[0.15341201] * 2, [0.3844719] * 2], rtol=1e-6)


def test_fully_masked_sequence_gives_zeros_and_no_gradient() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 3))
    weights = _random_weights(rng, 3, 4, np.float64)
    mask = np.array([[F] * 5, [T] * 5])
    y, cache = lstm_forward(x, *weights, mask=mask, return_sequences=True)
    np.testing.assert_array_equal(y[0], 0)
    dx, *_ = lstm_backward(cache, rng.standard_normal(y.shape))
    np.testing.assert_array_equal(dx[0], 0)
    assert np.all(dx[1] != 0)


def test_one_step_by_hand_pins_the_gate_order() -> None:
    # Zero weights: z = b, so i, f, c, o come straight from the four bias blocks.
    b_i, b_f, b_c, b_o = 0.3, -0.7, 1.1, -0.2
    bias = np.repeat([b_i, b_f, b_c, b_o], 2)
    y, _ = lstm_forward(np.ones((1, 1, 3)), np.zeros((3, 8)), np.zeros((2, 8)), bias)
    sigmoid = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    c = sigmoid(b_i) * math.tanh(b_c)  # f·c_0 vanishes since c_0 = 0
    np.testing.assert_allclose(y, [[sigmoid(b_o) * math.tanh(c)] * 2], rtol=1e-12)


def test_second_step_uses_forget_gate_and_recurrent_kernel() -> None:
    # x = 0 after the first step, bias 0, U = 0 except the forget block: f_2 = σ(h_1·U_f).
    rng = np.random.default_rng(1)
    kernel = rng.standard_normal((2, 4))
    recurrent = np.zeros((1, 4))
    recurrent[0, 1] = 2.0
    x = np.array([[[0.5, -1.0], [0.0, 0.0]]])
    y, _ = lstm_forward(x, kernel, recurrent, None)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    z = x[0, 0] @ kernel
    c1 = sigmoid(z[0]) * np.tanh(z[2])
    h1 = sigmoid(z[3]) * np.tanh(c1)
    c2 = sigmoid(2.0 * h1) * c1 + 0.5 * np.tanh(0.0)  # i = σ(0) = .5, φ(z_c) = tanh(0) = 0
    h2 = 0.5 * np.tanh(c2)
    np.testing.assert_allclose(y, [[h2]], rtol=1e-12)


def test_dtype_follows_the_weights_and_integer_input_is_cast() -> None:
    kernel, recurrent, bias = _constant_weights(4, 3)
    y, cache = lstm_forward(np.arange(72).reshape(3, 6, 4), kernel, recurrent, bias)
    assert y.dtype == np.float32
    grads = lstm_backward(cache, np.ones_like(y))
    assert all(g.dtype == np.float32 for g in grads)
    y64, _ = lstm_forward(
        np.ones((1, 2, 4)), *(w.astype(np.float64) for w in (kernel, recurrent, bias))
    )
    assert y64.dtype == np.float64


def test_shared_dropout_masks_equal_per_gate_masks_that_repeat() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 5, 4))
    weights = _random_weights(rng, 4, 3, np.float64)
    in_mask, rec_mask = _dropout_masks(rng, 3, 4, 3, per_gate=False)
    shared, _ = lstm_forward(
        x, *weights, input_dropout_mask=in_mask, recurrent_dropout_mask=rec_mask
    )
    stacked, _ = lstm_forward(
        x, *weights, input_dropout_mask=np.stack([in_mask] * 4),
        recurrent_dropout_mask=np.stack([rec_mask] * 4),
    )  # fmt: skip
    np.testing.assert_allclose(stacked, shared, rtol=1e-12)
    dropped, _ = lstm_forward(x * in_mask[:, None], *weights)  # input dropout = scaled x
    with_input_mask, _ = lstm_forward(x, *weights, input_dropout_mask=in_mask)
    np.testing.assert_allclose(with_input_mask, dropped, rtol=1e-12)


def test_bad_dropout_mask_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match="recurrent dropout mask must have shape"):
        lstm_forward(
            np.ones((2, 3, 4)), *_constant_weights(4, 3), recurrent_dropout_mask=np.ones((2, 4))
        )


# --- gradient checks (float64, central differences) ---------------------------------------------


def _random_weights(rng, in_dim: int, units: int, dtype, use_bias: bool = True):
    kernel = rng.uniform(-0.6, 0.6, (in_dim, 4 * units)).astype(dtype)
    recurrent = rng.uniform(-0.6, 0.6, (units, 4 * units)).astype(dtype)
    bias = rng.uniform(-0.5, 0.5, 4 * units).astype(dtype) if use_bias else None
    return kernel, recurrent, bias


def _dropout_masks(rng, batch: int, in_dim: int, units: int, per_gate: bool, rate: float = 0.4):
    lead = (4,) if per_gate else ()
    draw = lambda shape: rng.binomial(1, 1 - rate, lead + shape) / (1 - rate)  # noqa: E731
    return draw((batch, in_dim)), draw((batch, units))


MASK = np.array([[T, T, F, T, T], [F, T, T, F, F], [T, F, F, F, F]])

GRADIENT_CASES = {
    "plain": {},
    "return_sequences": {"return_sequences": True},
    "go_backwards": {"go_backwards": True, "return_sequences": True},
    "mask": {"mask": MASK},
    "mask_sequences": {"mask": MASK, "return_sequences": True},
    "mask_backwards": {"mask": MASK, "go_backwards": True},
    "mask_backwards_sequences": {"mask": MASK, "go_backwards": True, "return_sequences": True},
    "zero_output": {"mask": MASK, "zero_output_for_mask": True},
    "zero_output_sequences": {"mask": MASK, "zero_output_for_mask": True, "return_sequences": True},
    "no_bias": {"use_bias": False, "mask": MASK, "return_sequences": True},
    "shared_dropout": {"dropout": "shared", "return_sequences": True},
    "per_gate_dropout": {"dropout": "per_gate", "mask": MASK, "return_sequences": True},
    "relu_hard_sigmoid": {"activation": "relu", "recurrent_activation": "hard_sigmoid",
                          "mask": MASK, "return_sequences": True},
    "tanh_hard_sigmoid": {"recurrent_activation": "hard_sigmoid", "mask": MASK},
    "linear_sigmoid": {"activation": "linear", "mask": MASK, "return_sequences": True},
    "swapped_fast_pair": {"activation": "sigmoid", "recurrent_activation": "tanh", "mask": MASK},
    "elu_tanh_dropout": {"activation": "elu", "recurrent_activation": "tanh",
                         "dropout": "per_gate", "go_backwards": True},
}  # fmt: skip


@pytest.fixture(params=["whole", "chunked"])
def step_chunks(request, monkeypatch):
    """'chunked': every step its own part of the weight and input gradients (and of the input
    projection), each on the pool's thread while the loop goes on, as a long sequence runs."""
    if request.param == "chunked":
        monkeypatch.setattr(recurrent, "MIN_CHUNKED_FLOPS", 0)
        monkeypatch.setattr(recurrent, "MAX_CHUNKS", 1000)
        monkeypatch.setenv("LAYERCTL_NUM_THREADS", "2")
    return request.param


@pytest.mark.parametrize("case", GRADIENT_CASES)
def test_gradients_match_central_differences(case: str, step_chunks) -> None:
    options = dict(GRADIENT_CASES[case])
    rng = np.random.default_rng(sorted(GRADIENT_CASES).index(case))
    batch, steps, in_dim, units = 3, 5, 3, 2
    x = rng.standard_normal((batch, steps, in_dim))
    kernel, recurrent, bias = _random_weights(
        rng, in_dim, units, np.float64, options.pop("use_bias", True)
    )
    dropout = options.pop("dropout", None)
    if dropout:
        masks = _dropout_masks(rng, batch, in_dim, units, per_gate=dropout == "per_gate")
        options.update(input_dropout_mask=masks[0], recurrent_dropout_mask=masks[1])
    y, cache = lstm_forward(x, kernel, recurrent, bias, **options)
    if cache.pre_activations is not None:  # keep clear of relu / hard_sigmoid kinks
        assert np.min(np.abs(cache.pre_activations)) > 1e-3
        assert np.min(np.abs(np.abs(cache.pre_activations) - 3)) > 1e-3
    dy = rng.standard_normal(y.shape)
    dx, dkernel, drecurrent, dbias = lstm_backward(cache, dy)

    def loss() -> float:
        return float(np.sum(lstm_forward(x, kernel, recurrent, bias, **options)[0] * dy))

    pairs = [(dx, x), (dkernel, kernel), (drecurrent, recurrent)]
    if bias is None:
        assert dbias is None
    else:
        pairs.append((dbias, bias))
    for analytic, array in pairs:
        assert analytic.shape == array.shape
        np.testing.assert_allclose(analytic, numerical_gradient(loss, array), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("case", ["mask_backwards_sequences", "per_gate_dropout"])
def test_chunked_gradients_are_the_same_for_any_thread_count(case, monkeypatch) -> None:
    """Long sequences cut the weight gradients into parts of steps, computed on the pool while
    the loop goes on; the parts come from the shapes, so one thread or three give the same
    bits, and the result is the one-part result up to rounding."""
    options = dict(GRADIENT_CASES[case])
    rng = np.random.default_rng(7)
    batch, steps, in_dim, units = 4, 40, 3, 5
    x = rng.standard_normal((batch, steps, in_dim)).astype(np.float32)
    kernel, recurrent_kernel, bias = _random_weights(rng, in_dim, units, np.float32)
    if options.pop("dropout", None):
        masks = _dropout_masks(rng, batch, in_dim, units, per_gate=True)
        options.update(input_dropout_mask=masks[0].astype(np.float32),
                       recurrent_dropout_mask=masks[1].astype(np.float32))
    options["mask"] = rng.random((batch, steps)) < 0.8
    dy = rng.standard_normal((batch, steps, units)).astype(np.float32)

    def gradients(threads: str) -> list[np.ndarray]:
        monkeypatch.setenv("LAYERCTL_NUM_THREADS", threads)
        y, cache = lstm_forward(x, kernel, recurrent_kernel, bias, **options)
        return [y, *lstm_backward(cache, dy)]

    whole = gradients("1")
    monkeypatch.setattr(recurrent, "MIN_CHUNKED_FLOPS", 0)
    assert len(recurrent.step_chunks(steps, 1)) == recurrent.MAX_CHUNKS
    one, three = gradients("1"), gradients("3")
    for a, b, c in zip(one, three, whole, strict=True):
        np.testing.assert_array_equal(a, b, strict=True)
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-5)


def test_backward_does_not_change_the_cache() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 4, 3))
    y, cache = lstm_forward(x, *_random_weights(rng, 3, 2, np.float64), mask=MASK[:2, :4])
    dy = rng.standard_normal(y.shape)
    first = lstm_backward(cache, dy)
    second = lstm_backward(cache, dy)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


# --- oracle: Keras 3 LSTM on the torch backend --------------------------------------------------


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras", reason="Keras 3 (the oracle extra) is not installed")


ORACLE_MASK = np.array([[T, T, T, T, T, T, T], [T, T, T, T, F, F, F], [F, F, T, T, T, T, T],
                        [T, F, T, F, F, T, T], [F, F, F, F, F, F, F]])  # fmt: skip

ORACLE_CASES = {
    "plain": {},
    "sequences": {"return_sequences": True},
    "backwards": {"go_backwards": True, "return_sequences": True},
    "no_bias": {"use_bias": False},
    "mask": {"mask": True},
    "mask_sequences": {"mask": True, "return_sequences": True},
    "mask_backwards": {"mask": True, "go_backwards": True, "return_sequences": True},
    "mask_backwards_final": {"mask": True, "go_backwards": True},
    "zero_output": {"mask": True, "zero_output_for_mask": True, "return_sequences": True},
    "zero_output_final": {"mask": True, "zero_output_for_mask": True, "go_backwards": True},
    "relu_hard_sigmoid": {"activation": "relu", "recurrent_activation": "hard_sigmoid",
                          "mask": True, "return_sequences": True},
    "keras2_hard_sigmoid": {"recurrent_activation": "hard_sigmoid", "mask": True},
    "input_dropout": {"dropout": 0.3, "return_sequences": True},
    "input_dropout_mask": {"dropout": 0.3, "mask": True},
    "both_dropouts": {"dropout": 0.3, "recurrent_dropout": 0.4, "mask": True,
                      "return_sequences": True},
    "recurrent_dropout_backwards": {"recurrent_dropout": 0.5, "go_backwards": True},
}  # fmt: skip


ORACLE_FLAGS = ("activation", "recurrent_activation", "go_backwards", "return_sequences",
                "zero_output_for_mask")  # fmt: skip


def _keras_dropout_masks(rng, layer, batch: int, in_dim: int, units: int):
    """Masks planted in the cell's cache, which Keras then uses instead of drawing its own.

    With recurrent_dropout > 0 Keras runs implementation 1: four masks per dropout, one per gate.
    """
    rate, recurrent_rate = layer.dropout, layer.recurrent_dropout
    per_gate = recurrent_rate > 0
    count = (4,) if per_gate else ()

    def draw(shape, rate):
        if rate == 0:
            return None
        return (rng.binomial(1, 1 - rate, count + shape) / (1 - rate)).astype(np.float32)

    return draw((batch, in_dim), rate), draw((batch, units), recurrent_rate)


@pytest.mark.oracle
# keras.ops.convert_to_numpy on torch 2.13 + NumPy 2.4 warns inside Keras; not our concern here.
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
@pytest.mark.parametrize("case", ORACLE_CASES)
def test_forward_matches_keras_lstm(keras, case: str) -> None:
    options = dict(ORACLE_CASES[case])
    use_mask = options.pop("mask", False)
    rng = np.random.default_rng(100 + sorted(ORACLE_CASES).index(case))
    batch, steps, in_dim, units = 5, 7, 4, 6
    layer = keras.layers.LSTM(units, **options)
    x = rng.standard_normal((batch, steps, in_dim)).astype(np.float32)
    layer.build((batch, steps, in_dim))
    weights = _random_weights(rng, in_dim, units, np.float32, options.get("use_bias", True))
    layer.set_weights([w for w in weights if w is not None])
    in_mask, rec_mask = _keras_dropout_masks(rng, layer, batch, in_dim, units)
    training = in_mask is not None or rec_mask is not None
    to_tensor = keras.ops.convert_to_tensor
    if in_mask is not None:
        layer.cell._dropout_mask = (
            [to_tensor(m) for m in in_mask] if in_mask.ndim == 3 else to_tensor(in_mask)
        )
    if rec_mask is not None:
        layer.cell._recurrent_dropout_mask = [to_tensor(m) for m in rec_mask]
    mask = ORACLE_MASK if use_mask else None
    expected = layer(
        to_tensor(x), mask=None if mask is None else to_tensor(mask), training=training
    )
    expected = keras.ops.convert_to_numpy(expected)
    flags = {name: options[name] for name in ORACLE_FLAGS if name in options}
    ours, _ = lstm_forward(
        x, *weights, mask=mask, input_dropout_mask=in_mask, recurrent_dropout_mask=rec_mask, **flags
    )
    assert ours.shape == expected.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
    if training:  # the planted masks really were used: without them the output differs
        plain, _ = lstm_forward(x, *weights, mask=mask, **flags)
        assert np.max(np.abs(plain - expected)) > 1e-3
