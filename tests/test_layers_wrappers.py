"""Bidirectional and TimeDistributed: values derived from their inner layers run by hand, weight
names and shapes, float64 gradient checks for every merge mode (masked and unmasked, with and
without return_sequences) and for TimeDistributed around Dense, Conv2D, BatchNormalization and
a Bidirectional, Keras's argument errors as located messages, and (oracle) Keras 3 forward
values, weights, masks and training-step gradients, ONNX / `.keras` export parity, and the
bundled specs/text_bilstm.yaml and text_bigru.yaml training well above chance."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from gradcheck import assert_close, check_graph, init_layer_weights, numerical_gradient
from test_export import TOLERANCE, check_keras, check_onnx, plan_of, sample_inputs

from layerctl.cli import cli
from layerctl.errors import SpecError
from layerctl.graph import Graph
from layerctl.layers import LAYER_TYPES, LSTM, Bidirectional, Conv2D, Dense, TimeDistributed
from layerctl.layers.wrappers import bidirectional as bidirectional_module

ROOT = Path(__file__).resolve().parent.parent
MERGE_MODES = ["concat", "sum", "mul", "ave", None]


def lstm(**kwargs) -> LSTM:
    return LSTM(type="LSTM", **kwargs)


def bidirectional(layer, **kwargs) -> Bidirectional:
    return Bidirectional(type="Bidirectional", layer=layer, **kwargs)


def time_distributed(layer) -> TimeDistributed:
    return TimeDistributed(type="TimeDistributed", layer=layer)


def spec_text(input_shape, *layers, outputs=None) -> str:
    """A spec with one line per layer (line 3 on): JSON flow mappings are YAML."""
    text = f"input_shape: {json.dumps(list(input_shape))}\nlayers:\n" + "".join(
        f"  - {json.dumps(layer)}\n" for layer in layers)
    return text + (f"outputs: {json.dumps(outputs)}\n" if outputs else "")


def sequences(shape=(3, 5, 4), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape)


def padding_mask(batch=3, steps=5) -> np.ndarray:
    """Post-padded, pre-padded and a hole: every way a mask can look."""
    mask = np.ones((batch, steps), bool)
    mask[0, steps - 2:] = False
    mask[1, :2] = False
    if batch > 2:
        mask[2, 2] = False
    return mask


def inner(weights: dict, prefix: str) -> dict:
    return {k.removeprefix(prefix + "/"): v for k, v in weights.items()
            if k.startswith(prefix + "/")}


# ---- values from the inner layers run by hand ---------------------------------------------------
def test_backward_direction_is_the_layer_on_reversed_time_reversed_back():
    layer = bidirectional(lstm(units=3, return_sequences=True))
    x = sequences()
    weights = init_layer_weights(layer, (None, 5, 4))
    y, _ = layer.forward(weights, x, None, False, None)
    plain = lstm(units=3, return_sequences=True)
    forward, _ = plain.forward(inner(weights, "forward_lstm"), x, None, False, None)
    on_reversed, _ = plain.forward(inner(weights, "backward_lstm"), x[:, ::-1], None, False, None)
    np.testing.assert_allclose(y, np.concatenate([forward, on_reversed[:, ::-1]], axis=-1))


def test_last_outputs_are_each_directions_final_state():
    layer = bidirectional(lstm(units=3))
    x = sequences()
    weights = init_layer_weights(layer, (None, 5, 4))
    y, _ = layer.forward(weights, x, None, False, None)
    sequence = lstm(units=3, return_sequences=True)
    forward, _ = sequence.forward(inner(weights, "forward_lstm"), x, None, False, None)
    on_reversed, _ = sequence.forward(inner(weights, "backward_lstm"), x[:, ::-1], None, False,
                                      None)
    np.testing.assert_allclose(y, np.concatenate([forward[:, -1], on_reversed[:, -1]], -1))


@pytest.mark.parametrize("mode, combine", [
    ("sum", lambda a, b: a + b), ("mul", lambda a, b: a * b), ("ave", lambda a, b: (a + b) / 2),
    (None, lambda a, b: (a, b))])
def test_merge_modes_combine_the_two_halves_of_concat(mode, combine):
    x, mask = sequences(), padding_mask()
    concat = bidirectional(lstm(units=3, return_sequences=True))
    weights = init_layer_weights(concat, (None, 5, 4))
    joined, _ = concat.forward(weights, x, mask, False, None)
    y, _ = bidirectional(concat.layer, merge_mode=mode).forward(weights, x, mask, False, None)
    expected = combine(joined[..., :3], joined[..., 3:])
    for got, want in zip(y if mode is None else [y], expected if mode is None else [expected],
                         strict=True):
        np.testing.assert_allclose(got, want)


def test_masked_steps_output_zero_in_both_directions():
    """Keras forces zero_output_for_mask = return_sequences on both directions."""
    layer = bidirectional(lstm(units=2, return_sequences=True))
    forward, backward = layer.directions()
    assert forward.zero_output_for_mask and backward.zero_output_for_mask
    y, _ = layer.forward(init_layer_weights(layer, (None, 5, 4)), sequences(), padding_mask(),
                         False, None)
    assert np.all(y[~padding_mask()] == 0) and np.all(y[padding_mask()] != 0)


def test_time_distributed_dense_is_dense_at_every_step():
    x = np.array([[[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]]])  # (1, 3 steps, 2)
    kernel, bias = np.array([[1.0, 0.0, 2.0], [-1.0, 1.0, 0.5]]), np.array([0.1, 0.2, 0.3])
    layer = time_distributed(Dense(type="Dense", units=3))
    y, _ = layer.forward({"dense/kernel": kernel, "dense/bias": bias}, x, None, False, None)
    np.testing.assert_allclose(y, [[[-0.9, 2.2, 3.3], [1.1, -0.8, -0.2],
                                    [2.6, 0.7, 6.55]]])


def test_time_distributed_conv2d_is_the_conv_of_every_frame():
    conv = Conv2D(type="Conv2D", filters=2, kernel_size=3, data_format="channels_last")
    layer = time_distributed(conv)
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 5, 1))
    weights = init_layer_weights(layer, (None, 3, 5, 5, 1))
    y, _ = layer.forward(weights, x, None, False, None)
    assert y.shape == (2, 3, 3, 3, 2)
    for t in range(3):
        frame, _ = conv.forward(inner(weights, "conv2d"), x[:, t], None, False, None)
        np.testing.assert_allclose(y[:, t], frame)


# ---- shapes, weights and masks ------------------------------------------------------------------
def test_weight_keys_follow_the_inner_name():
    plan = plan_of(spec_text(
        [5, 4],
        {"type": "Bidirectional", "layer": {"type": "LSTM", "units": 3, "return_sequences": True}},
        {"type": "Bidirectional", "name": "bi", "layer": {"type": "LSTM", "units": 2,
                                                          "name": "enc"},
         "backward_layer": {"type": "LSTM", "units": 4, "go_backwards": True,
                            "name": "backward_dec"}}))
    graph = Graph(plan)
    assert [(k, v.shape) for k, v in graph.weights.items()] == [
        ("bidirectional/forward_lstm/kernel", (4, 12)),
        ("bidirectional/forward_lstm/recurrent_kernel", (3, 12)),
        ("bidirectional/forward_lstm/bias", (12,)),
        ("bidirectional/backward_lstm/kernel", (4, 12)),
        ("bidirectional/backward_lstm/recurrent_kernel", (3, 12)),
        ("bidirectional/backward_lstm/bias", (12,)),
        ("bi/forward_enc/kernel", (6, 8)), ("bi/forward_enc/recurrent_kernel", (2, 8)),
        ("bi/forward_enc/bias", (8,)),
        ("bi/backward_dec/kernel", (6, 16)), ("bi/backward_dec/recurrent_kernel", (4, 16)),
        ("bi/backward_dec/bias", (16,))]
    assert [n.output_shape for n in plan.nodes] == [(None, 5, 6), (None, 6)]  # 2 + 4 joined
    assert plan.total_params == 2 * 4 * 3 * (4 + 3 + 1) + 4 * 2 * 9 + 4 * 4 * 11


def test_time_distributed_weight_keys_and_shapes():
    plan = plan_of(spec_text(
        [4, 6, 6, 2],
        {"type": "TimeDistributed", "layer": {"type": "Conv2D", "filters": 3, "kernel_size": 3}},
        {"type": "TimeDistributed", "layer": {"type": "MaxPool"}},
        {"type": "TimeDistributed", "layer": {"type": "Flatten"}},
        {"type": "TimeDistributed", "layer": {"type": "Dense", "units": 5, "name": "head"}}))
    assert [(n.name, n.output_shape) for n in plan.nodes] == [
        ("time_distributed", (None, 4, 4, 4, 3)), ("time_distributed_1", (None, 4, 2, 2, 3)),
        ("time_distributed_2", (None, 4, 12)), ("time_distributed_3", (None, 4, 5))]
    assert plan.nodes[1].layer.layer.keras_class == "MaxPooling2D"  # resolved at the frame rank
    assert list(Graph(plan).weights) == [
        "time_distributed/conv2d/kernel", "time_distributed/conv2d/bias",
        "time_distributed_3/head/kernel", "time_distributed_3/head/bias"]
    assert Graph(plan).weights["time_distributed/conv2d/kernel"].shape == (3, 3, 2, 3)


def test_merge_mode_null_has_two_outputs_addressed_by_index():
    plan = plan_of(spec_text(
        [5, 4],
        {"type": "Bidirectional", "name": "bi", "merge_mode": None,
         "layer": {"type": "LSTM", "units": 3, "return_sequences": True}},
        {"type": "Dense", "units": 2, "name": "left"},
        {"type": "Dense", "units": 2, "name": "right", "inputs": ["bi.1"]},
        outputs=["left", "right", "bi.1"]))
    assert plan.node("bi").output_shapes == ((None, 5, 3), (None, 5, 3))
    assert plan.shape_of("bi.1") == (None, 5, 3)
    graph = Graph(plan)
    graph.initialize(np.random.default_rng(0))
    out = graph.forward(np.ones((2, 5, 4), np.float32))
    assert sorted(out) == ["bi.1", "left", "right"]


def test_frozen_inner_layer_freezes_its_weights():
    plan = plan_of(spec_text([5, 4], {"type": "Bidirectional", "layer": {
        "type": "LSTM", "units": 2, "trainable": False}}))
    assert plan.trainable_params == 0 and plan.non_trainable_params == 2 * 4 * 2 * 7


@pytest.mark.parametrize("return_sequences, mode, emits, masks", [
    (True, "concat", True, "same"), (True, None, True, ["same", "same"]),
    (False, "concat", False, None), (False, None, False, [None, None])])
def test_bidirectional_output_masks_follow_return_sequences(return_sequences, mode, emits,
                                                            masks):
    layer = bidirectional(lstm(units=2, return_sequences=return_sequences), merge_mode=mode)
    mask = padding_mask()
    got = layer.output_mask(sequences(), mask)
    assert layer.emits_mask(True) is emits and layer.emits_mask(False) is False
    expected = [mask if m == "same" else None for m in masks] if isinstance(masks, list) else (
        mask if masks == "same" else None)
    if isinstance(expected, list):
        assert [g is e for g, e in zip(got, expected, strict=True)] == [True, True]
    else:
        assert got is expected


def test_time_distributed_passes_the_mask_and_gives_the_inner_layer_none():
    layer = time_distributed(lstm(units=2))  # the inner LSTM would read a mask if given one
    x = sequences((3, 5, 2, 4))
    mask = padding_mask()
    weights = init_layer_weights(layer, (None, 5, 2, 4))
    masked, _ = layer.forward(weights, x, mask, False, None)
    unmasked, _ = layer.forward(weights, x, None, False, None)
    np.testing.assert_array_equal(masked, unmasked)
    assert layer.output_mask(x, mask) is mask and layer.emits_mask(True)


def test_the_inner_layers_seed_gives_the_wrapper_its_own_generator():
    plan = plan_of(spec_text([5, 4], {"type": "Bidirectional", "layer": {
        "type": "LSTM", "units": 2, "dropout": 0.5, "seed": 3}}))
    graph = Graph(plan)
    assert set(graph.layer_rngs) == {"bidirectional"}
    graph.initialize(np.random.default_rng(0))
    x = np.ones((2, 5, 4), np.float32)
    first = graph.forward(x, training=True, rng=np.random.default_rng(1))
    again = Graph(plan)
    again.set_weights(graph.get_weights())
    np.testing.assert_array_equal(again.forward(x, training=True, rng=np.random.default_rng(2)),
                                  first)  # the run's generator does not matter


BLOCKS = """\
input_shape: [16]
blocks:
  birnn:
    params: {inner: {type: LSTM, units: 4, return_sequences: true}}
    layers:
      - {type: Bidirectional, layer: $inner, merge_mode: null, name: bi}
      - {type: Add, inputs: [bi.0, bi.1]}
layers:
  - {type: Embedding, input_dim: 64, output_dim: 8, mask_zero: true}
  - {block: birnn, name: enc}
  - {block: birnn, name: enc2, inner: {type: LSTM, units: 3, return_sequences: true, name: deep}}
  - {type: TimeDistributed, layer: {type: Dense, units: 3}, name: td}
  - {apply: td, name: td_again, inputs: [enc2]}
  - {type: Bidirectional, layer: {type: LSTM, units: 2}, inputs: [td_again]}
"""


def test_wrappers_in_blocks_and_applied_again():
    plan = plan_of(BLOCKS)
    assert plan.node("enc2/bi").output_shapes == ((None, 16, 3), (None, 16, 3))
    assert [w.name for w in plan.node("enc2/bi").weights][:1] == ["forward_deep/kernel"]
    assert plan.node("td_again").weights == () and plan.node("td_again").owner == "td"
    assert "enc2/bi/backward_deep/bias" in Graph(plan).weights


# ---- float64 gradient checks --------------------------------------------------------------------
def check_outputs(layer, x, *, mask=None, training=False, check_input=True):
    """check_layer for layers with one or several outputs: backward against central
    differences of Σ_k Σ y_k · R_k."""
    shape = (None,) + x.shape[1:]
    weights = init_layer_weights(layer, shape)

    def run():
        return layer.forward(weights, x, mask, training, np.random.default_rng(1234))

    y, cache = run()
    ys = list(y) if isinstance(y, tuple) else [y]
    projections = [np.random.default_rng(k + 1).normal(size=v.shape) for k, v in enumerate(ys)]

    def f():
        out = run()[0]
        outs = list(out) if isinstance(out, tuple) else [out]
        return float(sum(np.sum(o * p) for o, p in zip(outs, projections, strict=True)))

    dx, grads = layer.backward(weights, cache, projections if isinstance(y, tuple)
                               else projections[0])
    assert sorted(grads) == sorted(w.name for w in layer.weight_specs(shape) if w.trainable)
    for name in grads:
        assert_close(grads[name], numerical_gradient(f, weights[name]), f"d{name}")
    if check_input:
        assert_close(dx, numerical_gradient(f, x), "dx")


@pytest.fixture(params=["in_turn", "at_once"])
def directions(request, monkeypatch):
    """'at_once': the two directions run at the same time whatever their size, as large ones
    do (the backward one on the pool's thread)."""
    if request.param == "at_once":
        monkeypatch.setattr(bidirectional_module, "CONCURRENT_STEP_FLOPS", 0)
        monkeypatch.setenv("LAYERCTL_NUM_THREADS", "2")
    return request.param


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("mode", MERGE_MODES, ids=str)
def test_bidirectional_gradients(mode, return_sequences, masked, directions):
    layer = bidirectional(lstm(units=3, return_sequences=return_sequences), merge_mode=mode)
    check_outputs(layer, sequences(), mask=padding_mask() if masked else None)


def test_bidirectional_gradients_with_another_backward_layer_and_dropout(directions):
    layer = bidirectional(
        lstm(units=2, return_sequences=True, dropout=0.3),
        backward_layer=lstm(units=3, activation="relu", go_backwards=True,
                            return_sequences=True, recurrent_dropout=0.2))
    check_outputs(layer, sequences(), mask=padding_mask(), training=True)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_directions_at_once_compute_the_same_bits_and_draw_in_order(dropout, monkeypatch):
    """Running the directions at once changes no number; with dropout they run in turn, so
    the generator's draws come in the same order and training stays reproducible."""
    layer = bidirectional(lstm(units=4, return_sequences=True, dropout=dropout))
    x = sequences()
    weights = init_layer_weights(layer, x.shape, np.random.default_rng(0))

    def run() -> list[np.ndarray]:
        y, cache = layer.forward(weights, x, padding_mask(), True, np.random.default_rng(1))
        dx, grads = layer.backward(weights, cache, np.ones_like(y))
        return [y, dx, *(grads[name] for name in sorted(grads))]

    monkeypatch.setenv("LAYERCTL_NUM_THREADS", "2")
    in_turn = run()
    monkeypatch.setattr(bidirectional_module, "CONCURRENT_STEP_FLOPS", 0)
    at_once = run()
    for a, b in zip(in_turn, at_once, strict=True):
        np.testing.assert_array_equal(a, b, strict=True)


def test_time_distributed_gradients_dense():
    check_outputs(time_distributed(Dense(type="Dense", units=3, activation="tanh")),
                  sequences((2, 4, 3)), mask=padding_mask(2, 4))


def test_time_distributed_gradients_conv2d():
    conv = Conv2D(type="Conv2D", filters=2, kernel_size=3, padding="same", activation="relu",
                  data_format="channels_last")
    check_outputs(time_distributed(conv), sequences((2, 3, 4, 4, 2)))


def test_time_distributed_gradients_batch_normalization_in_training():
    from layerctl.layers import BatchNormalization

    layer = time_distributed(BatchNormalization(type="BatchNormalization"))
    check_outputs(layer, sequences((3, 4, 2)), training=True)


def test_time_distributed_of_bidirectional_gradients():
    layer = time_distributed(bidirectional(lstm(units=2), merge_mode="ave"))
    check_outputs(layer, sequences((2, 3, 4, 2)))


def test_graph_gradients_through_both_wrappers():
    plan = plan_of(spec_text(
        [6],
        {"type": "Embedding", "input_dim": 9, "output_dim": 3, "mask_zero": True},
        {"type": "Bidirectional", "name": "bi", "merge_mode": None,
         "layer": {"type": "LSTM", "units": 2, "return_sequences": True}},
        {"type": "Concatenate", "inputs": ["bi.0", "bi.1"]},
        {"type": "TimeDistributed", "layer": {"type": "Dense", "units": 2}},
        {"type": "Bidirectional", "layer": {"type": "LSTM", "units": 2}, "merge_mode": "mul"}))
    graph = Graph(plan, np.float64)
    graph.initialize(np.random.default_rng(0))
    x = np.array([[0, 0, 3, 4, 5, 1], [2, 8, 1, 0, 0, 0], [1, 0, 2, 0, 3, 4]])
    check_graph(graph, x)


def test_batch_normalization_inside_time_distributed_updates_its_moving_statistics():
    plan = plan_of(spec_text([4, 3], {"type": "TimeDistributed",
                                      "layer": {"type": "BatchNormalization"}}))
    graph = Graph(plan)
    graph.initialize(np.random.default_rng(0))
    x = np.random.default_rng(1).normal(5.0, 1.0, size=(8, 4, 3)).astype(np.float32)
    graph.forward(x, training=True)
    mean = x.reshape(-1, 3).mean(axis=0)  # the statistics of batch and time together
    np.testing.assert_allclose(graph.weights["time_distributed/batch_normalization/moving_mean"],
                               0.01 * mean, rtol=1e-5)


# ---- Keras's errors, located --------------------------------------------------------------------
def located_messages(text: str) -> list[str]:
    with pytest.raises(SpecError) as error:
        plan_of(text)
    return [problem.render() for problem in error.value.problems]


def column_of(layer: dict, key: str) -> int:
    line = f"  - {json.dumps(layer)}"
    return line.index(f'"{key}": ') + len(f'"{key}": ') + 1


LSTM_4 = {"type": "LSTM", "units": 4}


@pytest.mark.parametrize("layer, key, message", [
    ({"type": "Bidirectional", "layer": {"type": "Dense", "units": 4}}, "layer",
     "layer: Unrecognized keyword arguments passed to Dense: {'go_backwards': True}"),
    ({"type": "Bidirectional", "layer": {"type": "TimeDistributed", "layer": LSTM_4}}, "layer",
     "layer: Unrecognized keyword arguments passed to TimeDistributed: {'go_backwards': True}"),
    ({"type": "Bidirectional", "layer": LSTM_4, "merge_mode": "max"}, "merge_mode",
     'merge_mode: Invalid merge mode. Received: max. Merge mode should be one of {"sum", '
     '"mul", "ave", "concat", None}'),
    ({"type": "Bidirectional", "layer": LSTM_4, "backward_layer": {"type": "Dense", "units": 4}},
     "backward_layer", "backward_layer: 'Dense' object has no attribute 'go_backwards'"),
    ({"type": "Bidirectional", "layer": LSTM_4, "backward_layer": LSTM_4}, None,
     "Forward layer and backward layer should have different `go_backwards` value. Received: "
     "forward_layer.go_backwards False, backward_layer.go_backwards=False"),
    ({"type": "Bidirectional", "layer": {**LSTM_4, "go_backwards": True}}, None,
     "Forward layer and backward layer should have different `go_backwards` value. Received: "
     "forward_layer.go_backwards True, backward_layer.go_backwards=True"),
    ({"type": "Bidirectional", "layer": LSTM_4, "backward_layer": {
        **LSTM_4, "go_backwards": True, "return_sequences": True}}, None,
     'Forward layer and backward layer are expected to have the same value for attribute '
     '"return_sequences", got "False" for forward layer and "True" for backward layer'),
    ({"type": "TimeDistributed", "layer": {"type": "Dense", "units": 2, "inputs": ["x"]}},
     "layer", "a wrapped layer takes the wrapper's input: give `inputs` and `input_shape` to "
     "the wrapper, not to the layer inside it"),
    ({"type": "Bidirectional", "layer": {**LSTM_4, "units": 0}}, "units",
     "Input should be greater than 0"),
])
def test_argument_errors_are_keras_messages(layer, key, message):
    messages = located_messages(spec_text([5, 4], layer))
    column = 5 if key is None else column_of(layer, key)
    if key == "units":  # located at the inner value; the wording is the inner layer's own
        assert len(messages) == 1 and messages[0].startswith(f"<spec>:3:{column}: ")
        return
    assert messages == [f"<spec>:3:{column}: {message}"]


@pytest.mark.parametrize("input_shape, layer, message", [
    ([4], {"type": "TimeDistributed", "layer": {"type": "Dense", "units": 2}},
     "`TimeDistributed` Layer should be passed an `input_shape` with at least 3 dimensions, "
     "received: (None, 4)"),
    ([4], {"type": "Bidirectional", "layer": LSTM_4},
     "expected ndim=3, found ndim=2. Full shape received: (None, 4)"),
    ([5, 4], {"type": "Bidirectional", "layer": LSTM_4, "merge_mode": "sum",
              "backward_layer": {"type": "LSTM", "units": 3, "go_backwards": True}},
     "merge_mode='sum' cannot join the forward output (None, 4) and the backward output "
     "(None, 3)"),
    ([5, 4, 3], {"type": "TimeDistributed", "layer": {"type": "Bidirectional", "layer": LSTM_4,
                                                   "merge_mode": None}},
     "TimeDistributed cannot wrap a layer with 2 outputs (Bidirectional)"),
    ([5, 4], {"type": "TimeDistributed", "layer": {"type": "Conv2D", "filters": 2,
                                                   "kernel_size": 3}},
     "expected ndim=4, found ndim=2. Full shape received: (None, 4)"),
])
def test_shape_errors_are_located_at_the_wrapper(input_shape, layer, message):
    name = "time_distributed" if layer["type"] == "TimeDistributed" else "bidirectional"
    shape = ", ".join(str(d) for d in input_shape)
    assert located_messages(spec_text(input_shape, layer)) == [
        f"<spec>:3:6: layer '{name}' ({layer['type']}) cannot take input of shape "
        f"(None, {shape}): {message}"]


# ---- Keras 3 as the oracle ----------------------------------------------------------------------
def keras_key(layer, variable) -> str:
    """`layer/…` as layerctl keys it: the variable's path with the recurrent cell left out."""
    from keras_bridge import weight_name

    return f"{layer.name}/{weight_name(layer, variable)}"


def copy_into(model, weights: dict) -> None:
    """layerctl's weights into the Keras model by key (a KeyError if a name differs)."""
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([weights[keras_key(layer, w)] for w in layer.weights])


TEXT = [{"type": "Embedding", "input_dim": 12, "output_dim": 4, "mask_zero": True}]
ORACLE_CASES = {
    **{f"masked-{mode}-{'seq' if seq else 'last'}": (
        [6], TEXT + [{"type": "Bidirectional", "merge_mode": mode,
                      "layer": {"type": "LSTM", "units": 3, "return_sequences": seq}}])
       for mode in MERGE_MODES for seq in (False, True)},
    "unmasked-concat-seq": ([5, 3], [{"type": "Bidirectional", "layer": {
        "type": "LSTM", "units": 3, "return_sequences": True}}]),
    "unmasked-ave-last": ([5, 3], [{"type": "Bidirectional", "merge_mode": "ave",
                                    "layer": {"type": "LSTM", "units": 3}}]),
    "backward-layer": ([6], TEXT + [{"type": "Bidirectional", "name": "bi", "layer": {
        "type": "LSTM", "units": 3, "name": "enc", "return_sequences": True},
        "backward_layer": {"type": "LSTM", "units": 3, "go_backwards": True,
                           "activation": "relu", "return_sequences": True}}]),
    "stacked": ([6], TEXT + [
        {"type": "Bidirectional", "layer": {"type": "LSTM", "units": 3,
                                            "return_sequences": True}},
        {"type": "TimeDistributed", "layer": {"type": "Dense", "units": 3,
                                              "activation": "tanh"}},
        {"type": "Bidirectional", "layer": {"type": "LSTM", "units": 2}, "merge_mode": "mul"}]),
    "td-dense": ([5, 3], [{"type": "TimeDistributed", "layer": {"type": "Dense", "units": 4}}]),
    "td-conv2d": ([3, 6, 6, 2], [
        {"type": "TimeDistributed", "layer": {"type": "Conv2D", "filters": 3, "kernel_size": 3,
                                              "strides": 2, "padding": "same"}},
        {"type": "TimeDistributed", "layer": {"type": "Flatten"}}]),
    "td-bidirectional": ([3, 5, 2], [{"type": "TimeDistributed", "layer": {
        "type": "Bidirectional", "layer": {"type": "LSTM", "units": 2}}}]),
}
# The other recurrent classes (GRU, SimpleRNN, once the registry has them): the wrapper uses
# only the generic layer interface, so each gets masked cases and a mixed pair of directions.
OTHER_RECURRENT = [t for t in ("GRU", "SimpleRNN") if t in LAYER_TYPES]
for _recurrent in OTHER_RECURRENT:
    ORACLE_CASES[f"{_recurrent}-masked-concat-seq"] = ([6], TEXT + [{
        "type": "Bidirectional", "layer": {"type": _recurrent, "units": 3,
                                           "return_sequences": True}}])
    ORACLE_CASES[f"{_recurrent}-masked-None-last"] = ([6], TEXT + [{
        "type": "Bidirectional", "merge_mode": None, "layer": {"type": _recurrent, "units": 3}}])
    ORACLE_CASES[f"LSTM-and-{_recurrent}-backward"] = ([6], TEXT + [{
        "type": "Bidirectional", "merge_mode": "sum", "layer": {"type": "LSTM", "units": 3},
        "backward_layer": {"type": _recurrent, "units": 3, "go_backwards": True}}])
OTHER_CASES = [case for case in ORACLE_CASES if case.split("-")[0] in OTHER_RECURRENT
               or case.startswith("LSTM-and-")]


def oracle_graph(case: str) -> Graph:
    input_shape, layers = ORACLE_CASES[case]
    outputs = None
    last = layers[-1]
    if last.get("merge_mode", "concat") is None:
        layers = layers[:-1] + [{**last, "name": "bi"}]
        outputs = ["bi.0", "bi.1"]
    graph = Graph(plan_of(spec_text(input_shape, *layers, outputs=outputs)))
    graph.initialize(np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for key, value in graph.weights.items():
        if key.endswith("bias"):
            value[...] = rng.normal(scale=0.5, size=value.shape)
    return graph


def keras_twin(graph: Graph):
    from keras_bridge import keras_graph_model

    model = keras_graph_model(graph.plan)
    copy_into(model, graph.weights)
    return model


def as_list(y) -> list:
    """One output or {output: array} (in the plan's output order, which is Keras's)."""
    return list(y.values()) if isinstance(y, dict) else [y]


@pytest.mark.oracle
@pytest.mark.parametrize("case", ORACLE_CASES)
def test_forward_weights_and_params_match_keras(case):
    from keras_bridge import run_keras

    graph = oracle_graph(case)
    model = keras_twin(graph)
    x = sample_inputs(graph.plan, n=5)
    expected = run_keras(model, x, training=False)
    for got, want in zip(as_list(graph.forward(x)), expected if isinstance(expected, list)
                         else [expected], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for node in graph.plan.nodes:
        layer = model.get_layer(node.name)
        outputs = layer.output if isinstance(layer.output, list | tuple) else [layer.output]
        assert [tuple(o.shape) for o in outputs] == list(node.output_shapes)
        assert layer.count_params() == node.params
        assert [(keras_key(layer, w), tuple(w.shape)) for w in layer.weights] == [
            (f"{node.name}/{w.name}", w.shape) for w in node.weights]


@pytest.mark.oracle
@pytest.mark.parametrize("case", ["masked-concat-seq", "masked-mul-last", "masked-None-seq",
                                  "backward-layer", "stacked", "td-conv2d", "td-bidirectional",
                                  *OTHER_CASES])
def test_training_step_gradients_match_keras(case):
    """d(Σ_k y_k · R_k)/d weights through the Keras model (torch autograd) equal layerctl's."""
    torch = pytest.importorskip("torch", reason="the Keras oracle runs on the torch backend")
    graph = oracle_graph(case)
    model = keras_twin(graph)
    x = sample_inputs(graph.plan, n=5)
    ys = graph.forward(x, training=True)
    names = list(ys) if isinstance(ys, dict) else [graph.plan.output]
    values = [ys[n] for n in names] if isinstance(ys, dict) else [ys]
    projections = [np.random.default_rng(k).normal(size=v.shape).astype(np.float32)
                   for k, v in enumerate(values)]
    graph.backward(dict(zip(names, projections, strict=True)))
    outputs = model(torch.as_tensor(x), training=True)
    outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
    total = sum((o * torch.as_tensor(p)).sum() for o, p in zip(outputs, projections,
                                                               strict=True))
    variables = [(layer, w) for layer in model.layers for w in layer.trainable_weights]
    grads = torch.autograd.grad(total, [w.value for _, w in variables])
    assert sorted(keras_key(layer, w) for layer, w in variables) == sorted(graph.grads)
    for (layer, w), grad in zip(variables, grads, strict=True):
        np.testing.assert_allclose(graph.grads[keras_key(layer, w)], grad.numpy(), **TOLERANCE,
                                   err_msg=keras_key(layer, w))


@pytest.mark.oracle
@pytest.mark.parametrize("case", ["masked-concat-seq", "masked-None-seq", "masked-sum-last",
                                  "masked-None-last"])
def test_bidirectional_masks_match_keras(case):
    from keras_bridge import keras

    graph = oracle_graph(case)
    model = keras_twin(graph)
    x = sample_inputs(graph.plan, n=5)
    node = graph.plan.nodes[-1]
    incoming = x != 0
    theirs = model.get_layer(node.name).compute_mask(None, keras.ops.convert_to_tensor(incoming))
    ours = node.layer.output_mask(np.zeros(x.shape + (4,)), incoming)
    if isinstance(ours, list):
        assert isinstance(theirs, tuple) and len(theirs) == len(ours)
    else:
        ours, theirs = [ours], [theirs]
    for mine, keras_mask in zip(ours, theirs, strict=True):
        assert (mine is None) == (keras_mask is None)
        if mine is not None:
            np.testing.assert_array_equal(mine, keras.ops.convert_to_numpy(keras_mask))
    assert node.emits_mask == (ours[0] is not None)


@pytest.mark.oracle
def test_time_distributed_mask_matches_keras():
    from keras_bridge import keras

    graph = oracle_graph("stacked")
    model = keras_twin(graph)
    x = sample_inputs(graph.plan, n=5)
    incoming = keras.ops.convert_to_tensor(x != 0)
    node = graph.plan.nodes[2]
    assert node.layer.keras_class == "TimeDistributed" and node.emits_mask
    theirs = model.get_layer(node.name).compute_mask(None, incoming)
    np.testing.assert_array_equal(node.layer.output_mask(None, x != 0),
                                  keras.ops.convert_to_numpy(theirs))


# ---- export parity ------------------------------------------------------------------------------
EXPORT_CASES = {
    **{case: ORACLE_CASES[case] for case in (
        "masked-concat-seq", "masked-sum-last", "masked-ave-seq", "masked-mul-seq",
        "masked-None-seq", "masked-None-last", "unmasked-concat-seq", "unmasked-ave-last",
        "backward-layer", "stacked", "td-dense", "td-conv2d", "td-bidirectional",
        *OTHER_CASES)},
    "td-embedding": ([3, 4], [
        {"type": "TimeDistributed", "layer": {"type": "Embedding", "input_dim": 9,
                                              "output_dim": 2}},
        {"type": "TimeDistributed", "layer": {"type": "Flatten"}}]),
    "td-batch-normalization-unknown-steps": ([None, 3], [
        {"type": "TimeDistributed", "layer": {"type": "BatchNormalization"}},
        {"type": "Bidirectional", "layer": {"type": "LSTM", "units": 2,
                                            "activation": "relu"}}]),
}


def export_plan(case: str):
    input_shape, layers = EXPORT_CASES[case]
    last = layers[-1]
    if last.get("merge_mode", "concat") is None:
        return plan_of(spec_text(input_shape, *layers[:-1], {**last, "name": "bi"},
                                 outputs=["bi.0", "bi.1"]))
    return plan_of(spec_text(input_shape, *layers))


def export_input(case: str, plan):
    if case == "td-embedding":  # indices (the helper finds no Embedding at the top level)
        return np.random.default_rng(1).integers(0, 9, size=(6, 3, 4))
    return sample_inputs(plan)


@pytest.mark.oracle
@pytest.mark.parametrize("case", EXPORT_CASES)
def test_onnx_export_matches_predict(case, tmp_path):
    plan = export_plan(case)
    check_onnx(plan, tmp_path, x=export_input(case, plan))


@pytest.mark.oracle
@pytest.mark.parametrize("case", EXPORT_CASES)
def test_keras_export_matches_predict(case, tmp_path):
    plan = export_plan(case)
    check_keras(plan, tmp_path, x=export_input(case, plan))


@pytest.mark.oracle
@pytest.mark.parametrize("check", [check_onnx, check_keras], ids=["onnx", "keras"])
def test_export_of_wrappers_in_blocks_and_applied_again(check, tmp_path):
    check(plan_of(BLOCKS), tmp_path)


@pytest.mark.oracle
def test_keras_export_keeps_the_inner_layers_arguments(tmp_path):
    from layerctl.export import export_model

    plan = export_plan("backward-layer")
    graph = Graph(plan)
    graph.initialize(np.random.default_rng(0))
    export_model(plan, graph.weights, tmp_path / "m.keras", "keras")
    from test_export import run_keras_file

    _, model = run_keras_file(tmp_path / "m.keras", sample_inputs(plan))
    layer = model.get_layer("bi")
    assert (layer.forward_layer.name, layer.backward_layer.name) == ("forward_enc",
                                                                     "backward_lstm")
    assert layer.backward_layer.go_backwards and layer.backward_layer.units == 3
    assert layer.backward_layer.activation.__name__ == "relu"


# ---- states (once recurrent layers return them) ------------------------------------------------
def returns_states() -> bool:
    try:
        lstm(units=1, return_state=True)
    except ValueError:  # pydantic's ValidationError: return_state is still Literal[False]
        return False
    return True


STATES = pytest.mark.skipif(not returns_states(), reason="recurrent layers return no states")


def states_spec(recurrent: str, mode: str | None) -> str:
    """Bidirectional with return_state; every output is a model output (Keras's order)."""
    layers = TEXT + [{"type": "Bidirectional", "name": "bi", "merge_mode": mode, "layer": {
        "type": recurrent, "units": 3, "return_sequences": True, "return_state": True}}]
    count = (2 if mode is None else 1) + 2 * (2 if recurrent == "LSTM" else 1)
    return spec_text([6], *layers, outputs=["bi"] + [f"bi.{k}" for k in range(1, count)])


@STATES
@pytest.mark.parametrize("mode", ["concat", None], ids=str)
@pytest.mark.parametrize("recurrent", ["LSTM", *OTHER_RECURRENT])
def test_bidirectional_states_follow_the_merged_outputs(recurrent, mode):
    """Keras's order: the merged output (or both), the forward states, the backward states."""
    plan = plan_of(states_spec(recurrent, mode))
    state_count = 2 if recurrent == "LSTM" else 1
    sequence = (None, 6, 6) if mode == "concat" else (None, 6, 3)
    merged = [sequence] if mode == "concat" else [sequence, sequence]
    assert list(plan.node("bi").output_shapes) == merged + [(None, 3)] * 2 * state_count
    cls = LAYER_TYPES[recurrent]
    check_outputs(bidirectional(cls(type=recurrent, units=2, return_sequences=True,
                                    return_state=True), merge_mode=mode),
                  sequences(), mask=padding_mask())


@STATES
@pytest.mark.oracle
@pytest.mark.parametrize("mode", ["concat", None], ids=str)
@pytest.mark.parametrize("recurrent", ["LSTM", *OTHER_RECURRENT])
def test_bidirectional_states_match_keras_and_export(recurrent, mode, tmp_path):
    from keras_bridge import run_keras

    plan = plan_of(states_spec(recurrent, mode))
    graph = Graph(plan)
    graph.initialize(np.random.default_rng(0))
    x = sample_inputs(plan, n=5)
    for got, want in zip(graph.forward(x).values(), run_keras(keras_twin(graph), x, False),
                         strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    check_onnx(plan, tmp_path)
    check_keras(plan, tmp_path)


@pytest.mark.oracle
def test_keras_export_refuses_a_wrong_sparsemax_inside_a_wrapper(tmp_path):
    from layerctl.export import ExportError, export_model
    from layerctl.export.keras import _keras_sparsemax_ok, load_keras

    if _keras_sparsemax_ok(load_keras()):
        pytest.skip("this Keras computes sparsemax as layerctl does")
    plan = plan_of(spec_text([3, 4], {"type": "TimeDistributed", "layer": {
        "type": "Dense", "units": 3, "activation": "sparsemax"}}))
    with pytest.raises(ExportError, match=r"layer 'time_distributed' \(TimeDistributed\)"):
        export_model(plan, Graph(plan).weights, tmp_path / "m.keras", "keras")


# ---- the bundled spec -------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["text_bilstm", "text_bigru"])
def test_bundled_bidirectional_text_specs_train(spec, tmp_path, monkeypatch):
    """specs/text_bilstm.yaml and text_bigru.yaml on the bundled languages words: one epoch is
    well above chance (25 %)."""
    (tmp_path / "specs").mkdir()
    shutil.copy(ROOT / "specs" / f"{spec}.yaml", tmp_path / "specs")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    made = runner.invoke(cli, ["pad", "--dataset", "languages", "--level", "char", "--maxlen",
                               "16", "-o", "lang.npz"])
    assert made.exit_code == 0, made.output
    trained = runner.invoke(cli, ["train", f"specs/{spec}.yaml", "--epochs", "1", "-q"])
    assert trained.exit_code == 0, trained.output
    run = spec.replace("_", "-")
    with open(tmp_path / "runs" / run / "history.csv", newline="") as handle:
        history = list(csv.DictReader(handle))
    assert len(history) == 1 and float(history[-1]["val_accuracy"]) > 0.6
