"""The report page of a run (`runs/NAME/report.html`), the comparison of several runs, and the
evaluation page: self-contained HTML with inline SVG, no script and nothing fetched, so it reads
offline and in any browser. Pages are also well-formed XML (tests parse them).

`train` keeps the page current through `RunReporter`: after every epoch it rewrites the page
and its sidecar `report.json` (epoch timings, the best and weights epochs, the confusion
matrices) atomically, so the page can be open while the run goes on; `layerctl report RUN`
rebuilds the page from the run folder alone.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from layerctl.atomic import write_text_atomic
from layerctl.plot.charts import COLOURS, Marker, Series, confusion_svg, line_chart

SIDECAR = "report.json"
PAGE = "report.html"

CSS = """
body { font-family: DejaVu Sans, Helvetica, Arial, sans-serif; margin: 24px; color: #222;
       background: #fff; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
.lc-charts { display: flex; flex-wrap: wrap; gap: 12px; }
.lc-chart .lc-plot { fill: #fbfbfb; stroke: #bbb; }
.lc-chart .lc-grid { stroke: #e4e4e4; }
.lc-chart .lc-series { fill: none; stroke-width: 2; }
.lc-marker { stroke-width: 1.5; }
.lc-marker.best { stroke: #2ca02c; stroke-dasharray: 3 3; }
.lc-marker.weights { stroke: #111; }
.lc-title { font-size: 13px; font-weight: bold; }
.lc-tick, .lc-count { font-size: 11px; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f2f2f2; }
pre { background: #f6f6f6; padding: 10px; font-size: 12px; overflow-x: auto; }
.lc-legend span { display: inline-block; margin-right: 16px; font-size: 13px; }
.lc-note { color: #555; font-size: 13px; }
"""


def html_page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8"/>\n'
            f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n"
            "</body>\n</html>\n")


@dataclass
class RunRecord:
    """What a run's page shows, read from the run folder or kept by `RunReporter`."""

    name: str
    history: list[dict[str, float]]
    best_epoch: int | None = None  # 0-based
    weights_epoch: int | None = None  # 0-based
    monitor: str = "loss"
    epoch_seconds: list[float] = field(default_factory=list)
    confusions: dict[str, list] = field(default_factory=dict)
    class_names: dict[str, list[str]] = field(default_factory=dict)
    spec_text: str = ""
    status: str = "training"

    def sidecar(self) -> dict[str, Any]:
        return {"best_epoch": self.best_epoch, "weights_epoch": self.weights_epoch,
                "monitor": self.monitor, "epoch_seconds": self.epoch_seconds,
                "confusions": self.confusions, "status": self.status}


def best_epoch(history: list[dict[str, float]], monitor: str) -> int | None:
    """The epoch (0-based) with the best `monitor` (max for accuracies, as Keras's auto)."""
    from layerctl.training.callbacks import direction

    values = [(i, row[monitor]) for i, row in enumerate(history)
              if isinstance(row.get(monitor), float) and math.isfinite(row[monitor])]
    if not values:
        return None
    sign = -1 if direction(monitor, "auto") == "max" else 1
    return min(values, key=lambda item: sign * item[1])[0]


def read_history(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v != ""}
                for row in csv.DictReader(handle)]


def load_run(folder: str | Path) -> RunRecord:
    """The record of a run folder: history.csv, spec.yaml and report.json."""
    from layerctl.errors import DataError

    folder = Path(folder)
    if not (folder / "history.csv").exists() and not (folder / "spec.yaml").exists():
        raise DataError(f"{folder} is not a run folder (no history.csv or spec.yaml)",
                        hint="pass a folder `layerctl train` wrote, e.g. runs/NAME")
    history = read_history(folder / "history.csv")
    sidecar: dict[str, Any] = {}
    if (folder / SIDECAR).exists():
        try:
            sidecar = json.loads((folder / SIDECAR).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            sidecar = {}
    spec_text = (folder / "spec.yaml").read_text(encoding="utf-8") if (
        folder / "spec.yaml").exists() else ""
    monitor = sidecar.get("monitor") or ("val_loss" if history and "val_loss" in history[0]
                                         else "loss")
    record = RunRecord(folder.name, history, sidecar.get("best_epoch"),
                       sidecar.get("weights_epoch"), monitor,
                       list(sidecar.get("epoch_seconds") or []),
                       dict(sidecar.get("confusions") or {}), spec_text=spec_text,
                       status=sidecar.get("status", "finished"))
    if record.best_epoch is None:
        record.best_epoch = best_epoch(history, monitor)
    return record


def curve_keys(history: list[dict[str, float]]) -> list[tuple[str, str | None]]:
    """(training key, validation key) per chart, in history order; learning_rate last."""
    columns: list[str] = []
    for row in history:
        columns += [c for c in row if c not in columns and c != "epoch"]
    charts = []
    for column in columns:
        if column == "learning_rate":
            continue
        if column.startswith("val_") and column[4:] in columns:
            continue
        charts.append((column, f"val_{column}" if f"val_{column}" in columns else None))
    if "learning_rate" in columns:
        charts.append(("learning_rate", None))
    return charts


def _series(record: RunRecord, key: str, colour: str, dashed: bool) -> Series | None:
    rows = [row for row in record.history if key in row]
    if not rows:
        return None
    return Series(record.name, key, tuple(int(r.get("epoch", i + 1)) for i, r in
                                          enumerate(rows)),
                  tuple(float(r[key]) for r in rows), colour, dashed)


def _markers(record: RunRecord) -> list[Marker]:
    markers = []
    if record.best_epoch is not None:
        markers.append(Marker(record.best_epoch + 1, f"best epoch by {record.monitor}: "
                              f"{record.best_epoch + 1}", "best"))
    if record.weights_epoch is not None:
        markers.append(Marker(record.weights_epoch + 1, "weights.npz holds epoch "
                              f"{record.weights_epoch + 1}", "weights"))
    return markers


def curves_html(records: list[RunRecord]) -> str:
    keys: list[tuple[str, str | None]] = []
    for record in records:
        keys += [k for k in curve_keys(record.history) if k not in keys]
    charts = []
    for train_key, val_key in keys:
        series = []
        for i, record in enumerate(records):
            colour = COLOURS[i % len(COLOURS)]
            for key, dashed in ((train_key, False), (val_key, True)):
                found = _series(record, key, colour, dashed) if key else None
                if found is not None:
                    series.append(found)
        title = train_key if val_key is None else f"{train_key} (solid: training, dashed: " \
                                                  "validation)"
        markers = _markers(records[0]) if len(records) == 1 else []
        charts.append(line_chart(title, series, markers))
    return '<div class="lc-charts">\n' + "\n".join(charts) + "\n</div>"


def run_html(record: RunRecord, diagram: str) -> str:
    """The report page of one run."""
    done = len(record.history)
    parts = [f"<h1>Run {escape(record.name)}</h1>",
             f'<p class="lc-note">{escape(record.status)}: {done} epoch(s) in history.csv. '
             + _epochs_sentence(record) + "</p>", "<h2>Curves</h2>",
             '<p class="lc-note">green dashed line: the best epoch; black line: the epoch '
             "whose weights weights.npz holds.</p>", curves_html([record])]
    if record.history:
        parts += ["<h2>Last epoch</h2>", _table([record.history[-1]])]
    if record.confusions:
        parts.append("<h2>Confusion matrix (validation data, weights.npz)</h2>")
        for ref, matrix in record.confusions.items():
            labels = [str(i) for i in range(len(matrix))]
            parts.append(confusion_svg(matrix, labels, ref))
    parts += ["<h2>Model</h2>", diagram, "<h2>Timings</h2>", _timings(record),
              "<h2>Resolved spec</h2>", f"<pre>{escape(record.spec_text)}</pre>"]
    return html_page(f"{record.name}: report", "\n".join(parts))


def _epochs_sentence(record: RunRecord) -> str:
    words = []
    if record.best_epoch is not None:
        words.append(f"Best epoch by {escape(record.monitor)}: {record.best_epoch + 1}.")
    if record.weights_epoch is not None:
        words.append(f"weights.npz holds epoch {record.weights_epoch + 1}.")
    return " ".join(words)


def _table(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(row.get(c, ''))}</td>" for c in columns)
                   + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else escape(str(value))


def _timings(record: RunRecord) -> str:
    seconds = record.epoch_seconds
    if not seconds:
        return '<p class="lc-note">no timings recorded</p>'
    rows = [{"epoch": i + 1, "seconds": s} for i, s in enumerate(seconds)]
    total = f"<p>total: {sum(seconds):.2f} s over {len(seconds)} epoch(s)</p>"
    return total + _table(rows)


def compare_html(records: list[RunRecord]) -> str:
    legend = "".join(f'<span style="color: {COLOURS[i % len(COLOURS)]}">■ '
                     f"{escape(r.name)}</span>" for i, r in enumerate(records))
    rows = []
    for record in records:
        row: dict[str, Any] = {"run": record.name, "epochs": len(record.history)}
        if record.best_epoch is not None:
            row["best epoch"] = record.best_epoch + 1
            row.update({k: v for k, v in record.history[record.best_epoch].items()
                        if k != "epoch"})
        rows.append(row)
    body = [f"<h1>Comparison of {len(records)} runs</h1>",
            f'<p class="lc-legend">{legend}</p>', curves_html(records),
            "<h2>Best epochs</h2>", _table(rows)]
    return html_page("runs compared", "\n".join(body))


def evaluation_html(title: str, logs: dict[str, float], confusions: dict[str, list]) -> str:
    from layerctl.plot.confusion import per_class_scores

    parts = [f"<h1>{escape(title)}</h1>", _table([logs])]
    for ref, matrix in confusions.items():
        labels = [str(i) for i in range(len(matrix))]
        parts += [f"<h2>{escape(ref)}</h2>", confusion_svg(matrix, labels, ref)]
        scores = [{"class": label, **s} for label, s in zip(labels, per_class_scores(matrix),
                                                           strict=True)]
        parts.append(_table(scores))
    if not confusions:
        parts.append('<p class="lc-note">no classification output: no confusion matrix</p>')
    return html_page(title, "\n".join(parts))


class RunReporter:
    """Keeps `runs/NAME/report.html` current while `train` runs (see the module docstring)."""

    def __init__(self, run, plan, monitor: str, resume: bool = False) -> None:
        from layerctl.plot.svg import model_svg

        self.run, self.monitor = run, monitor
        self.diagram = model_svg(plan)
        previous = load_run(run.path) if resume and run.history.exists() else None
        self.epoch_seconds = previous.epoch_seconds if previous else []
        self.confusions: dict[str, list] = {}
        self.started = time.perf_counter()
        if not resume:  # a page left by a run this one --overwrites goes at once
            from layerctl.training.fit import FitResult

            self.write(FitResult(), "starting")

    def on_epoch_end(self, result) -> None:
        """After each epoch: the page with one more epoch (timings: wall time between pages)."""
        now = time.perf_counter()
        self.epoch_seconds = self.epoch_seconds[:len(result.history) - 1] + [now - self.started]
        self.started = now
        self.write(result, "training")

    def finish(self, result, confusions: dict[str, list]) -> None:
        self.confusions = confusions
        self.write(result, "interrupted" if result.interrupted else "finished")

    def write(self, result, status: str) -> None:
        history = list(result.history)
        best = result.best_epoch if result.best_epoch is not None else best_epoch(
            history, self.monitor)
        record = RunRecord(self.run.path.name, history, best, result.weights_epoch,
                           self.monitor, list(self.epoch_seconds), self.confusions,
                           spec_text=self.run.spec.read_text(encoding="utf-8")
                           if self.run.spec.exists() else "", status=status)
        self.run.check_owned()
        write_text_atomic(self.run.path / SIDECAR, json.dumps(record.sidecar(), indent=1))
        write_text_atomic(self.run.path / PAGE, run_html(record, self.diagram))
