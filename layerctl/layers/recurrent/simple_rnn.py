"""SimpleRNN: h_t = activation(x_t·W + b + h_{t-1}·U), with Keras 3's masks, dropout and weights.

The time loop lives in `layerctl.ops.simple_rnn`; this class declares the weights (kernel (in, u),
recurrent_kernel (u, u), bias (u,)); arguments and dropout masks come from `RecurrentLayer`.
"""

from __future__ import annotations

from typing import Literal

from layerctl.layers.base import Shape, WeightSpec
from layerctl.layers.recurrent.base import RecurrentLayer


class SimpleRNN(RecurrentLayer):
    """Fully connected recurrence over (batch, timesteps, features).

    Output (batch, units) — the last step's h — or (batch, timesteps, units) with
    `return_sequences`. Masked steps carry h over unchanged.
    """

    type: Literal["SimpleRNN"]

    keras_class = "SimpleRNN"

    def cell_weights(self, input_shape: Shape) -> list[WeightSpec]:
        u = self.units
        specs = [
            WeightSpec("kernel", (input_shape[-1], u), True, self.kernel_initializer,
                       self.kernel_regularizer, self.kernel_constraint),
            WeightSpec("recurrent_kernel", (u, u), True, self.recurrent_initializer,
                       self.recurrent_regularizer, self.recurrent_constraint),
        ]
        if self.use_bias:
            specs.append(WeightSpec("bias", (u,), True, self.bias_initializer,
                                    self.bias_regularizer, self.bias_constraint))
        return specs

    def run(self, weights, x, mask, training, rng, initial_state):
        from layerctl.ops.simple_rnn import simple_rnn_forward

        input_mask, recurrent_mask = self.dropout_masks(x, training, rng, weights["kernel"].dtype)
        return simple_rnn_forward(
            x, weights["kernel"], weights["recurrent_kernel"], weights.get("bias"), mask=mask,
            activation=self.activation, go_backwards=self.go_backwards,
            return_sequences=self.return_sequences,
            zero_output_for_mask=self.zero_output_for_mask, input_dropout_mask=input_mask,
            recurrent_dropout_mask=recurrent_mask,
            initial_state=None if initial_state is None else initial_state[0])

    def run_backward(self, cache, dy, final_state_grads):
        from layerctl.ops.simple_rnn import simple_rnn_backward_states

        return simple_rnn_backward_states(cache, dy, final_state_grads)
