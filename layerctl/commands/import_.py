"""`layerctl import SOURCE -o SPEC.yaml`: a Keras model or Keras code becomes a spec."""

from __future__ import annotations

import click


@click.command("import")
@click.argument("source", type=click.Path(dir_okay=False, path_type=str))
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=str),
              help="The spec file to write.")
@click.option("--weights-out", type=click.Path(path_type=str), default=None,
              help="Where to write the model's weights (.npz), for sources that hold them.")
@click.option("--dim-ordering", type=click.Choice(["th", "tf"]), default=None,
              help="Keras 1 code without dim_ordering: keras.json's image_dim_ordering "
                   "(default th, as Keras 1's documentation assumes).")
def command(source: str, output: str, weights_out: str | None,
            dim_ordering: str | None) -> None:
    """Write the model in SOURCE as a spec: Python Keras code (read, never run), a
    `model.to_json()` config, a `.keras` archive or a legacy `.h5` file (Keras 1, 2 or 3).

    Keras 1 and 2 names are translated to Keras 3's, each with a comment naming what the
    source wrote and its line. The spec is checked before it is written.

    \b
    Example:
      layerctl import cnn.py -o cnn.yaml
      layerctl shapes cnn.yaml
    """
    from layerctl.atomic import write_text_atomic
    from layerctl.commands.common import echo_warnings
    from layerctl.importer import import_source

    imported = import_source(source, dim_ordering)
    echo_warnings(imported.warnings)
    write_text_atomic(output, imported.text)
    if imported.weights is not None:
        if weights_out is None:
            click.echo(f"{source}: the weights are not written (give --weights-out W.npz)",
                       err=True)
        else:
            from layerctl.weights import save_npz

            save_npz(weights_out, imported.weights)
    elif weights_out is not None:
        click.echo(f"{source}: holds no weights; --weights-out is not written", err=True)
    click.echo(f"wrote {output}", err=True)
