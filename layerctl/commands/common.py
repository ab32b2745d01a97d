"""Helpers shared by the commands: loading a spec into a plan, printing warnings, a console."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

import click

from layerctl.errors import Problem


def load_plan(path: str):
    """Spec file -> validated Plan (raises SpecError with every located problem)."""
    from layerctl.plan import build_plan
    from layerctl.spec import load_spec

    spec, marks = load_spec(path)
    return build_plan(spec, marks)


def echo_warnings(warnings: Iterable[Problem]) -> None:
    for warning in warnings:
        click.echo(warning.render(), err=True)


def console(stderr: bool = False):
    """A rich console that honours NO_COLOR and plain output when not on a terminal."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, no_color="NO_COLOR" in os.environ or None,
                   highlight=False, soft_wrap=False)
