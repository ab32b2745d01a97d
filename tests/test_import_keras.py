"""`layerctl import` of Keras 3 `.keras` archives: every bundled spec that `export` writes to
`.keras` comes back with the same layers, arguments and weights (bit for bit); archives that
climb out of their folder or hold huge members are refused with the member's name."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from layerctl.cli import cli
from layerctl.importer import import_source
from layerctl.importer.keras_archive import ArchiveError
from layerctl.plan import build_plan
from layerctl.spec import load_spec, parse_spec

SPECS_DIR = Path(__file__).parent.parent / "specs"
SPECS = sorted(SPECS_DIR.glob("*.yaml")) + sorted((SPECS_DIR / "notes").glob("*.yaml"))


def same_tuple(value):
    """Keras's standardize_tuple: (3, 3) and 3 are one argument."""
    if isinstance(value, list | tuple) and value and all(
            type(v) is int and v == value[0] for v in value):
        return value[0]
    return value


def layer_rows(plan) -> list[tuple]:
    ignored = {"type", "name", "inputs", "input_shape", "input_dim", "input_length"}
    # Keras keeps no name for a layer's second call: an `apply:` is its owner's k-th use
    uses: dict[str, int] = {}
    rename = {}
    for n in plan.nodes:
        if n.owner != n.name:
            uses[n.owner] = uses.get(n.owner, 0) + 1
            rename[n.name] = f"{n.owner}#{uses[n.owner]}"
    return sorted((rename.get(n.name, n.name), n.owner, n.layer.keras_class,
                   tuple(rename.get(i, i) for i in n.inputs), n.output_shapes,
                   {k: same_tuple(v) for k, v in n.layer.model_dump(exclude=ignored).items()})
                  for n in plan.nodes)  # Keras orders the branches of a graph its own way


@pytest.mark.oracle
@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_export_then_import_gives_the_same_layers_arguments_and_weights(path, tmp_path):
    from test_export import need, trained_graph

    from layerctl.export import export_model

    need("keras")
    plan = build_plan(*load_spec(path))
    graph = trained_graph(plan)
    archive = tmp_path / "model.keras"
    export_model(plan, graph.weights, archive, "keras")
    out, weights_out = tmp_path / "back.yaml", tmp_path / "back.npz"
    result = CliRunner().invoke(cli, ["import", str(archive), "-o", str(out),
                                      "--weights-out", str(weights_out)])
    assert result.exit_code == 0, result.output
    back = build_plan(*parse_spec(out.read_text(), str(out)))
    assert layer_rows(back) == layer_rows(plan)
    with np.load(weights_out) as loaded:
        assert sorted(loaded) == sorted(graph.weights)
        for key, value in graph.weights.items():
            assert loaded[key].dtype == value.dtype and np.array_equal(loaded[key], value), key


def write_zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


@pytest.mark.parametrize(("members", "message"), [
    ({"config.json": b"{}", "../evil.h5": b"x"},
     "member '../evil.h5': a path outside the archive is refused"),
    ({"/etc/passwd": b"x", "config.json": b"{}"},
     "member '/etc/passwd': a path outside the archive is refused"),
    ({"metadata.json": b" " * 1_000_001, "config.json": b"{}"},
     "member 'metadata.json' is 1,000,001 bytes; at most 1,000,000 are read"),
    ({"model.weights.h5": b""}, "no config.json: not a Keras 3 .keras archive"),
])
def test_hostile_archives_are_refused_with_the_member_named(tmp_path, members, message):
    path = tmp_path / "model.keras"
    write_zip(path, members)
    with pytest.raises(ArchiveError) as caught:
        import_source(str(path))
    assert caught.value.problems[0].render() == f"{path}: {message}"


def test_a_member_that_expands_past_its_limit_is_refused_while_reading(tmp_path, monkeypatch):
    from layerctl.importer import keras_archive

    monkeypatch.setitem(keras_archive.LIMITS, "config.json", 1000)
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", b"{" + b" " * 100_000 + b"}")
    # forge the sizes the header declares: the reader must not trust them
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(signature)
        data[at + offset:at + offset + 4] = (10).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError) as caught:
        import_source(str(path))
    assert "config.json" in caught.value.problems[0].render()


def test_a_truncated_weights_file_is_one_located_line(tmp_path):
    config = (b'{"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", '
              b'"config": {"units": 2, "batch_input_shape": [null, 3]}}]}}')
    path = tmp_path / "model.keras"
    write_zip(path, {"config.json": config, "model.weights.h5": b"\x89HDF\r\n\x1a\n\0\0"})
    result = CliRunner().invoke(cli, ["import", str(path), "-o", str(tmp_path / "m.yaml")])
    assert result.exit_code == 1
    assert result.output.startswith(f"{path}:model.weights.h5: not a readable HDF5 file")
    assert "Traceback" not in result.output


@pytest.mark.parametrize("value", [1e-06, 1e-07, 2.5e-10, 1e+20, 0.001, 3.0, float("inf")])
def test_written_floats_read_back_as_the_same_number(value):
    import yaml

    from layerctl.importer.writer import scalar

    # PyYAML follows YAML 1.1: `1e-06` without a dot would come back as a string
    assert yaml.safe_load(f"x: {scalar(value)}")["x"] == value


@pytest.mark.oracle
def test_block_instances_come_back_as_one_block_with_its_params(tmp_path):
    """specs/residual_blocks.yaml's three instances of one block (the third with kernel 2) are
    written by export as three nested models; import makes them one block again, whose param
    is the one value that differs."""
    import yaml
    from test_export import need, trained_graph

    from layerctl.export import export_model

    need("keras")
    plan = build_plan(*load_spec(SPECS_DIR / "residual_blocks.yaml"))
    export_model(plan, trained_graph(plan).weights, tmp_path / "m.keras", "keras")
    spec = yaml.safe_load(import_source(str(tmp_path / "m.keras")).text)
    assert list(spec["blocks"]) == ["res"]
    assert spec["blocks"]["res"]["params"] == {"kernel_size": 3}
    assert [(e.get("block"), e.get("kernel_size")) for e in spec["layers"] if "block" in e] == [
        ("res", None), ("res", None), ("res", 2)]
