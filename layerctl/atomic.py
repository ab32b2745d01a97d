"""Atomic file writes: a reader (or a crash) never sees a half-written file.

Everything layerctl writes (weights, checkpoints, history, padded arrays, schemas) goes through
`atomic_path`: the caller writes a temporary file in the destination's folder, which is then
flushed to disk and renamed over the destination in one step. Only a regular file (or nothing)
may stand at the destination: a rename over a device node, a FIFO, a symlink or a folder would
replace it, so those are refused. Temporary files are named `.NAME.layerctl-tmp-PID-XXXX`; one
left behind by a killed process is removed by the next write to the same destination.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from layerctl.errors import LayerctlError, Location
from layerctl.inputs import file_kind

TEMPORARY_MARK = ".layerctl-tmp-"


class OutputError(LayerctlError):
    """An output path cannot be written without destroying what stands there."""

    code = "LC404"


def check_destination(destination: str | os.PathLike) -> None:
    """OutputError unless `destination` is a regular file or does not exist (symlinks are not
    followed: replacing one would break its link, writing through it would write elsewhere)."""
    try:
        mode = os.lstat(destination).st_mode
    except FileNotFoundError:
        return
    except NotADirectoryError:
        return  # a parent is a file: creating the temporary file reports it
    if not stat.S_ISREG(mode):
        raise OutputError(f"is {file_kind(mode)}; an output may only replace a regular file",
                          Location(str(destination)), "choose another output path")


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_stale_temporaries(destination: Path) -> None:
    """Remove temporary files of `destination` left by processes that no longer run."""
    prefix = f".{destination.name}{TEMPORARY_MARK}"
    try:
        entries = list(os.scandir(destination.parent))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        pid_text = entry.name[len(prefix):].split("-", 1)[0]
        if not pid_text.isdigit() or _process_alive(int(pid_text)):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `destination`; on success rename it over `destination`.

    The temporary name keeps the destination's suffix (NumPy appends `.npz` otherwise). On an
    exception, including KeyboardInterrupt, the temporary file is removed and the destination is
    left untouched. A destination that is not a regular file raises OutputError, before the
    caller writes anything and again just before the rename.
    """
    destination = Path(destination)
    check_destination(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(destination)
    fd, temporary = tempfile.mkstemp(
        prefix=f".{destination.name}{TEMPORARY_MARK}{os.getpid()}-",
        suffix=suffix or destination.suffix, dir=destination.parent,
    )
    os.close(fd)
    temporary_path = Path(temporary)
    # mkstemp makes 0600 files; give the result the permissions a plain open() would have
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(temporary_path, 0o666 & ~umask)
        yield temporary_path
        with open(temporary_path, "rb+") as handle:
            os.fsync(handle.fileno())
        check_destination(destination)
        os.replace(temporary_path, destination)
    except BaseException:
        temporary_path.unlink(missing_ok=True)
        raise


def write_text_atomic(destination: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `destination` atomically."""
    with atomic_path(destination) as temporary:
        temporary.write_text(text, encoding="utf-8")
