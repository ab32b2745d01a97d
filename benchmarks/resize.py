"""Resizing forward+backward (one layer, a batch of images) against PyTorch's F.interpolate.

    python benchmarks/resize.py [--rounds 9]

The cases are the layer's kinds of work: bilinear up and down, nearest up, in channels_last
(PyTorch gets the same images channels-first, its native layout, so its time includes no
transpose). Both engines run in this process with the same thread count (NumPy's), taking turns
call by call, so a shared machine's drift hits both alike; printed: the fastest time of each and
the layerctl/PyTorch ratio (target ≤ 1.25).
"""

from __future__ import annotations

import argparse
import time

import blas_first  # noqa: F401 - before NumPy: as the layerctl command
import numpy as np
from common import numpy_threads

from layerctl.layers import Resizing

CASES = (  # (interpolation, input size, output size)
    ("bilinear", 64, 128), ("bilinear", 128, 64), ("nearest", 64, 128), ("bilinear", 32, 224),
)


def main() -> None:
    import torch
    import torch.nn.functional as F

    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(numpy_threads())
    rng = np.random.default_rng(0)
    print(f"{'case':<22} {'layerctl ms':>11} {'torch ms':>9} {'ratio':>6}")
    for interpolation, size, out in CASES:
        layer = Resizing(type="Resizing", height=out, width=out, interpolation=interpolation,
                         data_format="channels_last")
        x = rng.normal(size=(args.batch, size, size, 3)).astype(np.float32)
        dy = rng.normal(size=(args.batch, out, out, 3)).astype(np.float32)
        x_torch = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
        dy_torch = torch.tensor(dy.transpose(0, 3, 1, 2).copy())
        mode = "bilinear" if interpolation == "bilinear" else "nearest-exact"
        corners = False if interpolation == "bilinear" else None

        def ours(layer=layer, x=x, dy=dy):
            _, cache = layer.forward({}, x, None, True, None)
            layer.backward({}, cache, dy)

        def theirs(x_torch=x_torch, dy_torch=dy_torch, mode=mode, corners=corners, out=out):
            y = F.interpolate(x_torch, size=(out, out), mode=mode, align_corners=corners)
            y.backward(dy_torch)
            x_torch.grad = None

        times: dict[str, list[float]] = {"ours": [], "torch": []}
        for _ in range(args.rounds + 1):  # the first round warms up
            for name, function in (("ours", ours), ("torch", theirs)):
                started = time.perf_counter()
                function()
                times[name].append(time.perf_counter() - started)
        mine, torch_time = min(times["ours"][1:]), min(times["torch"][1:])
        case = f"{interpolation} {size}->{out}"
        print(f"{case:<22} {mine * 1e3:>11.2f} {torch_time * 1e3:>9.2f} {mine / torch_time:>6.2f}")


if __name__ == "__main__":
    main()
