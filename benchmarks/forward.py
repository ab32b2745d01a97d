"""Forward+backward throughput of three models, next to this machine's matmul GFLOP/s.

    python benchmarks/forward.py

For each model: samples per second of one training-mode forward and backward pass, the
GFLOP/s that represents (matmul-equivalent FLOPs: 2·MACs forward, 4·MACs backward), and that
as a fraction of a 1024×1024 float32 matmul measured in the same run.
"""

from __future__ import annotations

import blas_first  # noqa: F401 - before NumPy: as the layerctl command
import numpy as np
from common import CNN, LSTM, MLP, best_of, build, matmul_gflops


def macs(graph) -> int:
    """Multiply-accumulates of one forward pass per sample (Dense, Conv, LSTM)."""
    total = 0
    for node in graph.plan.nodes:
        kind, out = node.layer.keras_class, node.output_shape
        if kind == "Dense":
            total += node.weights[0].shape[0] * node.weights[0].shape[1]
        elif kind.startswith("Conv"):
            kernel = node.weights[0].shape
            total += int(np.prod(out[1:-1])) * int(np.prod(kernel))
        elif kind == "LSTM":
            steps = node.input_shapes[0][1]
            total += (
                steps
                * (node.weights[0].shape[0] + node.weights[1].shape[0])
                * node.weights[0].shape[1]
            )
    return total


def main() -> None:
    peak = matmul_gflops()
    print(f"matmul peak (float32, 1024^3): {peak:.1f} GFLOP/s")
    print(
        f"{'model':<6} {'batch':>5} {'ms/step':>8} {'samples/s':>10} {'GFLOP/s':>8} {'of peak':>8}"
    )
    rng = np.random.default_rng(0)
    for name, text, batch in (("MLP", MLP, 128), ("CNN", CNN, 64), ("LSTM", LSTM, 64)):
        _, graph = build(text)
        shape = (batch,) + tuple(graph.plan.input_shape[1:])
        x = rng.normal(size=shape).astype(np.float32)
        dy = rng.normal(size=(batch,) + tuple(graph.plan.output_shape[1:])).astype(np.float32)

        def step(graph=graph, x=x, dy=dy):
            graph.forward(x, training=True, rng=rng)
            graph.backward(dy)

        seconds = best_of(step, repeat=5)
        gflops = 6 * macs(graph) * batch / seconds / 1e9
        print(
            f"{name:<6} {batch:>5} {seconds * 1e3:>8.1f} {batch / seconds:>10.0f} "
            f"{gflops:>8.1f} {gflops / peak:>8.1%}"
        )


if __name__ == "__main__":
    main()
