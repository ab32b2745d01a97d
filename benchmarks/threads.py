"""Default threads against one thread, for the whole `layerctl train` command, idle and busy.

    python benchmarks/threads.py [--rounds 3] [--only digits_cnn,bench_mlp] [--conditions idle,busy]

Each case is a real `layerctl train` run (process start to exit) on a bundled spec or on one of
the benchmark models of `benchmarks/common.py`, for a bounded number of epochs and samples. It
runs with the default settings and with one thread forced (OPENBLAS_NUM_THREADS=1
LAYERCTL_NUM_THREADS=1), the two alternating (which goes first alternates too), `--rounds`
times each, on an idle machine and with another process busy on one core (a Python busy loop
pinned to the last core this process may use). Printed per case and condition: the median
seconds of each setting and the ratio default / one thread, median and range over the rounds
(target: <= 1.0 everywhere), with the load average (this machine is shared) before each case.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from common import CNN, LSTM, MLP  # noqa: E402

ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "LAYERCTL_NUM_THREADS": "1"}
# Variables that choose threads: cleared for the default runs, so the defaults are layerctl's.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "LAYERCTL_NUM_THREADS", "OMP_NUM_THREADS",
                    "OPENBLAS_THREAD_TIMEOUT")


def benchmark_spec(text: str, batch_size: int) -> str:
    return text + f"train: {{batch_size: {batch_size}, epochs: 1, seed: 0}}\n"


def write_data(path: Path, shape: tuple, classes: int = 10) -> None:
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.random(shape, dtype=np.float32),
             y=rng.integers(0, classes, shape[0]))


def cases(work: Path) -> dict[str, list[str]]:
    """Each case's `layerctl train` arguments (the run folder is added per run)."""
    lang = work / "lang.npz"
    subprocess.run([sys.executable, "-m", "layerctl", "pad", "--dataset", "languages", "--level",
                    "char", "--maxlen", "16", "-o", str(lang)], check=True, cwd=ROOT,
                   capture_output=True)
    benchmarks = {"bench_mlp": (MLP, 128, (12800, 784)), "bench_cnn": (CNN, 64, (1920, 28, 28, 1)),
                  "bench_lstm": (LSTM, 64, (1280, 100, 32))}
    made = {}
    for name, (text, batch, shape) in benchmarks.items():
        (work / f"{name}.yaml").write_text(benchmark_spec(text, batch))
        write_data(work / f"{name}.npz", shape)
        made[name] = [str(work / f"{name}.yaml"), "--data", str(work / f"{name}.npz")]
    return {
        "digits_cnn": ["specs/digits_cnn.yaml", "--epochs", "5"],
        "digits_mlp": ["specs/digits_mlp.yaml", "--epochs", "10"],
        "text_lstm": ["specs/text_lstm.yaml", "--data", str(lang), "--epochs", "3"],
        "text_bigru": ["specs/text_bigru.yaml", "--data", str(lang), "--epochs", "2"],
        **made,
    }


def run_seconds(arguments: list[str], environment: dict, out: Path) -> float:
    command = [sys.executable, "-m", "layerctl", "train", *arguments, "--out", str(out),
               "--overwrite", "-q"]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env=environment)
    return time.perf_counter() - started


def environments() -> dict[str, dict]:
    base = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    base["PYTHONPATH"] = str(ROOT) + os.pathsep + base.get("PYTHONPATH", "")
    return {"default": base, "one": {**base, **ONE_THREAD}}


def start_busy_loop() -> subprocess.Popen:
    core = max(os.sched_getaffinity(0))
    return subprocess.Popen([sys.executable, "-c", "while True: pass"],
                            preexec_fn=lambda: os.sched_setaffinity(0, {core}))


def measure(arguments: list[str], rounds: int, out: Path) -> dict[str, list[float]]:
    envs = environments()
    times = {"default": [], "one": []}
    for index in range(rounds):
        order = ("default", "one") if index % 2 == 0 else ("one", "default")
        for setting in order:
            times[setting].append(run_seconds(arguments, envs[setting], out))
    return times


def load() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated case names")
    parser.add_argument("--conditions", default="idle,busy")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        selected = cases(work)
        if options.only:
            selected = {name: selected[name] for name in options.only.split(",")}
        print(f"{'case':<12} {'machine':<5} {'load 1/5/15':<14} {'default s':>9} {'one s':>7} "
              f"{'ratio':>6}  range")
        for name, arguments in selected.items():
            for condition in options.conditions.split(","):
                busy = start_busy_loop() if condition == "busy" else None
                try:
                    before = load()
                    times = measure(arguments, options.rounds, work / "run")
                finally:
                    if busy is not None:
                        busy.kill()
                        busy.wait()
                ratios = [d / o for d, o in zip(times["default"], times["one"], strict=True)]
                print(f"{name:<12} {condition:<5} {before:<14} "
                      f"{statistics.median(times['default']):9.2f} "
                      f"{statistics.median(times['one']):7.2f} "
                      f"{statistics.median(ratios):6.2f}  {min(ratios):.2f}-{max(ratios):.2f}",
                      flush=True)


if __name__ == "__main__":
    main()
