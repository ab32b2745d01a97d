"""Property tests: no mutation of a valid spec produces a traceback, a hang, or a slow check."""

import time
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layerctl.errors import SpecError
from layerctl.plan import build_plan
from layerctl.spec import parse_spec

SPECS = [p for p in (Path(__file__).parent.parent / "specs").rglob("*.yaml")
         if "invalid" not in p.parts]
DOCUMENTS = [yaml.safe_load(p.read_text()) for p in SPECS]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True), st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=10)


# A hang detector, not a speed test: the work is bounded by the loader's node budget
# (yamlmarks.MAX_NODES) and the depth limit; checks take milliseconds, and an unbounded
# expansion would take hours. No bound near the real time may stand here: a loaded machine
# must not fail this test.
HANG_SECONDS = 60.0


def check_quickly(text: str) -> None:
    started = time.perf_counter()
    try:
        spec, marks = parse_spec(text, "fuzz.yaml")
        build_plan(spec, marks)
    except SpecError as error:
        assert all(p.render() for p in error.problems)
    elapsed = time.perf_counter() - started
    assert elapsed < HANG_SECONDS, f"checking took {elapsed:.0f} s: unbounded work"


def mutate(document, data):
    """Delete, replace or retype one node somewhere in the document."""
    path, node = [], document
    while isinstance(node, (dict, list)) and node and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(list(node) if isinstance(node, dict) else range(len(node))))
        path.append(key)
        node = node[key]
    if not path:
        return data.draw(values)
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    action = data.draw(st.sampled_from(["delete", "replace", "stringify"]))
    if action == "delete":
        del parent[path[-1]]
    elif action == "replace":
        parent[path[-1]] = data.draw(values)
    else:
        parent[path[-1]] = str(parent[path[-1]])
    return document


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_specs_never_crash(data):
    index = data.draw(st.integers(0, len(DOCUMENTS) - 1))
    document = yaml.safe_load(yaml.safe_dump(DOCUMENTS[index]))  # a fresh deep copy
    check_quickly(yaml.safe_dump(mutate(document, data), sort_keys=False))


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_random_text_never_crashes(text):
    check_quickly(text)


@settings(max_examples=30, deadline=None)
@given(depth=st.integers(10, 3000))
def test_deep_nesting(depth):
    check_quickly("layers: " + "[" * depth + "]" * depth)
    check_quickly("layers:\n" + "".join("  " * i + "- \n" for i in range(min(depth, 400))))


@settings(max_examples=20, deadline=None)
@given(width=st.integers(2, 12), levels=st.integers(2, 9))
def test_exponential_aliases(width, levels):
    lines = ["a0: &a0 [x]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    lines.append(f"layers: *a{levels - 1}")
    check_quickly("\n".join(lines) + "\n")
