"""Error codes: every code layerctl uses is listed in layerctl/error_codes.py and explained in
docs/errors.md with an example and a fix (and nothing is documented that the code lacks); every
problem printed carries a code, in text, JSON and GitHub output alike."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from layerctl import errors
from layerctl.cli import cli
from layerctl.error_codes import CODES

ROOT = Path(__file__).parent.parent
DOC = (ROOT / "docs" / "errors.md").read_text()
SECTIONS = dict(re.findall(r"^## (LC\d{3}) (.+)$", DOC, re.M))


def used_codes() -> dict[str, list[str]]:
    """Every `code="LC..."` (keyword or class attribute) in the package, with where it is."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "layerctl").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            value = None
            if isinstance(node, ast.keyword) and node.arg == "code":
                value = node.value
            elif isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "code" for t in node.targets):
                value = node.value
            elif isinstance(node, ast.arguments):  # a helper's default: `code: str = "LC111"`
                params = node.args[len(node.args) - len(node.defaults):]
                value = next((d for a, d in zip(params, node.defaults, strict=True)
                              if a.arg == "code"), None)
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.setdefault(value.value, []).append(f"{path.name}:{value.lineno}")
    return found


def test_every_code_used_is_listed_and_every_listed_code_is_used():
    used = used_codes()
    assert set(used) - set(CODES) == set(), {c: used[c] for c in set(used) - set(CODES)}
    assert set(CODES) - set(used) == set()
    assert all(re.fullmatch(r"LC[1-6]\d\d", code) for code in CODES)


def test_the_document_explains_each_code_once_with_an_example_and_a_fix():
    assert list(SECTIONS) == sorted(CODES)  # in order, each once
    for code, title in CODES.items():
        assert SECTIONS[code] == title, code
        body = DOC.split(f"## {code} ", 1)[1].split("\n## ", 1)[0]
        assert "\nExample: " in body and "\nFix: " in body, code


def test_every_error_class_has_a_listed_code():
    import importlib

    for module in ("atomic", "export", "importer", "importer.hdf5", "importer.keras_archive",
                   "memory", "training.loop", "training.runs"):  # where subclasses live
        importlib.import_module(f"layerctl.{module}")
    classes, stack = [], [errors.LayerctlError]

    while stack:
        cls = stack.pop()
        classes.append(cls)
        stack += cls.__subclasses__()
    assert len(classes) >= 12
    for cls in classes:
        assert cls.code in CODES, cls


def test_a_problem_without_a_code_gets_its_error_class_code():
    error = errors.DataError(problems=[errors.Problem("x"), errors.Problem("y", code="LC303")])
    assert [p.code for p in error.problems] == ["LC300", "LC303"]
    assert str(error) == "x\ny"  # the message; the command line adds the code:
    assert [p.line() for p in error.problems] == ["x [LC300]", "y [LC303]"]


INVALID = sorted((ROOT / "specs" / "invalid").glob("*.yaml"))


@pytest.mark.parametrize("output", ["text", "json", "github"])
def test_every_problem_validate_prints_has_a_code(output, monkeypatch):
    monkeypatch.chdir(ROOT / "specs" / "invalid")
    result = CliRunner().invoke(cli, ["validate", "--format", output,
                                      *[p.name for p in INVALID]])
    assert result.exit_code == 1
    if output == "json":
        problems = json.loads(result.stdout)["problems"]
        assert len(problems) >= len(INVALID)
        assert all(p["code"] in CODES for p in problems), problems
        return
    lines = [line for line in result.stdout.splitlines() if line]
    assert len(lines) >= len(INVALID)
    pattern = r".* \[(LC\d{3})\]$" if output == "text" else r"::error .*,title=(LC\d{3})::.*"
    for line in lines:
        match = re.fullmatch(pattern, line)
        assert match and match.group(1) in CODES, line
