"""Memory a command is about to need, checked before it is allocated or inflated.

Small inputs can ask for huge allocations: an `.npz` member whose header claims terabytes, a zip
bomb that inflates a few megabytes into gigabytes, a spec with `units: 1000000000`. Here the
sizes are read from headers (the npy header inside each zip member, the zip's declared
uncompressed size) and compared with what the member holds and with the memory this machine has
available, so the command says "the weights need 29.8 GiB; this machine has 24.0 GiB" instead of
dying in the allocator.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from layerctl.errors import LayerctlError, Location
from layerctl.inputs import refuse_special

# What a damaged .npz raises from zipfile, zlib and NumPy's header reader (an encrypted member
# is a RuntimeError, an unknown compression method NotImplementedError).
NPZ_DAMAGE = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, RuntimeError,
              NotImplementedError)


class MemoryLimitError(LayerctlError):
    """What a command needs does not fit in this machine's memory."""

    code = "LC403"


def available_bytes() -> int:
    """Memory this process may still use: MemAvailable (Linux), else physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse


def gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.1f} GiB"


def check_fits(nbytes: int, what: str, location: Location | None = None) -> None:
    """MemoryLimitError when `nbytes` exceed the memory available; `what` names the need."""
    available = available_bytes()
    if nbytes > available:
        raise MemoryLimitError(f"{what} need {gib(nbytes)}; this machine has {gib(available)} "
                               "available", location)


def check_model_fits(plan, dtype=np.float32) -> None:
    """Before a Graph allocates its flat buffers (weights and gradients): they must fit."""
    itemsize = np.dtype(dtype).itemsize
    weights = plan.total_params * itemsize
    check_fits(weights + plan.trainable_params * itemsize,
               f"the model's {plan.total_params:,} weights (and their gradients)")


@dataclass(frozen=True)
class MemberHeader:
    """What an .npz member declares: its array's shape and dtype, and its sizes in bytes."""

    shape: tuple[int, ...]
    dtype: np.dtype
    nbytes: int  # the array's bytes, from its header
    file_size: int  # the member's uncompressed size, from the zip directory


def _read_header(handle) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    else:
        shape, _, dtype = np.lib.format._read_array_header(handle, version)
    return tuple(shape), dtype


def npz_headers(path: str | os.PathLike, error: type[LayerctlError], display: str | None = None,
                names: tuple[str, ...] | None = None,
                check_memory: bool = True) -> dict[str, MemberHeader]:
    """The headers of an .npz archive's arrays (or of those in `names`), read without
    inflating any array; `error` (naming `display`) when a member is damaged or claims more
    than it holds, or when they would not fit in memory together."""
    display = display or str(path)
    where = Location(display)
    refuse_special(path, error, display)
    headers: dict[str, MemberHeader] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                if not info.filename.endswith(".npy") or (names is not None
                                                          and name not in names):
                    continue
                with archive.open(info) as handle:
                    try:
                        shape, dtype = _read_header(handle)
                    except (ValueError, *NPZ_DAMAGE) as problem:
                        raise error(f"array '{name}' has a damaged header ({problem})",
                                    where) from None
                    header_size = handle.tell()
                nbytes = math.prod(shape) * dtype.itemsize
                if not dtype.hasobject and header_size + nbytes > info.file_size:
                    raise error(f"array '{name}' claims shape {shape} ({gib(nbytes)}) but holds "
                                f"{info.file_size:,} bytes: the file is damaged", where)
                headers[name] = MemberHeader(shape, dtype, nbytes, info.file_size)
    except NPZ_DAMAGE as problem:
        raise error(f"not a valid .npz archive ({problem})", where) from None
    if check_memory:
        check_fits(sum(h.file_size for h in headers.values()),
                   "its arrays (" + ", ".join(f"'{n}'" for n in list(headers)[:3])
                   + (", ..." if len(headers) > 3 else "") + ")", where)
    return headers


def npz_member_fits(path: Path, name: str, error: type[LayerctlError], display: str) -> None:
    """Check one member before np.load inflates it."""
    npz_headers(path, error, display, names=(name,))
