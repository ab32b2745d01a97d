"""The run folder (DESIGN.md §6): resolved spec, weights, checkpoint and history, never lost.

    runs/<name>/spec.yaml        the spec as resolved (defaults filled in, names assigned)
    runs/<name>/weights.npz      the weights to use (Keras names and layouts)
    runs/<name>/checkpoint.npz   weights + optimizer slots + position + RNG states: `--resume`
    runs/<name>/history.csv      one row per epoch

Every file is written atomically. The checkpoint holds no pickles: arrays by name, plus one JSON
string (`state`) for the position in training, RNG states, callback states and history.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import stat
from dataclasses import dataclass, field
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


LOCK_NAME = ".layerctl-lock"
RUN_FILES = ("spec.yaml", "weights.npz", "checkpoint.npz", "history.csv")


class RunFolderError(SpecError):
    """The run folder cannot be used: another process owns it, or it is not a plain folder."""

    code = "LC401"


class RunLock:
    """An exclusive `flock` on the run folder's lock file, held for the life of a run.

    The folder's identity (device, inode) is remembered, so a folder swapped for another (or a
    symlink) during the run is noticed before anything is written into it.
    """

    def __init__(self, path: Path, created: bool, handle: int, identity: tuple[int, int]):
        self.path, self.created, self.handle, self.identity = path, created, handle, identity

    def check(self) -> None:
        try:
            info = os.lstat(self.path)
        except OSError:
            info = None
        if info is None or (info.st_dev, info.st_ino) != self.identity:
            raise RunFolderError(f"{self.path} was moved or replaced during the run; nothing "
                                 "more is written there")

    def release(self) -> None:
        """Remove the lock file and unlock (a process that opened the removed file sees its
        inode gone and opens again); a folder this run created and left empty is removed."""
        if self.handle < 0:
            return
        with contextlib.suppress(OSError, RunFolderError):
            self.check()
            os.unlink(self.path / LOCK_NAME)
            if self.created and not os.listdir(self.path):
                os.rmdir(self.path)
        os.close(self.handle)  # closing releases the flock
        self.handle = -1


def _claim(path: Path) -> RunLock:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISLNK(os.lstat(path).st_mode):
            raise RunFolderError(f"{path} is a symlink; a run folder must be a plain folder",
                                 hint="pass the real folder with --out")
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    lock_path = path / LOCK_NAME
    for _ in range(10):  # a lock file removed while we opened it is opened again
        handle = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(handle, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(handle)
            raise RunFolderError(f"{path} is in use by another `layerctl train` (process "
                                 f"{holder})", hint="wait for it, or choose --out") from None
        except BaseException:
            os.close(handle)
            raise
        with contextlib.suppress(FileNotFoundError):
            if os.fstat(handle).st_ino == os.stat(lock_path).st_ino:
                break
        os.close(handle)
    else:
        raise RunFolderError(f"{path}: cannot take the run folder's lock")
    os.ftruncate(handle, 0)
    os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):  # swapped between the check and mkdir
        os.close(handle)
        raise RunFolderError(f"{path} is not a plain folder")
    return RunLock(path, created, handle, (info.st_dev, info.st_ino))


@dataclass(frozen=True)
class RunFolder:
    path: Path
    owner: RunLock | None = field(default=None, compare=False, repr=False)

    def claim(self) -> RunFolder:
        """This folder, created if needed and locked for this process (RunFolderError when
        another process holds it or it is a symlink). Release with `owner.release()`."""
        return RunFolder(self.path, _claim(self.path))

    def check_owned(self) -> None:
        """Before writing: the claimed folder is still the one locked."""
        if self.owner is not None:
            self.owner.check()

    def run_files(self) -> list[Path]:
        """The run files present (any of them means the folder holds a run)."""
        return [self.path / name for name in RUN_FILES if os.path.lexists(self.path / name)]

    def clear(self) -> None:
        """Remove the run files (for --overwrite): nothing of the old run mixes with the new."""
        from layerctl.atomic import check_destination

        self.check_owned()
        files = self.run_files()
        for path in files:  # a symlink or device among them is refused before anything goes
            check_destination(path)
        for path in files:
            path.unlink()

    def write_weights(self, weights: dict[str, np.ndarray]) -> None:
        self.check_owned()
        save_npz(self.weights, weights)

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
        self.check_owned()
        text = "# Written by layerctl train: the spec as resolved.\n" + yaml.safe_dump(
            resolved, sort_keys=False)
        write_text_atomic(self.spec, text)

    def write_history(self, history: list[dict[str, float]]) -> None:
        self.check_owned()
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
    run.check_owned()
    arrays = {f"weights/{k}": v for k, v in weights.items()}
    arrays.update({f"optimizer/{k}": v for k, v in optimizer_state.items()})
    arrays.update(extra or {})
    arrays["state"] = np.array(json.dumps({"version": CHECKPOINT_VERSION, **state}))
    save_npz(run.checkpoint, arrays)


def finished_epochs(path: Path, epochs: int) -> int | None:
    """The number of epochs done when the checkpoint's run is finished (stopped early, or
    `epochs` done: a larger `epochs` continues it), else None. Reads only the `state` entry."""
    state = load_checkpoint(path, state_only=True).state
    done = state.get("epoch")
    finished = state.get("stopped_early") is True or (
        isinstance(done, int) and done >= epochs and state.get("batch") == 0)
    return len(state.get("history") or []) if finished else None


@dataclass
class Checkpoint:
    weights: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]
    arrays: dict[str, np.ndarray]
    state: dict[str, Any]


def load_checkpoint(path: Path, state_only: bool = False) -> Checkpoint:
    arrays = read_npz(path, only=("state",) if state_only else None)
    if "state" not in arrays:
        raise WeightsError("not a layerctl checkpoint (no `state` entry)", Location(str(path)))
    try:
        state = json.loads(str(arrays.pop("state")))
    except (json.JSONDecodeError, RecursionError):
        raise WeightsError("the checkpoint's state is corrupt", Location(str(path))) from None
    if not isinstance(state, dict):
        raise WeightsError("the checkpoint's state is damaged (not a record)",
                           Location(str(path)))
    if state.get("version") != CHECKPOINT_VERSION:
        raise WeightsError(f"checkpoint version {state.get('version')} is not supported",
                           Location(str(path)))
    weights = {k.removeprefix("weights/"): v for k, v in arrays.items() if k.startswith("weights/")}
    optimizer = {k.removeprefix("optimizer/"): v for k, v in arrays.items()
                 if k.startswith("optimizer/")}
    rest = {k: v for k, v in arrays.items() if not k.startswith(("weights/", "optimizer/"))}
    return Checkpoint(weights, optimizer, rest, state)
