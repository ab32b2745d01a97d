"""Issue 14, item 8: Keras's fit and metric vocabulary (class_weight, sample_weight, verbose,
precision, recall, f1_score, top-k accuracies), each against Keras 3 on the same numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from layerctl.cli import cli
from layerctl.data import Dataset
from layerctl.graph import Graph
from layerctl.plan import build_plan
from layerctl.spec import parse_spec
from layerctl.training.fit import fit
from layerctl.training.loop import class_weight_to_sample_weight
from layerctl.training.losses import loss_and_gradient, parse_loss
from layerctl.training.metrics import F1, PrecisionRecall, TopK, make_metric, metric_names
from layerctl.training.progress import QuietReporter
from layerctl.training.runs import RunFolder

RNG = np.random.default_rng(7)


def probabilities(n, classes):
    p = RNG.random((n, classes)).astype(np.float32) + 0.01
    return p / p.sum(axis=1, keepdims=True)


# ---- metrics -------------------------------------------------------------------------------------
def _ours(entry, y, p, y_true_shape):
    metric = make_metric(entry, y_true_shape, (None,) + p.shape[1:],
                         metric_names([entry])[1])
    for rows in (slice(0, 13), slice(13, None)):      # streamed over two batches
        metric.update(y[rows], p[rows])
    return metric.result()


def _keras(metric, y, p):
    for rows in (slice(0, 13), slice(13, None)):
        metric.update_state(y[rows], p[rows])
    return float(np.asarray(metric.result()))


def test_precision_recall_by_hand():
    y = np.array([[1.0], [0.0], [1.0], [1.0]])
    p = np.array([[0.9], [0.8], [0.2], [0.6]])
    # predicted positive: rows 0, 1, 3; of those positive: 0 and 3 -> precision 2/3, recall 2/3
    assert _ours("precision", y, p, (None, 1)) == pytest.approx(2 / 3)
    metric = make_metric(PrecisionRecall(type="recall", thresholds=0.7), (None, 1), (None, 1))
    metric.update(y, p)
    assert metric.result() == pytest.approx(1 / 3)       # only row 0 passes 0.7


def test_top_k_by_hand():
    p = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]])
    metric = make_metric(TopK(type="sparse_top_k_categorical_accuracy", k=2), (None,), (None, 3))
    metric.update(np.array([1, 0]), p)
    assert metric.result() == 0.5   # 1 is in row 0's top 2; 0 is row 1's lowest


@pytest.mark.oracle
@pytest.mark.parametrize("case", ["precision", "recall", "precision_0.3", "recall_0.7",
                                  "multilabel_precision"])
def test_precision_recall_match_keras(case):
    from keras_bridge import keras

    shape = (40, 3) if case.startswith("multilabel") else (40, 1)
    p = RNG.random(shape).astype(np.float32)
    y = (RNG.random(shape) < 0.5).astype(np.float32)
    kind = "recall" if "recall" in case else "precision"
    threshold = float(case.split("_")[1]) if "_0." in case else None
    entry = kind if threshold is None else PrecisionRecall(type=kind, thresholds=threshold)
    oracle = getattr(keras.metrics, kind.capitalize())(thresholds=threshold)
    assert _ours(entry, y, p, (None,) + shape[1:]) == pytest.approx(_keras(oracle, y, p),
                                                                    rel=1e-6)


@pytest.mark.oracle
@pytest.mark.parametrize("average", ["micro", "macro", "weighted"])
@pytest.mark.parametrize("threshold", [None, 0.3])
def test_f1_score_matches_keras(average, threshold):
    from keras_bridge import keras

    p = probabilities(40, 4)
    y = np.eye(4, dtype=np.float32)[RNG.integers(0, 4, 40)]
    entry = F1(type="f1_score", average=average, threshold=threshold)
    oracle = keras.metrics.F1Score(average=average, threshold=threshold)
    assert _ours(entry, y, p, (None, 4)) == pytest.approx(_keras(oracle, y, p), rel=1e-6)


def test_f1_score_without_average_says_why():
    from layerctl.errors import SpecError

    with pytest.raises(SpecError, match="one value per class"):
        make_metric("f1_score", (None, 4), (None, 4))


@pytest.mark.oracle
@pytest.mark.parametrize("k", [1, 2, 5])
def test_top_k_accuracies_match_keras(k):
    from keras_bridge import keras

    p = probabilities(40, 6)
    labels = RNG.integers(0, 6, 40)
    one_hot = np.eye(6, dtype=np.float32)[labels]
    dense = "top_k_categorical_accuracy" if k == 5 else TopK(type="top_k_categorical_accuracy",
                                                              k=k)
    sparse = TopK(type="sparse_top_k_categorical_accuracy", k=k)
    assert _ours(dense, one_hot, p, (None, 6)) == pytest.approx(
        _keras(keras.metrics.TopKCategoricalAccuracy(k=k), one_hot, p), rel=1e-6)
    assert _ours(sparse, labels, p, (None,)) == pytest.approx(
        _keras(keras.metrics.SparseTopKCategoricalAccuracy(k=k), labels, p), rel=1e-6)


def test_metric_names_follow_keras():
    entries = ["precision", TopK(type="SparseTopKCategoricalAccuracy", k=3),
               F1(type="f1_score", average="macro", name="f1")]
    assert metric_names(entries) == ["loss", "precision", "sparse_top_k_categorical_accuracy",
                                     "f1"]


# ---- weighted losses ----------------------------------------------------------------------------
LOSSES = {
    "sparse_categorical_crossentropy": lambda: (RNG.integers(0, 4, 12), probabilities(12, 4)),
    "categorical_crossentropy": lambda: (np.eye(4, dtype=np.float32)[RNG.integers(0, 4, 12)],
                                         probabilities(12, 4)),
    "binary_crossentropy": lambda: ((RNG.random((12, 1)) < 0.5).astype(np.float32),
                                    RNG.random((12, 1)).astype(np.float32)),
    "mse": lambda: (RNG.normal(size=(12, 3)).astype(np.float32),
                    RNG.normal(size=(12, 3)).astype(np.float32)),
}


@pytest.mark.oracle
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight"])
@pytest.mark.parametrize("name", LOSSES)
def test_weighted_loss_and_gradient_match_keras(name, reduction):
    import torch
    from keras_bridge import keras

    y, p = LOSSES[name]()
    weights = RNG.random(12).astype(np.float32) * 3
    spec = parse_loss({"type": name, "reduction": reduction})
    loss, gradient = loss_and_gradient(spec, y, p, sample_weight=weights)
    classes = {"sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
               "categorical_crossentropy": "CategoricalCrossentropy",
               "binary_crossentropy": "BinaryCrossentropy", "mse": "MeanSquaredError"}
    oracle = getattr(keras.losses, classes[name])(reduction=reduction)
    tensor = torch.tensor(p, requires_grad=True)
    value = oracle(torch.tensor(y), tensor, sample_weight=torch.tensor(weights))
    value.backward()
    assert loss == pytest.approx(float(value.detach()), rel=1e-5)
    np.testing.assert_allclose(gradient, tensor.grad.numpy(), rtol=1e-4, atol=1e-7)
    if reduction == "sum_over_batch_size":   # divided by the batch size, not the weights' sum
        per_sample = parse_loss({"type": name, "reduction": "sum"})
        each = [loss_and_gradient(per_sample, y[i:i + 1], p[i:i + 1])[0] for i in range(12)]
        assert loss == pytest.approx(np.dot(weights, each) / 12, rel=1e-5)


def test_class_weight_to_sample_weight_is_keras_rule():
    assert class_weight_to_sample_weight(np.array([0, 2, 1, 2]), {2: 3.0, 0: 0.5}).tolist() == \
        [0.5, 3.0, 1.0, 3.0]
    one_hot = np.eye(3)[[1, 0]]
    assert class_weight_to_sample_weight(one_hot, {1: 2.0}).tolist() == [2.0, 1.0]


def _spec(train_extra):
    return json.dumps({
        "input_shape": [5],
        "layers": [{"type": "Dense", "units": 6, "activation": "tanh"},
                   {"type": "Dense", "units": 3, "activation": "softmax"}],
        "compile": {"loss": "sparse_categorical_crossentropy",
                    "optimizer": {"type": "sgd", "learning_rate": 0.5}},
        "train": {"batch_size": 32, "epochs": 1, "shuffle": False, "seed": 0, **train_extra}})


@pytest.mark.oracle
@pytest.mark.parametrize("weighting", ["class_weight", "sample_weight"])
def test_one_weighted_training_step_matches_keras(weighting, tmp_path):
    """One batch, one SGD step: the weights after it equal Keras's fit with the same weights."""
    from keras_bridge import copy_weights, keras, keras_model

    x = RNG.normal(size=(32, 5)).astype(np.float32)
    y = RNG.integers(0, 3, 32)
    class_weight = {0: 0.2, 1: 3.0, 2: 1.5}
    sample_weight = RNG.random(32).astype(np.float32) * 2
    extra = {"class_weight": class_weight} if weighting == "class_weight" else {
        "sample_weight": "w"}
    spec, marks = parse_spec(_spec(extra))
    graph = Graph(build_plan(spec, marks))
    rng = np.random.default_rng(0)
    graph.initialize(rng)
    model = keras_model(graph.plan)
    copy_weights(model, graph.weights)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    keras_loss = model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0,
                           **({"class_weight": class_weight} if weighting == "class_weight"
                              else {"sample_weight": sample_weight})).history["loss"][0]
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    data = Dataset(x, y, "d", sample_weight if weighting == "sample_weight" else None)
    result = fit(graph, spec.compile, spec.train, data, None, run, QuietReporter(), rng=rng)
    assert result.history[0]["loss"] == pytest.approx(keras_loss, rel=1e-5)
    for layer in model.layers:
        for weight in layer.weights:
            np.testing.assert_allclose(graph.weights[f"{layer.name}/{weight.name}"],
                                       keras.ops.convert_to_numpy(weight.value),
                                       rtol=1e-5, atol=1e-6)


# ---- the spec and the command line --------------------------------------------------------------
def test_class_weight_and_sample_weight_together_is_keras_error():
    from layerctl.errors import SpecError

    with pytest.raises(SpecError, match="You cannot `class_weight` and `sample_weight` at the "
                                        "same time."):
        parse_spec(_spec({"class_weight": {0: 1.0}, "sample_weight": "w"}), "s.yaml")


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_sample_weight_from_npz_and_csv_column(tmp_path):
    x = RNG.normal(size=(40, 5))
    y = RNG.integers(0, 3, 40)
    w = RNG.random(40) * 2
    spec = tmp_path / "s.yaml"
    spec.write_text(_spec({"sample_weight": "w", "validation": {"split": 0.25}}))
    np.savez(tmp_path / "d.npz", x=x, y=y, w=w)
    header = ",".join(["a", "w", "b", "c", "label", "d", "e"])
    rows = [",".join(map(str, [r[0], wi, r[1], r[2], yi, r[3], r[4]]))
            for r, wi, yi in zip(x, w, y, strict=True)]
    (tmp_path / "d.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    histories = []
    for data in ("d.npz", "d.csv"):
        result = _run("train", spec, "--data", tmp_path / data, "--out", tmp_path / data[2:],
                      "-q")
        assert result.exit_code == 0, result.output
        histories.append((tmp_path / data[2:] / "history.csv").read_text())
    assert histories[0] == histories[1]      # the CSV column is the weights, not an input
    result = _run("train", spec, "--data", tmp_path / "d.npz", "--out", tmp_path / "plain", "-q")
    spec.write_text(_spec({"validation": {"split": 0.25}}))
    result = _run("train", spec, "--data", tmp_path / "d.npz", "--out", tmp_path / "plain", "-q",
                  "--overwrite")
    assert (tmp_path / "plain/history.csv").read_text() != histories[0]


def test_verbose_levels(tmp_path):
    x = RNG.normal(size=(20, 5))
    np.savez(tmp_path / "d.npz", x=x, y=RNG.integers(0, 3, 20))
    spec = tmp_path / "s.yaml"
    spec.write_text(_spec({"epochs": 2}))
    outputs = {}
    for level in (0, 2):
        result = _run("train", spec, "--data", tmp_path / "d.npz", "--out", tmp_path / "r",
                      "--overwrite", "--verbose", level)
        assert result.exit_code == 0, result.output
        outputs[level] = result.output
    assert outputs[0] == ""
    assert [line.split(" - ")[0] for line in outputs[2].splitlines()[:2]] == ["Epoch 1/2",
                                                                            "Epoch 2/2"]
    spec.write_text(_spec({"epochs": 2, "verbose": 0}))
    assert _run("train", spec, "--data", tmp_path / "d.npz", "--out", tmp_path / "r",
                "--overwrite").output == ""


def test_metrics_by_name_and_mapping_in_a_spec(tmp_path):
    x = RNG.normal(size=(30, 5))
    np.savez(tmp_path / "d.npz", x=x, y=RNG.integers(0, 3, 30))
    text = json.loads(_spec({"epochs": 1}))
    text["compile"]["metrics"] = [
        "sparse_top_k_categorical_accuracy",
        {"type": "sparse_top_k_categorical_accuracy", "k": 1, "name": "top1"},
        "accuracy"]
    spec = tmp_path / "s.yaml"
    spec.write_text(json.dumps(text))
    result = _run("train", spec, "--data", tmp_path / "d.npz", "--out", tmp_path / "r", "-q")
    assert result.exit_code == 0, result.output
    header, row = (tmp_path / "r/history.csv").read_text().splitlines()[:2]
    values = dict(zip(header.split(","), map(float, row.split(",")), strict=True))
    assert values["sparse_top_k_categorical_accuracy"] == 1.0     # k=5 > 3 classes
    assert values["top1"] == values["accuracy"]
