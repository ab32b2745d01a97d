"""Forward+backward time of layerctl's LayerNormalization(128) against torch.nn.LayerNorm, same run.

Case: x (32, 64, 128) float32, as in a transformer encoder block (batch 32, sequence 64,
d_model 128), normalized over the last axis with gamma and beta, epsilon 1e-3. Both sides compute
the input gradient and the gamma and beta gradients from the same dy. Blocks of runs alternate
(ours, torch, ours, …; `conv.py`'s `interleaved_times`) so background load hits both alike; the
ratio uses the best time of each side, the median is printed as a noise check.

    python benchmarks/normalization.py [--rounds 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import blas_first  # noqa: F401 - before NumPy: as the layerctl command
import numpy as np
import torch
from conv import interleaved_times

from layerctl.layers import LayerNormalization
from layerctl.runtime import tune_allocator

SHAPE = (32, 64, 128)


def layer_normalization_case(rng: np.random.Generator
                             ) -> tuple[Callable[[], object], Callable[[], object]]:
    """(ours, torch) closures doing one forward+backward of LayerNormalization over 128."""
    x = rng.standard_normal(SHAPE, dtype=np.float32)
    dy = rng.standard_normal(SHAPE, dtype=np.float32)
    layer = LayerNormalization(type="LayerNormalization")
    weights = {"gamma": rng.standard_normal(SHAPE[-1:], dtype=np.float32),
               "beta": rng.standard_normal(SHAPE[-1:], dtype=np.float32)}

    def ours() -> object:
        _, cache = layer.forward(weights, x, None, True, None)
        return layer.backward(weights, cache, dy)

    reference_layer = torch.nn.LayerNorm(SHAPE[-1], eps=1e-3)
    with torch.no_grad():
        reference_layer.weight.copy_(torch.from_numpy(weights["gamma"]))
        reference_layer.bias.copy_(torch.from_numpy(weights["beta"]))
    x_t = torch.from_numpy(x).requires_grad_(True)
    dy_t = torch.from_numpy(dy)

    def reference() -> object:
        x_t.grad = reference_layer.weight.grad = reference_layer.bias.grad = None
        reference_layer(x_t).backward(dy_t)
        return x_t.grad, reference_layer.weight.grad, reference_layer.bias.grad

    dx, grads = ours()
    dx_t, dgamma_t, dbeta_t = reference()
    np.testing.assert_allclose(dx, dx_t.numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(grads["gamma"], dgamma_t.numpy(), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(grads["beta"], dbeta_t.numpy(), rtol=1e-3, atol=1e-3)
    return ours, reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="blocks of 10 runs per side")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch's threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tune_allocator()  # as the train/evaluate/predict commands do
    ours, reference = layer_normalization_case(np.random.default_rng(0))
    mine, theirs = interleaved_times(ours, reference, args.rounds)
    print(f"forward+backward, float32, torch threads={torch.get_num_threads()}, "
          f"{args.rounds} rounds of 10 runs per side")
    print(f"{'case':34} {'ours best/median ms':>20} {'torch best/median ms':>21} {'ratio':>6}")
    name = "LayerNormalization(128) 32x64x128"
    print(f"{name:34} {min(mine) * 1e3:9.2f}/{statistics.median(mine) * 1e3:<9.2f}  "
          f"{min(theirs) * 1e3:9.2f}/{statistics.median(theirs) * 1e3:<9.2f}  "
          f"{min(mine) / min(theirs):5.2f}x")


if __name__ == "__main__":
    main()
