"""A Keras 3 `.keras` archive: a zip of `config.json` (read as a JSON config) and
`model.weights.h5` (read with h5py). Members are read into memory, never extracted: a name
that climbs out of the archive (`../`, an absolute path) or a member larger than its limit
(checked while reading, not trusted from the header) is refused with its name."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import PurePosixPath

from layerctl.errors import LayerctlError, Location

LIMITS = {"config.json": 20_000_000, "metadata.json": 1_000_000,
          "model.weights.h5": 4_000_000_000}
MAX_MEMBERS = 100


class ArchiveError(LayerctlError):
    """The archive is not a Keras archive layerctl reads safely."""

    code = "LC602"


def read_members(path: str) -> dict[str, bytes]:
    where = Location(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise ArchiveError(f"not a readable .keras archive: {error}", where) from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise ArchiveError(f"{len(infos):,} members; a .keras archive has 3", where)
        out = {}
        for info in infos:
            name = info.filename
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or ".." in parts or ":" in name:
                raise ArchiveError(f"member '{name}': a path outside the archive is refused",
                                   where)
            if name not in LIMITS:
                continue  # e.g. assets/ of preprocessing layers: not read
            limit = LIMITS[name]
            if info.file_size > limit:
                raise ArchiveError(f"member '{name}' is {info.file_size:,} bytes; at most "
                                   f"{limit:,} are read", where)
            try:
                with archive.open(info) as handle:
                    data = handle.read(limit + 1)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
                raise ArchiveError(f"member '{name}' is damaged: {error}", where) from None
            if len(data) > limit:
                raise ArchiveError(f"member '{name}' expands past {limit:,} bytes", where)
            out[name] = data
    if "config.json" not in out:
        raise ArchiveError("no config.json: not a Keras 3 .keras archive", where)
    return out
