"""`layerctl export SPEC --weights W -o OUT`: hand a trained model to ONNX Runtime or Keras.

Wiring only: the format comes from `--format` or OUT's suffix, the optional package it needs is
checked before any work, and `layerctl.export` builds and writes the file. One summary line goes
to stderr.
"""

from __future__ import annotations

import click

from layerctl.export import DEFAULT_OPSET, FORMATS


@click.command("export")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option("--weights", "weights_path", required=True, type=click.Path(dir_okay=False),
              help="Trained weights (.npz), e.g. runs/NAME/weights.npz.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Model file to write: OUT.onnx or OUT.keras.")
@click.option("--format", "format_", type=click.Choice(FORMATS),
              help="onnx (needs layerctl[onnx]) or keras (needs layerctl[keras]). "
              "[default: from OUT's suffix]")
@click.option("--opset", type=int, default=None,
              help=f"ONNX opset to write. [default: {DEFAULT_OPSET}]")
def command(spec_path, weights_path, output, format_, opset) -> None:
    """Write SPEC with trained WEIGHTS as an ONNX model or a Keras 3 model file.

    The ONNX model takes `input` (a batch of any size, as `layerctl predict` reads it) and
    returns the last layer's output, in inference mode. The Keras model is functional, with the
    spec's layer names and arguments; load it with keras.saving.load_model.

    \b
    Example:
      layerctl export specs/digits_cnn.yaml --weights runs/digits-cnn/weights.npz -o digits.onnx
      layerctl export specs/text_lstm.yaml --weights w.npz --format keras -o text.keras
    """
    from layerctl.commands.common import echo_warnings, load_plan
    from layerctl.export import export_model, format_of, require

    format_ = format_ or format_of(output)
    if format_ is None:
        raise click.UsageError(f"cannot tell the format from '{output}': pass --format "
                               "onnx or keras, or end -o in .onnx or .keras")
    if opset is not None and format_ != "onnx":
        raise click.UsageError("--opset applies to --format onnx only")
    if format_ == "onnx":
        require("onnx", "onnx", "exporting to ONNX")
    else:
        from layerctl.export.keras import load_keras

        load_keras()
    plan = load_plan(spec_path)
    echo_warnings(plan.warnings)
    weights = _load_weights(plan, weights_path)
    export_model(plan, weights, output, format_, DEFAULT_OPSET if opset is None else opset)
    click.echo(_summary(plan, output, format_, opset), err=True)


def _load_weights(plan, path: str):
    """The weights file, checked name by name against the spec (every mismatch at once)."""
    from layerctl.graph import Graph
    from layerctl.memory import check_model_fits
    from layerctl.weights import load_weights_into

    check_model_fits(plan)  # before the graph allocates its weights
    graph = Graph(plan)
    load_weights_into(graph, path)
    return graph.weights


def _summary(plan, output: str, format_: str, opset: int | None) -> str:
    def shape(dims) -> str:
        return "(" + ", ".join("batch" if i == 0 else str(d) for i, d in enumerate(dims)) + ")"

    if format_ == "onnx":
        dtype = "int64" if plan.integer_input else "float32"
        return (f"wrote {output}: ONNX opset {DEFAULT_OPSET if opset is None else opset}, input "
                f"'input' {dtype} {shape(plan.input_shape)} -> output '{plan.output}' "
                f"{shape(plan.output_shape)}")
    import keras

    return (f"wrote {output}: Keras {keras.__version__} functional model '{plan.name}', "
            f"{len(plan.nodes)} layers, {plan.total_params:,} parameters")
