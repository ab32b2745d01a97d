"""The registry of layer types a spec may name: the allow-list, with Keras's aliases.

Adding a layer means writing its class in the module of its family and listing it here.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Discriminator, Tag

from layerctl.config import type_names
from layerctl.layers.attention import (  # attention family
    AdditiveAttention,
    Attention,
    MultiHeadAttention,
)
from layerctl.layers.base import IncompatibleShape, Layer, Shape, WeightSpec, format_shape
from layerctl.layers.convolutional import Conv1D, Conv2D
from layerctl.layers.core import Activation, Dense, Dropout, Flatten, Masking
from layerctl.layers.embedding import Embedding
from layerctl.layers.merge import Add, Concatenate
from layerctl.layers.normalization import (  # normalization family
    BatchNormalization,
    GroupNormalization,
    LayerNormalization,
    UnitNormalization,
)
from layerctl.layers.pooling import GlobalMaxPooling1D, MaxPool, MaxPooling1D, MaxPooling2D
from layerctl.layers.recurrent import LSTM

LAYER_CLASSES: tuple[type[Layer], ...] = (
    Dense, Activation, BatchNormalization, Dropout, Masking, Flatten, MaxPool, MaxPooling1D,
    MaxPooling2D, GlobalMaxPooling1D, Conv1D, Conv2D, Embedding, LSTM, Add, Concatenate,
    LayerNormalization, GroupNormalization, UnitNormalization,  # normalization family
    MultiHeadAttention, Attention, AdditiveAttention,  # attention family
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
