"""The normalization layers, one module each: BatchNormalization (batch statistics, moving
averages), LayerNormalization and GroupNormalization (per-sample statistics, shared in
`statistics`), UnitNormalization (unit L2 norm)."""

from layerctl.layers.normalization.batch_normalization import BatchNormalization
from layerctl.layers.normalization.group_normalization import GroupNormalization
from layerctl.layers.normalization.layer_normalization import LayerNormalization
from layerctl.layers.normalization.unit_normalization import UnitNormalization

__all__ = ["BatchNormalization", "GroupNormalization", "LayerNormalization", "UnitNormalization"]
