"""The convolution family beyond Conv1D/2D as ONNX: ConvTranspose and grouped Conv.

- Conv1DTranspose/Conv2DTranspose become ConvTranspose with explicit `pads` and
  `output_padding`: ONNX crops `pads` from the full (n − 1)·s + K output and appends
  `output_padding` cells, which is Keras's window (`layerctl.ops.conv.transpose_padding`) with
  a negative crop after written as output padding. The kernel (k…, filters, in) becomes ONNX's
  (in, filters, k…).
- DepthwiseConv1D/2D become a Conv with group = input channels, the kernel (k…, in, dm)
  reshaped to (in·dm, 1, k…) (output channel c·dm + m, as in Keras); SeparableConv1D/2D that
  Conv followed by a 1×1 Conv with the pointwise kernel and the bias.

channels_last layers are wrapped in Transposes, as Conv is in `onnx.py`, whose pad rules the
depthwise Conv shares (`_window_attributes`).
"""

from __future__ import annotations

import numpy as np

from layerctl.export.onnx_graph import OnnxGraph, activation
from layerctl.ops.conv import transpose_padding
from layerctl.plan import Node


def _to_onnx_kernel(kernel: np.ndarray) -> np.ndarray:
    """A Keras kernel (k…, a, b) as ONNX's (b, a, k…)."""
    rank = kernel.ndim
    return np.ascontiguousarray(np.transpose(kernel, (rank - 1, rank - 2, *range(rank - 2))))


def _wrapped(g: OnnxGraph, node: Node, x: str, body) -> str:
    """body(g, x channels-first) -> y channels-first, in the layer's format, then activated."""
    from layerctl.export.onnx import _channels_first, _channels_last

    layer, name = node.layer, node.name
    rank = layer.spatial_rank + 2
    last = layer.data_format != "channels_first"
    y = body(_channels_first(g, x, rank, name) if last else x)
    if last:
        y = _channels_last(g, y, rank, name)
    # as in Keras, softmax-like activations act on the last axis of the output's own layout
    return activation(g, layer.activation, y, name, axis=rank - 1, rank=rank, layer=name)


def _conv_transpose(g, node, xs, masks, w, want_mask):
    layer, name = node.layer, node.name
    extra = layer.output_padding_tuple() or (None,) * layer.spatial_rank
    befores, afters, output_padding = [], [], []
    for k, s, p, d in zip(layer.kernel_tuple(), layer.stride_tuple(), extra,
                          layer.dilation_tuple(), strict=True):
        before, after, _ = transpose_padding(1, k, s, layer.padding, p, d)
        befores.append(before)
        afters.append(max(after, 0))
        output_padding.append(max(-after, 0))

    def body(x: str) -> str:
        # Keras (k…, filters, in) -> ONNX ConvTranspose (in, filters, k…)
        inputs = [x, g.const(_to_onnx_kernel(w["kernel"]),
                             f"{name}/kernel")]
        if layer.use_bias:
            inputs.append(g.const(w["bias"], f"{name}/bias"))
        return g.op("ConvTranspose", inputs, name, kernel_shape=list(layer.kernel_tuple()),
                    strides=list(layer.stride_tuple()), dilations=list(layer.dilation_tuple()),
                    pads=befores + afters, output_padding=output_padding)

    return _wrapped(g, node, xs[0], body), None


def _depthwise_conv(g: OnnxGraph, node: Node, x: str, kernel: np.ndarray,
                    bias: np.ndarray | None) -> str:
    """The grouped Conv of a depthwise kernel (k…, in, dm), channels-first in and out."""
    from layerctl.export.onnx import _window_attributes

    layer, name = node.layer, node.name
    channels = kernel.shape[-2]
    grouped = _to_onnx_kernel(kernel.reshape(*kernel.shape[:-2], 1, -1))   # (in·dm, 1, k…)
    inputs = [x, g.const(grouped, f"{name}/depthwise_kernel")]
    if bias is not None:
        inputs.append(g.const(bias, f"{name}/bias"))
    dilation = layer.dilation_tuple()
    attributes = _window_attributes(node, layer.kernel_tuple(), layer.stride_tuple(),
                                    layer.padding, dilation)
    return g.op("Conv", inputs, name, dilations=list(dilation), group=channels, **attributes)


def _depthwise(g, node, xs, masks, w, want_mask):
    bias = w["bias"] if node.layer.use_bias else None
    return _wrapped(g, node, xs[0], lambda x: _depthwise_conv(g, node, x, w["kernel"], bias)), None


def _separable(g, node, xs, masks, w, want_mask):
    layer, name = node.layer, node.name

    def body(x: str) -> str:
        middle = _depthwise_conv(g, node, x, w["depthwise_kernel"], None)
        inputs = [middle, g.const(_to_onnx_kernel(w["pointwise_kernel"]),
                                  f"{name}/pointwise_kernel")]
        if layer.use_bias:
            inputs.append(g.const(w["bias"], f"{name}/bias"))
        return g.op("Conv", inputs, name, kernel_shape=[1] * layer.spatial_rank)

    return _wrapped(g, node, xs[0], body), None


CONVOLUTION_CONVERTERS = {
    "Conv1DTranspose": _conv_transpose, "Conv2DTranspose": _conv_transpose,
    "DepthwiseConv1D": _depthwise, "DepthwiseConv2D": _depthwise,
    "SeparableConv1D": _separable, "SeparableConv2D": _separable,
}
