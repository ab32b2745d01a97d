"""Atomic file writes: a reader (or a crash) never sees a half-written file.

Everything layerctl writes (weights, checkpoints, history, padded arrays, schemas) goes through
`atomic_path`: the caller writes a temporary file in the destination's folder, which is then
flushed to disk and renamed over the destination in one step.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `destination`; on success rename it over `destination`.

    The temporary name keeps the destination's suffix (NumPy appends `.npz` otherwise). On an
    exception, including KeyboardInterrupt, the temporary file is removed and the destination is
    left untouched.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=suffix or destination.suffix, dir=destination.parent
    )
    os.close(fd)
    temporary_path = Path(temporary)
    # mkstemp makes 0600 files; give the result the permissions a plain open() would have
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary_path, 0o666 & ~umask)
    try:
        yield temporary_path
        with open(temporary_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary_path, destination)
    except BaseException:
        temporary_path.unlink(missing_ok=True)
        raise


def write_text_atomic(destination: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `destination` atomically."""
    with atomic_path(destination) as temporary:
        temporary.write_text(text, encoding="utf-8")
