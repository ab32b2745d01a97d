"""Class 6 of issue 13: no input makes a command wait forever.

A FIFO (or a device like /dev/zero) as a spec, data, weights, vocabulary, class-folder entry or
validated-folder entry is refused without being opened; `validate` walks a folder once however
many symlinks lead back to it. Each command runs in a subprocess whose 60 s timeout is only a
hang detector.
"""

import os
import subprocess
import sys

import pytest
from harden import HANG, assert_refused, env, layerctl, tiny_project


@pytest.fixture
def project(tmp_path):
    tiny_project(tmp_path)
    done = layerctl("train", "tiny.yaml", "--out", "run", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (tmp_path / "text.txt").write_text("a b c\nb c d\n")
    done = layerctl("pad", "text.txt", "--maxlen", 3, "--vocab", "vocab.json", "-o", "p.npz",
                    "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for name in ("fifo.yaml", "fifo.npz", "fifo.json", "fifo.txt"):
        os.mkfifo(tmp_path / name)
    return tmp_path


CASES = {
    "spec": ["shapes", "fifo.yaml"],
    "spec for train": ["train", "fifo.yaml", "--out", "r", "-q"],
    "data": ["train", "tiny.yaml", "--data", "fifo.npz", "--out", "r", "-q"],
    "predict input": ["predict", "tiny.yaml", "fifo.npz", "--weights", "run/weights.npz"],
    "weights": ["predict", "tiny.yaml", "data.npz", "--weights", "fifo.npz"],
    "initial weights": ["train", "tiny.yaml", "--initial-weights", "fifo.npz", "--out", "r",
                        "-q"],
    "vocabulary": ["pad", "text.txt", "--use-vocab", "fifo.json", "--maxlen", 3, "-o", "o.npz"],
    "text file": ["pad", "fifo.txt", "--maxlen", 3, "-o", "o.npz"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fifo_is_refused_not_waited_on(project, case):
    result = layerctl(*CASES[case], cwd=project)
    assert_refused(result, "fifo", "is a FIFO, not a regular file")


def test_fifo_checkpoint_is_refused(project):
    os.replace(project / "run" / "checkpoint.npz", project / "saved.npz")
    os.mkfifo(project / "run" / "checkpoint.npz")
    result = layerctl("train", "tiny.yaml", "--out", "run", "--resume", "-q", cwd=project)
    assert_refused(result, "checkpoint.npz", "is a FIFO")


def test_shapes_on_dev_zero_reads_nothing(project):
    result = layerctl("shapes", "/dev/zero", cwd=project)
    assert_refused(result, "/dev/zero", "is a device, not a regular file")


def test_fifo_in_a_class_folder_is_refused(project):
    for name in ("pos", "neg"):
        (project / "classes" / name).mkdir(parents=True)
        (project / "classes" / name / "a.txt").write_text("good words\n")
    os.mkfifo(project / "classes" / "pos" / "b.txt")
    result = layerctl("pad", "classes", "--maxlen", 3, "-o", "c.npz", "-q", cwd=project)
    assert_refused(result, "b.txt", "is a FIFO")
    assert not (project / "c.npz").exists()


def test_stdin_still_reads_as_documented(project):
    result = subprocess.run([sys.executable, "-m", "layerctl", "pad", "-", "--maxlen", "3",
                             "-o", "s.npz", "-q"], input="a b\nc\n", capture_output=True,
                            text=True, cwd=project, timeout=HANG, env=env())
    assert result.returncode == 0, result.stderr
    assert (project / "s.npz").exists()


def test_validate_refuses_a_fifo_entry_and_survives_symlink_loops(tmp_path):
    specs = tmp_path / "specs"
    (specs / "deep").mkdir(parents=True)
    (specs / "good.yaml").write_text("input_shape: [3]\nlayers:\n  - {type: Dense, units: 2}\n")
    os.mkfifo(specs / "blocked.yaml")
    (specs / "loop_a").symlink_to(specs)          # two symlinks to their own folder
    (specs / "loop_b").symlink_to(specs)
    (specs / "deep" / "up").symlink_to(specs)      # and one from below
    result = layerctl("validate", specs, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    [line] = result.stdout.splitlines()
    assert line.startswith(f"{specs / 'blocked.yaml'}: is a FIFO, not a regular file")
    assert result.stderr.strip() == "2 spec(s) checked, 1 invalid"


def test_validate_names_a_fifo_given_directly(tmp_path):
    os.mkfifo(tmp_path / "spec.yaml")
    result = layerctl("validate", "spec.yaml", cwd=tmp_path)
    assert result.returncode == 1 and "is a FIFO" in result.stdout, result
