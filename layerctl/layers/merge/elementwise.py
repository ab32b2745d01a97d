"""Element-wise merges: Add, Subtract, Multiply, Average, Maximum, Minimum (Keras 3's `Merge`).

Shapes follow Keras's broadcasting rule: the non-batch axes are aligned from the right (an
input of lower rank gains axes right after the batch axis), and a 1 stretches to the other size.
Every input is broadcast to the output shape first, so backward sums each gradient back to its
input's shape.

Masks, as Keras 3 (keras/src/layers/merging/base_merge.py): the output mask is the OR of the
inputs' masks, and there is none when any input has none. Add, Subtract and Average compute the
same numbers with or without masks. Multiply treats masked entries as 1 and zeroes the entries
masked in every input; Maximum and Minimum let a masked entry take the running result's value
(so it never wins); both only when all inputs have the same rank (Keras's reshaping for
different ranks drops the masks before the math).

At ties, Maximum and Minimum split the gradient equally between the tied operands, pair by pair
as Keras applies them: Keras's gradient on the torch and JAX backends (TensorFlow's gives it
all to the first operand).
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Literal

import numpy as np

from layerctl.layers.base import IncompatibleShape, Layer, Shape, format_shape


def broadcast_shape(input_shapes: list[Shape]) -> Shape:
    """Keras's `_compute_elemwise_op_output_shape` over all inputs, batch axis first."""
    result = list(input_shapes[0][1:])
    for shape in input_shapes[1:]:
        longer, shorter = (result, list(shape[1:]))
        if len(longer) < len(shorter):
            longer, shorter = shorter, longer
        head = longer[: len(longer) - len(shorter)]
        tail = []
        for i, j in zip(longer[len(head):], shorter, strict=True):
            if i is None or j is None:
                tail.append(None)
            elif i == 1 or j == 1 or i == j:
                tail.append(j if i == 1 else i)
            else:
                raise IncompatibleShape(
                    "Inputs have incompatible shapes. Received shapes "
                    f"{format_shape(tuple(longer))} and {format_shape(tuple(shorter))}")
        result = head + tail
    batches = {s[0] for s in input_shapes} - {None}
    return (batches.pop() if len(batches) == 1 else None,) + tuple(result)


def _aligned(xs: list[np.ndarray]) -> list[np.ndarray]:
    """Inputs of lower rank gain axes after the batch axis (as Keras reshapes them)."""
    rank = max(x.ndim for x in xs)
    return [x.reshape(x.shape[:1] + (1,) * (rank - x.ndim) + x.shape[1:]) for x in xs]


def _sum_to_shape(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The gradient of a broadcast: sum over the axes the input was stretched along."""
    aligned = shape[:1] + (1,) * (grad.ndim - len(shape)) + shape[1:]
    axes = tuple(i for i, (g, s) in enumerate(zip(grad.shape, aligned, strict=True)) if s != g)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _sum(xs: list[np.ndarray]) -> np.ndarray:
    """x₁ + x₂ + … in input order, into one new array."""
    total = np.array(xs[0], copy=True)
    for x in xs[1:]:
        total += x
    return total


def _element_mask(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """A (batch, ...) mask stretched over the features: Keras's expand_dims(-1) + broadcast_to."""
    return None if mask is None else np.broadcast_to(mask[..., None], shape)


class ElementwiseMerge(Layer):
    """Shapes and masks shared by the element-wise merges; subclasses write the math."""

    supports_masking = True
    min_inputs = 2
    max_inputs = 1_000

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        return broadcast_shape(input_shapes)

    def emits_mask(self, receives_mask: Any) -> bool:
        # Keras: a mask only when every input has one (the plan says which inputs have one)
        if isinstance(receives_mask, list | tuple):
            return bool(receives_mask) and all(receives_mask)
        return bool(receives_mask)

    def output_mask(self, xs, masks):
        if not masks or any(m is None for m in masks):
            return None
        return functools.reduce(np.logical_or, masks)

    def _inputs(self, xs: list[np.ndarray]) -> tuple[list[np.ndarray], bool]:
        """The inputs broadcast to the output shape, and whether their ranks were equal (only
        then do Keras's mask-aware merges see the masks)."""
        same_rank = len({x.ndim for x in xs}) == 1
        aligned = _aligned(xs)
        shape = np.broadcast_shapes(*(x.shape for x in aligned))
        return [np.broadcast_to(x, shape) for x in aligned], same_rank

    def _element_masks(self, xs: list[np.ndarray], masks: list | None,
                       shape: tuple[int, ...], same_rank: bool) -> list[np.ndarray | None]:
        if masks is None or not same_rank:
            return [None] * len(xs)
        return [_element_mask(m, shape) for m in masks]

    def backward(self, weights, cache, dy):
        grads, shapes = self._gradients(cache, dy)
        return [_sum_to_shape(g, s) for g, s in zip(grads, shapes, strict=True)], {}

    def _gradients(self, cache: Any, dy: np.ndarray) -> tuple[list[np.ndarray], list]:
        raise NotImplementedError


class Add(ElementwiseMerge):
    """y = x₁ + x₂ + … (in input order)."""

    type: Literal["Add"]
    keras_class = "Add"

    def forward(self, weights, xs, masks, training, rng):
        full, _ = self._inputs(xs)
        return _sum(full), [x.shape for x in xs]

    def _gradients(self, cache, dy):
        return [dy] * len(cache), cache


class Subtract(ElementwiseMerge):
    """y = x₁ − x₂, for exactly two inputs."""

    type: Literal["Subtract"]
    keras_class = "Subtract"
    min_inputs = 1  # so that Keras's own message reports any other count

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        if len(input_shapes) != 2:
            raise IncompatibleShape(
                "A `Subtract` layer should be called on exactly 2 inputs. Received: input_shape=["
                + ", ".join(format_shape(s) for s in input_shapes) + "]")
        return super().output_shape(input_shapes)

    def forward(self, weights, xs, masks, training, rng):
        full, _ = self._inputs(xs)
        return full[0] - full[1], [x.shape for x in xs]

    def _gradients(self, cache, dy):
        return [dy, -dy], cache


class Average(ElementwiseMerge):
    """y = (x₁ + x₂ + …) / n."""

    type: Literal["Average"]
    keras_class = "Average"

    def forward(self, weights, xs, masks, training, rng):
        full, _ = self._inputs(xs)
        total = _sum(full)
        total /= total.dtype.type(len(xs))
        return total, [x.shape for x in xs]

    def _gradients(self, cache, dy):
        share = dy / dy.dtype.type(len(cache))
        return [share] * len(cache), cache


class Multiply(ElementwiseMerge):
    """y = x₁ · x₂ · …; a masked entry counts as 1, and an entry masked in every input is 0."""

    type: Literal["Multiply"]
    keras_class = "Multiply"
    reads_mask = True

    def forward(self, weights, xs, masks, training, rng):
        full, same_rank = self._inputs(xs)
        shape = full[0].shape
        element_masks = self._element_masks(xs, masks, shape, same_rank)
        factors = [x if m is None else np.where(m, x, x.dtype.type(1))
                   for x, m in zip(full, element_masks, strict=True)]
        y = functools.reduce(np.multiply, factors[1:], factors[0])
        kept = None
        if all(m is not None for m in element_masks):  # as Keras: only when all are masked
            kept = functools.reduce(np.logical_or, element_masks)
            y = np.where(kept, y, y.dtype.type(0))
        return y, (factors, element_masks, kept, [x.shape for x in xs])

    def _gradients(self, cache, dy):
        factors, element_masks, kept, shapes = cache
        if kept is not None:
            dy = np.where(kept, dy, dy.dtype.type(0))
        # d/d fᵢ of the product = dy · (product of the others), from prefix and suffix products
        # (no division, so zeros are fine)
        n = len(factors)
        before = [None] * n
        running = None
        for i in range(n):
            before[i] = running
            running = factors[i] if running is None else running * factors[i]
        grads, after = [None] * n, None
        for i in reversed(range(n)):
            others = [p for p in (before[i], after) if p is not None]
            g = dy * functools.reduce(np.multiply, others) if others else dy
            grads[i] = g if element_masks[i] is None else np.where(element_masks[i], g, 0)
            after = factors[i] if after is None else factors[i] * after
        return grads, shapes


class _Extremum(ElementwiseMerge):
    """Maximum and Minimum: Keras's `_apply_merge_op_and_or_mask`, pair by pair."""

    reads_mask = True
    larger: ClassVar[bool]

    def _pick(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.maximum(a, b) if self.larger else np.minimum(a, b)

    def forward(self, weights, xs, masks, training, rng):
        full, same_rank = self._inputs(xs)
        shape = full[0].shape
        element_masks = self._element_masks(xs, masks, shape, same_rank)
        result, result_mask, steps = full[0], element_masks[0], []
        for x, mask in zip(full[1:], element_masks[1:], strict=True):
            if mask is not None:  # a masked entry takes the running result's value
                x = np.where(mask, x, result)
            if result_mask is not None:  # a masked running entry takes the new value
                left = np.where(result_mask, result, x)
            else:
                left = result
            steps.append((mask, result_mask, left, x))
            result_mask = (None if mask is None or result_mask is None
                           else result_mask | mask)
            result = self._pick(left, x)
        return result, (steps, [x.shape for x in xs])

    def _gradients(self, cache, dy):
        steps, shapes = cache
        grads: list[np.ndarray] = [None] * (len(steps) + 1)
        d_result = dy
        for i in reversed(range(len(steps))):
            mask, result_mask, left, x = steps[i]
            wins_left = left > x if self.larger else left < x
            tie = left == x
            half = d_result * d_result.dtype.type(0.5)
            d_left = np.where(tie, half, np.where(wins_left, d_result, 0))
            d_x = np.where(tie, half, np.where(wins_left, 0, d_result))
            if result_mask is not None:
                d_x = d_x + np.where(result_mask, 0, d_left)
                d_left = np.where(result_mask, d_left, 0)
            if mask is not None:
                d_left = d_left + np.where(mask, 0, d_x)
                d_x = np.where(mask, d_x, 0)
            grads[i + 1] = d_x
            d_result = d_left
        grads[0] = d_result
        return grads, shapes


class Maximum(_Extremum):
    """y = max(x₁, x₂, …), element-wise."""

    type: Literal["Maximum"]
    keras_class = "Maximum"
    larger = True


class Minimum(_Extremum):
    """y = min(x₁, x₂, …), element-wise."""

    type: Literal["Minimum"]
    keras_class = "Minimum"
    larger = False
