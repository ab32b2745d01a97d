"""Rendering for people: the Keras-style model summary (rich table) and its JSON twin.

Only the CLI calls this module; the library itself never prints.
"""

from __future__ import annotations

from typing import Any

from layerctl.layers import format_shape
from layerctl.plan import INPUT, Plan


def human_size(n_bytes: float) -> str:
    """Keras's summary sizes: 2 decimals, B/KB/MB/GB/TB/PB, dividing by 1024."""
    units = ["B", "KB", "MB", "GB", "TB", "PB"]
    unit = 0
    while n_bytes >= 1024 and unit < len(units) - 1:
        n_bytes /= 1024
        unit += 1
    return f"{n_bytes:.2f} {units[unit]}"


def is_sequential(plan: Plan) -> bool:
    previous = INPUT
    for node in plan.nodes:
        if node.inputs != (previous,):
            return False
        previous = node.name
    return True


def summary_json(plan: Plan) -> dict[str, Any]:
    """The `layerctl shapes --json` object (a DESIGN.md contract: change only with care)."""
    return {
        "name": plan.name,
        "input_shape": list(plan.input_shape),
        "layers": [
            {"name": node.name, "type": node.layer.keras_class,
             "output_shape": list(node.output_shape), "params": node.params,
             "trainable_params": node.trainable_params,
             "non_trainable_params": node.params - node.trainable_params}
            for node in plan.nodes
        ],
        "total_params": plan.total_params,
        "trainable_params": plan.trainable_params,
        "non_trainable_params": plan.non_trainable_params,
    }


def summary_table(plan: Plan, bytes_per_param: int = 4):
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
        table.add_row(f"{INPUT} (InputLayer)", format_shape(plan.input_shape), "0", "-")
    for node in plan.nodes:
        row = [f"{node.name} ({node.layer.keras_class})", format_shape(node.output_shape),
               f"{node.params:,}"]
        if not sequential:
            row.append(", ".join(node.inputs))
        table.add_row(*row)

    def footer(label: str, count: int) -> str:
        return f" {label}: {count:,} ({human_size(count * bytes_per_param)})"

    return Group(
        Text(f'Model: "{plan.name}"', style="bold"),
        table,
        Text(footer("Total params", plan.total_params)),
        Text(footer("Trainable params", plan.trainable_params)),
        Text(footer("Non-trainable params", plan.non_trainable_params)),
    )
