"""GRU with Keras 3's gates (z, r, h), both reset conventions, masks, dropout and weight layout.

The time loop lives in `layerctl.ops.gru`; this class declares the weights: kernel (in, 3u),
recurrent_kernel (u, 3u), and bias (2, 3u) with `reset_after` (the input and the recurrent bias,
as Keras) or (3u,) without; arguments and dropout masks come from `RecurrentLayer`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from layerctl.activations import ActivationName
from layerctl.layers.base import Shape, WeightSpec
from layerctl.layers.recurrent.base import CuDNN, RecurrentLayer


class GRU(RecurrentLayer):
    """Gated recurrent unit over (batch, timesteps, features).

    Output (batch, units) — the last step's h — or (batch, timesteps, units) with
    `return_sequences`. Masked steps carry h over unchanged.
    """

    type: Literal["GRU"]
    recurrent_activation: ActivationName | None = "sigmoid"
    reset_after: bool = True
    implementation: Literal[1, 2] = Field(
        default=2, description="Accepted for Keras compatibility; no effect on the results.")
    use_cudnn: CuDNN = Field(default="auto", description="'auto' or false (no cuDNN here).")

    keras_class = "GRU"
    gates: ClassVar[int] = 3

    def cell_weights(self, input_shape: Shape) -> list[WeightSpec]:
        u = self.units
        specs = [
            WeightSpec("kernel", (input_shape[-1], 3 * u), True, self.kernel_initializer,
                       self.kernel_regularizer, self.kernel_constraint),
            WeightSpec("recurrent_kernel", (u, 3 * u), True, self.recurrent_initializer,
                       self.recurrent_regularizer, self.recurrent_constraint),
        ]
        if self.use_bias:
            shape = (2, 3 * u) if self.reset_after else (3 * u,)
            specs.append(WeightSpec("bias", shape, True, self.bias_initializer,
                                    self.bias_regularizer, self.bias_constraint))
        return specs

    def run(self, weights, x, mask, training, rng, initial_state):
        from layerctl.ops.gru import gru_forward

        input_mask, recurrent_mask = self.dropout_masks(x, training, rng, weights["kernel"].dtype)
        return gru_forward(
            x, weights["kernel"], weights["recurrent_kernel"], weights.get("bias"), mask=mask,
            activation=self.activation, recurrent_activation=self.recurrent_activation,
            reset_after=self.reset_after, go_backwards=self.go_backwards,
            return_sequences=self.return_sequences,
            zero_output_for_mask=self.zero_output_for_mask, input_dropout_mask=input_mask,
            recurrent_dropout_mask=recurrent_mask,
            initial_state=None if initial_state is None else initial_state[0])

    def run_backward(self, cache, dy, final_state_grads):
        from layerctl.ops.gru import gru_backward_states

        return gru_backward_states(cache, dy, final_state_grads)
