"""Callbacks with Keras's rules: early stopping, best-checkpoint tracking, reduce-on-plateau.

Each callback is a small state machine fed the epoch's logs (`{"loss": …, "val_loss": …}`). Its
state is plain numbers (`state()` / `load_state()`), so a checkpoint can store it and a resumed
run decides exactly as an uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from layerctl.errors import DataError
from layerctl.training.spec import Checkpoint, EarlyStopping, ReduceLROnPlateau

MAXIMIZED = ("acc", "accuracy", "auc")  # Keras's "auto" mode picks max for these


def direction(monitor: str, mode: str) -> str:
    if mode != "auto":
        return mode
    return "max" if any(monitor.endswith(name) for name in MAXIMIZED) else "min"


@dataclass
class Monitor:
    """Tracks the best value of one history column (Keras's `_is_improvement`)."""

    name: str
    mode: str
    min_delta: float = 0.0
    best: float = field(default=math.nan)

    def value(self, logs: dict[str, float]) -> float:
        if self.name not in logs:
            raise DataError(
                f"callback monitors '{self.name}', which is not logged; available: "
                + ", ".join(logs),
                hint="add validation data for val_* monitors",
            )
        return logs[self.name]

    def improved(self, current: float) -> bool:
        if math.isnan(self.best):
            return not math.isnan(current)
        if self.mode == "max":
            return current - abs(self.min_delta) > self.best
        return current + abs(self.min_delta) < self.best


class EarlyStoppingCallback:
    def __init__(self, spec: EarlyStopping) -> None:
        self.spec = spec
        self.monitor = Monitor(spec.monitor, direction(spec.monitor, spec.mode), spec.min_delta)
        self.baseline = Monitor(
            spec.monitor,
            self.monitor.mode,
            spec.min_delta,
            math.nan if spec.baseline is None else spec.baseline,
        )
        self.wait = 0
        self.best_epoch = -1
        self.stopped_epoch = -1

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> tuple[bool, bool]:
        """(stop training?, are the current weights the best so far?)"""
        if epoch < self.spec.start_from_epoch:
            return False, False
        current = self.monitor.value(logs)
        self.wait += 1
        if self.monitor.improved(current):
            self.monitor.best, self.best_epoch = current, epoch
            # Keras restarts the patience only when the baseline is beaten too
            if self.spec.baseline is None or self.baseline.improved(current):
                self.wait = 0
            return False, True
        if self.wait >= self.spec.patience and epoch > 0:
            self.stopped_epoch = epoch
            return True, False
        return False, False

    def state(self) -> dict:
        return {"wait": self.wait, "best": self.monitor.best, "best_epoch": self.best_epoch}

    def load_state(self, state: dict) -> None:
        self.wait, self.monitor.best = state["wait"], state["best"]
        self.best_epoch = state["best_epoch"]


class CheckpointCallback:
    """Decides whether this epoch's weights become `weights.npz` (always, or when best)."""

    def __init__(self, spec: Checkpoint) -> None:
        self.spec = spec
        self.monitor = Monitor(spec.monitor, direction(spec.monitor, spec.mode))

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> bool:
        if not self.spec.save_best_only:
            return True
        current = self.monitor.value(logs)
        if self.monitor.improved(current):
            self.monitor.best = current
            return True
        return False

    def state(self) -> dict:
        return {"best": self.monitor.best}

    def load_state(self, state: dict) -> None:
        self.monitor.best = state["best"]


class ReduceLROnPlateauCallback:
    def __init__(self, spec: ReduceLROnPlateau) -> None:
        self.spec = spec
        self.monitor = Monitor(spec.monitor, direction(spec.monitor, spec.mode), spec.min_delta)
        self.wait = 0
        self.cooldown = 0

    def on_epoch_end(
        self, epoch: int, logs: dict[str, float], learning_rate: float
    ) -> float | None:
        """The new learning rate, or None to keep the current one."""
        current = self.monitor.value(logs)
        if self.cooldown > 0:
            self.cooldown -= 1
            self.wait = 0
        if self.monitor.improved(current):
            self.monitor.best = current
            self.wait = 0
            return None
        if self.cooldown > 0:
            return None
        self.wait += 1
        if self.wait < self.spec.patience:
            return None
        new_rate = max(learning_rate * self.spec.factor, self.spec.min_lr)
        self.cooldown, self.wait = self.spec.cooldown, 0
        return new_rate if new_rate < learning_rate else None

    def state(self) -> dict:
        return {"wait": self.wait, "cooldown": self.cooldown, "best": self.monitor.best}

    def load_state(self, state: dict) -> None:
        self.wait, self.cooldown, self.monitor.best = (
            state["wait"],
            state["cooldown"],
            state["best"],
        )
