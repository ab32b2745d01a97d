"""`layerctl predict` against ONNX Runtime running the model `layerctl export` writes.

    python benchmarks/predict.py [--cnn-samples 10000] [--mlp-samples 60000] [--rounds 5]
                                 [--batch-size 256] [--skip-command]

Models: `specs/mnist_cnn.yaml` (Conv 32/64, max pooling, Dense 128, BatchNormalization) and the
784-512-256-10 MLP of `common.py`, with seeded random weights (BatchNormalization's moving
statistics drawn away from 0 and 1, so that folding it is exercised) and seeded mnist-shaped
inputs, written to a temporary directory as `.npz` files.

Two measurements, each in alternating rounds (the order flips every round; a shared machine's
speed drifts within a minute, so one engine's whole run after the other's measures the drift):

- in process: `Predictor` over every batch, against `InferenceSession.run` over the same
  batches, plus `Graph.forward(training=False)` (the training path, what predict ran before);
- the whole command, process start to exit: `layerctl predict SPEC --weights W X.npz -o Y.npy`
  against a Python process that imports onnxruntime, loads the same .npz, runs every batch
  and saves the .npy.

ONNX Runtime gets `intra_op_num_threads` = NumPy's BLAS threads (`OPENBLAS_NUM_THREADS` when
set, else the cores) and one inter-op thread; for a one-thread comparison run
`OPENBLAS_NUM_THREADS=1 LAYERCTL_NUM_THREADS=1 python benchmarks/predict.py`.
Printed per model: the median ratio layerctl / ONNX Runtime with the range over rounds
(target ≤ 1.5), each engine's median seconds, the load average at each round, and the
fraction of this machine's float32 matmul peak (a 2048² matmul timed in the same process
between rounds) that the model's multiply-adds reach.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from common import MLP, numpy_threads  # noqa: E402

ORT_COMMAND = """
import sys, numpy as np, onnxruntime as ort
model, data, out, batch, threads = sys.argv[1:6]
options = ort.SessionOptions()
options.intra_op_num_threads, options.inter_op_num_threads = int(threads), 1
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
x = np.load(data)["x"]
batch = int(batch)
y = [session.run(None, {"input": x[i:i + batch]})[0] for i in range(0, len(x), batch)]
np.save(out, np.concatenate(y))
"""


def write_model(folder: Path, name: str, spec_text: str, sample_shape: tuple[int, ...],
                samples: int) -> dict:
    """Spec, seeded weights, exported .onnx and seeded inputs for one model, in `folder`."""
    from layerctl.graph import Graph
    from layerctl.plan import build_plan
    from layerctl.spec import parse_spec
    from layerctl.weights import save_weights

    spec_path, weights = folder / f"{name}.yaml", folder / f"{name}.npz"
    spec_path.write_text(spec_text)
    spec, marks = parse_spec(spec_text)
    graph = Graph(build_plan(spec, marks))
    rng = np.random.default_rng(0)
    graph.initialize(rng)
    for key, value in graph.weights.items():
        if key.endswith("/moving_mean"):
            value[...] = rng.normal(0, 0.1, value.shape)
        elif key.endswith("/moving_variance"):
            value[...] = rng.uniform(0.5, 2.0, value.shape)
    save_weights(graph, weights)
    onnx_path = folder / f"{name}.onnx"
    subprocess.run([sys.executable, "-m", "layerctl", "export", str(spec_path), "--weights",
                    str(weights), "-o", str(onnx_path)], check=True, capture_output=True,
                   env=child_environment())
    inputs = folder / f"{name}_x.npz"
    np.savez(inputs, x=rng.random((samples, *sample_shape), dtype=np.float32))
    return {"name": name, "spec": spec_path, "weights": weights, "onnx": onnx_path,
            "inputs": inputs, "graph": graph, "flops": forward_flops(graph.plan) * samples}


def forward_flops(plan) -> int:
    """Multiply-adds ×2 per sample of the model's Dense and convolution layers."""
    total = 0
    for node in plan.nodes:
        for weight in node.weights:
            if weight.name == "kernel":
                positions = math.prod(node.output_shape[1:-1])   # 1 for a Dense on vectors
                total += 2 * positions * math.prod(weight.shape)
    return total


def child_environment() -> dict[str, str]:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [environment.get("PYTHONPATH")])])
    return environment


def matmul_peak(n: int = 2048) -> float:
    """GFLOP/s of the fastest of three n×n float32 matmuls (after one warm-up)."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    a @ b
    best = math.inf
    for _ in range(3):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best / 1e9


def in_process_runners(model: dict, batch_size: int, threads: int) -> dict:
    """{engine: function running every batch once} for layerctl, its training path and ORT."""
    import onnxruntime as ort

    from layerctl.inference import Predictor

    graph = model["graph"]
    predictor = Predictor(graph)
    x = np.load(model["inputs"])["x"]
    batches = [x[i:i + batch_size] for i in range(0, len(x), batch_size)]
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(model["onnx"]), options,
                                   providers=["CPUExecutionProvider"])
    reference = graph.forward(batches[0], training=False)
    ours = predictor(batches[0])
    theirs = session.run(None, {"input": batches[0]})[0]
    print(f"  first batch: |predictor − Graph.forward| ≤ {np.abs(ours - reference).max():.1e}, "
          f"|predictor − ONNX Runtime| ≤ {np.abs(ours - theirs).max():.1e}")
    return {
        "layerctl": lambda: [predictor(batch) for batch in batches],
        "onnxruntime": lambda: [session.run(None, {"input": batch}) for batch in batches],
        "training path": lambda: [graph.forward(batch, training=False) for batch in batches],
    }


def command_runners(model: dict, batch_size: int, threads: int, folder: Path) -> dict:
    """{engine: function running the whole command once, in a new process}."""
    environment = child_environment()
    ours = [sys.executable, "-m", "layerctl", "predict", str(model["spec"]), "--weights",
            str(model["weights"]), str(model["inputs"]), "-o", str(folder / "layerctl.npy"),
            "--batch-size", str(batch_size)]
    theirs = [sys.executable, "-c", ORT_COMMAND, str(model["onnx"]), str(model["inputs"]),
              str(folder / "onnxruntime.npy"), str(batch_size), str(threads)]
    return {
        "layerctl": lambda: subprocess.run(ours, check=True, env=environment),
        "onnxruntime": lambda: subprocess.run(theirs, check=True, env=environment),
    }


def alternate(runners: dict, rounds: int) -> tuple[dict[str, list[float]], list[float], list]:
    """Seconds of each engine per round (order flipped every round), the matmul peak measured
    after each round, and the 1-minute load average at the start of each."""
    seconds: dict[str, list[float]] = {engine: [] for engine in runners}
    peaks, loads = [], []
    for round_ in range(rounds):
        loads.append(os.getloadavg()[0])
        engines = list(runners) if round_ % 2 == 0 else list(runners)[::-1]
        for engine in engines:
            started = time.perf_counter()
            runners[engine]()
            seconds[engine].append(time.perf_counter() - started)
        peaks.append(matmul_peak())
    return seconds, peaks, loads


def report(title: str, model: dict, seconds: dict, peaks: list[float], loads: list) -> None:
    ratios = sorted(a / b for a, b in zip(seconds["layerctl"], seconds["onnxruntime"],
                                          strict=True))
    medians = {engine: statistics.median(values) for engine, values in seconds.items()}
    peak = statistics.median(peaks)
    print(f"  {title}: layerctl / ONNX Runtime {statistics.median(ratios):.2f} "
          f"(rounds {ratios[0]:.2f}–{ratios[-1]:.2f}; target ≤ 1.5); "
          + ", ".join(f"{engine} {value:.2f} s" for engine, value in medians.items()))
    fractions = ", ".join(f"{engine} {model['flops'] / value / 1e9 / peak:.0%}"
                          for engine, value in medians.items())
    print(f"    matmul peak {peak:.0f} GFLOP/s (rounds {min(peaks):.0f}–{max(peaks):.0f}); "
          f"model at {fractions} of it; load {', '.join(f'{v:.1f}' for v in loads)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cnn-samples", type=int, default=10_000)
    parser.add_argument("--mlp-samples", type=int, default=60_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-command", action="store_true",
                        help="only the in-process measurement")
    args = parser.parse_args()
    threads = int(os.environ.get("OPENBLAS_NUM_THREADS") or numpy_threads())
    print(f"threads: NumPy BLAS {threads}, ONNX Runtime intra-op {threads}; "
          f"batch {args.batch_size}")
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        models = [
            write_model(folder, "mnist_cnn", (ROOT / "specs" / "mnist_cnn.yaml").read_text(),
                        (28, 28, 1), args.cnn_samples),
            write_model(folder, "mlp", MLP, (784,), args.mlp_samples),
        ]
        for model in models:
            samples = len(np.load(model["inputs"])["x"])
            print(f"{model['name']}: {samples} samples, {model['flops'] / 1e9:.0f} GFLOP")
            runners = in_process_runners(model, args.batch_size, threads)
            report("in process", model, *alternate(runners, args.rounds))
            if not args.skip_command:
                runners = command_runners(model, args.batch_size, threads, folder)
                report("whole command", model, *alternate(runners, args.rounds))


if __name__ == "__main__":
    main()
