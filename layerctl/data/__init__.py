"""Data for train, evaluate and predict: sources, loading, checks against the model, batches.

This package owns everything between a file (or bundled dataset) and the arrays the graph sees:

- `sources`: the spec models `DataSource` and `Validation` (`train.data`, `train.validation`);
- `loading`: `load_dataset(source, base_dir) -> Dataset(x, y, name)`, `.npz`/`.npy`/`.csv`;
- `files`, `csvfile`: safe array reading (never a pickle) and numeric CSV parsing with
  `file:line:col` errors;
- `checks`: `check_against_model`, shapes and dtypes versus the model and loss;
- `batching`: `split_validation` (Keras's validation_split) and `batches`;
- `streams`: `open_inputs` and `write_outputs`, bounded-memory reading and atomic writing for
  `predict`.

Every problem a user can cause is a one-line `DataError` naming the file and what was expected.
"""

from layerctl.data.batching import batches, split_validation
from layerctl.data.checks import check_against_model
from layerctl.data.loading import Dataset, load_dataset
from layerctl.data.sources import (
    ArchiveData,
    ArrayPairData,
    BundledData,
    CsvData,
    DataSource,
    Validation,
    ValidationSplit,
    parse_data_source,
)
from layerctl.data.streams import InputStream, open_inputs, output_format, write_outputs

__all__ = [
    "ArchiveData",
    "ArrayPairData",
    "BundledData",
    "CsvData",
    "DataSource",
    "Dataset",
    "InputStream",
    "Validation",
    "ValidationSplit",
    "batches",
    "check_against_model",
    "load_dataset",
    "open_inputs",
    "output_format",
    "parse_data_source",
    "split_validation",
    "write_outputs",
]
