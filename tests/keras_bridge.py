"""Build the Keras 3 twin of a layerctl Plan, for oracle tests (the `oracle` extra only).

Weights are copied in by name afterwards, so only arguments that shape the computation are
passed; initializers, regularizers and constraints are left at Keras's defaults.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="Keras oracle tests need the `oracle` extra "
                                            "(pip install -e '.[test,oracle]')")

SKIPPED_ARGUMENTS = {
    "type", "name", "inputs", "input_shape", "input_dim", "input_length", "trainable",
    "kernel_initializer", "bias_initializer", "recurrent_initializer", "embeddings_initializer",
    "beta_initializer", "gamma_initializer", "moving_mean_initializer",
    "moving_variance_initializer", "kernel_regularizer", "bias_regularizer",
    "recurrent_regularizer", "embeddings_regularizer", "activity_regularizer", "beta_regularizer",
    "gamma_regularizer", "kernel_constraint", "bias_constraint", "recurrent_constraint",
    "embeddings_constraint", "beta_constraint", "gamma_constraint", "seed", "synchronized",
    "depthwise_initializer", "pointwise_initializer", "depthwise_regularizer",  # convolution
    "pointwise_regularizer", "depthwise_constraint", "pointwise_constraint",  # convolution
}


def keras_layer(layer):
    skipped = SKIPPED_ARGUMENTS - ({"input_dim"} if layer.keras_class == "Embedding" else set())
    arguments = {k: v for k, v in layer.model_dump().items() if k not in skipped}
    if "activation" in arguments and arguments["activation"] is None:
        arguments["activation"] = "linear"
    arguments = {k: tuple(v) if isinstance(v, list) else v for k, v in arguments.items()}
    cls = getattr(keras.layers, layer.keras_class)
    return cls(name=layer.name, trainable=layer.trainable, **arguments)


def keras_model(plan, dtype="float32"):
    """A functional Keras model with the plan's layers, names and wiring."""
    input_dtype = "int32" if plan.integer_input else dtype
    inputs = keras.Input(shape=plan.input_shape[1:], dtype=input_dtype, name="input")
    tensors = {"input": inputs}
    for node in plan.nodes:
        layer = keras_layer(node.layer)
        sources = [tensors[s] for s in node.inputs]
        tensors[node.name] = layer(sources if node.layer.max_inputs > 1 else sources[0])
    return keras.Model(inputs, tensors[plan.output], name=plan.name)


def copy_weights(model, weights: dict[str, np.ndarray]) -> None:
    """Copy layerctl weights ("layer/weight") into the Keras model, by name."""
    for layer in model.layers:
        values = [weights[f"{layer.name}/{w.name}"] for w in layer.weights
                  if f"{layer.name}/{w.name}" in weights]
        if layer.weights:
            assert len(values) == len(layer.weights), layer.name
            layer.set_weights(values)


def run_keras(model, x, training: bool) -> np.ndarray:
    """The model's output as a NumPy array (whatever the backend's tensor type)."""
    return keras.ops.convert_to_numpy(model(x, training=training))
