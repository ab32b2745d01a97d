"""`layerctl plot SPEC -o model.svg`: the model as a diagram (SVG, or an HTML page holding it)."""

from __future__ import annotations

import click


@click.command("plot")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=str))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The file to write: .svg, or .html for a page holding the diagram.")
@click.option("--expand", is_flag=True, help="Draw the layers of each block instance inside a "
              "frame instead of one box per instance.")
@click.option("--rankdir", type=click.Choice(["TB", "LR"]), default="TB", show_default=True,
              help="Top to bottom, or left to right (as Keras's plot_model).")
def command(spec: str, output: str, expand: bool, rankdir: str) -> None:
    """Draw SPEC as Keras's plot_model(show_shapes=True, show_layer_names=True) does: a box per
    layer with its name, type, output shape and parameter count, an arrow per connection.

    \b
    Example:
      layerctl plot specs/digits_cnn.yaml -o model.svg
      layerctl plot specs/residual_blocks.yaml -o model.html --expand --rankdir LR
    """
    from layerctl.atomic import write_text_atomic
    from layerctl.commands.common import echo_warnings, load_plan
    from layerctl.errors import DataError
    from layerctl.plot.svg import model_html, model_svg

    if not output.endswith((".svg", ".html", ".htm")):
        raise DataError(f"{output}: the diagram is written as .svg or .html",
                        hint="end the output name in .svg or .html")
    plan = load_plan(spec)
    echo_warnings(plan.warnings)
    draw = model_svg if output.endswith(".svg") else model_html
    write_text_atomic(output, draw(plan, expand, rankdir) + "\n")
