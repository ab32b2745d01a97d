"""Preprocessing inside the model: Rescaling, Resizing, CenterCrop and Normalization.

Keras 3's preprocessing layers that real models put at their start, with Keras's arguments,
shapes and math, and gradients to their inputs (they have no trainable weights). Normalization
with `adapt: true` gets its statistics from the training data before the first step
(`layerctl.training.adapt`). One module per layer kind; the resampling math lives in
`layerctl.ops.resize`.
"""

from layerctl.layers.preprocessing.image import CenterCrop, Resizing
from layerctl.layers.preprocessing.normalization import Normalization
from layerctl.layers.preprocessing.rescaling import Rescaling

__all__ = ["CenterCrop", "Normalization", "Rescaling", "Resizing"]
