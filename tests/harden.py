"""Helpers of the hardening tests (tests/test_harden_*.py): run the real command in a
subprocess and check that a refusal is one line on stderr, the right exit code, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HANG = 60  # seconds: only a hang detector (a hang is minutes), never a speed assertion

TINY_SPEC = """\
name: tiny
input_shape: [4]
layers:
  - {type: Dense, units: 5, activation: relu}
  - {type: Dense, units: 3, activation: softmax}
compile:
  loss: sparse_categorical_crossentropy
  optimizer: {type: adam, learning_rate: 0.01}
train:
  data: data.npz
  batch_size: 8
  epochs: 3
  seed: 1
"""


def env() -> dict[str, str]:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = str(ROOT) + os.pathsep + environment.get("PYTHONPATH", "")
    environment.pop("COLUMNS", None)
    return environment


def layerctl(*args, cwd: Path, stdin=None, timeout: float = HANG) -> subprocess.CompletedProcess:
    """`python -m layerctl ARGS` in `cwd`; a TimeoutExpired means it hung."""
    return subprocess.run([sys.executable, "-m", "layerctl", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env(),
                          stdin=subprocess.DEVNULL if stdin is None else stdin)


def assert_refused(result: subprocess.CompletedProcess, *needles: str, code: int = 1) -> str:
    """The command failed with `code` and exactly one stderr line holding every needle."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert result.returncode == code, (result.returncode, result.stderr)
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def tiny_project(folder: Path, epochs: int = 3) -> Path:
    """A spec with its data in `folder`; returns the spec path."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1)
    np.savez(folder / "data.npz", x=x, y=y)
    spec = folder / "tiny.yaml"
    spec.write_text(TINY_SPEC.replace("epochs: 3", f"epochs: {epochs}"))
    return spec


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every regular file under `folder` by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}
