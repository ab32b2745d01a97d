"""`layerctl schema`: the JSON Schema of the spec format, for editors (yaml-language-server)."""

from __future__ import annotations

import json

import click


def spec_schema() -> dict:
    from layerctl.spec import ModelSpec

    schema = ModelSpec.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "layerctl model spec"
    return schema


def schema_text() -> str:
    return json.dumps(spec_schema(), indent=2, sort_keys=True) + "\n"


@click.command("schema")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=str),
              help="Write the schema to this file instead of stdout.")
def command(output: str | None) -> None:
    """Print the JSON Schema of layerctl specs.

    Point your editor at it with a first line in each spec:
    `# yaml-language-server: $schema=../layerctl.schema.json`

    \b
    Example:
      layerctl schema -o layerctl.schema.json
    """
    text = schema_text()
    if output is None:
        click.echo(text, nl=False)
    else:
        from layerctl.atomic import write_text_atomic

        write_text_atomic(output, text)
