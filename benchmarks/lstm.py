"""LSTM forward+backward: layerctl's NumPy kernels against torch.nn.LSTM, measured in the same run.

LSTM(128) over 100 steps, batch 64, input 32, float32, return_sequences (so the backward pass
receives a gradient at every step). torch and NumPy's BLAS both get --threads threads (default 2).
The two are timed in alternating rounds, so both see similar machine load; each round starts after
a pause (idle BLAS/OpenMP threads of the other library stop spinning) and warm-up calls (torch's
oneDNN LSTM needs a few to settle). Prints medians and the ratio layerctl / torch (lower is
better), after checking that both computed the same gradients.

    python benchmarks/lstm.py [--rounds 3] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

BATCH, STEPS, INPUT_DIM, UNITS = 64, 100, 32, 128
WARMUP = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per round")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    # BLAS reads its thread count once, at import: set it before NumPy is imported.
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    import blas_first  # noqa: F401 - as the layerctl command does
    import numpy as np
    import torch

    from layerctl.ops.lstm import lstm_backward, lstm_forward

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, STEPS, INPUT_DIM)).astype(np.float32)
    kernel = rng.uniform(-0.1, 0.1, (INPUT_DIM, 4 * UNITS)).astype(np.float32)
    recurrent = rng.uniform(-0.1, 0.1, (UNITS, 4 * UNITS)).astype(np.float32)
    bias = rng.uniform(-0.1, 0.1, 4 * UNITS).astype(np.float32)
    dy = rng.standard_normal((BATCH, STEPS, UNITS)).astype(np.float32)

    lstm = torch.nn.LSTM(INPUT_DIM, UNITS, batch_first=True)
    with torch.no_grad():  # the same weights: torch's gate order i, f, g, o is Keras's
        lstm.weight_ih_l0.copy_(torch.from_numpy(kernel.T.copy()))
        lstm.weight_hh_l0.copy_(torch.from_numpy(recurrent.T.copy()))
        lstm.bias_ih_l0.copy_(torch.from_numpy(bias))
        lstm.bias_hh_l0.zero_()
    x_torch = torch.from_numpy(x).requires_grad_(True)
    dy_torch = torch.from_numpy(dy)

    def ours():
        _, cache = lstm_forward(x, kernel, recurrent, bias, return_sequences=True)
        return lstm_backward(cache, dy)

    def theirs() -> None:
        lstm.zero_grad()
        x_torch.grad = None
        y, _ = lstm(x_torch)
        y.backward(dy_torch)

    times: dict[str, list[float]] = {"ours": [], "theirs": []}
    for _ in range(args.rounds):
        for name, step in (("ours", ours), ("theirs", theirs)):
            time.sleep(0.5)
            for run in range(WARMUP + args.repeats):
                start = time.perf_counter()
                step()
                if run >= WARMUP:
                    times[name].append(time.perf_counter() - start)

    # Both computed the same gradients, so the timings compare the same work.
    dx, dkernel, drecurrent, _ = ours()
    np.testing.assert_allclose(dx, x_torch.grad.numpy(), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(dkernel, lstm.weight_ih_l0.grad.numpy().T, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(drecurrent, lstm.weight_hh_l0.grad.numpy().T, rtol=1e-3, atol=1e-4)

    ms = {name: (statistics.median(t) * 1e3, min(t) * 1e3) for name, t in times.items()}
    print(f"LSTM({UNITS}), {STEPS} steps, batch {BATCH}, input {INPUT_DIM}, float32, fwd+bwd")
    calls = args.rounds * args.repeats
    load = os.getloadavg()[0]
    print(f"threads {args.threads}, {calls} timed calls each, load average {load:.2f}")
    for label, name in (("layerctl (NumPy)", "ours"), ("torch.nn.LSTM   ", "theirs")):
        print(f"  {label}: {ms[name][0]:7.1f} ms median, {ms[name][1]:7.1f} ms min")
    print(f"  ratio layerctl / torch: {ms['ours'][0] / ms['theirs'][0]:.2f} (medians)")


if __name__ == "__main__":
    main()
