"""Embedding: integer indices to dense vectors, optionally making a mask from index 0."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from layerctl.constraints import Constraint
from layerctl.errors import DataError
from layerctl.initializers import Initializer
from layerctl.layers.base import Layer, PositiveInt, Shape, WeightSpec
from layerctl.regularizers import Regularizer


class Embedding(Layer):
    """`out = embeddings[indices]`, embeddings (input_dim, output_dim).

    Output shape: the input's plus `(output_dim,)`. With `mask_zero`, index 0 is padding: the mask
    `indices != 0` flows to the next layers (so input_dim = vocabulary size + 1). Indices outside
    [0, input_dim) are an error, never a silent wrap-around.
    """

    type: Literal["Embedding"]
    input_dim: PositiveInt = Field(description="Vocabulary size: largest index + 1.")
    output_dim: PositiveInt = Field(description="Size of each embedding vector.")
    embeddings_initializer: Initializer = "uniform"
    embeddings_regularizer: Regularizer | None = None
    activity_regularizer: Regularizer | None = None
    embeddings_constraint: Constraint | None = None
    mask_zero: bool = False
    input_length: PositiveInt | None = Field(
        default=None, description="Deprecated in Keras 3; read as input_shape: [input_length].")

    weights: None = Field(
        default=None, description="Keras 3's initial matrix; layerctl reads weights from files: "
        "`layerctl train --initial-weights FILE.npz` with `<layer name>/embeddings`.")

    keras_class = "Embedding"
    integer_input = True

    @field_validator("weights", mode="before")
    @classmethod
    def _weights_come_from_files(cls, value):
        if value is not None:
            raise ValueError(
                "`weights` (Keras 3's initial embedding matrix) is not read from a spec: save the "
                "matrix, shape (input_dim, output_dim), in an .npz as `<layer name>/embeddings` "
                "(e.g. `embedding/embeddings`) and pass "
                "`layerctl train --initial-weights FILE.npz`")
        return value

    def declared_input_shape(self) -> Shape | None:
        if self.input_shape is None and self.input_length is not None:
            return (self.input_length,)
        return self.input_shape

    def output_shape(self, input_shape: Shape) -> Shape:
        return input_shape + (self.output_dim,)

    def weight_specs(self, input_shape: Shape) -> list[WeightSpec]:
        return [WeightSpec("embeddings", (self.input_dim, self.output_dim), True,
                           self.embeddings_initializer, self.embeddings_regularizer,
                           self.embeddings_constraint)]

    def _indices(self, x: np.ndarray) -> np.ndarray:
        indices = x if np.issubdtype(x.dtype, np.integer) else x.astype(np.int64)
        if indices.size:
            low, high = int(indices.min()), int(indices.max())
            if low < 0 or high >= self.input_dim:
                bad = low if low < 0 else high
                raise DataError(f"layer '{self.name}' (Embedding) received index {bad}, outside "
                                f"[0, {self.input_dim}); raise input_dim or check the data")
        return indices

    def emits_mask(self, receives_mask: bool) -> bool:
        return self.mask_zero

    def output_mask(self, x, mask):
        return (x != 0) if self.mask_zero else None

    def forward(self, weights, x, mask, training, rng):
        indices = self._indices(x)
        return weights["embeddings"][indices], indices

    def backward(self, weights, cache, dy):
        indices = cache.reshape(-1)
        rows = dy.reshape(-1, self.output_dim)
        # Sum the gradient rows of repeated indices with one sort + reduceat (np.add.at is slow).
        order = np.argsort(indices, kind="stable")
        sorted_indices = indices[order]
        starts = np.flatnonzero(np.r_[True, sorted_indices[1:] != sorted_indices[:-1]])
        grad = np.zeros_like(weights["embeddings"])
        if indices.size:
            grad[sorted_indices[starts]] = np.add.reduceat(rows[order], starts, axis=0)
        return None, {"embeddings": grad}
