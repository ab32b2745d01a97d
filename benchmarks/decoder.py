"""A decoder block (Conv2D → UpSampling2D → Conv2D) forward and backward, against PyTorch.

    PYTHONPATH=. python benchmarks/decoder.py [--batch 32] [--rounds 15] [--steps 5] [--threads N]

The block is a U-Net/autoencoder decoder stage: Conv2D(32, 3×3, same, relu) on 14×14×16, then
UpSampling2D(2) (`nearest`, then `bilinear`), then Conv2D(16, 3×3, same, relu) at 28×28.
layerctl runs it channels_last (its Graph, training mode: the gradient of every weight, through
the upsampling); PyTorch (torch==2.13.0 CPU, eager, the same threads) runs the same block in
its native NCHW with `nn.Upsample`, every weight's gradient too (the data's gradient is needed
by neither). Two more rows time UpSampling2D alone (14×14×32 → 28×28×32, the input's gradient
included on both sides), which is this layer's own share.

Each engine runs in its own process, so neither's idle threads spin on the cores the other
needs, and they take turns as benchmarks/train.py's do: each round runs `--steps` steps of one
engine while the other waits, then of the other (which goes first alternates), so both see the
same machine load; an engine's fastest step of a round counts. Printed: the median round's
milliseconds per step and layerctl/PyTorch ratio (target ≤ 1.25) with the range over rounds, and
the ratio of the two engines' fastest steps overall (the steadiest figure on a loaded machine).
`--threads` sets BLAS's, layerctl's and PyTorch's thread counts alike (default: NumPy's BLAS
threads). On a machine loaded far beyond its cores, PyTorch's two OpenMP threads wait on each
other (its upsampling measured 100× slower than unloaded) while `--threads 1` stays steady.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
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
UPSAMPLING = """
name: bench-upsampling
input_shape: [14, 14, 32]
layers:
  - {{type: UpSampling2D, size: 2, interpolation: {interpolation}}}
"""


def layerctl_step(text: str, batch: int):
    _, graph = build(text)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, *graph.plan.input_shape[1:])).astype(np.float32)
    dy = rng.normal(size=(batch, *graph.plan.output_shape[1:])).astype(np.float32)

    def step() -> None:
        graph.forward(x, training=True, rng=rng)
        graph.backward(dy)   # an UpSampling2D alone still computes its input's gradient

    return step


def torch_step(interpolation: str, batch: int, block: bool):
    import torch

    torch.manual_seed(0)
    upsample = torch.nn.Upsample(scale_factor=2, mode=interpolation)
    if block:
        model = torch.nn.Sequential(
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), upsample,
            torch.nn.Conv2d(32, 16, 3, padding=1), torch.nn.ReLU())
    else:
        model = upsample
    rng = np.random.default_rng(0)
    channels = 16 if block else 32
    x = torch.from_numpy(rng.normal(size=(batch, channels, 14, 14)).astype(np.float32))
    x.requires_grad_(not block)   # as layerctl: the upsampling's input gradient, not the data's
    dy = torch.from_numpy(rng.normal(size=(batch, 16 if block else 32, 28, 28))
                          .astype(np.float32))

    def step() -> None:
        model.zero_grad(set_to_none=True)
        x.grad = None
        model(x).backward(dy)

    return step


def child(engine: str, case: str, interpolation: str, batch: int, threads: int) -> None:
    """One engine in its own process (so neither's idle threads spin on the other's cores):
    on each "go" from the parent, time `steps` steps and report their seconds."""
    if engine == "torch":
        import torch

        torch.set_num_threads(threads)
        step = torch_step(interpolation, batch, case == "block")
    else:
        text = DECODER if case == "block" else UPSAMPLING
        step = layerctl_step(text.format(interpolation=interpolation), batch)
    step()   # warm up: allocations, thread pools, BLAS
    print("ready", flush=True)
    for line in sys.stdin:
        times = []
        for _ in range(int(line)):
            started = time.perf_counter()
            step()
            times.append(time.perf_counter() - started)
        print(json.dumps(times), flush=True)


def taking_turns(case: str, interpolation: str, args, threads: int) -> list[tuple[float, float]]:
    """Per round, `--steps` steps of one engine while the other waits, then the other's (the
    first engine alternates by round); each engine's fastest step of the round."""
    # the same thread count for BLAS, layerctl's slices and PyTorch's OpenMP, read at start-up
    environment = {**os.environ, **{name: str(threads) for name in (
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "LAYERCTL_NUM_THREADS")}}
    children = {
        engine: subprocess.Popen(
            [sys.executable, __file__, "--child", engine, "--case", case, "--interpolation",
             interpolation, "--batch", str(args.batch), "--threads", str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environment)
        for engine in ("layerctl", "torch")}
    for engine, process in children.items():
        if process.stdout.readline().strip() != "ready":
            sys.exit(f"the {engine} benchmark child failed; its error is above")
    rounds = []
    for round_index in range(args.rounds):
        order = ["layerctl", "torch"][:: 1 if round_index % 2 == 0 else -1]
        fastest = {}
        for engine in order:
            children[engine].stdin.write(f"{args.steps}\n")
            children[engine].stdin.flush()
            fastest[engine] = min(json.loads(children[engine].stdout.readline()))
        rounds.append((fastest["layerctl"], fastest["torch"]))
    for process in children.values():
        process.stdin.close()
        process.wait()
    return rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--child", choices=["layerctl", "torch"])
    parser.add_argument("--case", choices=["block", "upsampling"])
    parser.add_argument("--interpolation", choices=["nearest", "bilinear"])
    parser.add_argument("--threads", type=int, default=0,
                        help="threads for each engine (default: as many as NumPy's BLAS uses)")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.case, args.interpolation, args.batch, args.threads)
        return
    threads = args.threads or numpy_threads()
    print(f"batch {args.batch}, {threads} thread(s) each, {args.rounds} rounds of {args.steps} "
          "steps per engine, taking turns")
    print(f"{'forward+backward':<28} {'layerctl ms':>11} {'torch ms':>9} {'ratio':>6}  "
          f"{'range':<9}  {'best-step ratio':>15}")
    for case in ("block", "upsampling"):
        for interpolation in ("nearest", "bilinear"):
            rounds = taking_turns(case, interpolation, args, threads)
            ratios = sorted(ours / theirs for ours, theirs in rounds)
            median = statistics.median(ratios)
            ours, theirs = min(rounds, key=lambda r: abs(r[0] / r[1] - median))
            what = f"{'decoder block' if case == 'block' else 'UpSampling2D alone'}, " \
                   f"{interpolation}"
            best = min(r[0] for r in rounds) / min(r[1] for r in rounds)
            print(f"{what:<28} {ours * 1e3:>11.2f} {theirs * 1e3:>9.2f} {median:>6.2f}  "
                  f"{ratios[0]:.2f}-{ratios[-1]:.2f}  {best:>15.2f}", flush=True)


if __name__ == "__main__":
    main()
