"""Training runs: reproducible, resumable bit for bit, interruptible, and loud on bad input."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from harden import default_sigint

from layerctl.cli import cli
from layerctl.data import Dataset
from layerctl.graph import Graph
from layerctl.plan import build_plan
from layerctl.spec import parse_spec
from layerctl.training.fit import fit
from layerctl.training.progress import QuietReporter
from layerctl.training.runs import RunFolder
from layerctl.weights import read_npz

SPEC = """
name: tiny
input_shape: [6]
layers:
  - {type: Dense, units: 8, activation: relu}
  - {type: Dropout, rate: 0.3}
  - {type: BatchNormalization}
  - {type: Dense, units: 3, activation: softmax}
compile:
  loss: sparse_categorical_crossentropy
  optimizer: {type: adam, learning_rate: 0.01}
  metrics: [accuracy]
train:
  batch_size: 16
  epochs: 4
  seed: 3
"""


def toy_data(n=100, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1)
    return Dataset(x, y, "toy")


def run_fit(tmp_path, name, stop_after=None, resume=False, text=SPEC):
    spec, marks = parse_spec(text)
    graph = Graph(build_plan(spec, marks))
    rng = np.random.default_rng(spec.train.seed)
    graph.initialize(rng)
    steps = {"n": 0}

    def should_stop():
        steps["n"] += 1
        return stop_after is not None and steps["n"] > stop_after

    data = toy_data()
    run = RunFolder(tmp_path / name)
    run.path.mkdir(exist_ok=True)
    result = fit(graph, spec.compile, spec.train, data, toy_data(30, 1), run, QuietReporter(),
                 rng=rng, resume=resume, should_stop=should_stop)
    return graph, result, run


def test_same_seed_same_weights(tmp_path):
    a, _, _ = run_fit(tmp_path, "a")
    b, _, _ = run_fit(tmp_path, "b")
    assert all(np.array_equal(a.weights[k], b.weights[k]) for k in a.weights)


@pytest.mark.parametrize("stop_after", [3, 7, 14, 21])  # mid-epoch and on an epoch boundary
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, stop_after):
    straight, straight_result, _ = run_fit(tmp_path, "straight")
    _, first, run = run_fit(tmp_path, "resumed", stop_after=stop_after)
    assert first.interrupted and run.checkpoint.exists()
    resumed, result, run = run_fit(tmp_path, "resumed", resume=True)
    assert not result.interrupted
    for key in straight.weights:
        assert np.array_equal(straight.weights[key], resumed.weights[key]), key
    saved = read_npz(run.weights)
    assert all(np.array_equal(saved[k], straight.weights[k]) for k in saved)
    assert [r["loss"] for r in result.history] == [r["loss"] for r in straight_result.history]


def test_history_and_run_folder(tmp_path):
    _, result, run = run_fit(tmp_path, "r")
    lines = run.history.read_text().splitlines()
    assert lines[0] == "epoch,loss,accuracy,val_loss,val_accuracy,learning_rate"
    assert len(lines) == 5 and len(result.history) == 4
    assert set(read_npz(run.weights)) == {"dense/kernel", "dense/bias", "batch_normalization/gamma",
                                          "batch_normalization/beta",
                                          "batch_normalization/moving_mean",
                                          "batch_normalization/moving_variance", "dense_1/kernel",
                                          "dense_1/bias"}


def test_early_stopping_restores_best(tmp_path):
    text = SPEC.replace("epochs: 4", "epochs: 30") + (
        "  callbacks:\n    - {type: early_stopping, monitor: val_loss, patience: 1, "
        "restore_best_weights: true}\n")
    graph, result, run = run_fit(tmp_path, "early", text=text)
    assert result.stopped_early_at is not None and result.stopped_early_at < 29
    best = min(range(len(result.history)), key=lambda i: result.history[i]["val_loss"])
    assert result.best_epoch == best
    assert len(result.history) == best + 2  # patience 1: stops one epoch after the best
    from layerctl.training.loop import Trainer

    spec, _ = parse_spec(text)
    restored = Trainer(graph, spec.compile).evaluate(toy_data(30, 1).x, toy_data(30, 1).y, 16)
    assert restored.logs()["loss"] == pytest.approx(result.history[best]["val_loss"], rel=1e-6)


def test_reduce_lr_on_plateau(tmp_path):
    text = SPEC.replace("epochs: 4", "epochs: 6") + (
        "  callbacks:\n    - {type: reduce_lr_on_plateau, monitor: loss, patience: 0, "
        "min_delta: 100.0, factor: 0.5}\n")
    _, result, _ = run_fit(tmp_path, "plateau", text=text)
    rates = [row["learning_rate"] for row in result.history]
    # logged before the callback acts, as Keras logs the rate the epoch used
    assert rates == pytest.approx([0.01, 0.01, 0.005, 0.0025, 0.00125, 0.000625])


def test_constraints_applied_after_each_step(tmp_path):
    text = SPEC.replace("{type: Dense, units: 8, activation: relu}",
                        "{type: Dense, units: 8, activation: relu, kernel_constraint: "
                        "{type: max_norm, max_value: 0.5}}")
    graph, _, _ = run_fit(tmp_path, "c", text=text)
    assert np.all(np.linalg.norm(graph.weights["dense/kernel"], axis=0) <= 0.5 + 1e-6)


# ---- through the CLI ---------------------------------------------------------------------
def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_cli_train_nan_stops_and_keeps_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).normal(size=(64, 6)) * 1e3,
             y=np.random.default_rng(1).normal(size=(64, 1)) * 1e3)
    spec = write(tmp_path, "nan.yaml", "input_shape: [6]\nlayers:\n  - {type: Dense, units: 1}\n"
                 "compile: {loss: mse, optimizer: {type: sgd, learning_rate: 1.0e+6}}\n"
                 "train: {data: {path: d.npz}, epochs: 30, batch_size: 64}\n")
    result = CliRunner().invoke(cli, ["train", str(spec), "-q"])
    assert result.exit_code == 1
    assert "the loss became" in result.stderr and "last good checkpoint" in result.stderr
    assert "Traceback" not in result.output


def test_cli_train_refuses_to_overwrite_a_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = write(tmp_path, "t.yaml", SPEC.replace("epochs: 4", "epochs: 1") +
                 "  data: {path: d.npz}\n")
    data = toy_data()
    np.savez(tmp_path / "d.npz", x=data.x, y=data.y)
    assert CliRunner().invoke(cli, ["train", str(spec), "-q"]).exit_code == 0
    again = CliRunner().invoke(cli, ["train", str(spec), "-q"])
    assert again.exit_code == 1 and "already holds a run" in again.stderr
    assert CliRunner().invoke(cli, ["train", str(spec), "-q", "--overwrite"]).exit_code == 0
    more = CliRunner().invoke(cli, ["train", str(spec), "-q", "--resume", "--epochs", "2"])
    assert more.exit_code == 0
    assert len((tmp_path / "runs/tiny/history.csv").read_text().splitlines()) == 3


@pytest.mark.parametrize("setup,message", [
    ("missing", "d.npz"),
    ("wrong_key", "no array 'x'"),
    ("labels", "labels"),
    ("csv_text", "could not convert 'abc' to a number"),
])
def test_cli_train_data_errors(tmp_path, monkeypatch, setup, message):
    monkeypatch.chdir(tmp_path)
    data = toy_data()
    path = "d.npz"
    if setup == "wrong_key":
        np.savez(tmp_path / "d.npz", inputs=data.x, y=data.y)
    elif setup == "labels":
        np.savez(tmp_path / "d.npz", x=data.x, y=np.zeros((100, 7)))
    elif setup == "csv_text":
        path = "d.csv"
        (tmp_path / path).write_text("a,b,c,d,e,f,label\n" + "1,2,3,4,5,6,0\n" * 3 +
                                     "1,2,abc,4,5,6,1\n")
    spec = write(tmp_path, "t.yaml", SPEC + f"  data: {{path: {path}}}\n")
    result = CliRunner().invoke(cli, ["train", str(spec), "-q"])
    assert result.exit_code == 1, result.output
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2


def test_sigint_saves_checkpoint_and_resume_is_exact(tmp_path):
    """The real entry point: Ctrl-C mid-run exits 130 with a checkpoint; --resume then ends
    with the same weights, bit for bit, as an uninterrupted run."""
    data = toy_data(4000)
    np.savez(tmp_path / "d.npz", x=data.x, y=data.y)
    spec = write(tmp_path, "t.yaml", SPEC.replace("epochs: 4", "epochs: 12") +
                 "  data: {path: d.npz}\n")
    exe = [sys.executable, "-m", "layerctl", "train", str(spec), "-q"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run(exe + ["--out", "straight"], cwd=tmp_path, check=True, env=env)
    process = subprocess.Popen(exe + ["--out", "cut"], cwd=tmp_path, env=env,
                               stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    deadline = time.time() + 60
    while not (tmp_path / "cut" / "checkpoint.npz").exists() and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    if process.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert process.returncode == 130, stderr
    assert "checkpoint saved" in stderr and "Traceback" not in stderr
    subprocess.run(exe + ["--out", "cut", "--resume"], cwd=tmp_path, check=True, env=env)
    straight, resumed = read_npz(tmp_path / "straight/weights.npz"), read_npz(
        tmp_path / "cut/weights.npz")
    assert all(np.array_equal(straight[k], resumed[k]) for k in straight)


def test_cli_evaluate_and_predict(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = toy_data()
    np.savez(tmp_path / "d.npz", x=data.x, y=data.y)
    spec = write(tmp_path, "t.yaml", SPEC + "  data: {path: d.npz}\n")
    assert CliRunner().invoke(cli, ["train", str(spec), "-q"]).exit_code == 0
    weights = "runs/tiny/weights.npz"
    result = CliRunner().invoke(cli, ["evaluate", str(spec), "--weights", weights, "--json"])
    assert result.exit_code == 0 and '"accuracy"' in result.stdout
    np.save(tmp_path / "x.npy", data.x[:5])
    result = CliRunner().invoke(cli, ["predict", str(spec), "--weights", weights, "x.npy",
                                      "--classes"])
    assert result.exit_code == 0 and result.stdout.splitlines()[0] == "class"
    assert len(result.stdout.splitlines()) == 6
    out = CliRunner().invoke(cli, ["predict", str(spec), "--weights", weights, "x.npy",
                                   "-o", "p.npy"])
    assert out.exit_code == 0 and np.load(tmp_path / "p.npy").shape == (5, 3)


@pytest.mark.parametrize("weights,message", [
    ("missing.npz", "no such weights file"),
    ("corrupt.npz", "not a valid .npz"),
    ("pickled.npz", "pickled objects"),
    ("other.npz", "missing weight 'dense/kernel'"),
])
def test_cli_predict_weights_errors(tmp_path, monkeypatch, weights, message):
    monkeypatch.chdir(tmp_path)
    spec = write(tmp_path, "t.yaml", SPEC)
    np.save(tmp_path / "x.npy", np.zeros((2, 6), np.float32))
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip")
    np.savez(tmp_path / "pickled.npz", **{"dense/kernel": np.array([{"a": 1}], dtype=object)})
    np.savez(tmp_path / "other.npz", w=np.zeros(3))
    result = CliRunner().invoke(cli, ["predict", str(spec), "--weights", weights, "x.npy"])
    assert result.exit_code == 1 and message in result.stderr, result.output
    assert "Traceback" not in result.stderr


def test_cli_predict_input_shape_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = write(tmp_path, "t.yaml", SPEC)
    Path("x.npy").write_bytes(b"")
    np.save(tmp_path / "x.npy", np.zeros((2, 5), np.float32))
    result = CliRunner().invoke(cli, ["predict", str(spec), "--weights", "w.npz", "x.npy"])
    assert result.exit_code == 1
    assert "inputs have shape (N, 5) but the spec's input shape is (N, 6)" in result.stderr


def test_cli_initial_weights_are_the_starting_point(tmp_path, monkeypatch):
    """With a learning rate of 0 the trained weights must be exactly the initial ones."""
    monkeypatch.chdir(tmp_path)
    data = toy_data()
    np.savez(tmp_path / "d.npz", x=data.x, y=data.y)
    text = ("name: frozen\ninput_shape: [6]\nlayers:\n  - {type: Dense, units: 3}\n"
            "compile: {loss: sparse_categorical_crossentropy, "
            "optimizer: {type: sgd, learning_rate: 0.0}}\ntrain: {data: {path: d.npz}}\n")
    spec = write(tmp_path, "t.yaml", text)
    start = {"dense/kernel": np.full((6, 3), 0.25, np.float32),
             "dense/bias": np.arange(3, dtype=np.float32)}
    np.savez(tmp_path / "start.npz", **start)
    result = CliRunner().invoke(cli, ["train", str(spec), "-q", "--initial-weights", "start.npz"])
    assert result.exit_code == 0, result.output
    trained = read_npz(tmp_path / "runs/frozen/weights.npz")
    assert all(np.array_equal(trained[k], start[k]) for k in start)
    bad = CliRunner().invoke(cli, ["train", str(spec), "-q", "--overwrite",
                                   "--initial-weights", "d.npz"])
    assert bad.exit_code == 1 and "missing weight 'dense/kernel'" in bad.stderr
