"""Convolution kernels: window geometry, Keras's numbers, naive reference, gradients, oracle."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from gradcheck import numerical_gradient

from layerctl.ops.conv import conv_backward, conv_forward
from layerctl.ops.windows import Geometry, output_length, padding_amounts

# --------------------------------------------------------------------------- window geometry


@pytest.mark.parametrize(("n", "k", "padding", "stride", "dilation", "expected"), [
    (5, 2, "valid", 1, 1, 4),        # floor((5-1-1)/1)+1
    (5, 2, "valid", 2, 1, 2),        # floor(3/2)+1
    (7, 3, "valid", 1, 2, 3),        # span 5: floor((7-4-1)/1)+1
    (5, 3, "same", 2, 1, 3),         # ceil(5/2)
    (6, 3, "same", 2, 1, 3),
    (5, 4, "causal", 1, 1, 5),
    (3, 5, "valid", 1, 1, -1),       # returned as computed; the caller reports it
    (2, 3, "valid", 3, 1, 0),
    (None, 3, "same", 2, 1, None),
    (None, 3, "valid", 1, 1, None),
])
def test_output_length(n, k, padding, stride, dilation, expected):
    assert output_length(n, k, padding, stride, dilation) == expected


@pytest.mark.parametrize(("n", "k", "padding", "stride", "dilation", "expected"), [
    (5, 4, "same", 1, 1, (1, 2)),    # total 3: the odd cell goes after
    (5, 3, "same", 1, 1, (1, 1)),
    (5, 2, "same", 2, 1, (0, 1)),    # out 3: (3-1)*2+2-5 = 1
    (6, 2, "same", 2, 1, (0, 0)),
    (7, 3, "same", 1, 2, (2, 2)),    # span 5
    (4, 1, "same", 3, 1, (0, 0)),    # total would be negative: clamped
    (5, 3, "causal", 1, 1, (2, 0)),
    (5, 3, "causal", 1, 2, (4, 0)),
    (5, 3, "valid", 1, 1, (0, 0)),
])
def test_padding_amounts(n, k, padding, stride, dilation, expected):
    assert padding_amounts(n, k, padding, stride, dilation) == expected


def test_padding_is_lower_cased_and_checked():
    assert output_length(5, 3, "SAME", 2) == 3
    with pytest.raises(ValueError, match="padding=.full"):
        output_length(5, 3, "full", 1)


# --------------------------------------------------------------------------- Keras's numbers


def _conv1d(values, kernel_taps, padding):
    x = np.asarray(values, np.float32).reshape(1, -1, 1)
    kernel = np.asarray(kernel_taps, np.float32).reshape(-1, 1, 1)
    y, _ = conv_forward(x, kernel, 1, padding, 1)
    return y.ravel().tolist()


def test_keras_same_padding_numbers():
    assert _conv1d([1, 2, 3, 4, 5], [1, 1, 1, 1], "same") == [6, 10, 14, 12, 9]


def test_keras_causal_numbers():
    assert _conv1d([1, 2, 3, 4, 5], [1, 1, 1], "causal") == [1, 3, 6, 9, 12]


def test_keras_cross_correlation_is_not_flipped():
    assert _conv1d([1, 10, 100], [1, 2], "valid") == [21, 210]


@pytest.mark.parametrize(("x_shape", "filters", "kernel_size", "strides", "padding", "dilation",
                          "groups", "expected"), [
    ((3, 5, 4), 5, (2,), 1, "valid", 1, 1, (3, 4, 5)),
    ((3, 4, 4), 6, (2,), 1, "same", 2, 2, (3, 4, 6)),
    ((3, 4, 4), 6, (2,), 1, "causal", 2, 2, (3, 4, 6)),
    ((3, 5, 4), 6, (2,), 2, "valid", 1, 2, (3, 2, 6)),
    ((3, 5, 5, 4), 5, (2, 2), 1, "valid", 1, 1, (3, 4, 4, 5)),
    ((3, 4, 4, 4), 6, (2, 2), 1, "same", 2, 2, (3, 4, 4, 6)),
    ((3, 5, 5, 4), 6, (2, 2), (2, 1), "valid", 1, 2, (3, 2, 4, 6)),
    ((1, 5, 5, 3), 8, (3, 3), 2, "same", 1, 1, (1, 3, 3, 8)),
])
def test_keras_output_shapes(x_shape, filters, kernel_size, strides, padding, dilation, groups,
                             expected):
    x = np.zeros(x_shape, np.float32)
    kernel = np.zeros((*kernel_size, x_shape[-1] // groups, filters), np.float32)
    y, _ = conv_forward(x, kernel, strides, padding, dilation, groups)
    assert y.shape == expected


def test_empty_output_raises_keras_message():
    x = np.zeros((1, 3, 3, 1), np.float32)
    kernel = np.zeros((5, 5, 1, 8), np.float32)
    with pytest.raises(ValueError) as info:
        conv_forward(x, kernel, 1, "valid", 1)
    assert str(info.value).startswith(
        "Computed output size would be zero or negative. Received inputs shape=(1, 3, 3, 1), "
        "kernel shape=(5, 5, 1, 8)")


def test_kernel_that_does_not_fit_the_channels_raises():
    with pytest.raises(ValueError, match="groups=2"):
        conv_forward(np.zeros((1, 5, 4)), np.zeros((2, 3, 6)), 1, "valid", 1, groups=2)


# --------------------------------------------------------------------------- naive reference


def naive_conv(x, kernel, strides, padding, dilation, groups):
    """Direct loops over output cells (fine in a test), with padding derived from the formulas."""
    rank = x.ndim - 2
    ks = kernel.shape[:rank]
    pads = []
    for n, k, s, d in zip(x.shape[1:-1], ks, strides, dilation, strict=True):
        span = d * (k - 1) + 1
        if padding == "valid":
            pads.append((0, 0))
        elif padding == "causal":
            pads.append((span - 1, 0))
        else:
            total = max((-(-n // s) - 1) * s + span - n, 0)
            pads.append((total // 2, total - total // 2))
    xp = np.pad(x, [(0, 0), *pads, (0, 0)])
    out = [(xp.shape[1 + i] - dilation[i] * (ks[i] - 1) - 1) // strides[i] + 1 for i in range(rank)]
    cg, filters = kernel.shape[-2], kernel.shape[-1]
    fg = filters // groups
    y = np.zeros((x.shape[0], *out, filters))
    for o in np.ndindex(*out):
        for tap in np.ndindex(*ks):
            pos = tuple(o[i] * strides[i] + tap[i] * dilation[i] for i in range(rank))
            cell = xp[(slice(None), *pos)]                           # (B, Cin)
            for f in range(filters):
                g = f // fg
                weights = kernel[(*tap, slice(None), f)]
                y[(slice(None), *o, f)] += cell[:, g * cg:(g + 1) * cg] @ weights
    return y


CONFIGS = [
    # (spatial, kernel_size, strides, padding, dilation, groups, cin, filters)
    ((7,), (3,), (1,), "valid", (1,), 1, 3, 4),
    ((8,), (3,), (2,), "valid", (1,), 1, 2, 3),
    ((7,), (4,), (1,), "same", (1,), 1, 2, 3),
    ((8,), (3,), (2,), "same", (1,), 1, 2, 3),
    ((9,), (3,), (1,), "same", (2,), 1, 2, 3),
    ((7,), (3,), (1,), "causal", (1,), 1, 2, 3),
    ((8,), (2,), (1,), "causal", (2,), 2, 4, 6),
    ((7,), (2,), (2,), "causal", (1,), 1, 2, 2),
    ((6,), (2,), (1,), "valid", (1,), 2, 4, 6),
    ((6, 5), (3, 3), (1, 1), "valid", (1, 1), 1, 2, 3),
    ((6, 5), (3, 2), (1, 1), "same", (1, 1), 1, 3, 2),
    ((7, 6), (3, 3), (2, 2), "same", (1, 1), 1, 2, 3),
    ((7, 6), (3, 3), (2, 2), "valid", (1, 1), 1, 2, 3),
    ((7, 5), (2, 2), (2, 1), "valid", (1, 1), 2, 4, 6),
    ((6, 6), (2, 3), (2, 1), "same", (1, 1), 1, 2, 2),
    ((7, 7), (3, 3), (1, 1), "same", (2, 2), 1, 2, 3),
    ((8, 6), (2, 2), (1, 1), "valid", (2, 1), 2, 4, 4),
    ((6, 6), (4, 4), (1, 1), "same", (1, 1), 2, 4, 2),
    ((11,), (3,), (2,), "same", (2,), 1, 2, 2),     # Keras forbids stride>1 with dilation>1
]


def _ids(config):
    spatial, ks, s, padding, d, g, _, _ = config
    return f"{len(spatial)}d-{'x'.join(map(str, spatial))}-k{ks}-s{s}-{padding}-d{d}-g{g}"


@pytest.mark.parametrize("config", CONFIGS, ids=[_ids(c) for c in CONFIGS])
def test_forward_matches_naive_reference(config):
    spatial, ks, s, padding, d, g, cin, filters = config
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, *spatial, cin))
    kernel = rng.standard_normal((*ks, cin // g, filters))
    y, _ = conv_forward(x, kernel, s, padding, d, g)
    np.testing.assert_allclose(y, naive_conv(x, kernel, s, padding, d, g), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- gradient checks


@pytest.mark.parametrize("config", CONFIGS, ids=[_ids(c) for c in CONFIGS])
def test_gradients_match_central_differences(config):
    spatial, ks, s, padding, d, g, cin, filters = config
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, *spatial, cin))
    kernel = rng.standard_normal((*ks, cin // g, filters))
    y, cache = conv_forward(x, kernel, s, padding, d, g)
    weights = rng.standard_normal(y.shape)          # loss = Σ weights·y, so dL/dy = weights

    def loss():
        return float(np.sum(conv_forward(x, kernel, s, padding, d, g)[0] * weights))

    dx, dkernel = conv_backward(cache, weights)
    assert dx.shape == x.shape and dkernel.shape == kernel.shape
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dkernel, numerical_gradient(loss, kernel), rtol=1e-6, atol=1e-7)


def test_3d_gradients_match_central_differences():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 4, 5, 3, 2))
    kernel = rng.standard_normal((2, 3, 2, 2, 3))
    args = ((2, 1, 1), "same", 1, 1)
    y, cache = conv_forward(x, kernel, *args)
    weights = rng.standard_normal(y.shape)

    def loss():
        return float(np.sum(conv_forward(x, kernel, *args)[0] * weights))

    dx, dkernel = conv_backward(cache, weights)
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dkernel, numerical_gradient(loss, kernel), rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- dtypes and layout


def test_float32_stays_float32_and_outputs_are_fresh():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 6, 3), dtype=np.float32)
    kernel = rng.standard_normal((3, 3, 3, 4), dtype=np.float32)
    y, cache = conv_forward(x, kernel, 1, "same", 1)
    assert y.dtype == np.float32
    before = y.copy()
    y += 1.0                                        # the layer adds its bias in place
    dx, dkernel = conv_backward(cache, np.ones_like(before))
    assert dx.dtype == np.float32 and dkernel.dtype == np.float32
    y2, _ = conv_forward(x, kernel, 1, "same", 1)
    np.testing.assert_array_equal(y2, before)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_non_contiguous_x_gives_the_same_result(padding):
    rng = np.random.default_rng(7)
    x_channels_first = rng.standard_normal((2, 4, 6, 5))
    x = x_channels_first.transpose(0, 2, 3, 1)      # what the layer passes for channels_first
    kernel = rng.standard_normal((3, 2, 2, 6))
    y, cache = conv_forward(x, kernel, 1, padding, 1, groups=2)
    y_contiguous, cache_contiguous = conv_forward(np.ascontiguousarray(x), kernel, 1, padding, 1,
                                                  groups=2)
    np.testing.assert_allclose(y, y_contiguous, rtol=1e-12)
    for got, want in zip(conv_backward(cache, y), conv_backward(cache_contiguous, y), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_backward_accepts_a_non_contiguous_dy():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 5, 5, 2))
    kernel = rng.standard_normal((3, 3, 2, 4))
    _, cache = conv_forward(x, kernel, 1, "same", 1)
    dy_channels_first = rng.standard_normal((2, 4, 5, 5))
    dy = dy_channels_first.transpose(0, 2, 3, 1)
    expected = conv_backward(cache, np.ascontiguousarray(dy))
    for got, want in zip(conv_backward(cache, dy), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)


# --------------------------------------------------------------------------- Keras oracle

ORACLE_CASES = [
    # (spatial, kernel_size, strides, padding, dilation, groups, cin, filters)
    ((11,), (3,), (1,), "valid", (1,), 1, 3, 5),
    ((11,), (4,), (2,), "valid", (1,), 1, 3, 5),
    ((11,), (4,), (1,), "same", (1,), 1, 3, 5),
    ((12,), (3,), (2,), "same", (1,), 1, 3, 5),
    ((11,), (3,), (1,), "same", (2,), 2, 4, 6),
    ((10,), (3,), (1,), "causal", (1,), 1, 3, 5),
    ((10,), (3,), (1,), "causal", (3,), 1, 3, 5),
    ((10,), (2,), (3,), "causal", (1,), 1, 2, 3),
    ((9, 8), (3, 3), (1, 1), "valid", (1, 1), 1, 3, 4),
    ((9, 8), (3, 2), (2, 1), "valid", (1, 1), 2, 4, 6),
    ((9, 8), (3, 3), (1, 1), "same", (1, 1), 1, 3, 4),
    ((9, 8), (4, 4), (2, 2), "same", (1, 1), 1, 3, 4),
    ((9, 9), (3, 3), (1, 1), "same", (2, 2), 1, 3, 4),
    ((9, 9), (3, 3), (1, 1), "valid", (2, 1), 2, 4, 2),
]


def import_keras_torch():
    """Keras 3 on its torch backend (the oracle extra), so gradients come from torch autograd."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras", reason="the oracle extra (keras) is not installed")
    torch = pytest.importorskip("torch", reason="the oracle extra (torch) is not installed")
    if keras.backend.backend() != "torch":
        pytest.skip("the Keras oracle tests need KERAS_BACKEND=torch")
    return keras, torch


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("case", ORACLE_CASES, ids=[_ids(c) for c in ORACLE_CASES])
def test_matches_keras(case):
    keras, torch = import_keras_torch()
    spatial, ks, s, padding, d, g, cin, filters = case
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, *spatial, cin), dtype=np.float32)
    kernel = rng.standard_normal((*ks, cin // g, filters), dtype=np.float32)
    layer_type = keras.layers.Conv1D if len(spatial) == 1 else keras.layers.Conv2D
    layer = layer_type(filters, ks, strides=s, padding=padding, dilation_rate=d, groups=g,
                       use_bias=False, data_format="channels_last")
    layer.build(x.shape)
    layer.set_weights([kernel])
    x_torch = torch.tensor(x, requires_grad=True)
    expected = layer(x_torch)
    y, cache = conv_forward(x, kernel, s, padding, d, g)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-5, atol=1e-5)

    dy = rng.standard_normal(y.shape, dtype=np.float32)
    expected.backward(torch.tensor(dy))
    dx, dkernel = conv_backward(cache, dy)
    np.testing.assert_allclose(dx, x_torch.grad.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dkernel, layer.kernel.value.grad.numpy(), rtol=1e-5, atol=1e-5)


# One axis's geometries: every size/kernel/stride/dilation/padding Keras accepts (not stride and
# dilation both > 1) and that leaves an output.
AXIS_GEOMETRIES = [
    (size, kernel, stride, dilation, padding)
    for size, kernel, stride, dilation, padding in itertools.product(
        [1, 4, 7], [1, 2, 3, 5], [1, 2, 3], [1, 2], ["valid", "same", "causal"])
    if (stride == 1 or dilation == 1) and output_length(size, kernel, padding, stride, dilation) > 0
]


@pytest.mark.parametrize("size, kernel, stride, dilation, padding", AXIS_GEOMETRIES)
def test_interior_taps_are_the_taps_minus_their_padding_cells(size, kernel, stride, dilation,
                                                             padding):
    """Brute force on one axis: numbering the padded input's cells, every tap's interior slice
    must pick exactly the input cells its padded slice picks, at the same output positions."""
    geometry = Geometry((size,), (kernel,), (stride,), padding, (dilation,))
    lo = geometry.pads[0][0]
    padded_cell = np.arange(geometry.padded[0]) - lo      # input index, or outside [0, size)
    interior = {tap: (inputs, outputs) for tap, inputs, outputs in geometry.interior_taps()}
    for tap, slices in geometry.taps():
        read = padded_cell[slices[0]]                     # the input cell each output reads
        inside = (read >= 0) & (read < size)
        if not inside.any():
            assert tap not in interior
            continue
        inputs, outputs = interior[tap]
        np.testing.assert_array_equal(np.arange(size)[inputs[0]], read[inside])
        np.testing.assert_array_equal(np.arange(len(read))[outputs[0]], np.flatnonzero(inside))
