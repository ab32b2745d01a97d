"""Every error code layerctl prints, with its one-line title.

A code names a kind of problem and never changes meaning; docs/errors.md explains each with an
example and the fix (tests/test_error_codes.py keeps the two in step, and checks that every
code the source uses is listed here). Ranges: LC1xx the spec, LC2xx shapes and masks, LC3xx
data, LC4xx weights, runs and outputs, LC5xx export, LC6xx import.
"""

from __future__ import annotations

CODES: dict[str, str] = {
    "LC100": "the spec is invalid (a problem without a more specific code)",
    "LC101": "the file is not a YAML spec (syntax, unsafe tags, empty, not a mapping)",
    "LC102": "unknown layer type",
    "LC103": "a Keras layer that layerctl does not support yet",
    "LC104": "unknown argument (or a Keras 1 argument name)",
    "LC105": "a required argument is missing",
    "LC106": "invalid argument value",
    "LC107": "the model's inputs are declared wrongly",
    "LC108": "a layer's `inputs:` or `apply:` name no node",
    "LC109": "the layers form a cycle",
    "LC110": "`outputs:` (or a per-output `compile:` key) names no node",
    "LC111": "a block or block instance is invalid",
    "LC112": "a layer name is used twice",
    "LC120": "warning: a layer or input is not connected to the outputs",
    "LC200": "a layer cannot take the shape it receives",
    "LC201": "warning: a mask reaches a layer that drops it",
    "LC300": "the data cannot be used (a problem without a more specific code)",
    "LC301": "a file or folder does not exist",
    "LC303": "the data does not fit the model or its loss",
    "LC400": "a weights or checkpoint file is unreadable or does not fit the model",
    "LC401": "the run folder cannot be used",
    "LC402": "training stopped: the loss is not finite",
    "LC403": "not enough memory for what the command needs",
    "LC404": "an output path would destroy something that is not a regular file",
    "LC500": "the model cannot be exported to the requested format",
    "LC600": "the source cannot be imported exactly",
    "LC601": "an HDF5 file cannot be read",
    "LC602": "a .keras archive is not one layerctl reads safely",
    "LC610": "warning: a statement of the Python source was not read",
}
