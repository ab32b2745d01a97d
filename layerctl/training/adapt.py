"""Adapting preprocessing layers: statistics of the training data, before the first step.

A Normalization with `adapt: true` gets the mean and variance of what it receives from the
training data, as Keras's `layer.adapt(data)` computes them (per index of the kept axes, over
every other axis; the variance is the biased one, NumPy's `var`). Each adapted layer costs one
streamed pass over the data in inference mode, in order, so a layer adapted later sees the data
through the ones adapted before it. Batch moments are merged with Chan et al.'s parallel
formula in float64, so the result does not depend on the batch size beyond rounding and never
loses precision to a large mean:

    n = n_a + n_b,   δ = mean_b − mean_a,   mean = mean_a + δ·n_b/n,
    M2 = M2_a + M2_b + δ²·n_a·n_b/n,        variance = M2/n.

`count` holds n, the number of values each statistic was computed from (Keras 3 keeps the
weight but leaves it 0; Keras 2 stored this n).
"""

from __future__ import annotations

import math

import numpy as np

from layerctl.graph import Graph


class RunningMoments:
    """Count, mean and sum of squared deviations (M2) of the batches seen so far, in float64."""

    def __init__(self, reduced_axes: tuple[int, ...]) -> None:
        self.reduced_axes = reduced_axes
        self.count = 0
        self.mean: np.ndarray | float = 0.0
        self.m2: np.ndarray | float = 0.0

    def update(self, batch: np.ndarray) -> None:
        values = np.asarray(batch, np.float64)
        n_b = math.prod(values.shape[a] for a in self.reduced_axes)
        if n_b == 0:
            return
        mean_b = values.mean(axis=self.reduced_axes, keepdims=True)
        m2_b = np.square(values - mean_b).sum(axis=self.reduced_axes)
        mean_b = mean_b.reshape(m2_b.shape)
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + np.square(delta) * (self.count * n_b / n)
        self.count = n

    @property
    def variance(self) -> np.ndarray | float:
        return self.m2 / self.count


def adapt_layers(graph: Graph, x: np.ndarray | dict[str, np.ndarray],
                 batch_size: int) -> list[str]:
    """Set the statistics of every layer with `adapt: true` from `x` (an array, or one per
    model input); returns their names."""
    adapted = []
    samples = len(next(iter(x.values()))) if isinstance(x, dict) else len(x)
    for node in graph.nodes:
        if not getattr(node.layer, "adapt", False):
            continue
        source = node.inputs[0]
        moments = RunningMoments(node.layer.reduced_axes(len(node.input_shapes[0])))
        for start in range(0, samples, batch_size):
            rows = slice(start, start + batch_size)
            graph.forward({k: v[rows] for k, v in x.items()} if isinstance(x, dict) else x[rows],
                          training=False)
            moments.update(graph.values[source])
        if moments.count:
            weights = graph.layer_weights(node)
            weights["mean"][...] = moments.mean
            weights["variance"][...] = moments.variance
            weights["count"][...] = moments.count
        adapted.append(node.name)
    return adapted
