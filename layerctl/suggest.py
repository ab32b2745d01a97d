"""Did-you-mean for file names: only a name close to the one typed, never just any file.

`errors.did_you_mean` compares whole words, which suits option and key names; for files it would
offer `a.npy` for `lang.npz` (they share `a` and `.np`). Here a candidate must have the same
suffix and a stem close to the one typed (or the same stem with another suffix, `.yml` for
`.yaml`), so a suggestion is a likely typo and silence means nothing is close.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

STEM_CUTOFF = 0.75


def close_name(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate file name closest to `name`, or None when none is a likely typo of it."""
    typed = Path(name)
    stem, suffix = typed.stem.lower(), typed.suffix.lower()
    best, best_score = None, 0.0
    for candidate in sorted(set(candidates)):
        if candidate == name:
            continue
        other = Path(candidate)
        other_stem, other_suffix = other.stem.lower(), other.suffix.lower()
        if other_stem == stem:
            score = 1.0 if other_suffix == suffix else 0.99  # another case, or .yml for .yaml
        elif other_suffix == suffix:
            score = difflib.SequenceMatcher(None, stem, other_stem).ratio()
        else:
            continue
        if score >= STEM_CUTOFF and score > best_score:
            best, best_score = candidate, score
    return best


def missing_file_hint(path: str | Path, suffixes: tuple[str, ...] | None = None) -> str | None:
    """`did you mean 'x'?` for a path that does not exist, from the names beside it."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        names = [entry.name for entry in folder.iterdir()
                 if suffixes is None or entry.suffix.lower() in suffixes]
    except OSError:
        return None
    close = close_name(path.name, names)
    return None if close is None else f"did you mean '{close}'?"
