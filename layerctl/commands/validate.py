"""`layerctl validate PATH...`: check spec files (and folders of them) for CI and pre-commit."""

from __future__ import annotations

import json
from pathlib import Path

import click

from layerctl.errors import LayerctlError, Location, Problem

SPEC_SUFFIXES = (".yaml", ".yml")
IGNORE_MARKER = ".layerctlignore"  # a folder holding this file is skipped when found recursively
NOT_FOUND = "no such file or folder"


def discover(paths: tuple[str, ...]) -> tuple[list[Path], list[Problem]]:
    """The spec files named by `paths`: files as given, folders searched recursively for
    *.yaml / *.yml, skipping hidden folders and folders that hold a `.layerctlignore` file."""
    files, problems = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(_walk(path, set())))
        elif path.exists() or path.is_symlink():
            files.append(path)  # a FIFO or device is refused when checked, never opened
        else:
            from layerctl.suggest import missing_file_hint

            problems.append(Problem(NOT_FOUND, Location(raw), missing_file_hint(raw.rstrip("/")),
                                    code="LC301"))
    return files, problems


def _walk(folder: Path, seen: set[tuple[int, int]]):
    """Spec files under `folder`; a folder reached twice (symlinks to a folder, or loops of
    them) is walked once."""
    try:
        info = folder.stat()
        if (info.st_dev, info.st_ino) in seen:
            return
        seen.add((info.st_dev, info.st_ino))
        entries = sorted(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.is_dir():
            if not entry.name.startswith(".") and not (entry / IGNORE_MARKER).exists():
                yield from _walk(entry, seen)
        elif entry.suffix in SPEC_SUFFIXES:
            yield entry


def check(path: Path) -> list[Problem]:
    """Every problem (errors and warnings) of one spec file."""
    from layerctl.commands.common import load_plan

    try:
        return list(load_plan(str(path)).warnings)
    except LayerctlError as error:
        return error.problems


def github_data(text: str) -> str:
    """`text` escaped as a workflow command's message (a newline would start a command)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github_property(text: str) -> str:
    """`text` escaped as a workflow command's property value (',' and ':' end it)."""
    return github_data(text).replace(":", "%3A").replace(",", "%2C")


def github_line(problem: Problem) -> str:
    """A GitHub Actions workflow command, so problems show up as annotations on the diff.
    Everything taken from the input (file names, messages) is escaped as GitHub requires, so
    a file name cannot forge annotations or properties."""
    where = problem.location or Location()
    parts = [f"file={github_property(where.file)}"] if where.file else []
    if where.line:
        parts.append(f"line={where.line}")
    if where.col:
        parts.append(f"col={where.col}")
    if problem.code:
        parts.append(f"title={problem.code}")
    text = problem.message if problem.hint is None else f"{problem.message}; {problem.hint}"
    return f"::{problem.severity} {','.join(parts)}::{github_data(text)}"


@click.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--format", "output_format", type=click.Choice(["text", "json", "github"]),
              default="text", show_default=True, help="How to print problems.")
def command(paths: tuple[str, ...], output_format: str) -> None:
    """Check spec files and folders of specs (*.yaml, *.yml, recursively).

    Prints one line per problem, `file:line:col: message [code]` (docs/errors.md explains each
    code), and exits 1 if any spec is invalid
    (warnings alone exit 0). Folders holding a `.layerctlignore` file are skipped when found
    recursively, e.g. a folder of specs that are meant to fail.

    \b
    Example:
      layerctl validate specs/
      layerctl validate --format github specs/   # annotations in GitHub Actions
    """
    files, problems = discover(paths)
    for path in files:
        problems.extend(check(path))
    failed = any(p.severity == "error" for p in problems)
    if output_format == "json":
        click.echo(json.dumps({"valid": not failed, "files": len(files), "problems": [
            {"file": p.location.file if p.location else None,
             "line": p.location.line if p.location else None,
             "col": p.location.col if p.location else None,
             "severity": p.severity, "code": p.code, "message": p.message, "hint": p.hint}
            for p in problems]}))
    else:
        render = github_line if output_format == "github" else Problem.line
        for problem in problems:
            click.echo(render(problem))
        missing = [p for p in problems if p.message == NOT_FOUND]
        invalid = len({p.location.file for p in problems
                       if p.severity == "error" and p.location and p.message != NOT_FOUND})
        summary = f"{len(files)} spec(s) checked, {invalid} invalid"
        if missing:
            summary = (f"{summary}; " if files else "no spec checked: ") + (
                f"{len(missing)} path(s) do not exist")
        click.echo(summary, err=True)
    if failed:
        raise SystemExit(1)
