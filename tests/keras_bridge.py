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
    skipped |= set(getattr(layer, "keras_call_options", ()))  # passed when called
    arguments = {k: v for k, v in layer.model_dump(by_alias=True).items() if k not in skipped}
    if "activation" in arguments and arguments["activation"] is None:
        arguments["activation"] = "linear"
    arguments = {k: tuple(v) if isinstance(v, list) else v for k, v in arguments.items()}
    arguments.update(wrapped_layers(layer))
    cls = getattr(keras.layers, layer.keras_class)
    built = cls(name=layer.name, **arguments)  # SpatialDropout1D/2D take no `trainable` argument
    built.trainable = layer.trainable
    return built


def wrapped_layers(layer) -> dict:
    """A wrapper's inner layers as Keras layers, named so that Keras's variable paths are
    layerctl's keys (Bidirectional prefixes `forward_`/`backward_` to the layer's own name)."""
    if layer.keras_class == "TimeDistributed":
        return {"layer": keras_layer(layer.inner())}
    if layer.keras_class != "Bidirectional":
        return {}
    from layerctl.layers.wrappers import inner_name

    inner = {"layer": keras_layer(layer.layer.model_copy(update={"name": inner_name(layer.layer)}))}
    if layer.backward_layer is not None:
        inner["backward_layer"] = keras_layer(layer.directions()[1])
    return inner


def keras_model(plan, dtype="float32"):
    """A functional Keras model with the plan's layers, names and wiring (see
    keras_graph_model); one input and one output are passed bare, not as lists."""
    return keras_graph_model(plan, dtype)


KERAS_CELLS = ("lstm_cell", "gru_cell", "simple_rnn_cell")


def weight_name(layer, variable) -> str:
    """A variable's name inside its layer as layerctl names it: its path below the layer
    without a recurrent cell (`kernel`; `forward_lstm/kernel` in a Bidirectional)."""
    path = variable.path.removeprefix(f"{layer.path}/") if layer.path else variable.name
    return "/".join(part for part in path.split("/") if part not in KERAS_CELLS)


def copy_weights(model, weights: dict[str, np.ndarray]) -> None:
    """Copy layerctl weights ("layer/weight") into the Keras model, by name."""
    for layer in model.layers:
        owner = layer.name.replace("__", "/")
        values = [weights[f"{owner}/{weight_name(layer, w)}"] for w in layer.weights
                  if f"{owner}/{weight_name(layer, w)}" in weights]
        if layer.weights:
            assert len(values) == len(layer.weights), layer.name
            layer.set_weights(values)


def run_keras(model, x, training: bool):
    """The model's output as a NumPy array (whatever the backend's tensor type); several
    outputs as a list."""
    y = model(x, training=training)
    if isinstance(y, list | tuple):
        return [keras.ops.convert_to_numpy(v) for v in y]
    return keras.ops.convert_to_numpy(y)


# ---- general graphs: several inputs and outputs, shared layers, blocks -----------------------
def keras_name(name: str) -> str:
    """Keras refuses '/' in layer names; block members are flattened as `stem__conv2d`."""
    return name.replace("/", "__")


def keras_graph_model(plan, dtype="float32"):
    """The plan as one flat functional Keras model built independently of layerctl's export:
    named inputs, the plan's outputs, one Keras layer object per owner (so an `apply:` node
    calls the same object again and shares its weights), block members flattened."""
    tensors = {i.name: keras.Input(shape=i.shape[1:], dtype="int32" if i.integer else dtype,
                                   name=i.name) for i in plan.inputs}
    layers = {}
    for node in plan.nodes:
        if node.owner not in layers:
            layers[node.owner] = keras_layer(
                node.layer.model_copy(update={"name": keras_name(node.owner)}))
        sources = [tensors[s] for s in node.inputs]
        keras_call = getattr(node.layer, "keras_call", None)  # tensors by call argument
        result = (keras_call(layers[node.owner], sources) if keras_call is not None
                  else layers[node.owner](sources if node.list_input else sources[0]))
        results = result if isinstance(result, list | tuple) else [result]
        for k, value in enumerate(results):
            tensors[node.name if k == 0 else f"{node.name}.{k}"] = value
    inputs = [tensors[i.name] for i in plan.inputs]
    outputs = [tensors[o] for o in plan.outputs]
    return keras.Model(inputs if len(inputs) > 1 else inputs[0],
                       outputs if len(outputs) > 1 else outputs[0], name=plan.name)


def keras_outputs_and_gradients(model, inputs: list[np.ndarray], projections: list[np.ndarray]):
    """The model's outputs, and d sum(output_k · projection_k) / d weight for every weight,
    keyed as layerctl keys them (torch backend autograd)."""
    import torch

    tensors = [torch.as_tensor(x) for x in inputs]
    outputs = model(tensors if len(tensors) > 1 else tensors[0], training=False)
    outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
    total = sum((out * torch.as_tensor(p, dtype=out.dtype)).sum()
                for out, p in zip(outputs, projections, strict=True))
    variables = [(layer, w) for layer in model.layers for w in layer.trainable_weights]
    if not variables:  # a model of merges only
        return [out.detach().numpy() for out in outputs], {}
    grads = torch.autograd.grad(total, [w.value for _, w in variables], allow_unused=True)
    keyed = {}
    for (layer, w), grad in zip(variables, grads, strict=True):
        keyed[f"{layer.name.replace('__', '/')}/{weight_name(layer, w)}"] = (
            np.zeros(tuple(w.shape)) if grad is None else grad.detach().numpy())
    return [out.detach().numpy() for out in outputs], keyed
