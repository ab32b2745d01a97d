"""Helpers shared by the commands: loading a spec into a plan, printing warnings, a console."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

import click

from layerctl.errors import Problem


def prepare_compute() -> None:
    """Process settings for commands that run the graph (see layerctl.runtime)."""
    from layerctl.runtime import tune_allocator

    tune_allocator()


def load_spec_and_plan(path: str):
    """Spec file -> (validated ModelSpec, its Plan); raises SpecError with every located
    problem. Commands that need the `compile:`/`train:` blocks take both from one parse."""
    from layerctl.errors import SpecError
    from layerctl.inputs import refuse_special
    from layerctl.plan import build_plan
    from layerctl.spec import load_spec

    refuse_special(path, SpecError)  # a FIFO would block, /dev/zero never end
    check_spec_exists(path)
    spec, marks = load_spec(path)
    return spec, build_plan(spec, marks)


def check_spec_exists(path: str) -> None:
    """SpecError `no such file` with a did-you-mean among the spec files beside `path`."""
    from pathlib import Path

    from layerctl.errors import Location, SpecError
    from layerctl.suggest import missing_file_hint

    if not Path(path).exists():
        hint = missing_file_hint(path, suffixes=(".yaml", ".yml"))
        raise SpecError("no such file", Location(path), hint, code="LC301")


def load_plan(path: str):
    """Spec file -> validated Plan (raises SpecError with every located problem)."""
    return load_spec_and_plan(path)[1]


def echo_warnings(warnings: Iterable[Problem]) -> None:
    for warning in warnings:
        click.echo(warning.line(), err=True)


def console(stderr: bool = False, width: int | None = None):
    """A rich console (rich itself honours NO_COLOR). `width` applies when the output is not a
    terminal, so piped or captured tables are as wide as Keras prints them, not 80 columns."""
    from rich.console import Console

    class PipeConsole(Console):
        def on_broken_pipe(self) -> None:
            # rich exits 1 here; the CLI handles a closed pipe once, for every writer (cli.py)
            raise BrokenPipeError

    stream = sys.stderr if stderr else sys.stdout
    console = PipeConsole(file=stream, highlight=False)
    if width is not None and not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = width
    return console
