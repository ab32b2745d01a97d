"""The registry of layer types a spec may name: the allow-list, with Keras's aliases.

Adding a layer means writing its class in the module of its family and listing it here.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Discriminator, Tag

from layerctl.config import type_names
from layerctl.layers.activation_layers import ELU, LeakyReLU, PReLU, ReLU, Softmax
from layerctl.layers.attention import (  # attention family
    AdditiveAttention,
    Attention,
    MultiHeadAttention,
)
from layerctl.layers.base import IncompatibleShape, Layer, Shape, WeightSpec, format_shape
from layerctl.layers.convolutional import (  # convolution family
    Conv1D,
    Conv1DTranspose,
    Conv2D,
    Conv2DTranspose,
    DepthwiseConv1D,
    DepthwiseConv2D,
    SeparableConv1D,
    SeparableConv2D,
)
from layerctl.layers.core import Activation, Dense, Dropout, Masking
from layerctl.layers.embedding import Embedding
from layerctl.layers.merge import (
    Add,
    Average,
    Concatenate,
    Dot,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
)
from layerctl.layers.normalization import (  # normalization family
    BatchNormalization,
    GroupNormalization,
    LayerNormalization,
    UnitNormalization,
)
from layerctl.layers.pooling import (  # pooling family
    AveragePooling1D,
    AveragePooling2D,
    AvgPool,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    MaxPool,
    MaxPooling1D,
    MaxPooling2D,
)
from layerctl.layers.preprocessing import CenterCrop, Normalization, Rescaling, Resizing
from layerctl.layers.recurrent import GRU, LSTM, SimpleRNN
from layerctl.layers.regularization import (  # regularization and noise family
    ActivityRegularization,
    AlphaDropout,
    GaussianDropout,
    GaussianNoise,
    SpatialDropout1D,
    SpatialDropout2D,
)
from layerctl.layers.reshaping import (  # reshaping
    Cropping1D,
    Cropping2D,
    Flatten,
    Identity,
    Permute,
    RepeatVector,
    Reshape,
    UpSampling1D,
    UpSampling2D,
    ZeroPadding1D,
    ZeroPadding2D,
)
from layerctl.layers.wrappers import Bidirectional, TimeDistributed  # wrappers family

LAYER_CLASSES: tuple[type[Layer], ...] = (
    Dense, Activation, BatchNormalization, Dropout, Masking, Flatten, MaxPool, MaxPooling1D,
    MaxPooling2D, GlobalMaxPooling1D, Conv1D, Conv2D, Embedding, LSTM, Add, Concatenate,
    LayerNormalization, GroupNormalization, UnitNormalization,  # normalization family
    AvgPool, AveragePooling1D, AveragePooling2D, GlobalAveragePooling1D,  # pooling family
    GlobalAveragePooling2D, GlobalMaxPooling2D,  # pooling family
    SpatialDropout1D, SpatialDropout2D, GaussianNoise, GaussianDropout,  # regularization family
    AlphaDropout, ActivityRegularization,  # regularization family
    ReLU, LeakyReLU, PReLU, ELU, Softmax,  # activation layers
    Subtract, Multiply, Average, Maximum, Minimum, Dot,  # merges
    Rescaling, Resizing, CenterCrop, Normalization,  # preprocessing
    Conv1DTranspose, Conv2DTranspose, SeparableConv1D, SeparableConv2D,  # convolution family
    DepthwiseConv1D, DepthwiseConv2D,  # convolution family
    Reshape, Permute, RepeatVector, Cropping1D, Cropping2D, ZeroPadding1D,  # reshaping
    ZeroPadding2D, UpSampling1D, UpSampling2D, Identity,  # reshaping
    GRU, SimpleRNN,  # recurrent
    MultiHeadAttention, Attention, AdditiveAttention,  # attention family
    Bidirectional, TimeDistributed,  # wrappers family
)

# Every accepted spelling of `type:` -> the class it selects.
LAYER_TYPES: dict[str, type[Layer]] = {
    spelling: cls for cls in LAYER_CLASSES for spelling in type_names(cls)
}


def layer_class(value: Any) -> type[Layer] | None:
    """The class a `layers:` entry selects by its `type`, or None (not a mapping, no or an
    unknown type)."""
    spelled = value.get("type") if isinstance(value, dict) else None
    return LAYER_TYPES.get(spelled) if isinstance(spelled, str) else None


def layer_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        spelled = value.get("type")
        cls = LAYER_TYPES.get(spelled) if isinstance(spelled, str) else None
        return cls.__name__ if cls else spelled if isinstance(spelled, str) else None
    return type(value).__name__


AnyLayer = Annotated[
    Union[tuple(Annotated[cls, Tag(cls.__name__)] for cls in LAYER_CLASSES)],  # noqa: UP007
    Discriminator(layer_tag),
]

__all__ = ["AnyLayer", "IncompatibleShape", "LAYER_CLASSES", "LAYER_TYPES", "Layer", "Shape",
           "WeightSpec", "format_shape", "layer_class", "layer_tag"]
