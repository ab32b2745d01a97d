"""Keras 1 and Keras 2 layer calls translated to Keras 3 spellings, the ones specs use.

`translate_layer` takes a class name as written, its positional and keyword arguments (already
read as values) and returns the layerctl type, the arguments with Keras 3 names (defaults left
out) and one note per translated argument naming what the source wrote. Anything with no exact
Keras 3 meaning raises `Unsupported`: nothing is guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from layerctl.layers import LAYER_TYPES


class Unsupported(Exception):
    """Something in the source has no exact spec equivalent; the message says what."""


@dataclass(frozen=True)
class Param:
    """A block parameter standing for a value (`$name` in the spec)."""

    name: str

    def __str__(self) -> str:
        return f"${self.name}"


@dataclass
class Translated:
    type: str
    args: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    keras1: bool = False  # a Keras 1 spelling was translated (dim_ordering defaults apply)


# Keras 1 class names with no alias in layerctl -> the modern class
CLASS_RENAMES = {
    "Convolution1D": "Conv1D", "Convolution2D": "Conv2D", "AtrousConvolution2D": None,
    "Deconvolution2D": "Conv2DTranspose", "SeparableConvolution2D": "SeparableConv2D",
}
KERAS1_CLASSES = {"Convolution1D", "Convolution2D", "Deconvolution2D"}

# positional parameters by class: Keras 3's order, and Keras 1's where it differed
POSITIONAL: dict[str, tuple[str, ...]] = {
    "Dense": ("units",), "Activation": ("activation",), "Dropout": ("rate",),
    "Masking": ("mask_value",), "Flatten": ("data_format",),
    "Embedding": ("input_dim", "output_dim"),
    "LSTM": ("units",), "GRU": ("units",), "SimpleRNN": ("units",),
    "MultiHeadAttention": ("num_heads", "key_dim", "value_dim"),
    "Bidirectional": ("layer", "merge_mode"), "TimeDistributed": ("layer",),
    "LayerNormalization": ("axis", "epsilon"),  # (not BatchNormalization: Keras 1's order
    # was epsilon, mode, axis; Keras 2's axis, momentum, epsilon: keywords are unambiguous)
    "Conv1D": ("filters", "kernel_size", "strides", "padding"),
    "Conv2D": ("filters", "kernel_size", "strides", "padding"),
    "Conv1DTranspose": ("filters", "kernel_size", "strides", "padding"),
    "Conv2DTranspose": ("filters", "kernel_size", "strides", "padding"),
    "SeparableConv1D": ("filters", "kernel_size", "strides", "padding"),
    "SeparableConv2D": ("filters", "kernel_size", "strides", "padding"),
    "DepthwiseConv1D": ("kernel_size", "strides", "padding"),
    "DepthwiseConv2D": ("kernel_size", "strides", "padding"),
    "MaxPooling1D": ("pool_size", "strides", "padding", "data_format"),
    "MaxPooling2D": ("pool_size", "strides", "padding", "data_format"),
    "AveragePooling1D": ("pool_size", "strides", "padding", "data_format"),
    "AveragePooling2D": ("pool_size", "strides", "padding", "data_format"),
    "GlobalMaxPooling1D": ("data_format",), "GlobalMaxPooling2D": ("data_format",),
    "GlobalAveragePooling1D": ("data_format",), "GlobalAveragePooling2D": ("data_format",),
    "Reshape": ("target_shape",), "Permute": ("dims",), "RepeatVector": ("n",),
    "Concatenate": ("axis",), "Dot": ("axes",), "ZeroPadding1D": ("padding",),
    "ZeroPadding2D": ("padding",), "UpSampling1D": ("size",), "UpSampling2D": ("size",),
    "Cropping1D": ("cropping",), "Cropping2D": ("cropping",), "GaussianNoise": ("stddev",),
    "GaussianDropout": ("rate",), "AlphaDropout": ("rate",), "SpatialDropout1D": ("rate",),
    "SpatialDropout2D": ("rate",), "Rescaling": ("scale", "offset"),
    "Resizing": ("height", "width"), "CenterCrop": ("height", "width"), "Softmax": ("axis",),
    "LeakyReLU": ("negative_slope",), "ELU": ("alpha",), "ReLU": ("max_value",),
}
KERAS1_POSITIONAL: dict[str, tuple[str, ...]] = {
    "Convolution1D": ("nb_filter", "filter_length"),
    "Convolution2D": ("nb_filter", "nb_row", "nb_col"),
    "Deconvolution2D": ("nb_filter", "nb_row", "nb_col", "output_shape"),
    "MaxPooling1D": ("pool_length", "stride", "border_mode"),
    "AveragePooling1D": ("pool_length", "stride", "border_mode"),
}

# plain renames: Keras 1/2 keyword -> Keras 3 keyword
RENAMES = {
    "init": "kernel_initializer", "inner_init": "recurrent_initializer",
    "subsample": "strides", "subsample_length": "strides", "stride": "strides",
    "filter_length": "kernel_size", "nb_filter": "filters", "pool_length": "pool_size",
    "W_constraint": "kernel_constraint", "b_constraint": "bias_constraint",
    "U_constraint": "recurrent_constraint", "W_regularizer": "kernel_regularizer",
    "b_regularizer": "bias_regularizer", "U_regularizer": "recurrent_regularizer",
    "inner_activation": "recurrent_activation", "output_dim": "units", "p": "rate",
    "dropout_W": "dropout", "dropout_U": "recurrent_dropout", "beta_init": "beta_initializer",
    "gamma_init": "gamma_initializer", "border_mode": "padding", "dim_ordering": "data_format",
}
EMBEDDING_RENAMES = {"output_dim": "output_dim", "init": "embeddings_initializer",
                     "W_regularizer": "embeddings_regularizer",
                     "W_constraint": "embeddings_constraint"}
RENAMES_BY_CLASS = {"LeakyReLU": {"alpha": "negative_slope"}}
DIM_ORDERING = {"th": "channels_first", "tf": "channels_last"}
IGNORED = {"consume_less": "an implementation detail with no effect on results"}

# constraint and regularizer calls (Keras 1 function names included) -> spec mappings
CONSTRAINTS = {"maxnorm": ("max_norm", {"m": "max_value"}), "max_norm": ("max_norm", {}),
               "MaxNorm": ("max_norm", {"m": "max_value"}), "nonneg": ("non_neg", {}),
               "non_neg": ("non_neg", {}), "NonNeg": ("non_neg", {}),
               "unitnorm": ("unit_norm", {}), "unit_norm": ("unit_norm", {}),
               "UnitNorm": ("unit_norm", {}), "min_max_norm": ("min_max_norm", {}),
               "MinMaxNorm": ("min_max_norm", {})}
CONSTRAINT_POSITIONAL = {"max_norm": ("max_value", "axis"), "unit_norm": ("axis",),
                         "min_max_norm": ("min_value", "max_value", "rate", "axis"),
                         "non_neg": ()}
REGULARIZERS = {"l1": ("l1", ("l1",)), "L1": ("l1", ("l1",)), "l2": ("l2", ("l2",)),
                "L2": ("l2", ("l2",)), "l1_l2": ("l1_l2", ("l1", "l2")),
                "l1l2": ("l1_l2", ("l1", "l2")), "L1L2": ("l1_l2", ("l1", "l2"))}


@dataclass(frozen=True)
class Call:
    """A call written in the source that is a value (`maxnorm(3)`, `SGD(lr=0.1)`)."""

    name: str
    args: tuple[Any, ...]
    kwargs: tuple[tuple[str, Any], ...]


def shown(value: Any) -> str:
    """A value as the source would have written it, for `# was ...` notes."""
    if isinstance(value, Call):
        parts = [shown(a) for a in value.args] + [f"{k}={shown(v)}" for k, v in value.kwargs]
        return f"{value.name}({', '.join(parts)})"
    if isinstance(value, list):
        return "(" + ", ".join(shown(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value) if not isinstance(value, Param) else value.name


def layer_type(class_name: str) -> str:
    """The canonical layerctl type of a Keras class name (Keras 1 names included)."""
    if class_name in CLASS_RENAMES:
        modern = CLASS_RENAMES[class_name]
        if modern is None:
            raise Unsupported(f"`{class_name}` has no Keras 3 layer layerctl supports")
        return modern
    cls = LAYER_TYPES.get(class_name)
    if cls is None:
        raise Unsupported(f"`{class_name}` is not a layer type layerctl supports")
    return cls.__name__


def value_of(argument: str, value: Any) -> Any:
    """A constraint/regularizer/initializer call as its spec mapping; tuples as lists."""
    if isinstance(value, Call):
        if argument.endswith("_constraint"):
            return _choice(value, CONSTRAINTS, CONSTRAINT_POSITIONAL)
        if argument.endswith("_regularizer"):
            kind, positional = REGULARIZERS.get(value.name, (None, ()))
            if kind is None:
                raise Unsupported(f"`{value.name}(...)` is not a regularizer layerctl knows")
            return _mapping(kind, value, positional, {})
        raise Unsupported(f"`{argument}={value.name}(...)`: a call is not a value layerctl "
                          "reads here; write the name as a string")
    if isinstance(value, tuple):
        return [value_of(argument, v) for v in value]
    if isinstance(value, list):
        return [value_of(argument, v) for v in value]
    return value


def _choice(call: Call, table: dict, positional: dict) -> dict:
    if call.name not in table:
        raise Unsupported(f"`{call.name}(...)` is not a constraint layerctl knows")
    kind, renames = table[call.name]
    return _mapping(kind, call, positional[kind], renames)


def _mapping(kind: str, call: Call, positional: tuple[str, ...], renames: dict) -> dict:
    if len(call.args) > len(positional):
        raise Unsupported(f"`{call.name}` takes at most {len(positional)} positional arguments")
    out: dict[str, Any] = {"type": kind}
    out.update(zip(positional, call.args, strict=False))
    for key, value in call.kwargs:
        out[renames.get(key, key)] = value
    return out


def translate_layer(class_name: str, args: list[Any], kwargs: dict[str, Any]) -> Translated:
    """The spec form of the call `class_name(*args, **kwargs)` (Keras 1, 2 or 3)."""
    kind = layer_type(class_name)
    notes: list[str] = []
    keras1 = class_name in KERAS1_CLASSES
    named: dict[str, Any] = {}
    if class_name in KERAS1_POSITIONAL and (keras1 or _keras1_call(args, kwargs)):
        order = KERAS1_POSITIONAL[class_name]
        keras1 = True
    else:
        order = POSITIONAL.get(kind, ())
        if kind in ("Conv1D", "Conv2D", "Conv2DTranspose", "SeparableConv2D") \
                and len(args) >= 3 and all(isinstance(a, int) for a in args[1:3]):
            raise Unsupported(
                f"`{class_name}({', '.join(map(shown, args))})`: Keras 3 reads the third "
                "positional integer as `strides`, Keras 1 and 2 read kernel_size; write "
                "`kernel_size=` and `strides=` as keywords")
    if len(args) > len(order):
        raise Unsupported(f"`{class_name}` with {len(args)} positional arguments: at most "
                          f"{len(order)} are read ({', '.join(order) or 'none'}); write the "
                          "others as keywords")
    positional = dict(zip(order, args, strict=False))
    for key in positional:
        if key in kwargs:
            raise Unsupported(f"`{class_name}` got `{key}` both positionally and as a keyword")
    written = {**positional, **kwargs}
    if keras1 and args and class_name in KERAS1_POSITIONAL:
        notes.append(f"was {class_name}({', '.join(map(shown, args))}"
                     + (", ...)" if kwargs else ")"))
    quiet = set(positional) if keras1 and class_name in KERAS1_POSITIONAL else set()
    if "nb_row" in written or "nb_col" in written:
        if "nb_row" not in written or "nb_col" not in written:
            raise Unsupported(f"`{class_name}` needs both nb_row and nb_col")
        rows, cols = written["nb_row"], written["nb_col"]
        if "nb_row" not in quiet:
            notes.append(f"was nb_row={shown(rows)}, nb_col={shown(cols)}")
        written = {("kernel_size" if k == "nb_row" else k): ([rows, cols] if k == "nb_row"
                                                             else v)
                   for k, v in written.items() if k != "nb_col"}
        quiet.add("kernel_size")
        keras1 = True
    renames = {**RENAMES, **(EMBEDDING_RENAMES if kind == "Embedding" else {}),
               **RENAMES_BY_CLASS.get(kind, {})}
    for key, value in written.items():
        was = f"was {key}={shown(value)}"
        if value is None and key in ("input_dim", "input_length", "batch_input_shape"):
            continue  # configs write the unset ones
        if key in quiet:
            key = {"nb_filter": "filters", "filter_length": "kernel_size", "pool_length":
                   "pool_size", "stride": "strides", "border_mode": "padding"}.get(key, key)
            named[key] = value_of(key, value)
            continue
        if key in IGNORED:
            notes.append(f"dropped {key}={shown(value)}: {IGNORED[key]}")
            keras1 = True
        elif key == "bias":
            named["use_bias"] = value
            notes.append(was)
            keras1 = True
        elif key == "input_dim" and kind != "Embedding":
            named["input_shape"] = [value] if "input_length" not in written else \
                [written["input_length"], value]
            notes.append((f"was input_length={shown(written['input_length'])}, "
                          if "input_length" in written else "was ") + f"input_dim={shown(value)}")
        elif key == "input_length" and kind != "Embedding":
            if "input_dim" not in written:
                raise Unsupported(f"`{class_name}(input_length=...)` without input_dim")
        elif key == "batch_input_shape":
            named["input_shape"] = list(value)[1:]
            notes.append(was)
        elif key == "dim_ordering":
            if value == "default":
                notes.append("dropped dim_ordering='default' (the model's data_format)")
            elif value in DIM_ORDERING:
                named["data_format"] = DIM_ORDERING[value]
                notes.append(was)
            else:
                raise Unsupported(f"dim_ordering={shown(value)}: Keras 1 knew 'th' and 'tf'")
            keras1 = True
        elif key == "border_mode":
            if value not in ("valid", "same") and not isinstance(value, Param):
                raise Unsupported(f"border_mode={shown(value)} has no Keras 3 equivalent "
                                  "(Keras 3 pads 'valid' or 'same')")
            named["padding"] = value
            notes.append(was)
            keras1 = True
        elif key == "mode" and kind == "BatchNormalization":
            if value != 0:
                raise Unsupported(f"BatchNormalization(mode={shown(value)}): only mode 0 "
                                  "(Keras 2 and 3's only behaviour) has an equivalent")
            notes.append("dropped mode=0 (Keras 2 and 3 always behave as mode 0)")
            keras1 = True
        elif key == "forget_bias_init":
            if value != "one":
                raise Unsupported(f"forget_bias_init={shown(value)}: only 'one' "
                                  "(unit_forget_bias=True) has an equivalent")
            named["unit_forget_bias"] = True
            notes.append(was)
            keras1 = True
        elif key == "inner_activation":
            named["recurrent_activation"] = value
            note = was
            if value == "hard_sigmoid":
                note += " (Keras 3's hard_sigmoid is relu6(x + 3) / 6, Keras 1's was " \
                        "clip(0.2x + 0.5))"
            notes.append(note)
            keras1 = True
        elif key in renames and renames[key] == key:
            named[key] = value_of(key, value)
        elif key in renames and renames[key] not in (written.keys() - {key}):
            named[renames[key]] = value_of(renames[key], value)
            notes.append(was)
            keras1 = keras1 or key not in ("alpha",)
        elif key in ("weights",):
            raise Unsupported(f"`{key}=`: initial weights come from --weights-out / "
                              "`train --initial-weights`, not from the spec")
        else:
            named[key] = value_of(key, value)
    return Translated(kind, without_defaults(kind, named), notes, keras1)


def _keras1_call(args: list[Any], kwargs: dict[str, Any]) -> bool:
    return any(k in kwargs for k in ("pool_length", "stride", "border_mode", "dim_ordering"))


def without_defaults(kind: str, args: dict[str, Any]) -> dict[str, Any]:
    """`args` without the values equal to the layer's own defaults."""
    cls = LAYER_TYPES[kind]
    out = {}
    for key, value in args.items():
        info = cls.model_fields.get(key)
        if info is not None and not info.is_required() and _same(info.default, value):
            continue
        out[key] = value
    return out


def _same(default: Any, value: Any) -> bool:
    if isinstance(value, Param) or isinstance(default, Param):
        return False
    if default is None and value == "linear":
        return True  # activation: Keras writes linear for None
    if isinstance(default, int) and isinstance(value, list) and value \
            and all(type(v) is int and v == default for v in value):
        return True  # strides [1, 1] for 1
    if isinstance(default, tuple):
        default = list(default)
    if type(value) is int and isinstance(default, list) and default \
            and all(type(d) is int and d == value for d in default):
        return True  # pool_size 2 for (2, 2)
    if isinstance(value, tuple):
        value = list(value)
    return type(default) is type(value) and default == value
