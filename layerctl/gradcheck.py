"""Float64 central-difference gradient checks, for layers, whole graphs and users' own specs.

A backward pass is checked against `(f(w + h) - f(w - h)) / 2h` (h = 1e-6) of the scalar
`f = sum(output · R) + penalties` for a fixed random projection R, so every output value takes
part. `check_layer` and `check_graph` assert (the test suite's checks); `check_model` reports,
for `layerctl gradcheck`: the worst relative error `|a - n| / max(|a|, |n|, floor)` per weight,
over at most `max_per_weight` entries of each weight sampled with a fixed seed, so a big model
finishes (each entry costs two forward passes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from layerctl import initializers

STEP = 1e-6
# Relative errors are measured against max(|a|, |n|, FLOOR): float64 central differences of an
# f of order 1 carry an absolute noise near 1e-10 (rounding / h), which a gradient entry of
# 1e-7 would otherwise turn into a "relative error" of 1e-3. A wrong entry of 1e-5 still shows
# as 0.1.
FLOOR = 1e-4


def numerical_gradient(f, array: np.ndarray, indices: np.ndarray | None = None) -> np.ndarray:
    """d f / d array by central differences, perturbing `array` in place (restored after).

    With `indices` (flat positions), only those entries: an array of their derivatives."""
    flat = array.reshape(-1)
    positions = range(flat.size) if indices is None else indices
    values = np.zeros(len(positions), dtype=np.float64)
    for slot, i in enumerate(positions):
        saved = flat[i]
        flat[i] = saved + STEP
        up = f()
        flat[i] = saved - STEP
        down = f()
        flat[i] = saved
        values[slot] = (up - down) / (2 * STEP)
    return values.reshape(array.shape) if indices is None else values


def assert_close(analytic, numeric, what: str, rtol: float = 1e-5, atol: float = 1e-7) -> None:
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol, err_msg=what)


def init_layer_weights(layer, input_shape, seed: int = 0) -> dict[str, np.ndarray]:
    """float64 weights from the layer's initializers plus noise (zero biases too), so every
    path through the layer is exercised."""
    rng = np.random.default_rng(seed)
    weights = {}
    for spec in layer.weight_specs(input_shape):
        if callable(spec.initializer):
            weights[spec.name] = spec.initializer(spec.shape, rng, np.float64)
        else:
            weights[spec.name] = initializers.initialize(spec.initializer, spec.shape, rng,
                                                         np.float64)
        weights[spec.name] = weights[spec.name] + rng.normal(0, 0.3, spec.shape)
    return weights


def check_layer(layer, x, *, mask=None, training=False, weights=None, seed=0,
                check_input=True, rtol=1e-5, atol=1e-7):
    """Assert a layer's backward equals central differences of sum(forward · R)."""
    multi = layer.takes_list(len(x) if isinstance(x, list) else 1)
    shapes = [(None,) + tuple(a.shape[1:]) for a in x] if multi else (None,) + tuple(x.shape[1:])
    if weights is None:
        weights = init_layer_weights(layer, shapes, seed)
    rng_seed = 1234

    def run():
        return layer.forward(weights, x, mask, training, np.random.default_rng(rng_seed))

    y, cache = run()
    projection = np.random.default_rng(seed + 1).normal(size=y.shape)

    def f():
        return float(np.sum(run()[0] * projection))

    dx, grads = layer.backward(weights, cache, projection)
    for name, value in weights.items():
        if name in grads:
            assert_close(grads[name], numerical_gradient(f, value), f"d{name}", rtol, atol)
    if check_input:
        inputs = x if multi else [x]
        dxs = dx if multi else [dx]
        for i, (xi, dxi) in enumerate(zip(inputs, dxs, strict=True)):
            assert_close(dxi, numerical_gradient(f, xi), f"dx[{i}]", rtol, atol)
    return y


def check_graph(graph, x, *, training=False, rtol=1e-5, atol=1e-7):
    """Assert a float64 Graph's gradients w.r.t. every trainable parameter."""
    y = graph.forward(x, training=training, rng=np.random.default_rng(7))
    projection = np.random.default_rng(3).normal(size=y.shape)

    def f():  # the loss a backward pass differentiates: output projection + activity penalties
        out = graph.forward(x, training=training, rng=np.random.default_rng(7))
        return float(np.sum(out * projection)) + graph.activity_penalty

    graph.forward(x, training=training, rng=np.random.default_rng(7))
    graph.backward(projection)
    analytic = graph.gradients.copy()
    assert_close(analytic, numerical_gradient(f, graph.trainable), "d trainable", rtol, atol)


# ---- reports for `layerctl gradcheck` --------------------------------------------------------
@dataclass(frozen=True)
class WeightCheck:
    """One weight's result: how many of its entries were checked and the worst of them."""

    weight: str  # "<layer>/<weight>"
    layer: str
    shape: tuple[int, ...]
    checked: int
    total: int
    worst_relative_error: float
    analytic: float  # the entry with the worst error: both gradients
    numeric: float

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "shape": list(self.shape)}


def random_inputs(plan, samples: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float64 inputs (standard normal) or indices (below every Embedding's input_dim
    reading them) for each model input; unknown axes get length 4."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for model_input in plan.inputs:
        shape = (samples,) + tuple(4 if d is None else d for d in model_input.shape[1:])
        if model_input.integer:
            limits = [node.layer.input_dim for node in plan.nodes
                      if model_input.name in node.inputs and hasattr(node.layer, "input_dim")]
            inputs[model_input.name] = rng.integers(0, min(limits, default=2), size=shape)
        else:
            inputs[model_input.name] = rng.normal(size=shape)
    return inputs


def check_model(graph, x: Any, *, max_per_weight: int = 20, training: bool = False,
                seed: int = 0) -> list[WeightCheck]:
    """Each trainable weight of a float64 `graph` checked on inputs `x`, in Keras order.

    f = sum(outputs · R) + activity and weight penalties (what training differentiates, with
    the loss replaced by a random projection). Training-mode randomness (dropout, noise) is
    fixed by reseeding every pass, so f is a deterministic function of the weights.
    """
    if graph.dtype != np.float64:
        raise ValueError("gradient checks need a float64 Graph")

    def forward():
        return graph.forward(x, training=training, rng=np.random.default_rng(seed + 7))

    output = forward()
    outputs = output if isinstance(output, dict) else {None: output}
    projection_rng = np.random.default_rng(seed + 3)
    projections = {ref: projection_rng.normal(size=value.shape) for ref, value in outputs.items()}

    def f() -> float:
        out = forward()
        out = out if isinstance(out, dict) else {None: out}
        total = sum(float(np.sum(out[ref] * projections[ref])) for ref in projections)
        return total + graph.activity_penalty + graph.penalty()

    forward()
    graph.backward(projections if None not in projections else projections[None])
    graph.add_penalty_gradients()
    analytic = {key: grad.copy() for key, grad in graph.grads.items()}
    pick = np.random.default_rng(seed + 11)
    results = []
    for key, grad in analytic.items():
        node, _ = graph.weight_specs[key]
        size = grad.size
        indices = (np.arange(size) if size <= max_per_weight
                   else np.sort(pick.choice(size, max_per_weight, replace=False)))
        numeric = numerical_gradient(f, graph.weights[key], indices)
        chosen = grad.reshape(-1)[indices]
        scale = np.maximum(np.maximum(np.abs(chosen), np.abs(numeric)), FLOOR)
        errors = np.abs(chosen - numeric) / scale
        worst = int(np.argmax(errors)) if len(errors) else 0
        results.append(WeightCheck(
            key, node.name, tuple(grad.shape), len(indices), size,
            float(errors[worst]) if len(errors) else 0.0,
            float(chosen[worst]) if len(errors) else 0.0,
            float(numeric[worst]) if len(errors) else 0.0))
    return results


def worst(results: list[WeightCheck]) -> float:
    return max((r.worst_relative_error for r in results), default=0.0)


def parameters_checked(results: list[WeightCheck]) -> tuple[int, int]:
    return sum(r.checked for r in results), sum(r.total for r in results)


__all__ = [
    "FLOOR", "STEP", "WeightCheck", "assert_close", "check_graph", "check_layer", "check_model",
    "init_layer_weights", "numerical_gradient", "parameters_checked", "random_inputs", "worst",
]
