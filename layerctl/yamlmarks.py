"""Safe YAML loading that remembers where every key and value came from.

`load_yaml` returns plain Python data (dicts, lists, str, int, float, bool, None) plus a `Marks`
table that maps a path such as `("layers", 2, "units")` to the line and column of that key and of
its value, so later stages (pydantic validation, shape inference) can point at the exact spot.

Only YAML's safe tags are understood: anything like `!!python/object` is an error, never code.
Duplicate keys are errors (PyYAML silently keeps the last). Aliases are expanded with a budget so a
"billion laughs" document fails fast instead of exhausting memory, and nesting depth is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from layerctl.errors import Location, Problem, SpecError

try:  # libyaml's parser is several times faster; the node tree and marks are the same
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader

MAX_NODES = 100_000  # values produced after alias expansion; real specs have a few hundred
MAX_DEPTH = 64

Path = tuple[Any, ...]
_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


@dataclass
class Marks:
    """Where each path of a loaded document sits in its file."""

    file: str
    keys: dict[Path, Location] = field(default_factory=dict)
    values: dict[Path, Location] = field(default_factory=dict)

    def key(self, path: Path) -> Location:
        """The location of the key at `path`, else of the nearest enclosing node."""
        return self._nearest(path, self.keys, self.values)

    def value(self, path: Path) -> Location:
        """The location of the value at `path`, else of the nearest enclosing node."""
        return self._nearest(path, self.values, self.keys)

    def _nearest(self, path: Path, first: dict, second: dict) -> Location:
        path = tuple(path)
        while path:
            for table in (first, second):
                if path in table:
                    return table[path]
            path = path[:-1]
        return self.values.get((), Location(self.file, 1, 1))


def _location(file: str, mark: yaml.Mark) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


class _Builder:
    """Turns a composed node tree into Python data, recording marks."""

    def __init__(self, file: str) -> None:
        self.marks = Marks(file)
        self.file = file
        self.count = 0
        self.scalars = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: Path, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self._error(node, f"document expands to more than {MAX_NODES:,} values "
                                    "(are YAML aliases nested inside each other?)")
        if depth > MAX_DEPTH:
            raise self._error(node, f"nesting deeper than {MAX_DEPTH} levels")
        self.marks.values.setdefault(path, _location(self.file, node.start_mark))
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _COLLECTION_TAGS:
            raise self._error(node, f"unsupported YAML tag {node.tag!r}: only plain data is "
                                    "allowed in a spec")
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict:
        result: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                merged = self.build(value_node, path, depth + 1)
                sources = merged if isinstance(merged, list) else [merged]
                for source in sources:
                    if not isinstance(source, dict):
                        raise self._error(value_node, "'<<' merges only mappings")
                    for k, v in source.items():
                        result.setdefault(k, v)
                continue
            key = self._scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if key is None or isinstance(key, (list, dict)):
                raise self._error(key_node, "mapping keys must be plain scalars")
            if key in result:
                first = self.marks.keys.get(path + (key,))
                where = f" (first at line {first.line})" if first else ""
                raise self._error(key_node, f"duplicate key '{key}'{where}")
            self.marks.keys[path + (key,)] = _location(self.file, key_node.start_mark)
            result[key] = self.build(value_node, path + (key,), depth + 1)
        return result

    def _scalar(self, node: yaml.Node) -> Any:
        try:
            return self.scalars.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as error:
            raise self._error(node, f"unsupported YAML value: {error.problem}") from None

    def _error(self, node: yaml.Node, message: str) -> SpecError:
        return SpecError(message, _location(self.file, node.start_mark), code="LC101")


def load_yaml(text: str, file: str = "<spec>") -> tuple[Any, Marks]:
    """Parse one YAML document safely; return its data and the marks of every key and value.

    Raises SpecError with a location for syntax errors, unsafe tags, duplicate keys, more than one
    document, and documents that expand beyond `MAX_NODES` values.
    """
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        location = _location(file, mark) if mark else Location(file)
        problem = error.problem or error.context or "invalid YAML"
        raise SpecError(f"YAML syntax error: {problem}", location, code="LC101") from None
    except yaml.YAMLError as error:
        raise SpecError(f"YAML error: {error}", Location(file), code="LC101") from None
    except RecursionError:
        raise SpecError(f"YAML nesting too deep (more than {MAX_DEPTH} levels)",
                        Location(file), code="LC101") from None
    if node is None:
        raise SpecError("the file is empty; a spec is a mapping with at least `layers:`",
                        Location(file, 1, 1), code="LC101")
    builder = _Builder(file)
    try:
        data = builder.build(node, ())
    except RecursionError:
        raise SpecError(f"YAML nesting too deep (more than {MAX_DEPTH} levels)",
                        Location(file), code="LC101") from None
    return data, builder.marks


def problem_at(marks: Marks, path: Path, message: str, hint: str | None = None,
               *, at_key: bool = False, severity: str = "error") -> Problem:
    """A Problem located at the value (or key) found at `path` in the document."""
    location = marks.key(path) if at_key else marks.value(path)
    return Problem(message, location, hint, severity)
