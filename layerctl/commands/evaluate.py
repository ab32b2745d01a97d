"""`layerctl evaluate SPEC --weights W`: loss and metrics of trained weights on data."""

from __future__ import annotations

import json

import click


@click.command("evaluate")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option("--weights", "weights_path", required=True, type=click.Path(dir_okay=False),
              help="Weights file (.npz), e.g. runs/NAME/weights.npz.")
@click.option("--data", help="Data to evaluate on, all of it [default: the spec's validation "
              "data, else train.data]: a bundled dataset name or a .npz/.csv/.npy file.")
@click.option("--label", help="The label column of a --data .csv (name or 0-based index) "
              "[default: a column named `label`].")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Also write an HTML page: the confusion matrix with per-class precision, "
              "recall and F1 (classification outputs).")
def command(spec_path, weights_path, data, label, batch_size, as_json, report_path) -> None:
    """Print the loss and metrics of WEIGHTS on data, in inference mode (as Keras's evaluate).

    \b
    Example:
      layerctl evaluate specs/digits_cnn.yaml --weights runs/digits-cnn/weights.npz
      layerctl evaluate specs/mnist_cnn.yaml --weights w.npz --data test.npz --json
    """
    from layerctl.commands.common import load_spec_and_plan, prepare_compute
    from layerctl.commands.train import check_data, data_option_source, load_training_data
    from layerctl.errors import Location, SpecError
    from layerctl.graph import Graph
    from layerctl.memory import check_model_fits
    from layerctl.training.loop import Trainer
    from layerctl.weights import load_weights_into

    prepare_compute()
    spec, plan = load_spec_and_plan(spec_path)
    if spec.compile is None:
        raise SpecError("the spec has no `compile:` block: evaluate needs its loss and metrics",
                        Location(spec_path))
    if data is not None:  # all of it, as Keras's evaluate(x, y): no validation split
        from layerctl.data import load_dataset

        dataset = load_dataset(data_option_source(data, label), ".", inputs=plan.input_names,
                               outputs=plan.outputs)
    else:
        if label is not None:
            raise SpecError("--label names a column of the --data file; give --data too")
        train, validation = load_training_data(spec, spec_path, None, plan)
        dataset = train if validation is None else validation
    check_data(plan, spec, dataset, spec_path=spec_path)
    check_model_fits(plan)  # before the graph allocates its weights
    graph = Graph(plan)
    load_weights_into(graph, weights_path)
    logs = Trainer(graph, spec.compile).evaluate(dataset.x, dataset.y, batch_size).logs()
    if report_path is not None:
        from layerctl.atomic import write_text_atomic
        from layerctl.plot.confusion import confusions
        from layerctl.plot.page import evaluation_html

        write_text_atomic(report_path, evaluation_html(
            f"{plan.name} on {dataset.name} ({len(dataset)} samples)", logs,
            confusions(graph, spec.compile, dataset, batch_size)))
    if as_json:
        click.echo(json.dumps({"data": dataset.name, "samples": len(dataset), **logs}))
        return
    click.echo(f"{dataset.name} ({len(dataset)} samples): " + " - ".join(
        f"{k}: {v:.4f}" for k, v in logs.items()))
