"""Bidirectional: a recurrent layer run forward and, as a copy with `go_backwards`, backward over
the same sequences, the two outputs merged (Keras 3's `keras.layers.Bidirectional`).

Written against the generic layer interface only, so it wraps any recurrent class with
`go_backwards` and `return_sequences` fields (LSTM, GRU, SimpleRNN). The backward copy runs on
reversed time; its sequence output comes in processing order and is reversed back before the
merge, as Keras does. Both directions get `zero_output_for_mask = return_sequences` (Keras forces
it). Weights are `forward_<name>/…` then `backward_<name>/…`, `<name>` being the inner mapping's
`name:` or its type in snake case. An inner layer with several outputs (states, once recurrent
layers return them) contributes its first output to the merge and its others after it: forward
states, then backward states, as Keras orders them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from layerctl.layers.base import IncompatibleShape, Layer, Shape, WeightSpec, format_shape
from layerctl.layers.wrappers.wrapper import (
    LayerMapping,
    Wrapper,
    inner_name,
    own_weights,
    prefixed,
    prefixed_specs,
)
from layerctl.ops.parallel import for_each_piece

MERGE_MODES = ("sum", "mul", "ave", "concat")
# The two directions run at once when a step's h·U product is at least this many floating-point
# operations (measured here, training steps over batch 64: LSTM(128) ×100 steps 80 -> 64 ms at
# once, 8.4 MFLOP a step; LSTM(64) ×16, 2.1 MFLOP, no faster; GRU(32) ×16 slower).
CONCURRENT_STEP_FLOPS = 4_000_000


def _recurrent(layer: Layer) -> bool:
    fields = type(layer).model_fields
    return "go_backwards" in fields and "return_sequences" in fields


def _direction_name(direction: str, name: str) -> str:
    """Keras's `forward_<name>` / `backward_<name>`, never prefixed twice."""
    return f"{direction}_{name.removeprefix(direction + '_')}"


class Bidirectional(Wrapper):
    """Bidirectional wrapper for recurrent layers over (batch, timesteps, features).

    `merge_mode` concat (default: the last axes joined, forward first), sum, mul, ave, or null:
    two outputs, forward then backward (`bi.0`, `bi.1`). `backward_layer`: an optional mapping
    for the backward direction (it must have `go_backwards: true` and the forward layer's
    `return_sequences`, `return_state` and `stateful`).
    """

    type: Literal["Bidirectional"]
    merge_mode: Literal["sum", "mul", "ave", "concat"] | None = Field(
        default="concat", description="How the two directions' outputs are combined; null "
        "returns both (two outputs).")
    backward_layer: LayerMapping | None = Field(
        default=None, description="The layer for the backward direction; default a copy of "
        "`layer` with `go_backwards: true`.")

    keras_class = "Bidirectional"
    supports_masking = True
    reads_mask = True

    @field_validator("merge_mode", mode="before")
    @classmethod
    def _merge_mode_message(cls, value: Any) -> Any:
        if value is not None and value not in MERGE_MODES:
            raise ValueError(f"Invalid merge mode. Received: {value}. Merge mode should be one "
                             'of {"sum", "mul", "ave", "concat", None}')
        return value

    @field_validator("layer", mode="after")
    @classmethod
    def _recurrent_layer(cls, value: Layer) -> Layer:
        # Keras rebuilds the layer from its config with go_backwards=True for the backward copy;
        # a layer without that argument fails there, with this message
        if not _recurrent(value):
            raise ValueError(f"Unrecognized keyword arguments passed to {value.keras_class}: "
                             "{'go_backwards': True}")
        if getattr(value, "activity_regularizer", None) is not None:
            raise ValueError("the activity_regularizer of a layer inside Bidirectional is not "
                             "supported: put an ActivityRegularization layer after it")
        return value

    @field_validator("backward_layer", mode="after")
    @classmethod
    def _recurrent_backward_layer(cls, value: Layer | None) -> Layer | None:
        if value is not None and not _recurrent(value):
            raise ValueError(f"'{value.keras_class}' object has no attribute 'go_backwards'")
        if value is not None and getattr(value, "activity_regularizer", None) is not None:
            raise ValueError("the activity_regularizer of a layer inside Bidirectional is not "
                             "supported: put an ActivityRegularization layer after it")
        return value

    @model_validator(mode="after")
    def _directions_agree(self) -> Bidirectional:
        forward, backward = self.directions()
        if forward.go_backwards == backward.go_backwards:
            raise ValueError(
                "Forward layer and backward layer should have different `go_backwards` value. "
                f"Received: forward_layer.go_backwards {forward.go_backwards}, "
                f"backward_layer.go_backwards={backward.go_backwards}")
        for attribute in ("stateful", "return_sequences", "return_state"):
            forward_value = getattr(forward, attribute, False)
            backward_value = getattr(backward, attribute, False)
            if forward_value != backward_value:
                raise ValueError(
                    "Forward layer and backward layer are expected to have the same value for "
                    f'attribute "{attribute}", got "{forward_value}" for forward layer and '
                    f'"{backward_value}" for backward layer')
        return self

    # ---- the two directions ----------------------------------------------------------------
    def directions(self) -> tuple[Layer, Layer]:
        """The forward and backward layers as Keras builds them: named `forward_<name>` and
        `backward_<name>`, the backward one a `go_backwards` copy unless `backward_layer` is
        given, both with zero_output_for_mask = return_sequences."""
        name = inner_name(self.layer)
        forward = self.layer.model_copy(update={"name": _direction_name("forward", name)})
        if self.backward_layer is None:
            backward = self.layer.model_copy(
                update={"go_backwards": True, "name": _direction_name("backward", name)})
        else:
            backward = self.backward_layer.model_copy(update={
                "name": _direction_name("backward", inner_name(self.backward_layer))})
        return self._zero_masked_outputs(forward), self._zero_masked_outputs(backward)

    @staticmethod
    def _zero_masked_outputs(layer: Layer) -> Layer:
        if "zero_output_for_mask" not in type(layer).model_fields:
            return layer
        return layer.model_copy(update={"zero_output_for_mask": layer.return_sequences})

    @property
    def return_sequences(self) -> bool:
        return bool(self.layer.return_sequences)

    @property
    def seed(self) -> int | None:
        """The inner layers' seed: the graph then gives this layer its own random generator."""
        return next((s for s in (getattr(self.layer, "seed", None),
                                 getattr(self.backward_layer, "seed", None)) if s is not None),
                    None)

    def resolve(self, input_shape: Shape, data_format: str) -> Bidirectional:
        update = {**self.resolve_inner("layer", input_shape, data_format),
                  **self.resolve_inner("backward_layer", input_shape, data_format)}
        return self.model_copy(update=update)

    def keras_arguments(self, build: Callable[[Layer], Any]) -> dict[str, Any]:
        """Keras's constructor arguments, `build` making a Keras layer of an inner one. Keras
        names the directions `forward_<name>`/`backward_<name>` from the layer's own name; an
        explicit backward layer keeps its name, so it is given layerctl's."""
        named = self.layer.model_copy(update={"name": inner_name(self.layer)})
        arguments = {"layer": build(named), "merge_mode": self.merge_mode}
        if self.backward_layer is not None:
            arguments["backward_layer"] = build(self.directions()[1])
        return arguments

    # ---- shapes and weights ----------------------------------------------------------------
    def output_shapes(self, input_shape: Shape) -> list[Shape]:
        forward, backward = self.directions()
        forward_shapes = forward.output_shapes(input_shape)
        backward_shapes = backward.output_shapes(input_shape)
        y, y_reversed = forward_shapes[0], backward_shapes[0]
        states = list(forward_shapes[1:]) + list(backward_shapes[1:])
        if self.merge_mode is None:
            return [y, y_reversed] + states
        if self.merge_mode == "concat" and y[:-1] == y_reversed[:-1]:
            joined = None if None in (y[-1], y_reversed[-1]) else y[-1] + y_reversed[-1]
            return [y[:-1] + (joined,)] + states
        if self.merge_mode != "concat" and y == y_reversed:
            return [y] + states
        raise IncompatibleShape(
            f"merge_mode={self.merge_mode!r} cannot join the forward output {format_shape(y)} "
            f"and the backward output {format_shape(y_reversed)}")

    def output_shape(self, input_shape: Shape) -> Shape:
        return self.output_shapes(input_shape)[0]

    def weight_specs(self, input_shape: Shape) -> list[WeightSpec]:
        forward, backward = self.directions()
        return (prefixed_specs(forward.name, forward, input_shape)
                + prefixed_specs(backward.name, backward, input_shape))

    # ---- masks -----------------------------------------------------------------------------
    def emits_mask(self, receives_mask: bool) -> bool:
        return receives_mask and self.return_sequences

    def emits_masks(self, receives_mask: bool, outputs: int) -> tuple[bool, ...]:
        """With merge_mode null both sequence outputs carry the mask (`output_mask`)."""
        merged = 2 if self.merge_mode is None else 1
        return (self.emits_mask(receives_mask),) * merged + (False,) * (outputs - merged)

    def output_mask(self, x: Any, mask: Any) -> Any:
        """Keras's compute_mask: the mask on the merged (or on both) sequence outputs with
        return_sequences, none otherwise; none on states."""
        merged = 2 if self.merge_mode is None else 1
        count = len(self.output_shapes((None,) + tuple(x.shape[1:])))
        masks = [mask if self.return_sequences else None] * merged
        masks += [None] * (count - merged)
        return masks if count > 1 else masks[0]

    # ---- math ------------------------------------------------------------------------------
    def forward(self, weights, x, mask, training, rng):
        forward, backward = self.directions()
        draws = training and any(layer.dropout or layer.recurrent_dropout
                                 for layer in (forward, backward))
        (y, forward_cache), (y_reversed, backward_cache) = self._both(
            lambda _, layer: layer.forward(own_weights(weights, layer.name), x, mask, training,
                                           rng),
            weights, len(x), draws)
        several = isinstance(y, tuple)  # the inner layers return states too
        y, forward_states = (y[0], list(y[1:])) if several else (y, [])
        y_reversed, backward_states = ((y_reversed[0], list(y_reversed[1:])) if several
                                       else (y_reversed, []))
        if self.return_sequences:
            y_reversed = y_reversed[:, ::-1]
        merged = self._merge(y, y_reversed)
        cache = (forward_cache, backward_cache, y, y_reversed, several, len(forward_states))
        states = forward_states + backward_states
        if self.merge_mode is None:
            return tuple(merged) + tuple(states), cache
        return (tuple([merged] + states) if states else merged), cache

    def _both(self, run, weights, batch: int, draws: bool = False) -> list:
        """[run(0, forward layer), run(1, backward layer)]. The two directions are independent, so
        large ones run at once, the backward one on the pool's thread; each computes exactly
        what it would alone, so the numbers are the same either way. In order, on this thread,
        when their steps are small (threads would mostly wait for each other's Python between
        the small NumPy calls: measured, a GRU(32) over batch 64 took 1.7x as long at once), or
        when they draw dropout masks from the shared generator (the draws must come in the same
        order every run)."""
        layers = self.directions()
        results = [None, None]

        def run_direction(index: int) -> None:
            results[index] = run(index, layers[index])

        units, gate_width = own_weights(weights, layers[0].name)["recurrent_kernel"].shape
        at_once = not draws and 2 * batch * units * gate_width >= CONCURRENT_STEP_FLOPS
        for_each_piece(run_direction, 2, threads=None if at_once else 1)
        return results

    def _merge(self, y: np.ndarray, y_reversed: np.ndarray) -> Any:
        if self.merge_mode == "concat":
            return np.concatenate([y, y_reversed], axis=-1)
        if self.merge_mode == "sum":
            return y + y_reversed
        if self.merge_mode == "ave":
            return (y + y_reversed) / y.dtype.type(2)
        if self.merge_mode == "mul":
            return y * y_reversed
        return [y, y_reversed]

    def backward(self, weights, cache, dy):
        forward_cache, backward_cache, y, y_reversed, several, state_count = cache
        forward, backward = self.directions()
        dys = list(dy) if isinstance(dy, list | tuple) else [dy]
        merged = 2 if self.merge_mode is None else 1
        d_y, d_reversed = self._unmerge(dys[:merged], y, y_reversed)
        if self.return_sequences:
            d_reversed = d_reversed[:, ::-1]
        states = dys[merged:]
        d_forward = [d_y, *states[:state_count]] if several else d_y
        d_backward = [d_reversed, *states[state_count:]] if several else d_reversed
        arguments = [(forward_cache, d_forward), (backward_cache, d_backward)]
        (dx, forward_grads), (dx_reversed, backward_grads) = self._both(
            lambda index, layer: layer.backward(own_weights(weights, layer.name),
                                                *arguments[index]),
            weights, len(d_y))
        return dx + dx_reversed, {**prefixed(forward.name, forward_grads),
                                  **prefixed(backward.name, backward_grads)}

    def _unmerge(self, d_merged: list, y: np.ndarray, y_reversed: np.ndarray):
        """(d y, d y_reversed) from the gradient of the merged output(s)."""
        d = d_merged[0]
        if self.merge_mode is None:
            return d_merged[0], d_merged[1]
        if self.merge_mode == "concat":
            units = y.shape[-1]
            return d[..., :units], d[..., units:]
        if self.merge_mode == "sum":
            return d, d
        if self.merge_mode == "ave":
            half = d / d.dtype.type(2)
            return half, half
        return d * y_reversed, d * y
