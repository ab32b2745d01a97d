"""Shape inference: a validated spec becomes a `Plan` — its inputs, its named, resolved nodes in
dependency order with their input and output shapes, masks and weight shapes, and its outputs.
No NumPy, no weights.

This is what `shapes` and `validate` need, and what the executable graph is built from. A node is
one use of a layer: a layer of `layers:`, an `apply:` of one (same weights, DESIGN §3b), or a
layer inside a block instance (named `instance/layer`, see `blocks`). References between nodes
are strings, `node` or `node.k` for output k of a layer with several outputs. Every problem
points at its line in the spec: unknown or cyclic `inputs`, duplicate names, shapes a layer
cannot take, and (as warnings) masks that a layer drops.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from layerctl.blocks import Entry, Expander, Scope, split_ref
from layerctl.errors import Location, Problem, SpecError, did_you_mean
from layerctl.layers import IncompatibleShape, Layer, Shape, WeightSpec, format_shape
from layerctl.layers.base import keras_snake_case
from layerctl.spec import ModelSpec
from layerctl.yamlmarks import Marks

INPUT = "input"  # the name of the one input `input_shape` declares

__all__ = ["INPUT", "ModelInput", "Node", "Plan", "build_plan", "split_ref"]


@dataclass(frozen=True)
class ModelInput:
    """One model input: name, shape with the batch axis, and whether it holds indices."""

    name: str
    shape: Shape
    dtype: str = "float32"
    integer: bool = False


@dataclass(frozen=True)
class Node:
    """One use of a layer in the model."""

    layer: Layer  # resolved: named (its owner's name), model defaults applied, aliases concrete
    index: int  # position among the expanded entries
    inputs: tuple[str, ...]  # references, in the layer's positional order
    input_shapes: tuple[Shape, ...]
    output_shapes: tuple[Shape, ...]
    receives_mask: bool
    emits_mask: bool
    weights: tuple[WeightSpec, ...]  # () for an `apply:` node: its owner holds them
    name: str = ""
    owner: str = ""  # the node whose weights this one uses (itself, unless `apply:`)
    instance: str | None = None  # the block instance holding it
    roles: tuple[str, ...] = ()  # each input's call argument (mapping `inputs:`), else "0", ...
    output_masks: tuple[bool, ...] = ()  # per output: whether it carries a mask (states: none)

    @property
    def output_shape(self) -> Shape:
        return self.output_shapes[0]

    @property
    def list_input(self) -> bool:
        """Whether the layer's forward takes a list of inputs."""
        return self.layer.takes_list(len(self.inputs))

    @property
    def output_refs(self) -> tuple[str, ...]:
        """The references of the node's outputs: `name`, then `name.1`, `name.2`, ..."""
        return tuple(self.name if k == 0 else f"{self.name}.{k}"
                     for k in range(len(self.output_shapes)))

    def arguments(self, values: dict[str, Any], masks: dict[str, Any]) -> tuple[Any, Any]:
        """(x, mask) as the layer's forward takes them, read by reference from `values` and
        `masks`: lists for a layer taking a list, else its one input's."""
        xs = [values[s] for s in self.inputs]
        ms = [masks[s] for s in self.inputs]
        return (xs, ms) if self.list_input else (xs[0], ms[0])

    def keep_outputs(self, y: Any, mask: Any, values: dict[str, Any],
                     masks: dict[str, Any]) -> None:
        """Store the layer's output (an array, or one per output) and its mask (one for all
        outputs, or one each) under the node's output references."""
        if len(self.output_shapes) == 1:
            values[self.name], masks[self.name] = y, mask
            return
        mask = mask if isinstance(mask, list | tuple) else [mask] * len(y)
        for ref, y_k, mask_k in zip(self.output_refs, y, mask, strict=True):
            values[ref], masks[ref] = y_k, mask_k

    @property
    def shared(self) -> bool:
        return self.owner != self.name

    @property
    def params(self) -> int:
        return sum(math.prod(w.shape) for w in self.weights)

    @property
    def trainable_params(self) -> int:
        if not self.layer.trainable:
            return 0
        return sum(math.prod(w.shape) for w in self.weights if w.trainable)


@dataclass(frozen=True)
class Plan:
    """The model's structure: inputs, nodes in execution order, and outputs."""

    name: str
    inputs: tuple[ModelInput, ...]
    nodes: tuple[Node, ...]
    outputs: tuple[str, ...]
    warnings: tuple[Problem, ...] = field(default=())
    instances: tuple[tuple[str, str], ...] = ()  # (instance name, block name), outermost first

    @property
    def input_shape(self) -> Shape:
        """The first input's shape (the only one for `input_shape:` models)."""
        return self.inputs[0].shape

    @property
    def integer_input(self) -> bool:
        return self.inputs[0].integer

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.inputs)

    @property
    def output(self) -> str:
        return self.outputs[0]

    @property
    def output_node(self) -> Node:
        return self.node(split_ref(self.output)[0])

    @property
    def output_shape(self) -> Shape:
        return self.shape_of(self.output)

    def node(self, name: str) -> Node:
        return self._by_name[name]

    def shape_of(self, ref: str) -> Shape:
        """The shape of a reference: a model input, `node` or `node.k`."""
        for model_input in self.inputs:
            if model_input.name == ref:
                return model_input.shape
        name, index = split_ref(ref)
        return self._by_name[name].output_shapes[index]

    @property
    def _by_name(self) -> dict[str, Node]:
        cached = self.__dict__.get("_nodes_by_name")
        if cached is None:
            cached = {node.name: node for node in self.nodes}
            object.__setattr__(self, "_nodes_by_name", cached)
        return cached

    @property
    def total_params(self) -> int:
        return sum(n.params for n in self.nodes)

    @property
    def trainable_params(self) -> int:
        return sum(n.trainable_params for n in self.nodes)

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params


def build_plan(spec: ModelSpec, marks: Marks | None = None) -> Plan:
    """Infer every shape of `spec`. Raises SpecError with every problem found."""
    marks = marks or Marks(spec.name or "<spec>")
    problems: list[Problem] = []
    inputs = _model_inputs(spec, marks, problems)
    expander = Expander(spec, marks, [i.name for i in inputs])
    entries = expander.expand() if not problems else []
    problems += expander.problems
    if not problems:
        _wire(entries, marks, problems)
    order = _topological_order(entries, marks, problems) if not problems else []
    if problems:
        raise SpecError(problems=problems)
    nodes, warnings = _place_all(spec, entries, order, inputs, marks, problems)
    if problems:
        raise SpecError(problems=problems)
    nodes, renamed = _rename_resolved(spec, nodes, entries, expander.top)
    outputs = _outputs(spec, expander, renamed, nodes, marks, problems)
    if problems:
        raise SpecError(problems=problems)
    inputs = _integer_inputs(spec, inputs, nodes)
    warnings += _unused(nodes, entries, outputs, inputs, marks)
    return Plan(spec.name or "model", tuple(inputs), tuple(nodes), tuple(outputs),
                tuple(warnings), tuple(expander.instances))


# ---- inputs ----------------------------------------------------------------------------------
def _model_inputs(spec: ModelSpec, marks: Marks, problems: list[Problem]) -> list[ModelInput]:
    if spec.inputs is not None:
        return _declared_inputs(spec, marks, problems)
    return [ModelInput(INPUT, (None,) + _input_shape(spec, marks, problems))]


def _declared_inputs(spec: ModelSpec, marks: Marks, problems: list[Problem]) -> list[ModelInput]:
    for key in ("input_shape", "input_dim"):
        if getattr(spec, key) is not None:
            problems.append(Problem(f"`{key}` and `inputs` both declare the model inputs",
                                    marks.key((key,)), "keep `inputs`", code="LC107"))
    seen: set[str] = set()
    inputs = []
    for index, declared in enumerate(spec.inputs):
        if declared.name in seen:
            problems.append(Problem(f"duplicate input name '{declared.name}'",
                                    marks.value(("inputs", index, "name")), code="LC107"))
        elif "/" in declared.name or "." in declared.name or not declared.name:
            problems.append(Problem(f"invalid input name {declared.name!r}: it must be "
                                    "non-empty, without '/' or '.'",
                                    marks.value(("inputs", index, "name")), code="LC107"))
        seen.add(declared.name)
        inputs.append(ModelInput(declared.name, (None,) + tuple(declared.shape), declared.dtype,
                                 declared.integer))
    if not inputs:
        problems.append(Problem("`inputs` is empty", marks.key(("inputs",)), code="LC107"))
    return inputs


def _input_shape(spec: ModelSpec, marks: Marks, problems: list[Problem]) -> Shape:
    declared = []
    if spec.input_shape is not None:
        declared.append((spec.input_shape, marks.key(("input_shape",))))
    if spec.input_dim is not None:
        declared.append(((spec.input_dim,), marks.key(("input_dim",))))
    first = spec.layers[0]
    if isinstance(first, Layer) and first.declared_input_shape() is not None:
        declared.append((first.declared_input_shape(), _layer_location(marks, ("layers", 0))))
    for index, layer in enumerate(spec.layers[1:], start=1):
        if (isinstance(layer, Layer) and layer.declared_input_shape() is not None
                and layer.inputs is None):
            problems.append(Problem("only the first layer may declare an input shape",
                                    _layer_location(marks, ("layers", index)),
                                    "move it to the top-level `input_shape`", code="LC107"))
    if not declared:
        problems.append(Problem(
            "the model has no input shape", marks.key(("layers",)),
            "add `input_shape: [...]` (without the batch axis) at the top level or on the first "
            "layer", code="LC107"))
        return ()
    if len({shape for shape, _ in declared}) > 1:
        problems.append(Problem(
            "the input shape is declared more than once with different values: "
            + ", ".join(str(list(s)) for s, _ in declared), declared[1][1], code="LC107"))
    return tuple(declared[0][0])


def _integer_inputs(spec: ModelSpec, inputs: list[ModelInput],
                    nodes: list[Node]) -> list[ModelInput]:
    """An input read by a layer taking indices (Embedding) holds indices, whatever its dtype."""
    read_as_indices = {s for n in nodes if n.layer.integer_input for s in n.inputs}
    return [replace(i, integer=True) if i.name in read_as_indices and not i.integer else i
            for i in inputs]


def _layer_location(marks: Marks, path: tuple) -> Location:
    for key in ("type", "apply", "block"):
        if path + (key,) in marks.keys:
            return marks.key(path + (key,))
    return marks.key(path)


# ---- wiring ----------------------------------------------------------------------------------
def _wire(entries: list[Entry], marks: Marks, problems: list[Problem]) -> None:
    """Each entry's sources: its `inputs` (a list, or a mapping by call argument), else the
    previous node at its level (the model input for the first layer)."""
    layers = {e.name: e for e in entries if e.layer is not None}
    for entry in entries:
        if entry.apply is not None:
            owner = entry.scope.resolve(entry.apply)
            if owner is None or owner not in layers:
                problems.append(Problem(
                    f"`apply: {entry.apply}` names no layer" + entry.where,
                    marks.value(entry.path + ("apply",)),
                    did_you_mean(entry.apply, [n for n in entry.scope.names
                                               if entry.scope.names[n] in layers]), code="LC108"))
                continue
            entry.layer = layers[owner].layer
            entry.apply = owner
        written = entry.inputs
        if written is None:
            if entry.previous is None:
                problems.append(Problem(
                    f"layer '{entry.name}' needs `inputs:` (the model has several inputs)"
                    + entry.where, _layer_location(marks, entry.path), code="LC108"))
                continue
            refs = [(entry.previous[1].resolve(entry.previous[0]), "0", None)]
        elif isinstance(written, dict):
            refs = _mapping_refs(entry, marks, problems)
        else:
            if not written:
                problems.append(Problem("`inputs` is empty" + entry.where,
                                        marks.key(entry.path + ("inputs",)), code="LC108"))
            refs = [(entry.scope.resolve(w), str(i), (w, entry.path + ("inputs", i)))
                    for i, w in enumerate(written)]
        sources, roles = [], []
        for ref, role, origin in refs:
            if ref is None:
                written_name, path = origin
                problems.append(Problem(
                    f"layer '{entry.name}' takes input from unknown layer '{written_name}'"
                    + entry.where, marks.value(path),
                    did_you_mean(written_name, entry.scope.known())
                    or "known: " + ", ".join(entry.scope.known()), code="LC108"))
            elif split_ref(ref)[0] == entry.name:
                problems.append(Problem(f"layer '{entry.name}' takes its own output as input",
                                        marks.value(origin[1] if origin else entry.path),
                                        code="LC108"))
            else:
                sources.append(ref)
                roles.append(role)
        entry.sources, entry.roles = tuple(sources), tuple(roles)


def _mapping_refs(entry: Entry, marks: Marks, problems: list[Problem]) -> list:
    """`{sequences: x, initial_state: [h, c]}` in the layer's call-argument order."""
    arguments = entry.layer.call_arguments
    refs = []
    for key in entry.inputs:
        if key not in arguments:
            problems.append(Problem(
                f"{entry.layer.keras_class} has no call argument '{key}'" + entry.where,
                marks.key(entry.path + ("inputs", key)),
                did_you_mean(key, arguments) or ("it takes " + ", ".join(arguments)
                                                 if arguments else "give `inputs` as a list"),
                                                 code="LC108"))
    for key in arguments:
        value = entry.inputs.get(key)
        if value is None:
            continue
        items = value if isinstance(value, list) else [value]
        base = entry.path + ("inputs", key)
        for i, written in enumerate(items):
            path = base + (i,) if isinstance(value, list) else base
            refs.append((entry.scope.resolve(written), key, (written, path)))
    return refs


def _topological_order(entries: list[Entry], marks: Marks, problems: list[Problem]) -> list[int]:
    """Entries in an order where each comes after its sources (spec order when possible)."""
    index_of = {e.name: i for i, e in enumerate(entries)}
    state = [0] * len(entries)  # 0 new, 1 on the path, 2 done
    order: list[int] = []
    for start in range(len(entries)):
        if state[start]:
            continue
        stack = [(start, 0)]
        state[start] = 1
        while stack:  # iterative depth-first search: deep models must not hit recursion limits
            i, position = stack[-1]
            sources = entries[i].sources + ((entries[i].apply,) if entries[i].apply else ())
            if position < len(sources):
                stack[-1] = (i, position + 1)
                j = index_of.get(split_ref(sources[position])[0])
                if j is None or state[j] == 2:
                    continue
                if state[j] == 1:
                    path = [k for k, _ in stack]
                    cycle = path[path.index(j):] + [j]
                    problems.append(Problem(
                        "the layers form a cycle: " + " → ".join(entries[k].name for k in cycle),
                        marks.key(entries[j].path + ("inputs",)), code="LC109"))
                    return []
                state[j] = 1
                stack.append((j, 0))
            else:
                state[i] = 2
                order.append(i)
                stack.pop()
    return order


# ---- shapes ----------------------------------------------------------------------------------
def _place_all(spec, entries, order, inputs, marks, problems):
    shapes: dict[str, Shape] = {i.name: i.shape for i in inputs}
    masked: dict[str, bool] = {i.name: False for i in inputs}
    built: dict[str, Node] = {}
    nodes, warnings = [], []
    for index in order:
        entry = entries[index]
        missing = [s for s in entry.sources if s not in shapes]
        if missing:  # `encoder.1` of a layer with one output (no return_state)
            base, k = split_ref(missing[0])
            count = len(built[base].output_shapes) if base in built else 1  # (an input)
            outputs = f"{count} outputs ('{base}.0' to '{base}.{count - 1}')" if count > 1 \
                else f"one output ('{base}')"
            problems.append(Problem(
                f"layer '{entry.name}' takes input '{missing[0]}', but '{base}' has {outputs}"
                + entry.where, _layer_location(marks, entry.path),
                "recurrent layers give their states with `return_state: true`, attention its "
                "scores with `return_attention_scores: true`", code="LC108"))
            break
        in_shapes = tuple(shapes[s] for s in entry.sources)
        receives = [masked[s] for s in entry.sources]
        try:
            node = _place(entry, index, in_shapes, receives, spec.data_format, built)
        except IncompatibleShape as error:
            got = ", ".join(format_shape(s) for s in in_shapes)
            problems.append(Problem(
                f"layer '{entry.name}' ({entry.layer.keras_class}) cannot take input of shape "
                f"{got}: {error}" + entry.where, _layer_location(marks, entry.path), code="LC200"))
            break
        if node.receives_mask and not node.layer.supports_masking:
            warnings.append(Problem(
                f"layer '{node.name}' (of type {node.layer.keras_class}) receives a mask but does "
                "not support masking: the mask is dropped and later layers will not see it",
                _layer_location(marks, entry.path), severity="warning", code="LC201"))
        built[node.name] = node
        for ref, shape, mask in zip(node.output_refs, node.output_shapes, node.output_masks,
                                    strict=True):
            shapes[ref], masked[ref] = shape, mask
        nodes.append(node)
    return nodes, warnings


def _place(entry: Entry, index: int, in_shapes: tuple[Shape, ...], receives_mask: list[bool],
           data_format: str, built: dict[str, Node]) -> Node:
    layer = entry.layer
    count = len(in_shapes)
    if count < layer.min_inputs or count > layer.max_inputs:
        wanted = (f"{layer.min_inputs}" if layer.min_inputs == layer.max_inputs
                  else f"at least {layer.min_inputs}")
        raise IncompatibleShape(f"{layer.keras_class} takes {wanted} input(s), got {count}")
    argument = list(in_shapes) if layer.takes_list(count) else in_shapes[0]
    owner = entry.apply or entry.name
    if entry.apply is None:
        layer = layer.resolve(in_shapes[0], data_format)
    else:
        layer = built[owner].layer
    if layer.call_arguments:
        layer = layer.with_roles(entry.roles)
    output_shapes = tuple(layer.output_shapes(argument))  # first: it checks the input
    weights = tuple(layer.weight_specs(argument))
    if entry.apply is not None:  # the same weights: the shapes must build the same ones
        if [(w.name, w.shape) for w in weights] != [(w.name, w.shape)
                                                    for w in built[owner].weights]:
            raise IncompatibleShape(
                f"layer '{owner}' was built for input of shape "
                + ", ".join(format_shape(s) for s in built[owner].input_shapes)
                + " and cannot be applied with other weight shapes")
        weights = ()
    flags = receives_mask if layer.takes_list(count) else any(receives_mask)
    masks = layer.emits_masks(flags, len(output_shapes))
    return Node(layer, index, entry.sources, in_shapes, output_shapes, any(receives_mask),
                masks[0], weights, name=entry.name, owner=owner,
                instance=entry.instance, roles=entry.roles, output_masks=masks)


def _rename_resolved(spec: ModelSpec, nodes: list[Node], entries: list[Entry],
                     scope: Scope) -> tuple[list[Node], Callable[[str], str]]:
    """Default names of top-level layers whose class depends on their input (MaxPool becomes
    MaxPooling1D/2D) follow the resolved class, as a Keras model built from it would name
    them."""
    resolved = {n.index: n.layer.keras_class for n in nodes if not n.shared}
    top = [(i, e) for i, e in enumerate(entries) if e.instance is None and e.apply is None]
    renamed = [i for i, e in top if e.layer.keras_class != resolved.get(i, e.layer.keras_class)]
    if not renamed:
        return nodes, str
    explicit = {getattr(layer, "name", None) for layer in spec.layers} - {None}
    counters: dict[str, int] = defaultdict(int)
    rename: dict[str, str] = {}
    for i, entry in top:
        written = spec_name(spec, entry)
        if written is not None:
            continue
        base = keras_snake_case(resolved.get(i, entry.layer.keras_class))
        while True:
            count = counters[base]
            counters[base] += 1
            name = base if count == 0 else f"{base}_{count}"
            if name not in explicit:
                break
        if name != entry.name:
            rename[entry.name] = name
    if not rename:
        return nodes, str

    def fix(ref: str) -> str:
        base, index = split_ref(ref)
        new = rename.get(base, base)
        return new if index == 0 else f"{new}.{index}"

    out = []
    for node in nodes:
        name, owner = rename.get(node.name, node.name), rename.get(node.owner, node.owner)
        out.append(replace(node, layer=node.layer.model_copy(update={"name": owner}), name=name,
                           owner=owner, inputs=tuple(fix(s) for s in node.inputs)))
        entries[node.index].name = name
    for entry in entries:
        entry.sources = tuple(fix(s) for s in entry.sources)
    for written, ref in list(scope.names.items()):
        if ref in rename:
            del scope.names[written]
            scope.names[rename[ref]] = rename[ref]
    return out, fix


def spec_name(spec: ModelSpec, entry: Entry) -> str | None:
    """The name written in the spec for a top-level entry, or None (a default name)."""
    return getattr(spec.layers[entry.path[1]], "name", None)


def _outputs(spec: ModelSpec, expander: Expander, renamed: Callable[[str], str],
             nodes: list[Node], marks: Marks, problems: list[Problem]) -> list[str]:
    if spec.outputs is None:
        return [renamed(expander.last_output)]
    placed = {n.name: n for n in nodes}
    outputs = []
    scope = expander.top
    for i, written in enumerate(spec.outputs):
        ref = scope.resolve(written)
        name, index = split_ref(ref) if ref else (None, 0)
        node = placed.get(name)
        if node is None or index >= len(node.output_shapes):
            problems.append(Problem(f"output '{written}' is not a node of the model",
                                    marks.value(("outputs", i)),
                                    did_you_mean(written, scope.known())
                                    or "nodes: " + ", ".join(scope.known()), code="LC110"))
        elif ref in outputs:
            problems.append(Problem(f"output '{written}' is listed twice",
                                    marks.value(("outputs", i)), code="LC110"))
        else:
            outputs.append(ref)
    if not spec.outputs:
        problems.append(Problem("`outputs` is empty", marks.key(("outputs",)), code="LC110"))
    return outputs


def _unused(nodes: list[Node], entries: list[Entry], outputs: list[str],
            inputs: list[ModelInput], marks: Marks) -> list[Problem]:
    """Nodes whose output reaches nothing: almost always a wiring mistake."""
    used = {split_ref(s)[0] for node in nodes for s in node.inputs}
    used |= {split_ref(o)[0] for o in outputs} | {n.owner for n in nodes}
    warnings = [
        Problem(f"layer '{node.name}' is not connected to the model output"
                + (" (the last layer)" if len(outputs) == 1 else "s"),
                _layer_location(marks, entries[node.index].path), severity="warning", code="LC120")
        for node in nodes if node.name not in used
    ]
    read = {s for node in nodes for s in node.inputs}
    warnings += [Problem(f"input '{i.name}' is not used by any layer", marks.key(("inputs",)),
                         severity="warning", code="LC120")
                 for i in inputs if i.name not in read and len(inputs) > 1]
    return warnings
