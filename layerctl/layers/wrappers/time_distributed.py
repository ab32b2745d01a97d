"""TimeDistributed: one layer applied to every time step of (batch, timesteps, ...) with the same
weights (Keras 3's `keras.layers.TimeDistributed`).

Keras 3 calls the inner layer once per step; here the time axis is folded into the batch (one
reshape, one call of the inner layer on (batch·timesteps, ...), one reshape back), which gives
the same numbers for every layer whose samples do not interact. The output mask is the incoming
one (Keras's compute_mask); the inner layer gets none (Keras would pass each step's (batch,)
slice to an inner layer whose call takes a mask, which fits none of them). Weights are
`<name>/…`, `<name>` being the inner mapping's `name:` or its type in snake case.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from layerctl.layers.base import IncompatibleShape, Layer, Shape, WeightSpec, format_shape
from layerctl.layers.wrappers.wrapper import (
    Wrapper,
    inner_name,
    own_weights,
    prefixed,
    prefixed_specs,
)


def _child_shape(input_shape: Shape) -> Shape:
    """One time step's shape, the batch axis standing for batch·timesteps."""
    if len(input_shape) < 3:
        raise IncompatibleShape("`TimeDistributed` Layer should be passed an `input_shape` with "
                                f"at least 3 dimensions, received: {format_shape(input_shape)}")
    return (None,) + tuple(input_shape[2:])


class TimeDistributed(Wrapper):
    """Applies `layer` to every temporal slice of an input of rank ≥ 3: (batch, timesteps,
    ...) → (batch, timesteps, layer's output shape without its batch axis)."""

    type: Literal["TimeDistributed"]

    keras_class = "TimeDistributed"
    supports_masking = True

    def inner(self) -> Layer:
        """The wrapped layer, named as its weights are keyed."""
        return self.layer.model_copy(update={"name": inner_name(self.layer)})

    @property
    def integer_input(self) -> bool:  # TimeDistributed(Embedding) reads indices
        return self.layer.integer_input

    @property
    def skips_input_gradient(self) -> bool:
        return self.layer.skips_input_gradient

    @property
    def seed(self) -> int | None:
        return getattr(self.layer, "seed", None)

    def resolve(self, input_shape: Shape, data_format: str) -> TimeDistributed:
        if len(input_shape) < 3:
            return self  # output_shape reports it
        return self.model_copy(
            update=self.resolve_inner("layer", _child_shape(input_shape), data_format))

    def keras_arguments(self, build: Callable[[Layer], Any]) -> dict[str, Any]:
        """Keras's constructor arguments, `build` making a Keras layer of the inner one."""
        return {"layer": build(self.inner())}

    def output_shape(self, input_shape: Shape) -> Shape:
        outputs = self.layer.output_shapes(_child_shape(input_shape))
        if len(outputs) > 1:
            raise IncompatibleShape(f"TimeDistributed cannot wrap a layer with {len(outputs)} "
                                    f"outputs ({self.layer.keras_class})")
        return tuple(input_shape[:2]) + tuple(outputs[0][1:])

    def weight_specs(self, input_shape: Shape) -> list[WeightSpec]:
        inner = self.inner()
        return prefixed_specs(inner.name, inner, _child_shape(input_shape))

    def forward(self, weights, x, mask, training, rng):
        inner = self.inner()
        batch, steps = x.shape[:2]
        y, cache = inner.forward(own_weights(weights, inner.name),
                                 x.reshape((batch * steps,) + x.shape[2:]), None, training, rng)
        return y.reshape((batch, steps) + y.shape[1:]), (cache, x.shape)

    def state_updates(self, weights, cache, training) -> dict:
        """The inner layer's (BatchNormalization's moving statistics), under its prefix."""
        inner = self.inner()
        if not hasattr(inner, "state_updates"):
            return {}
        return prefixed(inner.name, inner.state_updates(own_weights(weights, inner.name),
                                                        cache[0], training))

    def backward(self, weights, cache, dy, **options):
        inner_cache, input_shape = cache
        inner = self.inner()
        batch, steps = dy.shape[:2]
        dx, grads = inner.backward(own_weights(weights, inner.name), inner_cache,
                                   dy.reshape((batch * steps,) + dy.shape[2:]), **options)
        if dx is not None:
            dx = dx.reshape(input_shape)
        return dx, prefixed(inner.name, grads)
