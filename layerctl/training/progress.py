"""What `train` shows while it runs: a rich progress bar on a terminal, one line per epoch
otherwise (CI logs), nothing with --quiet; and at the end the best epoch and a loss curve."""

from __future__ import annotations

import math
import sys
import time

SPARK = "▁▂▃▄▅▆▇█"


def format_logs(logs: dict[str, float]) -> str:
    return " - ".join(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}"
                      for k, v in logs.items() if k != "epoch")


class QuietReporter:
    def epoch_begin(self, epoch, epochs, steps, done):
        pass

    def step(self, done, loss):
        pass

    def epoch_end(self, epoch, logs):
        pass

    def close(self):
        pass


class LineReporter(QuietReporter):
    """One line per epoch, as `Epoch 3/20 - 0.41s - loss: 0.1234 - val_loss: ...`."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.started = 0.0

    def epoch_begin(self, epoch, epochs, steps, done):
        self.epochs, self.started = epochs, time.perf_counter()

    def epoch_end(self, epoch, logs):
        elapsed = time.perf_counter() - self.started
        print(f"Epoch {epoch + 1}/{self.epochs} - {elapsed:.2f}s - {format_logs(logs)}",
              file=self.stream, flush=True)


class RichReporter(LineReporter):
    """A live bar per epoch with the running loss; the epoch's line stays when it ends."""

    def __init__(self, console) -> None:
        super().__init__()
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.console = console
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeRemainingColumn(),
                                 TextColumn("{task.fields[loss]}"), console=console,
                                 transient=True)
        self.progress.start()
        self.task = None

    def epoch_begin(self, epoch, epochs, steps, done):
        super().epoch_begin(epoch, epochs, steps, done)
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(f"Epoch {epoch + 1}/{epochs}", total=steps,
                                           completed=done, loss="")

    def step(self, done, loss):
        self.progress.update(self.task, completed=done, loss=f"loss: {loss:.4f}")

    def epoch_end(self, epoch, logs):
        elapsed = time.perf_counter() - self.started
        self.console.print(f"Epoch {epoch + 1}/{self.epochs} - {elapsed:.2f}s - "
                           f"{format_logs(logs)}", highlight=False)

    def close(self):
        self.progress.stop()


def sparkline(values: list[float], width: int = 60) -> str:
    """A one-line curve of `values` (resampled to at most `width` cells)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    if len(values) > width:
        values = [values[int(i * len(values) / width)] for i in range(width)]
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    return "".join(SPARK[min(int((v - low) / span * (len(SPARK) - 1) + 0.5), len(SPARK) - 1)]
                   if math.isfinite(v) else " " for v in values)


def final_report(console, history: list[dict[str, float]], best_epoch: int | None,
                 monitor: str, weights_epoch: int | None = None) -> None:
    """The numbers of the epoch whose weights weights.npz holds, in a small table (and which
    epoch was best, when that is another one), then loss curves."""
    from rich.table import Table

    if not history:
        return
    if best_epoch is None:
        from layerctl.training.callbacks import direction

        sign = -1 if direction(monitor, "auto") == "max" else 1
        column = [sign * row.get(monitor, math.inf) for row in history]
        best_epoch = min(range(len(history)), key=lambda i: column[i])
    shown = best_epoch if weights_epoch is None else weights_epoch
    row = history[shown]
    title = f"weights.npz holds epoch {shown + 1} of {len(history)}"
    if shown == best_epoch:
        title += f", the best by {monitor}"
    else:
        best = history[best_epoch].get(monitor)
        title += (f"; the best by {monitor} was epoch {best_epoch + 1}"
                  + (f" ({best:.4f})" if isinstance(best, float) else ""))
    table = Table(title=title)
    for key in row:
        if key != "epoch":
            table.add_column(key, justify="right")
    table.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v)
                    for k, v in row.items() if k != "epoch"])
    console.print(table)
    for key in ("loss", "val_loss"):
        values = [r[key] for r in history if key in r]
        if values:
            console.print(f"{key:>8} {sparkline(values)}  {values[0]:.4f} → {values[-1]:.4f}",
                          highlight=False)
