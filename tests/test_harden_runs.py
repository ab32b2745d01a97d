"""Class 3 of issue 13: a run folder has one owner.

`train` takes an exclusive lock on the run folder for the life of the run: a second `train` on
it exits 1 naming the holder's PID. A symlinked run folder is refused, a folder swapped during
the run is noticed before the next write, and any run file (not only checkpoint.npz) means the
folder holds a run.
"""

import fcntl
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from harden import HANG, assert_refused, default_sigint, env, layerctl, snapshot, tiny_project

from layerctl.training.runs import LOCK_NAME, RUN_FILES, RunFolder, RunFolderError


def test_second_train_on_a_held_folder_names_the_holder(tmp_path):
    spec = tiny_project(tmp_path)
    first = subprocess.Popen([sys.executable, "-m", "layerctl", "train", spec, "--out", "run",
                              "--epochs", "1000000", "-q"], cwd=tmp_path, env=env(),
                             stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    try:
        lock = tmp_path / "run" / LOCK_NAME
        # a hang detector bounded by polls, not a speed test: HANG seconds of 0.05 s sleeps
        for _ in range(int(HANG / 0.05)):
            if (lock.exists() and lock.read_text().strip()) or first.poll() is not None:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the first train never took the lock")
        assert lock.read_text().strip() == str(first.pid)
        second = layerctl("train", spec, "--out", "run", "--overwrite", "-q", cwd=tmp_path)
        assert_refused(second, "run is in use", f"process {first.pid}")
        resumed = layerctl("train", spec, "--out", "run", "--resume", "-q", cwd=tmp_path)
        assert_refused(resumed, f"process {first.pid}")
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=HANG)
    assert first.returncode == 130  # the owner saved and stopped normally
    again = layerctl("train", spec, "--out", "run", "--resume", "--epochs", "1", "-q",
                     cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # the lock died with its holder


def test_lock_held_by_another_process_is_refused_before_any_write(tmp_path):
    spec = tiny_project(tmp_path)
    (tmp_path / "run").mkdir()
    with open(tmp_path / "run" / LOCK_NAME, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write("4242\n")
        handle.flush()
        before = snapshot(tmp_path)
        result = layerctl("train", spec, "--out", "run", "-q", cwd=tmp_path)
        assert_refused(result, "in use", "process 4242")
        assert snapshot(tmp_path) == before


def test_symlinked_run_folder_is_refused(tmp_path):
    spec = tiny_project(tmp_path)
    other = tmp_path / "other-run"
    other.mkdir()
    (other / "weights.npz").write_bytes(b"someone else's weights")
    (tmp_path / "link").symlink_to(other)
    before = snapshot(other)
    result = layerctl("train", spec, "--out", "link", "--overwrite", "-q", cwd=tmp_path)
    assert_refused(result, "link is a symlink")
    assert snapshot(other) == before


def test_folder_swapped_during_the_run_is_not_written(tmp_path):
    run = RunFolder(tmp_path / "run").claim()
    try:
        other = tmp_path / "other"
        other.mkdir()
        (other / "spec.yaml").write_bytes(b"another run's spec\n")
        os.rename(run.path, tmp_path / "moved")
        run.path.symlink_to(other)
        with pytest.raises(RunFolderError, match="moved or replaced"):
            run.write_spec({"name": "x"})
        with pytest.raises(RunFolderError):
            run.write_weights({"a/b": np.zeros(2)})
        assert (other / "spec.yaml").read_bytes() == b"another run's spec\n"
        assert sorted(os.listdir(other)) == ["spec.yaml"]
    finally:
        run.owner.release()


@pytest.mark.parametrize("name", RUN_FILES)
def test_any_run_file_means_the_folder_holds_a_run(tmp_path, name):
    spec = tiny_project(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / name).write_bytes(b"an earlier run's file\n")
    before = snapshot(tmp_path)
    result = layerctl("train", spec, "--out", "run", "-q", cwd=tmp_path)
    assert_refused(result, "already holds a run", name)
    assert snapshot(tmp_path) == before


def test_overwrite_leaves_nothing_of_the_old_run(tmp_path):
    spec = tiny_project(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.npz").write_bytes(b"old")
    (tmp_path / "run" / "notes.txt").write_bytes(b"the user's own file")
    result = layerctl("train", spec, "--out", "run", "--overwrite", "--epochs", "1", "-q",
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    files = snapshot(tmp_path / "run")
    assert files["notes.txt"] == b"the user's own file" and files["checkpoint.npz"] != b"old"


def test_a_failed_start_leaves_no_empty_run_folder(tmp_path):
    spec = tiny_project(tmp_path)
    result = layerctl("train", spec, "--out", "run", "--data", "missing.npz", "-q", cwd=tmp_path)
    assert_refused(result, "missing.npz")
    assert not (tmp_path / "run").exists()
