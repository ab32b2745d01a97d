"""Class 9 of issue 13: a vocabulary file is validated as strictly as a spec.

An index of 2**31 + 5 became -2147483643 and `"char_level": "no"` switched to characters. Types
are now strict (no coercion), unknown keys are errors, indices are unique ints in [1, 2**31),
and each problem is one located line through `pad --use-vocab`.
"""

import json

import pytest
from harden import assert_refused, layerctl

from layerctl.errors import DataError
from layerctl.text.tokenizer import Tokenizer


def good():
    tokenizer = Tokenizer(oov_token="<unk>")
    tokenizer.fit_on_texts(["the cat sat", "the dog"])
    return json.loads(tokenizer.to_json())


def test_a_written_vocabulary_reads_back():
    data = good()
    again = Tokenizer.from_json(json.dumps(data))
    assert again.word_index == data["word_index"] and again.get_config() == data["config"]


def tamper(data, path, value):
    *parents, last = path
    target = data
    for key in parents:
        target = target[key]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return data


DELETE = object()
CASES = {
    "index beyond int32": (("word_index", "cat"), 2**31 + 5,
                           "word_index.cat: Input should be less than 2147483648"),
    "index zero": (("word_index", "cat"), 0,
                   "word_index.cat: Input should be greater than or equal to 1"),
    "index negative": (("word_index", "cat"), -3, "greater than or equal to 1"),
    "index a float": (("word_index", "cat"), 2.0,
                      "word_index.cat: Input should be a valid integer"),
    "index a string": (("word_index", "cat"), "2", "Input should be a valid integer"),
    "index a bool": (("word_index", "cat"), True, "Input should be a valid integer"),
    "index duplicated": (("word_index", "cat"), 1, "index 1 is given to both"),
    "char_level a string": (("config", "char_level"), "no",
                            "config.char_level: Input should be a valid boolean"),
    "lower an int": (("config", "lower"), 0, "config.lower: Input should be a valid boolean"),
    "num_words a string": (("config", "num_words"), "10", "config.num_words"),
    "num_words zero": (("config", "num_words"), 0, "config.num_words"),
    "split empty": (("config", "split"), "", "config.split"),
    "filters a list": (("config", "filters"), ["a"], "config.filters"),
    "unknown config key": (("config", "lowercase"), True,
                           "config.lowercase: Extra inputs are not permitted"),
    "unknown top key": (("indices",), {}, "indices: Extra inputs are not permitted"),
    "no word_index": (("word_index",), DELETE, "word_index: Field required"),
    "count negative": (("word_counts", "cat"), -1, "word_counts.cat"),
    "document_count a float": (("document_count",), 2.5, "document_count"),
    "version 2": (("version",), 2, "version: Input should be 1"),
    "config a list": (("config",), [], "config"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tampered_vocabulary_is_a_clear_error(case):
    path, value, message = CASES[case]
    with pytest.raises(DataError) as caught:
        Tokenizer.from_json(json.dumps(tamper(good(), path, value)), "v.json")
    [problem] = caught.value.problems
    assert problem.location.file == "v.json"
    assert problem.message.startswith("malformed vocabulary file: ")
    assert message in problem.message, problem.message


def test_deeply_nested_json_is_a_clear_error():
    with pytest.raises(DataError, match="nested too deeply"):
        Tokenizer.from_json("[" * 100_000 + "]" * 100_000)


def test_pad_with_a_tampered_vocabulary_is_one_line(tmp_path):
    (tmp_path / "t.txt").write_text("the cat\n")
    (tmp_path / "v.json").write_text(json.dumps(tamper(good(), ("config", "char_level"), "no")))
    result = layerctl("pad", "t.txt", "--use-vocab", "v.json", "--maxlen", 3, "-o", "o.npz",
                      cwd=tmp_path)
    assert_refused(result, "v.json", "config.char_level: Input should be a valid boolean")
    assert not (tmp_path / "o.npz").exists()
