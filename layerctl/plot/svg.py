"""The model diagram as SVG text, as Keras's `plot_model(show_shapes=True,
show_layer_names=True)` draws it, written by layerctl itself (no graphviz).

One box per model input and per node (a block instance is one box whose type is the block's
name, unless `expand` opens it into its layers inside a framed group); each box shows the name,
the type, the output shape(s) and the parameter count. An `apply:` node is dashed and says whose
weights it shares; an output of the model has a thick border. Every box and edge carries its
facts in `data-*` attributes, so tests (and other tools) read the drawing back.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from layerctl.blocks import split_ref
from layerctl.layers import format_shape
from layerctl.plan import Plan
from layerctl.plot.layout import Layout, layered_layout

FONT_SIZE = 12.0
CHAR_WIDTH = FONT_SIZE * 0.6  # a monospace font: widths are known without measuring
LINE_HEIGHT = 16.0
PADDING = 8.0
FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"
FRAME_PADDING = 10.0


@dataclass(frozen=True)
class DiagramNode:
    name: str
    kind: str  # "input", "layer", "shared" (an `apply:` node) or "block"
    type: str  # the Keras class, or the block's name
    shapes: tuple[tuple, ...]
    params: int
    inputs: tuple[str, ...]  # names of the nodes drawn before it
    owner: str = ""  # whose weights a shared node uses
    instance: str | None = None  # the (innermost) block instance holding it, when expanded
    output: bool = False

    @property
    def lines(self) -> list[str]:
        kind = {"input": "InputLayer", "block": f"block {self.type}"}.get(self.kind, self.type)
        lines = [self.name, kind]
        if self.kind == "shared":
            lines.append(f"shares weights of {self.owner}")
        lines.append(" | ".join(format_shape(s) for s in self.shapes))
        lines.append(f"params: {self.params:,}" + ("  → output" if self.output else ""))
        return lines

    @property
    def size(self) -> tuple[float, float]:
        lines = self.lines
        width = max(len(line) for line in lines) * CHAR_WIDTH + 2 * PADDING
        return max(width, 120.0), len(lines) * LINE_HEIGHT + 2 * PADDING - 4


def diagram_nodes(plan: Plan, expand: bool = False) -> list[DiagramNode]:
    """The boxes of `plan` in execution order (inputs first), with block instances collapsed
    into one box each unless `expand` (as `shapes` shows its rows)."""
    from layerctl.report import summary_rows

    nodes = [DiagramNode(i.name, "input", "InputLayer", (i.shape,), 0, ()) for i in plan.inputs]
    shown = {i.name for i in plan.inputs}
    blocks = dict(plan.instances)
    top_of = {n.name: n.instance.split("/")[0] for n in plan.nodes if n.instance and not expand}
    outputs = {top_of.get(split_ref(ref)[0], split_ref(ref)[0]) for ref in plan.outputs}
    for row in summary_rows(plan, expand):
        inputs = tuple(dict.fromkeys(split_ref(ref)[0] for ref in row.inputs))
        output = row.name in outputs
        if row.name in blocks and row.type == blocks[row.name] and row.name not in shown \
                and not expand:
            nodes.append(DiagramNode(row.name, "block", row.type, row.output_shapes, row.params,
                                     inputs, output=output))
        else:
            node = plan.node(row.name)
            nodes.append(DiagramNode(row.name, "shared" if node.shared else "layer", row.type,
                                     row.output_shapes, row.params, inputs, node.owner,
                                     node.instance, output))
        shown.add(row.name)
    return nodes


def plan_layout(plan: Plan, expand: bool = False, rankdir: str = "TB"):
    """(diagram nodes, their layout)."""
    nodes = diagram_nodes(plan, expand)
    edges = [(source, node.name) for node in nodes for source in node.inputs]
    margin = 2 * FRAME_PADDING + 16 if expand and plan.instances else 16.0  # room for frames
    layout = layered_layout([n.name for n in nodes], {n.name: n.size for n in nodes}, edges,
                            rankdir, margin)
    return nodes, layout


STYLE = f"""
.lc-box rect {{ fill: #eef3fb; stroke: #35507a; stroke-width: 1.2; }}
.lc-box.input rect {{ fill: #f3f3f3; stroke: #666; }}
.lc-box.block rect {{ fill: #fdf3e1; stroke: #9a6a12; stroke-width: 1.6; }}
.lc-box.shared rect {{ fill: #f4eefb; stroke: #6a3d9a; stroke-dasharray: 5 3; }}
.lc-box.output rect {{ stroke-width: 3; }}
.lc-box text {{ font-family: {FONT}; font-size: {FONT_SIZE:g}px; fill: #222; }}
.lc-box text.name {{ font-weight: bold; }}
.lc-edge {{ fill: none; stroke: #555; stroke-width: 1.2; }}
.lc-frame rect {{ fill: #fffbe9; stroke: #9a6a12; stroke-dasharray: 2 2; }}
.lc-frame text {{ font-family: {FONT}; font-size: 11px; fill: #9a6a12; }}
"""


def model_svg(plan: Plan, expand: bool = False, rankdir: str = "TB") -> str:
    """The diagram of `plan` as one standalone `<svg>` element."""
    nodes, layout = plan_layout(plan, expand, rankdir)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="lc-model" '
             f'width="{layout.width:.0f}" height="{layout.height:.0f}" '
             f'viewBox="0 0 {layout.width:.1f} {layout.height:.1f}" '
             f'data-model="{escape(plan.name)}" data-rankdir="{rankdir}" '
             f'data-crossings="{layout.crossings}">',
             f"<title>{escape(plan.name)}</title>",
             '<defs><marker id="lc-arrow" viewBox="0 0 10 10" refX="10" refY="5" '
             'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
             '<path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
             f"<style>{STYLE}</style>"]
    if expand:
        parts += _frames(plan, nodes, layout)
    for edge in layout.edges:
        path = " L ".join(f"{x:.1f} {y:.1f}" for x, y in edge.points)
        parts.append(f'<path class="lc-edge" data-from="{escape(edge.source)}" '
                     f'data-to="{escape(edge.target)}" d="M {path}" '
                     f'marker-end="url(#lc-arrow)"/>')
    for node in nodes:
        parts.append(_box(node, layout))
    parts.append("</svg>")
    return "\n".join(parts)


def _box(node: DiagramNode, layout: Layout) -> str:
    box = layout.boxes[node.name]
    classes = " ".join(["lc-box", node.kind] + (["output"] if node.output else []))
    shapes = ";".join(format_shape(s) for s in node.shapes)
    text = []
    for i, line in enumerate(node.lines):
        y = box.y + PADDING + (i + 1) * LINE_HEIGHT - 4
        css = ' class="name"' if i == 0 else ""
        text.append(f'<text x="{box.x + PADDING:.1f}" y="{y:.1f}"{css}>{escape(line)}</text>')
    owner = f' data-owner="{escape(node.owner)}"' if node.kind == "shared" else ""
    return (f'<g class="{classes}" data-name="{escape(node.name)}" '
            f'data-type="{escape(node.type)}" data-shape="{escape(shapes)}" '
            f'data-params="{node.params}"{owner}>'
            f"<title>{escape(node.name)} ({escape(node.type)})</title>"
            f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" '
            f'height="{box.height:.1f}" rx="4"/>' + "".join(text) + "</g>")


def _frames(plan: Plan, nodes: list[DiagramNode], layout: Layout) -> list[str]:
    """A dashed frame around the boxes of each block instance (outermost drawn first)."""
    blocks = dict(plan.instances)
    parts = []
    for instance, block in plan.instances:
        members = [layout.boxes[n.name] for n in nodes if n.instance and (
            n.instance == instance or n.instance.startswith(instance + "/"))]
        if not members:
            continue
        depth = instance.count("/")
        pad = FRAME_PADDING * (2 + -depth if depth < 2 else 1)
        left = min(b.x for b in members) - pad
        top = min(b.y for b in members) - pad
        right = max(b.x + b.width for b in members) + pad
        bottom = max(b.y + b.height for b in members) + pad
        parts.append(f'<g class="lc-frame" data-instance="{escape(instance)}" '
                     f'data-block="{escape(blocks[instance])}">'
                     f'<rect x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" '
                     f'height="{bottom - top:.1f}" rx="6"/>'
                     f'<text x="{left + 4:.1f}" y="{bottom - 3:.1f}">'
                     f"{escape(instance)} ({escape(block)})</text></g>")
    return parts


def model_html(plan: Plan, expand: bool = False, rankdir: str = "TB") -> str:
    """A self-contained HTML page holding the diagram."""
    from layerctl.plot.page import html_page

    return html_page(f"{plan.name}: model", f"<h1>{escape(plan.name)}</h1>\n"
                     + model_svg(plan, expand, rankdir))
