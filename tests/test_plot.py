"""`layerctl plot`: the diagram is well-formed SVG/HTML, shows every node and connection, and
its layout is clean for every bundled spec: no two boxes overlap, no edge passes through a box,
and no two edges touch or cross (checked on the drawn geometry, for TB and LR, collapsed and
expanded blocks)."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from layerctl.cli import cli
from layerctl.commands.common import load_plan
from layerctl.plot.layout import layered_layout
from layerctl.plot.svg import diagram_nodes, model_svg, plan_layout

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.yaml"))  # specs/invalid is a folder: not included
SVG = "{http://www.w3.org/2000/svg}"


def overlap(a, b) -> bool:
    """Whether two boxes share any area."""
    return (a.x < b.x + b.width and b.x < a.x + a.width
            and a.y < b.y + b.height and b.y < a.y + a.height)


def segment_enters(p, q, box, inset=0.5) -> bool:
    """Whether segment p-q passes through the interior of `box` (Liang-Barsky clipping against
    the box shrunk by `inset`, so an edge may end on a box's side)."""
    left, right = box.x + inset, box.x + box.width - inset
    top, bottom = box.y + inset, box.y + box.height - inset
    t0, t1 = 0.0, 1.0
    dx, dy = q[0] - p[0], q[1] - p[1]
    for step, distance in ((-dx, p[0] - left), (dx, right - p[0]), (-dy, p[1] - top),
                           (dy, bottom - p[1])):
        if step == 0:
            if distance < 0:
                return False
            continue
        t = distance / step
        if step < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return False
    return True


def orientation(a, b, c) -> int:
    value = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return 0 if abs(value) < 1e-9 else (1 if value > 0 else -1)


def on_segment(a, b, c) -> bool:
    return (min(a[0], b[0]) - 1e-9 <= c[0] <= max(a[0], b[0]) + 1e-9
            and min(a[1], b[1]) - 1e-9 <= c[1] <= max(a[1], b[1]) + 1e-9)


def segments_meet(p1, p2, q1, q2) -> bool:
    """Whether two closed segments share a point (crossing, touching or overlapping)."""
    o1, o2 = orientation(p1, p2, q1), orientation(p1, p2, q2)
    o3, o4 = orientation(q1, q2, p1), orientation(q1, q2, p2)
    if o1 != o2 and o3 != o4:
        return True
    return any(o == 0 and on_segment(a, b, c) for o, a, b, c in (
        (o1, p1, p2, q1), (o2, p1, p2, q2), (o3, q1, q2, p1), (o4, q1, q2, p2)))


def segments(edge):
    return list(itertools.pairwise(edge.points))


@pytest.mark.parametrize("rankdir", ["TB", "LR"])
@pytest.mark.parametrize("expand", [False, True], ids=["blocks", "expanded"])
@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_layout_of_every_bundled_spec_is_clean(spec, expand, rankdir):
    nodes, layout = plan_layout(load_plan(str(spec)), expand, rankdir)
    boxes = list(layout.boxes.values())
    assert len(boxes) == len(nodes)
    for a, b in itertools.combinations(boxes, 2):
        assert not overlap(a, b), f"{a.name} overlaps {b.name}"
    for box in boxes:  # inside the drawing
        assert box.x >= 0 and box.y >= 0
        assert box.x + box.width <= layout.width and box.y + box.height <= layout.height
    for edge in layout.edges:
        for p, q in segments(edge):
            for box in boxes:
                assert not segment_enters(p, q, box), f"{edge.source}->{edge.target} " \
                                                      f"passes through {box.name}"
    # no two edges share any point: every edge has its own ports, and the order has no
    # crossing (the counted crossings of the chosen order are 0 as well)
    assert layout.crossings == 0
    for e, f in itertools.combinations(layout.edges, 2):
        for (p1, p2), (q1, q2) in itertools.product(segments(e), segments(f)):
            assert not segments_meet(p1, p2, q1, q2), \
                f"{e.source}->{e.target} meets {f.source}->{f.target}"


def test_edges_start_and_end_on_their_boxes():
    nodes, layout = plan_layout(load_plan(str(ROOT / "specs/digits_unet.yaml")))
    for edge in layout.edges:
        source, target = layout.boxes[edge.source], layout.boxes[edge.target]
        (x0, y0), (x1, y1) = edge.points[0], edge.points[-1]
        assert y0 == pytest.approx(source.y + source.height)
        assert source.x < x0 < source.x + source.width
        assert y1 == pytest.approx(target.y)
        assert target.x < x1 < target.x + target.width


def test_barycenter_sweeps_remove_a_crossing():
    # as given, the second layer is (c, d) while a links to d and b to c: one crossing
    sizes = dict.fromkeys("abcd", (60.0, 30.0))
    layout = layered_layout(list("abcd"), sizes, [("a", "d"), ("b", "c")])
    assert layout.crossings == 0
    assert (layout.boxes["a"].x < layout.boxes["b"].x) == (layout.boxes["d"].x
                                                           < layout.boxes["c"].x)


def test_long_edges_pass_through_dummies_and_chains_stay_straight():
    sizes = dict.fromkeys("abcd", (60.0, 30.0))
    layout = layered_layout(list("abcd"), sizes, [("a", "b"), ("b", "c"), ("c", "d"),
                                                  ("a", "d")])
    skip = next(e for e in layout.edges if (e.source, e.target) == ("a", "d"))
    assert len(skip.points) == 6  # port, 2 bands crossed (2 points each), port
    chain = [layout.boxes[n].y for n in "abcd"]
    assert chain == sorted(chain)


def parse_svg(text: str):
    root = ET.fromstring(text)
    boxes = {g.get("data-name"): g for g in root.iter(f"{SVG}g")
             if "lc-box" in g.get("class", "")}
    edges = [(p.get("data-from"), p.get("data-to")) for p in root.iter(f"{SVG}path")
             if p.get("class") == "lc-edge"]
    return root, boxes, edges


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_svg_holds_every_node_and_connection(spec):
    plan = load_plan(str(spec))
    root, boxes, edges = parse_svg(model_svg(plan, expand=True))
    assert set(boxes) == {i.name for i in plan.inputs} | {n.name for n in plan.nodes}
    for node in plan.nodes:
        box = boxes[node.name]
        assert box.get("data-type") == node.layer.keras_class
        assert int(box.get("data-params")) == node.params
        for source in {s.split(".")[0] for s in node.inputs}:
            assert (source, node.name) in edges
    assert len(edges) == len(set(edges))
    outputs = {ref.split(".")[0] for ref in plan.outputs}
    assert {n for n, g in boxes.items() if "output" in g.get("class").split()} == outputs


def test_shared_layers_are_dashed_and_name_their_owner():
    plan = load_plan(str(ROOT / "specs/siamese_digits.yaml"))
    _, boxes, _ = parse_svg(model_svg(plan))
    shared = {n: g for n, g in boxes.items() if "shared" in g.get("class").split()}
    assert {n: g.get("data-owner") for n, g in shared.items()} == {
        "encoder_right": "encoder", "code_right": "code"}
    texts = [t.text for t in shared["encoder_right"].iter(f"{SVG}text")]
    assert "shares weights of encoder" in texts
    assert {g.get("data-params") for g in shared.values()} == {"0"}


def test_block_instances_are_one_box_unless_expanded():
    plan = load_plan(str(ROOT / "specs/residual_blocks.yaml"))
    _, boxes, edges = parse_svg(model_svg(plan))
    assert {n: g.get("data-type") for n, g in boxes.items() if "block" in g.get("class")} == {
        "res1": "residual", "res2": "residual", "res3": "residual"}
    assert ("stem", "res1") in edges and ("res1", "res2") in edges
    block_params = sum(n.params for n in plan.nodes if n.instance == "res1")
    assert int(boxes["res1"].get("data-params")) == block_params
    root, boxes, _ = parse_svg(model_svg(plan, expand=True))
    frames = [g.get("data-instance") for g in root.iter(f"{SVG}g")
              if g.get("class") == "lc-frame"]
    assert frames == ["res1", "res2", "res3"]
    assert "res1/conv2d" in boxes and "res1" not in boxes


def test_several_inputs_and_outputs():
    plan = load_plan(str(ROOT / "specs/digits_two_heads.yaml"))
    nodes = diagram_nodes(plan)
    assert [n.kind for n in nodes[:len(plan.inputs)]] == ["input"] * len(plan.inputs)
    assert sum(n.output for n in nodes) == len(plan.outputs) > 1
    assert len(load_plan(str(ROOT / "specs/siamese_digits.yaml")).inputs) == 2


def test_lr_turns_the_drawing():
    plan = load_plan(str(ROOT / "specs/digits_cnn.yaml"))
    _, tb = plan_layout(plan, rankdir="TB")
    _, lr = plan_layout(plan, rankdir="LR")
    order = [n.name for n in diagram_nodes(plan)]
    assert [tb.boxes[n].y for n in order] == sorted(tb.boxes[n].y for n in order)
    assert [lr.boxes[n].x for n in order] == sorted(lr.boxes[n].x for n in order)
    assert tb.height > tb.width and lr.width > lr.height


def test_cli_plot_writes_svg_and_html(tmp_path):
    runner = CliRunner()
    spec = str(ROOT / "specs/digits_cnn.yaml")
    for name in ("model.svg", "model.html"):
        result = runner.invoke(cli, ["plot", spec, "-o", str(tmp_path / name), "--rankdir",
                                     "LR"])
        assert result.exit_code == 0, result.output
    root, boxes, _ = parse_svg((tmp_path / "model.svg").read_text())
    assert root.get("data-rankdir") == "LR" and "conv2d" in boxes
    page = ET.fromstring((tmp_path / "model.html").read_text())
    assert page.find(f".//{SVG}svg") is not None
    assert not list(tmp_path.glob(".*layerctl-tmp*"))  # written atomically, nothing left over
    result = runner.invoke(cli, ["plot", spec, "-o", str(tmp_path / "model.png")])
    assert result.exit_code == 1 and ".svg or .html" in result.output
