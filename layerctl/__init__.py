"""layerctl: declarative neural networks from YAML specs, computed with NumPy, Keras semantics.

The package keeps its import light: `layerctl shapes` and `layerctl validate` must start fast, so
heavy modules (the graph, training, rich rendering) are imported where they are used.
"""

__version__ = "0.1.0"
