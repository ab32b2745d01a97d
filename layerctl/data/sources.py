"""The spec models that say where data comes from: `train.data` and `train.validation`.

A data source is one of four mappings (or a bare string, the CLI's `--data` form):

    {dataset: digits}                       a bundled dataset (layerctl.datasets)
    {path: train.npz, x: x, y: y}           arrays named in an .npz (keys default to x and y);
                                            {path: x.npy} is an input array without labels
    {path: train.csv, label: target}        a numeric CSV; `label` is a column name or a 0-based
                                            index (negative counts from the end); when omitted,
                                            a column named `label` is used if there is one
    {x: x.npy, y: y.npy}                    a pair of .npy files

`validation` is `{split: 0.1}` (the last 10 % of the training samples, as Keras's
`validation_split`) or any data source. The form is chosen from the keys present (and, for
`path`, the file's extension), so a misspelled key is reported against the right form.
Relative paths are kept as written; `layerctl.data.load_dataset` resolves them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Strict,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from layerctl import datasets
from layerctl.config import Frozen
from layerctl.errors import DataError, did_you_mean

FileName = Annotated[str, Strict(), Field(min_length=1)]
ColumnChoice = Annotated[str, Strict(), Field(min_length=1)] | Annotated[int, Strict()]


class BundledData(Frozen):
    """`{dataset: NAME}`: a dataset shipped with layerctl (layerctl/datasets/README.md)."""

    dataset: Annotated[str, Strict()] = Field(json_schema_extra={"enum": datasets.available()})

    @field_validator("dataset")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in datasets.LOADERS:
            hint = did_you_mean(name, datasets.LOADERS)
            listing = "available: " + ", ".join(datasets.available())
            raise ValueError(f"unknown dataset '{name}'; {hint + ' ' if hint else ''}{listing}")
        return name


class ArchiveData(Frozen):
    """`{path: FILE.npz, x: KEY, y: KEY}`, or `{path: FILE.npy}` for inputs without labels."""

    path: FileName
    x: Annotated[str, Strict()] = Field(default="x", description="Key of the inputs in the .npz.")
    y: Annotated[str, Strict()] = Field(default="y", description="Key of the labels in the .npz.")


class CsvData(Frozen):
    """`{path: FILE.csv, label: COLUMN}`: numeric columns; the label column holds the targets."""

    path: FileName
    label: ColumnChoice | None = Field(
        default=None,
        description="Label column: a header name or 0-based index; default: a column 'label'.",
    )


class ArrayPairData(Frozen):
    """`{x: FILE.npy, y: FILE.npy}`: inputs and labels in two .npy files."""

    x: FileName
    y: FileName | None = None


class ValidationSplit(Frozen):
    """`{split: f}`: hold out the last fraction f of the training samples (before shuffling)."""

    split: Annotated[float, Strict(), Field(gt=0.0, lt=1.0)]


SOURCE_FORMS = "{dataset: NAME}, {path: FILE.npz|FILE.csv|FILE.npy} or {x: X.npy, y: Y.npy}"


def _from_text(value: Any) -> Any:
    """A bare string is a file when it has an extension or a folder part, else a dataset name."""
    if isinstance(value, str | Path):
        text = str(value)
        if Path(text).suffix or "/" in text or "\\" in text:
            return {"path": text}
        return {"dataset": text}
    return value


def _source_form(value: Any) -> str | None:
    if isinstance(value, dict):
        if "dataset" in value:
            return "bundled"
        if "path" in value:
            return "csv_file" if str(value["path"]).lower().endswith(".csv") else "array_file"
        if "x" in value:
            return "npy_pair"
        return None
    return _FORMS.get(type(value))


_FORMS: dict[type, str] = {
    BundledData: "bundled", ArchiveData: "array_file", CsvData: "csv_file",
    ArrayPairData: "npy_pair", ValidationSplit: "validation_split",
}

_SourceUnion = Annotated[
    Annotated[BundledData, Tag("bundled")]
    | Annotated[ArchiveData, Tag("array_file")]
    | Annotated[CsvData, Tag("csv_file")]
    | Annotated[ArrayPairData, Tag("npy_pair")],
    Discriminator(
        _source_form,
        custom_error_type="data_source",
        custom_error_message=f"expected a data source: {SOURCE_FORMS}",
    ),
]
DataSource = Annotated[
    _SourceUnion, BeforeValidator(_from_text, json_schema_input_type=str | _SourceUnion)
]
"""Where training (or evaluation) data comes from; see the module docstring."""


def _validation_form(value: Any) -> str | None:
    if isinstance(value, dict) and "split" in value:
        return "validation_split"
    if isinstance(value, ValidationSplit):
        return "validation_split"
    return "source" if _source_form(value) is not None else None


Validation = Annotated[
    Annotated[
        Annotated[ValidationSplit, Tag("validation_split")] | Annotated[DataSource, Tag("source")],
        Discriminator(
            _validation_form,
            custom_error_type="validation_source",
            custom_error_message=f"expected {{split: FRACTION}} or a data source: {SOURCE_FORMS}",
        ),
    ],
    BeforeValidator(_from_text, json_schema_input_type=str | ValidationSplit | _SourceUnion),
]
"""`{split: f}` or a data source; see the module docstring."""

_SOURCE_ADAPTER: TypeAdapter[Any] = TypeAdapter(DataSource)
_FIELDS = {"dataset", "path", "x", "y", "label"}  # pydantic's loc also holds union tags
SourceModel = BundledData | ArchiveData | CsvData | ArrayPairData
ValidationModel = ValidationSplit | SourceModel


def parse_data_source(value: Any) -> SourceModel:
    """A DataSource from a string (the CLI's `--data digits`, `--data train.npz`) or a mapping.

    Raises DataError with one line per problem when the value fits no form.
    """
    try:
        return _SOURCE_ADAPTER.validate_python(value)
    except ValidationError as error:
        messages = []
        for item in error.errors():
            where = ".".join(str(p) for p in item["loc"] if p in _FIELDS)
            text = item["msg"].removeprefix("Value error, ")
            messages.append(text if not where or where in text else f"{where}: {text}")
        raise DataError(f"invalid data source {value!r}: " + "; ".join(messages)) from None

