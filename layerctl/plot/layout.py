"""A layered (Sugiyama-style) layout of a directed acyclic graph, for model diagrams.

Layers by longest path from the sources; edges spanning several layers pass through dummy
points, one per layer they cross; barycenter sweeps (down, then up, repeated) reorder each
layer and the order with the fewest crossings is kept; positions along a layer are the
least-squares fit to the neighbours' mean under minimum-separation constraints (isotonic
regression), so a chain stays straight. Each layer is a band as deep as its deepest box, boxes
aligned on its top edge; an edge leaves its source from a port of its own on the box's far side,
runs straight through each band it crosses and diagonally only in the gaps between bands, where
no box stands. So edges never cross boxes, and two edges cross only where the order makes them.

Pure geometry: no text, no SVG. Coordinates are computed top to bottom ("TB") and turned for
left to right ("LR").
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

GAP_BETWEEN_BOXES = 28.0  # along a layer
GAP_BETWEEN_LAYERS = 44.0
DUMMY_WIDTH = 8.0
SWEEPS = 12


@dataclass(frozen=True)
class Box:
    """A laid-out node: its top-left corner and size."""

    name: str
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Edge:
    """A laid-out edge: the points of its polyline, source port first, target port last."""

    source: str
    target: str
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Layout:
    boxes: dict[str, Box]
    edges: tuple[Edge, ...]
    width: float
    height: float
    crossings: int  # edge crossings of the chosen order (0 for a planar drawing found)


def layered_layout(names: list[str], sizes: dict[str, tuple[float, float]],
                   edges: list[tuple[str, str]], rankdir: str = "TB",
                   margin: float = 16.0) -> Layout:
    """Lay out the DAG of `names` (in a topological order) and `edges` (source, target);
    `sizes` maps each name to its box's (width, height) as drawn."""
    edges = list(dict.fromkeys(e for e in edges if e[0] != e[1]))
    turned = rankdir == "LR"
    # along = extent along a layer, across = extent from layer to layer
    along = {n: (sizes[n][1] if turned else sizes[n][0]) for n in names}
    across = {n: (sizes[n][0] if turned else sizes[n][1]) for n in names}
    rank = _longest_path_ranks(names, edges)
    chains, layers = _insert_dummies(names, edges, rank)
    for node in layers_members(layers):
        along.setdefault(node, DUMMY_WIDTH)
        across.setdefault(node, 0.0)
    neighbours_up, neighbours_down = _adjacency(chains)
    layers, crossings = _order(layers, neighbours_up, neighbours_down)
    position = _positions(layers, along, neighbours_up, neighbours_down)
    depth = [max(across[n] for n in layer) for layer in layers]
    band_top = [0.0]
    for d in depth[:-1]:
        band_top.append(band_top[-1] + d + GAP_BETWEEN_LAYERS)
    low = min(position[n] - along[n] / 2 for n in position)
    offset = margin - low
    index = {n: i for layer in layers for i, n in enumerate(layer)}
    boxes = {}
    for n in names:
        a, c = position[n] + offset - along[n] / 2, band_top[rank[n]] + margin
        boxes[n] = (Box(n, c, a, across[n], along[n]) if turned
                    else Box(n, a, c, along[n], across[n]))
    out_ports = _ports(chains, index, position, along, offset, leaving=True)
    in_ports = _ports(chains, index, position, along, offset, leaving=False)
    laid = []
    for (source, target), chain in chains.items():
        r = rank[source]
        points = [(out_ports[source, target], band_top[r] + margin + across[source]),
                  (out_ports[source, target], band_top[r] + margin + depth[r])]
        for k, dummy in enumerate(chain[1:-1], start=r + 1):
            points += [(position[dummy] + offset, band_top[k] + margin),
                       (position[dummy] + offset, band_top[k] + margin + depth[k])]
        points.append((in_ports[source, target], band_top[rank[target]] + margin))
        if turned:
            points = [(c, a) for a, c in points]
        laid.append(Edge(source, target, tuple(_dedupe(points))))
    extent_along = max(position[n] + offset + along[n] / 2 for n in position) + margin
    extent_across = band_top[-1] + depth[-1] + 2 * margin
    width, height = (extent_across, extent_along) if turned else (extent_along, extent_across)
    return Layout(boxes, tuple(laid), width, height, crossings)


def layers_members(layers: list[list[str]]) -> list[str]:
    return [n for layer in layers for n in layer]


def _longest_path_ranks(names: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    sources = defaultdict(list)
    for s, t in edges:
        sources[t].append(s)
    rank: dict[str, int] = {}
    for n in names:  # topological order: every source is ranked before its targets
        rank[n] = max((rank[s] + 1 for s in sources[n]), default=0)
    return rank


def _insert_dummies(names, edges, rank):
    """{edge: its chain of nodes, dummies between} and the layers (first order: as given)."""
    layers: list[list[str]] = [[] for _ in range(max(rank.values()) + 1)]
    for n in names:
        layers[rank[n]].append(n)
    chains = {}
    for s, t in edges:
        chain = [s]
        for k in range(rank[s] + 1, rank[t]):
            dummy = f"\0{s}\0{t}\0{k}"
            layers[k].append(dummy)
            chain.append(dummy)
        chains[s, t] = [*chain, t]
    return chains, layers


def _adjacency(chains):
    up, down = defaultdict(list), defaultdict(list)
    for chain in chains.values():
        for a, b in zip(chain, chain[1:], strict=False):
            down[a].append(b)
            up[b].append(a)
    return up, down


def _order(layers, up, down):
    """Barycenter sweeps; the order with the fewest crossings seen."""
    best = [list(layer) for layer in layers]
    best_count = _crossings(best, down)
    current = [list(layer) for layer in layers]
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        sequence = range(1, len(current)) if downward else range(len(current) - 2, -1, -1)
        for k in sequence:
            fixed = current[k - 1] if downward else current[k + 1]
            where = {n: i for i, n in enumerate(fixed)}
            links = up if downward else down
            old = {n: i for i, n in enumerate(current[k])}

            def barycenter(n, where=where, links=links, old=old):
                linked = [where[m] for m in links[n] if m in where]
                return sum(linked) / len(linked) if linked else old[n]

            current[k].sort(key=lambda n, bc=barycenter, old=old: (bc(n), old[n]))
        count = _crossings(current, down)
        if count < best_count:
            best, best_count = [list(layer) for layer in current], count
        if best_count == 0:
            break
    return best, best_count


def _crossings(layers, down) -> int:
    total = 0
    for upper, lower in zip(layers, layers[1:], strict=False):
        where = {n: i for i, n in enumerate(lower)}
        pairs = sorted((i, where[m]) for i, n in enumerate(upper) for m in down[n])
        for a in range(len(pairs)):
            for b in range(a + 1, len(pairs)):
                if pairs[a][0] < pairs[b][0] and pairs[a][1] > pairs[b][1]:
                    total += 1
    return total


def _positions(layers, along, up, down) -> dict[str, float]:
    """Centres along each layer: packed first, then pulled towards the neighbours' mean."""
    position: dict[str, float] = {}
    for layer in layers:
        cursor = 0.0
        for n in layer:
            position[n] = cursor + along[n] / 2
            cursor += along[n] + GAP_BETWEEN_BOXES
    for sweep in range(6):
        downward = sweep % 2 == 0
        sequence = range(1, len(layers)) if downward else range(len(layers) - 2, -1, -1)
        links = up if downward else down
        for k in sequence:
            layer = layers[k]
            wanted = []
            for n in layer:
                linked = [position[m] for m in links[n]]
                wanted.append(sum(linked) / len(linked) if linked else position[n])
            gaps = [(along[a] + along[b]) / 2 + _gap(a, b) for a, b in zip(layer, layer[1:],
                                                                           strict=False)]
            for n, x in zip(layer, _separated_fit(wanted, gaps), strict=True):
                position[n] = x
    return position


def _gap(a: str, b: str) -> float:
    return GAP_BETWEEN_BOXES if not (a.startswith("\0") or b.startswith("\0")) else 12.0


def _separated_fit(wanted: list[float], gaps: list[float]) -> list[float]:
    """The x closest to `wanted` (least squares) with x[i+1] - x[i] >= gaps[i]: isotonic
    regression (pool adjacent violators) of wanted - cumulative gaps."""
    shift = [0.0]
    for g in gaps:
        shift.append(shift[-1] + g)
    blocks: list[list[float]] = []  # [mean, count]
    for w, s in zip(wanted, shift, strict=True):
        blocks.append([w - s, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean, count = blocks.pop()
            blocks[-1][0] = (blocks[-1][0] * blocks[-1][1] + mean * count) / (blocks[-1][1]
                                                                              + count)
            blocks[-1][1] += count
    fitted = [mean for mean, count in blocks for _ in range(int(count))]
    return [f + s for f, s in zip(fitted, shift, strict=True)]


def _ports(chains, index, position, along, offset, leaving: bool) -> dict:
    """Where each edge leaves its source (or reaches its target): its own point on the box's
    side, ordered like the nodes at the other end, so edges of one node never cross."""
    by_node = defaultdict(list)
    for edge, chain in chains.items():
        node, other = (chain[0], chain[1]) if leaving else (chain[-1], chain[-2])
        by_node[node].append((index[other], edge))
    ports = {}
    for node, ends in by_node.items():
        ends.sort()
        span = along[node] * 0.6 if len(ends) > 1 else 0.0
        for i, (_, edge) in enumerate(ends):
            fraction = i / (len(ends) - 1) if len(ends) > 1 else 0.5
            ports[edge] = position[node] + offset - span / 2 + span * fraction
    return ports


def _dedupe(points):
    kept = [points[0]]
    for p in points[1:]:
        if p != kept[-1]:
            kept.append(p)
    return kept
