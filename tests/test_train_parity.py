"""Training parity with Keras 3: same initial weights, same data order, same weights after."""

import numpy as np
import pytest

from layerctl.data import Dataset
from layerctl.graph import Graph
from layerctl.plan import build_plan
from layerctl.spec import parse_spec
from layerctl.training.fit import fit
from layerctl.training.progress import QuietReporter
from layerctl.training.runs import RunFolder

pytestmark = pytest.mark.oracle

CASES = {
    "sgd-momentum-softmax": ("sparse_categorical_crossentropy", "softmax", 3,
                             {"type": "sgd", "learning_rate": 0.1, "momentum": 0.9}),
    "adam-softmax": ("sparse_categorical_crossentropy", "softmax", 3,
                     {"type": "adam", "learning_rate": 0.01}),
    "sgd-nesterov-mse": ("mse", None, 2, {"type": "sgd", "learning_rate": 0.05,
                                          "momentum": 0.5, "nesterov": True}),
    "rmsprop-sigmoid": ("binary_crossentropy", "sigmoid", 1,
                        {"type": "rmsprop", "learning_rate": 0.01}),
    "adamw-clipnorm": ("sparse_categorical_crossentropy", "softmax", 3,
                       {"type": "adamw", "learning_rate": 0.01, "clipnorm": 0.5}),
}


@pytest.mark.parametrize("case", CASES)
def test_three_epochs_match_keras(case, tmp_path):
    from keras_bridge import copy_weights, keras, keras_model

    loss, activation, units, optimizer = CASES[case]
    import json

    text = json.dumps({
        "input_shape": [5],
        "layers": [{"type": "Dense", "units": 8, "activation": "tanh"},
                   {"type": "Dense", "units": units, "activation": activation}],
        "compile": {"loss": loss, "optimizer": optimizer},
        "train": {"batch_size": 16, "epochs": 3, "shuffle": False, "seed": 0}})
    spec, marks = parse_spec(text)
    plan = build_plan(spec, marks)
    graph = Graph(plan)
    rng = np.random.default_rng(0)
    graph.initialize(rng)
    data_rng = np.random.default_rng(1)
    x = data_rng.normal(size=(72, 5)).astype(np.float32)
    if loss == "mse":
        y = data_rng.normal(size=(72, units)).astype(np.float32)
    elif units == 1:
        y = (x[:, :1] > 0).astype(np.float32)
    else:
        y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)

    model = keras_model(plan)
    copy_weights(model, graph.weights)
    config = {k: v for k, v in optimizer.items() if k != "type"}
    keras_optimizer = keras.optimizers.get({"class_name": optimizer["type"], "config": config})
    model.compile(optimizer=keras_optimizer, loss=loss)
    model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)

    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    fit(graph, spec.compile, spec.train, Dataset(x, y, "parity"), None, run, QuietReporter(),
        rng=rng)
    for layer in model.layers:
        for weight in layer.weights:
            np.testing.assert_allclose(graph.weights[f"{layer.name}/{weight.name}"],
                                       keras.ops.convert_to_numpy(weight.value),
                                       rtol=1e-4, atol=1e-4, err_msg=f"{layer.name}/{weight.name}")
