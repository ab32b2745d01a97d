"""Class 1 of issue 13: an output may only replace a regular file or nothing.

Every writer renames a temporary file over its destination, so without a check `-o` naming a
device node, a FIFO, a symlink or a folder would replace it. Each writer is attacked through the
real command; the thing at the path must survive untouched and the command must exit 1 with one
line. Temporary files left by a killed writer are recognisable and removed by the next write.
"""

import os
import stat
import subprocess
import sys

import numpy as np
import pytest
from harden import assert_refused, layerctl, snapshot, tiny_project

from layerctl.atomic import TEMPORARY_MARK, OutputError, atomic_path, write_text_atomic


def make(kind, path, tmp_path):
    """Put a `kind` thing at `path`; returns a function describing it (to compare after)."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # a copy of /dev/full
        except PermissionError:
            pytest.skip("creating a device node needs root")
    elif kind == "symlink":
        target = tmp_path / "precious.txt"
        target.write_bytes(b"keep me\n")
        path.symlink_to(target)
    elif kind == "folder":
        path.mkdir()
        (path / "inside.txt").write_bytes(b"keep me too\n")

    def describe():
        info = os.lstat(path)
        return (stat.S_IFMT(info.st_mode), getattr(info, "st_rdev", 0),
                os.readlink(path) if stat.S_ISLNK(info.st_mode) else None)
    return describe


KINDS = ["fifo", "device", "symlink"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    spec = tiny_project(folder)
    result = layerctl("train", spec, "--out", "run", "-q", cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder


def commands(output, trained):
    return {
        "predict": ["predict", trained / "tiny.yaml", trained / "data.npz",
                    "--weights", trained / "run/weights.npz", "-o", output],
        "export": ["export", trained / "tiny.yaml", "--weights", trained / "run/weights.npz",
                   "-o", output],
        "schema": ["schema", "-o", output],
        "pad": ["pad", trained / "corpus.txt", "--maxlen", 4, "-o", output],
        "pad-vocab": ["pad", trained / "corpus.txt", "--maxlen", 4, "-o",
                      output.parent / "padded.npz", "--vocab", output],
    }


SUFFIX = {"predict": ".csv", "export": ".onnx", "schema": ".json", "pad": ".npz",
          "pad-vocab": ".json"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("writer", sorted(SUFFIX))
def test_writer_refuses_what_is_not_a_regular_file(tmp_path, trained, writer, kind):
    if writer == "export":
        pytest.importorskip("onnx")
    (trained / "corpus.txt").write_text("a b c\nb c d\n")
    output = tmp_path / f"out{SUFFIX[writer]}"
    describe = make(kind, output, tmp_path)
    before, files = describe(), snapshot(tmp_path)
    result = layerctl(*commands(output, trained)[writer], cwd=tmp_path)
    assert_refused(result, str(output), "may only replace a regular file")
    assert describe() == before
    assert snapshot(tmp_path) == files  # nothing written beside it (no temporary left behind)


@pytest.mark.parametrize("writer", ["predict", "schema", "pad"])
def test_writer_refuses_a_folder(tmp_path, trained, writer):
    """click's dir_okay=False refuses an existing folder as a usage error (exit 2)."""
    (trained / "corpus.txt").write_text("a b c\n")
    output = tmp_path / f"out{SUFFIX[writer]}"
    make("folder", output, tmp_path)
    files = snapshot(tmp_path)
    result = layerctl(*commands(output, trained)[writer], cwd=tmp_path)
    assert result.returncode in (1, 2) and "Traceback" not in result.stderr, result.stderr
    assert output.is_dir() and snapshot(tmp_path) == files


@pytest.mark.parametrize("kind", KINDS + ["folder"])
def test_atomic_path_refuses_before_and_at_the_rename(tmp_path, kind):
    output = tmp_path / "out.txt"
    describe = make(kind, output, tmp_path)
    before = describe()
    with pytest.raises(OutputError, match="may only replace a regular file"):
        write_text_atomic(output, "x")
    assert describe() == before
    # the path turns into something else while the caller writes: still refused at the rename
    other = tmp_path / "other.txt"
    with pytest.raises(OutputError):
        with atomic_path(other) as temporary:
            temporary.write_text("x")
            make(kind, other, tmp_path / "sub") if kind != "symlink" else other.symlink_to(output)
    assert not any(TEMPORARY_MARK in p.name for p in tmp_path.iterdir())


def test_dev_null_is_not_replaced():
    with pytest.raises(OutputError, match="is a device"):
        write_text_atomic("/dev/null", "x")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_regular_file_is_replaced(tmp_path):
    output = tmp_path / "out.txt"
    output.write_text("old")
    write_text_atomic(output, "new")
    assert output.read_text() == "new"


def test_run_folder_file_that_is_a_symlink_is_refused(tmp_path):
    """`train --overwrite` into a folder whose weights.npz links elsewhere keeps the link's
    target intact."""
    spec = tiny_project(tmp_path)
    (tmp_path / "run").mkdir()
    target = tmp_path / "other-weights.npz"
    np.savez(target, a=np.ones(3))
    saved = target.read_bytes()
    (tmp_path / "run" / "weights.npz").symlink_to(target)
    result = layerctl("train", spec, "--out", "run", "--overwrite", "-q", cwd=tmp_path)
    assert_refused(result, "weights.npz", "may only replace a regular file")
    assert target.read_bytes() == saved and (tmp_path / "run" / "weights.npz").is_symlink()


def test_temporary_files_are_recognisable_and_stale_ones_removed(tmp_path):
    """A writer killed mid-write leaves `.NAME.layerctl-tmp-PID-*`; the next write removes it
    (a live process's temporary file is left alone)."""
    output = tmp_path / "out.txt"
    code = ("import os, sys; from layerctl.atomic import atomic_path\n"
            "with atomic_path(sys.argv[1]) as t:\n"
            "    t.write_text('half'); os.kill(os.getpid(), 9)\n")
    done = subprocess.run([sys.executable, "-c", code, str(output)], timeout=60)
    assert done.returncode == -9
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(f".out.txt{TEMPORARY_MARK}")]
    assert len(stale) == 1 and not output.exists()
    live = tmp_path / f".out.txt{TEMPORARY_MARK}{os.getppid()}-abc.txt"  # a running process's
    live.write_text("busy")
    write_text_atomic(output, "whole")
    assert output.read_text() == "whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.txt", live.name])
