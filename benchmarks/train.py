"""One training epoch of an MLP and a small CNN through layerctl's real `fit`, against PyTorch.

    python benchmarks/train.py [--samples 60000] [--cnn-samples 60000] [--repeats 3]

Each run happens in its own subprocess so its peak RSS can be read. PyTorch (the oracle extra's
torch==2.13.0, CPU, eager, threads = NumPy's) trains the same architecture with the same batch
size and Adam. The engines alternate, `--repeats` times each, because a shared machine's speed
drifts by tens of percent within a minute. Printed: median seconds per epoch, the
layerctl/PyTorch time ratio (targets: MLP ≤ 0.9, CNN ≤ 1.25), and peak RSS against the data plus
weights (target ≤ 2×).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def synthetic(kind: str, samples: int):
    import numpy as np

    rng = np.random.default_rng(0)
    shape = (samples, 784) if kind == "mlp" else (samples, 28, 28, 1)
    x = rng.random(shape, dtype=np.float32)
    y = rng.integers(0, 10, samples)
    return x, y


def run_layerctl(kind: str, samples: int) -> dict:
    import numpy as np
    from common import CNN, MLP, build

    from layerctl.data import Dataset
    from layerctl.training.fit import fit
    from layerctl.training.progress import QuietReporter
    from layerctl.training.runs import RunFolder
    from layerctl.training.spec import TrainSpec

    x, y = synthetic(kind, samples)
    spec, graph = build(MLP if kind == "mlp" else CNN)
    batch = 128 if kind == "mlp" else 64
    train_spec = TrainSpec(batch_size=batch, epochs=1, shuffle=True, seed=0)
    with tempfile.TemporaryDirectory() as folder:
        run = RunFolder(Path(folder))
        started = time.perf_counter()
        fit(graph, spec.compile, train_spec, Dataset(x, y, kind), None, run, QuietReporter(),
            rng=np.random.default_rng(0))
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "data_bytes": x.nbytes + y.nbytes,
            "weight_bytes": graph.trainable.nbytes + graph.frozen.nbytes}


def run_torch(kind: str, samples: int, threads: int) -> dict:
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
    started = time.perf_counter()
    order = torch.randperm(samples)
    for start in range(0, samples, batch):
        index = order[start:start + batch]
        optimizer.zero_grad()
        loss = loss_fn(model(inputs[index]), labels[index])
        loss.backward()
        optimizer.step()
    return {"seconds": time.perf_counter() - started}


def child(args) -> None:
    if args.engine == "layerctl":
        from layerctl.runtime import configure_blas

        configure_blas()  # as `layerctl train` does, before NumPy loads
    sys.path.insert(0, str(HERE))
    result = (run_layerctl(args.kind, args.samples) if args.engine == "layerctl"
              else run_torch(args.kind, args.samples, args.threads))
    result["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(result))


def measure(engine: str, kind: str, samples: int, threads: int) -> dict:
    command = [sys.executable, __file__, "--child", engine, "--kind", kind,
               "--samples", str(samples), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--cnn-samples", type=int, default=60_000)
    parser.add_argument("--child", choices=["layerctl", "torch"])
    parser.add_argument("--kind", choices=["mlp", "cnn"])
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per engine, interleaved; the medians are compared")
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
        ours, theirs = measure_pairs(kind, samples, threads, args.repeats)
        ratios = [a / b for a, b in zip(ours["runs"], theirs["runs"], strict=True)]
        ratio = ours["seconds"] / theirs["seconds"]
        budget = ours["data_bytes"] + ours["weight_bytes"]
        spread = (f" (pairs {min(ratios):.2f}–{max(ratios):.2f})" if len(ratios) > 1 else "")
        print(f"{kind.upper()}: {samples} samples, one epoch: layerctl {ours['seconds']:.2f} s, "
              f"PyTorch {theirs['seconds']:.2f} s, ratio {ratio:.2f}{spread} "
              f"(target ≤ {targets[kind]}); peak RSS {ours['peak_rss'] / 2**20:.0f} MiB = "
              f"{ours['peak_rss'] / budget:.2f}× data+weights ({budget / 2**20:.0f} MiB; "
              "target ≤ 2)")


def measure_pairs(kind: str, samples: int, threads: int, repeats: int) -> tuple[dict, dict]:
    """Run both engines `repeats` times, alternating which goes first, so a slow spell of a
    shared machine hits both alike; return each engine's median run (with all run times)."""
    runs: dict[str, list[dict]] = {"layerctl": [], "torch": []}
    for repeat in range(repeats):
        order = ("layerctl", "torch") if repeat % 2 == 0 else ("torch", "layerctl")
        for engine in order:
            runs[engine].append(measure(engine, kind, samples, threads))
    medians = []
    for engine in ("layerctl", "torch"):
        results = sorted(runs[engine], key=lambda result: result["seconds"])
        median = dict(results[len(results) // 2])
        median["runs"] = [result["seconds"] for result in runs[engine]]
        median["peak_rss"] = max(result["peak_rss"] for result in results)
        medians.append(median)
    return medians[0], medians[1]

if __name__ == "__main__":
    main()
