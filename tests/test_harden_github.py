"""Class 8 of issue 13: `validate --format github` cannot be made to forge annotations.

A file name holding a newline added an `::error` line of its own; one holding a comma added
properties. Data is escaped as GitHub's workflow commands require (% CR LF -> %25 %0D %0A), and
property values also escape ':' and ',' (%3A, %2C).
"""

from click.testing import CliRunner

from layerctl.cli import cli
from layerctl.commands.validate import github_data, github_line, github_property
from layerctl.errors import Location, Problem

BAD = "input_shape: [4]\nlayers:\n  - {type: Dense, unit: 3}\n"


def test_escaping_rules():
    assert github_data("100% a\r\nb") == "100%25 a%0D%0Ab"
    assert github_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    assert github_data("a:b,c") == "a:b,c"  # only properties escape ':' and ','


def test_forged_file_name_stays_one_annotation(tmp_path):
    name = "x\n::error file=README.md,line=1::owned,title=forged.yaml"
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / name).write_text(BAD)
    result = CliRunner().invoke(cli, ["validate", "--format", "github", str(folder)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2  # the spec's two problems, and nothing forged
    for line, col, code in zip(lines, ["5", "19"], ["LC105", "LC104"], strict=True):
        assert line.startswith("::error file=")
        properties, _ = line.removeprefix("::error ").split("::", 1)
        assert properties.split(",") == [
            f"file={github_property(str(folder))}/x%0A%3A%3Aerror file=README.md%2Cline=1"
            "%3A%3Aowned%2Ctitle=forged.yaml", "line=3", f"col={col}", f"title={code}"]


def test_message_newlines_and_percent_are_escaped():
    problem = Problem("bad\nvalue 100%", Location("a,b:c.yaml", 3, 4), hint="try\r\nthis")
    assert github_line(problem) == (
        "::error file=a%2Cb%3Ac.yaml,line=3,col=4::bad%0Avalue 100%25; try%0D%0Athis")
