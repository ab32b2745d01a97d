"""Errors a user can act on: each problem carries a message, a location, a hint and a code.

The library raises these; only the CLI prints them (one line per problem,
`file:line:col: message [LC104]`, `Problem.line`) and maps them to exit codes. The code is
stable: it names the kind of problem (`layerctl/error_codes.py` lists them, docs/errors.md
explains each with an example and the fix), so a CI log can be searched and a fix looked up
while messages improve. A problem raised without a code gets its error class's. Nothing here
imports more than the standard library, so every module may use it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, replace


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
    code: str | None = None  # LC1xx spec, LC2xx shapes, LC3xx data, ... (error_codes.py)

    def render(self) -> str:
        """`file:line:col: message; hint` (what `str()` of an error holds)."""
        text = self.message if self.hint is None else f"{self.message}; {self.hint}"
        prefix = "" if self.severity == "error" else "warning: "
        if self.location is None:
            return prefix + text
        return f"{self.location}: {prefix}{text}"

    def line(self) -> str:
        """The line the command line prints: `render()` and the code, `... [LC104]`."""
        return self.render() if self.code is None else f"{self.render()} [{self.code}]"

    def coded(self, code: str) -> Problem:
        """This problem with `code` unless it has one already."""
        return self if self.code is not None else replace(self, code=code)


class LayerctlError(Exception):
    """Base of every error caused by user input; holds one or more problems."""

    exit_code = 1
    code = "LC100"  # the code of its problems that were given none

    def __init__(
        self,
        message: str | None = None,
        location: Location | None = None,
        hint: str | None = None,
        *,
        problems: Iterable[Problem] | None = None,
        code: str | None = None,
    ) -> None:
        self.problems: list[Problem] = list(problems or [])
        if message is not None:
            self.problems.insert(0, Problem(message, location, hint, code=code))
        self.problems = [p.coded(self.code) for p in self.problems]
        if not self.problems:
            raise ValueError("a LayerctlError needs a message or problems")
        super().__init__("\n".join(p.render() for p in self.problems))

    @property
    def message(self) -> str:
        return self.problems[0].message


class SpecError(LayerctlError):
    """The spec (YAML, schema or shapes) is invalid."""

    code = "LC100"


class DataError(LayerctlError):
    """Input data is missing, unreadable, or does not fit the model."""

    code = "LC300"


class WeightsError(LayerctlError):
    """A weights or checkpoint file is missing, corrupt, or does not fit the model."""

    code = "LC400"


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
