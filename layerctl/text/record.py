"""The text pipeline a model was trained with, remembered so predictions tokenize the same way.

`layerctl pad` writes an entry `text_pipeline` (JSON) into its `.npz`: the vocabulary (the
tokenizer's own JSON), the row length, the padding options and the class names. `layerctl
train` copies it into the run folder as `text.json`; `layerctl predict --text` reads it beside
the weights file and turns sentences into rows exactly as `pad` did, and `--classes` prints the
class names it holds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from layerctl.errors import DataError, Location

NPZ_KEY = "text_pipeline"
RUN_FILE = "text.json"
FORMAT = "layerctl.text_pipeline"


def pipeline_json(tokenizer, options, row_length: int, classes: list[str] | None) -> str:
    """The record `pad` stores: `options` is its PadOptions, `row_length` the padded width."""
    return json.dumps({
        "format": FORMAT, "version": 1,
        "tokenizer": None if tokenizer is None else json.loads(tokenizer.to_json()),
        "maxlen": int(row_length), "padding": options.padding, "truncating": options.truncating,
        "value": options.value, "dtype": options.dtype,
        "classes": None if classes is None else list(classes),
    }, ensure_ascii=False)


def from_npz(path: str | Path) -> str | None:
    """The record inside a `pad` .npz, or None (another kind of file, or no record)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if NPZ_KEY not in archive.files:
                return None
            return str(archive[NPZ_KEY])
    except (OSError, ValueError, EOFError):
        return None


def classes_from_npz(path: str | Path) -> list[str] | None:
    """The `classes` array of an .npz (as `pad` writes for class folders), or None."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "classes" not in archive.files:
                return None
            return [str(c) for c in archive["classes"].tolist()]
    except (OSError, ValueError, EOFError):
        return None


def beside_weights(weights_path: str | Path) -> dict[str, Any] | None:
    """The run folder's record for a weights file in it (`runs/NAME/weights.npz`), or None."""
    path = Path(weights_path).parent / RUN_FILE
    if not path.is_file():
        return None
    return parse(path.read_text(encoding="utf-8"), str(path))


def parse(text: str, source: str) -> dict[str, Any]:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"not a text pipeline: {error.msg}", Location(source)) from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise DataError("not a layerctl text pipeline record", Location(source))
    return record


def encode(record: dict[str, Any], texts: list[str], source: str) -> np.ndarray:
    """Rows for `texts`, tokenized and padded as the record's `pad` run did."""
    from layerctl.text.sequences import pad_sequences
    from layerctl.text.tokenizer import Tokenizer

    if record.get("tokenizer") is None:
        raise DataError("the model was trained on integers (`pad --ints`): there is no "
                        "vocabulary to tokenize text with", Location(source))
    tokenizer = Tokenizer.from_json(json.dumps(record["tokenizer"]), source)
    sequences = tokenizer.texts_to_sequences(texts)
    return pad_sequences(sequences, maxlen=record["maxlen"], dtype=record["dtype"],
                         padding=record["padding"], truncating=record["truncating"],
                         value=record["value"])
