"""Merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot): values,
masks, shapes and gradients, hand-derived and against Keras 3; ONNX and Keras export."""

import numpy as np
import pytest
from gradcheck import check_layer
from test_export import check_keras, check_onnx, plan_of, sample_inputs, trained_graph

RNG = np.random.default_rng(0)


def keras_outputs(plan, graph, x):
    """The Keras twin of `plan` with `graph`'s weights, run on x (inference)."""
    from keras_bridge import copy_weights, keras_model, run_keras

    model = keras_model(plan)
    copy_weights(model, graph.weights)
    return run_keras(model, x, training=False)


def assert_matches_keras(text, x=None):
    plan = plan_of(text)
    graph = trained_graph(plan)
    x = sample_inputs(plan) if x is None else x
    np.testing.assert_allclose(graph.predict(x), keras_outputs(plan, graph, x),
                               rtol=1e-5, atol=1e-5)
    return plan, graph


# ---- masks through merges into an LSTM: Keras's rules ----------------------------------------
MASKED_ADD_LSTM = """
input_shape: [6, 3]
layers:
  - {type: Masking, name: masked}
  - {type: Add, inputs: [masked, input]}
  - {type: LSTM, units: 4}
"""

MASKED_CONCAT_TIME_LSTM = """
input_shape: [6, 3]
layers:
  - {type: Masking, name: masked}
  - {type: Concatenate, axis: 1, inputs: [masked, input], name: joined}
  - {type: LSTM, units: 4}
"""

MASKED_CONCAT_FEATURES_LSTM = """
input_shape: [6, 3]
layers:
  - {type: Masking, name: masked}
  - {type: Dense, units: 2, name: projected}
  - {type: Masking, mask_value: 1.0, inputs: [input], name: ones}
  - {type: Concatenate, inputs: [masked, projected, ones], name: joined}
  - {type: LSTM, units: 4}
"""


@pytest.mark.oracle
@pytest.mark.parametrize("text", [MASKED_ADD_LSTM, MASKED_CONCAT_TIME_LSTM,
                                  MASKED_CONCAT_FEATURES_LSTM],
                         ids=["add-one-mask", "concatenate-time", "concatenate-features"])
def test_merged_masks_reach_the_lstm_as_in_keras(text):
    assert_matches_keras(text)
