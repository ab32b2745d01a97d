"""Central-difference gradient checks (float64) for layers and whole graphs."""

from __future__ import annotations

import numpy as np

from layerctl import initializers

STEP = 1e-6


def numerical_gradient(f, array: np.ndarray) -> np.ndarray:
    """d f / d array by central differences, perturbing `array` in place."""
    grad = np.zeros_like(array)
    flat, flat_grad = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + STEP
        up = f()
        flat[i] = saved - STEP
        down = f()
        flat[i] = saved
        flat_grad[i] = (up - down) / (2 * STEP)
    return grad


def assert_close(analytic, numeric, what: str, rtol: float = 1e-5, atol: float = 1e-7) -> None:
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol, err_msg=what)


def init_layer_weights(layer, input_shape, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = {}
    for spec in layer.weight_specs(input_shape):
        if callable(spec.initializer):
            weights[spec.name] = spec.initializer(spec.shape, rng, np.float64)
        else:
            weights[spec.name] = initializers.initialize(spec.initializer, spec.shape, rng,
                                                         np.float64)
        # random values everywhere (also for zero-initialised biases) so every path is exercised
        weights[spec.name] = weights[spec.name] + rng.normal(0, 0.3, spec.shape)
    return weights


def check_layer(layer, x, *, mask=None, training=False, weights=None, seed=0,
                check_input=True, rtol=1e-5, atol=1e-7):
    """Compare a layer's backward against central differences of sum(forward · R)."""
    multi = layer.takes_list(len(x) if isinstance(x, list) else 1)
    shapes = [(None,) + tuple(a.shape[1:]) for a in x] if multi else (None,) + tuple(x.shape[1:])
    if weights is None:
        weights = init_layer_weights(layer, shapes, seed)
    rng_seed = 1234

    def run():
        y, cache = layer.forward(weights, x, mask, training, np.random.default_rng(rng_seed))
        return y, cache

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
    """Gradient check of a whole float64 Graph w.r.t. every trainable parameter."""
    y = graph.forward(x, training=training, rng=np.random.default_rng(7))
    projection = np.random.default_rng(3).normal(size=y.shape)

    def f():  # the loss a backward pass differentiates: output projection + activity penalties
        out = graph.forward(x, training=training, rng=np.random.default_rng(7))
        return float(np.sum(out * projection)) + graph.activity_penalty

    graph.forward(x, training=training, rng=np.random.default_rng(7))
    graph.backward(projection)
    analytic = graph.gradients.copy()
    assert_close(analytic, numerical_gradient(f, graph.trainable), "d trainable", rtol, atol)
