"""LSTM and GRU training steps: layerctl's NumPy kernels against torch.nn.LSTM / torch.nn.GRU.

LSTM(128) and GRU(128) over 100 steps, batch 64, input 32, float32, return_sequences (so the
backward pass receives a gradient at every step): one forward + backward per call. Each engine
runs in its own subprocess with the same thread count (`--threads`, default NumPy's BLAS
threads), and the two take turns as `benchmarks/train.py` does: each runs calls for `--turn-seconds`
(to the end of a call) while the other waits on a pipe, and only running time is counted, so both
see the same machine load. Before timing, the parent checks that both compute the same
gradients for the same weights. layerctl's child tunes its allocator as `layerctl train` does;
PyTorch runs twice, with glibc's default allocator and with those settings (MALLOC_* variables),
and the faster counts. Printed per layer: milliseconds per call and the ratio layerctl / torch
(lower is better; target ≤ 1.0), the median over `--rounds` with the range.

    python benchmarks/lstm.py [--calls 40] [--rounds 3] [--turn-seconds 0.5] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BATCH, STEPS, INPUT_DIM, UNITS = 64, 100, 32, 128
WARMUP = 3  # untimed calls first (torch's oneDNN kernels need a few to settle)
GATES = {"lstm": 4, "gru": 3}


def problem(cell: str):
    """x, Keras-layout weights and dy, the same in every process."""
    import numpy as np

    rng = np.random.default_rng(0)
    gates = GATES[cell]
    x = rng.standard_normal((BATCH, STEPS, INPUT_DIM)).astype(np.float32)
    kernel = rng.uniform(-0.1, 0.1, (INPUT_DIM, gates * UNITS)).astype(np.float32)
    recurrent = rng.uniform(-0.1, 0.1, (UNITS, gates * UNITS)).astype(np.float32)
    bias_shape = (2, 3 * UNITS) if cell == "gru" else (4 * UNITS,)
    bias = rng.uniform(-0.1, 0.1, bias_shape).astype(np.float32)
    dy = rng.standard_normal((BATCH, STEPS, UNITS)).astype(np.float32)
    return x, kernel, recurrent, bias, dy


def layerctl_step(cell: str):
    """A function running one forward + backward through layerctl's kernels; returns the
    gradients (dx, dkernel, drecurrent, dbias)."""
    if cell == "lstm":
        from layerctl.ops.lstm import lstm_backward as backward
        from layerctl.ops.lstm import lstm_forward as forward
    else:
        from layerctl.ops.gru import gru_backward as backward
        from layerctl.ops.gru import gru_forward as forward
    x, kernel, recurrent, bias, dy = problem(cell)

    def step():
        _, cache = forward(x, kernel, recurrent, bias, return_sequences=True)
        return backward(cache, dy)

    return step


def torch_step(cell: str):
    """The same step through torch.nn.LSTM / GRU; returns (dx, dW_ih, dW_hh) in Keras layouts."""
    import torch

    x, kernel, recurrent, bias, dy = problem(cell)
    module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(INPUT_DIM, UNITS,
                                                                 batch_first=True)
    with torch.no_grad():  # torch's gate orders are Keras's: i, f, g, o and r, z, n -> see below
        if cell == "lstm":
            module.weight_ih_l0.copy_(torch.from_numpy(kernel.T.copy()))
            module.weight_hh_l0.copy_(torch.from_numpy(recurrent.T.copy()))
            module.bias_ih_l0.copy_(torch.from_numpy(bias))
            module.bias_hh_l0.zero_()
        else:  # torch's GRU blocks are r, z, n; Keras's z, r, h (reset_after = torch's GRU)
            order = _torch_gru_order()
            module.weight_ih_l0.copy_(torch.from_numpy(kernel[:, order].T.copy()))
            module.weight_hh_l0.copy_(torch.from_numpy(recurrent[:, order].T.copy()))
            module.bias_ih_l0.copy_(torch.from_numpy(bias[0, order]))
            module.bias_hh_l0.copy_(torch.from_numpy(bias[1, order]))
    x_torch = torch.from_numpy(x).requires_grad_(True)
    dy_torch = torch.from_numpy(dy)

    def step():
        module.zero_grad()
        x_torch.grad = None
        y, _ = module(x_torch)
        y.backward(dy_torch)
        return x_torch.grad, module.weight_ih_l0.grad, module.weight_hh_l0.grad

    return step


def _torch_gru_order():
    import numpy as np

    blocks = np.arange(3 * UNITS).reshape(3, UNITS)
    return blocks[[1, 0, 2]].reshape(-1)  # torch block k = Keras block [r, z, h][k]


def check_same_gradients(cell: str) -> None:
    """Both engines computed the same gradients, so the timings compare the same work."""
    import numpy as np

    dx, dkernel, drecurrent, _ = layerctl_step(cell)()
    theirs = [t.numpy() for t in torch_step(cell)()]
    order = slice(None) if cell == "lstm" else np.argsort(_torch_gru_order())
    np.testing.assert_allclose(dx, theirs[0], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(dkernel, theirs[1].T[:, order], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(drecurrent, theirs[2].T[:, order], rtol=1e-3, atol=1e-4)


def child(engine: str, cell: str, calls: int, threads: int, turn_seconds: float) -> None:
    if engine == "layerctl":
        from layerctl.runtime import configure_blas

        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(threads)  # read once, when NumPy loads
        configure_blas()  # as `layerctl train` does, before NumPy loads
        from layerctl.runtime import tune_allocator

        tune_allocator()  # as `layerctl train` does (PyTorch runs with and without it too)
    else:
        import torch

        torch.set_num_threads(threads)
    sys.path.insert(0, str(HERE))
    from train import Turns

    step = layerctl_step(cell) if engine == "layerctl" else torch_step(cell)
    for _ in range(WARMUP):
        step()
    turns = Turns(turn_seconds)
    for _ in range(calls):
        step()
        turns.step()
    print(json.dumps({"seconds": turns.finish() / calls}), flush=True)


def measure_taking_turns(cell: str, calls: int, threads: int, turn_seconds: float) -> dict:
    """Seconds per call of each engine, the two running in alternating turns."""
    sys.path.insert(0, str(HERE))
    from train import ENGINES, _expect

    children = {
        engine: subprocess.Popen(
            [sys.executable, __file__, "--child", child, "--cell", cell, "--calls", str(calls),
             "--threads", str(threads), "--turn-seconds", str(turn_seconds)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, **extra})
        for engine, (child, extra) in ENGINES.items()}
    for engine, child_process in children.items():
        _expect(child_process, engine, "ready")
    results: dict[str, float] = {}
    turn = 0
    while len(results) < len(children):  # (torch twice: default allocator and layerctl's)
        engines = [engine for engine in children if engine not in results]
        for engine in engines if turn % 2 == 0 else engines[::-1]:
            child_process = children[engine]
            child_process.stdin.write("go\n")
            child_process.stdin.flush()
            line = _expect(child_process, engine)
            if line != "turn":
                results[engine] = json.loads(line)["seconds"]
                child_process.stdin.close()
                child_process.wait()
        turn += 1
    results["torch"] = min(results["torch"], results.pop("torch_tuned"))  # PyTorch at its best
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40, help="timed calls per engine and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--turn-seconds", type=float, default=0.5)
    parser.add_argument("--cells", default="lstm,gru")
    parser.add_argument("--child", choices=["layerctl", "torch"])
    parser.add_argument("--cell", choices=sorted(GATES))
    parser.add_argument("--threads", type=int, default=0,
                        help="BLAS / torch threads of both engines (default: NumPy's)")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.cell, args.calls, args.threads, args.turn_seconds)
        return
    sys.path.insert(0, str(HERE))
    from common import numpy_threads

    threads = args.threads or numpy_threads()
    print(f"threads: {threads} (NumPy's BLAS and PyTorch); "
          f"load average {os.getloadavg()[0]:.2f}")
    for cell in args.cells.split(","):
        check_same_gradients(cell)
        rounds = [measure_taking_turns(cell, args.calls, threads, args.turn_seconds)
                  for _ in range(args.rounds)]
        ratios = sorted(r["layerctl"] / r["torch"] for r in rounds)
        ratio = ratios[len(ratios) // 2]
        median = next(r for r in rounds if r["layerctl"] / r["torch"] == ratio)
        print(f"{cell.upper()}({UNITS}), {STEPS} steps, batch {BATCH}, input {INPUT_DIM}, fwd+bwd: "
              f"layerctl {median['layerctl'] * 1e3:.1f} ms, torch {median['torch'] * 1e3:.1f} ms, "
              f"ratio {ratio:.2f} (rounds {ratios[0]:.2f}–{ratios[-1]:.2f}; target ≤ 1.0); "
              f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
