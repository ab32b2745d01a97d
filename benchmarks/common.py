"""Shared helpers for the benchmarks: model specs, matmul peak, timing, thread settings."""

from __future__ import annotations

import time

import numpy as np

MLP = """
name: bench-mlp
input_shape: [784]
layers:
  - {type: Dense, units: 512, activation: relu}
  - {type: Dense, units: 256, activation: relu}
  - {type: Dense, units: 10, activation: softmax}
compile: {loss: sparse_categorical_crossentropy, optimizer: adam}
"""

CNN = """
name: bench-cnn
input_shape: [28, 28, 1]
layers:
  - {type: Conv2D, filters: 32, kernel_size: 3, padding: same, activation: relu}
  - {type: MaxPooling2D, pool_size: 2}
  - {type: Conv2D, filters: 64, kernel_size: 3, padding: same, activation: relu}
  - {type: MaxPooling2D, pool_size: 2}
  - {type: Flatten}
  - {type: Dense, units: 128, activation: relu}
  - {type: Dense, units: 10, activation: softmax}
compile: {loss: sparse_categorical_crossentropy, optimizer: adam}
"""

LSTM = """
name: bench-lstm
input_shape: [100, 32]
layers:
  - {type: LSTM, units: 128}
  - {type: Dense, units: 10, activation: softmax}
compile: {loss: sparse_categorical_crossentropy, optimizer: adam}
"""


def numpy_threads() -> int:
    """How many threads NumPy's BLAS uses (threadpoolctl when present, else the core count)."""
    try:
        from threadpoolctl import threadpool_info

        return max(info["num_threads"] for info in threadpool_info()) or 1
    except Exception:  # noqa: BLE001 - threadpoolctl is optional
        import os

        return len(os.sched_getaffinity(0))


def best_of(function, repeat: int = 5) -> float:
    """The fastest of `repeat` timings, in seconds (after one warm-up call)."""
    function()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def matmul_gflops(n: int = 1024) -> float:
    """This machine's float32 matmul throughput, measured now."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    return 2 * n**3 / best_of(lambda: a @ b) / 1e9


def build(text: str, dtype=np.float32):
    from layerctl.graph import Graph
    from layerctl.plan import build_plan
    from layerctl.runtime import tune_allocator
    from layerctl.spec import parse_spec

    tune_allocator()  # as the train/evaluate/predict commands do

    spec, marks = parse_spec(text)
    graph = Graph(build_plan(spec, marks), dtype)
    graph.initialize(np.random.default_rng(0))
    return spec, graph
