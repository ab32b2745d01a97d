"""The spec's `layers:` as a flat list of entries: block instances expanded, names assigned,
and every `inputs:` reference resolved to a node output (DESIGN §3b).

A block instance `{block: B, name: stem, filters: 16}` becomes B's layers with `$filters`
substituted, named `stem/<layer>` (Keras 3's nested paths, so weight keys read
`stem/conv2d/kernel`). Inside a block, `inputs:` name the block's own inputs and its own layers
only; outside, an instance's name stands for its output (its last layer, or `output:`).
Blocks may instantiate blocks, never recursively. References are strings `node` or `node.k`
(output k of a layer with several outputs; `node.0` is `node`).

Every problem is located at the line it comes from; problems inside an instance point at the
block's line and name the instance.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from layerctl.errors import Problem, did_you_mean
from layerctl.layers import Layer
from layerctl.layers.base import keras_snake_case
from layerctl.spec import ApplySpec, BlockInstance, ModelSpec, validate_block_layers
from layerctl.yamlmarks import Marks

MAX_EXPANDED = 100_000  # layers after expanding every instance: bounds nested blocks' growth


@dataclass
class Entry:
    """One node to place: a layer, or an `apply:` of another node's layer."""

    layer: Layer | None  # None for an `apply:` entry
    apply: str | None  # the applied layer's written name (resolved in `scope`)
    name: str  # full node name (`stem/conv2d` inside an instance)
    inputs: list[str] | dict[str, Any] | None  # as written
    path: tuple  # where the entry sits in the file (for locations)
    scope: Scope
    instance: str | None = None  # the innermost block instance holding it
    previous: Ref | None = None  # what an entry without `inputs:` takes
    sources: tuple[str, ...] = ()  # resolved references, in the layer's positional order
    roles: tuple[str, ...] = ()  # the call argument of each source (`sequences`, `0`, ...)

    @property
    def where(self) -> str:
        return f" (in block instance '{self.instance}')" if self.instance else ""


@dataclass
class Scope:
    """The names `inputs:` may use at one level: the model's top level or one instance."""

    names: dict[str, str] = field(default_factory=dict)  # written name -> reference
    bound: dict[str, tuple[str, Scope]] = field(default_factory=dict)  # block input -> outer

    def resolve(self, written: str) -> str | None:
        base, dot, index = written.partition(".")
        if base in self.bound:
            outer, scope = self.bound[base]
            target = scope.resolve(outer)
        else:
            target = self.names.get(base)
        if target is None or not dot:
            return target
        if not index.isdigit() or "." in target:
            return None
        return target if index == "0" else f"{target}.{index}"

    def known(self) -> list[str]:
        return sorted(set(self.names) | set(self.bound))


Ref = tuple[str, "Scope"]  # a name as written, and the scope it is written in


def split_ref(ref: str) -> tuple[str, int]:
    """`lstm.2` -> ("lstm", 2); `lstm` -> ("lstm", 0)."""
    base, _, index = ref.rpartition(".") if "." in ref.rsplit("/", 1)[-1] else (ref, "", "0")
    return base, int(index)


class Expander:
    """Expands a spec's layers into entries; collects every problem instead of stopping."""

    def __init__(self, spec: ModelSpec, marks: Marks, input_names: list[str]) -> None:
        self.spec, self.marks = spec, marks
        self.blocks = spec.blocks or {}
        self.problems: list[Problem] = []
        self.entries: list[Entry] = []
        self.top = Scope({name: name for name in input_names})
        self.bindings: list[tuple[str, Scope, tuple, str]] = []  # instance inputs to check
        self.instances: list[tuple[str, str]] = []  # (instance name, block name), in order
        self.last_output: str | None = None  # the reference to the last top-level output

    def expand(self) -> list[Entry]:
        names = list(self.top.names)
        first = (names[0], self.top) if len(names) == 1 else None
        last = self._level(list(self.spec.layers), ("layers",), self.top, None, [], first)
        if last is not None:
            self.last_output = last[1].resolve(last[0])
        for written, scope, path, name in self.bindings:
            if scope.resolve(written) is None:
                self._problem(f"block instance '{name}' takes input from unknown node "
                              f"'{written}'", path, outer_instance(name),
                              did_you_mean(written, scope.known()))
        return self.entries

    # ---- one level: the top level or one instance ----------------------------------------
    def _level(self, layers: list[Any], path: tuple, scope: Scope, prefix: str | None,
               stack: list[str], previous: Ref | None) -> Ref | None:
        """Place `layers` (validated entries) named under `prefix`; returns the reference to
        the last one's output (None after a problem)."""
        explicit = {e.name for e in layers if getattr(e, "name", None)}
        counters: dict[str, int] = defaultdict(int)
        first_at: dict[str, int] = {}
        for index, item in enumerate(layers):
            item_path = path + (index,)
            local = item.name or self._default_name(item, counters, explicit)
            name = f"{prefix}/{local}" if prefix else local
            if local in first_at:
                self._problem(f"duplicate layer name '{local}' (first used by layer "
                              f"{first_at[local] + 1})", item_path + ("name",), prefix,
                              code="LC112")
                continue
            first_at[local] = index
            if local in scope.names or local in scope.bound:
                self._problem(f"layer name '{local}' is already the name of an input",
                              item_path + ("name",), prefix, code="LC112")
                continue
            if isinstance(item, BlockInstance):
                output = self._instance(item, item_path, scope, name, stack, previous)
                if output is None:
                    return None
                scope.names[local] = output
                previous = (output, _Literal(output))
                continue
            self.entries.append(Entry(
                layer=None if isinstance(item, ApplySpec) else item.model_copy(
                    update={"name": name}),
                apply=item.apply if isinstance(item, ApplySpec) else None,
                name=name, inputs=item.inputs, path=item_path, scope=scope,
                instance=prefix, previous=previous))
            scope.names[local] = name
            if len(self.entries) > MAX_EXPANDED:
                self._problem(f"the model expands to more than {MAX_EXPANDED:,} layers",
                              item_path, prefix)
                return None
            previous = (local, scope)
        return previous

    def _default_name(self, item: Any, counters: dict[str, int], explicit: set[str]) -> str:
        if isinstance(item, ApplySpec):
            base = item.apply
        elif isinstance(item, BlockInstance):
            base = item.block
        else:
            base = keras_snake_case(item.keras_class)
        while True:
            count = counters[base]
            counters[base] += 1
            if isinstance(item, ApplySpec):
                count += 1  # the applied layer itself holds the bare name
            name = base if count == 0 else f"{base}_{count}"
            if name not in explicit:
                return name

    # ---- block instances -----------------------------------------------------------------
    def _instance(self, item: BlockInstance, path: tuple, outer: Scope, name: str,
                  stack: list[str], previous: Ref | None) -> str | None:
        """Expand one instance; returns the reference to its output."""
        block = self.blocks.get(item.block)
        if block is None:
            self._problem(f"unknown block '{item.block}'", path + ("block",), outer_instance(name),
                          did_you_mean(item.block, self.blocks) or (
                              "known: " + ", ".join(sorted(self.blocks)) if self.blocks
                              else "define it under `blocks:`"), at_value=True)
            return None
        if item.block in stack:
            cycle = " → ".join(stack[stack.index(item.block):] + [item.block])
            self._problem(f"blocks instantiate each other in a cycle: {cycle}", path + ("block",),
                          outer_instance(name), at_value=True)
            return None
        values = self._parameters(item, block, path, name)
        if values is None:
            return None
        self.instances.append((name, item.block))
        block_path = ("blocks", item.block, "layers")
        raw = [substitute(layer, values) for layer in block.layers]
        layers, problems = validate_block_layers(raw, self.marks, block_path, name)
        if problems:
            self.problems += problems
            return None
        written = item.inputs
        if written is None:
            sources = [previous] if previous is not None else []
        elif isinstance(written, dict):
            self._problem("a block instance takes `inputs:` as a list", path + ("inputs",),
                          outer_instance(name))
            return None
        else:
            sources = [(ref, outer) for ref in written]
            self.bindings += [(ref, outer, path + ("inputs", i), name)
                              for i, ref in enumerate(written)]
        if len(sources) != len(block.inputs):
            self._problem(f"block '{item.block}' takes {len(block.inputs)} input(s) "
                          f"({', '.join(block.inputs)}), got {len(sources)}",
                          path + ("inputs",) if item.inputs is not None else path,
                          outer_instance(name))
            return None
        inner = Scope(bound={own: (ref, scope) for own, (ref, scope) in
                             zip(block.inputs, sources, strict=True)})
        first = (block.inputs[0], inner) if len(block.inputs) == 1 else None
        last = self._level(layers, block_path, inner, name, stack + [item.block], first)
        if last is None:
            return None
        if block.output is None:
            return last[1].resolve(last[0])
        if block.output is not None:
            output = inner.resolve(block.output)
            if output is None:
                self._problem(f"block '{item.block}' names output '{block.output}', which is "
                              "not one of its layers", ("blocks", item.block, "output"), name,
                              did_you_mean(block.output, inner.names))
                return None
            return output
        return None

    def _parameters(self, item: BlockInstance, block, path: tuple,
                    name: str) -> dict[str, Any] | None:
        declared = block.params if isinstance(block.params, dict) else dict.fromkeys(
            block.params, _MISSING)
        given = item.arguments
        values = {**declared, **given}
        ok = True
        for key in given:
            if key not in declared:
                self._problem(f"block '{item.block}' has no parameter '{key}'", path + (key,),
                              outer_instance(name),
                              did_you_mean(key, declared) or (
                                  "its parameters: " + ", ".join(declared) if declared
                                  else "it takes no parameters"))
                ok = False
        for key, value in values.items():
            if value is _MISSING:
                self._problem(f"block instance '{name}' needs parameter `{key}`", path,
                              outer_instance(name))
                ok = False
        for key, where in _parameter_uses(block.layers, ()):
            if key not in declared:
                self._problem(f"block '{item.block}' uses `${key}`, which is not one of its "
                              "`params`", ("blocks", item.block, "layers") + where, None,
                              did_you_mean(key, declared), at_value=True)
                ok = False
        return values if ok else None

    def _problem(self, message: str, path: tuple, instance: str | None,
                 hint: str | None = None, at_value: bool = False, code: str = "LC111") -> None:
        """A problem at the key of `path` (or its value, where the value is what is wrong)."""
        suffix = f" (in block instance '{instance}')" if instance else ""
        where = self.marks.value(path) if at_value else self.marks.key(path)
        self.problems.append(Problem(message + suffix, where, hint, code=code))


class _Literal(Scope):
    """A reference already resolved (the previous node at the instance's own level)."""

    def __init__(self, ref: str) -> None:
        super().__init__()
        self.ref = ref

    def resolve(self, written: str) -> str | None:
        return self.ref


def outer_instance(name: str) -> str | None:
    """The instance holding a node named `name` (`a/b/c` -> `a/b`), or None at the top."""
    return name.rsplit("/", 1)[0] if "/" in name else None


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def substitute(value: Any, values: dict[str, Any]) -> Any:
    """`$name` (a whole string value) replaced by the parameter's value, anywhere in value."""
    if isinstance(value, str) and value.startswith("$") and value[1:] in values:
        return values[value[1:]]
    if isinstance(value, dict):
        return {key: substitute(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, values) for item in value]
    return value


def _parameter_uses(value: Any, path: tuple):
    """(parameter name, path) of every `$name` in a block's raw layers."""
    if isinstance(value, str) and value.startswith("$") and value[1:].isidentifier():
        yield value[1:], path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _parameter_uses(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _parameter_uses(item, path + (index,))
