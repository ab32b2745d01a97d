"""Merge layers, joining several branches of a DAG spec: the element-wise merges (Add, Subtract,
Multiply, Average, Maximum, Minimum), Concatenate and Dot, each with Keras 3's mask rule."""

from layerctl.layers.merge.concatenate import Concatenate
from layerctl.layers.merge.dot import Dot
from layerctl.layers.merge.elementwise import (
    Add,
    Average,
    ElementwiseMerge,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
)

__all__ = ["Add", "Average", "Concatenate", "Dot", "ElementwiseMerge", "Maximum", "Minimum",
           "Multiply", "Subtract"]
