"""ReLU, LeakyReLU, PReLU, ELU, Softmax layers: hand values, gradients, Keras 3 as the oracle
(values, masks, shapes, params, one training step), Keras's argument messages, export parity."""

import numpy as np
import pytest
from gradcheck import check_layer
from test_export import check_keras, check_onnx, plan_of, sample_inputs, trained_graph
from test_layers_merge import assert_matches_keras, assert_training_step_matches_keras, problems

from layerctl.errors import DataError
from layerctl.layers import ELU, LeakyReLU, PReLU, ReLU, Softmax
from layerctl.layers.base import IncompatibleShape

RNG = np.random.default_rng(0)
X = np.array([[-10.0, -5.0, 0.0, 5.0, 10.0]])


def run(layer, x, mask=None, weights=None):
    return layer.forward(weights or {}, x, mask, False, None)[0]


def test_relu_keras_docstring_values():
    # the examples of Keras's ReLU layer and relu activation docstrings
    np.testing.assert_array_equal(run(ReLU(type="ReLU"), X), [[0, 0, 0, 5, 10]])
    layer = ReLU(type="ReLU", max_value=10, negative_slope=0.5, threshold=0)
    np.testing.assert_array_equal(run(layer, X), [[-5, -2.5, 0, 5, 10]])
    np.testing.assert_array_equal(run(ReLU(type="ReLU", max_value=5.0), X), [[0, 0, 0, 5, 5]])
    np.testing.assert_array_equal(run(ReLU(type="ReLU", threshold=5.0), X), [[0, 0, 0, 0, 10]])
    both = ReLU(type="ReLU", threshold=2.0, negative_slope=0.5, max_value=6)
    np.testing.assert_array_equal(run(both, X), [[-6, -3.5, -1, 5, 6]])


def test_leaky_prelu_elu_values():
    np.testing.assert_allclose(run(LeakyReLU(type="LeakyReLU"), X), [[-3, -1.5, 0, 5, 10]])
    legacy = LeakyReLU(type="LeakyReLU", alpha=0.5)  # Keras 3 still takes `alpha`
    assert legacy.negative_slope == 0.5
    prelu = PReLU(type="PReLU", shared_axes=[1])
    assert [w.shape for w in prelu.weight_specs((None, 3, 5))] == [(1, 5)]
    y = run(prelu, X[None], weights={"alpha": np.full((1, 5), 0.1)})
    np.testing.assert_allclose(y, [[[-1, -0.5, 0, 5, 10]]])
    np.testing.assert_allclose(run(ELU(type="ELU", alpha=2.0), np.array([[-1.0, 0.0, 1.0]])),
                               [[2 * (np.exp(-1) - 1), 0, 1]])


def test_softmax_axes_and_mask_by_hand():
    x = np.log(np.array([[[1.0, 3.0], [2.0, 2.0]]]))
    np.testing.assert_allclose(run(Softmax(type="Softmax"), x), [[[0.25, 0.75], [0.5, 0.5]]])
    np.testing.assert_allclose(run(Softmax(type="Softmax", axis=1), x),
                               [[[1 / 3, 0.6], [2 / 3, 0.4]]])
    np.testing.assert_allclose(run(Softmax(type="Softmax", axis=[1, 2]), x),
                               [[[0.125, 0.375], [0.25, 0.25]]])
    masked = run(Softmax(type="Softmax"), x[:, 0], mask=np.array([[True, False]]))
    np.testing.assert_allclose(masked, [[1.0, 0.0]])
    nothing = run(Softmax(type="Softmax"), x[:, 0], mask=np.array([[False, False]]))
    np.testing.assert_array_equal(nothing, [[0.0, 0.0]])  # zeroed, not uniform
    with pytest.raises(DataError, match="must be broadcastable"):
        run(Softmax(type="Softmax"), RNG.normal(size=(4, 5, 3)), mask=np.ones((4, 5), bool))


RELU_OPTIONS = [{}, {"max_value": 2.0}, {"negative_slope": 0.3}, {"threshold": 0.5},
                {"max_value": 6.0}, {"threshold": 0.5, "negative_slope": 0.2, "max_value": 1.5}]


@pytest.mark.parametrize("options", RELU_OPTIONS, ids=str)
def test_relu_gradients(options):
    x = RNG.normal(size=(4, 6)) * 2
    check_layer(ReLU(type="ReLU", **options), x)


@pytest.mark.parametrize("layer", [
    LeakyReLU(type="LeakyReLU"), LeakyReLU(type="LeakyReLU", negative_slope=0.05),
    ELU(type="ELU"), ELU(type="ELU", alpha=0.3), PReLU(type="PReLU"),
    PReLU(type="PReLU", shared_axes=[1, 2]), PReLU(type="PReLU", shared_axes=2),
], ids=lambda layer: f"{layer.keras_class}-{layer.model_dump(exclude_defaults=True)}")
def test_activation_gradients(layer):
    check_layer(layer, RNG.normal(size=(3, 4, 2)))


@pytest.mark.parametrize("axis", [-1, 1, [1, 2], [0]])
@pytest.mark.parametrize("masked", [False, True])
def test_softmax_gradients(axis, masked):
    x = RNG.normal(size=(3, 3, 4))
    mask = (RNG.random((3, 4)) > 0.3) if masked else None  # broadcast against the last 2 axes
    check_layer(Softmax(type="Softmax", axis=axis), x, mask=mask)


def test_prelu_needs_known_sizes():
    with pytest.raises(IncompatibleShape, match="known size"):
        PReLU(type="PReLU").output_shape((None, None, 4))
    assert PReLU(type="PReLU", shared_axes=[1]).output_shape((None, None, 4)) == (None, None, 4)


# ---- Keras's argument messages, located -------------------------------------------------------
@pytest.mark.parametrize("arguments,message", [
    ("type: ReLU, max_value: -1", "max_value of a ReLU layer cannot be a negative value. "
                                  "Received: max_value=-1"),
    ("type: ReLU, negative_slope: -0.5", "negative_slope of a ReLU layer cannot be None or a "
                                         "negative value. Received: negative_slope=-0.5"),
    ("type: ReLU, threshold: null", "threshold of a ReLU layer cannot be None or a negative "
                                    "value. Received: threshold=None"),
    ("type: LeakyReLU, negative_slope: -1", "The negative_slope value of a Leaky ReLU layer "
     "cannot be None or negative value. Expected a float. Received: negative_slope=-1"),
])
def test_argument_errors_are_keras_and_located(arguments, message):
    found = problems(f"input_shape: [3]\nlayers:\n  - {{{arguments}}}\n")
    assert len(found) == 1 and found[0].startswith("<spec>:3:"), found
    assert found[0].endswith(message), found


# ---- Keras 3 as the oracle ------------------------------------------------------------------
ACTIVATIONS = """
input_shape: [6, 4]
layers:
  - {type: Dense, units: 4}
  - {type: ReLU, threshold: 0.2, negative_slope: 0.1, max_value: 1.2}
  - {type: Dense, units: 4}
  - {type: ReLU}
  - {type: Dense, units: 4}
  - {type: ReLU, max_value: 6.0}
  - {type: Dense, units: 4}
  - {type: LeakyReLU}
  - {type: PReLU, shared_axes: [1], alpha_initializer: ones}
  - {type: ELU, alpha: 0.7}
  - {type: Softmax, axis: 1}
  - {type: Dense, units: 4}
  - {type: Softmax, axis: [1, 2]}
  - {type: LSTM, units: 3, return_sequences: true}
  - {type: PReLU}
"""

MASKED_ACTIVATIONS = """
input_shape: [6, 4]
layers:
  - {type: Masking}
  - {type: ReLU, negative_slope: 0.1}
  - {type: LeakyReLU, alpha: 0.2}
  - {type: PReLU, alpha_initializer: {type: random_normal, seed: 1}}
  - {type: ELU}
  - {type: LSTM, units: 3}
"""

MASKED_SOFTMAX = """
input_shape: [4, 4]
layers:
  - {type: Masking}
  - {type: Dense, units: 4}
  - {type: Softmax}
  - {type: Dense, units: 2}
"""


@pytest.mark.oracle
def test_activation_layers_match_keras():
    for text in (ACTIVATIONS, MASKED_ACTIVATIONS):
        plan, graph = assert_matches_keras(text)
        assert_training_step_matches_keras(plan, graph, sample_inputs(plan))
    assert all(node.emits_mask for node in plan.nodes[:-1])  # passed on to the LSTM


@pytest.mark.oracle
def test_masked_softmax_matches_keras():
    # Keras broadcasts the (batch, steps) mask against the last two axes: with batch = steps
    # = features the model runs, and layerctl computes the same numbers
    x = sample_inputs(plan_of(MASKED_SOFTMAX), n=4)
    plan, graph = assert_matches_keras(MASKED_SOFTMAX, x)
    assert_training_step_matches_keras(plan, graph, x)


@pytest.mark.oracle
def test_shapes_and_params_match_keras():
    from layerctl.export.keras import build_keras_model

    plan = plan_of(ACTIVATIONS)
    model = build_keras_model(plan, trained_graph(plan).weights)
    for node in plan.nodes:
        keras_layer = model.get_layer(node.name)
        assert tuple(keras_layer.output.shape) == node.output_shape, node.name
        assert keras_layer.count_params() == sum(np.prod(w.shape) for w in node.weights)


@pytest.mark.oracle
@pytest.mark.parametrize("text", [ACTIVATIONS, MASKED_ACTIVATIONS, MASKED_SOFTMAX],
                         ids=["all", "masked", "masked-softmax"])
def test_activation_layers_export(text, tmp_path):
    plan = plan_of(text)
    x = sample_inputs(plan, n=4)
    check_onnx(plan, tmp_path, x)
    check_keras(plan, tmp_path, x)


@pytest.mark.oracle
@pytest.mark.parametrize("opset", [18, 21])
def test_reductions_export_at_later_opsets(opset, tmp_path):
    # multi-axis Softmax and Concatenate's mask reduce with axes given as an input from opset 18
    from test_layers_merge import MASKED_CONCAT_FEATURES_LSTM

    for text in (ACTIVATIONS, MASKED_CONCAT_FEATURES_LSTM):
        plan = plan_of(text)
        check_onnx(plan, tmp_path, sample_inputs(plan, n=4), opset=opset)


@pytest.mark.oracle
@pytest.mark.parametrize("cls", [ReLU, LeakyReLU, PReLU, ELU, Softmax])
def test_output_mask_equals_keras_compute_mask(cls):
    from keras_bridge import keras

    x = RNG.normal(size=(3, 4, 4)).astype(np.float32)
    mask = RNG.random((3, 4)) > 0.5
    layer = cls(type=cls.__name__)
    twin = getattr(keras.layers, cls.__name__)()
    assert twin.supports_masking and layer.supports_masking and layer.emits_mask(True)
    expected = twin.compute_mask(keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(mask))
    np.testing.assert_array_equal(layer.output_mask(x, mask), keras.ops.convert_to_numpy(expected))
    assert layer.output_mask(x, None) is None and twin.compute_mask(x, None) is None
