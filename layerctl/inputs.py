"""Input paths that would hang or flood a reader are refused before they are opened.

Opening a FIFO blocks until a writer appears; a device like /dev/zero never ends. Every file
layerctl reads (specs, data, weights, checkpoints, vocabularies, text files and the entries of
class folders and validated folders) is first checked here: it must be a regular file (a symlink
to one is fine) or a folder where the caller takes folders. Standard input is `-` where a
command documents it, and never reaches this check.
"""

from __future__ import annotations

import os
import stat

from layerctl.errors import LayerctlError, Location


def file_kind(mode: int) -> str:
    """What a file's mode says it is, for messages: 'a FIFO', 'a device', ..."""
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def refuse_special(path: str | os.PathLike, error: type[LayerctlError],
                   display: str | None = None) -> None:
    """`error` when `path` exists and is neither a regular file nor a folder (symlinks are
    followed); a missing path is left to the caller, which names it its own way."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise error(f"is {file_kind(mode)}, not a regular file", Location(display or str(path)),
                    "layerctl reads only regular files (and - for standard input where a "
                    "command takes it)")
