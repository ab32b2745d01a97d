"""Recurrent layers' `return_state` and `initial_state` (DESIGN §3b): several outputs of one
layer (`lstm.1`, `lstm.2`, Keras's order h, c) and states from other nodes, so encoder–decoder
models are expressible. float64 central differences check every gradient (through the final
states and into the initial ones); Keras 3 is the oracle for values and gradients."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gradcheck import assert_close, numerical_gradient

from layerctl.errors import SpecError
from layerctl.layers import GRU, LSTM, SimpleRNN
from layerctl.plan import build_plan
from layerctl.spec import parse_spec

RNG = np.random.default_rng(0)
LAYERS = {
    "lstm": lambda **k: LSTM(type="LSTM", units=3, **k),
    "gru": lambda **k: GRU(type="GRU", units=3, **k),
    "gru_before": lambda **k: GRU(type="GRU", units=3, reset_after=False, **k),
    "simple_rnn": lambda **k: SimpleRNN(type="SimpleRNN", units=3, **k),
}


def weights_for(layer, in_dim):
    from gradcheck import init_layer_weights

    return init_layer_weights(layer, (None, 5, in_dim))


def check_states(layer, x, states, mask=None):
    """Gradient check of sum(output·P0) + Σ sum(state_k·P_k) w.r.t. weights, x and states."""
    weights = weights_for(layer, x.shape[-1])
    inputs = [x, *states] if states else x

    def run():
        return layer.forward(weights, inputs, [mask] + [None] * len(states) if states else mask,
                             False, np.random.default_rng(1))

    outputs, cache = run()
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    projections = [np.random.default_rng(2 + k).normal(size=o.shape)
                   for k, o in enumerate(outputs)]

    def f():
        y, _ = run()
        y = y if isinstance(y, tuple) else (y,)
        return float(sum(np.sum(a * p) for a, p in zip(y, projections, strict=True)))

    dy = projections if layer.return_state else projections[0]
    dx, grads = layer.backward(weights, cache, dy)
    for name, value in weights.items():
        assert_close(grads[name], numerical_gradient(f, value), f"d{name}")
    dxs = dx if states else [dx]
    for k, (array, grad) in enumerate(zip([x, *states], dxs, strict=True)):
        assert_close(grad, numerical_gradient(f, array), f"d input {k}")


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_state_gradients(kind, return_sequences, go_backwards):
    layer = LAYERS[kind](return_state=True, return_sequences=return_sequences,
                         go_backwards=go_backwards)
    x = RNG.normal(size=(2, 4, 2))
    states = [RNG.normal(size=(2, 3)) for _ in range(layer.state_count)]
    check_states(layer, x, states)


@pytest.mark.parametrize("kind", LAYERS)
def test_state_gradients_with_a_mask_and_no_return_state(kind):
    mask = np.array([[True, True, False, True], [False, True, True, False]])
    layer = LAYERS[kind]()
    states = [RNG.normal(size=(2, 3)) for _ in range(layer.state_count)]
    check_states(layer, RNG.normal(size=(2, 4, 2)), states, mask)
    check_states(LAYERS[kind](return_state=True, zero_output_for_mask=True),
                 RNG.normal(size=(2, 4, 2)), [], mask)


def test_final_states_are_the_carried_state():
    layer = LSTM(type="LSTM", units=3, return_state=True)
    weights = weights_for(layer, 2)
    x = RNG.normal(size=(2, 4, 2))
    (output, h, c), _ = layer.forward(weights, x, None, False, None)
    np.testing.assert_array_equal(output, h)  # the last step's h is the output
    # masked trailing steps carry the state: the final state is the last kept step's
    mask = np.array([[True, True, False, False], [True, True, True, True]])
    (_, h_masked, c_masked), _ = layer.forward(weights, x, mask, False, None)
    (_, h_short, c_short), _ = layer.forward(weights, x[:, :2], None, False, None)
    np.testing.assert_allclose(h_masked[0], h_short[0], rtol=1e-12)
    np.testing.assert_allclose(c_masked[0], c_short[0], rtol=1e-12)


SEQ2SEQ = """
inputs:
  - {name: source, shape: [6], dtype: int32}
  - {name: target_in, shape: [6], dtype: int32}
layers:
  - {type: Embedding, input_dim: 12, output_dim: 8, mask_zero: true, inputs: [source]}
  - {type: KIND, units: 5, return_state: true, name: encoder}
  - {type: Embedding, input_dim: 12, output_dim: 8, inputs: [target_in], name: tgt_emb}
  - {type: KIND, units: 5, return_sequences: true, name: decoder,
     inputs: {sequences: tgt_emb, initial_state: STATES}}
  - {type: Dense, units: 12, activation: softmax, name: next_token}
outputs: [next_token, encoder.1]
"""


def seq2seq(kind: str) -> str:
    states = "[encoder.1, encoder.2]" if kind == "LSTM" else "[encoder.1]"
    return SEQ2SEQ.replace("KIND", kind).replace("STATES", states)


@pytest.mark.oracle
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_encoder_decoder_matches_keras(kind):
    from test_general_graph import oracle_check, plan_of

    plan = plan_of(seq2seq(kind))
    assert plan.outputs == ("next_token", "encoder.1")
    assert plan.node("encoder").output_shapes == ((None, 5),) * (3 if kind == "LSTM" else 2)
    oracle_check(plan)


@pytest.mark.oracle
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_encoder_decoder_exports(kind, tmp_path):
    from test_export import check_keras, check_onnx
    from test_general_graph import plan_of

    plan = plan_of(seq2seq(kind))
    check_onnx(plan, tmp_path)
    check_keras(plan, tmp_path)


@pytest.mark.parametrize("text, message", [
    ("{type: LSTM, units: 5, inputs: {sequences: seq, initial_state: [h]}}",
     "LSTM has 2 state tensor(s) (h, c), but `initial_state` gives 1"),
    ("{type: GRU, units: 4, inputs: {sequences: seq, initial_state: [h]}}",
     "an initial state of GRU(4) has shape (batch, 4); received (None, 5)"),
])
def test_initial_state_errors(text, message):
    from test_general_graph import plan_of

    spec = ("inputs:\n  - {name: seq, shape: [4, 2]}\n  - {name: h, shape: [5]}\nlayers:\n  - "
            + text + "\n")
    with pytest.raises(SpecError) as caught:
        plan_of(spec)
    assert message in caught.value.problems[0].message


@pytest.mark.parametrize(("layer", "masks"), [
    ({"type": "LSTM", "units": 3, "return_sequences": True, "return_state": True},
     (True, False, False)),   # Keras: the states carry no mask
    ({"type": "GRU", "units": 3, "return_state": True}, (False, False)),
    ({"type": "Bidirectional", "merge_mode": None,
      "layer": {"type": "LSTM", "units": 3, "return_sequences": True, "return_state": True}},
     (True, True, False, False, False, False)),   # both directions' sequences, then states
    ({"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 2,
      "return_attention_scores": True, "inputs": ["embedding", "embedding"]},
     (True, False)),   # the scores carry none
])
def test_only_the_outputs_keras_masks_carry_a_mask(layer, masks):
    """Per output, as Keras's compute_mask: a layer fed by a state or the scores receives no
    mask (so no "mask is dropped" warning for a Flatten there)."""
    text = ("input_shape: [5]\nlayers:\n  - {type: Embedding, input_dim: 9, output_dim: 4, "
            f"mask_zero: true}}\n  - {json.dumps(layer)}\n")
    plan = build_plan(*parse_spec(text, "m.yaml"))
    assert plan.nodes[1].output_masks == masks
    name = plan.nodes[1].name
    for k in range(1, len(masks)):
        flatten = text + f"  - {{type: Flatten, inputs: [{name}.{k}]}}\n"
        later = build_plan(*parse_spec(flatten, "m.yaml"))
        assert later.nodes[-1].receives_mask is masks[k]
        assert any("does not support masking" in w.message for w in later.warnings) is masks[k]
