"""LSTM with Keras 3's gates (i, f, c, o), masks, dropout and weight layout.

The time loop lives in `layerctl.ops.lstm`; this class declares the weights (kernel (in, 4u),
recurrent_kernel (u, 4u), bias (4u,)) and initialises the forget-gate bias to 1 with
`unit_forget_bias`; arguments and dropout masks come from `RecurrentLayer`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from layerctl import initializers
from layerctl.activations import ActivationName
from layerctl.layers.base import Shape, WeightSpec
from layerctl.layers.recurrent.base import CuDNN, RecurrentLayer


class LSTM(RecurrentLayer):
    """Long short-term memory over (batch, timesteps, features).

    Output (batch, units) — the last step's h — or (batch, timesteps, units) with
    `return_sequences`. Masked steps carry h and c over unchanged.
    """

    type: Literal["LSTM"]
    recurrent_activation: ActivationName | None = "sigmoid"
    unit_forget_bias: bool = True
    implementation: Literal[1, 2] = Field(
        default=2, description="Accepted for Keras compatibility; no effect on the results.")
    use_cudnn: CuDNN = Field(default="auto", description="'auto' or false (no cuDNN here).")

    keras_class = "LSTM"
    state_count = 2
    gates: ClassVar[int] = 4

    def cell_weights(self, input_shape: Shape) -> list[WeightSpec]:
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

    def run(self, weights, x, mask, training, rng, initial_state):
        from layerctl.ops.lstm import lstm_forward

        input_mask, recurrent_mask = self.dropout_masks(x, training, rng, weights["kernel"].dtype)
        return lstm_forward(
            x, weights["kernel"], weights["recurrent_kernel"], weights.get("bias"), mask=mask,
            activation=self.activation or "linear",
            recurrent_activation=self.recurrent_activation or "linear",
            go_backwards=self.go_backwards, return_sequences=self.return_sequences,
            zero_output_for_mask=self.zero_output_for_mask, input_dropout_mask=input_mask,
            recurrent_dropout_mask=recurrent_mask, initial_state=initial_state)

    def run_backward(self, cache, dy, final_state_grads):
        from layerctl.ops.lstm import lstm_backward_states

        return lstm_backward_states(cache, dy, final_state_grads)

    def final_states(self, cache) -> tuple:
        return cache.hidden[-1].copy(), cache.cell[-1].copy()  # Keras's order: h, c
