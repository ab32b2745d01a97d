"""Every bundled spec: valid, with shapes and parameter counts derived by hand (and checked
against Keras 3 when the oracle extra is installed); every invalid spec fails as expected."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from layerctl.cli import cli
from layerctl.plan import build_plan
from layerctl.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
VALID = sorted(p for p in SPECS.rglob("*.yaml") if "invalid" not in p.parts)
INVALID = sorted((SPECS / "invalid").glob("*.yaml"))

# (total params, non-trainable params, final output shape), derived by hand:
# Dense in·u+u, Conv prod(k)·in·f+f, BN 4C (2C non-trainable), LSTM 4u(in+u+1), Embedding n·d.
EXPECTED = {
    "mnist_cnn.yaml": (1_200_394, 256, (None, 10)),        # keras-reference §14
    "imdb_lstm.yaml": (2_691_713, 0, (None, 1)),           # keras-reference §14
    "text_cnn.yaml": (2048 + 6208 + 260, 0, (None, 4)),
    "text_lstm.yaml": (2048 + 24_832 + 260, 0, (None, 4)),
    "text_average.yaml": (2048 + 1056 + 132, 0, (None, 4)),
    # embeddings 64·32 + 16·32; attention 3·(32·32+32) + 32·32+32; 2 LayerNorms 64; FFN
    # 32·64+64 + 64·32+32; Dense 32·4+4
    "transformer_text.yaml": (2048 + 512 + 4224 + 128 + 2112 + 2080 + 132, 0, (None, 4)),
    "text_bilstm.yaml": (2048 + 2 * 8320 + 260, 0, (None, 4)),  # both directions 4u(in+u+1)
    "text_bigru.yaml": (2048 + 2 * 6336 + 260, 0, (None, 4)),  # 3u(in+u) + 2·3u bias each
    "residual_dag.yaml": (2112 + 4160 + 4160 + 528 + 243, 0, (None, 3)),
    "digits_mlp.yaml": (8320 + 8256 + 650, 0, (None, 10)),
    "digits_cnn.yaml": (160 + 4640 + 32_832 + 256 + 650, 128, (None, 10)),
    # Conv 160, Separable 9·16 + 16·32 + 32, Transpose 9·16·32 + 16, Depthwise 9·16·2 + 32
    "digits_conv_transpose.yaml": (160 + 688 + 4624 + 320 + 5130, 0, (None, 10)),
    "digits_upsampling_cnn.yaml": (160 + 4640 + 1290, 0, (None, 10)),  # reshaping: no weights
    "batchnorm_dense.yaml": (2100 + 400, 200, (None, 100)),
    "conv_relu_batchnorm.yaml": (1792 + 256, 128, (None, 32, 32, 64)),
    "dense_no_bias.yaml": (6400, 0, (None, 64)),
    "masking_lstm.yaml": (5248, 0, (None, 32)),
    "conv2d_flatten_dense.yaml": (1792 + 65_536 * 32 + 32, 0, (None, 32)),
    "dense_first_layer.yaml": (544 + 1056, 0, (None, 32)),
    "dropout_mlp.yaml": (3660 + 1830 + 31, 0, (None, 1)),
    "maxpooling_text.yaml": (250_000 + 8032 + 1537, 0, (None, 1)),
    # the first output's shape; conv 160, row_ink 144, hidden 272·64+64, digit 650, even 65
    "digits_two_heads.yaml": (160 + 144 + 17_472 + 650 + 65, 0, (None, 10)),
    # encoder and code count once, however often they are applied
    "siamese_digits.yaml": (4160 + 2080 + 2080 + 33, 0, (None, 1)),
    # stem 160; a block: conv 9·16·16, BN 64 (32 non-trainable), conv 9·16·16+16; res3 2×2
    # conv 9·16+16, conv 9·16·8+8, transposed 9·8·16+16, 9·16·1+1
    "digits_conv_autoencoder.yaml": (160 + 1160 + 1168 + 145, 0, (None, 8, 8, 1)),
    # down 9·8+8, 9·8·16+16, bottom 9·16·16+16, up 9·32·16+16, 9·24·8+8, 1x1 8+1
    "digits_unet.yaml": (80 + 1168 + 2320 + 4624 + 1736 + 9, 0, (None, 8, 8, 1)),
    # embeddings 12·16 twice, LSTM 4·64·(16+64+1) twice, Dense 64·12+12
    "seq2seq_reverse.yaml": (2 * 192 + 2 * 20_736 + 780, 0, (None, 6, 12)),
    "residual_blocks.yaml": (160 + 2 * (2304 + 64 + 2320) + (1024 + 64 + 1040) + 2570, 96,
                             (None, 10)),
}


def plan_of(path: Path):
    spec, marks = load_spec(path)
    return build_plan(spec, marks)


def test_every_spec_has_expectations():
    assert sorted(p.name for p in VALID) == sorted(EXPECTED)


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_spec_params_and_output(path):
    plan = plan_of(path)
    total, non_trainable, output = EXPECTED[path.name]
    assert (plan.total_params, plan.non_trainable_params, plan.output_shape) == (
        total, non_trainable, output)
    assert plan.warnings == ()


def test_keras_notes_conv_example_shapes():
    plan = plan_of(SPECS / "notes" / "conv2d_flatten_dense.yaml")
    assert [n.output_shape for n in plan.nodes] == [(None, 64, 32, 32), (None, 65536), (None, 32)]
    assert plan.nodes[0].weights[0].shape == (3, 3, 3, 64)  # Keras layout in channels_first too


def test_mnist_rows_match_keras_summary():
    plan = plan_of(SPECS / "mnist_cnn.yaml")
    rows = [(n.name, n.layer.keras_class, n.output_shape, n.params) for n in plan.nodes]
    assert rows == [
        ("conv2d", "Conv2D", (None, 26, 26, 32), 320),
        ("conv2d_1", "Conv2D", (None, 24, 24, 64), 18_496),
        ("max_pooling2d", "MaxPooling2D", (None, 12, 12, 64), 0),
        ("dropout", "Dropout", (None, 12, 12, 64), 0),
        ("flatten", "Flatten", (None, 9216), 0),
        ("dense", "Dense", (None, 128), 1_179_776),
        ("batch_normalization", "BatchNormalization", (None, 128), 512),
        ("dropout_1", "Dropout", (None, 128), 0),
        ("dense_1", "Dense", (None, 10), 1_290),
    ]


def test_validate_specs_folder_passes():
    result = CliRunner().invoke(cli, ["validate", str(SPECS)])
    assert result.exit_code == 0, result.output
    assert f"{len(VALID)} spec(s) checked, 0 invalid" in result.output


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_spec_messages(path, monkeypatch):
    monkeypatch.chdir(path.parent)
    result = CliRunner().invoke(cli, ["validate", path.name])
    assert result.exit_code == 1
    expected = path.with_suffix(".expected").read_text().splitlines()
    printed = [line for line in result.stdout.splitlines() if line]
    assert printed == expected


def test_invalid_folder_fails():
    result = CliRunner().invoke(cli, ["validate", str(SPECS / "invalid")])
    assert result.exit_code == 1
    assert f"{len(INVALID)} spec(s) checked, {len(INVALID)} invalid" in result.output


@pytest.mark.oracle
@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_shapes_and_params_match_keras(path):
    from keras_bridge import keras_model, keras_name

    plan = plan_of(path)
    model = keras_model(plan)
    for node in plan.nodes:
        if node.shared:  # an `apply:` has its owner's Keras layer; its params count once
            continue
        layer = model.get_layer(keras_name(node.name))
        outputs = layer.output if isinstance(layer.output, list) else [layer.output]
        assert [tuple(o.shape) for o in outputs] == list(node.output_shapes), node.name
        assert layer.count_params() == node.params, node.name
    assert model.count_params() == plan.total_params


@pytest.mark.parametrize("spelled, message", [
    ("ConvLSTM2D", "ConvLSTM2D is a Keras layer that layerctl does not support (yet); "
                   "docs/layers.md lists the supported layers"),
    ("Dence", "unknown layer type 'Dence'; did you mean 'Dense'?"),
    ("ConvLSTM2d", "unknown layer type 'ConvLSTM2d'; did you mean 'ConvLSTM2D'? (a Keras layer "
                   "that layerctl does not support yet)"),
])
def test_unsupported_keras_layers_are_named_as_such(spelled, message):
    from layerctl.errors import SpecError
    from layerctl.spec import parse_spec

    with pytest.raises(SpecError) as caught:
        parse_spec(f"input_shape: [4]\nlayers:\n  - {{type: {spelled}}}\n", "m.yaml")
    assert [p.render() for p in caught.value.problems] == [f"m.yaml:3:12: {message}"]
    assert [p.code for p in caught.value.problems] == ["LC103" if message.startswith(spelled)
                                                        else "LC102"]
