"""What LSTM, GRU and SimpleRNN share: the arguments of Keras's RNN layers and their cells
(units, initializers, regularizers, constraints, dropouts, return_sequences, go_backwards, ...),
their validation with Keras's messages, the output shape and mask rules, and the drawing of
dropout masks from the run's random generator."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, Strict, field_validator

from layerctl.activations import ActivationName
from layerctl.constraints import Constraint
from layerctl.initializers import Initializer
from layerctl.layers.base import (
    IncompatibleShape,
    Shape,
    SingleInputLayer,
    require_rank,
)
from layerctl.regularizers import Regularizer

LAST_AXIS_ACTIVATIONS = ("softmax", "log_softmax", "sparsemax")
# LSTM's and GRU's use_cudnn: "auto" or a bool (strict: 1 is not True)
CuDNN = Annotated[str, Strict()] | Annotated[bool, Strict()]


def dropout_mask(rng: np.random.Generator, shape: tuple[int, ...], rate: float,
                 dtype: np.dtype) -> np.ndarray:
    """Keep each entry with probability 1 - rate, scaled by 1/(1 - rate) (Keras's dropout)."""
    keep = (rng.random(shape) >= rate).astype(dtype)
    return keep * dtype.type(1.0 / (1.0 - rate))


class RecurrentLayer(SingleInputLayer):
    """Keras's RNN arguments over (batch, timesteps, features): output (batch, units), the last
    step's h, or (batch, timesteps, units) with `return_sequences`."""

    units: Annotated[int, Strict()] = Field(description="Dimensionality of the output space.")
    activation: ActivationName | None = "tanh"
    use_bias: bool = True
    kernel_initializer: Initializer = "glorot_uniform"
    recurrent_initializer: Initializer = "orthogonal"
    bias_initializer: Initializer = "zeros"
    kernel_regularizer: Regularizer | None = None
    recurrent_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None
    activity_regularizer: Regularizer | None = None
    kernel_constraint: Constraint | None = None
    recurrent_constraint: Constraint | None = None
    bias_constraint: Constraint | None = None
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    seed: int | None = None
    return_sequences: bool = False
    return_state: Literal[False] = Field(
        default=False, description="Not supported: layerctl layers have a single output.")
    go_backwards: bool = False
    stateful: Literal[False] = Field(
        default=False, description="Not supported: every batch starts from zero state.")
    unroll: bool = Field(default=False, description="Accepted for Keras compatibility; no effect.")
    zero_output_for_mask: bool = False

    supports_masking = True
    reads_mask = True
    # How many dropout masks Keras draws per dropout once recurrent_dropout > 0 (one per gate).
    gates: ClassVar[int] = 1

    @field_validator("units", mode="after")
    @classmethod
    def _positive_units(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("Received an invalid value for argument `units`, "
                             f"expected a positive integer, got {value}.")
        return value

    @field_validator("activation", "recurrent_activation", mode="after", check_fields=False)
    @classmethod
    def _elementwise(cls, value: str | None) -> str | None:
        if value in LAST_AXIS_ACTIVATIONS:
            article = "an" if cls.__name__ == "LSTM" else "a"
            raise ValueError(f"{value} normalises over the last axis, which {article} "
                             f"{cls.__name__} step does not have; use an element-wise "
                             "activation such as tanh or sigmoid")
        return value

    @field_validator("use_cudnn", mode="after", check_fields=False)
    @classmethod
    def _cudnn(cls, value: str | bool) -> str | bool:
        if value not in ("auto", True, False):
            raise ValueError("Invalid valid received for argument `use_cudnn`. Expected one of "
                             f"{{'auto', True, False}}. Received: use_cudnn={value}")
        if value is True:  # Keras raises this when called without cuDNN; layerctl has none
            raise ValueError("use_cudnn=True was specified, but cuDNN is not supported for this "
                             "layer configuration with this backend. Pass use_cudnn='auto' to "
                             "fallback to a non-cuDNN implementation.")
        return value

    @field_validator("dropout", "recurrent_dropout", mode="after")
    @classmethod
    def _clip(cls, value: float) -> float:
        return min(1.0, max(0.0, value))  # Keras clips these rather than rejecting them

    def output_shape(self, input_shape: Shape) -> Shape:
        require_rank(input_shape, exact=3)
        if input_shape[-1] is None:
            raise IncompatibleShape(
                f"the feature axis of the input to {self.keras_class} must be defined")
        if self.return_sequences:
            return input_shape[:2] + (self.units,)
        return (input_shape[0], self.units)

    def emits_mask(self, receives_mask: bool) -> bool:
        return receives_mask and self.return_sequences

    def output_mask(self, x, mask):
        return mask if self.return_sequences else None

    def dropout_masks(self, x: np.ndarray, training: bool, rng: np.random.Generator,
                      dtype: np.dtype) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(input mask, recurrent mask) for one call, each drawn once and reused at every step.

        As Keras: one mask shared by the gates, except once recurrent_dropout > 0 (Keras then
        runs its per-gate implementation 1): `gates` masks on both sides, (gates, B, ·).
        """
        per_gate = (self.gates,) if self.gates > 1 and 0 < self.recurrent_dropout < 1 else ()
        input_mask = recurrent_mask = None
        if training and 0 < self.dropout < 1:
            input_mask = dropout_mask(rng, per_gate + (x.shape[0], x.shape[2]), self.dropout,
                                      dtype)
        if training and 0 < self.recurrent_dropout < 1:
            recurrent_mask = dropout_mask(rng, per_gate + (x.shape[0], self.units),
                                          self.recurrent_dropout, dtype)
        return input_mask, recurrent_mask

    def grads(self, dkernel: np.ndarray, drecurrent: np.ndarray,
              dbias: np.ndarray | None) -> dict[str, Any]:
        grads = {"kernel": dkernel, "recurrent_kernel": drecurrent}
        if self.use_bias:
            grads["bias"] = dbias
        return grads
