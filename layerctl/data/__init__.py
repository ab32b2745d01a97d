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

from importlib import import_module

# name -> submodule; imported on first use, so the spec schema (which only needs `sources`)
# does not pay for NumPy-heavy loading code when `validate` starts.
_EXPORTS = {
    "batches": "batching", "split_validation": "batching",
    "check_against_model": "checks",
    "Dataset": "loading", "load_dataset": "loading",
    "ArchiveData": "sources", "ArrayPairData": "sources", "BundledData": "sources",
    "CsvData": "sources", "DataSource": "sources", "Validation": "sources",
    "ValidationSplit": "sources", "parse_data_source": "sources",
    "InputStream": "streams", "open_inputs": "streams", "output_format": "streams",
    "write_outputs": "streams",
}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'layerctl.data' has no attribute {name!r}")
    return getattr(import_module(f"layerctl.data.{_EXPORTS[name]}"), name)


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
