"""GRU and SimpleRNN (and what they share with LSTM): hand-derived steps that pin the gate order,
float64 central-difference gradient checks over every option, Keras 3 as the oracle (forward
values with the same weights, masks and planted dropout masks; shapes and parameter counts; one
training step's gradients), Keras's argument errors, and ONNX / .keras export parity."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gradcheck import check_layer, init_layer_weights, numerical_gradient
from test_export import check_keras, check_onnx, plan_of

from layerctl.layers import LAYER_TYPES
from layerctl.layers.recurrent import GRU, LSTM, SimpleRNN
from layerctl.ops import recurrent as recurrent_ops
from layerctl.ops.gru import gru_backward, gru_forward
from layerctl.ops.simple_rnn import simple_rnn_backward, simple_rnn_forward

T, F = True, False
MASK = np.array([[T, T, F, T, T], [F, T, T, F, F], [T, F, F, F, F]])
sigmoid = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731


def test_lstm_import_path_is_kept():
    from layerctl.layers.recurrent import LSTM as Imported

    assert Imported is LAYER_TYPES["LSTM"] is LSTM


# --- hand-derived values -------------------------------------------------------------------------


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_one_step_by_hand_pins_the_gate_order(reset_after):
    # Zero weights: the pre-activations are the bias blocks z, r, h; h_0 = 0 so h_1 = (1 - z)·ĥ.
    b_z, b_r, b_h = 0.3, -0.7, 1.1
    bias = np.repeat([b_z, b_r, b_h], 2)
    if reset_after:
        bias = np.stack([bias, np.repeat([0.2, 0.0, -0.5], 2)])  # recurrent bias: z and h
    y, cache = gru_forward(np.ones((1, 1, 3)), np.zeros((3, 6)), np.zeros((2, 6)), bias,
                           reset_after=reset_after)
    z = sigmoid(b_z + (0.2 if reset_after else 0))
    r = sigmoid(b_r)
    hh = math.tanh(b_h + (r * -0.5 if reset_after else 0))  # reset_after: r·(h·U_h + b'_h)
    np.testing.assert_allclose(y, [[(1 - z) * hh] * 2], rtol=1e-12)
    np.testing.assert_array_equal(cache.hidden[-1], y)  # the final state, for return_state


def test_gru_second_step_mixes_the_previous_state():
    # One unit; U_h = 2 only: reset_after gives ĥ = tanh(x·W_h + r·2h), else tanh(x·W_h + 2·r·h).
    kernel = np.array([[0.5, -0.4, 0.9]])
    recurrent = np.array([[0.0, 0.0, 2.0]])
    x = np.array([[[1.0], [0.5]]])
    for reset_after in (True, False):
        y, _ = gru_forward(x, kernel, recurrent, None, reset_after=reset_after)
        h1 = (1 - sigmoid(0.5)) * math.tanh(0.9)
        z2, r2 = sigmoid(0.25), sigmoid(-0.2)
        h2 = z2 * h1 + (1 - z2) * math.tanh(0.45 + r2 * 2 * h1)
        np.testing.assert_allclose(y, [[h2]], rtol=1e-12)


def test_simple_rnn_two_steps_by_hand():
    x = np.array([[[1.0, 2.0], [0.0, -1.0]]])
    kernel, recurrent, bias = np.array([[0.1], [0.2]]), np.array([[0.5]]), np.array([0.05])
    y, _ = simple_rnn_forward(x, kernel, recurrent, bias, return_sequences=True)
    h1 = math.tanh(0.1 + 0.4 + 0.05)
    h2 = math.tanh(-0.2 + 0.05 + 0.5 * h1)
    np.testing.assert_allclose(y, [[[h1], [h2]]], rtol=1e-12)
    masked, _ = simple_rnn_forward(x, kernel, recurrent, bias, mask=np.array([[T, F]]),
                                   return_sequences=True, zero_output_for_mask=True)
    np.testing.assert_allclose(masked, [[[h1], [0.0]]], rtol=1e-12)


# --- gradient checks (float64, central differences) ----------------------------------------------

OPS_CASES = {
    "plain": {},
    "sequences": {"return_sequences": True},
    "backwards": {"go_backwards": True, "return_sequences": True},
    "mask": {"mask": MASK},
    "mask_sequences": {"mask": MASK, "return_sequences": True},
    "mask_backwards": {"mask": MASK, "go_backwards": True},
    "zero_output": {"mask": MASK, "zero_output_for_mask": True},
    "zero_output_sequences": {"mask": MASK, "zero_output_for_mask": True,
                              "return_sequences": True, "go_backwards": True},
    "no_bias": {"use_bias": False, "mask": MASK, "return_sequences": True},
    "shared_dropout": {"dropout": "shared", "return_sequences": True},
    "per_gate_dropout": {"dropout": "per_gate", "mask": MASK, "return_sequences": True},
    "relu_hard_sigmoid": {"activation": "relu", "recurrent_activation": "hard_sigmoid",
                          "mask": MASK, "return_sequences": True},
    "linear": {"activation": None, "mask": MASK},
    "elu_tanh": {"activation": "elu", "recurrent_activation": "tanh", "go_backwards": True},
}  # fmt: skip


def _random_case(rng, layer: str, reset_after: bool, options: dict):
    batch, steps, in_dim, units = 3, 5, 3, 2
    gates = 3 if layer == "gru" else 1
    x = rng.standard_normal((batch, steps, in_dim))
    kernel = rng.uniform(-0.6, 0.6, (in_dim, gates * units))
    recurrent = rng.uniform(-0.6, 0.6, (units, gates * units))
    bias_shape = (2, 3 * units) if layer == "gru" and reset_after else (gates * units,)
    bias = rng.uniform(-0.5, 0.5, bias_shape) if options.pop("use_bias", True) else None
    dropout = options.pop("dropout", None)
    if dropout:
        lead = (gates,) if dropout == "per_gate" and gates > 1 else ()
        options["input_dropout_mask"] = rng.binomial(1, 0.6, lead + (batch, in_dim)) / 0.6
        options["recurrent_dropout_mask"] = rng.binomial(1, 0.6, lead + (batch, units)) / 0.6
    if layer == "gru":
        options["reset_after"] = reset_after
    else:
        options.pop("recurrent_activation", None)
    return x, kernel, recurrent, bias


@pytest.fixture(params=["whole", "chunked"])
def step_chunks(request, monkeypatch):
    """'chunked': every step its own part of the weight and input gradients, each on the pool's
    thread while the backward loop goes on, as a long sequence runs."""
    if request.param == "chunked":
        monkeypatch.setattr(recurrent_ops, "MIN_CHUNKED_FLOPS", 0)
        monkeypatch.setattr(recurrent_ops, "MAX_CHUNKS", 1000)
        monkeypatch.setenv("LAYERCTL_NUM_THREADS", "2")
    return request.param


@pytest.mark.parametrize("layer,reset_after", [("gru", True), ("gru", False),
                                               ("simple_rnn", True)])
def test_chunked_gradients_are_the_same_for_any_thread_count(layer, reset_after, monkeypatch):
    """Long sequences cut the weight gradients into parts of steps computed on the pool while
    the loop goes on: the same bits on one thread or three, the one-part result up to rounding."""
    options = {"mask": np.random.default_rng(3).random((4, 40)) < 0.8, "return_sequences": True,
               "dropout": "per_gate"}
    rng = np.random.default_rng(5)
    x, kernel, recurrent, bias = _random_case(rng, layer, reset_after, options)
    x = rng.standard_normal((4, 40, x.shape[-1]))
    for name in ("input_dropout_mask", "recurrent_dropout_mask"):
        options[name] = np.broadcast_to(options[name][..., :1, :], (*options[name].shape[:-2], 4,
                                                                    options[name].shape[-1]))
    forward, backward = ((gru_forward, gru_backward) if layer == "gru"
                         else (simple_rnn_forward, simple_rnn_backward))
    dy = rng.standard_normal((4, 40, recurrent.shape[0]))

    def gradients(threads: str) -> list[np.ndarray]:
        monkeypatch.setenv("LAYERCTL_NUM_THREADS", threads)
        y, cache = forward(x, kernel, recurrent, bias, **options)
        return [y, *(g for g in backward(cache, dy) if g is not None)]

    whole = gradients("1")
    monkeypatch.setattr(recurrent_ops, "MIN_CHUNKED_FLOPS", 0)
    one, three = gradients("1"), gradients("3")
    for a, b, c in zip(one, three, whole, strict=True):
        np.testing.assert_array_equal(a, b, strict=True)
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layer,reset_after", [("gru", True), ("gru", False),
                                               ("simple_rnn", True)])
@pytest.mark.parametrize("case", OPS_CASES)
def test_ops_gradients_match_central_differences(layer, reset_after, case, step_chunks):
    options = dict(OPS_CASES[case])
    rng = np.random.default_rng(sorted(OPS_CASES).index(case))
    x, kernel, recurrent, bias = _random_case(rng, layer, reset_after, options)
    forward, backward = ((gru_forward, gru_backward) if layer == "gru"
                         else (simple_rnn_forward, simple_rnn_backward))
    y, cache = forward(x, kernel, recurrent, bias, **options)
    if cache.pre_activations is not None:  # keep clear of relu / hard_sigmoid kinks
        assert np.min(np.abs(cache.pre_activations)) > 1e-3
        assert np.min(np.abs(np.abs(cache.pre_activations) - 3)) > 1e-3
    dy = rng.standard_normal(y.shape)
    dx, dkernel, drecurrent, dbias = backward(cache, dy)

    def loss() -> float:
        return float(np.sum(forward(x, kernel, recurrent, bias, **options)[0] * dy))

    pairs = [(dx, x), (dkernel, kernel), (drecurrent, recurrent)]
    if bias is None:
        assert dbias is None
    else:
        pairs.append((dbias, bias))
    for analytic, array in pairs:
        assert analytic.shape == array.shape
        np.testing.assert_allclose(analytic, numerical_gradient(loss, array), rtol=1e-6, atol=1e-8)


LAYER_CASES = {
    "gru": {"type": "GRU", "units": 3, "return_sequences": True},
    "gru_reset_before": {"type": "GRU", "units": 3, "reset_after": False, "go_backwards": True},
    "gru_dropout": {"type": "GRU", "units": 3, "dropout": 0.3, "return_sequences": True},
    "gru_both_dropouts": {"type": "GRU", "units": 3, "dropout": 0.3, "recurrent_dropout": 0.4,
                          "reset_after": False},
    "gru_no_bias_zero_output": {"type": "GRU", "units": 2, "use_bias": False,
                                "zero_output_for_mask": True, "return_sequences": True},
    "simple_rnn": {"type": "SimpleRNN", "units": 3, "return_sequences": True},
    "simple_rnn_dropout": {"type": "SimpleRNN", "units": 3, "dropout": 0.3,
                           "recurrent_dropout": 0.4, "go_backwards": True},
    "lstm_both_dropouts": {"type": "LSTM", "units": 2, "dropout": 0.3, "recurrent_dropout": 0.4,
                           "implementation": 1},
}  # fmt: skip


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("case", LAYER_CASES)
def test_layer_gradients_in_training(case, masked):
    layer = LAYER_TYPES[LAYER_CASES[case]["type"]](**LAYER_CASES[case])
    x = np.random.default_rng(7).normal(size=(3, 5, 4))
    check_layer(layer, x, mask=MASK if masked else None, training=True)


def test_gru_draws_keras_dropout_masks():
    # Keras: one mask shared by the gates; three per dropout once recurrent_dropout > 0.
    x = np.zeros((2, 3, 4), np.float32)
    rng = np.random.default_rng(0)
    for recurrent, shapes in ((0.0, ((2, 4), None)), (0.5, ((3, 2, 4), (3, 2, 5)))):
        layer = GRU(type="GRU", units=5, dropout=0.5, recurrent_dropout=recurrent)
        masks = layer.dropout_masks(x, True, rng, np.dtype(np.float32))
        assert tuple(None if m is None else m.shape for m in masks) == shapes
        assert layer.dropout_masks(x, False, rng, np.dtype(np.float32)) == (None, None)
    masks = SimpleRNN(type="SimpleRNN", units=5, dropout=0.5, recurrent_dropout=0.5).dropout_masks(
        x, True, rng, np.dtype(np.float32))
    assert [m.shape for m in masks] == [(2, 4), (2, 5)]
    assert set(np.unique(masks[0])) <= {0.0, 2.0}


def test_shapes_weights_and_masks():
    gru = GRU(type="GRU", units=4, return_sequences=True)
    assert gru.output_shape((None, 7, 3)) == (None, 7, 4)
    assert [(w.name, w.shape) for w in gru.weight_specs((None, 7, 3))] == [
        ("kernel", (3, 12)), ("recurrent_kernel", (4, 12)), ("bias", (2, 12))]
    before = GRU(type="GRU", units=4, reset_after=False)
    assert before.output_shape((None, 7, 3)) == (None, 4)
    assert before.weight_specs((None, 7, 3))[-1].shape == (12,)
    rnn = SimpleRNN(type="SimpleRNN", units=4)
    assert [w.shape for w in rnn.weight_specs((None, 7, 3))] == [(3, 4), (4, 4), (4,)]
    mask = np.ones((2, 7), bool)
    assert gru.output_mask(None, mask) is mask and gru.emits_mask(True)
    assert before.output_mask(None, mask) is None and not before.emits_mask(True)
    assert GRU(type="GRU", units=2, dropout=3.0).dropout == 1.0  # clipped, as Keras


# --- Keras 3 as the oracle -----------------------------------------------------------------------

ORACLE_MASK = np.array([[T, T, T, T, T, T, T], [T, T, T, T, F, F, F], [F, F, T, T, T, T, T],
                        [T, F, T, F, F, T, T], [F, F, F, F, F, F, F]])  # fmt: skip

ORACLE_CASES = {
    "gru": ("GRU", {}),
    "gru_sequences": ("GRU", {"return_sequences": True}),
    "gru_backwards": ("GRU", {"go_backwards": True, "return_sequences": True}),
    "gru_reset_before": ("GRU", {"reset_after": False, "return_sequences": True}),
    "gru_reset_before_mask": ("GRU", {"reset_after": False, "mask": True}),
    "gru_no_bias": ("GRU", {"use_bias": False, "mask": True, "go_backwards": True}),
    "gru_mask_sequences": ("GRU", {"mask": True, "return_sequences": True}),
    "gru_zero_output": ("GRU", {"mask": True, "zero_output_for_mask": True,
                                "return_sequences": True}),
    "gru_zero_output_final": ("GRU", {"mask": True, "zero_output_for_mask": True,
                                      "go_backwards": True}),
    "gru_relu_hard_sigmoid": ("GRU", {"activation": "relu", "recurrent_activation":
                                      "hard_sigmoid", "mask": True, "return_sequences": True}),
    "gru_input_dropout": ("GRU", {"dropout": 0.3, "return_sequences": True}),
    "gru_both_dropouts": ("GRU", {"dropout": 0.3, "recurrent_dropout": 0.4, "mask": True,
                                  "return_sequences": True}),
    "gru_both_dropouts_before": ("GRU", {"dropout": 0.3, "recurrent_dropout": 0.4,
                                         "reset_after": False}),
    "gru_implementation_1": ("GRU", {"implementation": 1, "unroll": True}),
    "rnn": ("SimpleRNN", {}),
    "rnn_sequences_backwards": ("SimpleRNN", {"return_sequences": True, "go_backwards": True}),
    "rnn_mask": ("SimpleRNN", {"mask": True, "return_sequences": True}),
    "rnn_zero_output": ("SimpleRNN", {"mask": True, "zero_output_for_mask": True}),
    "rnn_relu_no_bias": ("SimpleRNN", {"activation": "relu", "use_bias": False, "mask": True}),
    "rnn_dropouts": ("SimpleRNN", {"dropout": 0.3, "recurrent_dropout": 0.4, "mask": True,
                                   "return_sequences": True}),
}  # fmt: skip


def _oracle_setup(keras, case):
    cls, options = ORACLE_CASES[case]
    options = dict(options)
    use_mask = options.pop("mask", False)
    rng = np.random.default_rng(300 + sorted(ORACLE_CASES).index(case))
    batch, steps, in_dim, units = 5, 7, 4, 6
    ours = LAYER_TYPES[cls](type=cls, units=units, **options)
    theirs = getattr(keras.layers, cls)(units, **options)
    theirs.build((batch, steps, in_dim))
    weights = {w.name: rng.uniform(-0.6, 0.6, w.shape).astype(np.float32)
               for w in ours.weight_specs((None, steps, in_dim))}
    theirs.set_weights(list(weights.values()))
    x = rng.standard_normal((batch, steps, in_dim)).astype(np.float32)
    return ours, theirs, weights, x, ORACLE_MASK if use_mask else None, rng


def _plant_dropout_masks(keras, ours, theirs, x):
    """Draw our masks and plant them in the Keras cell's cache, which Keras then uses."""
    masks = ours.dropout_masks(x, True, np.random.default_rng(5), np.dtype(np.float32))
    to_tensor = keras.ops.convert_to_tensor
    for mask, attribute in zip(masks, ("_dropout_mask", "_recurrent_dropout_mask"), strict=True):
        if mask is not None:
            setattr(theirs.cell, attribute,
                    [to_tensor(m) for m in mask] if mask.ndim == 3 else to_tensor(mask))
    return np.random.default_rng(5), any(m is not None for m in masks)


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
@pytest.mark.parametrize("case", ORACLE_CASES)
def test_forward_matches_keras(case):
    from keras_bridge import keras

    ours, theirs, weights, x, mask, _ = _oracle_setup(keras, case)
    rng, training = _plant_dropout_masks(keras, ours, theirs, x)
    to_tensor = keras.ops.convert_to_tensor
    expected = keras.ops.convert_to_numpy(theirs(
        to_tensor(x), mask=None if mask is None else to_tensor(mask), training=training))
    y, _ = ours.forward(weights, x, mask, training, rng)
    assert y.shape == expected.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    if training:  # the planted masks really were used: without them the output differs
        plain, _ = ours.forward(weights, x, mask, False, None)
        assert np.max(np.abs(plain - expected)) > 1e-3
    if mask is not None:
        keras_mask = theirs.compute_mask(to_tensor(x), to_tensor(mask))
        ours_mask = ours.output_mask(x, mask)
        assert (keras_mask is None) == (ours_mask is None)
        if ours_mask is not None:
            np.testing.assert_array_equal(ours_mask, keras.ops.convert_to_numpy(keras_mask))


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
@pytest.mark.parametrize("case", ["gru_mask_sequences", "gru_reset_before_mask", "gru_no_bias",
                                  "gru_both_dropouts", "gru_both_dropouts_before", "rnn_mask",
                                  "rnn_dropouts", "rnn_zero_output"])
def test_training_step_gradients_match_keras(case):
    import torch
    from keras_bridge import keras

    ours, theirs, weights, x, mask, rng = _oracle_setup(keras, case)
    rng, training = _plant_dropout_masks(keras, ours, theirs, x)
    x_torch = torch.tensor(x, requires_grad=True)
    y = theirs(x_torch, mask=None if mask is None else torch.tensor(mask), training=training)
    dy = np.random.default_rng(9).standard_normal(tuple(y.shape)).astype(np.float32)
    (y * torch.tensor(dy)).sum().backward()
    ours_y, cache = ours.forward(weights, x, mask, training, rng)
    np.testing.assert_allclose(ours_y, y.detach().numpy(), rtol=1e-5, atol=1e-5)
    dx, grads = ours.backward(weights, cache, dy)
    np.testing.assert_allclose(dx, x_torch.grad.numpy(), rtol=1e-4, atol=1e-5)
    for variable in theirs.weights:
        np.testing.assert_allclose(grads[variable.name], variable.value.grad.numpy(),
                                   rtol=1e-4, atol=1e-5, err_msg=variable.name)


@pytest.mark.oracle
@pytest.mark.parametrize("cls,options,params", [
    ("GRU", {}, 3 * 6 * (4 + 6 + 2)),
    ("GRU", {"reset_after": False}, 3 * 6 * (4 + 6 + 1)),
    ("GRU", {"use_bias": False}, 3 * 6 * (4 + 6)),
    ("SimpleRNN", {}, 6 * (4 + 6 + 1)),
    ("SimpleRNN", {"return_sequences": True, "use_bias": False}, 6 * (4 + 6)),
])  # fmt: skip
def test_shapes_and_params_match_keras(cls, options, params):
    from keras_bridge import keras

    ours = LAYER_TYPES[cls](type=cls, units=6, **options)
    theirs = getattr(keras.layers, cls)(6, **options)
    theirs.build((None, 7, 4))
    assert ours.output_shape((None, 7, 4)) == theirs.compute_output_shape((None, 7, 4))
    specs = ours.weight_specs((None, 7, 4))
    assert [(s.name, s.shape) for s in specs] == [(w.name, tuple(w.shape)) for w in theirs.weights]
    assert sum(math.prod(s.shape) for s in specs) == theirs.count_params() == params


# --- export parity -------------------------------------------------------------------------------

MASKED_RECURRENT = """
input_shape: [9, 3]
layers:
  - {type: Masking, mask_value: 0.0}
  - {type: GRU, units: 4, return_sequences: true, go_backwards: true}
  - {type: SimpleRNN, units: 3, return_sequences: true, zero_output_for_mask: true,
     activation: relu}
  - {type: GRU, units: 3, return_sequences: true, reset_after: false,
     recurrent_activation: hard_sigmoid}
  - {type: SimpleRNN, units: 3, return_sequences: true}
  - {type: GRU, units: 2, zero_output_for_mask: true, use_bias: false}
"""

UNMASKED_RECURRENT = """
input_shape: [8, 3]
layers:
  - {type: GRU, units: 4, return_sequences: true, go_backwards: true}
  - {type: GRU, units: 4, return_sequences: true, reset_after: false, implementation: 1}
  - {type: SimpleRNN, units: 3, return_sequences: true, go_backwards: true}
  - {type: SimpleRNN, units: 3, return_sequences: true, activation: null, use_bias: false}
  - {type: GRU, units: 3, return_sequences: true, activation: relu}
  - {type: LSTM, units: 3, return_sequences: true, implementation: 1}
  - {type: GRU, units: 2, use_bias: false}
"""


@pytest.mark.oracle
@pytest.mark.parametrize("spec", [MASKED_RECURRENT, UNMASKED_RECURRENT],
                         ids=["masked", "unmasked"])
def test_onnx_matches_predict(spec, tmp_path):
    check_onnx(plan_of(spec), tmp_path)


@pytest.mark.oracle
def test_unmasked_default_layers_use_the_fused_operators(tmp_path):
    import onnx
    from test_export import trained_graph

    from layerctl.export import export_model

    plan = plan_of(UNMASKED_RECURRENT)
    export_model(plan, trained_graph(plan).weights, tmp_path / "m.onnx", "onnx", 17)
    ops = [node.op_type for node in onnx.load(tmp_path / "m.onnx").graph.node]
    assert ops.count("GRU") == 3 and ops.count("RNN") == 1 and ops.count("LSTM") == 1
    assert ops.count("Scan") == 2  # relu GRU, linear SimpleRNN


@pytest.mark.oracle
@pytest.mark.parametrize("spec", [MASKED_RECURRENT, UNMASKED_RECURRENT],
                         ids=["masked", "unmasked"])
def test_keras_matches_predict(spec, tmp_path):
    check_keras(plan_of(spec), tmp_path)


def test_weights_are_float64_in_gradient_checks():
    layer = GRU(type="GRU", units=2)
    weights = init_layer_weights(layer, (None, 3, 4))
    assert all(w.dtype == np.float64 for w in weights.values())
