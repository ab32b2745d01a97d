"""Forward+backward time of layerctl's conv and pooling kernels against PyTorch, same run.

Cases (batch 64, float32): Conv2D(32, 3×3, same) on 28×28×1, Conv2D(64, 3×3, same) on 14×14×32,
MaxPooling2D(2×2) and AveragePooling2D(2×2) on 28×28×32, Conv2DTranspose(32, 3×3, strides 2,
same) on 14×14×64 (to 28×28×32; against F.conv_transpose2d with padding 1, output_padding 1:
the same work, its window one cell later than Keras's). PyTorch runs in its native NCHW layout
with 2 threads, and both sides compute the input gradient (and the kernel gradient for convs).
Blocks of runs alternate (ours, torch, ours, …) so background load hits both alike; the ratio
uses the best time of each side, the median is printed as a noise check.

    /work/venv/bin/python benchmarks/conv.py [--rounds 5] [--only Conv2DTranspose]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import blas_first  # noqa: F401 - before NumPy: as the layerctl command
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from layerctl.ops.conv import (
    conv_backward,
    conv_forward,
    conv_transpose_backward,
    conv_transpose_forward,
)
from layerctl.ops.pool import (
    average_pool_backward,
    average_pool_forward,
    max_pool_backward,
    max_pool_forward,
)

BATCH = 64


def conv_case(height: int, channels: int, filters: int, rng: np.random.Generator
              ) -> tuple[Callable[[], object], Callable[[], object]]:
    """(ours, torch) closures doing one forward+backward of a 3×3 same convolution."""
    x = rng.standard_normal((BATCH, height, height, channels), dtype=np.float32)
    kernel = rng.standard_normal((3, 3, channels, filters), dtype=np.float32)
    dy = rng.standard_normal((BATCH, height, height, filters), dtype=np.float32)

    def ours() -> object:
        _, cache = conv_forward(x, kernel, (1, 1), "same", (1, 1))
        return conv_backward(cache, dy)

    x_t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).requires_grad_(True)
    k_t = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))).requires_grad_(True)
    dy_t = torch.from_numpy(np.ascontiguousarray(dy.transpose(0, 3, 1, 2)))

    def reference() -> object:
        x_t.grad = k_t.grad = None
        F.conv2d(x_t, k_t, padding="same").backward(dy_t)
        return x_t.grad, k_t.grad

    return ours, reference


def transpose_case(rng: np.random.Generator
                   ) -> tuple[Callable[[], object], Callable[[], object]]:
    """(ours, torch) closures doing one forward+backward of Conv2DTranspose(32, 3, 2, same) on
    14×14×64. PyTorch's usual 14 -> 28 layer (padding=1, output_padding=1) keeps cells 1…28 of
    the full 29×29 output where Keras keeps 0…27: the same amount of work."""
    x = rng.standard_normal((BATCH, 14, 14, 64), dtype=np.float32)
    kernel = rng.standard_normal((3, 3, 32, 64), dtype=np.float32)   # Keras (k, k, out, in)
    dy = rng.standard_normal((BATCH, 28, 28, 32), dtype=np.float32)

    def ours() -> object:
        _, cache = conv_transpose_forward(x, kernel, (2, 2), "same", None, (1, 1))
        return conv_transpose_backward(cache, dy)

    x_t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).requires_grad_(True)
    # torch's transposed weight is (in, out, k, k)
    k_t = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))).requires_grad_(True)
    dy_t = torch.from_numpy(np.ascontiguousarray(dy.transpose(0, 3, 1, 2)))

    def reference() -> object:
        x_t.grad = k_t.grad = None
        F.conv_transpose2d(x_t, k_t, stride=2, padding=1, output_padding=1).backward(dy_t)
        return x_t.grad, k_t.grad

    full, _ = conv_transpose_forward(x[:2], kernel, (2, 2), "valid", (0, 0), (1, 1))
    expected = F.conv_transpose2d(x_t[:2], k_t, stride=2, padding=1, output_padding=1)
    np.testing.assert_allclose(full[:, 1:, 1:], expected.detach().numpy().transpose(0, 2, 3, 1),
                               rtol=1e-3, atol=1e-3)   # the same function, checked once
    return ours, reference


def pool_case(rng: np.random.Generator, average: bool = False
              ) -> tuple[Callable[[], object], Callable[[], object]]:
    """(ours, torch) closures doing one forward+backward of a 2×2 max (or average) pool on
    28×28×32."""
    x = rng.standard_normal((BATCH, 28, 28, 32), dtype=np.float32)
    dy = rng.standard_normal((BATCH, 14, 14, 32), dtype=np.float32)

    def ours() -> object:
        if average:
            _, cache = average_pool_forward(x, (2, 2), (2, 2), "valid")
            return average_pool_backward(cache, dy)
        _, cache = max_pool_forward(x, (2, 2), (2, 2), "valid")
        return max_pool_backward(cache, dy)

    x_t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).requires_grad_(True)
    dy_t = torch.from_numpy(np.ascontiguousarray(dy.transpose(0, 3, 1, 2)))

    def reference() -> object:
        x_t.grad = None
        (F.avg_pool2d if average else F.max_pool2d)(x_t, 2, 2).backward(dy_t)
        return x_t.grad

    return ours, reference


def interleaved_times(ours: Callable[[], object], reference: Callable[[], object],
                      rounds: int, block: int = 10) -> tuple[list[float], list[float]]:
    """Wall times of alternating blocks of runs (ours ×block, torch ×block, …).

    Blocks rather than single alternations: OpenBLAS's and PyTorch's thread pools both spin for a
    while after each call, and alternating call by call makes each side pay for the other's
    spinning threads. The first run of every block is dropped as a warm-up.
    """
    mine: list[float] = []
    theirs: list[float] = []
    for _ in range(rounds):
        for fn, times in ((ours, mine), (reference, theirs)):
            fn()
            for _ in range(block):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
    return mine, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="blocks of 10 runs per side")
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    cases = {
        "Conv2D(32,3x3,same) 64x28x28x1": conv_case(28, 1, 32, rng),
        "Conv2D(64,3x3,same) 64x14x14x32": conv_case(14, 32, 64, rng),
        "MaxPool2D(2x2) 64x28x28x32": pool_case(rng),
        "AvgPool2D(2x2) 64x28x28x32": pool_case(rng, average=True),
        "Conv2DTranspose(32,3x3,s2) 64x14x14x64": transpose_case(rng),
    }
    print(f"forward+backward, float32, torch threads={torch.get_num_threads()}, "
          f"{args.rounds} rounds of 10 runs per side")
    print(f"{'case':38} {'ours best/median ms':>20} {'torch best/median ms':>21} {'ratio':>6}")
    for name, (ours, reference) in cases.items():
        if args.only not in name:
            continue
        mine, theirs = interleaved_times(ours, reference, args.rounds)
        print(f"{name:38} {min(mine) * 1e3:9.2f}/{statistics.median(mine) * 1e3:<9.2f}  "
              f"{min(theirs) * 1e3:9.2f}/{statistics.median(theirs) * 1e3:<9.2f}  "
              f"{min(mine) / min(theirs):5.2f}x")


if __name__ == "__main__":
    main()
