"""Issue 13: `train` killed with SIGKILL at 20 random moments, then resumed, ends with exactly
the weights of an uninterrupted run.

Every file is written atomically and the checkpoint holds everything that decides what happens
next, so a kill at any moment (during start-up, a step, a checkpoint write, the history) loses at
most the work since the last checkpoint. The kills' moments come from a seeded generator; the
lock of a killed owner dies with it and its temporary files are removed by the next write.
"""

import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from harden import HANG, env, layerctl, tiny_project

from layerctl.atomic import TEMPORARY_MARK


def big_project(folder):
    spec = tiny_project(folder, epochs=12)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1)
    np.savez(folder / "data.npz", x=x, y=y)
    spec.write_text(spec.read_text().replace("batch_size: 8", "batch_size: 4"))
    return spec


def weights(path):
    with np.load(path) as archive:
        return {key: archive[key] for key in archive.files}


@pytest.mark.slow
def test_twenty_sigkills_then_resume_equal_an_uninterrupted_run(tmp_path):
    spec = big_project(tmp_path)
    began = time.monotonic()
    straight = layerctl("train", spec, "--out", "straight", "-q", cwd=tmp_path, timeout=600)
    whole_run = time.monotonic() - began
    assert straight.returncode == 0, straight.stderr
    run = tmp_path / "killed"
    moments = random.Random(13)
    # Kill moments scale with this machine's own uninterrupted run, so the 20 kills together
    # cover well under one run on a fast or a loaded machine alike (no fixed seconds).
    window = max(whole_run / 20, 0.05)
    outcomes = []
    for _ in range(20):
        started = (run / "checkpoint.npz").exists()
        args = ["--resume"] if started else ["--overwrite"]
        process = subprocess.Popen([sys.executable, "-m", "layerctl", "train", str(spec),
                                    "--out", str(run), "-q", *args], cwd=tmp_path, env=env(),
                                   stderr=subprocess.PIPE, text=True)
        time.sleep(moments.uniform(0.1, 1.0) * window)
        process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate(timeout=HANG)
        assert "Traceback" not in stderr, stderr
        outcomes.append(process.returncode)
    assert outcomes.count(-signal.SIGKILL) >= 15, outcomes  # most kills landed mid-run
    for _ in range(5):  # resume until done (a kill before the first checkpoint restarts)
        args = ["--resume"] if (run / "checkpoint.npz").exists() else ["--overwrite"]
        final = layerctl("train", spec, "--out", run, "-q", *args, cwd=tmp_path, timeout=600)
        assert final.returncode == 0, final.stderr
        if (run / "weights.npz").exists():
            break
    expected, got = weights(tmp_path / "straight" / "weights.npz"), weights(run / "weights.npz")
    assert expected.keys() == got.keys()
    for key in expected:
        assert expected[key].dtype == got[key].dtype
        assert expected[key].tobytes() == got[key].tobytes(), key
    assert (run / "history.csv").read_bytes() == (tmp_path / "straight" / "history.csv"
                                                  ).read_bytes()
    leftovers = [p.name for p in run.iterdir() if TEMPORARY_MARK in p.name]
    assert leftovers == [], leftovers
