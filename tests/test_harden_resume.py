"""Class 4 of issue 13: `--resume` on a finished run changes nothing.

A run ended by early stopping once resumed from 6 to 9 epochs and changed weights.npz. The
checkpoint now records a stop by early stopping; resuming a run that stopped early or did all its
epochs prints a message, exits 0, and leaves every file of the run folder byte for byte as it was
(a larger --epochs still continues a run that did all its epochs).
"""

import pytest
from harden import layerctl, snapshot, tiny_project

from layerctl.training.runs import load_checkpoint

EARLY = """  callbacks:
    - {type: early_stopping, monitor: loss, min_delta: 1000.0, patience: 1}
"""


@pytest.mark.parametrize("how", ["all_epochs", "early_stopping"])
def test_resume_of_a_finished_run_changes_nothing(tmp_path, how):
    spec = tiny_project(tmp_path, epochs=9 if how == "early_stopping" else 3)
    if how == "early_stopping":
        spec.write_text(spec.read_text() + EARLY)
    done = layerctl("train", spec, "--out", "run", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    state = load_checkpoint(tmp_path / "run" / "checkpoint.npz").state
    assert state["stopped_early"] is (how == "early_stopping")
    epochs = len(state["history"])
    assert epochs == (2 if how == "early_stopping" else 3)
    before = snapshot(tmp_path)
    result = layerctl("train", spec, "--out", "run", "--resume", cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"run holds a finished run ({epochs} epochs): nothing to resume, nothing changed"]
    assert snapshot(tmp_path) == before  # weights.npz, checkpoint, history, spec: same bytes
    if how == "early_stopping":  # early stopping ended it: more epochs change nothing either
        again = layerctl("train", spec, "--out", "run", "--resume", "--epochs", "20", "-q",
                         cwd=tmp_path)
        assert again.returncode == 0 and again.stderr == "" and snapshot(tmp_path) == before


def test_an_interrupted_run_is_not_finished(tmp_path):
    """The flag is only set at the end: a checkpoint written mid-run resumes as before."""
    from test_train import run_fit

    _, first, run = run_fit(tmp_path, "r", stop_after=7)
    assert first.interrupted and load_checkpoint(run.checkpoint).state["stopped_early"] is False
    _, result, _ = run_fit(tmp_path, "r", resume=True)
    assert not result.already_finished and len(result.history) == 4
    _, finished, _ = run_fit(tmp_path, "r", resume=True)
    assert finished.already_finished and finished.history == result.history
