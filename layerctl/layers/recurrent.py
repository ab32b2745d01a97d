"""LSTM with Keras 3's gates (i, f, c, o), masks, dropout and weight layout.

The time loop lives in `layerctl.ops.lstm`; this class validates arguments, declares the weights
(kernel (in, 4u), recurrent_kernel (u, 4u), bias (4u,)), initialises the forget-gate bias to 1
with `unit_forget_bias`, and draws the dropout masks from the run's random generator.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from layerctl import initializers
from layerctl.activations import ActivationName
from layerctl.constraints import Constraint
from layerctl.initializers import Initializer
from layerctl.layers.base import (
    IncompatibleShape,
    PositiveInt,
    Shape,
    SingleInputLayer,
    WeightSpec,
    require_rank,
)
from layerctl.regularizers import Regularizer

LAST_AXIS_ACTIVATIONS = ("softmax", "log_softmax", "sparsemax")


def _dropout_mask(rng: np.random.Generator, shape: tuple[int, ...], rate: float,
                  dtype: np.dtype) -> np.ndarray:
    keep = (rng.random(shape) >= rate).astype(dtype)
    return keep * dtype.type(1.0 / (1.0 - rate))


class LSTM(SingleInputLayer):
    """Long short-term memory over (batch, timesteps, features).

    Output (batch, units) — the last step's h — or (batch, timesteps, units) with
    `return_sequences`. Masked steps carry h and c over unchanged.
    """

    type: Literal["LSTM"]
    units: PositiveInt = Field(description="Dimensionality of the output space.")
    activation: ActivationName | None = "tanh"
    recurrent_activation: ActivationName | None = "sigmoid"
    use_bias: bool = True
    kernel_initializer: Initializer = "glorot_uniform"
    recurrent_initializer: Initializer = "orthogonal"
    bias_initializer: Initializer = "zeros"
    unit_forget_bias: bool = True
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

    keras_class = "LSTM"
    supports_masking = True
    reads_mask = True

    @field_validator("activation", "recurrent_activation", mode="after")
    @classmethod
    def _elementwise(cls, value: str | None) -> str | None:
        if value in LAST_AXIS_ACTIVATIONS:
            raise ValueError(f"{value} normalises over the last axis, which an LSTM gate does "
                             "not have; use an element-wise activation such as tanh or sigmoid")
        return value

    @field_validator("dropout", "recurrent_dropout", mode="after")
    @classmethod
    def _clip(cls, value: float) -> float:
        return min(1.0, max(0.0, value))  # Keras clips these rather than rejecting them

    def output_shape(self, input_shape: Shape) -> Shape:
        require_rank(input_shape, exact=3)
        if input_shape[-1] is None:
            raise IncompatibleShape("the feature axis of the input to LSTM must be defined")
        if self.return_sequences:
            return input_shape[:2] + (self.units,)
        return (input_shape[0], self.units)

    def weight_specs(self, input_shape: Shape) -> list[WeightSpec]:
        u = self.units
        specs = [
            WeightSpec("kernel", (input_shape[-1], 4 * u), True, self.kernel_initializer,
                       self.kernel_regularizer, self.kernel_constraint),
            WeightSpec("recurrent_kernel", (u, 4 * u), True, self.recurrent_initializer,
                       self.recurrent_regularizer, self.recurrent_constraint),
        ]
        if self.use_bias:
            specs.append(WeightSpec("bias", (4 * u,), True, self._bias_initializer,
                                    self.bias_regularizer, self.bias_constraint))
        return specs

    def _bias_initializer(self, shape: tuple[int, ...], rng: np.random.Generator,
                          dtype: Any) -> np.ndarray:
        """bias_initializer for the i, c, o blocks; exactly 1 for f with unit_forget_bias."""
        u = self.units
        if not self.unit_forget_bias:
            return initializers.initialize(self.bias_initializer, shape, rng, dtype)
        bias = initializers.initialize(self.bias_initializer, (4 * u,), rng, dtype)
        bias[u:2 * u] = 1
        return bias

    def emits_mask(self, receives_mask: bool) -> bool:
        return receives_mask and self.return_sequences

    def output_mask(self, x, mask):
        return mask if self.return_sequences else None

    def forward(self, weights, x, mask, training, rng):
        from layerctl.ops.lstm import lstm_forward

        # Keras draws one mask shared by the four gates, except when recurrent_dropout is on:
        # it then runs its per-gate implementation, with one mask per gate on both sides.
        input_mask = recurrent_mask = None
        gates = (4,) if 0 < self.recurrent_dropout < 1 else ()
        dtype = weights["kernel"].dtype
        if training and 0 < self.dropout < 1:
            input_mask = _dropout_mask(rng, gates + (x.shape[0], x.shape[2]), self.dropout, dtype)
        if training and 0 < self.recurrent_dropout < 1:
            recurrent_mask = _dropout_mask(rng, gates + (x.shape[0], self.units),
                                           self.recurrent_dropout, dtype)
        return lstm_forward(
            x, weights["kernel"], weights["recurrent_kernel"], weights.get("bias"), mask=mask,
            activation=self.activation or "linear",
            recurrent_activation=self.recurrent_activation or "linear",
            go_backwards=self.go_backwards, return_sequences=self.return_sequences,
            zero_output_for_mask=self.zero_output_for_mask, input_dropout_mask=input_mask,
            recurrent_dropout_mask=recurrent_mask)

    def backward(self, weights, cache, dy):
        from layerctl.ops.lstm import lstm_backward

        dx, dkernel, drecurrent, dbias = lstm_backward(cache, dy)
        grads = {"kernel": dkernel, "recurrent_kernel": drecurrent}
        if self.use_bias:
            grads["bias"] = dbias
        return dx, grads
