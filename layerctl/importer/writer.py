"""The imported model as readable spec YAML: one layer a line where it fits, comments kept.

`ImportedModel` is what every source reader produces; `render` writes it with flow-style
layers (`- {type: Dense, units: 64}`) and, on each layer, a comment naming the source line and
every argument that was translated (`# line 12: was border_mode='same'`). A layer too long for
one line is written in block style with the comments on the keys they concern.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from layerctl.importer.translate import Param

WIDTH = 99
PLAIN = re.compile(r"^[A-Za-z_$][A-Za-z0-9_.\-/$]*$")
YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "none", "y", "n", "~"}


@dataclass
class Entry:
    """One `layers:` entry: a layer (`type`), an `apply:` or a block instance (`block`)."""

    args: dict[str, Any]  # type/apply/block first, then arguments, name, inputs
    notes: list[str] = field(default_factory=list)
    line: int | None = None


@dataclass
class Block:
    params: dict[str, Any] | list[str]
    inputs: list[str]
    layers: list[Entry]
    output: str | None = None
    line: int | None = None


@dataclass
class ImportedModel:
    name: str | None = None
    header: list[str] = field(default_factory=list)
    input_shape: list | None = None
    inputs: list[dict[str, Any]] | None = None
    data_format: str | None = None
    data_format_note: str | None = None
    blocks: dict[str, Block] = field(default_factory=dict)
    layers: list[Entry] = field(default_factory=list)
    outputs: list[str] | None = None
    compile: dict[str, Any] | None = None
    train: dict[str, Any] | None = None
    notes: dict[str, list[str]] = field(default_factory=dict)  # top-level key -> comments
    weight_groups: dict[str, str] = field(default_factory=dict)  # layer -> weights file group
    keras_names: dict[str, str] = field(default_factory=dict)  # layer -> its source name
    keras1: bool = False


def scalar(value: Any) -> str:
    if isinstance(value, Param):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        if e and "." not in mantissa:
            text = f"{mantissa}.0e{exponent}"  # YAML 1.1 reads 1e-06 as a string
        return {"inf": ".inf", "-inf": "-.inf", "nan": ".nan"}.get(text, text)
    if isinstance(value, str):
        if PLAIN.match(value) and value.lower() not in YAML_WORDS and not value.startswith("$"):
            return value
        return json.dumps(value)
    raise TypeError(f"cannot write {type(value).__name__}")


def flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{scalar(k)}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    return scalar(value)


def comment(entry: Entry) -> str:
    if not entry.notes:
        return ""
    return "  # " + "; ".join(entry.notes) + (f", line {entry.line}" if entry.line else "")


def entry_lines(entry: Entry, indent: str) -> list[str]:
    one = f"{indent}- {flow(entry.args)}"
    note = comment(entry)
    if len(one + note) <= WIDTH:
        return [one + note]
    if len(one) <= WIDTH:
        return [f"{indent}# {note[4:]}", one] if note else [one]
    lines = [f"{indent}# {note[4:]}"] if note else []
    for i, (key, value) in enumerate(entry.args.items()):
        lead = f"{indent}- " if i == 0 else f"{indent}  "
        lines.append(f"{lead}{scalar(key)}: {flow(value)}")
    return lines


def render(model: ImportedModel) -> str:
    out = [f"# {line}" if line else "#" for line in model.header]
    if model.name:
        out.append(f"name: {scalar(model.name)}")
    if model.input_shape is not None:
        out.append(f"input_shape: {flow(model.input_shape)}")
    if model.inputs is not None:
        out.append("inputs:")
        out += [f"  - {flow(i)}" for i in model.inputs]
    if model.data_format:
        if model.data_format_note:
            out.append(f"# {model.data_format_note}")
        out.append(f"data_format: {model.data_format}")
    if model.blocks:
        out.append("blocks:")
        for name, block in model.blocks.items():
            where = f"  # line {block.line}" if block.line else ""
            out.append(f"  {scalar(name)}:{where}")
            if block.params:
                out.append(f"    params: {flow(block.params)}")
            out.append(f"    inputs: {flow(block.inputs)}")
            out.append("    layers:")
            for entry in block.layers:
                out += entry_lines(entry, "      ")
            if block.output:
                out.append(f"    output: {scalar(block.output)}")
    out.append("layers:")
    for entry in model.layers:
        out += entry_lines(entry, "  ")
    if model.outputs is not None:
        out.append(f"outputs: {flow(model.outputs)}")
    for key in ("compile", "train"):
        section = getattr(model, key)
        if not section:
            continue
        out += [f"# {n}" for n in model.notes.get(key, [])]
        out.append(f"{key}:")
        out += [f"  {scalar(k)}: {flow(v)}" for k, v in section.items()]
    return "\n".join(out) + "\n"
