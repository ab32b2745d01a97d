"""HDF5 reading for `layerctl import` (the optional `import` extra: h5py).

`open_hdf5` opens a file or bytes, with one clear line when h5py is missing or the file is not
readable HDF5 (truncated, damaged). `keras3_layer_weights` reads a Keras 3 `model.weights.h5`
(`layers/<name>/vars/<i>`, nested objects such as an LSTM's `cell` after the layer's own
variables) as each layer's arrays in Keras's order; `place_weights` gives them layerctl's keys
(`<layer>/<weight>`) by matching that order with the plan's, checking every shape.

Keras writes a layer's sub-objects under their attribute names, which HDF5 lists
alphabetically (`key_dense` before `query_dense`, `backward_layer` before `forward_layer`); the
layers with several sub-objects get them back in the order of their `weights`, which is
layerctl's, from `CHILD_ORDER`. Sub-objects of equal shapes would otherwise swap silently.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from layerctl.errors import LayerctlError, Location

MISSING_H5PY = "reading .keras and .h5 files needs h5py: pip install 'layerctl[import]'"


class HDF5Error(LayerctlError):
    """An HDF5 source cannot be read."""

    code = "LC601"


def h5py_module():
    try:
        import h5py
    except ImportError:
        raise HDF5Error(MISSING_H5PY) from None
    return h5py


def open_hdf5(source: str | bytes, where: Location) -> Any:
    h5py = h5py_module()
    try:
        return h5py.File(io.BytesIO(source) if isinstance(source, bytes) else source, "r")
    except OSError as error:
        raise HDF5Error(f"not a readable HDF5 file (truncated or damaged): {error}",
                        where) from None


# Keras class -> its sub-objects in the order of the layer's `weights`
CHILD_ORDER = {
    "MultiHeadAttention": ("query_dense", "key_dense", "value_dense", "output_dense"),
    "Bidirectional": ("forward_layer", "backward_layer"),
}


def _ordered_datasets(group, h5py, keras_class: str | None = None) -> list[np.ndarray]:
    """The arrays of one Keras 3 object: its `vars` in index order, then its sub-objects'."""
    out = []
    if "vars" in group:
        names = sorted(group["vars"], key=lambda n: int(n) if n.isdigit() else 1 << 30)
        out += [np.asarray(group["vars"][n]) for n in names]
    children = [n for n in group if n != "vars" and isinstance(group[n], h5py.Group)]
    order = CHILD_ORDER.get(keras_class, ())
    children.sort(key=lambda n: (order.index(n) if n in order else len(order), n))
    for name in children:
        out += _ordered_datasets(group[name], h5py)
    return out


def keras3_layer_weights(file, groups: dict[str, str]) -> dict[str, list[np.ndarray]]:
    """The arrays of each of `groups` (path under `layers/`, `functional/layers/conv2d` for a
    nested model's layer -> its Keras class) in Keras's order; a group the file lacks has
    none."""
    h5py = h5py_module()
    layers = file.get("layers")
    out = {}
    for path, keras_class in groups.items():
        group = layers.get(path) if layers is not None else None
        out[path] = _ordered_datasets(group, h5py, keras_class) \
            if isinstance(group, h5py.Group) else []
    return out


def place_weights(plan, arrays: dict[str, list[np.ndarray]], where: Location
                  ) -> dict[str, np.ndarray]:
    """layerctl's weights of `plan` from each layer's arrays in Keras's order."""
    from layerctl.graph import Graph

    expected = Graph(plan).weights
    nodes = {n.name for n in plan.nodes}
    by_layer: dict[str, list[str]] = {}
    for key in expected:  # a wrapper's or MHA's keys have more segments: `bi/forward_lstm/bias`
        parts = key.split("/")
        owner = next((p for p in ("/".join(parts[:k]) for k in range(len(parts) - 1, 0, -1))
                      if p in nodes), key.rsplit("/", 1)[0])
        by_layer.setdefault(owner, []).append(key)
    problems, out = [], {}
    for layer, keys in by_layer.items():
        values = arrays.get(layer)
        if not values or len(values) != len(keys):
            got = "none" if values is None else len(values)
            problems.append(f"layer '{layer}': {len(keys)} weights expected, the file has {got}")
            continue
        for key, value in zip(keys, values, strict=True):
            if value.shape != expected[key].shape:
                problems.append(f"'{key}': shape {value.shape} in the file, "
                                f"{expected[key].shape} in the model")
            out[key] = value.astype(np.float32, copy=False)
    extra = sorted(set(arrays) - set(by_layer) - {n for n, v in arrays.items() if not v})
    problems += [f"layer '{name}' holds weights the model has no place for" for name in extra]
    if problems:
        raise HDF5Error("the weights do not fit the model: " + "; ".join(problems), where)
    return out


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def legacy_model(file, where: Location) -> tuple[str, str, str | None]:
    """(model_config JSON, keras_version, backend) of a Keras 1/2 `.h5` model file."""
    if "model_config" not in file.attrs:
        if "layer_names" in file.attrs:
            raise HDF5Error("a weights-only .h5 file (save_weights) holds no model; import the "
                            "model's JSON config or full .h5 file instead", where)
        raise HDF5Error("no `model_config` attribute: not a Keras 1/2 model file", where)
    version = _text(file.attrs.get("keras_version", b"1"))
    backend = file.attrs.get("backend")
    return _text(file.attrs["model_config"]), version, None if backend is None else _text(backend)


def legacy_layer_weights(file, where: Location) -> dict[str, list[np.ndarray]]:
    """Each layer's arrays, in the file's `weight_names` order, by Keras layer name."""
    group = file["model_weights"] if "model_weights" in file else file
    out = {}
    for name in (_text(n) for n in group.attrs.get("layer_names", [])):
        if name not in group:
            raise HDF5Error(f"layer '{name}' is listed but has no weights group", where)
        layer = group[name]
        try:
            out[name] = [np.asarray(layer[_text(w)])
                         for w in layer.attrs.get("weight_names", [])]
        except (KeyError, OSError) as error:
            raise HDF5Error(f"layer '{name}': a weight cannot be read ({error})", where) from None
    return out


def convert_legacy(kind: str, arrays: list[np.ndarray], keras1: bool, channels_first: bool,
                   theano: bool) -> list[np.ndarray]:
    """Keras 1/2 weight layouts in Keras 3's, as Keras 2's loader converted them
    (`preprocess_weights_for_loading`): Keras 1 LSTM's twelve per-gate arrays (stored i, c,
    f, o; W, U, b each) packed into kernel, recurrent_kernel, bias in i, f, c, o order;
    Keras 1 channels-first conv kernels (filters, in, rows, cols) transposed to (rows, cols,
    in, filters); kernels of files saved by Theano flipped on their spatial axes (Theano
    convolves, TensorFlow and Keras 3 correlate)."""
    arrays = list(arrays)
    if kind == "LSTM" and keras1 and len(arrays) == 12:
        w = arrays
        arrays = [np.concatenate([w[0], w[6], w[3], w[9]], axis=-1),
                  np.concatenate([w[1], w[7], w[4], w[10]], axis=-1),
                  np.concatenate([w[2], w[8], w[5], w[11]], axis=-1)]
    if kind in ("Conv1D", "Conv2D", "Conv2DTranspose") and arrays:
        kernel = arrays[0]
        if kind == "Conv2D" and keras1 and channels_first:
            kernel = np.transpose(kernel, (2, 3, 1, 0))
        elif kind != "Conv2D" and keras1:
            raise HDF5Error(f"Keras 1 {kind} weights are not converted yet")
        if theano:
            spatial = kernel.ndim - 2
            kernel = kernel[(slice(None, None, -1),) * spatial]
        arrays[0] = np.ascontiguousarray(kernel)
    return arrays
