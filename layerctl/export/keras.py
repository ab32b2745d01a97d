"""A Plan plus weights as a Keras 3 model file (`layerctl export --format keras`).

The model is functional, with an input named `input`, the spec's layer names and wiring, every
Keras argument of every layer (initializers, regularizers and constraints included, so training
can go on in Keras with the same settings), and the weights copied in by name. It is saved
uncompiled with `model.save` (Keras requires the `.keras` suffix); compile it with the spec's
loss and optimizer to train on.

Keras is imported here only, when an export runs. It needs a backend, chosen at import time:
`KERAS_BACKEND` when set; otherwise the backend of Keras's own config (~/.keras/keras.json,
Keras's default being tensorflow) when that package is installed; otherwise the first installed
of torch, jax, tensorflow, numpy (which needs scipy). The saved file does not depend on it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from layerctl.config import type_names
from layerctl.export import ExportError
from layerctl.plan import Node, Plan, split_ref

# backend -> the package it needs
BACKEND_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "numpy": "scipy",
                    "openvino": "openvino"}
FALLBACK_BACKENDS = ("torch", "jax", "tensorflow", "numpy")
# Arguments that are layerctl's own (wiring, legacy spellings), not Keras constructor arguments;
# `trainable` is set after construction.
NOT_KERAS = {"type", "name", "inputs", "input_shape", "input_dim", "input_length", "trainable",
             "adapt"}  # Normalization's `adapt: true`: Keras gets the adapted weights instead
# The fixed names of the cells holding a Keras recurrent layer's weights.
RECURRENT_CELLS = ("lstm_cell", "gru_cell", "simple_rnn_cell")


def load_keras():
    """Import Keras, choosing a backend first if none is configured (see the module doc)."""
    missing = ExportError("exporting to Keras needs the `keras` package, which is not "
                          "installed", hint="pip install 'layerctl[keras]'")
    if sys.modules.get("keras") is None:
        if importlib.util.find_spec("keras") is None:
            raise missing
        choose_backend()
    try:
        import keras
    except ImportError as error:
        if error.name == "keras":
            raise missing from None
        raise ExportError(f"Keras could not start its backend: {error}",
                          hint="install a backend (pip install torch) or set KERAS_BACKEND "
                          "to one that is installed") from None
    return keras


def choose_backend() -> str:
    """Set KERAS_BACKEND (when unset) to a backend that is installed; returns the backend."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    configured = _configured_backend()
    if _installed(configured):
        return configured
    for backend in FALLBACK_BACKENDS:
        if _installed(backend):
            os.environ["KERAS_BACKEND"] = backend
            return backend
    raise ExportError("Keras needs a backend and none is installed",
                      hint="pip install torch (or jax, or tensorflow)")


def _configured_backend() -> str:
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as handle:
            return str(json.load(handle).get("backend", "tensorflow"))
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def _installed(backend: str) -> bool:
    package = BACKEND_PACKAGES.get(backend)
    return package is not None and importlib.util.find_spec(package) is not None


def build_keras_model(plan: Plan, weights: Mapping[str, np.ndarray]):
    """The functional `keras.Model` of `plan`, with `weights` ("layer/weight") copied in.

    Several inputs and outputs become the model's; an `apply:` node calls its owner's Keras
    layer again (shared weights); a block instance becomes a nested functional model named
    after the instance, so Keras's variable paths read `stem/conv2d/kernel` as layerctl's keys.
    """
    keras = load_keras()
    _check_exportable(keras, plan)
    _reserve_names(keras, plan)
    tensors = {i.name: keras.Input(shape=i.shape[1:], dtype=_keras_dtype(i), name=i.name)
               for i in plan.inputs}
    _build_scope(keras, list(plan.nodes), "", tensors, {"": plan})
    outputs = [tensors[o] for o in plan.outputs]
    model = keras.Model([tensors[i.name] for i in plan.inputs] if len(plan.inputs) > 1
                        else tensors[plan.inputs[0].name],
                        outputs if len(outputs) > 1 else outputs[0], name=plan.name)
    _copy_weights(model, weights, "")
    return model


def _keras_dtype(model_input) -> str:
    if model_input.integer:
        return "int32" if model_input.dtype in ("float32", "float64") else model_input.dtype
    return model_input.dtype


def _build_scope(keras, nodes: list[Node], prefix: str, tensors: dict, layers: dict) -> None:
    """Call every node of one level (the model or one instance) on `tensors`, in order; the
    nodes of an inner instance run as one nested functional model."""
    done: set[str] = set()
    for position, node in enumerate(nodes):
        if node.name in done:
            continue
        local = node.instance[len(prefix):].lstrip("/") if node.instance else ""
        if node.instance and (not prefix or node.instance.startswith(prefix)) and local:
            instance = prefix + ("/" if prefix else "") + local.split("/")[0]
            members = [n for n in nodes[position:] if n.instance and (
                n.instance == instance or n.instance.startswith(instance + "/"))]
            _call_instance(keras, instance, members, tensors, layers)
            done |= {n.name for n in members}
            continue
        layer = layers.get(node.owner)
        if layer is None:
            layer = keras_layer(keras, node, name=node.owner.rsplit("/", 1)[-1])
            layers[node.owner] = layer
        sources = [tensors[s] for s in node.inputs]
        keras_call = getattr(node.layer, "keras_call", None)  # a layer called its own way
        if keras_call is not None:
            result = keras_call(layer, sources)
        else:
            result = layer(sources if node.list_input else sources[0])
        results = result if isinstance(result, list | tuple) else [result]
        for k, value in enumerate(results):
            tensors[node.output_refs[k]] = value


def _call_instance(keras, instance: str, members: list[Node], tensors: dict,
                   layers: dict) -> None:
    plan = layers[""]
    inside = {n.name for n in members}
    sources = list(dict.fromkeys(s for n in members for s in n.inputs
                                 if split_ref(s)[0] not in inside))
    used = {s for n in plan.nodes if n.name not in inside for s in n.inputs} | set(plan.outputs)
    exported = [n.name for n in members if n.name in used]
    inner = {s: keras.Input(shape=tuple(tensors[s].shape[1:]), dtype=tensors[s].dtype,
                            name=f"{instance.rsplit('/', 1)[-1]}_{i}")
             for i, s in enumerate(sources)}
    scope = dict(inner)
    _build_scope(keras, members, instance, scope, layers)
    exported = exported or [members[-1].name]
    model = keras.Model([inner[s] for s in sources] if len(sources) > 1 else inner[sources[0]],
                        [scope[e] for e in exported] if len(exported) > 1 else scope[exported[0]],
                        name=instance.rsplit("/", 1)[-1])
    args = [tensors[s] for s in sources]
    result = model(args if len(args) > 1 else args[0])
    results = result if isinstance(result, list | tuple) else [result]
    tensors.update(zip(exported, results, strict=True))


def _copy_weights(model, weights: Mapping[str, np.ndarray], prefix: str) -> None:
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.__class__.__name__ in ("Functional", "Model"):
            _copy_weights(layer, weights, f"{prefix}{layer.name}/")
        elif layer.weights:
            layer.set_weights([np.asarray(weights[f"{prefix}{layer.name}/{weight_key(layer, w)}"],
                                          np.float32) for w in layer.weights])
            if hasattr(layer, "finalize_state"):  # Normalization computes with copies of them
                layer.finalize_state()


def weight_key(layer, variable) -> str:
    """A Keras variable's key inside its layer, as layerctl keys weights (DESIGN §3b): its path
    below the layer without the recurrent cell (`lstm/lstm_cell/kernel` → `kernel`,
    `bidirectional/forward_lstm/lstm_cell/kernel` → `forward_lstm/kernel`)."""
    path = variable.path.removeprefix(f"{layer.path}/") if layer.path else variable.name
    parts = path.split("/")
    if len(parts) > 1 and parts[-2] in RECURRENT_CELLS:
        del parts[-2]
    return "/".join(parts)


def _reserve_names(keras, plan: Plan) -> None:
    """Keep Keras's automatic names (of the ops that compute masks, e.g. `concatenate`) off the
    spec's layer names: Keras refuses a model in which two operations share a name."""
    for name in [*plan.input_names, *(node.name.rsplit("/", 1)[-1] for node in plan.nodes)]:
        keras.backend.get_uid(name)  # the next automatic `name` becomes name_1, ...
        numbered = re.fullmatch(r"(.+)_(\d+)", name)
        if numbered:  # ... and name_k is never produced again
            while keras.backend.get_uid(numbered[1]) <= int(numbered[2]):
                pass


def export_keras(plan: Plan, weights: Mapping[str, np.ndarray], path: str | Path):
    """Build the Keras model and save it to `path` (which must end in .keras) atomically."""
    from layerctl.atomic import atomic_path

    if Path(path).suffix != ".keras":
        raise ExportError(f"{path}: a Keras model file must end in .keras (Keras requires it)")
    model = build_keras_model(plan, weights)
    with atomic_path(path) as temporary:
        model.save(str(temporary))
    return model


def keras_layer(keras, node: Node, name: str | None = None):
    """The Keras layer for one node: same class, name and arguments."""
    return _keras_layer(keras, node.layer, name or node.layer.name)


def _keras_layer(keras, layer, name: str):
    if hasattr(layer, "keras_arguments"):  # a wrapper: its inner layers become Keras layers
        arguments = layer.keras_arguments(lambda inner: _keras_layer(keras, inner, inner.name))
    else:
        arguments = _keras_arguments(layer)
    cls = getattr(keras.layers, layer.keras_class)
    built = cls(name=name, **arguments)
    # set after construction: some Keras constructors (SpatialDropout1D/2D) take no `trainable`
    built.trainable = layer.trainable
    return built


def _keras_arguments(layer) -> dict[str, Any]:
    """Every field of `layer` that is a Keras constructor argument, as Keras takes it."""
    call_options = getattr(layer, "keras_call_options", ())  # Keras takes them when called
    arguments = {}
    for field, info in type(layer).model_fields.items():
        if field in NOT_KERAS and not (field == "input_dim" and layer.keras_class == "Embedding"):
            continue
        if field not in call_options:
            arguments[info.alias or field] = _keras_value(getattr(layer, field))
    if "pool_size" in arguments and arguments["pool_size"] is None:
        arguments["pool_size"] = layer.pool_tuple()
    return arguments


def _keras_value(value: Any) -> Any:
    """A layerctl argument as Keras takes it: choice models become Keras configs."""
    if isinstance(value, BaseModel):  # initializer, regularizer or constraint
        config = value.model_dump(exclude={"type"})
        return {"class_name": _keras_class_name(type(value)), "config": config}
    if isinstance(value, list):
        return tuple(value)
    return value


def _keras_class_name(model: type[BaseModel]) -> str:
    """The Keras class name among a choice's spellings (`GlorotUniform`, `L1L2`, `MaxNorm`)."""
    names = type_names(model)
    return next((n for n in names if n[:1].isupper()), names[0])


def _check_exportable(keras, plan: Plan) -> None:
    """Raise for layers Keras would compute differently from layerctl."""
    sparsemax_ok = None
    for node in plan.nodes:
        layer = node.layer
        used = {getattr(part, name, None) for part in _with_wrapped(layer)
                for name in ("activation", "recurrent_activation")}
        if "sparsemax" in used:
            sparsemax_ok = _keras_sparsemax_ok(keras) if sparsemax_ok is None else sparsemax_ok
            if not sparsemax_ok:
                raise ExportError(
                    f"layer '{node.name}' ({layer.keras_class}) cannot be exported to Keras "
                    f"{keras.__version__}: its sparsemax computes a different function "
                    "(keras-team/keras#23425)", hint="use a Keras version with the fix, or "
                    "export to ONNX")


def _with_wrapped(layer) -> list:
    """The layer and, for a wrapper, the layers inside it (at any depth)."""
    inner = [getattr(layer, field, None) for field in ("layer", "backward_layer")]
    return [layer] + [part for value in inner if isinstance(value, BaseModel)
                      for part in _with_wrapped(value)]


def _keras_sparsemax_ok(keras) -> bool:
    """Whether this Keras's sparsemax agrees with layerctl's (Keras ≤ 3.15.1 does not)."""
    from layerctl.activations import forward

    probe = np.array([[1.0, 0.9, 0.8, -3.0]], np.float32)
    got = keras.ops.convert_to_numpy(keras.activations.sparsemax(probe))
    return bool(np.allclose(got, forward("sparsemax", probe), atol=1e-6))
