"""Adam on one flat in-place buffer against a per-array Adam with temporaries, same run.

The model is the 784-512-256-10 MLP (535,818 float32 parameters in six variables); one epoch of
MNIST at batch size 128 is 469 steps. The reference keeps one NumPy array per variable and
writes Keras's formulas the obvious way (`m = b1 * m + (1 - b1) * g`, ...), allocating
temporaries; layerctl's `FlatOptimizer` updates one contiguous buffer with `out=` arguments.
Both see the same gradients and must end on the same parameters (checked). Runs alternate
(ours, reference, ...) so background load hits both; the ratio uses each side's best run.

A second reference computes the bias correction with NumPy float64 scalars (`np.sqrt` on
`np.float64`), an easy slip: under NumPy 2's promotion rules (NEP 50) every temporary then
becomes float64. That, more than the loop over variables, is what makes a per-array Adam
several times slower.

    /work/venv/bin/python benchmarks/optimizer.py [--steps 469] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import time

import blas_first  # noqa: F401 - before NumPy: as the layerctl command
import numpy as np

from layerctl.training.optimizers import Adam, make_optimizer

SHAPES = [(784, 512), (512,), (512, 256), (256,), (256, 10), (10,)]


class PerArrayAdam:
    """The slow shape: a Python loop over variables, fresh temporaries for every operation."""

    def __init__(self, shapes: list[tuple[int, ...]], lr: float = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, float64_scalars: bool = False
                 ) -> None:
        self.lr, self.beta_1, self.beta_2, self.epsilon = lr, beta_1, beta_2, epsilon
        self.float64_scalars = float64_scalars
        self.m = [np.zeros(s, np.float32) for s in shapes]
        self.v = [np.zeros(s, np.float32) for s in shapes]
        self.iterations = 0

    def apply(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        t = self.iterations + 1
        sqrt = np.sqrt if self.float64_scalars else math.sqrt
        alpha = self.lr * sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            self.m[i] = self.beta_1 * self.m[i] + (1 - self.beta_1) * g
            self.v[i] = self.beta_2 * self.v[i] + (1 - self.beta_2) * g * g
            p -= alpha * self.m[i] / (np.sqrt(self.v[i]) + self.epsilon)
        self.iterations += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=469)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    sizes = [math.prod(s) for s in SHAPES]
    stops = np.cumsum(sizes)
    segments = [(int(b - n), int(b)) for b, n in zip(stops, sizes, strict=True)]
    total = int(stops[-1])
    rng = np.random.default_rng(0)
    start = rng.standard_normal(total, dtype=np.float32) * 0.05
    # A few distinct gradient buffers, cycled, so the cache is not unrealistically warm.
    gradients = [rng.standard_normal(total, dtype=np.float32) * 0.01 for _ in range(4)]

    def run_flat() -> np.ndarray:
        optimizer = make_optimizer(Adam(), segments, np.float32)
        params = start.copy()
        for step in range(args.steps):
            optimizer.apply(params, gradients[step % 4])
        return params

    def run_per_array(float64_scalars: bool = False) -> np.ndarray:
        optimizer = PerArrayAdam(SHAPES, float64_scalars=float64_scalars)
        params = [start[a:b].reshape(s).copy() for (a, b), s in zip(segments, SHAPES, strict=True)]
        views = [[g[a:b].reshape(s) for (a, b), s in zip(segments, SHAPES, strict=True)]
                 for g in gradients]
        for step in range(args.steps):
            optimizer.apply(params, views[step % 4])
        return np.concatenate([p.ravel() for p in params])

    runners = {
        "flat in-place (layerctl)": run_flat,
        "per-array temporaries": run_per_array,
        "per-array, float64 scalars": lambda: run_per_array(float64_scalars=True),
    }
    times: dict[str, list[float]] = {label: [] for label in runners}
    results = {}
    for _ in range(args.repeats):
        for label, runner in runners.items():
            began = time.perf_counter()
            results[label] = runner()
            times[label].append(time.perf_counter() - began)
    # Same maths, different rounding order: equal up to float32 noise.
    for label in runners:
        np.testing.assert_allclose(results[label], results["flat in-place (layerctl)"],
                                   rtol=1e-4, atol=1e-5)

    ours = min(times["flat in-place (layerctl)"])
    print(f"Adam, {total:,} float32 params in {len(SHAPES)} variables, {args.steps} steps")
    for label in runners:
        best = min(times[label])
        print(f"  {label:<28} best {best:6.3f} s   {best / ours:5.2f}x layerctl")


if __name__ == "__main__":
    main()
