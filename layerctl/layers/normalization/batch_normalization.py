"""BatchNormalization, with Keras 3's training/inference rules and masked statistics.

Training (training=True and trainable): normalise with the batch mean and the biased batch
variance over every axis but `axis`, and move the moving statistics
`m ← momentum·m + (1 − momentum)·batch`. Inference, or a frozen layer (`trainable: false`), uses
the moving statistics. Masked positions are left out of the batch statistics (each sum divided by
count + 1e-7, as Keras does) but are still normalised and emitted.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Strict

from layerctl.constraints import Constraint
from layerctl.initializers import Initializer
from layerctl.layers.base import IncompatibleShape, Number, Shape, SingleInputLayer, WeightSpec
from layerctl.regularizers import Regularizer

MASK_EPSILON = 1e-7  # Keras's backend.epsilon(), added to the count of unmasked positions


class BatchNormalization(SingleInputLayer):
    """`y = gamma · (x − mean) / sqrt(var + epsilon) + beta`, per feature along `axis`."""

    type: Literal["BatchNormalization", "BatchNorm"]
    axis: Annotated[int, Strict()] = -1
    momentum: Number = 0.99
    epsilon: Number = 1e-3
    center: bool = True
    scale: bool = True
    beta_initializer: Initializer = "zeros"
    gamma_initializer: Initializer = "ones"
    moving_mean_initializer: Initializer = "zeros"
    moving_variance_initializer: Initializer = "ones"
    beta_regularizer: Regularizer | None = None
    gamma_regularizer: Regularizer | None = None
    beta_constraint: Constraint | None = None
    gamma_constraint: Constraint | None = None
    synchronized: bool = False  # TF multi-device option; a no-op on one CPU

    keras_class = "BatchNormalization"
    supports_masking = True

    def _axis(self, rank: int) -> int:
        if not -rank <= self.axis < rank:
            raise IncompatibleShape(
                f"Axis {self.axis} is out of bounds for input shape of rank "
                f"{rank}. Received: axis={self.axis}"
            )
        return self.axis % rank

    def output_shape(self, input_shape: Shape) -> Shape:
        axis = self._axis(len(input_shape))
        if input_shape[axis] is None:
            raise IncompatibleShape(
                f"axis {self.axis} of the input must be defined; received input shape {input_shape}"
            )
        return input_shape

    def weight_specs(self, input_shape: Shape) -> list[WeightSpec]:
        features = (input_shape[self._axis(len(input_shape))],)
        specs = []
        if self.scale:
            specs.append(
                WeightSpec(
                    "gamma",
                    features,
                    True,
                    self.gamma_initializer,
                    self.gamma_regularizer,
                    self.gamma_constraint,
                )
            )
        if self.center:
            specs.append(
                WeightSpec(
                    "beta",
                    features,
                    True,
                    self.beta_initializer,
                    self.beta_regularizer,
                    self.beta_constraint,
                )
            )
        specs.append(WeightSpec("moving_mean", features, False, self.moving_mean_initializer))
        specs.append(
            WeightSpec("moving_variance", features, False, self.moving_variance_initializer)
        )
        return specs

    def _broadcast(self, vector: np.ndarray, rank: int) -> np.ndarray:
        shape = [1] * rank
        shape[self._axis(rank)] = vector.shape[0]
        return vector.reshape(shape)

    def _mask_weights(self, x: np.ndarray, mask: np.ndarray | None) -> np.ndarray | None:
        if mask is None:
            return None
        if mask.ndim != x.ndim - 1:
            raise IncompatibleShape(
                "The mask provided should be one dimension less than the "
                f"inputs. Received: mask.shape={mask.shape}, "
                f"inputs.shape={x.shape}"
            )
        return np.broadcast_to(mask[..., None].astype(x.dtype), x.shape)

    def forward(self, weights, x, mask, training, rng):
        rank = x.ndim
        reduce = tuple(a for a in range(rank) if a != self._axis(rank))
        use_batch = training and self.trainable
        w = self._mask_weights(x, mask) if use_batch else None
        if not use_batch:
            mean = self._broadcast(weights["moving_mean"], rank)
            var = self._broadcast(weights["moving_variance"], rank)
            count = None
        elif w is None:
            mean = x.mean(axis=reduce, keepdims=True)
            var = np.square(x - mean).mean(axis=reduce, keepdims=True)
            count = x.size // mean.size
        else:
            count = w.sum(axis=reduce, keepdims=True) + MASK_EPSILON
            mean = (w * x).sum(axis=reduce, keepdims=True) / count
            var = (w * np.square(x - mean)).sum(axis=reduce, keepdims=True) / count
        inv_std = 1.0 / np.sqrt(var + x.dtype.type(self.epsilon))
        x_hat = (x - mean) * inv_std
        y = x_hat
        if self.scale:
            y = y * self._broadcast(weights["gamma"], rank)
        if self.center:
            y = y + self._broadcast(weights["beta"], rank)
        return y, (x_hat, inv_std, w, count, reduce, mean, var)

    def state_updates(self, weights, cache, training) -> dict[str, np.ndarray]:
        """New moving statistics after a training forward pass (nothing in inference)."""
        x_hat, inv_std, w, count, reduce, mean, var = cache
        if count is None:
            return {}
        m = weights["moving_mean"].dtype.type(self.momentum)
        return {
            "moving_mean": weights["moving_mean"] * m + mean.reshape(-1) * (1 - m),
            "moving_variance": weights["moving_variance"] * m + var.reshape(-1) * (1 - m),
        }

    def backward(self, weights, cache, dy):
        x_hat, inv_std, w, count, reduce, mean, var = cache
        rank = dy.ndim
        grads = {}
        if self.scale:
            grads["gamma"] = (dy * x_hat).sum(axis=reduce)
            dx_hat = dy * self._broadcast(weights["gamma"], rank)
        else:
            dx_hat = dy
        if self.center:
            grads["beta"] = dy.sum(axis=reduce)
        if count is None:  # moving statistics are constants
            return dx_hat * inv_std, grads
        # Batch statistics depend on x: with weights w (the mask, or 1), n = Σw (+1e-7 when
        # masked), mean = Σwx/n and var = Σw(x−mean)²/n, the chain rule gives
        #   dx = inv_std · (g − w/n · (Σg + Σ(g·x̂) · (x̂ − Σ(w·x̂)/n)))
        # where the last term vanishes without a mask (Σ(x − mean) = 0 exactly).
        weight = 1.0 if w is None else w
        sum_g = dx_hat.sum(axis=reduce, keepdims=True)
        sum_g_x_hat = (dx_hat * x_hat).sum(axis=reduce, keepdims=True)
        centred = (
            x_hat if w is None else x_hat - (w * x_hat).sum(axis=reduce, keepdims=True) / count
        )
        dx = inv_std * (dx_hat - weight * (sum_g + sum_g_x_hat * centred) / count)
        return dx, grads
