"""`layerctl train SPEC`: train on data and leave a run folder that survives interruptions."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import click

from layerctl.errors import DataError, Location, SpecError


class StopRequest:
    """The first Ctrl-C asks training to stop after the current step (and save); a second one
    aborts at once."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def install(self):
        def handler(signum, frame):
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True
            click.echo("\nstopping after this step and saving a checkpoint "
                       "(Ctrl-C again to abort without saving)", err=True)

        return signal.signal(signal.SIGINT, handler)


def data_option_source(data_option: str, label: str | None):
    """The source `--data` names; `--label` names the label column of a .csv."""
    from layerctl.commands.predict import column_choice
    from layerctl.data import CsvData, parse_data_source

    source = parse_data_source(data_option)
    if label is None:
        return source
    if not isinstance(source, CsvData):
        raise DataError(f"{data_option}: --label only applies to .csv files",
                        hint="an .npz names its arrays: {path: FILE.npz, x: KEY, y: KEY}")
    return source.model_copy(update={"label": column_choice(label)})


def check_padded_file_exists(source, base_dir: Path, plan) -> None:
    """A missing .npz of token indices for a model that reads indices is what `layerctl pad`
    makes: say so, with the command (its --maxlen from the model's input length)."""
    import os

    from layerctl.data.sources import ArchiveData

    if (plan is None or not isinstance(source, ArchiveData) or not plan.inputs[0].integer
            or not str(source.path).endswith(".npz")):
        return
    path = base_dir / Path(source.path).expanduser()
    if path.exists():
        return
    shown = os.path.normpath(path)
    shape = plan.inputs[0].shape
    maxlen = f" --maxlen {shape[1]}" if len(shape) == 2 and shape[1] is not None else ""
    raise DataError(f"{path}: file not found",
                    hint=f"this model reads token indices, which `layerctl pad` makes: "
                         f"`layerctl pad TEXT...{maxlen} -o {shown}` (see docs/text.md)",
                         code="LC301")


def with_sample_weight(dataset, source, base_dir: Path, name: str):
    """`dataset` with the sample weights the data file holds under `name` (an .npz array, or a
    CSV column, which then stops being an input)."""
    import dataclasses

    import numpy as np

    from layerctl.data import csvfile
    from layerctl.data.files import display_path, read_npz
    from layerctl.data.sources import ArchiveData, CsvData

    if isinstance(source, CsvData):
        path, display = display_path(base_dir, source.path)
        layout = csvfile.read_layout(path, display)
        column = csvfile.label_index(name, layout, display)
        label = csvfile.label_index(source.label, layout, display)
        if column == label:
            raise DataError(f"{display}: `sample_weight` names the label column '{name}'")
        at = column - (1 if label is not None and label < column else 0)
        weights = dataset.x[:, at]
        dataset = dataclasses.replace(dataset, x=np.delete(dataset.x, at, axis=1))
    elif isinstance(source, ArchiveData) and str(source.path).endswith(".npz"):
        path, display = display_path(base_dir, source.path)
        weights = read_npz(path, display, name, "the sample weights")
    else:
        raise DataError(f"{dataset.name}: `sample_weight: {name}` names a CSV column or an .npz "
                        "array, and this data is neither",
                        hint="save the weights beside x and y: np.savez(FILE, x=x, y=y, "
                             f"{name}=weights)")
    weights = np.asarray(weights, np.float64)
    if weights.shape != (len(dataset),):
        raise DataError(f"{dataset.name}: the sample weights '{name}' have shape "
                        f"{weights.shape}; expected one per sample ({len(dataset)},)")
    if not np.all(np.isfinite(weights)):
        raise DataError(f"{dataset.name}: the sample weights '{name}' hold NaN or infinity")
    return dataclasses.replace(dataset, sample_weight=weights.astype(np.float32))


def remember_text_pipeline(spec, spec_path: str, data_option: str | None, run_path: Path) -> None:
    """Copy the text pipeline a `pad` .npz records into the run folder (`text.json`), so
    `predict --text` tokenizes as training did; a run on other data keeps none."""
    from layerctl.atomic import write_text_atomic
    from layerctl.data import parse_data_source
    from layerctl.data.sources import ArchiveData
    from layerctl.text import record

    if data_option is not None:
        source, base_dir = parse_data_source(data_option), Path(".")
    elif spec.train is not None and spec.train.data is not None:
        source, base_dir = spec.train.data, Path(spec_path).parent
    else:
        return
    target = run_path / record.RUN_FILE
    text = None
    if isinstance(source, ArchiveData):
        text = record.from_npz(base_dir / Path(source.path).expanduser())
    if text is not None:
        write_text_atomic(target, text + "\n")
    elif target.exists():
        target.unlink()  # --overwrite with other data: the old vocabulary no longer applies


def load_training_data(spec, spec_path: str, data_option: str | None, plan=None,
                       label: str | None = None):
    """(train, validation) datasets from the spec's `train:` block or `--data`."""
    from layerctl.data import load_dataset, split_validation
    from layerctl.data.sources import ValidationSplit

    train_spec = spec.train
    base_dir = Path(spec_path).parent
    if data_option is not None:
        source, base_dir_for_data = data_option_source(data_option, label), Path(".")
    elif label is not None:
        raise DataError("--label names a column of the --data file; give --data too")
    elif train_spec is not None and train_spec.data is not None:
        source, base_dir_for_data = train_spec.data, base_dir
    else:
        raise SpecError("no training data: add `train: {data: ...}` to the spec or pass --data",
                        Location(spec_path))
    names = {} if plan is None else {"inputs": plan.input_names, "outputs": plan.outputs}
    check_padded_file_exists(source, base_dir_for_data, plan)
    train = load_dataset(source, base_dir_for_data, **names)
    if train_spec is not None and train_spec.sample_weight is not None:
        train = with_sample_weight(train, source, base_dir_for_data, train_spec.sample_weight)
    validation = None
    if train_spec is not None and train_spec.validation is not None:
        if isinstance(train_spec.validation, ValidationSplit):
            train, validation = split_validation(train, train_spec.validation.split)
        else:
            validation = load_dataset(train_spec.validation, base_dir, **names)
    return train, validation


def check_embedding_indices(plan, spec, spec_path: str | None, xs: dict, name: str) -> None:
    """An index an Embedding fed by a model input cannot look up, as an error located at the
    layer's `input_dim` in the spec (before training starts, not mid-epoch)."""
    import numpy as np

    from layerctl.errors import Location
    from layerctl.spec import read_spec_text
    from layerctl.yamlmarks import load_yaml

    for node in plan.nodes:
        if node.layer.keras_class != "Embedding" or node.inputs[0] not in xs:
            continue
        x = xs[node.inputs[0]]
        if not np.issubdtype(x.dtype, np.number) or x.size == 0:
            continue
        low, high = x.min(), x.max()
        input_dim = node.layer.input_dim
        if low >= 0 and high < input_dim:
            continue
        bad = int(low) if low < 0 else int(high)
        where = Location(spec_path) if spec_path else None
        entry = spec.layers[node.index] if node.instance is None and node.index < len(
            spec.layers) else None
        if spec_path and getattr(entry, "type", None) == node.layer.type:
            where = load_yaml(read_spec_text(spec_path), spec_path)[1].value(
                ("layers", node.index, "input_dim"))
        fix = (f"raise input_dim to {bad + 1} or more" if bad >= 0
               else "indices are 0 or more (0 is padding with mask_zero)")
        raise DataError(f"layer '{node.name}' (Embedding) has input_dim {input_dim}, but {name} "
                        f"holds index {bad}, outside [0, {input_dim})", where,
                        f"{fix}, or check the data", code="LC303")


def check_data(plan, spec, *datasets, spec_path: str | None = None) -> None:
    """Every input array against its model input, every target against its output's loss."""
    from layerctl.data import Dataset, check_against_model
    from layerctl.training.outputs import per_output

    outputs = per_output(spec.compile, plan.outputs)
    for dataset in datasets:
        if dataset is None:
            continue
        xs = dataset.x if isinstance(dataset.x, dict) else {plan.inputs[0].name: dataset.x}
        ys = dataset.y if isinstance(dataset.y, dict) else {plan.output: dataset.y}
        first = next(iter(xs.values()))
        for model_input in plan.inputs:
            dtype = "int64" if model_input.integer else "float32"
            name = dataset.name if len(xs) == 1 else f"{dataset.name} [{model_input.name}]"
            check_against_model(Dataset(xs[model_input.name], None, name), model_input.shape,
                                dtype, (None,), None)
        for out in outputs:
            name = dataset.name if len(ys) == 1 else f"{dataset.name} [{out.ref}]"
            check_against_model(Dataset(first, ys.get(out.ref), name), plan.inputs[0].shape,
                                "float32", plan.shape_of(out.ref), out.loss.type,
                                ignore_class=getattr(out.loss, "ignore_class", None),
                                inputs_checked=True)
        check_embedding_indices(plan, spec, spec_path, xs, dataset.name)


def saved_confusions(graph, compile_spec, run, validation) -> dict:
    """The validation data's confusion matrices with the weights weights.npz holds (for the
    report page); {} without validation data, weights or a classification output."""
    from layerctl.plot.confusion import classification_outputs, confusions
    from layerctl.weights import load_weights_into

    if validation is None or not run.weights.exists() or not classification_outputs(
            compile_spec, graph.plan):
        return {}
    load_weights_into(graph, run.weights)  # training is over: the graph may take them
    return confusions(graph, compile_spec, validation)


@click.command("train")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option("--data", help="Training data (overrides train.data): a bundled dataset name, or "
              ".npz/.csv/.npy file relative to the current folder.")
@click.option("--label", help="The label column of a --data .csv (name or 0-based index) "
              "[default: a column named `label`].")
@click.option("--out", type=click.Path(file_okay=False), help="Run folder [default: runs/NAME].")
@click.option("--resume", is_flag=True, help="Continue from the run folder's checkpoint.npz.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run folder's results.")
@click.option("--initial-weights", type=click.Path(dir_okay=False),
              help="Start from these weights (.npz, Keras names) instead of initializers.")
@click.option("--epochs", type=click.IntRange(min=1), help="Override train.epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Override train.batch_size.")
@click.option("--seed", type=click.IntRange(min=0), help="Override train.seed.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.option("--verbose", type=click.IntRange(0, 2), help="Override train.verbose: 0 silent, 1 "
              "progress bar, 2 one line per epoch (Keras's values).")
def command(spec_path, data, label, out, resume, overwrite, initial_weights, epochs, batch_size,
            seed, quiet, verbose) -> None:
    """Train SPEC and write a run folder: spec.yaml, weights.npz, checkpoint.npz, history.csv.

    Ctrl-C stops after the current step, saves a checkpoint and exits 130; `--resume` then
    continues exactly where it stopped (same weights, bit for bit, as an uninterrupted run).

    \b
    Example:
      layerctl train specs/digits_cnn.yaml
      layerctl train specs/mnist_cnn.yaml --data train.npz --out runs/try1
      layerctl train specs/digits_cnn.yaml --resume
    """
    import numpy as np

    from layerctl.commands.common import console, load_spec_and_plan, prepare_compute
    from layerctl.graph import Graph
    from layerctl.memory import check_model_fits
    from layerctl.plot.page import RunReporter
    from layerctl.training.fit import fit
    from layerctl.training.progress import LineReporter, QuietReporter, RichReporter, final_report
    from layerctl.training.runs import RunFolder, default_run_path, finished_epochs
    from layerctl.training.spec import TrainSpec
    from layerctl.weights import load_weights_into

    started = time.perf_counter()
    prepare_compute()
    spec, plan = load_spec_and_plan(spec_path)
    if spec.compile is None:
        raise SpecError("the spec has no `compile:` block (loss, optimizer, metrics) to train "
                        "with", Location(spec_path))
    overrides = {k: v for k, v in {"epochs": epochs, "batch_size": batch_size,
                                   "seed": seed}.items() if v is not None}
    train_spec = (spec.train or TrainSpec()).model_copy(update=overrides)
    run = RunFolder(Path(out) if out else default_run_path(plan.name, spec_path)).claim()
    click.get_current_context().call_on_close(run.owner.release)  # locked until the end
    if resume and not run.checkpoint.exists():
        raise SpecError(f"nothing to resume: {run.checkpoint} does not exist", Location(spec_path))
    if not resume and not overwrite and run.run_files():
        raise SpecError(f"{run.path} already holds a run ({run.run_files()[0].name})",
                        Location(spec_path),
                        "continue it with --resume, replace it with --overwrite, or choose --out")
    if overwrite and not resume:
        run.clear()
    finished = finished_epochs(run.checkpoint, train_spec.epochs) if resume else None
    if finished is not None:
        if not quiet:
            click.echo(f"{run.path} holds a finished run ({finished} epochs): nothing to "
                       "resume, nothing changed", err=True)
        return

    train, validation = load_training_data(spec, spec_path, data, plan, label)
    check_data(plan, spec, train, validation, spec_path=spec_path)
    check_model_fits(plan, train_spec.dtype)  # before the graph allocates them
    graph = Graph(plan, dtype=np.dtype(train_spec.dtype))
    rng = np.random.default_rng(train_spec.seed)
    graph.initialize(rng)
    if initial_weights and not resume:
        load_weights_into(graph, initial_weights)
    run.path.mkdir(parents=True, exist_ok=True)
    remember_text_pipeline(spec, spec_path, data, run.path)
    run.write_spec(spec.model_copy(update={"train": train_spec}).model_dump(mode="json",
                                                                           exclude_none=True))
    out_console = console(stderr=True)
    verbose = 0 if quiet else (train_spec.verbose if verbose is None else verbose)
    if verbose == "auto":
        verbose = 1 if out_console.is_terminal else 2
    quiet = verbose == 0
    reporter = {0: QuietReporter, 2: LineReporter}.get(verbose, lambda: RichReporter(out_console))()
    early = [c for c in train_spec.callbacks if c.type == "early_stopping"]
    monitor = early[0].monitor if early else ("val_loss" if validation else "loss")
    page = RunReporter(run, plan, monitor, resume)
    stop = StopRequest()
    previous = stop.install()
    try:
        result = fit(graph, spec.compile, train_spec, train, validation, run, reporter, rng=rng,
                     resume=resume, should_stop=stop, on_epoch_end=page.on_epoch_end)
    finally:
        reporter.close()
        signal.signal(signal.SIGINT, previous)
    page.finish(result, {} if result.interrupted else saved_confusions(
        graph, spec.compile, run, validation))
    if result.interrupted:
        click.echo(f"interrupted: checkpoint saved in {run.checkpoint}; continue with "
                   f"`layerctl train {spec_path} --resume" + (f" --out {out}`" if out else "`"),
                   err=True)
        raise SystemExit(130)
    if not quiet:
        final_report(out_console, result.history, result.best_epoch, monitor,
                     result.weights_epoch)
        out_console.print(f"weights: {run.weights}  ({time.perf_counter() - started:.1f}s)",
                          highlight=False)
