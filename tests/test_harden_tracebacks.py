"""Class 7 of issue 13: failures a user can meet end in one line and an exit code, never a
traceback.

OSError (disk full, read-only file system, permission, a parent that is a file) and MemoryError
are mapped once, in the CLI; damaged archives (zlib errors, encrypted members), tampered
checkpoint state and a binary metric on a many-class output are reported where they are read.
Disk-full, read-only and permission faults are injected (os.replace raising) since no small file
system can be mounted here.
"""

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from harden import HANG, assert_refused, default_sigint, env, layerctl, tiny_project

from layerctl.cli import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line(result, *needles, code=1):
    assert not isinstance(result.exception, (OSError, MemoryError, RuntimeError)), result
    assert result.exit_code == code, (result.exit_code, result.stderr, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("code, reason", [(errno.ENOSPC, "No space left on device"),
                                          (errno.EROFS, "Read-only file system"),
                                          (errno.EACCES, "Permission denied")])
def test_write_faults_are_one_line_and_keep_the_old_file(tmp_path, monkeypatch, code, reason):
    output = tmp_path / "schema.json"
    output.write_text("the old schema")

    def failing_replace(source, destination):
        raise OSError(code, os.strerror(code), str(destination))

    monkeypatch.setattr(os, "replace", failing_replace)
    result = invoke("schema", "-o", output)
    assert_one_line(result, str(output), reason)
    assert output.read_text() == "the old schema"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["schema.json"]  # no temporary left


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_train_on_a_full_disk_is_one_line(tmp_path, monkeypatch, code):
    spec = tiny_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    real_replace = os.replace

    def failing_replace(source, destination):
        if str(destination).endswith("checkpoint.npz"):
            raise OSError(code, os.strerror(code), str(destination))
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", failing_replace)
    result = invoke("train", spec, "--out", "run", "-q")
    assert_one_line(result, "checkpoint.npz", os.strerror(code))


def test_output_under_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    result = layerctl("schema", "-o", tmp_path / "file" / "schema.json", cwd=tmp_path)
    assert_refused(result, "file")
    assert (tmp_path / "file").read_text() == "not a folder"


def test_run_folder_under_a_file_is_one_line(tmp_path):
    spec = tiny_project(tmp_path)
    (tmp_path / "file").write_text("x")
    result = layerctl("train", spec, "--out", tmp_path / "file" / "run", "-q", cwd=tmp_path)
    assert_refused(result, "file")


def test_memory_error_is_one_line(tmp_path, monkeypatch):
    spec = tiny_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    from layerctl.graph import Graph

    def exhausted(self, *args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(Graph, "initialize", exhausted)
    assert_one_line(invoke("train", spec, "--out", "run", "-q"), "out of memory")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    tiny_project(folder)
    done = layerctl("train", "tiny.yaml", "--out", "run", "-q", cwd=folder)
    assert done.returncode == 0, done.stderr
    return folder


def rewrite_member(source, destination, change):
    """Copy the zip `source` to `destination`, passing each member's raw (compressed) bytes
    and ZipInfo through `change`."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(destination, "w") as new:
        for info in old.infolist():
            new.writestr(info, change(info, old.read(info)), compress_type=info.compress_type)


def test_damaged_deflate_stream_is_one_line(trained, tmp_path):
    np.savez_compressed(tmp_path / "w.npz", **dict(np.load(trained / "run" / "weights.npz")))
    data = bytearray((tmp_path / "w.npz").read_bytes())
    with zipfile.ZipFile(tmp_path / "w.npz") as archive:
        info = archive.infolist()[0]
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 20
    data[start:start + 40] = bytes(40)  # garbage inside the first member's deflate stream
    (tmp_path / "w.npz").write_bytes(bytes(data))
    result = layerctl("predict", trained / "tiny.yaml", trained / "data.npz", "--weights",
                      tmp_path / "w.npz", cwd=tmp_path)
    assert_refused(result, "w.npz")


def test_encrypted_member_is_one_line(trained, tmp_path):
    source = trained / "run" / "weights.npz"
    data = bytearray(source.read_bytes())
    # set the 'encrypted' flag in every central directory entry
    position = data.find(b"PK\x01\x02")
    while position != -1:
        data[position + 8] |= 1
        position = data.find(b"PK\x01\x02", position + 4)
    (tmp_path / "w.npz").write_bytes(bytes(data))
    result = layerctl("predict", trained / "tiny.yaml", trained / "data.npz", "--weights",
                      tmp_path / "w.npz", cwd=tmp_path)
    assert_refused(result, "w.npz", "encrypted")


TAMPERINGS = {
    "no history": lambda s: s.pop("history"),
    "no rng": lambda s: s.pop("rng"),
    "rng garbage": lambda s: s.update(rng={"bit_generator": "PCG64", "state": 5}),
    "rng wrong kind": lambda s: s.update(rng="fast"),
    "layer rngs not a dict": lambda s: s.update(layer_rngs=[1, 2]),
    "unknown layer rng": lambda s: s.update(layer_rngs={"ghost": {}}),
    "epoch a string": lambda s: s.update(epoch="1"),
    "epoch negative": lambda s: s.update(epoch=-4),
    "batch a float": lambda s: s.update(batch=1.5),
    "epoch a bool": lambda s: s.update(epoch=True),
    "callbacks not a dict": lambda s: s.update(callbacks=[]),
    "accumulator garbage": lambda s: s.update(accumulator={"x": 1}),
    "accumulator a number": lambda s: s.update(accumulator=3),
    "history not a list": lambda s: s.update(history=7),
    "best epoch a dict": lambda s: s.update(best_epoch={}),
    "no epoch": lambda s: s.pop("epoch"),
    "not a record": lambda s: (s.clear(), s.update(list=True)),
}


@pytest.mark.parametrize("tampering", sorted(TAMPERINGS))
def test_tampered_checkpoint_state_is_one_line(trained, tmp_path, tampering):
    run = tmp_path / "run"
    run.mkdir()
    with np.load(trained / "run" / "checkpoint.npz") as archive:
        arrays = {key: archive[key] for key in archive.files}
    state = json.loads(str(arrays["state"]))
    state.update(epoch=1, batch=0, stopped_early=False)
    TAMPERINGS[tampering](state)
    arrays["state"] = np.array(json.dumps([state] if "list" in state else state))
    np.savez(run / "checkpoint.npz", **arrays)
    before = (run / "checkpoint.npz").read_bytes()
    result = layerctl("train", trained / "tiny.yaml", "--data", trained / "data.npz", "--out",
                      run, "--resume", "-q", cwd=tmp_path)
    assert_refused(result, "checkpoint.npz", "damaged")
    assert (run / "checkpoint.npz").read_bytes() == before


def test_auc_on_a_ten_class_softmax_is_one_line(tmp_path):
    spec = tiny_project(tmp_path)
    spec.write_text(spec.read_text().replace("units: 3, activation: softmax",
                                             "units: 10, activation: softmax")
                    .replace("learning_rate: 0.01}", "learning_rate: 0.01}\n  metrics: [auc]"))
    result = layerctl("train", spec, "--out", "run", "-q", cwd=tmp_path)
    assert_refused(result, "auc needs one target per output", "auc is binary")


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.8])
def test_ctrl_c_during_start_up_exits_130_without_traceback(tmp_path, delay):
    spec = tiny_project(tmp_path)
    process = subprocess.Popen([sys.executable, "-m", "layerctl", "train", spec, "--out", "run",
                                "--epochs", "100000", "-q"], cwd=tmp_path, env=env(),
                               stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    try:
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=HANG)
    finally:
        process.kill()  # a hang must not leave a training process behind
    frames = re.findall(r'File "([^"]+)"', stderr)
    if "init_import_site" in stderr or (frames and all(f.startswith("<frozen") for f in frames)):
        return  # CPython itself was still starting (site, runpy): no layerctl code had run
    assert "Traceback" not in stderr, stderr
    # -2: the signal came before Python installed its handler (killed, nothing printed)
    assert process.returncode in (130, -signal.SIGINT), (process.returncode, stderr)
    if process.returncode == 130:
        assert stderr.splitlines()[-1].startswith("interrupted")


def test_ctrl_c_while_pydantic_builds_its_validator_is_an_interrupt(monkeypatch):
    """pydantic builds a validator lazily in Rust; a KeyboardInterrupt raised in there came back
    as a SchemaError with a traceback. Ctrl-C in that moment is held until the build ends and is
    then a KeyboardInterrupt (exit 130), and the spec was validated completely."""
    import os

    from layerctl import spec as spec_module

    validated = []
    real = spec_module.ModelSpec.model_validate

    def interrupted_validate(data):
        os.kill(os.getpid(), signal.SIGINT)  # delivered at once to this (main) thread
        validated.append(real(data))
        return validated[-1]

    monkeypatch.setattr(spec_module.ModelSpec, "model_validate", interrupted_validate)
    # Ctrl-C's default meaning here too (a suite started in the background has it ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    with pytest.raises(KeyboardInterrupt):
        spec_module.parse_spec("input_shape: [3]\nlayers:\n  - {type: Dense, units: 2}\n", "m.yaml")
    assert len(validated) == 1 and validated[0].layers[0].units == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_wrapped_by_python_while_a_class_is_created_is_an_interrupt(monkeypatch):
    """Ctrl-C during an import can land in a pydantic model's class body, and Python reraises
    it as `RuntimeError: Error calling __set_name__ ...` (seen under load): still exit 130."""
    from click.testing import CliRunner

    from layerctl import cli as cli_module

    def wrapped_interrupt(name):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as interrupt:
            raise RuntimeError("Error calling __set_name__ on '_lower'") from interrupt

    monkeypatch.setattr(cli_module.LazyGroup, "_module", staticmethod(wrapped_interrupt))
    result = CliRunner().invoke(cli_module.cli, ["shapes", "x.yaml"])
    assert result.exit_code == 130 and result.output.strip() == "interrupted"


def test_a_plain_error_is_not_taken_for_an_interrupt():
    from layerctl.cli import interrupted

    error = ValueError("no")
    error.__context__ = TypeError("neither")
    assert not interrupted(error)
    error.__context__.__cause__ = KeyboardInterrupt()
    assert interrupted(error)
