"""A Python file of Keras code read with `ast`, never executed or imported.

The reader follows the code a tutorial writes: imports (names only), module-level constants,
`Sequential([...])` and `model.add(...)`, functional calls (`x = Dense(64)(x)`), `Input(...)`,
`Model(inputs, outputs)`, a layer object called twice (a shared layer, `apply:`), small helper
functions that only wire layers (`blocks:`), `model.compile(...)` and `model.fit(...)`.
Everything is evaluated symbolically: a value is a literal, a constant defined by a literal,
or a layer call; nothing from the file is ever run. What cannot be read exactly (loops,
Lambda, custom classes, arithmetic on shapes, unknown calls) is an error at its
`file:line:col` when it touches the model, and a warning saying it was not read otherwise.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from layerctl.errors import Location, Problem
from layerctl.importer.graph import Node, Ref, Wiring, check_call_arguments
from layerctl.importer.translate import (
    CLASS_RENAMES,
    CONSTRAINTS,
    REGULARIZERS,
    Call,
    Param,
    Unsupported,
    shown,
    translate_layer,
)
from layerctl.importer.writer import Block, ImportedModel
from layerctl.keras_layers import KERAS_LAYER_CLASSES
from layerctl.layers import LAYER_TYPES

OPTIMIZERS = {"SGD": "sgd", "Adam": "adam", "AdamW": "adamw", "RMSprop": "rmsprop",
              "Adagrad": "adagrad", "Adadelta": "adadelta", "Adamax": "adamax", "Nadam": "nadam"}
OPTIMIZER_RENAMES = {"lr": "learning_rate"}
# Keras 1 `merge(mode=...)` and Keras 2 functional merge helpers -> layer types
MERGE_MODES = {"sum": "Add", "concat": "Concatenate", "mul": "Multiply", "ave": "Average",
               "max": "Maximum", "dot": "Dot"}
MERGE_FUNCTIONS = {"add": "Add", "concatenate": "Concatenate", "multiply": "Multiply",
                   "average": "Average", "maximum": "Maximum", "minimum": "Minimum",
                   "subtract": "Subtract", "dot": "Dot"}
UNSUPPORTED_HINTS = {
    "Lambda": "a Lambda wraps Python code, which a spec never runs",
}
WRAPPED = ("layer", "backward_layer")  # a wrapper's arguments that take a layer object
IGNORED_METHODS = {"summary", "save", "save_weights", "load_weights", "evaluate", "predict",
                   "to_json", "get_config", "count_params"}


class Failed(Exception):
    """A use of a name whose definition already failed (reported there, not again)."""


@dataclass
class Module:
    dotted: str


@dataclass
class Opaque:
    """A name bound to something the reader did not read."""

    why: str
    failed: bool = False


@dataclass
class LayerObj:
    """A layer constructed but maybe not called yet."""

    args: dict[str, Any]
    name: str | None
    notes: list[str]
    line: int
    keras1: bool
    node: Node | None = None  # the node of its first call
    options: dict[str, Any] = field(default_factory=dict)  # call options of that call


@dataclass
class Tensor:
    ref: Ref


@dataclass
class Tensors:
    refs: list[Ref]


@dataclass
class Sequential:
    name: str | None
    nodes: list[Node] = field(default_factory=list)
    input_shape: list | None = None
    line: int = 0


@dataclass
class Functional:
    name: str | None
    inputs: list[Ref]
    outputs: list[Ref]
    line: int = 0


@dataclass
class Helper:
    node: ast.FunctionDef
    block: Block | None = None
    inputs: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)
    inputs_and_params: list[str] = field(default_factory=list)
    error: Problem | None = None


@dataclass
class BlockParam:
    name: str
    used_as: set[str] = field(default_factory=set)


class Reader:
    def __init__(self, text: str, file: str) -> None:
        self.file = file
        self.text = text
        self.env: dict[str, Any] = {}
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.wiring = Wiring()
        self.inputs: list[tuple[str | None, dict[str, Any], int, Ref]] = []
        self.models: list[tuple[str, Any]] = []
        self.compile: dict[str, Any] | None = None
        self.train: dict[str, Any] | None = None
        self.notes: dict[str, list[str]] = {"compile": [], "train": []}
        self.keras1 = False
        self.blocks: dict[str, Block] = {}
        self.block_stack: list[tuple[Wiring, dict[str, BlockParam]]] = []

    # ---- locations and problems ----------------------------------------------------------
    def where(self, node: ast.AST) -> Location:
        return Location(self.file, getattr(node, "lineno", None),
                        getattr(node, "col_offset", -1) + 1 or None)

    def source(self, node: ast.AST) -> str:
        text = ast.get_source_segment(self.text, node) or type(node).__name__
        text = " ".join(text.split())
        return text if len(text) <= 60 else text[:57] + "..."

    # ---- statements ------------------------------------------------------------------------
    def read(self, tree: ast.Module) -> None:
        for statement in tree.body:
            try:
                self.statement(statement)
            except Failed:
                pass
            except Unsupported as error:
                self.problems.append(Problem(str(error), self.where(statement)))
                self.bind_failed(statement)

    def bind_failed(self, statement: ast.stmt) -> None:
        for target in getattr(statement, "targets", []):
            for name in ast.walk(target):
                if isinstance(name, ast.Name):
                    self.env[name.id] = Opaque("failed", failed=True)

    def statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            prefix = f"{node.module}." if isinstance(node, ast.ImportFrom) and node.module else ""
            for alias in node.names:
                if alias.name == "*":
                    continue
                self.env[alias.asname or alias.name.split(".")[0]] = Module(
                    prefix + (alias.name if alias.asname or prefix else alias.name.split(".")[0]))
            return
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            return  # a docstring
        if isinstance(node, ast.FunctionDef):
            self.env[node.name] = Helper(node)
            return
        if isinstance(node, ast.ClassDef):
            self.env[node.name] = Opaque(f"a custom class (line {node.lineno}); a spec holds "
                                         "only layerctl's layer types")
            self.not_read(node, "a class")
            return
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            self.assign(node.targets[0], node.value, node)
            return
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            if self.touches(node):
                self.call_statement(node.value)
            else:
                self.not_read(node, "a call outside the model")
            return
        if self.touches(node):
            raise Unsupported(f"{describe(node)} is not read (only straight-line model code "
                              "is); write the layers out one by one")
        self.not_read(node, describe(node))

    def not_read(self, node: ast.stmt, what: str) -> None:
        self.warnings.append(Problem(f"not read: {what} (`{self.source(node)}`)",
                                     self.where(node), severity="warning", code="LC610"))

    def touches(self, node: ast.AST) -> bool:
        """Whether `node` uses the model: a layer, tensor, model or helper name, or a call of a
        Keras layer or model class."""
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                bound = self.env.get(sub.id)
                if isinstance(bound, LayerObj | Tensor | Tensors | Sequential | Functional
                              | Helper | BlockParam):
                    return True
                if isinstance(bound, Opaque) and bound.failed:
                    return True
            if isinstance(sub, ast.Call):
                name = self.callee_name(sub.func)
                if name and (is_layer_name(name) or name in ("Sequential", "Model", "Input")):
                    return True
        return False

    def assign(self, target: ast.expr, value: ast.expr, statement: ast.stmt) -> None:
        if isinstance(target, ast.Name):
            try:
                self.env[target.id] = self.expression(value)
            except Unsupported as error:
                if self.touches(statement):
                    raise
                self.env[target.id] = Opaque(f"`{target.id}` is assigned at line "
                                             f"{statement.lineno} from {error}")
                self.not_read(statement, "an assignment the model does not use")
            return
        if isinstance(target, ast.Tuple | ast.List) and all(
                isinstance(t, ast.Name) for t in target.elts):
            try:
                result = self.expression(value)
            except Unsupported:
                if self.touches(statement):
                    raise
                result = None
            if isinstance(result, Tensor) and result.ref.node is not None:
                for i, t in enumerate(target.elts):
                    self.env[t.id] = Tensor(Ref(result.ref.node, i))
                return
            if isinstance(result, list) and len(result) == len(target.elts):
                for t, v in zip(target.elts, result, strict=True):
                    self.env[t.id] = v
                return
            if result is not None:
                raise Unsupported(f"cannot unpack `{self.source(value)}` into "
                                  f"{len(target.elts)} names")
            for t in target.elts:
                self.env[t.id] = Opaque(f"`{t.id}` is assigned at line {statement.lineno} "
                                        f"from `{self.source(value)}`")
            self.not_read(statement, "an assignment the model does not use")
            return
        if self.touches(statement):
            raise Unsupported(f"assignment to `{self.source(target)}` is not read")
        self.not_read(statement, "an assignment")

    def call_statement(self, call: ast.Call) -> None:
        func = call.func
        if not isinstance(func, ast.Attribute) or not isinstance(func.value, ast.Name):
            self.expression(call)  # a layer call whose result is dropped
            return
        owner = self.lookup(func.value)
        method = func.attr
        if isinstance(owner, Sequential) and method == "add":
            if len(call.args) != 1 or call.keywords:
                raise Unsupported("`add` takes one layer")
            self.sequential_add(owner, call.args[0])
            return
        if isinstance(owner, Sequential | Functional):
            if method == "compile":
                self.read_compile(call)
            elif method == "fit":
                self.read_fit(call)
            elif method in IGNORED_METHODS:
                self.warnings.append(Problem(f"not read: `{method}(...)` does not change the "
                                             "model", self.where(call), severity="warning",
                                             code="LC610"))
            else:
                raise Unsupported(f"`{func.value.id}.{method}(...)` is not read")
            return
        self.expression(call)

    # ---- expressions ---------------------------------------------------------------------
    def lookup(self, node: ast.Name) -> Any:
        if node.id not in self.env:
            raise Unsupported(f"`{node.id}` is not defined before this line (or not by a "
                              "constant this reader can read)")
        value = self.env[node.id]
        if isinstance(value, Opaque):
            if value.failed:
                raise Failed()
            raise Unsupported(f"`{node.id}` is not a value this reader can read: {value.why}")
        if isinstance(value, BlockParam):
            return value
        return value

    def callee_name(self, func: ast.expr) -> str | None:
        """The Keras name a callee spells: `Dense`, `layers.Dense`, `keras.layers.Dense`."""
        if isinstance(func, ast.Name):
            bound = self.env.get(func.id)
            if bound is None:
                return func.id
            if isinstance(bound, Module):
                return bound.dotted.rsplit(".", 1)[-1]
            return None
        if isinstance(func, ast.Attribute):
            root = func
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and isinstance(self.env.get(root.id), Module):
                return func.attr
        return None

    def expression(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Name):
            value = self.lookup(node)
            if isinstance(value, BlockParam):
                value.used_as.add("value")
                return Param(value.name)
            return value
        if isinstance(node, ast.Constant):
            if isinstance(node.value, int | float | str | bool) or node.value is None:
                return node.value
            raise Unsupported(f"the constant `{self.source(node)}` is not a spec value")
        if isinstance(node, ast.Tuple | ast.List):
            return [self.expression(e) for e in node.elts]
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise Unsupported("`**` in a dict is not read")
            return {self.key(k): self.expression(v) for k, v in zip(node.keys, node.values,
                                                                    strict=True)}
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value = self.expression(node.operand)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp | ast.UnaryOp):
            raise Unsupported(f"the computed value `{self.source(node)}` is not read (a spec "
                              "holds no arithmetic); write the number it stands for")
        if isinstance(node, ast.Attribute):
            raise Unsupported(f"the attribute `{self.source(node)}` is not read")
        if isinstance(node, ast.Subscript):
            raise Unsupported(f"the subscript `{self.source(node)}` is not read")
        raise Unsupported(f"{type(node).__name__} expression `{self.source(node)}` is not read")

    def key(self, node: ast.expr) -> str:
        value = self.expression(node)
        if not isinstance(value, str):
            raise Unsupported("mapping keys must be strings")
        return value

    def arguments(self, call: ast.Call) -> tuple[list[Any], dict[str, Any]]:
        args, kwargs = [], {}
        for arg in call.args:
            if isinstance(arg, ast.Starred):
                raise Unsupported("`*args` is not read")
            args.append(self.expression(arg))
        for keyword in call.keywords:
            if keyword.arg is None:
                raise Unsupported("`**kwargs` is not read")
            kwargs[keyword.arg] = self.expression(keyword.value)
        return args, kwargs

    def call(self, node: ast.Call) -> Any:
        func = node.func
        if isinstance(func, ast.Call):  # Dense(64)(x)
            return self.apply(self.call(func), node)
        if isinstance(func, ast.Name) and func.id in self.env \
                and not isinstance(self.env[func.id], Module):
            target = self.lookup(func)
            if isinstance(target, LayerObj):
                return self.apply(target, node)
            if isinstance(target, Helper):
                return self.instance(func.id, target, node)
            raise Unsupported(f"`{func.id}` is not callable here")
        name = self.callee_name(func)
        if name is None:
            raise Unsupported(f"call of `{self.source(func)}`: not a Keras layer, model or "
                              "value this reader knows")
        if name in ("__import__", "exec", "eval", "open", "compile", "getattr", "globals"):
            raise Unsupported(f"`{name}(...)` is never run by the importer; a spec holds no code")
        if name == "Sequential":
            return self.sequential(node)
        if name in ("Model", "Functional"):
            return self.functional(node)
        if name in ("Input", "InputLayer"):
            return self.input(node, name)
        if name == "merge":
            return self.keras1_merge(node)
        if name in MERGE_FUNCTIONS:
            args, kwargs = self.layer_args(node, tensors_first=True)
            return self.connect(self.layer(MERGE_FUNCTIONS[name], [], kwargs, node), args[0],
                                node)
        if name in UNSUPPORTED_HINTS:
            raise Unsupported(f"`{name}`: {UNSUPPORTED_HINTS[name]}")
        if is_layer_name(name):
            args, kwargs = self.arguments(node)
            if name in ("Bidirectional", "TimeDistributed"):
                args = [self.wrapped(a, node) if i == 0 else a for i, a in enumerate(args)]
                kwargs = {k: self.wrapped(v, node) if k in WRAPPED else v
                          for k, v in kwargs.items()}
            return self.layer(name, args, kwargs, node)
        if name in KERAS_LAYER_CLASSES:
            raise Unsupported(f"`{name}` is a Keras layer layerctl does not support yet")
        if name in CONSTRAINTS or name in REGULARIZERS or name in OPTIMIZERS:
            args, kwargs = self.arguments(node)
            return Call(name, tuple(args), tuple(kwargs.items()))
        raise Unsupported(f"call of `{name}`: not a Keras layer, model or value this reader "
                          "knows (custom classes and functions are not read)")

    def layer(self, name: str, args: list[Any], kwargs: dict[str, Any], node: ast.Call):
        translated = translate_layer(name, args, kwargs)
        self.keras1 = self.keras1 or translated.keras1
        layer_args = {"type": translated.type, **translated.args}
        explicit = layer_args.pop("name", None)
        notes = list(translated.notes)
        if name != translated.type and not any(n.startswith(f"was {name}(") for n in notes):
            notes.insert(0, f"was {name}")
        return LayerObj(layer_args, explicit, notes, node.lineno, translated.keras1)

    def wrapped(self, layer: Any, node: ast.Call) -> dict[str, Any]:
        """A layer object given to a wrapper, as its `layer:` mapping."""
        if not isinstance(layer, LayerObj):
            raise Unsupported(f"`{self.source(node.func)}` wraps a layer object "
                              "(`Bidirectional(LSTM(8))`)")
        if layer.node is not None:
            raise Unsupported("a wrapper takes a layer that was not called yet")
        self.keras1 = self.keras1 or layer.keras1
        return {**layer.args, **({"name": layer.name} if layer.name else {})}

    def layer_args(self, node: ast.Call, tensors_first: bool):
        args, kwargs = self.arguments(node)
        if not args:
            raise Unsupported("a merge takes its list of tensors first")
        return args, kwargs

    def keras1_merge(self, node: ast.Call):
        args, kwargs = self.arguments(node)
        if len(args) != 1:
            raise Unsupported("`merge` takes one list of tensors")
        mode = kwargs.pop("mode", "sum")
        if mode not in MERGE_MODES:
            raise Unsupported(f"merge(mode={shown(mode)}) has no Keras 3 layer (a Python "
                              "function mode is code)")
        notes = [f"was merge(mode={shown(mode)})"]
        if "concat_axis" in kwargs:
            kwargs["axis"] = kwargs.pop("concat_axis")
            notes.append(f"was concat_axis={shown(kwargs['axis'])}")
        if "dot_axes" in kwargs:
            kwargs["axes"] = kwargs.pop("dot_axes")
            notes.append(f"was dot_axes={shown(kwargs['axes'])}")
        layer = self.layer(MERGE_MODES[mode], [], kwargs, node)
        layer.notes[:0] = notes
        self.keras1 = True
        return self.connect(layer, args[0], node)

    def tensor_refs(self, value: Any, node: ast.AST) -> list[Ref]:
        if isinstance(value, Tensor):
            return [value.ref]
        if isinstance(value, list) and value and all(isinstance(v, Tensor) for v in value):
            return [v.ref for v in value]
        if isinstance(value, Param):
            raise Unsupported(f"`{value.name}` is used both as a tensor and as a value")
        raise Unsupported(f"`{self.source(node)}`: a layer is called on a tensor (an Input or "
                          "another layer's output)")

    def apply(self, layer: Any, node: ast.Call):
        """`layer(x)`, `layer([a, b])`, `mha(q, v, key=k, use_causal_mask=True)`,
        `lstm(x, initial_state=[h, c])`: tensors by position or call argument; the other
        call arguments are the layer keys Keras passes at call time."""
        if not isinstance(layer, LayerObj):
            raise Unsupported(f"`{self.source(node.func)}` is not a layer")
        if not node.args or any(isinstance(a, ast.Starred) for a in node.args):
            raise Unsupported("a layer is called on one tensor or one list of tensors")
        kind = layer.args["type"]
        positional = [self.tensor_argument(a) for a in node.args]
        if len(positional) == 1:
            refs = self.tensor_refs(positional[0], node.args[0])
        else:  # one tensor per call argument (query, value)
            if len(positional) > len(LAYER_TYPES[kind].call_arguments):
                raise Unsupported(f"`{kind}` is called on {len(positional)} tensors; it takes "
                                  "one tensor or one list of tensors")
            refs = [self.tensor_refs(v if isinstance(v, Tensor) else None, a)[0]
                    for v, a in zip(positional, node.args, strict=True)]
        roles: list[str | None] = [None] * len(refs)
        listed, options = set(), {}
        for keyword in node.keywords:
            if keyword.arg is None:
                raise Unsupported("`**kwargs` is not read")
            value = self.tensor_argument(keyword.value)
            if keyword.arg == "mask":
                raise Unsupported("`mask=` is not read: layerctl passes masks on from Masking "
                                  "and Embedding(mask_zero=True) itself")
            if isinstance(value, Tensor) or (isinstance(value, list) and value
                                             and all(isinstance(v, Tensor) for v in value)):
                found = self.tensor_refs(value, keyword.value)
                if isinstance(value, list):
                    listed.add(keyword.arg)
                refs += found
                roles += [keyword.arg] * len(found)
            elif keyword.arg == "training" and value in (None, False):
                continue
            elif keyword.arg in getattr(LAYER_TYPES[kind], "keras_call_options", ()):
                options[keyword.arg] = value
            else:
                raise Unsupported(f"call arguments ({keyword.arg}) are not read")
        check_call_arguments(kind, roles, f"`{kind}`")
        return self.connect(layer, refs, node, roles, listed, options)

    def tensor_argument(self, arg: ast.expr) -> Any:
        if isinstance(arg, ast.Name) and isinstance(self.env.get(arg.id), BlockParam):
            param = self.env[arg.id]
            param.used_as.add("tensor")
            return Tensor(Ref(input=param.name))
        if isinstance(arg, ast.List | ast.Tuple):
            return [self.tensor_argument(e) for e in arg.elts]
        return self.expression(arg)

    def connect(self, layer: LayerObj, inputs: Any, node: ast.Call,
                roles: list[str | None] | None = None, listed: set[str] | None = None,
                options: dict[str, Any] | None = None) -> Tensor:
        refs = inputs if roles is not None else self.tensor_refs(inputs, node)
        wiring = self.current_wiring()
        if layer.node is None:
            args = {**layer.args, **(options or {})}
            layer.node = Node(args, layer.name, refs, layer.notes, layer.line)
            layer.node.roles, layer.node.listed = list(roles or []), set(listed or ())
            layer.options = dict(options or {})
            wiring.add(layer.node)
            return Tensor(Ref(layer.node))
        if layer.node not in wiring.nodes:
            raise Unsupported("a layer shared between a block and the model is not read")
        if dict(options or {}) != layer.options:
            raise Unsupported("a shared layer called again with other call options (an "
                              "`apply:` shares its layer's)")
        shared = Node({"apply": None}, None, refs, [], node.lineno, kind="apply",
                      owner=layer.node)
        shared.roles, shared.listed = list(roles or []), set(listed or ())
        wiring.add(shared)
        return Tensor(Ref(shared))

    def current_wiring(self) -> Wiring:
        return self.block_stack[-1][0] if self.block_stack else self.wiring

    # ---- models ------------------------------------------------------------------------------
    def sequential(self, node: ast.Call) -> Sequential:
        args, kwargs = [], {}
        for keyword in node.keywords:
            if keyword.arg != "name":
                raise Unsupported(f"Sequential(`{keyword.arg}`=...) is not read")
            kwargs["name"] = self.expression(keyword.value)
        model = Sequential(kwargs.get("name"), line=node.lineno)
        self.models.append(("Sequential", model))
        if len(node.args) > 1:
            raise Unsupported("Sequential takes one list of layers")
        if node.args:
            if not isinstance(node.args[0], ast.List | ast.Tuple):
                raise Unsupported("Sequential takes a literal list of layers")
            args = node.args[0].elts
        for element in args:
            self.sequential_add(model, element)
        return model

    def sequential_add(self, model: Sequential, element: ast.expr) -> None:
        layer = self.expression(element)
        if isinstance(layer, Tensor) and layer.ref.input is not None and not model.nodes:
            shape = next(i for i in self.inputs if i[3] is layer.ref)[1]["shape"]
            model.input_shape = shape
            self.inputs.pop()
            return
        if not isinstance(layer, LayerObj):
            raise Unsupported(f"`{self.source(element)}` is not a layer")
        if layer.node is not None:
            raise Unsupported("the same layer added twice to a Sequential model is not read")
        layer.node = Node(layer.args, layer.name, [], layer.notes, layer.line)
        if model.nodes:
            layer.node.inputs = [Ref(model.nodes[-1])]
        model.nodes.append(layer.node)
        self.wiring.add(layer.node)

    def input(self, node: ast.Call, name: str) -> Tensor:
        args, kwargs = self.arguments(node)
        notes = []
        if name == "InputLayer" and "input_shape" in kwargs:
            kwargs["shape"] = kwargs.pop("input_shape")
        if args:
            if len(args) > 1:
                raise Unsupported("Input takes its shape as the only positional argument")
            kwargs["shape"] = args[0]
        if "batch_shape" in kwargs or "batch_input_shape" in kwargs:
            key = "batch_shape" if "batch_shape" in kwargs else "batch_input_shape"
            kwargs["shape"] = list(kwargs.pop(key))[1:]
            notes.append(f"was {key}")
        unknown = set(kwargs) - {"shape", "name", "dtype"}
        if unknown:
            raise Unsupported(f"Input({', '.join(sorted(unknown))}=...) is not read")
        if "shape" not in kwargs:
            raise Unsupported("Input needs a shape")
        spec: dict[str, Any] = {"shape": list(kwargs["shape"])}
        if kwargs.get("dtype") not in (None, "float32"):
            spec["dtype"] = kwargs["dtype"]
        ref = Ref(input=kwargs.get("name") or f"__input{len(self.inputs)}")
        self.inputs.append((kwargs.get("name"), spec, node.lineno, ref))
        return Tensor(ref)

    def functional(self, node: ast.Call) -> Functional:
        kwargs: dict[str, ast.expr] = {}
        positional = ["inputs", "outputs", "name"]
        if len(node.args) > 3:
            raise Unsupported("Model takes inputs, outputs and name")
        for key, arg in zip(positional, node.args, strict=False):
            kwargs[key] = arg
        renames = {"input": "inputs", "output": "outputs"}
        notes = []
        for keyword in node.keywords:
            key = renames.get(keyword.arg, keyword.arg)
            if key != keyword.arg:
                notes.append(f"was Model({keyword.arg}=...)")
            if key not in positional:
                raise Unsupported(f"Model(`{keyword.arg}`=...) is not read")
            kwargs[key] = keyword.value
        if "inputs" not in kwargs or "outputs" not in kwargs:
            raise Unsupported("Model needs inputs and outputs")
        inputs = self.tensor_refs(self.expression(kwargs["inputs"]), kwargs["inputs"])
        outputs = self.tensor_refs(self.expression(kwargs["outputs"]), kwargs["outputs"])
        name = self.expression(kwargs["name"]) if "name" in kwargs else None
        model = Functional(name, inputs, outputs, node.lineno)
        self.models.append(("Model", model))
        return model

    # ---- blocks (helper functions) -----------------------------------------------------------
    def instance(self, name: str, helper: Helper, node: ast.Call) -> Tensor:
        if helper.block is None and helper.error is None:
            self.define_block(name, helper)
        if helper.error is not None:
            raise Unsupported(f"`{name}` cannot become a block: {helper.error.message} (at "
                              f"{helper.error.location})")
        bound: dict[str, ast.expr] = {}
        order = helper.inputs_and_params
        if len(node.args) > len(order):
            raise Unsupported(f"`{name}` takes {len(order)} arguments")
        for key, arg in zip(order, node.args, strict=False):
            bound[key] = arg
        for keyword in node.keywords:
            if keyword.arg not in order or keyword.arg in bound:
                raise Unsupported(f"`{name}` got an unexpected or repeated `{keyword.arg}`")
            bound[keyword.arg] = keyword.value
        refs = []
        for key in helper.inputs:
            if key not in bound:
                raise Unsupported(f"`{name}` needs its tensor `{key}`")
            refs += self.tensor_refs(self.tensor_argument(bound[key]), bound[key])
        args: dict[str, Any] = {"block": name}
        defaults = helper.block.params if isinstance(helper.block.params, dict) else {}
        for key in helper.params:
            if key in bound:
                value = self.expression(bound[key])
                if key not in defaults or defaults[key] != value:
                    args[key] = value
            elif key not in defaults:
                raise Unsupported(f"`{name}` needs `{key}`")
        wiring = self.current_wiring()
        instance = Node(args, None, refs, [], node.lineno, kind="block")
        wiring.add(instance)
        return Tensor(Ref(instance))

    def define_block(self, name: str, helper: Helper) -> None:
        fn = helper.node
        try:
            if fn.decorator_list or fn.args.vararg or fn.args.kwarg or fn.args.kwonlyargs \
                    or fn.args.posonlyargs:
                raise Unsupported("decorators, *args, **kwargs and keyword-only arguments are "
                                  "not read")
            names = [a.arg for a in fn.args.args]
            params = {n: BlockParam(n) for n in names}
            first_default = len(names) - len(fn.args.defaults)
            defaults = {names[first_default + i]: self.expression(d)
                        for i, d in enumerate(fn.args.defaults)}
            wiring = Wiring(input_names=names)
            saved = dict(self.env)
            self.env.update(params)
            self.block_stack.append((wiring, params))
            result = None
            try:
                for statement in fn.body:
                    if isinstance(statement, ast.Expr) and isinstance(statement.value,
                                                                      ast.Constant):
                        continue
                    if isinstance(statement, ast.Assign) and len(statement.targets) == 1 \
                            and isinstance(statement.targets[0], ast.Name):
                        self.env[statement.targets[0].id] = self.expression(statement.value)
                    elif isinstance(statement, ast.Return) and statement.value is not None:
                        result = self.expression(statement.value)
                        break
                    else:
                        raise Unsupported(f"{describe(statement)} in a helper function is not "
                                          "read (a block only wires layers)")
            except Unsupported as error:
                raise Unsupported(str(error)) from None
            finally:
                self.block_stack.pop()
                self.env = saved
                self.env[name] = helper
            if not isinstance(result, Tensor) or result.ref.node is None:
                raise Unsupported("a helper becomes a block when it returns one layer's output")
            tensors = [n for n in names if "tensor" in params[n].used_as]
            both = [n for n in tensors if "value" in params[n].used_as]
            if both:
                raise Unsupported(f"`{both[0]}` is used both as a tensor and as a value")
            if not tensors:
                raise Unsupported("a block takes at least one tensor argument")
            values = [n for n in names if n not in tensors]
            if any(n in defaults for n in tensors):
                raise Unsupported("a tensor argument with a default is not read")
            entries, node_names = wiring.finish(tensors[0] if len(tensors) == 1 else None)
            output = node_names[result.ref.node]
            if result.ref.index:
                output = f"{output}.{result.ref.index}"
            block_params: dict[str, Any] | list[str]
            if all(n in defaults for n in values):
                block_params = {n: defaults[n] for n in values}
            elif not defaults:
                block_params = values
            else:
                raise Unsupported("a block's parameters either all have defaults or none has")
            helper.block = Block(block_params, tensors, entries,
                                 None if wiring.nodes[-1] is result.ref.node
                                 and not result.ref.index else output, fn.lineno)
            helper.inputs, helper.params = tensors, values
            helper.inputs_and_params = names
            self.blocks[name] = helper.block
        except Unsupported as error:
            where = getattr(error, "location", None) or Location(self.file, fn.lineno,
                                                                  fn.col_offset + 1)
            helper.error = Problem(str(error), where)

    # ---- compile and fit ---------------------------------------------------------------------
    def read_compile(self, call: ast.Call) -> None:
        args, kwargs = self.arguments(call)
        for key, value in zip(("optimizer", "loss", "metrics"), args, strict=False):
            kwargs[key] = value
        out: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key in ("loss", "metrics", "loss_weights"):
                out[key] = value
            elif key == "optimizer":
                out[key] = self.optimizer(value)
            else:
                raise Unsupported(f"compile(`{key}`=...) is not read")
        if "loss" not in out:
            raise Unsupported("compile without a loss")
        self.compile = {k: out[k] for k in ("loss", "optimizer", "metrics", "loss_weights")
                        if k in out}

    def optimizer(self, value: Any) -> Any:
        if isinstance(value, str):
            return value.lower()
        if not isinstance(value, Call) or value.name not in OPTIMIZERS:
            raise Unsupported(f"optimizer {shown(value)} is not read")
        out: dict[str, Any] = {"type": OPTIMIZERS[value.name]}
        if value.args:
            out["learning_rate"] = value.args[0]
            if len(value.args) > 1:
                raise Unsupported(f"{value.name}: write the arguments after learning_rate as "
                                  "keywords")
        for key, arg in value.kwargs:
            if key == "decay":
                if arg:
                    raise Unsupported(f"{value.name}(decay={shown(arg)}): use a learning-rate "
                                      "schedule (`learning_rate: {type: inverse_time_decay, "
                                      "...}`)")
                continue
            if key in OPTIMIZER_RENAMES:
                self.notes["compile"].append(f"was {value.name}({key}={shown(arg)})")
            out[OPTIMIZER_RENAMES.get(key, key)] = arg
        return out

    def read_fit(self, call: ast.Call) -> None:
        train: dict[str, Any] = {}
        if len(call.args) > 2:
            raise Unsupported("fit: write the arguments after x and y as keywords")
        if call.args:
            self.notes["train"].append(f"line {call.lineno}: fit's data is not read: give "
                                       "`layerctl train --data FILE` or `train.data`")
        for keyword in call.keywords:
            key = keyword.arg
            if key in ("x", "y", "verbose"):
                continue
            value = self.expression(keyword.value)
            if key == "nb_epoch":
                self.notes["train"].append(f"was nb_epoch={shown(value)}, line {call.lineno}")
                key = "epochs"
            if key in ("batch_size", "epochs", "shuffle"):
                train[key] = value
            elif key == "validation_split":
                if value:
                    train["validation"] = {"split": value}
            else:
                raise Unsupported(f"fit(`{key}`=...) is not read")
        self.train = train

    # ---- the result --------------------------------------------------------------------------
    def model(self, stem: str, dim_ordering: str | None) -> ImportedModel:
        if not self.models:
            raise Unsupported("no Sequential or Model in this file")
        if len(self.models) > 1:
            lines = ", ".join(str(m.line) for _, m in self.models)
            raise Unsupported(f"several models (lines {lines}); import a file with one")
        kind, model = self.models[0]
        result = ImportedModel(name=model.name or stem)
        result.header = [f"Imported by `layerctl import` from {self.file} (read, never run)."]
        wiring = self.wiring
        if kind == "Sequential":
            if not model.nodes:
                raise Unsupported("the Sequential model has no layers")
            wiring = Wiring(nodes=list(model.nodes))
            result.input_shape = model.input_shape
            entries, _ = wiring.finish("input")
        else:
            used = {id(r) for r in model.inputs}
            declared = [i for i in self.inputs if id(i[3]) in used]
            by_ref = {id(i[3]): i for i in declared}
            ordered = [by_ref[id(r)] for r in model.inputs]
            if len(ordered) == 1 and ordered[0][0] is None:
                _, spec, _, ref = ordered[0]
                object.__setattr__(ref, "input", "input")
                result.input_shape = spec["shape"]
                if "dtype" in spec:
                    result.inputs = [{"name": "input", **spec}]
                    result.input_shape = None
            else:
                result.inputs = []
                for i, (name, spec, _, ref) in enumerate(ordered):
                    if name is None:
                        name = "input_layer" if i == 0 else f"input_layer_{i}"
                        object.__setattr__(ref, "input", name)
                    result.inputs.append({"name": name, **spec})
            names = [i["name"] for i in result.inputs] if result.inputs else ["input"]
            wiring.input_names = names
            entries, node_names = wiring.finish(names[0] if len(names) == 1 else None)
            outs = [node_names[r.node] if r.index == 0 else f"{node_names[r.node]}.{r.index}"
                    for r in model.outputs]
            if outs != [entries[-1].args.get("name", node_names[wiring.nodes[-1]])] \
                    or model.outputs[0].index:
                result.outputs = outs
        result.layers = entries
        result.blocks = dict(self.blocks)
        if self.keras1:
            self.keras1_data_format(result, dim_ordering or "th")
        result.compile = self.compile
        result.train = self.train
        result.notes = self.notes
        return result

    def keras1_data_format(self, result: ImportedModel, dim_ordering: str) -> None:
        """Keras 1 code without dim_ordering used keras.json's image_dim_ordering ('th' in
        Keras 1's documentation, which the notes' shapes assume)."""
        images = [e for e in all_entries(result) if "data_format" in
                  LAYER_TYPES[e.args["type"]].model_fields and e.args["type"] != "Flatten"
                  and "data_format" not in e.args] if True else []
        if not images or dim_ordering != "th":
            return
        result.data_format = "channels_first"
        result.data_format_note = ("Keras 1 code: dim_ordering defaults to 'th' (--dim-ordering "
                                   "tf if your keras.json said 'tf')")
        for entry in all_entries(result):
            if entry.args.get("type") == "Flatten" and "data_format" not in entry.args:
                entry.args["data_format"] = "channels_last"
                entry.notes.append("Keras 1's Flatten kept the stored (channels-first) order")


def all_entries(result: ImportedModel):
    for entry in result.layers:
        if "type" in entry.args:
            yield entry
    for block in result.blocks.values():
        for entry in block.layers:
            if "type" in entry.args:
                yield entry


def is_layer_name(name: str) -> bool:
    return name in LAYER_TYPES or name in CLASS_RENAMES


def describe(node: ast.AST) -> str:
    kinds = {ast.For: "a `for` loop", ast.While: "a `while` loop", ast.If: "an `if`",
             ast.With: "a `with` block", ast.Try: "a `try` block", ast.ClassDef: "a class",
             ast.AugAssign: "an augmented assignment", ast.Assign: "an assignment",
             ast.Expr: "an expression", ast.AsyncFunctionDef: "an async function"}
    return kinds.get(type(node), f"a `{type(node).__name__}` statement")


def read_python(text: str, file: str, stem: str, dim_ordering: str | None = None):
    """(ImportedModel or None, problems, warnings) of Python source `text`."""
    try:
        tree = ast.parse(text, filename=file)
    except SyntaxError as error:
        return None, [Problem(f"not valid Python: {error.msg}",
                              Location(file, error.lineno, error.offset))], []
    reader = Reader(text, file)
    reader.read(tree)
    model = None
    if not reader.problems:
        try:
            model = reader.model(stem, dim_ordering)
        except Unsupported as error:
            reader.problems.append(Problem(str(error), Location(file)))
    return model, reader.problems, reader.warnings
