"""Errors a user can act on: each problem carries a message, a location and a hint.

The library raises these; only the CLI renders them (one line per problem,
`file:line:col: message`) and maps them to exit codes. Nothing here imports more than the
standard library, so every module may use it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A place in a file: 1-based line and column, either may be unknown."""

    file: str | None = None
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        parts = [self.file or "<spec>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a warning) in a user's input."""

    message: str
    location: Location | None = None
    hint: str | None = None
    severity: str = "error"  # "error" or "warning"

    def render(self) -> str:
        text = self.message if self.hint is None else f"{self.message}; {self.hint}"
        prefix = "" if self.severity == "error" else "warning: "
        if self.location is None:
            return prefix + text
        return f"{self.location}: {prefix}{text}"


class LayerctlError(Exception):
    """Base of every error caused by user input; holds one or more problems."""

    exit_code = 1

    def __init__(
        self,
        message: str | None = None,
        location: Location | None = None,
        hint: str | None = None,
        *,
        problems: Iterable[Problem] | None = None,
    ) -> None:
        self.problems: list[Problem] = list(problems or [])
        if message is not None:
            self.problems.insert(0, Problem(message, location, hint))
        if not self.problems:
            raise ValueError("a LayerctlError needs a message or problems")
        super().__init__("\n".join(p.render() for p in self.problems))

    @property
    def message(self) -> str:
        return self.problems[0].message


class SpecError(LayerctlError):
    """The spec (YAML, schema or shapes) is invalid."""


class DataError(LayerctlError):
    """Input data is missing, unreadable, or does not fit the model."""


class WeightsError(LayerctlError):
    """A weights or checkpoint file is missing, corrupt, or does not fit the model."""


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A `did you mean 'x'?` hint for a misspelled `word`, or None when nothing is close."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered and lowered[word.lower()] != word:
        return f"did you mean '{lowered[word.lower()]}'?"
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close:
        close = [lowered[m] for m in difflib.get_close_matches(word.lower(), lowered, n=1)]
    return f"did you mean '{close[0]}'?" if close else None
