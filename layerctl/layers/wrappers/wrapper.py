"""What Bidirectional and TimeDistributed share: a `layer:` field holding any layer mapping
(validated as a layer, wrappers included: the union is recursive), the inner layer's name, the
`<inner name>/<weight>` keys of its weights, and the model defaults (data_format, MaxPool's
rank) resolved for the inner layer at the shape it sees.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from pydantic import Field, GetPydanticSchema, field_validator

from layerctl.layers.base import Layer, Shape, WeightSpec, keras_snake_case


def _any_layer_schema(source: Any, handler: Any) -> Any:
    # The union of every layer class exists only once layerctl.layers has imported them all
    # (wrappers included), so it is looked up when pydantic first builds a schema.
    from layerctl.layers import AnyLayer

    return handler.generate_schema(AnyLayer)


# A layer mapping validated as one of the layer classes, chosen by its `type` (recursive: a
# wrapper may wrap a wrapper).
LayerMapping = Annotated[Layer, GetPydanticSchema(_any_layer_schema)]


def inner_name(layer: Layer) -> str:
    """The inner mapping's `name:`, or its type in snake case (`lstm`, `dense`), as DESIGN §3b
    names a wrapper's inner layer."""
    return layer.name or keras_snake_case(layer.keras_class)


def prefixed_specs(prefix: str, layer: Layer, input_shape: Any) -> list[WeightSpec]:
    """The inner layer's weights keyed `<prefix>/<weight>`, frozen when the inner layer is."""
    return [replace(spec, name=f"{prefix}/{spec.name}",
                    trainable=spec.trainable and layer.trainable)
            for spec in layer.weight_specs(input_shape)]


def own_weights(weights: dict, prefix: str) -> dict:
    """The weights of the inner layer keyed `<prefix>/...`, by their own names."""
    start = prefix + "/"
    return {k[len(start):]: v for k, v in weights.items() if k.startswith(start)}


def prefixed(prefix: str, values: dict) -> dict:
    return {f"{prefix}/{k}": v for k, v in values.items()}


class Wrapper(Layer):
    """A layer around another (Keras's `Wrapper`): `layer` is any layer mapping."""

    layer: LayerMapping = Field(description="The wrapped layer, as a layer mapping "
                                   "(`{type: LSTM, units: 8}`).")

    supports_masking = True

    @field_validator("layer", "backward_layer", mode="after", check_fields=False)
    @classmethod
    def _no_wiring(cls, value: Layer | None) -> Layer | None:
        if value is not None and (value.inputs is not None or value.input_shape is not None):
            raise ValueError("a wrapped layer takes the wrapper's input: give `inputs` and "
                             "`input_shape` to the wrapper, not to the layer inside it")
        return value

    def resolve_inner(self, field: str, input_shape: Shape, data_format: str) -> dict:
        """{field: the inner layer resolved at `input_shape`} (for model_copy's update)."""
        inner = getattr(self, field)
        return {} if inner is None else {field: inner.resolve(input_shape, data_format)}
