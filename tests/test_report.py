"""Report pages: `train` writes runs/NAME/report.html after every epoch (well-formed, holding
exactly history.csv's numbers, the best and weights epochs, the confusion matrix of the
validation data with weights.npz), `layerctl report` rebuilds and compares, `evaluate --report`
adds per-class scores; and a real browser (headless Chromium) renders every page."""

from __future__ import annotations

import csv
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from layerctl.cli import cli
from layerctl.plot.confusion import confusion_matrix, per_class_scores
from layerctl.training.losses import BinaryCrossentropy, SparseCategoricalCrossentropy

ROOT = Path(__file__).resolve().parents[1]
SVG = "{http://www.w3.org/2000/svg}"

SPEC = """
name: small
input_shape: [8, 8, 1]
layers:
  - {type: Flatten}
  - {type: Dense, units: 16, activation: relu}
  - {type: Dense, units: 10, activation: softmax}
compile:
  loss: sparse_categorical_crossentropy
  optimizer: {type: adam, learning_rate: 0.01}
  metrics: [accuracy]
train:
  data: {dataset: digits}
  validation: {split: 0.2}
  batch_size: 64
  epochs: 3
  seed: SEED
  callbacks:
    - {type: early_stopping, monitor: val_accuracy, patience: 5, restore_best_weights: true}
"""


def parse_page(path: Path) -> ET.Element:
    return ET.fromstring(path.read_text(encoding="utf-8"))  # the doctype included


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def plotted(page: ET.Element, run: str | None = None) -> dict[tuple[str, str], list]:
    """{(run, key): [(epoch, value), ...]} of every series drawn."""
    series = {}
    for line in page.iter(f"{SVG}polyline"):
        if "lc-series" in line.get("class", "") and (run is None or line.get("data-run") == run):
            epochs = [int(e) for e in line.get("data-epochs").split()]
            values = [float(v) for v in line.get("data-values").split()]
            key = line.get("data-run"), line.get("data-key")
            series[key] = list(zip(epochs, values, strict=True))
    return series


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two trained runs (seeds 0 and 1) and a copy of run 0's page after each epoch."""
    from layerctl.plot import page as page_module

    folder = tmp_path_factory.mktemp("report")
    pages: list[str] = []
    original = page_module.RunReporter.on_epoch_end

    def on_epoch_end(self, result):
        original(self, result)
        if self.run.path.name == "seed0":
            pages.append((self.run.path / "report.html").read_text())

    page_module.RunReporter.on_epoch_end = on_epoch_end
    try:
        for seed in (0, 1):
            spec = folder / f"small{seed}.yaml"
            spec.write_text(SPEC.replace("SEED", str(seed)))
            result = CliRunner().invoke(cli, ["train", str(spec), "--out",
                                              str(folder / f"seed{seed}"), "-q"])
            assert result.exit_code == 0, result.output
    finally:
        page_module.RunReporter.on_epoch_end = original
    return folder, pages


def test_report_page_holds_history_csv(runs):
    folder, _ = runs
    run = folder / "seed0"
    page = parse_page(run / "report.html")
    history = read_csv(run / "history.csv")
    series = plotted(page)
    keys = [k for k in history[0] if k != "epoch"]
    assert {"loss", "val_loss", "accuracy", "val_accuracy", "learning_rate"} <= set(keys)
    for key in keys:
        assert series["seed0", key] == [(int(row["epoch"]), float(row[key])) for row in history]


def test_report_marks_best_and_weights_epochs(runs):
    folder, _ = runs
    run = folder / "seed0"
    history = read_csv(run / "history.csv")
    best = max(range(len(history)), key=lambda i: float(history[i]["val_accuracy"]))
    markers = {m.get("class").split()[1]: int(m.get("data-epoch"))
               for m in parse_page(run / "report.html").iter(f"{SVG}line")
               if "lc-marker" in m.get("class", "")}
    assert markers == {"best": best + 1, "weights": best + 1}  # restore_best_weights


def test_report_confusion_matrix_is_the_saved_weights_on_validation(runs):
    from layerctl.commands.common import load_spec_and_plan
    from layerctl.commands.train import load_training_data
    from layerctl.graph import Graph
    from layerctl.weights import load_weights_into

    folder, _ = runs
    run = folder / "seed0"
    page = parse_page(run / "report.html")
    cells = {(int(c.get("data-true")), int(c.get("data-predicted"))): int(c.get("data-count"))
             for c in page.iter(f"{SVG}rect") if c.get("class") == "lc-cell"}
    spec, plan = load_spec_and_plan(str(folder / "small0.yaml"))
    _, validation = load_training_data(spec, str(folder / "small0.yaml"), None, plan)
    graph = Graph(plan)
    load_weights_into(graph, run / "weights.npz")
    predicted = graph.predict(validation.x).argmax(axis=-1)
    expected = np.zeros((10, 10), int)
    for t, p in zip(validation.y.reshape(-1), predicted, strict=True):
        expected[t, p] += 1
    assert cells == {(i, j): int(expected[i, j]) for i in range(10) for j in range(10)}


def test_report_page_is_rewritten_after_every_epoch(runs):
    _, pages = runs
    assert len(pages) == 3
    for epochs, text in enumerate(pages, start=1):
        page = ET.fromstring(text)
        assert len(plotted(page)["seed0", "loss"]) == epochs
    assert "training: 1 epoch(s)" in pages[0] and "finished" not in pages[0]


def test_report_page_is_self_contained(runs):
    folder, _ = runs
    text = (folder / "seed0" / "report.html").read_text()
    assert "<script" not in text and "http://" not in text.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in text
    page = parse_page(folder / "seed0" / "report.html")
    assert page.find(f".//{SVG}svg[@class='lc-model']") is not None  # the diagram
    assert "Resolved spec" in text and "Timings" in text and "total:" in text


def test_report_command_rebuilds_the_page(runs):
    folder, _ = runs
    run = folder / "seed0"
    written = (run / "report.html").read_text()
    (run / "report.html").unlink()
    result = CliRunner().invoke(cli, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / "report.html").read_text() == written


def test_report_command_compares_runs(runs, tmp_path):
    folder, _ = runs
    out = tmp_path / "compare.html"
    result = CliRunner().invoke(cli, ["report", str(folder / "seed0"), str(folder / "seed1"),
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    series = plotted(parse_page(out))
    for name in ("seed0", "seed1"):
        history = read_csv(folder / name / "history.csv")
        for key in ("loss", "val_loss", "val_accuracy"):
            assert series[name, key] == [(int(r["epoch"]), float(r[key])) for r in history]
    result = CliRunner().invoke(cli, ["report", str(folder / "seed0"), str(folder / "seed1")])
    assert result.exit_code == 1 and "-o PAGE.html" in result.output
    result = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert result.exit_code == 1 and "not a run folder" in result.output


def test_evaluate_report_has_per_class_scores(runs, tmp_path):
    folder, _ = runs
    out = tmp_path / "eval.html"
    result = CliRunner().invoke(cli, ["evaluate", str(folder / "small0.yaml"), "--weights",
                                      str(folder / "seed0" / "weights.npz"), "--report",
                                      str(out)])
    assert result.exit_code == 0, result.output
    page = parse_page(out)
    cells = np.zeros((10, 10), int)
    for c in page.iter(f"{SVG}rect"):
        if c.get("class") == "lc-cell":
            cells[int(c.get("data-true")), int(c.get("data-predicted"))] = int(
                c.get("data-count"))
    assert cells.sum() == 360  # the validation split of 1,797 digits
    rows = [[td.text for td in tr] for tr in page.iter("table") for tr in [*page.iter("tr")]]
    header = next(r for r in rows if r[:2] == ["class", "precision"])
    assert header == ["class", "precision", "recall", "f1", "support"]
    first = next(r for r in rows if r[0] == "0" and len(r) == 5)
    assert float(first[2]) == pytest.approx(cells[0, 0] / cells[0].sum(), abs=1e-4)


def test_per_class_scores_by_hand():
    # true 0 predicted 0 twice and 1 once; true 1 predicted 1 once, never 0
    scores = per_class_scores(np.array([[2, 1], [0, 1]]))
    assert scores[0] == {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}
    assert scores[1] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3,
                                       "support": 1})
    assert per_class_scores(np.array([[0, 0], [1, 0]]))[0]["precision"] == 0.0  # 0/0 -> 0


def test_confusion_matrix_kinds():
    sparse = confusion_matrix(SparseCategoricalCrossentropy(), np.array([0, 2, 1]),
                              np.array([[0.9, 0.1, 0.0], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]]))
    assert sparse.tolist() == [[1, 0, 0], [1, 0, 0], [0, 0, 1]]
    binary = confusion_matrix(BinaryCrossentropy(), np.array([[1], [0], [1]]),
                              np.array([[0.8], [0.7], [0.2]]))
    assert binary.tolist() == [[0, 1], [1, 1]]


CHROMIUM = shutil.which("chromium")


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_browser_renders_every_page(runs, tmp_path):
    from browser import png_pixels_vary, screenshot

    folder, _ = runs
    runner = CliRunner()
    pages = [folder / "seed0" / "report.html"]
    for name, args in (
            ("model.svg", ["plot", str(ROOT / "specs/digits_cnn.yaml"), "-o"]),
            ("model.html", ["plot", str(ROOT / "specs/residual_blocks.yaml"), "--expand", "-o"]),
            ("compare.html", ["report", str(folder / "seed0"), str(folder / "seed1"), "-o"]),
            ("eval.html", ["evaluate", str(folder / "small0.yaml"), "--weights",
                           str(folder / "seed0" / "weights.npz"), "--report"])):
        result = runner.invoke(cli, [*args, str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        pages.append(tmp_path / name)
    blank = tmp_path / "blank.html"  # the blank check itself must tell a blank page
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    assert screenshot(blank, tmp_path / "blank.png") == []
    assert not png_pixels_vary(tmp_path / "blank.png")
    noisy = tmp_path / "noisy.html"  # ... and a console error
    noisy.write_text('<html><body>x<script>console.error("boom")</script></body></html>')
    assert any('"boom"' in line for line in screenshot(noisy, tmp_path / "noisy.png"))
    for page in pages:
        png = tmp_path / f"{page.name}.png"
        errors = screenshot(page, png, (1000, 800))
        assert errors == [], f"{page.name}: {errors}"
        assert png_pixels_vary(png), f"{page.name} rendered blank"
