"""The convolution family: Conv1D/2D (with `groups`), their transposes, depthwise and separable
convolutions, one module per kind, sharing the window arguments of `base_conv`.

All of them keep Keras 3's argument names, checks, output sizes and weight layouts; the window
math is `layerctl.ops.conv`'s (im2col and one matmul forward, its tap-wise input gradient), which
the transposed convolution reuses in the other direction.
"""

from layerctl.layers.convolutional.conv import Conv1D, Conv2D
from layerctl.layers.convolutional.conv_transpose import Conv1DTranspose, Conv2DTranspose
from layerctl.layers.convolutional.depthwise_conv import DepthwiseConv1D, DepthwiseConv2D
from layerctl.layers.convolutional.separable_conv import SeparableConv1D, SeparableConv2D

__all__ = ["Conv1D", "Conv1DTranspose", "Conv2D", "Conv2DTranspose", "DepthwiseConv1D",
           "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D"]
