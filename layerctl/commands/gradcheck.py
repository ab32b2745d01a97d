"""`layerctl gradcheck SPEC`: float64 central differences against the backward pass of a spec."""

from __future__ import annotations

import json

import click


@click.command("gradcheck")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=str))
@click.option("--data", help="Take the inputs from this file's first samples (.npz/.npy/.csv or "
              "a bundled dataset) instead of random ones.")
@click.option("--samples", type=click.IntRange(min=1), default=4, show_default=True,
              help="How many samples in the batch.")
@click.option("--tolerance", type=click.FloatRange(min=0.0, min_open=True), default=1e-4,
              show_default=True, help="Largest relative error accepted; above it, exit 1.")
@click.option("--max-per-weight", type=click.IntRange(min=1), default=20, show_default=True,
              help="Entries checked per weight at most (sampled with --seed): two forward "
              "passes each.")
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False),
              help="Check at these weights (.npz or a run's checkpoint) instead of fresh ones.")
@click.option("--training", is_flag=True, help="Training mode (dropout and noise drawn from a "
              "fixed seed, batch statistics) instead of inference.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def command(spec_path, data, samples, tolerance, max_per_weight, weights_path, training, seed,
            as_json) -> None:
    """Check SPEC's gradients: float64 central differences against the backward pass.

    The scalar differentiated is sum(outputs x R) for a fixed random R, plus the spec's
    regularization penalties, at fresh weights with a little noise (so zero biases do not put
    ReLUs at their kink) or at --weights. Prints the worst relative error of each weight, layer
    by layer, and exits 1 if any is above --tolerance. A ReLU or max exactly at a tie has no
    derivative: an error there is not a bug.

    \b
    Example:
      layerctl gradcheck specs/digits_cnn.yaml
      layerctl gradcheck specs/text_lstm.yaml --data lang.npz --samples 2 --json
    """
    import numpy as np

    from layerctl.commands.common import echo_warnings, load_spec_and_plan
    from layerctl.gradcheck import check_model, parameters_checked, random_inputs, worst
    from layerctl.graph import Graph

    spec, plan = load_spec_and_plan(spec_path)
    echo_warnings(plan.warnings)
    graph = Graph(plan, dtype=np.float64)
    graph.initialize(np.random.default_rng(seed))
    if weights_path:
        from layerctl.weights import load_weights_into

        load_weights_into(graph, weights_path)
    else:  # noise on every trainable entry: a zero bias would put ReLUs exactly at their kink
        graph.trainable += np.random.default_rng(seed + 1).normal(0, 0.05, graph.trainable.shape)
    if data is None:
        x = random_inputs(plan, samples, seed)
    else:
        from layerctl.data import load_dataset, parse_data_source

        dataset = load_dataset(parse_data_source(data), ".", require_labels=False,
                               inputs=plan.input_names, outputs=plan.outputs)
        rows = slice(0, samples)
        x = ({k: np.asarray(v[rows]) for k, v in dataset.x.items()}
             if isinstance(dataset.x, dict) else {plan.inputs[0].name: np.asarray(dataset.x[rows])})
    if len(plan.inputs) == 1:
        x = x[plan.inputs[0].name]
    results = check_model(graph, x, max_per_weight=max_per_weight, training=training, seed=seed)
    largest = worst(results)
    passed = largest <= tolerance
    checked, total = parameters_checked(results)
    if as_json:
        click.echo(json.dumps({"spec": spec_path, "passed": passed, "tolerance": tolerance,
                               "worst_relative_error": largest, "parameters_checked": checked,
                               "parameters": total, "training": training,
                               "weights": [r.as_json() for r in results]}))
    else:
        _print_table(results, tolerance, largest, checked, total, passed)
    if not passed:
        raise SystemExit(1)


def _print_table(results, tolerance, largest, checked, total, passed) -> None:
    from rich.table import Table

    from layerctl.commands.common import console

    table = Table(title="Gradient check (float64 central differences)", title_justify="left")
    for name, justify in (("Layer", "left"), ("Weight", "left"), ("Shape", "left"),
                          ("Checked", "right"), ("Worst rel. error", "right"), ("", "left")):
        table.add_column(name, justify=justify)
    previous = None
    for r in results:
        table.add_row("" if r.layer == previous else r.layer, r.weight.rsplit("/", 1)[1],
                      str(r.shape), f"{r.checked:,}/{r.total:,}", f"{r.worst_relative_error:.2e}",
                      "ok" if r.worst_relative_error <= tolerance else "OVER")
        previous = r.layer
    out = console(width=100)
    out.print(table)
    verdict = "ok" if passed else "FAILED"
    out.print(f"{verdict}: worst relative error {largest:.2e} (tolerance {tolerance:g}); "
              f"{checked:,} of {total:,} parameters checked", highlight=False)
