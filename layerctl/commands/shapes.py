"""`layerctl shapes SPEC`: the model summary (output shapes and parameter counts)."""

from __future__ import annotations

import json

import click


@click.command("shapes")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--expand", is_flag=True, help="One row per layer inside block instances.")
def command(spec: str, as_json: bool, expand: bool) -> None:
    """Print a Keras-style summary of SPEC: each layer's output shape and parameter count.

    \b
    Example:
      layerctl shapes specs/mnist_cnn.yaml
      layerctl shapes specs/mnist_cnn.yaml --json | jq .total_params
    """
    from layerctl.commands.common import echo_warnings, load_plan

    plan = load_plan(spec)
    echo_warnings(plan.warnings)
    if as_json:
        from layerctl.report import summary_json

        click.echo(json.dumps(summary_json(plan, expand)))
        return
    from layerctl.commands.common import console
    from layerctl.report import is_sequential, summary_table

    console(width=88 if is_sequential(plan) else 108).print(summary_table(plan, expand=expand))
