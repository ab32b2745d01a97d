"""The bundled example models train, on bundled data, well beyond a trivial predictor.

Each runs the real `layerctl train` for a few epochs (the `slow` marker: several seconds each).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from layerctl.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def train(spec: str, tmp_path: Path, epochs: int) -> dict[str, float]:
    """The last epoch's history row of `layerctl train SPEC --epochs N`."""
    result = CliRunner().invoke(cli, ["train", str(ROOT / "specs" / spec), "--out",
                                      str(tmp_path / "run"), "--epochs", str(epochs), "-q"])
    assert result.exit_code == 0, result.output
    header, *rows = (tmp_path / "run/history.csv").read_text().splitlines()
    return dict(zip(header.split(","), map(float, rows[-1].split(",")), strict=True))


def mean_image_mse() -> float:
    """The validation mse of always predicting the training images' mean (split 0.2)."""
    from layerctl.datasets import load

    x, _ = load("digits")
    split = int(len(x) * 0.8)
    return float(((x[split:] - x[:split].mean(axis=0)) ** 2).mean())


@pytest.mark.slow
def test_conv_autoencoder_reconstructs(tmp_path):
    last = train("digits_conv_autoencoder.yaml", tmp_path, 5)
    assert last["val_loss"] < 0.4 * mean_image_mse()  # 0.0169 against 0.0737 measured
    assert np.isfinite(last["loss"])


@pytest.mark.slow
def test_unet_reconstructs(tmp_path):
    last = train("digits_unet.yaml", tmp_path, 4)
    assert last["val_loss"] < 0.2 * mean_image_mse()  # 0.0014 after 5 epochs measured


@pytest.mark.slow
def test_seq2seq_learns_to_reverse(tmp_path):
    last = train("seq2seq_reverse.yaml", tmp_path, 6)
    assert last["val_accuracy"] > 0.5  # per token; chance 0.1 (0.976 after 15 epochs measured)
