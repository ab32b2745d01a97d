"""What every layer is: validated Keras arguments plus pure shape, weight and math methods.

A layer is ONE immutable pydantic model. Its fields are the Keras constructor arguments (same
names, same defaults); its methods are pure functions of their arguments:

    output_shape(input_shape)                      -> shape         (raises IncompatibleShape)
    weight_specs(input_shape)                      -> [WeightSpec]  (Keras names, order, layouts)
    forward(weights, x, mask, training, rng)       -> (y, cache)
    backward(weights, cache, dy)                   -> (dx, {weight name: gradient})
    output_mask(x, mask)                           -> mask or None

Weights live outside the layer (in the graph), so a layer never changes after validation and
checkpointing is a dictionary operation. Shapes include the batch axis; `None` is unknown.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, Strict, field_validator

from layerctl.config import Frozen

Shape = tuple[int | None, ...]

# A layer's `inputs:`: node names in Keras's positional order, or a mapping keyed by Keras's
# call-argument names (`{sequences: x, initial_state: [h, c]}`, `{query: q, value: v}`).
LayerInputs = list[str] | dict[str, str | list[str]]

MAX_NAME_LENGTH = 128


def name_problem(value: str, forbidden: str) -> str | None:
    """Why `value` cannot be a name (layer or model; names reach weight keys and file paths),
    or None: it must be non-empty, at most MAX_NAME_LENGTH characters, without NUL or other
    control characters and without any character of `forbidden`."""
    if not value:
        return "it must not be empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"it has {len(value):,} characters; a name has at most {MAX_NAME_LENGTH}"
    if any(unicodedata.category(c) == "Cc" for c in value):
        return "it must not contain control characters (NUL, tab, newline, ...)"
    bad = sorted({c for c in value if c in forbidden})
    if bad:
        return "it must not contain " + " or ".join(f"'{c}'" for c in bad)
    return None


def shown_name(value: str) -> str:
    """`value` quoted for a one-line message (escaped, cut when long)."""
    return repr(value if len(value) <= 40 else value[:40] + "...")

PositiveInt = Annotated[int, Strict(), Field(gt=0)]
NonNegativeInt = Annotated[int, Strict(), Field(ge=0)]
Number = Annotated[float, Strict()]
Rate = Annotated[float, Strict(), Field(ge=0.0, le=1.0)]
DataFormat = Literal["channels_last", "channels_first"]


class IncompatibleShape(ValueError):
    """A layer cannot accept the shape it is given; the graph locates it at the layer's line."""


@dataclass(frozen=True)
class WeightSpec:
    """One weight a layer owns: Keras name, shape, and whether the optimizer updates it."""

    name: str
    shape: tuple[int, ...]
    trainable: bool = True
    initializer: Any = None
    regularizer: Any = None
    constraint: Any = None


def keras_snake_case(name: str) -> str:
    """Keras's default-name rule: `BatchNormalization` -> `batch_normalization`,
    `Conv2D` -> `conv2d`."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def lower_string(value: Any) -> Any:
    """Keras lower-cases `padding` and `data_format`; so does layerctl."""
    return value.lower() if isinstance(value, str) else value


class Layer(Frozen):
    """Fields and defaults shared by every layer type."""

    type: str
    name: str | None = Field(
        default=None, description="Layer name; default Keras-style (dense, dense_1, ...)."
    )
    inputs: LayerInputs | None = Field(
        default=None,
        description="Names of the nodes feeding this one (`lstm.1` for a layer's second "
        "output), or a mapping by Keras call argument; default the previous layer. `input` "
        "names the model input.",
    )
    trainable: bool = True
    input_shape: tuple[PositiveInt | None, ...] | None = Field(
        default=None, description="Shape without the batch axis (first layer only, as in Keras)."
    )

    keras_class: ClassVar[str] = ""  # the class name summaries show
    supports_masking: ClassVar[bool] = False
    reads_mask: ClassVar[bool] = False  # the mask changes its numbers (LSTM), not only passes on
    integer_input: ClassVar[bool] = False
    # backward() accepts need_dx=False, skipping the input gradient of a layer fed by data
    skips_input_gradient: ClassVar[bool] = False  # takes indices (Embedding), not features
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int] = 1
    # Keras's call-argument names for tensors, in positional order, for mapping `inputs:`;
    # a list-valued argument (initial_state) takes several nodes.
    call_arguments: ClassVar[tuple[str, ...]] = ()
    # The call argument of each input the plan feeds this layer (`roles`, below).
    _roles: tuple[str, ...] = PrivateAttr(default=())

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if value == "input":
            raise ValueError("invalid layer name 'input': it names the model input")
        # '/' separates the layer from its weight in weight keys, '.' an output index (lstm.1)
        reason = name_problem(value, forbidden="/.")
        if reason is not None:
            raise ValueError(f"invalid layer name {shown_name(value)}: {reason}")
        return value

    # ---- shapes and weights --------------------------------------------------------------
    def declared_input_shape(self) -> Shape | None:
        """The input shape this layer declares (input_shape/input_dim), batch axis excluded."""
        return self.input_shape

    def output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def output_shapes(self, input_shape: Any) -> list[Shape]:
        """Every output's shape (Keras's order). A layer with several outputs overrides this;
        its forward then returns a tuple, its backward takes a list of dy (zeros for unused
        outputs) and its output_mask a list of masks."""
        return [self.output_shape(input_shape)]

    def with_roles(self, roles: tuple[str, ...]) -> Layer:
        """This layer told which call argument each of its inputs is (`query`, `value`, ...,
        or "0", "1", ... for a positional list), so shapes, forward and backward can tell
        `[query, value, key]` from `{query: q, value: v, attention_mask: m}`."""
        bound = self.model_copy()
        bound._roles = tuple(roles)
        return bound

    @property
    def roles(self) -> tuple[str, ...]:
        """Each input's call argument, positional ones mapped to `call_arguments` order."""
        named = self.call_arguments
        return tuple(named[int(r)] if r.isdigit() and int(r) < len(named) else r
                     for r in self._roles)

    def takes_list(self, count: int) -> bool:
        """Whether forward gets a list of inputs (and backward returns a list of dx) when fed
        `count` tensors: merges always, a recurrent layer only with initial states."""
        return self.max_inputs > 1

    def weight_specs(self, input_shape: Shape) -> list[WeightSpec]:
        return []

    def resolve(self, input_shape: Shape, data_format: str) -> Layer:
        """This layer with model-level defaults filled in (e.g. data_format), or a concrete
        layer chosen by the input's rank (MaxPool). The default is the layer itself."""
        if "data_format" in type(self).model_fields and self.data_format is None:
            return self.model_copy(update={"data_format": data_format})
        return self

    # ---- math ----------------------------------------------------------------------------
    def emits_mask(self, receives_mask: Any) -> bool:
        """Whether the output carries a mask, decided from the types, not from data (the plan
        and the ONNX export need it before any data is seen). A layer taking a list of inputs
        is told, per input, whether it receives a mask; others get one bool. Mask makers and
        merges override it."""
        if isinstance(receives_mask, list | tuple):
            receives_mask = any(receives_mask)
        return bool(receives_mask) and self.supports_masking

    def emits_masks(self, receives_mask: Any, outputs: int) -> tuple[bool, ...]:
        """`emits_mask` per output: the first output's; the others (recurrent states,
        attention scores) carry none, as in Keras's compute_mask."""
        return (self.emits_mask(receives_mask),) + (False,) * (outputs - 1)

    def output_mask(self, x: Any, mask: Any) -> Any:
        """The mask passed to the next layers: unchanged when the layer supports masking."""
        return mask if self.supports_masking else None

    def forward(
        self, weights: dict, x: Any, mask: Any, training: bool, rng: Any
    ) -> tuple[Any, Any]:
        raise NotImplementedError(f"{self.keras_class} has no forward pass")

    def backward(self, weights: dict, cache: Any, dy: Any) -> tuple[Any, dict]:
        raise NotImplementedError(f"{self.keras_class} has no backward pass")


class SingleInputLayer(Layer):
    """A layer that also accepts Keras's legacy `input_dim: n` (meaning `input_shape: [n]`)."""

    input_dim: PositiveInt | None = Field(
        default=None, description="Legacy Keras: `input_dim: n` means `input_shape: [n]`."
    )

    def declared_input_shape(self) -> Shape | None:
        if self.input_dim is not None:
            return (self.input_dim,)
        return self.input_shape


def require_rank(shape: Shape, *, exact: int | None = None, minimum: int | None = None) -> None:
    """Keras's input_spec rank checks, with its wording."""
    if exact is not None and len(shape) != exact:
        raise IncompatibleShape(
            f"expected ndim={exact}, found ndim={len(shape)}. "
            f"Full shape received: {format_shape(shape)}"
        )
    if minimum is not None and len(shape) < minimum:
        raise IncompatibleShape(
            f"expected min_ndim={minimum}, found ndim={len(shape)}. "
            f"Full shape received: {format_shape(shape)}"
        )


def format_shape(shape: Shape) -> str:
    """`(None, 28, 28, 1)`, as Keras prints shapes."""
    inner = ", ".join("None" if d is None else str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def channel_axis(data_format: str | None, rank: int) -> int:
    return 1 if data_format == "channels_first" else rank - 1


def int_tuple(value: Any, length: int, argument: str, *, minimum: int = 1) -> tuple[int, ...]:
    """An int or a list of `length` ints, as Keras's standardize_tuple checks them (and with
    its message, which shows the value as received)."""
    received = value
    message = (f"The `{argument}` argument must be a tuple of {length} integers. "
               f"Received {argument}={received}")
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * length
    if (
        not isinstance(value, (list, tuple))
        or len(value) != length
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise ValueError(message)
    bad = {v for v in value if v < minimum}
    if bad:
        rule = "value > 0" if minimum == 1 else f"value >= {minimum}"
        raise ValueError(f"{message}, including values {bad} that do not satisfy `{rule}`")
    return tuple(value)
