"""Shape inference: a validated spec becomes a `Plan` — named, resolved layers in dependency
order with their input and output shapes, masks, and weight shapes. No NumPy, no weights.

This is what `shapes` and `validate` need, and what the executable graph is built from. Every
problem points at the layer's line in the spec: unknown or cyclic `inputs`, duplicate names,
shapes a layer cannot take, and (as warnings) masks that a layer drops.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field, replace

from layerctl.errors import Location, Problem, SpecError, did_you_mean
from layerctl.layers import IncompatibleShape, Layer, Shape, WeightSpec, format_shape
from layerctl.layers.base import keras_snake_case
from layerctl.spec import ModelSpec
from layerctl.yamlmarks import Marks

INPUT = "input"  # how `inputs:` names the model input


@dataclass(frozen=True)
class Node:
    """One layer placed in the model."""

    layer: Layer  # resolved: named, model defaults applied, aliases concrete
    index: int  # position in the spec's `layers:` list
    inputs: tuple[str, ...]  # node names, or INPUT
    input_shapes: tuple[Shape, ...]
    output_shape: Shape
    receives_mask: bool
    emits_mask: bool
    weights: tuple[WeightSpec, ...]

    @property
    def name(self) -> str:
        return self.layer.name

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
    """The model's structure: input, nodes in execution order, and the output node."""

    name: str
    input_shape: Shape
    integer_input: bool
    nodes: tuple[Node, ...]
    output: str
    warnings: tuple[Problem, ...] = field(default=())

    @property
    def total_params(self) -> int:
        return sum(n.params for n in self.nodes)

    @property
    def trainable_params(self) -> int:
        return sum(n.trainable_params for n in self.nodes)

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def output_node(self) -> Node:
        return next(node for node in self.nodes if node.name == self.output)

    @property
    def output_shape(self) -> Shape:
        return self.output_node.output_shape


def build_plan(spec: ModelSpec, marks: Marks | None = None) -> Plan:
    """Infer every shape of `spec`. Raises SpecError with every problem found."""
    marks = marks or Marks(spec.name or "<spec>")
    where = _Locator(marks)
    problems: list[Problem] = []
    input_shape = _input_shape(spec, where, problems)
    names = _assign_names(spec, where, problems)
    sources = _wire(spec, names, where, problems)
    order = _topological_order(names, sources, where, problems)
    if problems:
        raise SpecError(problems=problems)

    shapes: dict[str, Shape] = {INPUT: (None,) + input_shape}
    masked: dict[str, bool] = {INPUT: False}
    nodes, warnings = [], []
    for index in order:
        layer = spec.layers[index].model_copy(update={"name": names[index]})
        inputs = sources[index]
        in_shapes = tuple(shapes[s] for s in inputs)
        try:
            node = _place(
                layer, index, inputs, in_shapes, any(masked[s] for s in inputs), spec.data_format
            )
        except IncompatibleShape as error:
            got = ", ".join(format_shape(s) for s in in_shapes)
            problems.append(
                Problem(
                    f"layer '{layer.name}' ({layer.keras_class}) cannot take "
                    f"input of shape {got}: {error}",
                    where.layer(index),
                )
            )
            break
        if node.receives_mask and not node.layer.supports_masking:
            warnings.append(
                Problem(
                    f"layer '{node.name}' (of type {node.layer.keras_class}) receives a mask but "
                    "does "
                    "not support masking: the mask is dropped and later layers will not see it",
                    where.layer(index),
                    severity="warning",
                )
            )
        shapes[node.name], masked[node.name] = node.output_shape, node.emits_mask
        nodes.append(node)
    if problems:
        raise SpecError(problems=problems)
    nodes, names = _rename_resolved(spec, nodes, names, where)
    warnings += _unused(nodes, names[-1], where)
    return Plan(
        spec.name or "model",
        input_shape=(None,) + input_shape,
        integer_input=any(
            getattr(n.layer, "integer_input", False) and INPUT in n.inputs for n in nodes
        ),
        nodes=tuple(nodes),
        output=names[-1],
        warnings=tuple(warnings),
    )


def _place(
    layer: Layer,
    index: int,
    inputs: tuple[str, ...],
    in_shapes: tuple[Shape, ...],
    receives_mask: bool,
    data_format: str,
) -> Node:
    if len(inputs) < layer.min_inputs or len(inputs) > layer.max_inputs:
        wanted = (
            f"{layer.min_inputs}"
            if layer.min_inputs == layer.max_inputs
            else f"at least {layer.min_inputs}"
        )
        raise IncompatibleShape(f"{layer.keras_class} takes {wanted} input(s), got {len(inputs)}")
    multi = layer.max_inputs > 1
    layer = layer.resolve(in_shapes[0], data_format)
    argument = list(in_shapes) if multi else in_shapes[0]
    output_shape = layer.output_shape(argument)
    weights = tuple(layer.weight_specs(argument))
    emits_mask = layer.emits_mask(receives_mask)
    return Node(layer, index, inputs, in_shapes, output_shape, receives_mask, emits_mask, weights)


class _Locator:
    def __init__(self, marks: Marks) -> None:
        self.marks = marks

    def layer(self, index: int) -> Location:
        return self.marks.key(("layers", index, "type"))

    def key(self, *path) -> Location:
        return self.marks.key(path)


def _input_shape(spec: ModelSpec, where: _Locator, problems: list[Problem]) -> Shape:
    declared = []
    if spec.input_shape is not None:
        declared.append((spec.input_shape, where.key("input_shape")))
    if spec.input_dim is not None:
        declared.append(((spec.input_dim,), where.key("input_dim")))
    first = spec.layers[0].declared_input_shape()
    if first is not None:
        declared.append((first, where.layer(0)))
    for index, layer in enumerate(spec.layers[1:], start=1):
        if layer.declared_input_shape() is not None and layer.inputs is None:
            problems.append(
                Problem(
                    "only the first layer may declare an input shape",
                    where.layer(index),
                    "move it to the top-level `input_shape`",
                )
            )
    if not declared:
        problems.append(
            Problem(
                "the model has no input shape",
                where.key("layers"),
                "add `input_shape: [...]` (without the batch axis) at the top "
                "level or on the first layer",
            )
        )
        return ()
    if len({shape for shape, _ in declared}) > 1:
        problems.append(
            Problem(
                "the input shape is declared more than once with different "
                "values: " + ", ".join(str(list(s)) for s, _ in declared),
                declared[1][1],
            )
        )
    return tuple(declared[0][0])


def _rename_resolved(
    spec: ModelSpec, nodes: list[Node], names: list[str], where: _Locator
) -> tuple[list[Node], list[str]]:
    """Default names of layers whose class depends on their input (MaxPool becomes
    MaxPooling1D/2D) follow the resolved class, as a Keras model built from it would name them."""
    classes = {node.index: node.layer.keras_class for node in nodes}
    if all(layer.keras_class == classes[i] for i, layer in enumerate(spec.layers)):
        return nodes, names
    final = _assign_names(spec, where, [], classes)
    rename = dict(zip(names, final, strict=True))
    renamed = [
        replace(
            node,
            layer=node.layer.model_copy(update={"name": rename[node.name]}),
            inputs=tuple(rename.get(s, s) for s in node.inputs),
        )
        for node in nodes
    ]
    return renamed, final


def _assign_names(
    spec: ModelSpec, where: _Locator, problems: list[Problem], classes: dict[int, str] | None = None
) -> list[str]:
    """Explicit names, else Keras's default names: dense, dense_1, ... per class."""
    explicit = {layer.name for layer in spec.layers if layer.name}
    counters: dict[str, int] = defaultdict(int)
    names, first_at = [], {}
    for index, layer in enumerate(spec.layers):
        name = layer.name
        if name is None:
            base = keras_snake_case((classes or {}).get(index, layer.keras_class))
            while True:
                count = counters[base]
                counters[base] += 1
                name = base if count == 0 else f"{base}_{count}"
                if name not in explicit:
                    break
        elif name in first_at:
            problems.append(
                Problem(
                    f"duplicate layer name '{name}' (first used by layer {first_at[name] + 1})",
                    where.key("layers", index, "name"),
                )
            )
        first_at.setdefault(name, index)
        names.append(name)
    return names


def _wire(
    spec: ModelSpec, names: list[str], where: _Locator, problems: list[Problem]
) -> list[tuple[str, ...]]:
    """Each layer's sources: its `inputs`, else the previous layer (the model input for the
    first layer)."""
    known = set(names) | {INPUT}
    sources = []
    for index, layer in enumerate(spec.layers):
        if layer.inputs is None:
            sources.append((names[index - 1],) if index else (INPUT,))
            continue
        for position, source in enumerate(layer.inputs):
            if source not in known:
                problems.append(
                    Problem(
                        f"layer '{names[index]}' takes input from unknown layer '{source}'",
                        where.marks.value(("layers", index, "inputs", position)),
                        did_you_mean(source, known) or "known: " + ", ".join(sorted(known)),
                    )
                )
            elif source == names[index]:
                problems.append(
                    Problem(
                        f"layer '{source}' takes its own output as input",
                        where.marks.value(("layers", index, "inputs", position)),
                    )
                )
        if not layer.inputs:
            problems.append(Problem("`inputs` is empty", where.key("layers", index, "inputs")))
        sources.append(tuple(layer.inputs))
    return sources


def _topological_order(
    names: list[str], sources: list[tuple[str, ...]], where: _Locator, problems: list[Problem]
) -> list[int]:
    """Layers in an order where each comes after its sources (spec order when possible)."""
    if problems:
        return []
    index_of = {name: i for i, name in enumerate(names)}
    state: dict[int, str] = {}
    order: list[int] = []

    def visit(i: int, trail: list[int]) -> None:
        if state.get(i) == "done":
            return
        if state.get(i) == "active":
            cycle = trail[trail.index(i) :] + [i]
            problems.append(
                Problem(
                    "the layers form a cycle: " + " → ".join(names[j] for j in cycle),
                    where.key("layers", i, "inputs"),
                )
            )
            raise _Cycle
        state[i] = "active"
        for source in sources[i]:
            if source != "input":
                visit(index_of[source], trail + [i])
        state[i] = "done"
        order.append(i)

    try:
        for i in range(len(names)):
            visit(i, [])
    except _Cycle:
        return []
    return order


class _Cycle(Exception):
    pass


def _unused(nodes: list[Node], output: str, where: _Locator) -> list[Problem]:
    """Layers whose output reaches nothing: almost always a wiring mistake."""
    used = {source for node in nodes for source in node.inputs} | {output}
    return [
        Problem(
            f"layer '{node.name}' is not connected to the model output (the last layer)",
            where.layer(node.index),
            severity="warning",
        )
        for node in nodes
        if node.name not in used
    ]
