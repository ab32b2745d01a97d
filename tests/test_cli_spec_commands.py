"""`validate`, `shapes` and `schema` through the real command group."""

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from layerctl.cli import cli
from layerctl.commands.schema import schema_text

ROOT = Path(__file__).resolve().parent.parent
MNIST = ROOT / "specs" / "mnist_cnn.yaml"


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_committed_schema_is_current():
    committed = (ROOT / "layerctl.schema.json").read_text()
    assert committed == schema_text(), "run `layerctl schema -o layerctl.schema.json`"


def test_every_spec_points_at_the_schema():
    for path in (ROOT / "specs").rglob("*.yaml"):
        first = path.read_text().splitlines()[0]
        target = (path.parent / first.split("$schema=", 1)[1]).resolve()
        assert first.startswith("# yaml-language-server: $schema="), path
        assert target == ROOT / "layerctl.schema.json", path


def test_schema_to_file(tmp_path):
    out = tmp_path / "schema.json"
    assert run("schema", "-o", str(out)).exit_code == 0
    schema = json.loads(out.read_text())
    assert "layers" in schema["properties"]


def test_shapes_json_contract():
    result = run("shapes", str(MNIST), "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert set(data) == {
        "name",
        "input_shape",
        "layers",
        "inputs",
        "outputs",
        "total_params",
        "trainable_params",
        "non_trainable_params",
    }
    assert data["input_shape"] == [None, 28, 28, 1]
    assert data["inputs"] == [{"name": "input", "shape": [None, 28, 28, 1]}]
    assert data["outputs"] == [{"name": "dense_1", "shape": [None, 10]}]
    assert data["layers"][0] == {
        "name": "conv2d",
        "type": "Conv2D",
        "output_shape": [None, 26, 26, 32],
        "params": 320,
        "trainable_params": 320,
        "non_trainable_params": 0,
    }
    assert (data["total_params"], data["trainable_params"], data["non_trainable_params"]) == (
        1_200_394,
        1_200_138,
        256,
    )


def test_shapes_table_like_keras_summary():
    result = run("shapes", str(MNIST))
    assert result.exit_code == 0
    out = result.stdout
    for text in [
        'Model: "mnist-cnn"',
        "Layer (type)",
        "Output Shape",
        "Param #",
        "dense (Dense)",
        "(None, 12, 12, 64)",
        "1,179,776",
        " Total params: 1,200,394 (4.58 MB)",
        " Trainable params: 1,200,138 (4.58 MB)",
        " Non-trainable params: 256 (1.00 KB)",
    ]:
        assert text in out, text


def test_shapes_dag_has_connected_to_column():
    result = run("shapes", str(ROOT / "specs" / "residual_dag.yaml"))
    assert "Connected to" in result.stdout and "stem, branch_out" in result.stdout


def test_shapes_error_is_one_located_line(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("input_shape: [4]\nlayers:\n  - {type: Dence, units: 3}\n")
    result = run("shapes", str(spec))
    assert result.exit_code == 1
    assert (
        result.stderr.strip() == (
            f"{spec}:3:12: unknown layer type 'Dence'; did you mean 'Dense'? [LC102]")
    )


def test_validate_formats(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("input_shape: [4]\nlayers:\n  - {type: Dense, unit: 3}\n")
    github = run("validate", "--format", "github", str(spec))
    assert github.exit_code == 1
    assert (
        f"::error file={spec},line=3,col=19,title=LC104::unknown argument 'unit' for Dense; "
        "did you mean 'units'?"
        in github.stdout
    )
    as_json = json.loads(run("validate", "--format", "json", str(spec)).stdout)
    assert as_json["valid"] is False and as_json["files"] == 1
    assert [p["code"] for p in as_json["problems"]] == ["LC105", "LC104"]  # docs/errors.md
    assert {"line": 3, "col": 19, "severity": "error"}.items() <= as_json["problems"][1].items()


def test_validate_mask_warning_does_not_fail(tmp_path):
    spec = tmp_path / "mask.yaml"
    spec.write_text(
        "input_shape: [10, 3]\nlayers:\n  - {type: Masking}\n  - {type: Flatten}\n"
        "  - {type: Dense, units: 2}\n"
    )
    result = run("validate", str(spec))
    assert result.exit_code == 0
    assert (
        f"{spec}:4:6: warning: layer 'flatten' (of type Flatten) receives a mask but does not "
        "support masking"
    ) in result.stdout


def test_validate_missing_path_and_usage():
    missing = run("validate", "nope.yaml")
    assert missing.exit_code == 1 and "nope.yaml: no such file or folder" in missing.stdout
    assert run("validate").exit_code == 2


def test_entry_point_has_no_traceback(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("layers: [")
    for argv in (["layerctl"], [sys.executable, "-m", "layerctl"]):
        cmd = argv if argv[0] != "layerctl" else [str(Path(sys.executable).parent / "layerctl")]
        done = subprocess.run(cmd + ["shapes", str(spec)], capture_output=True, text=True)
        assert done.returncode == 1
        assert "Traceback" not in done.stderr and "YAML syntax error" in done.stderr
