"""Rendering for people: the Keras-style model summary (rich table) and its JSON twin.

Only the CLI calls this module; the library itself never prints.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from layerctl.layers import format_shape
from layerctl.plan import Plan


def human_size(n_bytes: float) -> str:
    """Keras's summary sizes: 2 decimals, B/KB/MB/GB/TB/PB, dividing by 1024."""
    units = ["B", "KB", "MB", "GB", "TB", "PB"]
    unit = 0
    while n_bytes >= 1024 and unit < len(units) - 1:
        n_bytes /= 1024
        unit += 1
    return f"{n_bytes:.2f} {units[unit]}"


def is_sequential(plan: Plan) -> bool:
    if len(plan.inputs) != 1 or len(plan.outputs) != 1 or plan.instances:
        return False
    previous = plan.inputs[0].name
    for node in plan.nodes:
        if node.inputs != (previous,) or node.shared or len(node.output_shapes) > 1:
            return False
        previous = node.name
    return True


@dataclass(frozen=True)
class Row:
    """One summary row: a node, or a block instance standing for its nodes."""

    name: str
    type: str
    output_shapes: tuple
    params: int
    trainable_params: int
    inputs: tuple[str, ...]


def summary_rows(plan: Plan, expand: bool = False) -> list[Row]:
    """A row per node; without `expand`, one row per top-level block instance (type = the
    block's name, params = its total, output = its output node's), as DESIGN §3b says."""
    blocks = dict(plan.instances)
    rows: list[Row] = []
    members: dict[str, list] = {}
    for node in plan.nodes:
        top = node.instance.split("/")[0] if node.instance else None
        if top is None or expand:
            rows.append(Row(node.name, node.layer.keras_class, node.output_shapes, node.params,
                            node.trainable_params, node.inputs))
            continue
        if top not in members:
            members[top] = []
            rows.append(Row(top, blocks.get(top, ""), (), 0, 0, ()))
        members[top].append(node)
    out = []
    for row in rows:
        nodes = members.get(row.name) if row.type == blocks.get(row.name) else None
        if nodes:
            inside = {n.name for n in nodes}
            last = nodes[-1]
            sources = tuple(dict.fromkeys(s for n in nodes for s in n.inputs
                                          if s.split(".")[0] not in inside))
            row = Row(row.name, row.type, last.output_shapes, sum(n.params for n in nodes),
                      sum(n.trainable_params for n in nodes), sources)
        out.append(row)
    if expand:
        return out
    shown = {n.name: n.instance.split("/")[0] for n in plan.nodes if n.instance}
    return [replace(row, inputs=tuple(dict.fromkeys(shown.get(s.split(".")[0], s)
                                                    for s in row.inputs)))
            for row in out]


def summary_json(plan: Plan, expand: bool = False) -> dict[str, Any]:
    """The `layerctl shapes --json` object (a DESIGN.md contract: change only with care)."""
    summary: dict[str, Any] = {"name": plan.name}
    if len(plan.inputs) == 1:
        summary["input_shape"] = list(plan.input_shape)
    layers = []
    for row in summary_rows(plan, expand):
        entry = {"name": row.name, "type": row.type, "output_shape": list(row.output_shapes[0]),
                 "params": row.params, "trainable_params": row.trainable_params,
                 "non_trainable_params": row.params - row.trainable_params}
        if len(row.output_shapes) > 1:
            entry["output_shapes"] = [list(shape) for shape in row.output_shapes]
        layers.append(entry)
    summary["layers"] = layers
    summary["inputs"] = [{"name": i.name, "shape": list(i.shape)} for i in plan.inputs]
    summary["outputs"] = [{"name": o, "shape": list(plan.shape_of(o))} for o in plan.outputs]
    summary.update(total_params=plan.total_params, trainable_params=plan.trainable_params,
                   non_trainable_params=plan.non_trainable_params)
    return summary


def summary_table(plan: Plan, bytes_per_param: int = 4, expand: bool = False):
    """A rich renderable like Keras 3's `model.summary()`; DAGs get a `Connected to` column."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    sequential = is_sequential(plan)
    table = Table(title=None, show_lines=False, expand=False)
    table.add_column("Layer (type)", no_wrap=False, min_width=24)
    table.add_column("Output Shape", min_width=20)
    table.add_column("Param #", justify="right", min_width=10)
    if not sequential:
        table.add_column("Connected to", min_width=16, overflow="fold")
        for model_input in plan.inputs:
            table.add_row(f"{model_input.name} (InputLayer)", format_shape(model_input.shape),
                          "0", "-")
    for row in summary_rows(plan, expand):
        shapes = "\n".join(format_shape(s) for s in row.output_shapes)
        cells = [f"{row.name} ({row.type})", shapes, f"{row.params:,}"]
        if not sequential:
            cells.append(", ".join(row.inputs))
        table.add_row(*cells)

    def footer(label: str, count: int) -> str:
        return f" {label}: {count:,} ({human_size(count * bytes_per_param)})"

    return Group(
        Text(f'Model: "{plan.name}"', style="bold"),
        table,
        Text(footer("Total params", plan.total_params)),
        Text(footer("Trainable params", plan.trainable_params)),
        Text(footer("Non-trainable params", plan.non_trainable_params)),
    )
