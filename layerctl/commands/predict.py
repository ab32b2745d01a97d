"""`layerctl predict SPEC --weights W INPUT`: run trained weights on inputs, batch by batch."""

from __future__ import annotations

import click


def column_choice(label: str | None) -> str | int | None:
    """`--label 3` is a 0-based column index, `--label target` a header name."""
    return int(label) if label is not None and label.lstrip("-").isdigit() else label


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
            hint="reshape the inputs, or check that this is the right spec", code="LC303",
        )
    if not (np.issubdtype(stream.dtype, np.number) or stream.dtype == np.bool_):
        raise DataError(f"{stream.name}: inputs have dtype {stream.dtype}; expected numbers",
                        code="LC303")
    if plan.integer_input and np.issubdtype(stream.dtype, np.floating) and stream.array is not None:
        sample = np.asarray(stream.array[:1024])
        if not np.all(sample == np.round(sample)):
            raise DataError(
                f"{stream.name}: the model starts with an Embedding, which takes "
                "integer indices, but the inputs hold fractional numbers"
            )


@click.command("predict")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.argument("input_path", metavar="[INPUT]", required=False, type=click.Path(dir_okay=False))
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
@click.option("--label", help="A .csv input's label column (name or 0-based index), left out.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option(
    "--classes",
    is_flag=True,
    help="Write the arg-max class of each output instead "
    "of the output values (sigmoid outputs: 1 when > 0.5), by name when the input .npz or the "
    "run's text pipeline holds the class names.",
)
@click.option("--text", "texts", multiple=True, help="A text to tokenize and pad as the run's "
              "`layerctl pad` did (its text.json beside --weights); repeatable.")
@click.option("--text-file", type=click.Path(dir_okay=False, allow_dash=True),
              help="Texts, one per line (`-`: stdin), tokenized and padded like --text.")
def command(spec_path, input_path, weights_path, output, key, label, batch_size,
            classes, texts, text_file) -> None:
    """Predict with WEIGHTS on INPUT (.npy, .npz or .csv), in inference mode.

    Inputs are read and written batch by batch (.npy inputs are memory-mapped), so files larger
    than memory work.

    \b
    Example:
      layerctl predict specs/digits_cnn.yaml --weights runs/digits-cnn/weights.npz x.npy -o y.csv
      layerctl predict specs/text_cnn.yaml --weights w.npz lang.npz --classes
      layerctl predict specs/text_cnn.yaml --weights runs/text-cnn/weights.npz \\
          --text computer --text ordenador --classes
    """

    from layerctl.commands.common import load_plan, prepare_compute
    from layerctl.data import open_inputs, output_format, write_outputs
    from layerctl.graph import Graph
    from layerctl.inference import Predictor
    from layerctl.memory import check_model_fits
    from layerctl.weights import load_weights_into

    prepare_compute()
    plan = load_plan(spec_path)
    given = [name for name, v in (("INPUT", input_path), ("--text", texts),
                                  ("--text-file", text_file)) if v]
    if len(given) != 1:
        raise click.UsageError("give INPUT, --text or --text-file" if not given
                               else f"{' and '.join(given)}: give only one")
    if texts or text_file:
        predict_text(plan, list(texts), text_file, weights_path, output, batch_size, classes)
        return
    if len(plan.inputs) > 1 or len(plan.outputs) > 1:
        predict_named(plan, input_path, weights_path, output, batch_size, classes)
        return
    if output is not None:
        output_format(output)  # an unsupported extension fails before any work
    stream = open_inputs(input_path, key, column_choice(label))
    check_inputs(stream, plan)
    check_model_fits(plan)  # before the graph allocates its weights
    graph = Graph(plan)
    load_weights_into(graph, weights_path)
    predictor = Predictor(graph)   # forward only: no caches for backward, buffers reused

    names = class_names(input_path, weights_path) if classes else None

    def outputs():
        for batch in stream.batches(batch_size):
            y = predictor(batch)
            if classes:
                y = to_classes(y, names)
            yield y

    header = None
    if not classes and len(plan.output_shape) == 2:
        header = [f"output_{i}" for i in range(plan.output_shape[1])]
    elif classes:
        header = ["class"]
    write_outputs(output, outputs(), total=stream.length, header=header)


def class_names(input_path, weights_path) -> list[str] | None:
    """Class names from the input .npz (`classes`, as `pad` writes), else from the run's text
    pipeline beside the weights; None when neither has them."""
    from layerctl.text import record

    names = record.classes_from_npz(input_path) if str(input_path).endswith(".npz") else None
    if names is None:
        remembered = record.beside_weights(weights_path)
        names = None if remembered is None else remembered.get("classes")
    return names


def to_classes(y, names: list[str] | None):
    """Arg-max classes (sigmoid: 1 when > 0.5), as names when `names` covers them."""
    import numpy as np

    indices = (y[..., 0] > 0.5).astype(np.int64) if y.shape[-1] == 1 else np.argmax(y, -1)
    if names is None or indices.size == 0 or int(indices.max()) >= len(names):
        return indices
    return np.asarray(names)[indices]


def predict_text(plan, texts, text_file, weights_path, output, batch_size, classes) -> None:
    """Texts -> rows through the run's remembered pipeline -> outputs (or class names)."""
    import sys

    from layerctl.data import output_format, write_outputs
    from layerctl.errors import DataError
    from layerctl.graph import Graph
    from layerctl.inference import Predictor
    from layerctl.text import record
    from layerctl.weights import load_weights_into

    remembered = record.beside_weights(weights_path)
    if remembered is None:
        raise DataError(f"{weights_path}: no text pipeline beside these weights "
                        f"({record.RUN_FILE} in the run folder)",
                        hint="train on the .npz `layerctl pad` writes, or pad the text yourself: "
                             "`layerctl pad FILE --use-vocab VOCAB.json --maxlen N -o x.npz`")
    if text_file is not None:
        if text_file == "-":
            texts = sys.stdin.read().splitlines()
        else:
            from pathlib import Path

            from layerctl.data.files import existing_file

            texts = existing_file(Path(text_file), text_file).read_text(
                encoding="utf-8").splitlines()
    if output is not None:
        output_format(output)
    x = record.encode(remembered, texts, str(weights_path))
    graph = Graph(plan)
    load_weights_into(graph, weights_path)
    y = Predictor(graph).predict(x, batch_size=batch_size)
    header = None
    if classes:
        y = to_classes(y, remembered.get("classes"))
        header = ["class"]
    elif len(plan.output_shape) == 2:
        header = [f"output_{i}" for i in range(plan.output_shape[1])]
    write_outputs(output, iter([y]), total=len(y), header=header)


def predict_named(plan, input_path, weights_path, output, batch_size, classes) -> None:
    """Several inputs or outputs: an .npz keyed by input names in, one array per output out
    (an .npz keyed by output names; .npy/.csv only when there is one output)."""
    import numpy as np

    from layerctl.data import load_dataset, output_format, write_outputs
    from layerctl.errors import DataError
    from layerctl.graph import Graph
    from layerctl.inference import Predictor
    from layerctl.weights import load_weights_into, save_npz

    several = len(plan.outputs) > 1
    if several and (output is None or not str(output).endswith(".npz")):
        raise DataError(f"the model has {len(plan.outputs)} outputs "
                        f"({', '.join(plan.outputs)}): write them to an .npz",
                        hint="pass -o OUT.npz (one array per output name)")
    if output is not None and not several:
        output_format(output)
    dataset = load_dataset({"path": str(input_path)}, ".", require_labels=False,
                           inputs=plan.input_names, outputs=plan.outputs)
    _check_named_inputs(plan, dataset)
    graph = Graph(plan)
    load_weights_into(graph, weights_path)
    y = Predictor(graph).predict(dataset.x, batch_size=batch_size)
    y = y if isinstance(y, dict) else {plan.output: y}
    if classes:
        y = {k: (v[..., 0] > 0.5).astype(np.int64) if v.shape[-1] == 1 else np.argmax(v, -1)
             for k, v in y.items()}
    if several:
        save_npz(output, y)
        return
    value = y[plan.output]
    write_outputs(output, iter([value]), total=len(value),
                  header=["class"] if classes else None)


def _check_named_inputs(plan, dataset) -> None:
    from layerctl.data.checks import fits, shape_text
    from layerctl.errors import DataError

    xs = dataset.x if isinstance(dataset.x, dict) else {plan.inputs[0].name: dataset.x}
    for model_input in plan.inputs:
        array = xs[model_input.name]
        if not fits(array.shape[1:], model_input.shape[1:]):
            raise DataError(f"{dataset.name}: input '{model_input.name}' has shape "
                            f"{shape_text(array.shape)} but the model takes "
                            f"{shape_text(model_input.shape)}")
