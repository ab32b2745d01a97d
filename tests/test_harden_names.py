"""Class 2 of issue 13: model and layer names reach the file system and weight keys checked.

A model name is one safe path component (it is the default run folder, runs/<name>); a layer
name has no NUL, control character, '/' (weight keys are layer/weight) or '.' (output indices,
`lstm.1`), and both are bounded in length. Each is a located `validate` error.
"""

import pytest
from harden import assert_refused, layerctl, snapshot, tiny_project

from layerctl.errors import SpecError
from layerctl.spec import parse_spec

BASE = "input_shape: [4]\nlayers:\n  - {type: Dense, units: 2, name: %s}\n"


@pytest.mark.parametrize("name, reason", [
    ('"/abs/path"', "'/'"),
    ('"../../x"', "'/'"),
    ('"a\\\\b"', "'\\'"),
    ('"."', "'.' or '..'"),
    ('".."', "'.' or '..'"),
    ('"a\\0b"', "control characters"),
    ('"a\\nb"', "control characters"),
    ('""', "empty"),
    ('"' + "x" * 100_000 + '"', "100,000 characters"),
])
def test_unsafe_model_name_is_a_located_error(name, reason):
    text = f"name: {name}\n" + BASE % "d"
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "m.yaml")
    [problem] = caught.value.problems
    assert problem.location.line == 1 and "invalid model name" in problem.message
    assert reason in problem.message and len(problem.render()) < 300


@pytest.mark.parametrize("name, reason", [
    ('"a\\0b"', "control characters"),
    ('"a\\tb"', "control characters"),
    ('"a/b"', "'/'"),
    ('"lstm.1"', "'.'"),
    ('""', "empty"),
    ('"' + "y" * 100_000 + '"', "100,000 characters"),
])
def test_unsafe_layer_name_is_a_located_error(name, reason):
    with pytest.raises(SpecError) as caught:
        parse_spec(BASE % name, "m.yaml")
    [problem] = caught.value.problems
    assert problem.location.line == 3 and "invalid layer name" in problem.message
    assert reason in problem.message and "\n" not in problem.render()
    assert len(problem.render()) < 300


def test_safe_names_pass():
    spec, _ = parse_spec("name: my-model_v2.1\n" + BASE % "dense_ünïcode-1", "m.yaml")
    assert spec.name == "my-model_v2.1" and spec.layers[0].name == "dense_ünïcode-1"


def test_validate_reports_the_name_located(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text('name: "../../escape"\n' + BASE % "d")
    result = layerctl("validate", spec, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [line] = result.stdout.splitlines()
    assert line.startswith(f"{spec}:1:7: invalid model name '../../escape'")


@pytest.mark.parametrize("name", ['"../../escaped"', '"/tmp/escaped-by-name"'])
def test_train_never_leaves_runs(tmp_path, name):
    spec = tiny_project(tmp_path)
    spec.write_text(spec.read_text().replace("name: tiny", f"name: {name}"))
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (work / "data.npz").write_bytes((tmp_path / "data.npz").read_bytes())
    before = snapshot(tmp_path)
    result = layerctl("train", spec, "--data", "data.npz", "-q", cwd=work)
    assert_refused(result, "invalid model name")
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "escaped").exists()


def test_file_stem_that_is_dot_cannot_name_the_run_folder(tmp_path):
    spec = tiny_project(tmp_path)
    dotted = tmp_path / "..yaml"  # Path("..yaml").stem == "."
    dotted.write_text(spec.read_text().replace("name: tiny\n", ""))
    result = layerctl("train", dotted, "-q", cwd=tmp_path)
    assert_refused(result, "cannot name a run folder", "'.'")
    assert not (tmp_path / "runs").exists()


def test_layer_name_with_nul_does_not_train(tmp_path):
    spec = tiny_project(tmp_path)
    spec.write_text(spec.read_text().replace("units: 5,", 'units: 5, name: "a\\0b",'))
    result = layerctl("train", spec, "--out", "run", "-q", cwd=tmp_path)
    assert_refused(result, "invalid layer name", "control characters")
    assert not (tmp_path / "run").exists()
