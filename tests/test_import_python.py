"""`layerctl import` of Python Keras code: read with `ast`, never run.

Every snippet of keras-layer-notes.md (as a file under tests/import_sources/) imports into a
valid spec with the shapes the notes state; Keras 1 spellings are translated with comments;
what cannot be read exactly is a located error; hostile code is never executed.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from layerctl.cli import cli
from layerctl.commands.validate import check
from layerctl.importer import ImportError_, import_source
from layerctl.plan import build_plan
from layerctl.report import summary_json
from layerctl.spec import parse_spec

SOURCES = Path(__file__).parent / "import_sources"


def shapes(text: str) -> dict:
    spec, marks = parse_spec(text, "imported.yaml")
    plan = build_plan(spec, marks)
    assert not [w for w in plan.warnings if w.severity == "error"]
    summary = summary_json(plan)
    return {row["name"]: row["output_shape"] for row in summary["layers"]} | {
        "<params>": summary["total_params"]}


def imported(tmp_path: Path, code: str, name: str = "model.py", **options) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(code))
    return import_source(str(path), **options).text


def problems(tmp_path: Path, code: str) -> list[str]:
    path = tmp_path / "model.py"
    path.write_text(textwrap.dedent(code))
    with pytest.raises(ImportError_) as caught:
        import_source(str(path))
    return [p.render().replace(str(path), "model.py") for p in caught.value.problems
            if p.severity == "error"]


# ---- the notes' snippets ------------------------------------------------------------------
NOTES_SHAPES = {
    "notes_conv2d_flatten_dense": ({"conv2d": [None, 64, 32, 32], "flatten": [None, 65536],
                                    "dense": [None, 32]}, 1792 + 65536 * 32 + 32),
    "notes_batchnorm_dense": ({"dense": [None, 100], "batch_normalization": [None, 100],
                               "activation": [None, 100]}, 2100 + 400),
    "notes_dense_no_bias": ({"dense": [None, 64], "dense_1": [None, 64]}, 16 * 64 + 64 + 4096),
    "notes_dense_first_layer": ({"dense": [None, 32], "dense_1": [None, 32]}, 544 + 1056),
    "notes_masking_lstm": ({"masking": [None, 10, 8], "lstm": [None, 32]}, 4 * 32 * (8 + 32 + 1)),
    "notes_dropout_mlp": ({"dense": [None, 60], "dropout": [None, 60], "dense_1": [None, 30],
                           "dropout_1": [None, 30], "dense_2": [None, 1]}, 3660 + 1830 + 31),
    "notes_conv_relu_batchnorm": ({"Conv2DReluBatchNorm": [None, 64, 32, 32],
                                   "Conv2DReluBatchNorm_1": [None, 32, 32, 32]},
                                  1792 + 128 + 18464 + 128),  # BN axis -1: the width
}


@pytest.mark.parametrize("stem", sorted(NOTES_SHAPES))
def test_every_notes_snippet_imports_valid_with_the_notes_shapes(stem, tmp_path):
    out = tmp_path / f"{stem}.yaml"
    result = CliRunner().invoke(cli, ["import", str(SOURCES / f"{stem}.py"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert check(out) == []  # `layerctl validate` passes
    expected, params = NOTES_SHAPES[stem]
    got = shapes(out.read_text())
    assert {k: got[k] for k in expected} == expected
    assert got["<params>"] == params


def test_the_keras1_conv_snippet_is_translated_with_comments_naming_the_source():
    text = import_source(str(SOURCES / "notes_conv2d_flatten_dense.py")).text
    assert "- {type: Conv2D, filters: 64, kernel_size: [3, 3], padding: same, " \
           "input_shape: [3, 32, 32]}" in text
    assert "# was Convolution2D(64, 3, 3, ...); was border_mode='same', line 6" in text
    assert "data_format: channels_first" in text
    assert "- {type: Flatten, data_format: channels_last}" in text  # Keras 1 kept the order


def test_the_dim_ordering_option_reads_keras1_code_as_tf():
    text = import_source(str(SOURCES / "notes_conv2d_flatten_dense.py"), "tf").text
    assert "data_format" not in text.split("layers:")[0]
    spec, marks = parse_spec(text.replace("[3, 32, 32]", "[32, 32, 3]"))
    assert build_plan(spec, marks).nodes[0].output_shape == (None, 32, 32, 64)


def test_dropout_snippet_compile_and_fit_become_compile_and_train():
    text = import_source(str(SOURCES / "notes_dropout_mlp.py")).text
    spec, _ = parse_spec(text)
    assert spec.compile.loss.type == "binary_crossentropy"
    assert spec.compile.optimizer.learning_rate == 0.01
    assert spec.compile.optimizer.momentum == 0.8
    assert spec.train.epochs == 300 and spec.train.batch_size == 16
    assert spec.train.validation.split == 0.33
    assert "# was nb_epoch=300, line 15" in text and "# was SGD(lr=0.01)" in text
    assert "kernel_constraint: {type: max_norm, max_value: 3}" in text


def test_helper_function_becomes_a_block_with_params(tmp_path):
    text = import_source(str(SOURCES / "notes_conv_relu_batchnorm.py")).text
    assert "params: [n_filter, w_filter, h_filter]" in text
    assert "kernel_size: [$w_filter, $h_filter]" in text
    assert "- {block: Conv2DReluBatchNorm, n_filter: 64, w_filter: 3, h_filter: 3}" in text


def test_block_parameter_defaults(tmp_path):
    text = imported(tmp_path, """
        from keras import layers, Input, Model
        def dense_block(x, units=8, act="relu"):
            x = layers.Dense(units)(x)
            return layers.Activation(act)(x)
        inp = Input(shape=(4,))
        h = dense_block(inp)
        h = dense_block(h, units=3)
        model = Model(inp, h)
        """)
    assert "params: {units: 8, act: relu}" in text
    assert shapes(text) == {"dense_block": [None, 8], "dense_block_1": [None, 3],
                            "<params>": 40 + 27}


# ---- functional models --------------------------------------------------------------------
def test_functional_several_inputs_outputs_and_a_shared_layer(tmp_path):
    text = imported(tmp_path, """
        import keras
        from keras import layers
        left = keras.Input(shape=(8,), name="left")
        right = keras.Input(shape=(8,), name="right")
        enc = layers.Dense(16, activation="relu")
        a = enc(left)
        b = enc(right)
        x = layers.concatenate([a, b])
        x = layers.Dense(4)(x)
        y = layers.Dense(1, activation="sigmoid", name="score")(x)
        z = layers.Dense(3, name="aux")(a)
        model = keras.Model(inputs=[left, right], outputs=[y, z])
        model.compile(optimizer="adam", loss={"score": "binary_crossentropy", "aux": "mse"})
        """)
    assert "- {apply: dense, name: dense_1, inputs: [right]}" in text
    assert "outputs: [score, aux]" in text
    got = shapes(text)
    assert got["concatenate"] == [None, 32] and got["dense_2"] == [None, 4]
    assert got["dense_1"] == [None, 16] and got["<params>"] == 144 + 132 + 5 + 51


def test_keras1_functional_merge_and_model_input_output(tmp_path):
    text = imported(tmp_path, """
        from keras.layers import Input, Dense, merge
        from keras.models import Model
        a = Input(shape=(5,))
        b = Input(shape=(5,))
        x = merge([Dense(3)(a), Dense(3)(b)], mode='concat', concat_axis=-1)
        model = Model(input=[a, b], output=x)
        """)
    assert "was merge(mode='concat')" in text
    assert shapes(text)["concatenate"] == [None, 6]


def test_module_constants_and_keras3_names(tmp_path):
    text = imported(tmp_path, """
        from keras import layers, models
        ROWS, COLS = 28, 28
        CLASSES = 10
        model = models.Sequential([
            layers.Input(shape=(ROWS, COLS, 1)),
            layers.Conv2D(8, (3, 3), activation="relu", padding="valid"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
            layers.Dense(CLASSES, activation="softmax"),
        ])
        model.summary()
        """)
    assert "padding" not in text  # the default is left out
    assert "input_shape: [28, 28, 1]" in text
    assert shapes(text)["dense"] == [None, 10]


# ---- what is not read -------------------------------------------------------------------
@pytest.mark.parametrize(("code", "expected"), [
    ("model = Sequential()\nfor i in range(3):\n    model.add(Dense(8))\n",
     "model.py:2:1: a `for` loop is not read"),
    ("model = Sequential()\nmodel.add(Lambda(lambda x: x * 2, input_shape=(3,)))\n",
     "model.py:2:1: `Lambda`: a Lambda wraps Python code"),
    ("model = Sequential()\nmodel.add(Dense(8, input_shape=(28 * 28,)))\n",
     "model.py:2:1: the computed value `28 * 28` is not read"),
    ("model = Sequential()\nmodel.add(Conv2D(32, 3, 3, input_shape=(8, 8, 1)))\n",
     "model.py:2:1: `Conv2D(32, 3, 3)`: Keras 3 reads the third positional integer as "
     "`strides`"),
    ("class MyLayer:\n    pass\nmodel = Sequential()\nmodel.add(MyLayer())\n",
     "model.py:4:1: `MyLayer` is not a value this reader can read: a custom class (line 1)"),
    ("model = Sequential()\nmodel.add(Convolution2D(8, 3, 3, border_mode='full', "
     "input_shape=(1, 8, 8)))\n", "model.py:2:1: border_mode='full' has no Keras 3 equivalent"),
    ("model = Sequential()\nmodel.add(Dense(8, input_shape=(3,)))\n"
     "model.add(ConvLSTM1D(4, 3))\n",
     "model.py:3:1: `ConvLSTM1D` is a Keras layer layerctl does not support yet"),
])
def test_unsupported_code_is_a_located_error(tmp_path, code, expected):
    found = problems(tmp_path, code)
    assert any(p.startswith(expected) for p in found), found


def test_unrelated_code_is_a_warning_not_an_error(tmp_path):
    path = tmp_path / "model.py"
    path.write_text("import numpy as np\nX = np.zeros((4, 3))\nmodel = Sequential()\n"
                    "model.add(Dense(2, input_shape=(3,)))\nmodel.fit(X, X)\n")
    result = import_source(str(path))
    assert [w.location.line for w in result.warnings] == [2]


# ---- hostile input: read, never run -----------------------------------------------------
def test_hostile_source_is_never_executed(tmp_path):
    marker = tmp_path / "MARKER"
    hostile = f"""
        import os
        __import__('os').system('touch {marker}')
        exec("open({str(marker)!r}, 'w').write('x')")
        open({str(marker)!r}, 'w').write('x')
        ().__class__.__bases__[0].__subclasses__()
        os.system('touch {marker}')
        model = Sequential()
        model.add(Dense(__import__('os').system('touch {marker}'), input_shape=(3,)))
        model.add(Dense(exec("open({str(marker)!r}, 'w')")))
        model.add(getattr(__builtins__, 'exec')("1"))
        model.add(Dense(2).__class__.__init__.__globals__)
        """
    found = problems(tmp_path, hostile)
    assert not marker.exists()
    assert any(p.startswith("model.py:9:1: call of `__import__('os').system`") for p in found)
    assert any(p.startswith("model.py:10:1: `exec(...)` is never run") for p in found)
    assert any(p.startswith("model.py:11:1: `getattr(...)` is never run") for p in found)
    assert any(p.startswith("model.py:12:1: the attribute") for p in found)
    # run through the command too: still nothing created, exit 1, no traceback
    path = tmp_path / "model.py"
    result = CliRunner().invoke(cli, ["import", str(path), "-o", str(tmp_path / "m.yaml")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert not marker.exists() and not (tmp_path / "m.yaml").exists()


def test_output_replaces_only_a_regular_file(tmp_path):
    (tmp_path / "out.yaml").mkdir()
    result = CliRunner().invoke(cli, ["import", str(SOURCES / "notes_dense_no_bias.py"),
                                      "-o", str(tmp_path / "out.yaml")])
    assert result.exit_code == 1
    assert "an output may only replace a regular file" in result.output


@pytest.mark.parametrize(("call", "expected"), [
    ("GRU(4)(x)", {"type": "GRU", "units": 4}),
    ("SimpleRNN(3, return_sequences=True)(x)",
     {"type": "SimpleRNN", "units": 3, "return_sequences": True}),
    ("MultiHeadAttention(2, 8)(x, x)",
     {"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 8, "inputs": ["input", "input"]}),
    ("MultiHeadAttention(2, 8)(x, value=x, use_causal_mask=True)",
     {"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 8, "use_causal_mask": True,
      "inputs": {"query": "input", "value": "input"}}),
    ("Bidirectional(LSTM(4), merge_mode='sum')(x)",
     {"type": "Bidirectional", "layer": {"type": "LSTM", "units": 4}, "merge_mode": "sum"}),
    ("TimeDistributed(Dense(2, name='per_step'))(x)",
     {"type": "TimeDistributed", "layer": {"type": "Dense", "units": 2, "name": "per_step"}}),
])
def test_positional_arguments_call_options_and_wrapped_layers(call, expected, tmp_path):
    import yaml

    path = tmp_path / "model.py"
    path.write_text("from keras.layers import *\nfrom keras import Model\n"
                    f"x = Input((5, 3))\nmodel = Model(x, {call})\n")
    assert yaml.safe_load(import_source(str(path)).text)["layers"] == [expected]


@pytest.mark.parametrize(("call", "message"), [
    ("LSTM(4)(x, mask=x)", "`mask=` is not read"),
    ("LSTM(4)(x, training=True)", "call arguments (training) are not read"),
    ("Dense(4)(x, x)", "`Dense` is called on 2 tensors"),
    ("Bidirectional(x)(x)", "wraps a layer object"),
    ("Bidirectional(LSTM(4))(x, initial_state=[x, x])",
     "call arguments (initial_state) are not read: layerctl's Bidirectional takes"),
])
def test_call_arguments_that_are_not_read_are_located_errors(call, message, tmp_path):
    path = tmp_path / "model.py"
    path.write_text(f"from keras.layers import *\nfrom keras import Model\n"
                    f"x = Input((5, 3))\nmodel = Model(x, {call})\n")
    with pytest.raises(ImportError_) as error:
        import_source(str(path))
    assert message in str(error.value) + " ".join(p.message for p in error.value.problems)
