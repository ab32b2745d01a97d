"""A decoder block (Conv2D → UpSampling2D → Conv2D) forward and backward, against PyTorch.

    python benchmarks/decoder.py [--batch 32] [--rounds 7] [--steps 3]

The block is a U-Net/autoencoder decoder stage: Conv2D(32, 3×3, same, relu) on 14×14×16, then
UpSampling2D(2) (`nearest`, and `bilinear` in a second row), then Conv2D(16, 3×3, same, relu) at
28×28. layerctl runs it channels_last (its Graph, training mode, the gradient of every weight
and through the upsampling); PyTorch (torch==2.13.0 CPU, eager, threads = NumPy's) runs the
same block in its native NCHW with `nn.Upsample`, gradients of every weight too (its input needs
none, like layerctl's). Both run in this process and take turns: each round times `--steps`
steps of one engine, then of the other (the order alternates), so both see the same machine
load; per engine the fastest step of a round counts. Printed: the median round's milliseconds per
step and the layerctl/PyTorch ratio (target ≤ 1.25), with the range over rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import blas_first  # noqa: F401 - before NumPy: as the layerctl command
import numpy as np
from common import build, numpy_threads

DECODER = """
name: bench-decoder
input_shape: [14, 14, 16]
layers:
  - {{type: Conv2D, filters: 32, kernel_size: 3, padding: same, activation: relu}}
  - {{type: UpSampling2D, size: 2, interpolation: {interpolation}}}
  - {{type: Conv2D, filters: 16, kernel_size: 3, padding: same, activation: relu}}
"""


def layerctl_step(interpolation: str, batch: int):
    _, graph = build(DECODER.format(interpolation=interpolation))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, 14, 14, 16)).astype(np.float32)
    dy = rng.normal(size=(batch, 28, 28, 16)).astype(np.float32)

    def step() -> None:
        graph.forward(x, training=True, rng=rng)
        graph.backward(dy)

    return step


def torch_step(interpolation: str, batch: int):
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Upsample(scale_factor=2, mode=interpolation),
        torch.nn.Conv2d(32, 16, 3, padding=1), torch.nn.ReLU())
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(batch, 16, 14, 14)).astype(np.float32))
    dy = torch.from_numpy(rng.normal(size=(batch, 16, 28, 28)).astype(np.float32))

    def step() -> None:
        model.zero_grad(set_to_none=True)
        model(x).backward(dy)

    return step


def fastest(step, count: int) -> float:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    threads = numpy_threads()
    torch.set_num_threads(threads)
    print(f"decoder block, batch {args.batch}, {threads} thread(s), {args.rounds} rounds of "
          f"{args.steps} steps per engine, taking turns")
    print(f"{'upsampling':<10} {'layerctl ms':>11} {'torch ms':>9} {'ratio':>6}  range")
    for interpolation in ("nearest", "bilinear"):
        engines = {"layerctl": layerctl_step(interpolation, args.batch),
                   "torch": torch_step(interpolation, args.batch)}
        for step in engines.values():   # warm up: allocations, thread pools, BLAS
            step()
        rounds = []
        for round_index in range(args.rounds):
            order = list(engines) if round_index % 2 == 0 else list(engines)[::-1]
            seconds = {name: fastest(engines[name], args.steps) for name in order}
            rounds.append((seconds["layerctl"], seconds["torch"]))
        ratios = sorted(ours / theirs for ours, theirs in rounds)
        median = statistics.median(ratios)
        ours, theirs = min(rounds, key=lambda r: abs(r[0] / r[1] - median))
        print(f"{interpolation:<10} {ours * 1e3:>11.1f} {theirs * 1e3:>9.1f} {median:>6.2f}  "
              f"{ratios[0]:.2f}-{ratios[-1]:.2f}")


if __name__ == "__main__":
    main()
