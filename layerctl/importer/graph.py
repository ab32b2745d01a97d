"""The model being imported, as nodes wired to nodes, named at the end as layerctl names them.

Every reader (Python source, JSON config) adds layers, `apply:` uses and block instances here
with references to the nodes feeding them; `finish` then gives each node its name with the
rule the spec loader uses (explicit names first, then Keras's snake case, numbered per type,
skipping names written explicitly) and writes `inputs:` only where the wiring is not the
sequential default.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from layerctl.importer.translate import Unsupported
from layerctl.importer.writer import Entry
from layerctl.layers import LAYER_TYPES
from layerctl.layers.base import keras_snake_case


def check_call_arguments(layer_type: str, roles: list[str | None], where: str) -> None:
    """Tensors passed by a call argument the layerctl layer does not take (Bidirectional's
    `initial_state`) are refused, by name, rather than in the spec `_mapping` would write."""
    arguments = LAYER_TYPES[layer_type].call_arguments
    unread = sorted({r for r in roles if r is not None} - set(arguments))
    if unread:
        raise Unsupported(f"{where}: call arguments ({', '.join(unread)}) are not read: "
                          f"layerctl's {layer_type} takes "
                          + (", ".join(arguments) if arguments else "its inputs by position"))


@dataclass(eq=False)
class Node:
    """One `layers:` entry in the making."""

    args: dict[str, Any]  # type/apply/block first, then arguments (no name, no inputs)
    name: str | None = None  # written by the source
    inputs: list[Ref] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    line: int | None = None
    kind: str = "layer"  # layer, apply, block
    owner: Node | None = None  # the applied layer of an `apply:`
    keras1: bool = False  # a Keras 1 spelling was translated
    group: str | None = None  # where a Keras 3 weights file keeps its weights
    keras_name: str | None = None  # the layer's name in the source (legacy weights files)
    roles: list[str | None] = field(default_factory=list)  # each input's call argument, if any
    listed: set[str] = field(default_factory=set)  # call arguments given as a list
    instance: Any = None  # a nested model's own block (json_config), before blocks are shared
    inner_groups: dict[str, str] = field(default_factory=dict)  # its layers' weights groups


@dataclass(frozen=True, eq=False)
class Ref:
    """An output of a node (`index` > 0: `name.index`), or a model/block input by name."""

    node: Node | None = None
    index: int = 0
    input: str | None = None


@dataclass
class Wiring:
    """The nodes of the model (or of one block) in order."""

    input_names: list[str] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)

    def add(self, node: Node) -> Ref:
        self.nodes.append(node)
        return Ref(node)

    def finish(self, single_input_name: str | None, drop_default_names: bool = False
               ) -> tuple[list[Entry], dict[Node, str]]:
        """Entries with names and `inputs:` resolved. `single_input_name` is the input a
        first layer takes by default (None when there are several inputs). With
        `drop_default_names`, a written name that the default rule gives anyway is left out."""
        if drop_default_names:
            wanted = self._names()
            for node in self.nodes:
                if node.name and node.kind in ("layer", "block"):
                    written, node.name = node.name, None
                    if self._names() != wanted:
                        node.name = written
        names = self._names()
        while len(set(names.values())) < len(names):  # an apply's default met a layer's
            taken = list(names.values())
            clash = next(n for n in self.nodes if taken.count(names[n]) > 1
                         and n.kind != "layer" and not n.name)
            base = names[clash.owner] if clash.owner else clash.args["block"]
            k = 1
            while f"{base}_{k}" in taken:
                k += 1
            clash.name = f"{base}_{k}"
            names = self._names()
        entries = []
        previous: Ref | None = None
        for node in self.nodes:
            args = dict(node.args)
            if node.kind == "apply":
                args["apply"] = names[node.owner]
            if node.name:
                args["name"] = node.name
            refs = [self._ref(r, names) for r in node.inputs]
            default = [self._ref(previous, names)] if previous is not None else \
                [single_input_name] if single_input_name else None
            if any(node.roles):
                args["inputs"] = self._mapping(node, refs)
            elif refs and refs != default:
                args["inputs"] = refs
            entries.append(Entry(args, node.notes, node.line))
            previous = Ref(node)
        return entries, names

    def _names(self) -> dict[Node, str]:
        """Each node's name by the spec loader's rule (layerctl.blocks): written names kept,
        the others numbered per base (snake-case type, block name, or an apply's layer name,
        whose bare name the layer itself holds), skipping written names."""
        explicit = {n.name for n in self.nodes if n.name}
        names: dict[Node, str] = {}
        counters: dict[str, int] = defaultdict(int)
        for node in self.nodes:
            if node.name:
                names[node] = node.name
                continue
            if node.kind == "layer":
                base = keras_snake_case(LAYER_TYPES[node.args["type"]].keras_class)
            elif node.kind == "apply":
                base = names[node.owner]
            else:
                base = node.args["block"]
            while True:
                count = counters[base]
                counters[base] += 1
                if node.kind == "apply":
                    count += 1
                name = base if count == 0 else f"{base}_{count}"
                if name not in explicit:
                    break
            names[node] = name
        return names

    @staticmethod
    def _mapping(node: Node, refs: list[str]) -> dict[str, Any]:
        """`inputs:` keyed by call argument (`{sequences: x, initial_state: [h, c]}`): the
        positional inputs take the layer's argument names in order."""
        layer = node.owner if node.kind == "apply" else node
        arguments = LAYER_TYPES[layer.args["type"]].call_arguments
        positional = iter(arguments)
        grouped: dict[str, list[str]] = {}
        for ref, role in zip(refs, node.roles, strict=True):
            grouped.setdefault(role or next(positional), []).append(ref)
        return {key: grouped[key] if key in node.listed or len(grouped[key]) > 1
                else grouped[key][0]
                for key in sorted(grouped, key=lambda k: (arguments + (k,)).index(k))}

    @staticmethod
    def _ref(ref: Ref, names: dict[Node, str]) -> str:
        if ref.node is None:
            return ref.input
        return names[ref.node] if ref.index == 0 else f"{names[ref.node]}.{ref.index}"
