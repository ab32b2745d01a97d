"""Training step (forward+backward) of a transformer encoder block, layerctl against PyTorch.

Block: x (32, 64, 128) float32 -> MultiHeadAttention(4 heads, key_dim 32) -> Add(x) ->
LayerNormalization -> Dense(512, relu) -> Dense(128) -> Add -> LayerNormalization, the post-norm
encoder of "Attention is all you need" (d_model 128, sequence 64, batch 32). layerctl runs it as
a Graph built from a spec (the code `layerctl train` runs); PyTorch as the same modules
(torch.nn.MultiheadAttention, LayerNorm, Linear) with layerctl's weights copied in, checked to
give the same output and weight gradients first. Both sides compute every weight gradient and
the input gradient from the same dy. Blocks of runs alternate (ours, torch, ours, …;
`conv.py`'s `interleaved_times`) so background load hits both alike; the ratio uses the best
time of each side, the median is printed as a noise check.

    python benchmarks/transformer.py [--rounds 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import blas_first  # noqa: F401 - before NumPy: as the layerctl command
import numpy as np
import torch
from common import build
from conv import interleaved_times

BATCH, STEPS, D_MODEL, HEADS, D_FF = 32, 64, 128, 4, 512
BLOCK = f"""
name: encoder-block
input_shape: [{STEPS}, {D_MODEL}]
layers:
  - {{type: MultiHeadAttention, name: mha, num_heads: {HEADS}, key_dim: {D_MODEL // HEADS},
     inputs: [input, input]}}
  - {{type: Add, name: residual, inputs: [input, mha]}}
  - {{type: LayerNormalization, name: norm}}
  - {{type: Dense, name: ffn, units: {D_FF}, activation: relu}}
  - {{type: Dense, name: ffn_out, units: {D_MODEL}}}
  - {{type: Add, name: residual_2, inputs: [norm, ffn_out]}}
  - {{type: LayerNormalization, name: norm_2}}
"""


class TorchBlock(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mha = torch.nn.MultiheadAttention(D_MODEL, HEADS, batch_first=True)
        self.norm = torch.nn.LayerNorm(D_MODEL, eps=1e-3)
        self.ffn = torch.nn.Linear(D_MODEL, D_FF)
        self.ffn_out = torch.nn.Linear(D_FF, D_MODEL)
        self.norm_2 = torch.nn.LayerNorm(D_MODEL, eps=1e-3)

    def forward(self, x):
        attended, _ = self.mha(x, x, x, need_weights=False)
        h = self.norm(x + attended)
        return self.norm_2(h + self.ffn_out(torch.relu(self.ffn(h))))

    def copy_from(self, w: dict[str, np.ndarray]) -> None:
        def matrix(key: str) -> torch.Tensor:  # Keras's (in, ...) kernel as torch's (out, in)
            kernel = w[key]
            return torch.from_numpy(np.ascontiguousarray(kernel.reshape(
                D_MODEL if "attention_output" not in key else -1, -1).T))

        with torch.no_grad():
            self.mha.in_proj_weight.copy_(torch.cat([matrix(f"mha/{p}/kernel")
                                                     for p in ("query", "key", "value")]))
            self.mha.in_proj_bias.copy_(torch.cat([torch.from_numpy(w[f"mha/{p}/bias"].ravel())
                                                   for p in ("query", "key", "value")]))
            self.mha.out_proj.weight.copy_(torch.from_numpy(np.ascontiguousarray(
                w["mha/attention_output/kernel"].reshape(D_MODEL, D_MODEL).T)))
            self.mha.out_proj.bias.copy_(torch.from_numpy(w["mha/attention_output/bias"]))
            for name in ("norm", "norm_2"):
                getattr(self, name).weight.copy_(torch.from_numpy(w[f"{name}/gamma"]))
                getattr(self, name).bias.copy_(torch.from_numpy(w[f"{name}/beta"]))
            for name in ("ffn", "ffn_out"):
                getattr(self, name).weight.copy_(torch.from_numpy(
                    np.ascontiguousarray(w[f"{name}/kernel"].T)))
                getattr(self, name).bias.copy_(torch.from_numpy(w[f"{name}/bias"]))


def encoder_case(rng: np.random.Generator) -> tuple[Callable[[], object], Callable[[], object]]:
    """(ours, torch) closures doing one forward+backward of the block."""
    _, graph = build(BLOCK)
    for key, value in graph.weights.items():  # biases, gamma, beta away from 0 and 1
        if not key.endswith("kernel"):
            value[...] = rng.normal(0.5, 0.3, size=value.shape)
    x = rng.standard_normal((BATCH, STEPS, D_MODEL), dtype=np.float32)
    dy = rng.standard_normal((BATCH, STEPS, D_MODEL), dtype=np.float32)

    def ours() -> object:
        y = graph.forward(x, training=True)
        graph.backward(dy)
        return y

    block = TorchBlock()
    block.copy_from(graph.weights)
    x_t = torch.from_numpy(x).requires_grad_(True)
    dy_t = torch.from_numpy(dy)

    def reference() -> object:
        block.zero_grad(set_to_none=True)
        x_t.grad = None
        y = block(x_t)
        y.backward(dy_t)
        return y

    np.testing.assert_allclose(ours(), reference().detach().numpy(), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(graph.grads["ffn/kernel"], block.ffn.weight.grad.numpy().T,
                               rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(graph.grads["mha/query/kernel"].reshape(D_MODEL, D_MODEL),
                               block.mha.in_proj_weight.grad[:D_MODEL].numpy().T,
                               rtol=1e-3, atol=1e-2)
    return ours, reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="blocks of 10 runs per side")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch's threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ours, reference = encoder_case(np.random.default_rng(0))
    mine, theirs = interleaved_times(ours, reference, args.rounds)
    print(f"forward+backward, float32, torch threads={torch.get_num_threads()}, "
          f"{args.rounds} rounds of 10 runs per side")
    print(f"{'case':40} {'ours best/median ms':>20} {'torch best/median ms':>21} {'ratio':>6}")
    name = f"encoder block {BATCH}x{STEPS}x{D_MODEL}, {HEADS} heads"
    print(f"{name:40} {min(mine) * 1e3:9.2f}/{statistics.median(mine) * 1e3:<9.2f}  "
          f"{min(theirs) * 1e3:9.2f}/{statistics.median(theirs) * 1e3:<9.2f}  "
          f"{min(mine) / min(theirs):5.2f}x")


if __name__ == "__main__":
    main()
