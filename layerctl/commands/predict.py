"""`layerctl predict SPEC --weights W INPUT`: run trained weights on inputs, batch by batch."""

from __future__ import annotations

import click


def check_inputs(stream, plan) -> None:
    """One clear line when the inputs cannot feed the model."""
    import numpy as np

    from layerctl.data.checks import fits, shape_text
    from layerctl.errors import DataError

    expected = plan.input_shape
    if not fits((0,) + tuple(stream.sample_shape), expected):
        raise DataError(
            f"{stream.name}: inputs have shape {shape_text((None,) + tuple(stream.sample_shape))}"
            f" but the spec's input shape is {shape_text(expected)}",
            hint="reshape the inputs, or check that this is the right spec",
        )
    if not (np.issubdtype(stream.dtype, np.number) or stream.dtype == np.bool_):
        raise DataError(f"{stream.name}: inputs have dtype {stream.dtype}; expected numbers")
    if plan.integer_input and np.issubdtype(stream.dtype, np.floating) and stream.array is not None:
        sample = np.asarray(stream.array[:1024])
        if not np.all(sample == np.round(sample)):
            raise DataError(
                f"{stream.name}: the model starts with an Embedding, which takes "
                "integer indices, but the inputs hold fractional numbers"
            )


@click.command("predict")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@click.option(
    "--weights",
    "weights_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Weights file (.npz), e.g. runs/NAME/weights.npz.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Where to write: .npy, .csv or .json [default: CSV on stdout].",
)
@click.option("--key", help="Array name inside an .npz input [default: x].")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option(
    "--classes",
    is_flag=True,
    help="Write the arg-max class of each output instead "
    "of the output values (sigmoid outputs: 1 when > 0.5).",
)
def command(spec_path, input_path, weights_path, output, key, batch_size, classes) -> None:
    """Predict with WEIGHTS on INPUT (.npy, .npz or .csv), in inference mode.

    Inputs are read and written batch by batch (.npy inputs are memory-mapped), so files larger
    than memory work.

    \b
    Example:
      layerctl predict specs/digits_cnn.yaml --weights runs/digits-cnn/weights.npz x.npy -o y.csv
      layerctl predict specs/text_cnn.yaml --weights w.npz lang.npz --classes
    """
    import numpy as np

    from layerctl.commands.common import load_plan, prepare_compute
    from layerctl.data import open_inputs, output_format, write_outputs
    from layerctl.graph import Graph
    from layerctl.memory import check_model_fits
    from layerctl.weights import load_weights_into

    prepare_compute()
    plan = load_plan(spec_path)
    if output is not None:
        output_format(output)  # an unsupported extension fails before any work
    stream = open_inputs(input_path, key)
    check_inputs(stream, plan)
    check_model_fits(plan)  # before the graph allocates its weights
    graph = Graph(plan)
    load_weights_into(graph, weights_path)

    def outputs():
        for batch in stream.batches(batch_size):
            y = graph.forward(batch, training=False)
            if classes:
                y = (y[..., 0] > 0.5).astype(np.int64) if y.shape[-1] == 1 else np.argmax(y, -1)
            yield y

    header = None
    if not classes and len(plan.output_shape) == 2:
        header = [f"output_{i}" for i in range(plan.output_shape[1])]
    elif classes:
        header = ["class"]
    write_outputs(output, outputs(), total=stream.length, header=header)
