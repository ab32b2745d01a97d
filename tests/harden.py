"""Helpers of the hardening tests (tests/test_harden_*.py): run the real command in a
subprocess and check that a refusal is one line on stderr, the right exit code, no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HANG = 60  # seconds: only a hang detector (a hang is minutes), never a speed assertion

TINY_SPEC = """\
name: tiny
input_shape: [4]
layers:
  - {type: Dense, units: 5, activation: relu}
  - {type: Dense, units: 3, activation: softmax}
compile:
  loss: sparse_categorical_crossentropy
  optimizer: {type: adam, learning_rate: 0.01}
train:
  data: data.npz
  batch_size: 8
  epochs: 3
  seed: 1
"""


def default_sigint() -> None:
    """A `preexec_fn` giving the child Ctrl-C's default meaning. A shell starts a background job
    with SIGINT ignored, its children inherit that, and Python then leaves it ignored: a suite
    run with `&` would send its Ctrl-C into nothing and wait for a hang."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def env() -> dict[str, str]:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = str(ROOT) + os.pathsep + environment.get("PYTHONPATH", "")
    environment.pop("COLUMNS", None)
    return environment


def layerctl(*args, cwd: Path, stdin=None, timeout: float = HANG) -> subprocess.CompletedProcess:
    """`python -m layerctl ARGS` in `cwd`; a TimeoutExpired means it hung."""
    return subprocess.run([sys.executable, "-m", "layerctl", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env(),
                          stdin=subprocess.DEVNULL if stdin is None else stdin)


def assert_refused(result: subprocess.CompletedProcess, *needles: str, code: int = 1) -> str:
    """The command failed with `code` and exactly one stderr line holding every needle."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert result.returncode == code, (result.returncode, result.stderr)
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def tiny_project(folder: Path, epochs: int = 3) -> Path:
    """A spec with its data in `folder`; returns the spec path."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1)
    np.savez(folder / "data.npz", x=x, y=y)
    spec = folder / "tiny.yaml"
    spec.write_text(TINY_SPEC.replace("epochs: 3", f"epochs: {epochs}"))
    return spec


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every regular file under `folder` by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


PEAK_PROBE = """
import atexit, runpy, sys

def report(path=sys.argv.pop(1)):
    with open("/proc/self/status") as status, open(path, "w") as out:
        out.write(next(line for line in status if line.startswith("VmHWM:")).split()[1])

atexit.register(report)
sys.argv[0] = "layerctl"
runpy.run_module("layerctl", run_name="__main__")
"""


def layerctl_peak_rss(*args, cwd: Path, timeout: float = HANG):
    """(`layerctl ARGS` as a CompletedProcess, its peak resident memory in MiB).

    The peak is the child's own VmHWM, written at exit (ru_maxrss of a forked child would
    count the parent's pages it shared before exec)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        peak_file = Path(folder) / "peak"
        result = subprocess.run([sys.executable, "-c", PEAK_PROBE, str(peak_file),
                                 *map(str, args)], cwd=cwd, capture_output=True, text=True,
                                timeout=timeout, env=env(), stdin=subprocess.DEVNULL)
        peak_kib = int(peak_file.read_text())
    return result, peak_kib / 1024


def npy_header(shape, dtype: str = "<f4") -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    return buffer.getvalue()


def write_zip_bomb(path: Path, members: dict[str, tuple], real_mib: int = 0,
                   declared: int | None = None,
                   honest: dict[str, np.ndarray] | None = None) -> None:
    """An .npz whose members (name -> shape, float32) declare their full size, holding only
    `real_mib` MiB of zeros, deflated to about a thousandth (so the file stays small, but a
    reader that trusts it allocates the declared size and inflates the zeros). `declared`
    overrides the zip's uncompressed size (a header that claims more than the member holds);
    `honest` arrays are stored as they are, before the others."""
    import io
    import zipfile
    import zlib

    with zipfile.ZipFile(path, "w") as archive:
        for name, array in (honest or {}).items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
            archive.writestr(name + ".npy", buffer.getvalue())
        for name, shape in members.items():
            header = npy_header(shape)
            compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
            unit_input = b"\0" * (1 << 20)
            parts = [compressor.compress(header), compressor.flush(zlib.Z_FULL_FLUSH)]
            unit = compressor.compress(unit_input) + compressor.flush(zlib.Z_FULL_FLUSH)
            parts += [unit] * real_mib + [compressor.flush()]
            stream = b"".join(parts)
            info = zipfile.ZipInfo(name + ".npy")
            info.compress_type = zipfile.ZIP_DEFLATED
            info.file_size = (declared if declared is not None
                              else len(header) + int(np.prod(shape)) * 4)
            crc = zlib.crc32(header)
            for _ in range(real_mib):
                crc = zlib.crc32(unit_input, crc)
            info.compress_size, info.CRC = len(stream), crc
            info.header_offset = archive.fp.tell()
            archive.fp.write(info.FileHeader(zip64=True))
            archive.fp.write(stream)
            archive.filelist.append(info)
            archive.NameToInfo[info.filename] = info
            archive.start_dir = archive.fp.tell()
        archive._didModify = True
