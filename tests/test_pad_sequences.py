"""pad_sequences and FlatSequences: hand values (Keras docs, reference §13/§17) and Keras itself.

The oracle tests run thousands of random cases through both `keras.utils.pad_sequences` and ours
and require the same array (dtype, shape, values) or the same exception type and message. The
one deliberate difference, `maxlen=0` (Keras crashes where we return an empty array), is checked
on its own.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layerctl.text import sequences as sequences_module
from layerctl.text.sequences import FlatSequences, pad_sequences

DOCS = [[1], [2, 3], [4, 5, 6]]
A = [[1], [1, 2], [1, 2, 3]]


# -- hand values -----------------------------------------------------------------------------


def test_keras_docstring_examples():
    assert pad_sequences(DOCS).tolist() == [[0, 0, 1], [0, 2, 3], [4, 5, 6]]
    assert pad_sequences(DOCS, value=-1).tolist() == [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]]
    assert pad_sequences(DOCS, padding="post").tolist() == [[1, 0, 0], [2, 3, 0], [4, 5, 6]]
    assert pad_sequences(DOCS, maxlen=2).tolist() == [[0, 1], [2, 3], [5, 6]]
    assert pad_sequences(DOCS).dtype == np.int32


def test_reference_17_1_modes_and_value():
    assert pad_sequences(A, maxlen=3).tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 3]]
    assert pad_sequences(A, maxlen=3, padding="post").tolist() == [[1, 0, 0], [1, 2, 0], [1, 2, 3]]
    assert pad_sequences(A, maxlen=2).tolist() == [[0, 1], [1, 2], [2, 3]]
    assert pad_sequences(A, maxlen=2, truncating="post").tolist() == [[0, 1], [1, 2], [1, 2]]
    assert pad_sequences(A, maxlen=3, value=1).tolist() == [[1, 1, 1], [1, 1, 2], [1, 2, 3]]


def test_reference_17_2_float32():
    got = pad_sequences([[1.2], [1.2, 2.3], [1.2, 2.3, 3.4]], maxlen=2, dtype="float32")
    expected = np.array([[0, 1.2], [1.2, 2.3], [2.3, 3.4]], dtype=np.float32)
    assert got.dtype == np.float32 and np.array_equal(got, expected)


def test_reference_17_3_strings():
    strings = [["1"], ["1", "2"], ["1", "2", "3"]]
    got = pad_sequences(strings, maxlen=3, value="pad", dtype=object)
    assert got.dtype == object
    assert got.tolist() == [["pad", "pad", "1"], ["pad", "1", "2"], ["1", "2", "3"]]
    with pytest.raises(ValueError, match="`dtype` int32 is not compatible with "):
        pad_sequences(strings, maxlen=3, value="pad")
    with pytest.raises(ValueError, match="You should set `dtype=object`"):
        pad_sequences(strings, value="pad", dtype="object")  # an identity check, as in Keras


def test_string_dtypes_truncate_like_numpy():
    assert pad_sequences([["abc"]], dtype=str, value="x").tolist() == [["a"]]
    assert pad_sequences([["abcd", "e"]], dtype="<U3").tolist() == [["abc", "e"]]


def test_reference_17_4_vectors_per_step():
    vectors = [[[1, 1]], [[2, 1], [2, 2]], [[3, 1], [3, 2], [3, 3]]]
    got = pad_sequences(vectors, maxlen=3)
    assert got.shape == (3, 3, 2)
    assert got[0].tolist() == [[0, 0], [0, 0], [1, 1]]
    assert got[2].tolist() == [[3, 1], [3, 2], [3, 3]]
    with pytest.raises(ValueError, match=r"Shape of sample \(3,\) of sequence at position 1 "
                                         r"is different from expected shape \(2,\)"):
        pad_sequences([[[1, 2]], [[3, 4, 5]]])


def test_reference_17_5_edges_and_errors():
    assert pad_sequences([[], [1, 2]]).tolist() == [[0, 0], [1, 2]]
    assert pad_sequences([], maxlen=3).shape == (0, 3)
    assert pad_sequences([[], []]).shape == (2, 0)
    with pytest.raises(ValueError, match="zero-size array to reduction operation maximum"):
        pad_sequences([])
    with pytest.raises(ValueError, match="must be a list of iterables. Found non-iterable: 1"):
        pad_sequences([1, 2])
    with pytest.raises(ValueError, match='Padding type "mid" not understood'):
        pad_sequences(A, padding="mid")
    with pytest.raises(ValueError, match='Truncating type "mid" not understood'):
        pad_sequences(A, maxlen=2, truncating="mid")
    with pytest.raises(ValueError, match="`sequences` must be iterable."):
        pad_sequences(iter(A))
    # Modes are only checked for non-empty sequences, as in Keras.
    assert pad_sequences([[], []], padding="mid", truncating="mid").shape == (2, 0)


def test_casts_only_the_kept_part():
    assert pad_sequences([[1.7, -1.7]]).tolist() == [[1, -1]]
    assert pad_sequences([["7", "2"]]).tolist() == [[7, 2]]
    assert pad_sequences([["a", "2"]], maxlen=1).tolist() == [[2]]  # "a" is cut away
    with pytest.raises(ValueError, match="invalid literal for int"):
        pad_sequences([["a", "2"]])
    assert pad_sequences([[300, 1]], maxlen=1, dtype="int8").tolist() == [[1]]
    with pytest.raises(OverflowError):
        pad_sequences([[300, 1]], dtype="int8")


def test_bad_maxlen_errors_come_from_numpy():
    with pytest.raises(ValueError, match="negative dimensions are not allowed"):
        pad_sequences(A, maxlen=-1)
    with pytest.raises(TypeError):
        pad_sequences(A, maxlen=2.0)


def test_maxlen_zero_returns_empty_rows_where_keras_crashes():
    for truncating in ("pre", "post"):
        assert pad_sequences(A, maxlen=0, truncating=truncating).shape == (3, 0)
        flat = FlatSequences.from_sequences(A)
        assert flat.pad(maxlen=0, truncating=truncating).shape == (3, 0)
    assert pad_sequences([[[1, 2]], [[3, 4]]], maxlen=0).shape == (2, 0, 2)
    with pytest.raises(ValueError, match='Padding type "mid"'):
        pad_sequences(A, maxlen=0, padding="mid")


def test_arrays_as_input():
    rows = np.arange(12).reshape(3, 4)
    assert pad_sequences(rows, maxlen=2).tolist() == [[2, 3], [6, 7], [10, 11]]
    assert pad_sequences(rows, maxlen=5, padding="post", truncating="post").tolist() == [
        [0, 1, 2, 3, 0], [4, 5, 6, 7, 0], [8, 9, 10, 11, 0]]
    ragged = [np.array([1, 2, 3]), np.array([4])]
    assert pad_sequences(ragged, maxlen=2).tolist() == [[2, 3], [0, 4]]
    assert pad_sequences([np.array([300])], dtype="int8").tolist() == [[44]]  # astype wraps


def test_common_inputs_take_the_vectorized_path(monkeypatch):
    def refuse(*args):
        raise AssertionError("the step-by-step path was used")

    monkeypatch.setattr(sequences_module, "_pad_stepwise", refuse)
    pad_sequences([[1, 2, 3], [4], []], maxlen=2)
    pad_sequences([(1.5, 2.5), range(3)], dtype="float32", padding="post")
    pad_sequences([[[1, 2]], [[3, 4], [5, 6]]], maxlen=1)
    pad_sequences([["a"], ["b", "c"]], dtype=object, value="")
    pad_sequences([np.arange(5), np.arange(2)], maxlen=3)
    pad_sequences(np.ones((4, 6)), maxlen=3)


# -- FlatSequences ---------------------------------------------------------------------------


def test_flat_layout():
    flat = FlatSequences.from_sequences([[5, 6], [], [7]])
    assert flat.values.tolist() == [5, 6, 7]
    assert flat.lengths.tolist() == [2, 0, 1]
    assert flat.offsets.tolist() == [0, 2, 2, 3]
    assert flat[0].tolist() == [5, 6] and flat[1].tolist() == [] and len(flat) == 3
    assert flat.tolist() == [[5, 6], [], [7]]
    assert flat.select([2, 0]).tolist() == [[7], [5, 6]]
    assert flat.truncate(1, "pre").tolist() == [[6], [], [7]]
    assert flat.truncate(1, "post").tolist() == [[5], [], [7]]
    both = FlatSequences.concatenate([flat, FlatSequences.from_sequences([[8]])])
    assert both.tolist() == [[5, 6], [], [7], [8]]
    with pytest.raises(ValueError, match="lengths add up to 4"):
        FlatSequences(np.arange(3), np.array([2, 2]))


def test_flat_pad_matches_list_pad_at_window_edges():
    # The window gather needs special care for rows near either end of `values`.
    rng = np.random.default_rng(1)
    for _ in range(200):
        lengths = rng.integers(0, 7, rng.integers(1, 8))
        flat = FlatSequences(rng.integers(1, 99, int(lengths.sum())), lengths)
        lists = flat.tolist()
        maxlen = int(rng.integers(1, 9))
        for padding in ("pre", "post"):
            for truncating in ("pre", "post"):
                kwargs = dict(maxlen=maxlen, padding=padding, truncating=truncating, value=-1,
                              dtype="int64")
                expected = sequences_module._pad_stepwise(lists, **kwargs)
                assert np.array_equal(flat.pad(**kwargs), expected), (lists, kwargs)


def test_flat_pad_vectors_and_casts():
    flat = FlatSequences(np.arange(10.0).reshape(5, 2), np.array([3, 2]))
    got = flat.pad(maxlen=2, dtype="float64", padding="post")
    assert got.tolist() == [[[2, 3], [4, 5]], [[6, 7], [8, 9]]]
    assert flat.pad(maxlen=4).dtype == np.int32
    assert flat.pad(maxlen=1, value=-1).tolist() == [[[4, 5]], [[8, 9]]]


# -- Keras as the oracle ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras_pad():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras", reason="needs the `oracle` extra (Keras 3)")
    return keras.utils.pad_sequences


def outcome(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return function(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - the exception is the result compared
            return error


def assert_same(ours, theirs, maxlen):
    if isinstance(theirs, Exception):
        if maxlen == 0 and isinstance(ours, np.ndarray):
            assert ours.shape[1] == 0  # the documented difference: Keras crashes here
            return
        if maxlen == 0 and "not understood" in str(ours):
            return  # we still check the modes where Keras crashed first
        assert isinstance(ours, Exception), f"Keras raised {theirs!r}, we returned {ours!r}"
        assert (type(ours), str(ours)) == (type(theirs), str(theirs))
        return
    assert not isinstance(ours, Exception), f"we raised {ours!r}, Keras returned {theirs!r}"
    assert (ours.dtype, ours.shape) == (theirs.dtype, theirs.shape)
    if ours.dtype.kind == "f":
        assert np.array_equal(ours, theirs, equal_nan=True)
    else:
        assert ours.tolist() == theirs.tolist()


SCALARS = {
    "int": st.integers(-5, 300),
    "float": st.floats(-300, 300, allow_nan=False, width=32),
    "text": st.sampled_from(["1", "22", "a", "xyz", ""]),
}
DTYPES = ["int32", "int8", "int64", "float32", "float64", object, "object", "<U2", str, None]
OPTIONS = {
    "maxlen": st.one_of(st.none(), st.integers(0, 12)),
    "dtype": st.sampled_from(DTYPES),
    "padding": st.sampled_from(["pre", "post", "pre", "post", "mid"]),
    "truncating": st.sampled_from(["pre", "post", "pre", "post", "mid"]),
    "value": st.sampled_from([0.0, -1, 2.5, "pad", 0]),
}
ORACLE = settings(max_examples=1500, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])


@st.composite
def ragged(draw, kind=None):
    element = SCALARS[kind] if kind else SCALARS[draw(st.sampled_from(sorted(SCALARS)))]
    container = draw(st.sampled_from([list, list, tuple]))
    rows = draw(st.lists(st.lists(element, max_size=10), max_size=8))
    return [container(row) for row in rows]


@pytest.mark.oracle
@ORACLE
@given(sequences=ragged(), **OPTIONS)
def test_lists_match_keras(keras_pad, sequences, maxlen, dtype, padding, truncating, value):
    kwargs = dict(maxlen=maxlen, dtype=dtype, padding=padding, truncating=truncating,
                  value=value)
    assert_same(outcome(pad_sequences, sequences, **kwargs),
                outcome(keras_pad, sequences, **kwargs), maxlen)


@pytest.mark.oracle
@ORACLE
@given(sequences=ragged("int"), **OPTIONS)
def test_flat_form_matches_keras(keras_pad, sequences, maxlen, dtype, padding, truncating,
                                 value):
    kwargs = dict(maxlen=maxlen, dtype=dtype, padding=padding, truncating=truncating,
                  value=value)
    # The flat form holds arrays, so its twin in Keras is a list of arrays (which cast like
    # arrays: int8 wraps where a Python int would overflow).
    flat = FlatSequences.from_sequences(sequences, dtype="int64")
    rows = [flat[i] for i in range(len(flat))]
    assert_same(outcome(flat.pad, **kwargs), outcome(keras_pad, rows, **kwargs), maxlen)


@st.composite
def vector_steps(draw):
    width = draw(st.integers(1, 3))
    step = st.lists(st.integers(-3, 9), min_size=width, max_size=width)
    rows = draw(st.lists(st.lists(step, max_size=6), max_size=6))
    if rows and draw(st.booleans()) and draw(st.booleans()):  # now and then, a wrong width
        rows[-1] = rows[-1] + [[1] * (width + 1)]
    return rows


@pytest.mark.oracle
@ORACLE
@given(sequences=vector_steps(), **OPTIONS)
def test_vectors_match_keras(keras_pad, sequences, maxlen, dtype, padding, truncating, value):
    kwargs = dict(maxlen=maxlen, dtype=dtype, padding=padding, truncating=truncating,
                  value=value)
    assert_same(outcome(pad_sequences, sequences, **kwargs),
                outcome(keras_pad, sequences, **kwargs), maxlen)


@st.composite
def arrays(draw):
    if draw(st.booleans()):
        shape = (draw(st.integers(0, 5)), draw(st.integers(0, 6)))
        return np.arange(int(np.prod(shape)), dtype=draw(st.sampled_from(["int64", "float32"])))\
            .reshape(shape) * 7 % 301
    lengths = draw(st.lists(st.integers(0, 6), max_size=6))
    return [np.arange(n, dtype=np.float64) * 97.5 for n in lengths]


@pytest.mark.oracle
@ORACLE
@given(sequences=arrays(), **OPTIONS)
def test_arrays_match_keras(keras_pad, sequences, maxlen, dtype, padding, truncating, value):
    kwargs = dict(maxlen=maxlen, dtype=dtype, padding=padding, truncating=truncating,
                  value=value)
    assert_same(outcome(pad_sequences, sequences, **kwargs),
                outcome(keras_pad, sequences, **kwargs), maxlen)
