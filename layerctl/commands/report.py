"""`layerctl report RUN [RUN ...]`: a run's report page rebuilt, or several runs compared."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("runs", metavar="RUN...", nargs=-1, required=True,
                type=click.Path(file_okay=False, path_type=str))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="The page to write [default: RUN/report.html for one run; required for "
              "several].")
def command(runs: tuple[str, ...], output: str | None) -> None:
    """Rebuild RUN's report page (curves, best epoch, model diagram, timings, confusion
    matrix, resolved spec) from its folder; with several runs, overlay their curves.

    \b
    Example:
      layerctl report runs/digits-cnn
      layerctl report runs/try1 runs/try2 -o compare.html
    """
    from layerctl.atomic import write_text_atomic
    from layerctl.commands.common import load_plan
    from layerctl.errors import DataError
    from layerctl.plot.page import PAGE, compare_html, load_run, run_html
    from layerctl.plot.svg import model_svg

    records = [load_run(run) for run in runs]
    if len(records) > 1:
        if output is None:
            raise DataError("comparing several runs needs -o PAGE.html",
                            hint="e.g. layerctl report runs/a runs/b -o compare.html")
        write_text_atomic(output, compare_html(records))
    else:
        spec = Path(runs[0]) / "spec.yaml"
        diagram = model_svg(load_plan(str(spec))) if spec.exists() else ""
        output = output or str(Path(runs[0]) / PAGE)
        write_text_atomic(output, run_html(records[0], diagram))
    click.echo(output)
