"""The run folder (DESIGN.md §6): resolved spec, weights, checkpoint and history, never lost.

    runs/<name>/spec.yaml        the spec as resolved (defaults filled in, names assigned)
    runs/<name>/weights.npz      the weights to use (Keras names and layouts)
    runs/<name>/checkpoint.npz   weights + optimizer slots + position + RNG states: `--resume`
    runs/<name>/history.csv      one row per epoch

Every file is written atomically. The checkpoint holds no pickles: arrays by name, plus one JSON
string (`state`) for the position in training, RNG states, callback states and history.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from layerctl.atomic import write_text_atomic
from layerctl.errors import Location, SpecError, WeightsError
from layerctl.weights import read_npz, save_npz

CHECKPOINT_VERSION = 1
RUNS_FOLDER = Path("runs")


def default_run_path(name: str, spec_path: str) -> Path:
    """runs/<name>, refusing a name that would put the folder anywhere else (a spec's `name:`
    is validated; a name taken from the file's stem, like '.' from '..yaml', is checked here)."""
    from layerctl.layers.base import name_problem, shown_name

    reason = name_problem(name, forbidden="/\\")
    if reason is None and name in (".", ".."):
        reason = "it must not be '.' or '..'"
    if reason is not None:
        raise SpecError(f"model name {shown_name(name)} cannot name a run folder: {reason}",
                        Location(spec_path), "set `name:` in the spec, or pass --out")
    return RUNS_FOLDER / name


@dataclass(frozen=True)
class RunFolder:
    path: Path

    @property
    def spec(self) -> Path:
        return self.path / "spec.yaml"

    @property
    def weights(self) -> Path:
        return self.path / "weights.npz"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.npz"

    @property
    def history(self) -> Path:
        return self.path / "history.csv"

    def write_spec(self, resolved: dict[str, Any]) -> None:
        text = "# Written by layerctl train: the spec as resolved.\n" + yaml.safe_dump(
            resolved, sort_keys=False)
        write_text_atomic(self.spec, text)

    def write_history(self, history: list[dict[str, float]]) -> None:
        columns: list[str] = []
        for row in history:
            columns += [c for c in row if c not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in history:
            writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
        write_text_atomic(self.history, buffer.getvalue())


def generator_state(generator: np.random.Generator) -> dict[str, Any]:
    return generator.bit_generator.state


def restore_generator(state: dict[str, Any]) -> np.random.Generator:
    generator = np.random.default_rng()
    generator.bit_generator.state = state
    return generator


def save_checkpoint(run: RunFolder, weights: dict[str, np.ndarray],
                    optimizer_state: dict[str, np.ndarray], state: dict[str, Any],
                    extra: dict[str, np.ndarray] | None = None) -> None:
    arrays = {f"weights/{k}": v for k, v in weights.items()}
    arrays.update({f"optimizer/{k}": v for k, v in optimizer_state.items()})
    arrays.update(extra or {})
    arrays["state"] = np.array(json.dumps({"version": CHECKPOINT_VERSION, **state}))
    save_npz(run.checkpoint, arrays)


@dataclass
class Checkpoint:
    weights: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]
    arrays: dict[str, np.ndarray]
    state: dict[str, Any]


def load_checkpoint(path: Path) -> Checkpoint:
    arrays = read_npz(path)
    if "state" not in arrays:
        raise WeightsError("not a layerctl checkpoint (no `state` entry)", Location(str(path)))
    try:
        state = json.loads(str(arrays.pop("state")))
    except json.JSONDecodeError:
        raise WeightsError("the checkpoint's state is corrupt", Location(str(path))) from None
    if state.get("version") != CHECKPOINT_VERSION:
        raise WeightsError(f"checkpoint version {state.get('version')} is not supported",
                           Location(str(path)))
    weights = {k.removeprefix("weights/"): v for k, v in arrays.items() if k.startswith("weights/")}
    optimizer = {k.removeprefix("optimizer/"): v for k, v in arrays.items()
                 if k.startswith("optimizer/")}
    rest = {k: v for k, v in arrays.items() if not k.startswith(("weights/", "optimizer/"))}
    return Checkpoint(weights, optimizer, rest, state)
