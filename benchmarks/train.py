"""One training epoch of an MLP and a small CNN through layerctl's real `fit`, against PyTorch.

    python benchmarks/train.py [--samples 60000] [--cnn-samples 60000] [--turn-seconds 0.5]
                               [--rounds 3]

Each engine trains in its own subprocess (so its peak RSS can be read): PyTorch (the oracle
extra's torch==2.13.0, CPU, eager, threads = NumPy's) trains the same architecture with the same
batch size and Adam, twice: with glibc's default allocator, and with the allocator settings
layerctl gives its own process (`layerctl/runtime.py`, here as glibc's MALLOC_* environment
variables), which make PyTorch 15-25 % faster too; the faster of the two is the reference. The
three take turns: each runs its epoch for `--turn-seconds` (to the end of a step) while the
others wait on a pipe, and only running time is counted. A shared machine's
speed drifts by tens of percent within a minute, so one whole epoch after the other measured the
drift as much as the code (single pairs of CNN epochs gave ratios from 0.82 to 1.40 in one
session); taking turns every half second puts both engines under the same conditions. A
2-second MLP epoch is still only a few turns, so each model runs `--rounds` times. Printed: the
median round's seconds per epoch, its layerctl/PyTorch time ratio (targets: MLP ≤ 0.9, CNN ≤
1.25) with the range over rounds, and peak RSS against the data plus weights (target ≤ 2×).

Then the whole command, as a user runs it: `layerctl train` on the same data saved as an .npz,
one epoch, process start to exit, less the start-up and spec reading that `layerctl shapes`
also pays (measured right after); its ratio is against the median round's best PyTorch epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# layerctl.runtime.tune_allocator's mallopt settings, as glibc reads them from the environment
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(512 << 20),
                 "MALLOC_TOP_PAD_": str(64 << 20)}
# engine -> (child, extra environment)
ENGINES = {"layerctl": ("layerctl", {}), "torch": ("torch", {}),
           "torch_tuned": ("torch", ALLOCATOR_ENV)}


class Turns:
    """A child's side of taking turns: after the first step that ends `length` seconds into its
    turn it reports and waits for the parent's next "go"; time spent waiting is not counted."""

    def __init__(self, length: float) -> None:
        self.length, self.seconds = length, 0.0
        print("ready", flush=True)
        self._wait()

    def step(self) -> None:
        ran = time.perf_counter() - self._since
        if ran >= self.length:
            self.seconds += ran
            print("turn", flush=True)
            self._wait()

    def finish(self) -> float:
        """Total running seconds, the last (partial) turn included."""
        return self.seconds + time.perf_counter() - self._since

    def _wait(self) -> None:
        if sys.stdin.readline().strip() != "go":
            sys.exit("benchmark child: the parent went away")
        self._since = time.perf_counter()


def synthetic(kind: str, samples: int):
    import numpy as np

    rng = np.random.default_rng(0)
    shape = (samples, 784) if kind == "mlp" else (samples, 28, 28, 1)
    x = rng.random(shape, dtype=np.float32)
    y = rng.integers(0, 10, samples)
    return x, y


def run_layerctl(kind: str, samples: int, turn_seconds: float) -> dict:
    import numpy as np
    from common import CNN, MLP, build

    from layerctl.data import Dataset
    from layerctl.training.fit import fit
    from layerctl.training.progress import QuietReporter
    from layerctl.training.runs import RunFolder
    from layerctl.training.spec import TrainSpec

    class TurnTakingReporter(QuietReporter):
        def step(self, done, loss):
            turns.step()

    x, y = synthetic(kind, samples)
    spec, graph = build(MLP if kind == "mlp" else CNN)
    batch = 128 if kind == "mlp" else 64
    train_spec = TrainSpec(batch_size=batch, epochs=1, shuffle=True, seed=0)
    with tempfile.TemporaryDirectory() as folder:
        run = RunFolder(Path(folder))
        turns = Turns(turn_seconds)
        fit(graph, spec.compile, train_spec, Dataset(x, y, kind), None, run,
            TurnTakingReporter(), rng=np.random.default_rng(0))
        seconds = turns.finish()
    return {"seconds": seconds, "data_bytes": x.nbytes + y.nbytes,
            "weight_bytes": graph.trainable.nbytes + graph.frozen.nbytes}


def run_torch(kind: str, samples: int, threads: int, turn_seconds: float) -> dict:
    import torch

    torch.set_num_threads(threads)
    x, y = synthetic(kind, samples)
    if kind == "mlp":
        model = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(),
                                    torch.nn.Linear(512, 256), torch.nn.ReLU(),
                                    torch.nn.Linear(256, 10))
        inputs, batch = torch.from_numpy(x), 128
    else:
        model = torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(64 * 7 * 7, 128), torch.nn.ReLU(),
            torch.nn.Linear(128, 10))
        inputs, batch = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), 64
    labels = torch.from_numpy(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()
    turns = Turns(turn_seconds)
    order = torch.randperm(samples)
    for start in range(0, samples, batch):
        index = order[start:start + batch]
        optimizer.zero_grad()
        loss = loss_fn(model(inputs[index]), labels[index])
        loss.backward()
        optimizer.step()
        turns.step()
    return {"seconds": turns.finish()}


def child(args) -> None:
    if args.engine == "layerctl":
        from layerctl.runtime import configure_blas

        configure_blas()  # as `layerctl train` does, before NumPy loads
    sys.path.insert(0, str(HERE))
    result = (run_layerctl(args.kind, args.samples, args.turn_seconds) if args.engine == "layerctl"
              else run_torch(args.kind, args.samples, args.threads, args.turn_seconds))
    result["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(result), flush=True)


def measure_taking_turns(kind: str, samples: int, threads: int, turn_seconds: float) -> dict:
    """Both engines' epochs, run in alternating turns (which engine goes first alternates too);
    each engine's result as its child reports it."""
    children = {
        engine: subprocess.Popen(
            [sys.executable, __file__, "--child", child, "--kind", kind, "--samples",
             str(samples), "--threads", str(threads), "--turn-seconds", str(turn_seconds)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, **extra})
        for engine, (child, extra) in ENGINES.items()}
    for engine, child_process in children.items():
        _expect(child_process, engine, "ready")
    results: dict[str, dict] = {}
    turn = 0
    while len(results) < len(children):
        engines = [engine for engine in children if engine not in results]
        for engine in engines if turn % 2 == 0 else engines[::-1]:
            child_process = children[engine]
            child_process.stdin.write("go\n")
            child_process.stdin.flush()
            line = _expect(child_process, engine)
            if line != "turn":
                results[engine] = json.loads(line)
                child_process.stdin.close()
                child_process.wait()
        turn += 1
    return results


def whole_command_seconds(kind: str, samples: int) -> dict:
    """`layerctl train` (one epoch, the same data in an .npz) timed from process start to exit,
    and `layerctl shapes` on the same spec: the start-up and spec reading both pay."""
    import numpy as np
    from common import CNN, MLP

    batch = 128 if kind == "mlp" else 64
    spec = (MLP if kind == "mlp" else CNN) + (
        f"train: {{batch_size: {batch}, epochs: 1, seed: 0}}\n")
    with tempfile.TemporaryDirectory() as folder:
        spec_path, data = Path(folder, "bench.yaml"), Path(folder, "data.npz")
        spec_path.write_text(spec)
        x, y = synthetic(kind, samples)
        np.savez(data, x=x, y=y)
        command = [sys.executable, "-m", "layerctl"]

        def timed(*arguments: str) -> float:
            started = time.perf_counter()
            subprocess.run([*command, *arguments], check=True, cwd=folder,
                           stdout=subprocess.DEVNULL)
            return time.perf_counter() - started

        train = timed("train", str(spec_path), "--data", str(data), "-q", "--out",
                      str(Path(folder, "run")))
        shapes = timed("shapes", str(spec_path))
    return {"train": train, "shapes": shapes, "epoch": train - shapes}


def _expect(child_process: subprocess.Popen, engine: str, wanted: str | None = None) -> str:
    line = child_process.stdout.readline().strip()
    if not line or (wanted and line != wanted):
        child_process.kill()
        sys.exit(f"the {engine} benchmark child failed (said {line!r}); its error is above")
    return line


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--cnn-samples", type=int, default=60_000)
    parser.add_argument("--child", choices=["layerctl", "torch"])
    parser.add_argument("--kind", choices=["mlp", "cnn"])
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--turn-seconds", type=float, default=0.5,
                        help="how long each engine runs per turn")
    parser.add_argument("--rounds", type=int, default=3,
                        help="epochs per engine and model; the median ratio is printed")
    args = parser.parse_args()
    if args.child:
        args.engine = args.child
        child(args)
        return
    sys.path.insert(0, str(HERE))
    from common import numpy_threads

    threads = numpy_threads()
    print(f"NumPy BLAS threads: {threads} (PyTorch uses the same)")
    targets = {"mlp": 0.9, "cnn": 1.25}
    for kind, samples in (("mlp", args.samples), ("cnn", args.cnn_samples)):
        rounds = [measure_taking_turns(kind, samples, threads, args.turn_seconds)
                  for _ in range(args.rounds)]
        for r in rounds:
            r["best_torch"] = min(r["torch"]["seconds"], r["torch_tuned"]["seconds"])
        ratios = sorted(r["layerctl"]["seconds"] / r["best_torch"] for r in rounds)
        ratio = ratios[len(ratios) // 2]
        median = next(r for r in rounds if r["layerctl"]["seconds"] / r["best_torch"] == ratio)
        ours = median["layerctl"]
        peak_rss = max(r["layerctl"]["peak_rss"] for r in rounds)
        budget = ours["data_bytes"] + ours["weight_bytes"]
        spread = f" (rounds {ratios[0]:.2f}–{ratios[-1]:.2f})" if len(ratios) > 1 else ""
        print(f"{kind.upper()}: {samples} samples, one epoch: layerctl {ours['seconds']:.2f} s, "
              f"PyTorch {median['torch']['seconds']:.2f} s (default allocator) / "
              f"{median['torch_tuned']['seconds']:.2f} s (layerctl's allocator settings), "
              f"ratio to the faster {ratio:.2f}{spread} (target ≤ {targets[kind]}); peak RSS "
              f"{peak_rss / 2**20:.0f} MiB = {peak_rss / budget:.2f}× data+weights "
              f"({budget / 2**20:.0f} MiB; target ≤ 2)")
        command = whole_command_seconds(kind, samples)
        print(f"{kind.upper()}: the whole `layerctl train` command, one epoch: "
              f"{command['train']:.2f} s less {command['shapes']:.2f} s of start-up = "
              f"{command['epoch']:.2f} s, ratio {command['epoch'] / median['best_torch']:.2f} "
              "to the median round's faster PyTorch")


if __name__ == "__main__":
    main()
