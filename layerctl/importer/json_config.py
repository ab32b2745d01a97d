"""A Keras model config (`model.to_json()` of Keras 1, 2 or 3) as an `ImportedModel`.

The layouts differ by version: Keras 3 writes `{"module", "class_name", "config"}` with layers
whose `inbound_nodes` are `{"args": [keras tensors with keras_history]}`; Keras 2 writes
`inbound_nodes` as `[[[layer, node, tensor, kwargs], ...], ...]` and `batch_input_shape`;
Keras 1 the same without kwargs (a Sequential's config may be the bare layer list) and its own
argument names, which `translate` renames. A layer called twice (node index > 0) becomes an
`apply:` of the first call; nodes are placed in an order where every input comes first.
Keras values that layerctl has no field for are dropped only when they hold Keras's neutral
default (`synchronized: false`, a float32 dtype policy); any other value is refused.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from layerctl.errors import Location, Problem
from layerctl.importer.graph import Node, Ref, Wiring, check_call_arguments
from layerctl.importer.translate import Param, Unsupported, translate_layer
from layerctl.importer.writer import Block, Entry, ImportedModel
from layerctl.layers import LAYER_TYPES
from layerctl.layers.base import keras_snake_case

MAX_LAYERS = 10_000

# Keras config keys layerctl has no field for -> the value that means "nothing special"
NEUTRAL: dict[str, Any] = {
    "trainable": True, "quantization_config": None, "lora_rank": None, "lora_alpha": None,
    "lora_enabled": False, "synchronized": False, "renorm": False, "renorm_clipping": None,
    "renorm_momentum": 0.99, "seed": None, "noise_shape": None, "sparse": False,
    "ragged": False, "optional": False, "input_dtype": None, "activity_regularizer": None,
    "autocast": True, "use_cudnn": "auto", "unroll": False, "stateful": False,
    "go_backwards": False, "time_major": False, "implementation": 2, "use_gate": False,
    "sliding_window": None,
}
MODEL_CLASSES = {"Sequential", "Functional", "Model"}
KERAS1_MERGE = {"sum": "Add", "concat": "Concatenate", "mul": "Multiply", "ave": "Average",
                "max": "Maximum", "dot": "Dot"}


def read_json(text: str, file: str, stem: str):
    """(ImportedModel or None, problems, warnings)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        return None, [Problem(f"not valid JSON: {error.msg}",
                              Location(file, error.lineno, error.colno))], []
    try:
        return read_config(data, file, stem), [], []
    except Unsupported as error:
        return None, [Problem(str(error), Location(file))], []


def read_config(data: Any, file: str, stem: str) -> ImportedModel:
    if not isinstance(data, dict) or data.get("class_name") not in MODEL_CLASSES:
        raise Unsupported("not a Keras model config: expected `class_name` Sequential, "
                          "Functional or Model")
    config = data.get("config")
    model = ImportedModel(header=[f"Imported by `layerctl import` from {file}."])
    if data["class_name"] == "Sequential":
        layers = config if isinstance(config, list) else (config or {}).get("layers")
        name = None if isinstance(config, list) else (config or {}).get("name")
        if not isinstance(layers, list) or not layers:
            raise Unsupported("the Sequential config holds no `layers` list")
        _sequential(layers, model)
    else:
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise Unsupported("the model config holds no `layers` list")
        name = config.get("name")
        _functional(config, model)
    if name and isinstance(name, str) and not name.startswith(("sequential", "functional",
                                                                "model")):
        model.name = name
    else:
        model.name = stem
    return model


def _layer_list(layers: list) -> None:
    if len(layers) > MAX_LAYERS:
        raise Unsupported(f"{len(layers):,} layers; at most {MAX_LAYERS:,} are read")
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict) or not isinstance(layer.get("class_name"), str) \
                or not isinstance(layer.get("config", {}), dict):
            raise Unsupported(f"layer {i + 1}: not a `{{class_name, config}}` mapping")


def _input_shape(config: dict, where: str) -> list:
    for key in ("batch_shape", "batch_input_shape"):
        if isinstance(config.get(key), list):
            return list(config[key])[1:]
    raise Unsupported(f"{where}: the input has no batch_shape")


def _h5_names(layers: list) -> list[str]:
    """The group each layer's weights have in a Keras 3 `model.weights.h5`: its class in snake
    case, numbered in the model's layer order (not the layer's name)."""
    counts: dict[str, int] = {}
    out = []
    for layer in layers:
        base = keras_snake_case(layer["class_name"])
        out.append(base if base not in counts else f"{base}_{counts[base]}")
        counts[base] = counts.get(base, 0) + 1
    return out


def _sequential(layers: list, model: ImportedModel, nested: bool = False) -> None:
    """A Sequential's layers; `nested`: used as a layer of another model (see
    `_drop_auto_names`)."""
    _layer_list(layers)
    groups = _h5_names([x for x in layers if x["class_name"] != "InputLayer"])
    wiring = Wiring()
    keras1 = False
    for i, layer in enumerate(layers):
        where = f"layer {i + 1} ({layer['class_name']})"
        if layer["class_name"] == "InputLayer":
            if i != 0:
                raise Unsupported(f"{where}: an InputLayer after the first layer")
            model.input_shape = _input_shape(layer.get("config", {}), where)
            continue
        node = _node(layer, where)
        node.group = groups[len(wiring.nodes)]
        keras1 = keras1 or node.keras1
        if wiring.nodes:
            node.inputs = [Ref(wiring.nodes[-1])]
        wiring.add(node)
    if nested:
        _drop_auto_names(wiring.nodes)
    _group_blocks(wiring.nodes, model)
    model.layers, names = wiring.finish("input", drop_default_names=True)
    model.weight_groups = _weight_groups(wiring.nodes, names)
    model.keras_names = {names[n]: n.keras_name for n in wiring.nodes}
    model.keras1 = keras1
    _keras1_flatten(model, keras1)


def _functional(config: dict, model: ImportedModel, nested: bool = False) -> None:
    layers = config["layers"]
    _layer_list(layers)
    groups = _h5_names(layers)
    inputs: dict[str, dict] = {}
    calls: list[tuple[int, int, dict, CallSite]] = []  # (layer index, node index, layer, call)
    masks = _mask_ops(layers)
    for i, layer in enumerate(layers):
        name = layer.get("name") or layer.get("config", {}).get("name")
        if not isinstance(name, str):
            raise Unsupported(f"layer {i + 1}: no name")
        if name in masks:
            continue
        if layer["class_name"] == "InputLayer":
            spec = {"name": name, "shape": _input_shape(layer.get("config", {}), name)}
            dtype = layer.get("config", {}).get("dtype")
            if isinstance(dtype, str) and dtype != "float32":
                spec["dtype"] = dtype
            inputs[name] = spec
            continue
        for k, node in enumerate(layer.get("inbound_nodes") or []):
            calls.append((i, k, layer, _history(node, name)))
    uses = {layer.get("name"): (layer["class_name"], len(layer.get("inbound_nodes") or []))
            for layer in layers}

    def call_of(ref: tuple) -> tuple[str, int]:
        """(layer, index of its call) of a reference. A nested Functional model has a call of
        its own before the outer model's (its construction), which Keras counts in some
        references and not in others; its loader subtracts one, as Python indexes (-1: the
        last call), and so does this."""
        kind, count = uses.get(ref[0], ("", 0))
        if kind in ("Functional", "Model") and count:
            return ref[0], (ref[1] - 1) % count
        return ref[0], ref[1]
    order = {(layers[i].get("name") or layers[i]["config"]["name"], k): (i, k, layer, call)
             for i, k, layer, call in calls}
    listed = _tensor_list(config.get("input_layers"))
    input_names = [entry[0] for entry in listed]
    for name in input_names:
        if name not in inputs:
            raise Unsupported(f"input `{name}` is not an InputLayer of the config")
    wiring = Wiring(input_names=input_names)
    placed: dict[tuple[str, int], Node] = {}
    first: dict[str, Node] = {}
    options: dict[str, dict] = {}
    keras1 = False
    pending = sorted(order.items(), key=lambda item: item[1][:2])
    while pending:
        index = next((n for n, (_, (_, _, _, call)) in enumerate(pending)
                      if all(r[0] in inputs or call_of(r) in placed for r in call.refs)), None)
        if index is None:
            raise Unsupported(f"layer `{pending[0][0][0]}` takes inputs no layer makes (or the "
                              "graph has a cycle)")
        key, (i, k, layer, call) = pending[index]
        pending.pop(index)
        wired = [Ref(input=r[0]) if r[0] in inputs else Ref(placed[call_of(r)], r[2])
                 for r in call.refs]
        if k == 0:
            node = _node(layer, key[0], call.options)
            node.name = key[0]
            node.group = groups[i]
            keras1 = keras1 or node.keras1
            first[key[0]] = node
            options[key[0]] = call.options
        else:
            if first[key[0]].kind == "block":
                raise Unsupported(f"layer `{key[0]}`: a nested model called twice (one block "
                                  "instance with shared weights) is not read yet")
            if call.options != options[key[0]]:
                raise Unsupported(f"layer `{key[0]}`: called again with other call options "
                                  "(an `apply:` shares its layer's)")
            node = Node({"apply": None}, None, [], [], None, kind="apply", owner=first[key[0]])
        owner = first[key[0]] if k else node
        if owner.kind == "layer":
            check_call_arguments(owner.args["type"], call.roles, f"layer `{key[0]}`")
        node.inputs, node.roles, node.listed = wired, call.roles, call.listed
        placed[key] = node
        wiring.add(node)
    specs = [inputs[n] for n in input_names]
    single = len(specs) == 1 and "dtype" not in specs[0]
    if single:
        model.input_shape = specs[0]["shape"]
        for node in wiring.nodes:
            node.inputs = [Ref(input="input") if r.input == input_names[0] else r
                           for r in node.inputs]
        wiring.input_names = ["input"]
    else:
        model.inputs = specs
    outs = _tensor_list(config.get("output_layers"))
    if nested:
        _drop_auto_names(wiring.nodes)
    _group_blocks(wiring.nodes, model)
    model.layers, names = wiring.finish("input" if single else None, drop_default_names=True)
    model.weight_groups = _weight_groups([n for n in wiring.nodes if n.kind != "apply"], names)
    model.keras_names = {names[n]: n.keras_name for n in wiring.nodes if n.kind == "layer"}
    model.keras1 = keras1
    outputs = []
    for entry in outs:
        node = placed.get(call_of(entry))
        if node is None:
            raise Unsupported(f"output `{entry[0]}` is not a layer of the config")
        outputs.append(names[node] if entry[2] == 0 else f"{names[node]}.{entry[2]}")
    if outputs != [names[wiring.nodes[-1]]]:
        model.outputs = outputs
    _keras1_flatten(model, keras1)


# ---- nested models: block instances ------------------------------------------------------
STRUCTURE = ("type", "name", "inputs", "apply", "block")  # the keys a block never varies


def _nested(layer: dict, where: str) -> Node:
    """A Functional or Sequential model used as a layer (what `layerctl export` writes for a
    block instance) as a block instance: its inner layers with its inputs named `x` (`x1`,
    `x2`, ... for several). Instances are merged into shared blocks by `_group_blocks`."""
    config = layer.get("config")
    inner = ImportedModel()
    if layer["class_name"] == "Sequential":
        layers = config if isinstance(config, list) else (config or {}).get("layers")
        if not isinstance(layers, list) or not layers:
            raise Unsupported(f"{where}: the nested Sequential holds no `layers` list")
        _sequential(layers, inner, nested=True)
        inputs = ["x"]
    else:
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise Unsupported(f"{where}: the nested model holds no `layers` list")
        config, inputs = _canonical_inputs(config)
        _functional(config, inner, nested=True)
    if any(e.args.get("block") is not None for e in inner.layers):
        raise Unsupported(f"{where}: a model nested in a nested model is not read yet")
    if inner.outputs is not None and len(inner.outputs) > 1:
        raise Unsupported(f"{where}: a nested model with several outputs is not read yet")
    for entry in inner.layers:  # the one-input form names its input `input`
        refs = entry.args.get("inputs")
        if isinstance(refs, list):
            entry.args["inputs"] = ["x" if r == "input" else r for r in refs]
    name = config.get("name") if isinstance(config, dict) else None  # the instance's
    node = Node({"block": None}, name, [], [], None, kind="block")
    node.instance = Block({}, inputs, inner.layers, inner.outputs[0] if inner.outputs else None)
    node.inner_groups = inner.weight_groups
    return node


def _drop_auto_names(nodes: list[Node]) -> None:
    """Inside a nested model, the names Keras numbered across the whole session (`dense_3`)
    give way to layerctl's, numbered within the block, so that instances built one after the
    other read alike and share one block; names written by hand stay. (The weights follow the
    names: each node keeps its weights group.)"""
    for node in nodes:
        if node.kind == "layer" and node.name:
            base = keras_snake_case(LAYER_TYPES[node.args["type"]].keras_class)
            if re.fullmatch(rf"{re.escape(base)}(_\d+)?", node.name):
                node.name = None


def _canonical_inputs(config: dict) -> tuple[dict, list[str]]:
    """The nested config with its inputs renamed `x` / `x1`, `x2`, ... (their names in Keras
    are the instance's own, `res1_0`), so that instances of one block read alike."""
    listed = _tensor_list(config.get("input_layers"))
    names = [entry[0] for entry in listed]
    canonical = ["x"] if len(names) == 1 else [f"x{i + 1}" for i in range(len(names))]
    rename = dict(zip(names, canonical, strict=True))

    def renamed(value: Any) -> Any:
        if isinstance(value, dict):
            out = {k: renamed(v) for k, v in value.items()}
            if "keras_history" in out and out["keras_history"] and out["keras_history"][0] \
                    in rename:
                out["keras_history"] = [rename[out["keras_history"][0]],
                                        *out["keras_history"][1:]]
            if out.get("class_name") == "InputLayer" and out.get("name") in rename:
                out["name"] = rename[out["name"]]
                out["config"] = {**out.get("config", {}), "name": out["name"]}
            return out
        if isinstance(value, list):
            return [renamed(v) for v in value]
        return value

    out = renamed(config)
    out["input_layers"] = [[rename[e[0]], *e[1:]] for e in listed]
    return out, canonical


def _group_blocks(nodes: list[Node], model: ImportedModel) -> None:
    """Instances with the same structure share one block; the argument values that differ
    between them become its `params` (defaults: the first instance's values)."""
    groups: dict[tuple, list[Node]] = {}
    for node in nodes:
        if node.kind == "block":
            groups.setdefault(_structure(node.instance), []).append(node)
    taken = set(model.blocks)  # (a block may share its name with an instance: the default)
    for members in groups.values():
        first = members[0].instance
        varying: dict[tuple, str] = {}  # (entry index, key) -> param name
        by_values: dict[tuple, str] = {}
        for i, entry in enumerate(first.layers):
            for key in entry.args:
                if key in STRUCTURE:
                    continue
                values = tuple(json.dumps(m.instance.layers[i].args[key], sort_keys=True)
                               for m in members)
                if len(set(values)) > 1:
                    if values not in by_values:
                        owner = entry.args.get("name") or keras_snake_case(entry.args["type"])
                        by_values[values] = key if key not in by_values.values() \
                            else f"{owner}_{key}"
                    varying[(i, key)] = by_values[values]
        name = _block_name([m.name for m in members], taken)
        taken.add(name)
        layers = [Entry({k: Param(varying[(i, k)]) if (i, k) in varying else v
                         for k, v in e.args.items()}, e.notes, e.line)
                  for i, e in enumerate(first.layers)]
        params = {p: first.layers[i].args[k] for (i, k), p in varying.items()}
        model.blocks[name] = Block(params, first.inputs, layers, first.output)
        for member in members:
            own = {p: member.instance.layers[i].args[k] for (i, k), p in varying.items()}
            member.args = {"block": name, **{p: v for p, v in own.items() if v != params[p]}}


def _structure(block: Block) -> tuple:
    return (tuple(block.inputs), block.output, tuple(
        (json.dumps({k: e.args[k] for k in STRUCTURE if k in e.args}, sort_keys=True),
         tuple(sorted(e.args))) for e in block.layers))


def _block_name(instances: list[str], taken: set[str]) -> str:
    """The instances' common stem (`res1`, `res2` -> `res`), else `block`; never a name in use."""
    stem = os.path.commonprefix(instances).rstrip("_-0123456789")
    name = stem if len(stem) >= 2 else "block"
    while name in taken:
        name += "_block"
    return name


def _weight_groups(nodes: list[Node], names: dict[Node, str]) -> dict[str, str]:
    """layerctl node name -> where a Keras 3 weights file keeps its weights; a block
    instance's inner layers sit under `<instance group>/layers/<inner group>`."""
    out = {}
    for node in nodes:
        if node.kind == "block":
            for inner, group in node.inner_groups.items():
                out[f"{names[node]}/{inner}"] = f"{node.group}/layers/{group}"
        elif node.kind == "layer":
            out[names[node]] = node.group
    return out


def _tensor_list(value: Any) -> list:
    """A config's `input_layers` / `output_layers` as a list of [layer, node, tensor]: Keras 3
    writes a single one bare, as [name, 0, 0]."""
    value = value or []
    return [value] if value and not isinstance(value[0], list) else value


def _mask_ops(layers: list) -> set[str]:
    """The ops that only recompute a mask layerctl propagates itself, left out: `NotEqual(x,
    0)` beside an `Embedding(mask_zero=True)` of `x`, and `Any(NotEqual(x, v), axis=-1)` beside
    a `Masking(mask_value=v)` of `x` (how `layerctl export` passes masks on explicitly in the
    Keras models it writes). Any other op is refused."""
    makers: dict[tuple, set] = {}  # (layer, node) fed -> {("embedding", 0), ("masking", v)}
    for layer in layers:
        config = layer.get("config", {})
        kind = None
        if layer["class_name"] == "Embedding" and config.get("mask_zero"):
            kind = ("embedding", 0)
        elif layer["class_name"] == "Masking":
            kind = ("masking", config.get("mask_value", 0.0))
        if kind:
            for node in layer.get("inbound_nodes") or []:
                for r in _history(node, str(layer.get("name"))).refs:
                    makers.setdefault(r[:2], set()).add(kind)
    out: set[str] = set()
    masking_ops: set[str] = set()
    for layer in layers:
        name = layer.get("name")
        nodes = layer.get("inbound_nodes") or []
        args = nodes[0].get("args") if len(nodes) == 1 and isinstance(nodes[0], dict) else None
        if layer["class_name"] == "NotEqual":
            history = args[0].get("config", {}).get("keras_history") \
                if args and len(args) == 2 and isinstance(args[0], dict) else None
            kinds = makers.get(tuple(history[:2]), set()) if history else set()
            if ("embedding", 0) in kinds and args[1] == 0:
                out.add(name)
                continue
            if ("masking", args[1] if args else None) in kinds:
                masking_ops.add(name)
                out.add(name)
                continue
        elif layer["class_name"] == "Any":
            history = args[0].get("config", {}).get("keras_history") \
                if args and len(args) == 1 and isinstance(args[0], dict) else None
            if history and history[0] in masking_ops \
                    and layer.get("config", {}).get("axis") == -1:
                out.add(name)
                continue
        else:
            continue
        raise Unsupported(f"layer `{name}`: a {layer['class_name']} op that is not a "
                          "mask layerctl computes is not read")
    return out


@dataclass
class CallSite:
    """One call of a layer: the tensors feeding it as (layer, node index, tensor index), each
    with its call argument (None: positional), and the non-tensor call options it was given."""

    refs: list[tuple[str, int, int]] = field(default_factory=list)
    roles: list[str | None] = field(default_factory=list)
    listed: set[str] = field(default_factory=set)  # arguments given as a list (initial_state)
    options: dict[str, Any] = field(default_factory=dict)


def _tensor(value: Any, layer: str) -> tuple[str, int, int]:
    history = value.get("config", {}).get("keras_history") if isinstance(value, dict) else None
    if not isinstance(history, list) or len(history) != 3:
        raise Unsupported(f"layer `{layer}`: an input that is not a Keras tensor")
    return history[0], history[1], history[2]


def _is_tensor(value: Any) -> bool:
    return isinstance(value, dict) and value.get("class_name") == "__keras_tensor__"


def _history(node: Any, layer: str) -> CallSite:
    """The tensors feeding one call, in any version's layout."""
    call = CallSite()
    if isinstance(node, dict):  # Keras 3
        args = node.get("args") or []
        tensors = args[0] if len(args) == 1 and isinstance(args[0], list) else args
        for tensor in tensors:
            call.refs.append(_tensor(tensor, layer))
            call.roles.append(None)
        for key, value in (node.get("kwargs") or {}).items():
            if key == "mask" or value is None or (key == "training" and value is False):
                continue  # layerctl propagates masks itself; a None tensor is no input
            items = value if isinstance(value, list) and value and all(map(_is_tensor, value)) \
                else [value] if _is_tensor(value) else None
            if items is None:
                if key == "training":
                    raise Unsupported(f"layer `{layer}`: call arguments (training) are not read")
                call.options[key] = value
                continue
            if isinstance(value, list):
                call.listed.add(key)
            for tensor in items:
                call.refs.append(_tensor(tensor, layer))
                call.roles.append(key)
        return call
    if isinstance(node, list):  # Keras 1 and 2: [[layer, node, tensor(, kwargs)], ...]
        for entry in node:
            if not isinstance(entry, list) or len(entry) < 3:
                raise Unsupported(f"layer `{layer}`: an inbound node is not [layer, node, "
                                  "tensor]")
            if len(entry) > 3 and entry[3]:
                raise Unsupported(f"layer `{layer}`: call arguments ({', '.join(entry[3])}) "
                                  "are not read")
            call.refs.append((entry[0], entry[1], entry[2]))
            call.roles.append(None)
        return call
    raise Unsupported(f"layer `{layer}`: inbound nodes in an unknown layout")


def value(raw: Any, where: str) -> Any:
    """A Keras serialized value (initializer, regularizer, constraint) as a spec value."""
    if isinstance(raw, dict) and "class_name" in raw:
        name, config = raw["class_name"], raw.get("config") or {}
        if name == "DTypePolicy":
            return config.get("name")
        if name == "__tuple__":
            return list(config.get("value", []))
        kept = {k: v for k, v in config.items() if v is not None}
        kind = {"L1L2": "l1_l2"}.get(name, keras_snake_case(name))
        if kind == "variance_scaling" and kept.get("scale") == 1.0 \
                and kept.get("mode") == "fan_avg" and kept.get("distribution") == "uniform" \
                and len(kept) == 3:
            kind, kept = "glorot_uniform", {}  # how Keras 2 wrote its default
        return kind if not kept else {"type": kind, **kept}
    if isinstance(raw, dict) and "name" in raw:  # Keras 1 regularizers and constraints
        name = raw["name"]
        rest = {k: v for k, v in raw.items() if k != "name"}
        if name == "WeightRegularizer":
            l1, l2 = rest.get("l1", 0.0), rest.get("l2", 0.0)
            return {"type": "l1_l2", "l1": l1, "l2": l2} if l1 and l2 else \
                {"type": "l1", "l1": l1} if l1 else {"type": "l2", "l2": l2}
        if name == "MaxNorm":
            return {"type": "max_norm", "max_value": rest.get("m", 2), "axis": rest.get("axis", 0)}
        if name in ("NonNeg", "UnitNorm"):
            return keras_snake_case(name)
        raise Unsupported(f"{where}: `{name}` is not a value layerctl knows")
    if isinstance(raw, list):
        return [value(v, where) for v in raw]
    return raw


def _node(layer: dict, where: str, options: dict | None = None) -> Node:
    """The spec entry of one layer config; `options`: the call options of its first call
    (`use_causal_mask`), which are layer keys in a spec. A model used as a layer is a block
    instance (`_nested`)."""
    class_name = layer["class_name"]
    if class_name in MODEL_CLASSES:
        return _nested(layer, where)
    config = dict(layer.get("config") or {})
    if class_name == "Merge":
        mode = config.pop("mode", "sum")
        if mode not in KERAS1_MERGE:
            raise Unsupported(f"{where}: Merge(mode={mode!r}) has no Keras 3 layer")
        class_name = KERAS1_MERGE[mode]
        if "concat_axis" in config:
            config["axis"] = config.pop("concat_axis")
        if "dot_axes" in config:
            config["axes"] = config.pop("dot_axes")
        for key in ("mode_type", "output_shape_type", "output_mask_type"):
            config.pop(key, None)  # how Keras 1 serialized a Python function mode
        for key in ("output_shape", "output_mask", "arguments"):
            if config.pop(key, None):
                raise Unsupported(f"{where}: Merge with `{key}` (Python code) is not read")
    name = config.pop("name", None)
    keras_kind = LAYER_TYPES.get(class_name)
    if keras_kind is None and class_name not in ("Convolution1D", "Convolution2D"):
        raise Unsupported(f"{where}: `{class_name}` is not a layer type layerctl supports")
    fields = set(keras_kind.model_fields) if keras_kind else set()
    kwargs: dict[str, Any] = {}
    unread = sorted(set(options or ()) - set(getattr(keras_kind, "keras_call_options", ())))
    if unread:
        raise Unsupported(f"layer `{where}`: call arguments ({', '.join(unread)}) are not read")
    kwargs.update(options or {})
    for key in ("layer", "backward_layer"):  # a wrapper's layers: spec mappings already
        if isinstance(config.get(key), dict) and "class_name" in config[key]:
            kwargs[key] = _inner(class_name, key, config.pop(key), where)
    if "backward_layer" in kwargs and _mirrors(kwargs["layer"], kwargs["backward_layer"]):
        kwargs.pop("backward_layer")
    for key, raw in config.items():
        converted = value(raw, f"{where} `{key}`")
        if key in ("dtype", "input_dtype"):
            if converted not in (None, "float32"):
                raise Unsupported(f"{where}: dtype {converted!r}: layerctl computes in float32")
            continue
        if key == "trainable" and converted is False:
            kwargs[key] = False
            continue
        if key == "data_format" and converted == "channels_last":
            continue  # the model default
        if key == "activation" and converted == "linear":
            converted = None
        if key in fields or key not in NEUTRAL:
            kwargs[key] = converted
        elif converted != NEUTRAL[key]:
            raise Unsupported(f"{where}: `{key}: {json.dumps(converted)}` is not supported")
    for key in ("kernel_size", "strides", "dilation_rate", "pool_size", "size"):
        v = kwargs.get(key)
        if isinstance(v, list) and v and all(type(x) is int and x == v[0] for x in v):
            kwargs[key] = v[0]  # Keras's standardize_tuple makes (3, 3) of 3
    if class_name in ("MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D") \
            and kwargs.get("strides") == kwargs.get("pool_size"):
        kwargs.pop("strides", None)
    if class_name == "MultiHeadAttention":
        _attention_defaults(kwargs, layer.get("build_config"))
    translated = translate_layer(class_name, [], kwargs)
    node = Node({"type": translated.type, **translated.args}, name, [], translated.notes)
    node.keras1 = translated.keras1
    node.keras_name = name
    return node


def _attention_defaults(kwargs: dict, build: Any) -> None:
    """Keras writes MultiHeadAttention's resolved defaults (value_dim = key_dim, the attention
    axes of the built query's rank); the spec leaves them out, as the source did."""
    if kwargs.get("value_dim") == kwargs.get("key_dim"):
        kwargs.pop("value_dim", None)
    shape = (build or {}).get("shapes_dict", {}).get("query_shape") \
        if isinstance(build, dict) else None
    axes = kwargs.get("attention_axes")
    if isinstance(shape, list) and axes == list(range(1, len(shape) - 1)):
        kwargs.pop("attention_axes")


def _inner(wrapper: str, key: str, raw: dict, where: str) -> dict:
    """A wrapper's `layer` / `backward_layer` config as a spec mapping. Keras renames the
    wrapped layer `forward_<name>` / `backward_<name>` (Bidirectional); the mapping keeps
    `<name>` only when it is not the default, its type in snake case."""
    if raw["class_name"] in MODEL_CLASSES:
        raise Unsupported(f"{where} `{key}`: a wrapped model is not read yet")
    node = _node(raw, f"{where} `{key}`")
    entry = {**node.args}
    name = node.keras_name or ""
    if wrapper == "Bidirectional":
        name = name.removeprefix("backward_" if key == "backward_layer" else "forward_")
    if name and name != keras_snake_case(LAYER_TYPES[entry["type"]].keras_class):
        entry["name"] = name
    return entry


def _mirrors(forward: dict, backward: dict) -> bool:
    """The backward layer is the copy Bidirectional makes by default: the forward layer's
    arguments with go_backwards flipped (its name aside)."""
    flipped = {k: v for k, v in backward.items() if k not in ("name", "go_backwards")}
    return backward.get("go_backwards") is True and flipped == {
        k: v for k, v in forward.items() if k not in ("name", "go_backwards")}


def _keras1_flatten(model: ImportedModel, keras1: bool) -> None:
    """Keras 1's Flatten kept the stored order: after channels_first layers, say so."""
    if not keras1 or not any(e.args.get("data_format") == "channels_first"
                             for e in model.layers):
        return
    for entry in model.layers:
        if entry.args.get("type") == "Flatten" and "data_format" not in entry.args:
            entry.args["data_format"] = "channels_last"
            entry.notes.append("Keras 1's Flatten kept the stored (channels-first) order")
