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
    return_state: bool = Field(
        default=False, description="Also output the final state(s): `lstm.1` (h), `lstm.2` (c).")
    go_backwards: bool = False
    stateful: Literal[False] = Field(
        default=False, description="Not supported: every batch starts from zero state.")
    unroll: bool = Field(default=False, description="Accepted for Keras compatibility; no effect.")
    zero_output_for_mask: bool = False

    supports_masking = True
    reads_mask = True
    # How many dropout masks Keras draws per dropout once recurrent_dropout > 0 (one per gate).
    gates: ClassVar[int] = 1
    # The recurrent state tensors, in Keras's order (LSTM: h, c), each (batch, units).
    state_count: ClassVar[int] = 1
    # `inputs: {sequences: x, initial_state: [h, c]}`, as Keras's call(sequences, initial_state)
    call_arguments = ("sequences", "initial_state")
    max_inputs = 3

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

    def takes_list(self, count: int) -> bool:
        return count > 1  # the sequences and the initial states

    def output_shapes(self, input_shape: Any) -> list[Shape]:
        """The output, then with `return_state` the final states (batch, units)."""
        sequences = input_shape[0] if isinstance(input_shape, list) else input_shape
        if isinstance(input_shape, list):
            self._check_initial_state(sequences, input_shape[1:])
        states = [(sequences[0], self.units)] * self.state_count if self.return_state else []
        return [self.output_shape(sequences), *states]

    def weight_specs(self, input_shape: Any) -> list:
        """The cell's weights, built from the sequences' shape (not the initial states')."""
        return self.cell_weights(input_shape[0] if isinstance(input_shape, list) else input_shape)

    def cell_weights(self, input_shape: Shape) -> list:
        raise NotImplementedError

    def _check_initial_state(self, sequences: Shape, states: list[Shape]) -> None:
        if len(states) != self.state_count:
            raise IncompatibleShape(
                f"{self.keras_class} has {self.state_count} state tensor(s) "
                f"({self._state_names()}), but `initial_state` gives {len(states)}")
        for shape in states:
            if len(shape) != 2 or shape[-1] not in (None, self.units):
                raise IncompatibleShape(
                    f"an initial state of {self.keras_class}({self.units}) has shape "
                    f"(batch, {self.units}); received {shape}")

    def _state_names(self) -> str:
        return "h, c" if self.state_count == 2 else "h"

    def emits_mask(self, receives_mask: Any) -> bool:
        if isinstance(receives_mask, list | tuple):
            receives_mask = receives_mask[0]  # the sequences' mask; states carry none
        return bool(receives_mask) and self.return_sequences

    def output_mask(self, x, mask):
        mask = mask[0] if isinstance(mask, list) else mask
        output = mask if self.return_sequences else None
        return [output] + [None] * self.state_count if self.return_state else output

    # ---- forward and backward: the sequences, initial states, and final states ----------
    def forward(self, weights, x, mask, training, rng):
        """The output (and the final states with `return_state`) from the sequences and, when
        given, the initial states; each layer's `run` is its recurrence."""
        sequences, initial = (x[0], tuple(x[1:])) if isinstance(x, list) else (x, None)
        mask = mask[0] if isinstance(mask, list) else mask
        y, cache = self.run(weights, sequences, mask, training, rng, initial)
        if self.return_state:
            y = (y, *self.final_states(cache))
        return y, (cache, initial is not None)

    def backward(self, weights, cache, dy):
        cache, has_initial = cache
        dy, final_grads = (dy[0], tuple(dy[1:])) if self.return_state else (dy, None)
        dx, dkernel, drecurrent, dbias, initial_grads = self.run_backward(
            cache, dy, final_grads)
        grads = self.grads(dkernel, drecurrent, dbias)
        return ([dx, *initial_grads] if has_initial else dx), grads

    def run(self, weights, x, mask, training, rng, initial_state):
        raise NotImplementedError

    def run_backward(self, cache, dy, final_state_grads):
        raise NotImplementedError

    def final_states(self, cache) -> tuple:
        return (cache.hidden[-1].copy(),)

    def keras_call(self, keras_layer, tensors: list):
        """How Keras calls the layer: `layer(sequences, initial_state=[...])`."""
        if len(tensors) > 1:
            return keras_layer(tensors[0], initial_state=list(tensors[1:]))
        return keras_layer(tensors[0])

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
