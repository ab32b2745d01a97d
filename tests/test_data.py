"""Tests of layerctl.data and layerctl.datasets: sources, loading, errors, splits, batches, streams.

Expected values are written out by hand (or, for the digits file, taken once from the UCI data
as an independent check); Keras's `train_validation_split` is an oracle for the split point.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, ValidationError

from layerctl import datasets
from layerctl.data import (
    ArchiveData,
    ArrayPairData,
    BundledData,
    CsvData,
    Dataset,
    DataSource,
    Validation,
    ValidationSplit,
    batches,
    check_against_model,
    checks,
    csvfile,
    load_dataset,
    open_inputs,
    output_format,
    parse_data_source,
    split_validation,
    streams,
    write_outputs,
)
from layerctl.errors import DataError

DIGITS_NPZ = Path(datasets.__file__).parent / "digits.npz"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def data_error(source, base_dir, **options) -> str:
    with pytest.raises(DataError) as caught:
        load_dataset(source, base_dir, **options)
    return str(caught.value)


# ---- the bundled digits dataset --------------------------------------------------------------
# UCI optdigits.tes, first image (class 0) and last image (class 8), pixel counts 0..16.
FIRST_IMAGE = [
    [0, 0, 5, 13, 9, 1, 0, 0], [0, 0, 13, 15, 10, 15, 5, 0], [0, 3, 15, 2, 0, 11, 8, 0],
    [0, 4, 12, 0, 0, 8, 8, 0], [0, 5, 8, 0, 0, 9, 8, 0], [0, 4, 11, 0, 1, 12, 7, 0],
    [0, 2, 14, 5, 10, 12, 0, 0], [0, 0, 6, 13, 10, 0, 0, 0],
]
LAST_IMAGE = [
    [0, 0, 10, 14, 8, 1, 0, 0], [0, 2, 16, 14, 6, 1, 0, 0], [0, 0, 15, 15, 8, 15, 0, 0],
    [0, 0, 5, 16, 16, 10, 0, 0], [0, 0, 12, 15, 15, 12, 0, 0], [0, 4, 16, 6, 4, 16, 6, 0],
    [0, 8, 16, 10, 8, 16, 8, 0], [0, 1, 8, 12, 14, 12, 1, 0],
]


def test_digits_shapes_dtypes_and_value_range():
    x, y = datasets.load("digits")
    assert x.shape == (1797, 8, 8, 1) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    pixels = x * 16
    assert np.array_equal(pixels, np.round(pixels))  # every value is k/16 exactly


def test_digits_class_counts():
    _, y = datasets.load("digits")
    counts = np.bincount(y, minlength=10)
    assert counts.tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert counts.sum() == 1797 and y.min() == 0 and y.max() == 9


def test_digits_first_and_last_images_are_the_uci_pixels():
    x, y = datasets.load("digits")
    assert y[:10].tolist() == list(range(10))
    np.testing.assert_array_equal(x[0, :, :, 0], np.array(FIRST_IMAGE, np.float32) / 16)
    np.testing.assert_array_equal(x[-1, :, :, 0], np.array(LAST_IMAGE, np.float32) / 16)
    assert y[0] == 0 and y[-1] == 8


def test_digits_array_digests_match_the_readme():
    x, y = datasets.load("digits")
    readme = (DIGITS_NPZ.parent / "README.md").read_text(encoding="utf-8")
    for array in (x, y):
        digest = hashlib.sha256(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"))
                                .tobytes()).hexdigest()
        assert digest in readme


def test_digits_file_is_plain_arrays_without_pickles():
    with zipfile.ZipFile(DIGITS_NPZ) as archive:
        assert sorted(archive.namelist()) == ["x.npy", "y.npy"]
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in archive.infolist())
    with np.load(DIGITS_NPZ, allow_pickle=False) as arrays:
        assert not arrays["x"].dtype.hasobject and not arrays["y"].dtype.hasobject


def test_dataset_registry_and_fresh_copies():
    assert "digits" in datasets.available()
    assert datasets.available() == sorted(datasets.available())
    x, _ = datasets.load("digits")
    x[0] = 5.0
    assert datasets.load("digits")[0][0].max() <= 1.0


def test_unknown_dataset_suggests_a_name():
    with pytest.raises(DataError) as caught:
        datasets.load("digit")
    assert "unknown dataset 'digit'" in str(caught.value)
    assert "did you mean 'digits'?" in str(caught.value)
    assert "available: " in str(caught.value)


# ---- spec models -------------------------------------------------------------------------------
class TrainBlock(BaseModel):
    data: DataSource | None = None
    validation: Validation | None = None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"dataset": "digits"}, BundledData(dataset="digits")),
        ("digits", BundledData(dataset="digits")),
        ({"path": "a.npz"}, ArchiveData(path="a.npz", x="x", y="y")),
        ({"path": "a.npz", "x": "images", "y": "labels"}, ArchiveData(path="a.npz", x="images",
                                                                        y="labels")),
        ("data/train.npz", ArchiveData(path="data/train.npz")),
        ({"path": "x.npy"}, ArchiveData(path="x.npy")),
        ({"path": "t.CSV", "label": "target"}, CsvData(path="t.CSV", label="target")),
        ({"path": "t.csv", "label": -1}, CsvData(path="t.csv", label=-1)),
        ("t.csv", CsvData(path="t.csv")),
        ({"x": "x.npy", "y": "y.npy"}, ArrayPairData(x="x.npy", y="y.npy")),
    ],
)
def test_data_source_forms(value, expected):
    assert TrainBlock(data=value).data == expected
    assert parse_data_source(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"split": 0.1}, ValidationSplit(split=0.1)),
        ({"path": "val.npz"}, ArchiveData(path="val.npz")),
        ("val.csv", CsvData(path="val.csv")),
        ({"x": "vx.npy", "y": "vy.npy"}, ArrayPairData(x="vx.npy", y="vy.npy")),
    ],
)
def test_validation_forms(value, expected):
    assert TrainBlock(validation=value).validation == expected


def errors_of(**fields) -> list[dict]:
    with pytest.raises(ValidationError) as caught:
        TrainBlock(**fields)
    return caught.value.errors()


@pytest.mark.parametrize("split", [0.0, 1.0, 1.5, -0.1, "0.1"])
def test_validation_split_must_be_a_fraction(split):
    assert errors_of(validation={"split": split})[0]["loc"][-1] == "split"


def test_unknown_dataset_in_a_spec_is_a_validation_error_with_a_suggestion():
    (error,) = errors_of(data={"dataset": "digts"})
    assert "did you mean 'digits'?" in error["msg"]


def test_a_mapping_of_no_known_form_names_the_forms():
    (error,) = errors_of(data={"file": "a.npz"})
    assert error["type"] == "data_source" and "{dataset: NAME}" in error["msg"]


def test_keys_of_another_form_are_refused():
    (error,) = errors_of(data={"path": "a.csv", "x": "k"})
    assert error["type"] == "extra_forbidden" and error["loc"][-1] == "x"
    (error,) = errors_of(data={"path": "a.npz", "label": "k"})
    assert error["type"] == "extra_forbidden" and error["loc"][-1] == "label"


def test_parse_data_source_raises_a_data_error():
    with pytest.raises(DataError, match="unknown dataset 'mnist'"):
        parse_data_source("mnist")


# ---- load_dataset: every form ------------------------------------------------------------------
def test_load_bundled_dataset():
    dataset = load_dataset({"dataset": "digits"}, "/nonexistent")
    assert isinstance(dataset, Dataset) and dataset.name == "digits" and len(dataset) == 1797


def test_load_npz_default_and_named_keys(tmp_path):
    x, y = np.arange(12, dtype=np.float32).reshape(4, 3), np.array([0, 1, 1, 0])
    np.savez(tmp_path / "a.npz", x=x, y=y, images=x * 2, labels=y + 1)
    dataset = load_dataset({"path": "a.npz"}, tmp_path)
    np.testing.assert_array_equal(dataset.x, x)
    np.testing.assert_array_equal(dataset.y, y)
    assert dataset.x.dtype == np.float32 and dataset.name == str(tmp_path / "a.npz")
    named = load_dataset({"path": "a.npz", "x": "images", "y": "labels"}, tmp_path)
    np.testing.assert_array_equal(named.x, x * 2)
    np.testing.assert_array_equal(named.y, y + 1)


def test_load_npy_pair_is_memory_mapped(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((5, 2), np.float64))
    np.save(tmp_path / "y.npy", np.arange(5))
    dataset = load_dataset({"x": "x.npy", "y": "y.npy"}, tmp_path)
    assert isinstance(dataset.x, np.memmap) and not dataset.x.flags.writeable
    assert dataset.y.tolist() == [0, 1, 2, 3, 4]


def test_inputs_without_labels_when_labels_are_not_required(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((3, 2)))
    np.savez(tmp_path / "only_x.npz", x=np.ones((3, 2)))
    for source in ({"path": "x.npy"}, {"x": "x.npy"}, {"path": "only_x.npz"}):
        dataset = load_dataset(source, tmp_path, require_labels=False)
        assert dataset.y is None and dataset.x.shape == (3, 2)
    assert "holds only inputs" in data_error({"path": "x.npy"}, tmp_path)
    assert "no labels given" in data_error({"x": "x.npy"}, tmp_path)


def test_csv_with_header_label_by_name_index_and_default(tmp_path):
    write(tmp_path, "t.csv", "age,height,label\n30,1.5,1\n\n40,1.75,0\n50,2,2\n")
    by_name = load_dataset({"path": "t.csv", "label": "label"}, tmp_path)
    np.testing.assert_array_equal(by_name.x, [[30, 1.5], [40, 1.75], [50, 2]])
    assert by_name.y.tolist() == [1, 0, 2] and by_name.y.dtype == np.int64
    by_index = load_dataset({"path": "t.csv", "label": 0}, tmp_path)
    np.testing.assert_array_equal(by_index.x, [[1.5, 1], [1.75, 0], [2, 2]])
    assert by_index.y.tolist() == [30, 40, 50]
    assert load_dataset({"path": "t.csv", "label": -1}, tmp_path).y.tolist() == [1, 0, 2]
    assert load_dataset("t.csv", tmp_path).y.tolist() == [1, 0, 2]  # a column named label


def test_csv_without_header_and_float_labels(tmp_path):
    write(tmp_path, "n.csv", "1,2,0.5\n3,4,1.5\n")
    dataset = load_dataset({"path": "n.csv", "label": 2}, tmp_path)
    np.testing.assert_array_equal(dataset.x, [[1, 2], [3, 4]])
    assert dataset.y.dtype == np.float64 and dataset.y.tolist() == [0.5, 1.5]
    assert load_dataset("n.csv", tmp_path, require_labels=False).x.shape == (2, 3)


def test_csv_spaces_quotes_and_crlf(tmp_path):
    (tmp_path / "q.csv").write_bytes(b'"a","b"\r\n 1 ,"2"\r\n3, 4\r\n')
    dataset = load_dataset({"path": "q.csv", "label": "b"}, tmp_path)
    assert dataset.x.ravel().tolist() == [1, 3] and dataset.y.tolist() == [2, 4]


def test_csv_read_in_chunks_matches_one_read(tmp_path, monkeypatch):
    rows = np.arange(50, dtype=np.float64).reshape(10, 5)
    text = "a,b,c,d,label\n" + "".join(",".join(f"{v:g}" for v in r) + "\n" for r in rows)
    write(tmp_path, "c.csv", text)
    monkeypatch.setattr(csvfile, "LOAD_CHUNK_ROWS", 3)
    dataset = load_dataset({"path": "c.csv", "label": "label"}, tmp_path)
    np.testing.assert_array_equal(dataset.x, rows[:, :4])
    assert dataset.y.tolist() == rows[:, 4].tolist()


def test_relative_paths_resolve_against_the_base_folder(tmp_path, monkeypatch):
    (tmp_path / "specs").mkdir()
    np.savez(tmp_path / "specs" / "d.npz", x=np.zeros((2, 1)), y=np.zeros(2))
    assert load_dataset("d.npz", tmp_path / "specs").name == str(tmp_path / "specs" / "d.npz")
    monkeypatch.chdir(tmp_path)
    assert load_dataset("specs/d.npz", Path.cwd()).x.shape == (2, 1)
    assert "file not found" in data_error("d.npz", Path.cwd())


# ---- load_dataset: every error path -----------------------------------------------------------
def test_missing_file_names_it_and_suggests_a_neighbour(tmp_path):
    np.savez(tmp_path / "train.npz", x=np.zeros((1, 1)), y=np.zeros(1))
    message = data_error("trian.npz", tmp_path)
    assert message.startswith(f"{tmp_path / 'trian.npz'}: file not found")
    assert "did you mean 'train.npz'?" in message


def test_a_folder_is_not_a_data_file(tmp_path):
    (tmp_path / "d.npz").mkdir()
    assert "is a folder, not a data file" in data_error("d.npz", tmp_path)


@pytest.mark.parametrize(
    ("content", "looks_like"),
    [
        (b"x,y\n1,2\n", "text"),
        (b"", "an empty file"),
        (b"\x93NUMPY\x01\x00", "a .npy array"),
        (b"\x80\x04\x95", "a Python pickle"),
        (b"\x1f\x8b\x08\x00", "gzip-compressed data"),
    ],
)
def test_not_an_npz_says_what_it_looks_like(tmp_path, content, looks_like):
    (tmp_path / "d.npz").write_bytes(content)
    assert f"is not a .npz archive; it looks like {looks_like}" in data_error("d.npz", tmp_path)


def test_damaged_zip(tmp_path):
    (tmp_path / "d.npz").write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    assert "is a damaged .npz archive" in data_error("d.npz", tmp_path)


def test_pickle_renamed_to_npy_is_refused(tmp_path):
    (tmp_path / "x.npy").write_bytes(b"\x80\x04\x95\x00\x00")
    message = data_error({"x": "x.npy"}, tmp_path, require_labels=False)
    assert "is not a .npy array; it looks like a Python pickle" in message


def test_wrong_key_lists_the_keys_present(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((2, 1)), labels=np.zeros(2))
    message = data_error("d.npz", tmp_path)
    assert message == (f"{tmp_path / 'd.npz'} has no array 'x' (the inputs); "
                       "keys present: 'images', 'labels'")
    message = data_error({"path": "d.npz", "x": "image", "y": "labels"}, tmp_path)
    assert "did you mean 'images'?" in message


def test_missing_labels_key(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 1)), target=np.zeros(2))
    message = data_error("d.npz", tmp_path)
    assert "has no array 'y' (the labels); keys present: 'x', 'target'" in message
    assert "`y: KEY`" in message
    # A labels key named explicitly must exist even when labels are optional.
    message = data_error({"path": "d.npz", "y": "labels"}, tmp_path, require_labels=False)
    assert "has no array 'labels'" in message


def test_object_arrays_are_refused_never_unpickled(tmp_path):
    objects = np.array([{"a": 1}, None], dtype=object)
    np.savez(tmp_path / "d.npz", x=objects, y=np.zeros(2))
    np.save(tmp_path / "x.npy", objects, allow_pickle=True)
    for source in ("d.npz", {"x": "x.npy"}):
        message = data_error(source, tmp_path, require_labels=False)
        assert "holds Python objects (a pickle)" in message
        assert "layerctl never loads pickles" in message


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.array(["a", "b"]), "holds text (dtype <U1); expected numbers"),
        (np.array([1 + 2j]), "holds complex numbers"),
        (np.float32(3.0), "is a single number; expected one row per sample"),
        (np.zeros((0, 3)), "has no samples (shape (0, 3))"),
    ],
)
def test_non_numeric_or_empty_arrays(tmp_path, array, message):
    np.savez(tmp_path / "d.npz", x=array)
    assert message in data_error("d.npz", tmp_path, require_labels=False)


def test_x_and_y_lengths_must_match(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((5, 2)), y=np.zeros(4))
    assert data_error("d.npz", tmp_path) == (
        f"{tmp_path / 'd.npz'}: x has 5 samples but y has 4; "
        "inputs and labels need one row per sample")


def test_unknown_file_format(tmp_path):
    write(tmp_path, "d.dat", "1,2\n")
    assert "unknown data format '.dat' (it looks like text)" in data_error("d.dat", tmp_path)


def test_csv_text_in_a_numeric_column_is_located(tmp_path):
    write(tmp_path, "p.csv", "name_id,age,label\n1,30,0\n\n2,abc,1\n")
    message = data_error({"path": "p.csv", "label": "label"}, tmp_path)
    assert message == (f"{tmp_path / 'p.csv'}:4:3: could not convert 'abc' to a number in "
                       "column 'age'; layerctl reads numeric columns only")


def test_csv_error_location_in_a_later_chunk_and_with_quotes(tmp_path, monkeypatch):
    lines = ["a,b,label"] + [f"{i},{i},0" for i in range(7)] + ['7,"x,y",0']
    write(tmp_path, "p.csv", "\n".join(lines) + "\n")
    monkeypatch.setattr(csvfile, "LOAD_CHUNK_ROWS", 3)
    message = data_error({"path": "p.csv", "label": "label"}, tmp_path)
    assert message.startswith(f"{tmp_path / 'p.csv'}:9:3: could not convert 'x,y' to a number "
                              "in column 'b'")


def test_csv_without_header_names_the_column_index(tmp_path):
    write(tmp_path, "p.csv", "1,2,0\n3,4,1\n5,six,1\n")
    message = data_error({"path": "p.csv", "label": 2}, tmp_path)
    assert message.startswith(f"{tmp_path / 'p.csv'}:3:3: could not convert 'six' to a number "
                              "in column 1 (0-based; the file has no header)")


def test_csv_empty_cell(tmp_path):
    write(tmp_path, "p.csv", "a,b,label\n1,,0\n")
    message = data_error({"path": "p.csv", "label": "label"}, tmp_path)
    assert message.startswith(f"{tmp_path / 'p.csv'}:2:3: empty cell in column 'b'")


@pytest.mark.parametrize("row", ["1,2", "1,2,3,4"])
def test_csv_ragged_rows(tmp_path, row):
    write(tmp_path, "p.csv", f"a,b,label\n1,2,3\n{row}\n")
    count = row.count(",") + 1
    message = data_error({"path": "p.csv", "label": "label"}, tmp_path)
    assert message.startswith(f"{tmp_path / 'p.csv'}:3: row has {count} values but the header "
                              "has 3")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("\n  \n\n", "is empty"),
        ("a,b,label\n\n", "has a header but no data rows"),
    ],
)
def test_empty_csv(tmp_path, text, message):
    write(tmp_path, "e.csv", text)
    assert message in data_error({"path": "e.csv", "label": 0}, tmp_path)


def test_csv_label_column_errors(tmp_path):
    write(tmp_path, "h.csv", "age,height,target\n1,2,3\n")
    write(tmp_path, "n.csv", "1,2,3\n")
    write(tmp_path, "one.csv", "label\n1\n")
    cases = [
        ({"path": "h.csv", "label": "targt"}, "has no column 'targt'; did you mean 'target'? "
                                              "columns: age, height, target"),
        ({"path": "h.csv", "label": 3}, "label column index 3 is out of range for 3 columns"),
        ({"path": "h.csv", "label": -4}, "out of range"),
        ({"path": "h.csv"}, "no label column given; add `label: COLUMN` to the data source "
                            "(columns: age, height, target)"),
        ({"path": "n.csv", "label": "target"}, "has no header row, so its columns have no names"),
        ({"path": "one.csv"}, "has only the label column"),
    ]
    for source, message in cases:
        assert message in data_error(source, tmp_path)


def test_csv_that_is_not_text(tmp_path):
    (tmp_path / "b.csv").write_bytes(b"1,2\n\xff\xfe\x00\n")
    assert "is not a text CSV file" in data_error({"path": "b.csv", "label": 0}, tmp_path)


# ---- validation split and batches --------------------------------------------------------------
def numbered(count: int, labels: bool = True) -> Dataset:
    x = np.arange(count * 2, dtype=np.float32).reshape(count, 2)
    return Dataset(x, np.arange(count) if labels else None, "numbers")


def test_validation_split_takes_the_last_samples():
    train, validation = split_validation(numbered(10), 0.2)
    assert train.y.tolist() == list(range(8)) and validation.y.tolist() == [8, 9]
    np.testing.assert_array_equal(validation.x, [[16, 17], [18, 19]])


@pytest.mark.parametrize(
    ("count", "fraction", "train_count"),
    [(1797, 0.1, 1617), (10, 0.3, 7), (10, 0.25, 7), (3, 0.5, 1), (100, 0.01, 99)],
)
def test_validation_split_point_is_floor_of_n_times_one_minus_fraction(count, fraction,
                                                                       train_count):
    train, validation = split_validation(numbered(count), fraction)
    assert len(train) == train_count and len(validation) == count - train_count


@pytest.mark.oracle
def test_validation_split_point_matches_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("keras", reason="the oracle extra (keras, torch) is not installed")
    from keras.src.trainers.data_adapters.array_slicing import train_validation_split

    for count in (7, 10, 99, 100, 1797):
        for fraction in (0.01, 0.1, 0.15, 0.2, 0.29, 0.3, 0.33, 0.5, 0.7, 0.9):
            data = numbered(count)
            try:
                (kx, ky), (vx, vy) = train_validation_split((data.x, data.y), fraction)
            except ValueError:
                with pytest.raises(DataError):
                    split_validation(data, fraction)
                continue
            train, validation = split_validation(data, fraction)
            np.testing.assert_array_equal(train.y, ky)
            np.testing.assert_array_equal(validation.x, vx)


def test_validation_split_errors():
    assert len(split_validation(numbered(3), 0.1)[1]) == 1  # floor(2.7) = 2 train samples
    with pytest.raises(DataError, match="1 samples are too few to split off"):
        split_validation(numbered(1), 0.5)  # floor(0.5) = 0 train samples
    with pytest.raises(DataError, match="between 0 and 1"):
        split_validation(numbered(10), 1.0)


def test_validation_split_without_labels_and_with_a_seed():
    train, validation = split_validation(numbered(10, labels=False), 0.5)
    assert train.y is None and validation.y is None and len(validation) == 5
    first = split_validation(numbered(20), 0.25, seed=3)
    again = split_validation(numbered(20), 0.25, seed=3)
    np.testing.assert_array_equal(first[1].y, again[1].y)
    assert sorted(first[0].y.tolist() + first[1].y.tolist()) == list(range(20))
    assert first[1].y.tolist() != [15, 16, 17, 18, 19]


def test_batches_cover_every_index_once_with_a_partial_last_batch():
    for shuffle in (False, True):
        parts = list(batches(10, 4, shuffle, np.random.default_rng(0)))
        assert [len(p) for p in parts] == [4, 4, 2]
        assert sorted(np.concatenate(parts).tolist()) == list(range(10))
    assert np.concatenate(list(batches(10, 4))).tolist() == list(range(10))
    assert [len(p) for p in batches(8, 4)] == [4, 4]
    assert list(batches(0, 4)) == []


def test_shuffled_batches_are_reproducible_from_the_generator():
    first = [b.tolist() for b in batches(50, 7, True, np.random.default_rng(42))]
    again = [b.tolist() for b in batches(50, 7, True, np.random.default_rng(42))]
    other = [b.tolist() for b in batches(50, 7, True, np.random.default_rng(43))]
    assert first == again and first != other
    assert first == [p.tolist() for p in np.array_split(
        np.random.default_rng(42).permutation(50), [7, 14, 21, 28, 35, 42, 49])]


def test_the_permutation_is_drawn_when_batches_is_called():
    rng, same = np.random.default_rng(5), np.random.default_rng(5)
    lazy = batches(10, 3, True, rng)
    rng.random()  # e.g. dropout drawing before the first batch is taken
    assert [b.tolist() for b in lazy] == [b.tolist() for b in batches(10, 3, True, same)]


def test_batch_size_must_be_positive():
    with pytest.raises(DataError, match="batch_size must be a positive integer"):
        batches(10, 0)


# ---- check_against_model -----------------------------------------------------------------------
def problems(dataset, input_shape, output_shape, loss, dtype="float32", **options) -> list[str]:
    with pytest.raises(DataError) as caught:
        check_against_model(dataset, input_shape, dtype, output_shape, loss, **options)
    return [p.render() for p in caught.value.problems]


def test_digits_fit_a_cnn_and_an_mlp_input():
    digits = load_dataset("digits")
    check_against_model(digits, (None, 8, 8, 1), "float32", (None, 10),
                        "sparse_categorical_crossentropy")
    flat = Dataset(digits.x.reshape(-1, 64), digits.y, "flat")
    check_against_model(flat, (None, 64), np.float64, (None, 10), "SparseCategoricalCrossentropy")


def test_input_shape_mismatch_says_both_shapes_and_the_fix():
    digits = load_dataset("digits")
    flat = Dataset(digits.x.reshape(-1, 64), digits.y, "digits")
    assert problems(flat, (None, 8, 8, 1), (None, 10), "sparse_categorical_crossentropy") == [
        "digits: x has shape (1797, 64) but the model's input is (N, 8, 8, 1); "
        "reshape it: x.reshape(-1, 8, 8, 1)"]
    no_channel = Dataset(digits.x[..., 0], digits.y, "digits")
    (message,) = problems(no_channel, (None, 8, 8, 1), (None, 10), None)
    assert message.endswith("add a channel axis: x[..., None]")
    (message,) = problems(digits, (None, 32), (None, 10), None)
    assert message.endswith("set input_shape: [8, 8, 1] in the spec, or reshape the data")


def test_unknown_sizes_match_anything():
    sequences = Dataset(np.zeros((4, 7, 3), np.float32), np.zeros((4, 7), np.int64), "seq")
    check_against_model(sequences, (None, None, 3), "float32", (None, None, 5),
                        "sparse_categorical_crossentropy")


def test_categorical_crossentropy_with_class_ids_gives_the_usual_advice():
    digits = load_dataset("digits")
    assert problems(digits, (None, 8, 8, 1), (None, 10), "categorical_crossentropy") == [
        "digits: labels have shape (1797,) but categorical_crossentropy expects one-hot "
        "(N, 10); use sparse_categorical_crossentropy or one-hot labels"]
    one_hot = Dataset(digits.x, np.eye(10, dtype=np.float32)[digits.y], "digits")
    check_against_model(one_hot, (None, 8, 8, 1), "float32", (None, 10), "CategoricalCrossentropy")


def test_sparse_crossentropy_with_one_hot_labels():
    one_hot = Dataset(np.zeros((5, 3)), np.eye(4)[[0, 1, 2, 3, 0]], "d")
    (message,) = problems(one_hot, (None, 3), (None, 4), "sparse_categorical_crossentropy")
    assert message == ("d: labels have shape (5, 4) (one-hot) but sparse_categorical_crossentropy"
                       " expects class ids (N,); use categorical_crossentropy, or class ids: "
                       "y.argmax(-1)")


def test_sparse_labels_must_be_class_ids_in_range():
    x = np.zeros((5, 3))
    sparse = "sparse_categorical_crossentropy"
    (message,) = problems(Dataset(x, np.array([0, 1, 2, 10, 4]), "d"), (None, 3), (None, 10),
                          sparse)
    assert message.startswith("d: label 10 at sample 3 is out of range for 10 classes (0..9)")
    (message,) = problems(Dataset(x, np.array([0, 0.5, 1, 2, 3]), "d"), (None, 3), (None, 10),
                          sparse)
    assert message.startswith("d: label 0.5 at sample 1 is not a class id (0..9)")
    (message,) = problems(Dataset(x, np.array([0, 1, -1, 2, 3]), "d"), (None, 3), (None, 10),
                          sparse)
    assert "label -1 at sample 2" in message
    check_against_model(Dataset(x, np.array([0, 1, -1, 2, 3]), "d"), (None, 3), "float32",
                        (None, 10), sparse, ignore_class=-1)
    check_against_model(Dataset(x, np.array([[0], [1], [2], [3], [9]]), "d"), (None, 3),
                        "float32", (None, 10), sparse)


def test_binary_and_regression_label_shapes_follow_keras_squeeze_rules():
    x = np.zeros((4, 2), np.float32)
    for labels in (np.array([0, 1, 1, 0]), np.array([[0], [1], [1], [0]])):
        check_against_model(Dataset(x, labels, "d"), (None, 2), "float32", (None, 1),
                            "binary_crossentropy")
    check_against_model(Dataset(x, np.zeros(4), "d"), (None, 2), "float32", (None,), "mse")
    (message,) = problems(Dataset(x, np.zeros((4, 3)), "d"), (None, 2), (None, 2), "mae")
    assert message == ("d: labels have shape (4, 3) but mean_absolute_error expects (N, 2); "
                       "match the model's output")
    (message,) = problems(Dataset(x, np.array([0, 3, 1, 0]), "d"), (None, 2), (None, 1),
                          "binary_crossentropy")
    assert message.startswith("d: label 3 at sample 1 is outside [0, 1]")


def test_integer_inputs_for_an_embedding_model():
    labels = np.zeros(3, np.int64)
    ids = Dataset(np.array([[1, 2], [3, 4], [0, 0]]), labels, "ids")
    check_against_model(ids, (None, 2), "int32", (None, 1), None)
    whole = Dataset(np.array([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]]), labels, "ids")
    check_against_model(whole, (None, 2), "int64", (None, 1), None)
    fractional = Dataset(np.array([[1.0, 2.0], [3.0, 4.5], [0.0, 0.0]]), labels, "ids")
    (message,) = problems(fractional, (None, 2), (None, 1), None, dtype="int32")
    assert message == ("ids: x holds 4.5 at sample 1, but the model's input takes integer ids "
                       "(int32); token ids must be whole numbers")


def test_non_finite_inputs_are_found_block_by_block(tmp_path, monkeypatch):
    x = np.zeros((100, 3), np.float32)
    x[73, 1] = np.nan
    np.save(tmp_path / "x.npy", x)
    mapped = Dataset(np.load(tmp_path / "x.npy", mmap_mode="r"), np.zeros(100), "x.npy")
    monkeypatch.setattr(checks, "SCAN_ELEMENTS", 30)  # blocks of 10 samples
    (message,) = problems(mapped, (None, 3), (None, 1), "mse")
    assert message == "x.npy: x holds nan at sample 73; inputs must be finite numbers"


def test_every_mismatch_is_reported_at_once():
    dataset = Dataset(np.zeros((3, 5)), np.array([0, 1, 7]), "d")
    found = problems(dataset, (None, 4), (None, 3), "sparse_categorical_crossentropy")
    assert len(found) == 2
    assert found[0].startswith("d: x has shape (3, 5)") and found[1].startswith("d: label 7")


def test_missing_labels_for_a_loss():
    (message,) = problems(Dataset(np.zeros((3, 2)), None, "d"), (None, 2), (None, 1), "mse")
    assert message == "d: there are no labels, and the loss mean_squared_error needs them"


# ---- predict inputs: streaming -----------------------------------------------------------------
def test_open_npy_is_a_memory_map_read_in_batches(tmp_path):
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    np.save(tmp_path / "in.npy", x)
    stream = open_inputs(tmp_path / "in.npy")
    assert isinstance(stream.array, np.memmap) and stream.length == 10
    assert stream.sample_shape == (3,) and stream.dtype == np.float32
    parts = list(stream.batches(4))
    assert [len(p) for p in parts] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(parts), x)


def test_open_npz_key_default_only_array_and_errors(tmp_path):
    np.savez(tmp_path / "x.npz", x=np.ones((2, 2)), other=np.zeros((2, 2)))
    np.savez(tmp_path / "one.npz", np.full((3, 1), 7.0))  # stored as arr_0
    np.savez(tmp_path / "two.npz", a=np.ones(2), b=np.ones(2))
    assert open_inputs(tmp_path / "x.npz").array.tolist() == [[1, 1], [1, 1]]
    assert open_inputs(tmp_path / "x.npz", key="other").array.sum() == 0
    assert open_inputs(tmp_path / "one.npz").array.ravel().tolist() == [7, 7, 7]
    with pytest.raises(DataError, match="no array 'x'.*keys present: 'a', 'b'; choose one with"):
        open_inputs(tmp_path / "two.npz")
    with pytest.raises(DataError, match="no array 'c'"):
        open_inputs(tmp_path / "two.npz", key="c")
    np.save(tmp_path / "x.npy", np.ones(2))
    with pytest.raises(DataError, match="only applies to .npz"):
        open_inputs(tmp_path / "x.npy", key="x")


def test_open_csv_streams_chunks_of_at_most_the_batch_size(tmp_path):
    rows = np.arange(21, dtype=np.float64).reshape(7, 3)
    text = "a,b,c\n" + "".join(",".join(f"{v:g}" for v in r) + "\n\n" for r in rows)
    write(tmp_path, "in.csv", text)
    stream = open_inputs(tmp_path / "in.csv")
    assert stream.length is None and stream.array is None and stream.sample_shape == (3,)
    parts = list(stream.batches(3))
    assert [p.shape for p in parts] == [(3, 3), (3, 3), (1, 3)]
    np.testing.assert_array_equal(np.concatenate(parts), rows)


def test_csv_stream_reads_lazily_and_locates_a_late_error(tmp_path):
    write(tmp_path, "in.csv", "1,2\n3,4\n5,6\n7,oops\n")
    chunks = open_inputs(tmp_path / "in.csv").batches(2)
    np.testing.assert_array_equal(next(chunks), [[1, 2], [3, 4]])  # read before the bad line
    with pytest.raises(DataError) as caught:
        next(chunks)
    assert str(caught.value).startswith(f"{tmp_path / 'in.csv'}:4:3: could not convert 'oops'")


# ---- predict outputs: atomic writing ----------------------------------------------------------
def chunks_of(array: np.ndarray, size: int):
    return (array[i:i + size] for i in range(0, len(array), size))


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.mark.parametrize("known_total", [True, False])
def test_write_npy_with_and_without_a_known_total(tmp_path, monkeypatch, known_total):
    monkeypatch.setattr(streams, "COPY_BLOCK_BYTES", 40)  # copy 10 float32 values per step
    outputs = np.random.default_rng(0).random((23, 3, 2)).astype(np.float32)
    write_outputs(tmp_path / "out.npy", chunks_of(outputs, 5),
                  total=23 if known_total else None)
    loaded = np.load(tmp_path / "out.npy", allow_pickle=False)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, outputs)
    assert leftovers(tmp_path, {"out.npy"}) == []


def test_write_npy_total_mismatch_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="got 4 samples, not total=5"):
        write_outputs(tmp_path / "out.npy", chunks_of(np.ones((4, 2)), 2), total=5)
    assert leftovers(tmp_path, set()) == []


def test_write_csv_uses_shortest_round_trip_numbers(tmp_path):
    outputs = np.array([[0.1, 0.5], [1 / 3, 2.0]], np.float32)
    write_outputs(tmp_path / "out.csv", chunks_of(outputs, 1), header=["p0", "p1"])
    assert (tmp_path / "out.csv").read_text() == "p0,p1\n0.1,0.5\n0.33333334,2.0\n"
    reread = np.loadtxt(tmp_path / "out.csv", delimiter=",", skiprows=1, dtype=np.float32)
    np.testing.assert_array_equal(reread, outputs)
    write_outputs(tmp_path / "classes.csv", [np.array([3, 1]), np.array([4])])
    assert (tmp_path / "classes.csv").read_text() == "3\n1\n4\n"


def test_write_json(tmp_path):
    outputs = np.array([[0.25, np.nan], [1.0, -np.inf]], np.float32)
    write_outputs(tmp_path / "out.json", chunks_of(outputs, 1))
    assert json.loads((tmp_path / "out.json").read_text()) == [[0.25, None], [1.0, None]]
    write_outputs(tmp_path / "c.json", [np.array([2, 0]), np.array([True])])
    assert json.loads((tmp_path / "c.json").read_text()) == [2, 0, 1]
    write_outputs(tmp_path / "seq.json", [np.arange(8).reshape(2, 2, 2)])
    assert json.loads((tmp_path / "seq.json").read_text()) == [[[0, 1], [2, 3]], [[4, 5], [6, 7]]]
    write_outputs(tmp_path / "none.json", [])
    assert json.loads((tmp_path / "none.json").read_text()) == []


def test_without_a_path_csv_goes_to_standard_output(capsys):
    write_outputs(None, [np.array([[1, 2]]), np.array([[3, 4]])])
    assert capsys.readouterr().out == "1,2\n3,4\n"


@pytest.mark.parametrize("name", ["out.npy", "out.csv", "out.json"])
def test_a_failure_mid_stream_leaves_the_old_file_untouched(tmp_path, name):
    (tmp_path / name).write_text("previous")

    def failing():
        yield np.ones((2, 2), np.float32)
        raise DataError("in.csv:9:1: could not convert 'x' to a number")

    with pytest.raises(DataError):
        write_outputs(tmp_path / name, failing(), total=4)
    assert (tmp_path / name).read_text() == "previous"
    assert leftovers(tmp_path, {name}) == []


def test_unknown_output_format_is_refused_before_writing(tmp_path):
    with pytest.raises(DataError, match=r"unknown output format '\.txt'.*\.npy, \.csv or \.json"):
        output_format(tmp_path / "out.txt")
    with pytest.raises(DataError, match="unknown output format"):
        write_outputs(tmp_path / "out.txt", [np.ones((1, 1))])
    assert leftovers(tmp_path, set()) == []


def test_loaders_never_allow_pickles():
    """Every np.load in the data code passes allow_pickle=False (the default changed before)."""
    import layerctl.data as package

    folders = [Path(package.__file__).parent, DIGITS_NPZ.parent]
    for source in (p for folder in folders for p in folder.glob("*.py")):
        text = source.read_text(encoding="utf-8")
        calls = text.count("np.load(")
        assert text.count("allow_pickle=False") >= calls, source


def test_float64_inputs_round_trip_exactly(tmp_path):
    values = np.array([[0.1, 1 / 3], [math.pi, 1e-300]])
    write_outputs(tmp_path / "o.csv", [values])
    np.testing.assert_array_equal(np.loadtxt(tmp_path / "o.csv", delimiter=",", ndmin=2), values)
