"""The general graph (DESIGN §3b): several inputs and outputs, shared layers, blocks.

Keras 3 is the oracle for shapes, parameter counts, forward values and gradients (shared weights
included); float64 central differences check the graph's backward where no oracle is needed;
every error a user can make here is a located message.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from gradcheck import assert_close, numerical_gradient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layerctl.cli import cli
from layerctl.errors import SpecError
from layerctl.graph import Graph
from layerctl.plan import build_plan
from layerctl.spec import load_spec, parse_spec

ROOT = Path(__file__).resolve().parent.parent
NEW_SPECS = ["digits_two_heads.yaml", "siamese_digits.yaml", "residual_blocks.yaml"]

TWO_TOWERS = """
name: two-towers
inputs:
  - {name: left, shape: [6]}
  - {name: right, shape: [6]}
blocks:
  res:
    params: [units]
    layers:
      - {type: Dense, units: $units, activation: tanh}
      - {type: Add, inputs: [dense, input]}
layers:
  - {type: Dense, units: 6, name: shared, inputs: [left]}
  - {apply: shared, name: shared_r, inputs: [right]}
  - {apply: shared, inputs: [shared_r]}
  - {block: res, name: r1, units: 6, inputs: [shared]}
  - {block: res, units: 6, inputs: [shared_1]}
  - {type: Concatenate, inputs: [r1, res]}
  - {type: Dense, units: 3, activation: softmax, name: label}
  - {type: Dense, units: 1, name: score, inputs: [concatenate]}
outputs: [label, score]
"""


def plan_of(text: str):
    spec, marks = parse_spec(text, "model.yaml")
    return build_plan(spec, marks)


def errors_of(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        plan_of(text)
    return [p.render() for p in caught.value.problems]


def random_inputs(plan, n=5, seed=1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {i.name: rng.normal(size=(n,) + tuple(i.shape[1:])) for i in plan.inputs}


# ---- structure -------------------------------------------------------------------------------
def test_nodes_owners_and_weight_keys():
    plan = plan_of(TWO_TOWERS)
    nodes = {n.name: n for n in plan.nodes}
    assert [i.name for i in plan.inputs] == ["left", "right"]
    assert plan.outputs == ("label", "score")
    assert nodes["shared_r"].owner == "shared" and nodes["shared_r"].params == 0
    assert nodes["shared_1"].owner == "shared" and nodes["shared_1"].inputs == ("shared_r",)
    assert nodes["r1/add"].inputs == ("r1/dense", "shared")
    assert nodes["res/add"].inputs == ("res/dense", "shared_1")
    assert nodes["concatenate"].inputs == ("r1/add", "res/add")
    graph = Graph(plan)
    assert list(graph.weights) == [
        "shared/kernel", "shared/bias", "r1/dense/kernel", "r1/dense/bias", "res/dense/kernel",
        "res/dense/bias", "label/kernel", "label/bias", "score/kernel", "score/bias"]
    assert plan.total_params == 42 + 42 + 42 + 39 + 13


def test_forward_takes_and_returns_mappings():
    graph = Graph(plan_of(TWO_TOWERS), np.float64)
    graph.initialize(np.random.default_rng(0))
    x = random_inputs(graph.plan)
    y = graph.forward(x)
    assert set(y) == {"label", "score"} and y["label"].shape == (5, 3)
    np.testing.assert_allclose(y["label"].sum(axis=1), 1)
    # the shared layer applied to `right` equals the owner's math on `right`
    weights = graph.weights
    np.testing.assert_allclose(graph.values["shared_r"],
                               x["right"] @ weights["shared/kernel"] + weights["shared/bias"])
    predicted = graph.predict(x, batch_size=2)
    for name in y:
        np.testing.assert_allclose(predicted[name], y[name])


SHARED_THREE_TIMES_WITH_BLOCK = """
inputs:
  - {name: a, shape: [4]}
  - {name: b, shape: [4]}
  - {name: c, shape: [4]}
blocks:
  skip:
    inputs: [x]
    layers:
      - {type: Dense, units: 4, activation: tanh}
      - {type: Dense, units: 4, activation: sigmoid}
      - {type: Add, inputs: [dense_1, x]}
layers:
  - {type: Dense, units: 4, activation: tanh, name: tied, inputs: [a]}
  - {apply: tied, name: tied_b, inputs: [b]}
  - {apply: tied, name: tied_c, inputs: [c]}
  - {type: Concatenate, inputs: [tied, tied_b], name: ab}
  - {block: skip, name: s1, inputs: [tied_c]}
  - {type: Dense, units: 4, inputs: [ab], name: mix}
  - {type: Add, inputs: [mix, s1], name: out}
  - {type: Dense, units: 2, name: second, inputs: [s1]}
outputs: [out, second]
"""


def test_gradients_of_a_layer_used_three_times_and_a_block_with_a_skip():
    graph = Graph(plan_of(SHARED_THREE_TIMES_WITH_BLOCK), np.float64)
    graph.initialize(np.random.default_rng(0))
    x = random_inputs(graph.plan)
    y = graph.forward(x)
    projection = {k: np.random.default_rng(3).normal(size=v.shape) for k, v in y.items()}

    def f():
        out = graph.forward(x)
        return sum(float(np.sum(out[k] * projection[k])) for k in out)

    graph.forward(x)
    graph.backward(projection)
    analytic = graph.gradients.copy()
    assert_close(analytic, numerical_gradient(f, graph.trainable), "d trainable")
    # the tied kernel's gradient is the sum over its three uses: not zero, not one use's
    assert np.abs(graph.grads["tied/kernel"]).sum() > 0


# ---- errors ----------------------------------------------------------------------------------
BASE = """
inputs:
  - {name: image, shape: [4]}
  - {name: extra, shape: [2]}
blocks:
  pair:
    params: {units: 3, act: relu}
    inputs: [x]
    layers:
      - {type: Dense, units: $units, activation: $act}
      - {type: Dense, units: 3}
"""


@pytest.mark.parametrize("layers, expected", [
    ("  - {type: Dense, units: 2, inputs: [image], name: d}\n  - {apply: dd, inputs: [extra]}\n",
     "model.yaml:14:13: `apply: dd` names no layer; did you mean 'd'?"),
    ("  - {block: pairs, inputs: [image]}\n",
     "model.yaml:13:13: unknown block 'pairs'; did you mean 'pair'?"),
    ("  - {block: pair, inputs: [image], unit: 4}\n",
     "model.yaml:13:36: block 'pair' has no parameter 'unit'; did you mean 'units'?"),
    ("  - {block: pair, inputs: [imag]}\n",
     "model.yaml:13:28: block instance 'pair' takes input from unknown node 'imag'; "
     "did you mean 'image'?"),
    ("  - {block: pair, inputs: [image, extra]}\n",
     "model.yaml:13:19: block 'pair' takes 1 input(s) (x), got 2"),
    # inside an instance: the block's line (the `$act` it substituted), and which instance
    ("  - {block: pair, inputs: [image], act: relux}\n",
     "model.yaml:10:50: invalid value 'relux' for `activation` (in block instance 'pair'); "
     "did you mean 'relu'?"),
    ("  - {type: Dense, units: 2, inputs: [image]}\n  - {type: Dense, units: 2}\n"
     "outputs: [dense, nothere]\n",
     "model.yaml:15:18: output 'nothere' is not a node of the model; nodes: dense, dense_1, "
     "extra, image"),
    ("  - {type: Dense, units: 2}\n",
     "model.yaml:13:6: layer 'dense' needs `inputs:` (the model has several inputs)"),
    ("  - {type: Dense, units: 2, inputs: [image], name: d}\n"
     "  - {apply: d, inputs: [extra]}\n",
     "model.yaml:14:6: layer 'd_1' (Dense) cannot take input of shape (None, 2): layer 'd' "
     "was built for input of shape (None, 4) and cannot be applied with other weight shapes"),
    ("  - {type: Dense, units: 2, inputs: {sequences: image}}\n",
     "model.yaml:13:38: Dense has no call argument 'sequences'; give `inputs` as a list"),
])
def test_located_errors(layers, expected):
    assert errors_of(BASE + "layers:\n" + layers) == [expected]


def test_missing_parameter_and_undeclared_substitution():
    text = BASE.replace("params: {units: 3, act: relu}", "params: [units, act]") + \
        "layers:\n  - {block: pair, inputs: [image], units: 2}\n"
    assert errors_of(text) == ["model.yaml:13:5: block instance 'pair' needs parameter `act`"]
    text = BASE.replace("units: 3}\n", "units: $width}\n") + \
        "layers:\n  - {block: pair, inputs: [image]}\n"
    assert errors_of(text) == [
        "model.yaml:11:30: block 'pair' uses `$width`, which is not one of its `params`"]


def test_cycle_through_blocks():
    text = """
input_shape: [3]
blocks:
  a:
    layers:
      - {block: b}
  b:
    layers:
      - {type: Dense, units: 3}
      - {block: a}
layers:
  - {block: a}
"""
    assert errors_of(text) == [
        "model.yaml:10:17: blocks instantiate each other in a cycle: a → b → a "
        "(in block instance 'a/b')"]


def test_loss_naming_a_non_output(tmp_path):
    from layerctl.training.outputs import per_output

    spec, _ = parse_spec(BASE + "layers:\n  - {type: Dense, units: 2, inputs: [image], name: d}\n"
                         "  - {type: Dense, units: 1, inputs: [extra], name: e}\n"
                         "outputs: [d, e]\ncompile:\n  loss: {d: mse, f: mse}\n", "m.yaml")
    with pytest.raises(SpecError) as caught:
        per_output(spec.compile, ("d", "e"))
    assert [p.render() for p in caught.value.problems] == [
        "`compile.loss` names 'f', which is not a model output; outputs: d, e"]


# ---- Keras 3 as the oracle -------------------------------------------------------------------
def oracle_check(plan, seed=0):
    """Shapes, params, forward values and gradients (through every output) against Keras."""
    from keras_bridge import copy_weights, keras_graph_model, keras_outputs_and_gradients

    graph = Graph(plan)
    graph.initialize(np.random.default_rng(seed))
    for value in graph.weights.values():  # random biases too: every path is exercised
        value += np.random.default_rng(seed + 1).normal(0, 0.1, value.shape).astype(value.dtype)
    model = keras_graph_model(plan)
    assert model.count_params() == plan.total_params
    for ref, keras_output in zip(plan.outputs, model.outputs, strict=True):  # noqa: B905
        assert tuple(keras_output.shape) == plan.shape_of(ref)
    copy_weights(model, graph.weights)
    rng = np.random.default_rng(seed + 2)
    x = {i.name: (rng.integers(0, 5, (6,) + i.shape[1:]) if i.integer
                  else rng.normal(size=(6,) + i.shape[1:]).astype(np.float32))
         for i in plan.inputs}
    y = graph.forward(x)
    y = y if isinstance(y, dict) else {plan.output: y}
    projections = [rng.normal(size=y[o].shape).astype(np.float32) for o in plan.outputs]
    keras_y, keras_grads = keras_outputs_and_gradients(
        model, [x[i.name] for i in plan.inputs], projections)
    for ref, expected in zip(plan.outputs, keras_y, strict=True):
        np.testing.assert_allclose(y[ref], expected, rtol=1e-5, atol=1e-5, err_msg=ref)
    graph.forward(x)
    graph.backward(dict(zip(plan.outputs, projections, strict=True)))
    assert set(keras_grads) == set(graph.grads)
    for key, grad in graph.grads.items():
        np.testing.assert_allclose(grad, keras_grads[key], rtol=1e-4, atol=1e-5, err_msg=key)
    return graph


@pytest.mark.oracle
@pytest.mark.parametrize("name", NEW_SPECS)
def test_new_specs_match_keras(name):
    oracle_check(build_plan(*load_spec(ROOT / "specs" / name)))


@pytest.mark.oracle
def test_two_towers_match_keras():
    oracle_check(plan_of(TWO_TOWERS))


@st.composite
def random_dags(draw):
    """Random wiring of Dense/Add/Concatenate with several inputs, outputs and shared layers."""
    width = 3
    count = draw(st.integers(1, 3))
    lines = ["inputs:"] + [f"  - {{name: in{i}, shape: [{width}]}}" for i in range(count)]
    lines.append("layers:")
    available = [f"in{i}" for i in range(count)]
    dense, consumed = [], set()
    for k in range(draw(st.integers(2, 7))):
        kind = draw(st.sampled_from(["Dense", "Dense", "Add", "Concatenate", "apply"]))
        name = f"n{k}"
        if kind == "apply" and dense:
            owner = draw(st.sampled_from(dense))
            source = draw(st.sampled_from(available))
            consumed.add(source)
            lines.append(f"  - {{apply: {owner}, name: {name}, inputs: [{source}]}}")
        elif kind in ("Add", "Concatenate") and len(available) >= 2:
            picked = draw(st.lists(st.sampled_from(available), min_size=2, max_size=3))
            consumed.update(picked)
            if kind == "Concatenate":
                joined = ", ".join(picked)
                lines.append(f"  - {{type: Concatenate, name: {name}c, inputs: [{joined}]}}")
                lines.append(f"  - {{type: Dense, units: {width}, name: {name}, "
                             f"inputs: [{name}c]}}")
            else:
                lines.append(f"  - {{type: Add, name: {name}, inputs: [{', '.join(picked)}]}}")
        else:
            source = draw(st.sampled_from(available))
            consumed.add(source)
            activation = draw(st.sampled_from(["tanh", "relu", "sigmoid", "linear"]))
            lines.append(f"  - {{type: Dense, units: {width}, activation: {activation}, "
                         f"name: {name}, inputs: [{source}]}}")
            dense.append(name)
        available.append(name)
    layer_names = [a for a in available if not a.startswith("in")]
    # every node that feeds nothing is an output (Keras drops what reaches no output), plus some
    sinks = [n for n in layer_names if n not in consumed]
    extra = draw(st.lists(st.sampled_from(layer_names), max_size=2, unique=True))
    outputs = list(dict.fromkeys(sinks + extra))
    lines.append(f"outputs: [{', '.join(outputs)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.oracle
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=random_dags())
def test_random_dags_match_keras(text):
    oracle_check(plan_of(text))


# ---- export round trips ----------------------------------------------------------------------
@pytest.mark.oracle
@pytest.mark.parametrize("name", NEW_SPECS)
def test_new_specs_export(name, tmp_path):
    import onnxruntime

    from layerctl.export.keras import export_keras, load_keras
    from layerctl.export.onnx import export_onnx

    plan = build_plan(*load_spec(ROOT / "specs" / name))
    graph = Graph(plan)
    graph.initialize(np.random.default_rng(0))
    x = {i.name: np.random.default_rng(1).normal(size=(5,) + i.shape[1:]).astype(np.float32)
         for i in plan.inputs}
    expected = graph.predict(x if len(plan.inputs) > 1 else x[plan.inputs[0].name])
    expected = expected if isinstance(expected, dict) else {plan.output: expected}
    export_onnx(plan, graph.weights, tmp_path / "m.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    got = session.run(list(plan.outputs), x)
    for ref, value in zip(plan.outputs, got, strict=True):
        np.testing.assert_allclose(value, expected[ref], rtol=1e-5, atol=1e-5)
    export_keras(plan, graph.weights, tmp_path / "m.keras")
    keras = load_keras()
    model = keras.models.load_model(tmp_path / "m.keras")
    got = model.predict([x[i.name] for i in plan.inputs] if len(plan.inputs) > 1
                        else x[plan.inputs[0].name], verbose=0)
    got = got if isinstance(got, list) else [got]
    for ref, value in zip(plan.outputs, got, strict=True):
        np.testing.assert_allclose(value, expected[ref], rtol=1e-5, atol=1e-5)


# ---- commands --------------------------------------------------------------------------------
def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_shapes_json_names_inputs_and_outputs():
    result = invoke("shapes", ROOT / "specs/digits_two_heads.yaml", "--json")
    data = json.loads(result.stdout)
    assert data["inputs"] == [{"name": "image", "shape": [None, 8, 8, 1]},
                              {"name": "row_ink", "shape": [None, 8]}]
    assert data["outputs"] == [{"name": "digit", "shape": [None, 10]},
                               {"name": "even", "shape": [None, 1]}]
    assert "input_shape" not in data


def test_shapes_shows_an_instance_as_one_row_and_expands():
    folded = json.loads(invoke("shapes", ROOT / "specs/residual_blocks.yaml", "--json").stdout)
    rows = {row["name"]: row for row in folded["layers"]}
    assert rows["res1"]["type"] == "residual" and rows["res1"]["params"] == 2304 + 64 + 2320
    assert rows["res3"]["params"] == 1024 + 64 + 1040
    expanded = json.loads(invoke("shapes", ROOT / "specs/residual_blocks.yaml", "--json",
                                 "--expand").stdout)
    names = [row["name"] for row in expanded["layers"]]
    assert "res2/conv2d_1" in names and "res2" not in names
    assert sum(r["params"] for r in expanded["layers"]) == folded["total_params"]


@pytest.mark.slow
def test_two_heads_trains_and_predicts(tmp_path):
    result = invoke("train", ROOT / "specs/digits_two_heads.yaml", "--out", tmp_path / "run",
                    "--epochs", "4", "-q")
    assert result.exit_code == 0, result.output
    header, *rows = (tmp_path / "run/history.csv").read_text().splitlines()
    assert header.split(",") == [
        "epoch", "loss", "digit_loss", "digit_accuracy", "even_loss", "even_accuracy",
        "val_loss", "val_digit_loss", "val_digit_accuracy", "val_even_loss",
        "val_even_accuracy", "learning_rate"]
    last = dict(zip(header.split(","), map(float, rows[-1].split(",")), strict=True))
    assert last["val_digit_accuracy"] > 0.5 and last["val_even_accuracy"] > 0.7  # chance .1/.5
    # the total is the weighted sum, as Keras reports it
    assert last["loss"] == pytest.approx(last["digit_loss"] + 0.5 * last["even_loss"], rel=1e-6)
    from layerctl.datasets import load

    x, _ = load("digits_two_heads")
    np.savez(tmp_path / "in.npz", image=x["image"][:7], row_ink=x["row_ink"][:7])
    out = tmp_path / "out.npz"
    result = invoke("predict", ROOT / "specs/digits_two_heads.yaml", "--weights",
                    tmp_path / "run/weights.npz", tmp_path / "in.npz", "-o", out)
    assert result.exit_code == 0, result.output
    with np.load(out) as predicted:
        assert predicted["digit"].shape == (7, 10) and predicted["even"].shape == (7, 1)


def test_predict_names_the_keys_it_expected(tmp_path):
    plan = build_plan(*load_spec(ROOT / "specs/digits_two_heads.yaml"))
    graph = Graph(plan)
    graph.initialize(np.random.default_rng(0))
    from layerctl.weights import save_npz

    save_npz(tmp_path / "w.npz", graph.get_weights())
    np.savez(tmp_path / "in.npz", image=np.zeros((2, 8, 8, 1), np.float32), ink=np.zeros((2, 8)))
    result = CliRunner().invoke(cli, ["predict", str(ROOT / "specs/digits_two_heads.yaml"),
                                       "--weights", str(tmp_path / "w.npz"),
                                       str(tmp_path / "in.npz"), "-o", str(tmp_path / "o.npz")])
    assert result.exit_code == 1
    assert "lacks the array(s) 'row_ink' (the inputs); expected keys: 'image', 'row_ink'; " \
        "keys present: 'image', 'ink'" in result.output
    result = CliRunner().invoke(cli, ["predict", str(ROOT / "specs/digits_two_heads.yaml"),
                                       "--weights", str(tmp_path / "w.npz"),
                                       str(tmp_path / "in.npz"), "-o", str(tmp_path / "o.csv")])
    assert result.exit_code == 1 and "write them to an .npz" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("name, epochs, floor", [("siamese_digits.yaml", 6, 0.7),
                                                 ("residual_blocks.yaml", 2, 0.5)])
def test_new_specs_train_above_chance(name, epochs, floor, tmp_path):
    result = invoke("train", ROOT / "specs" / name, "--out", tmp_path / "run", "--epochs",
                    epochs, "-q")
    assert result.exit_code == 0, result.output
    header, *rows = (tmp_path / "run/history.csv").read_text().splitlines()
    last = dict(zip(header.split(","), map(float, rows[-1].split(",")), strict=True))
    assert last["val_accuracy"] > floor  # chance: 0.5 (pairs), 0.1 (digits)
