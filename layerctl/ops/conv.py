"""N-dimensional grouped convolution (Keras Conv1D/Conv2D math) as pure NumPy, channels_last.

Forward is a cross-correlation (the kernel is not flipped), as Keras computes it:

    y[b, o…, f] = Σ_{t…, c} x_pad[b, o·s + t·d, c_g] · kernel[t…, c, f]

where x_pad is x zero-padded per `padding` (see `windows.py`) and c_g runs over the input
channels of the group of filter f (group = f // (F/groups), channels group·Cg … group·Cg+Cg−1).
The kernel keeps Keras's layout (*kernel_size, Cin/groups, F).

The work is im2col: one strided view of the padded input holds every window, one contiguous copy
lays it out as (groups, B·out, K·Cg) and ONE batched matmul with the kernel gives y (inputs
with few channels copy tap by tap into the transposed layout instead, see `_im2col_tap_major`).
Backward reuses those cached columns: dkernel = colsᵀ·dy is one matmul. dx is the transposed
convolution. With stride 1 it is an ordinary convolution of the padded dy with the kernel
flipped in space (im2col of dy, one matmul). With larger strides it runs without any scatter:
for each kernel tap (≤ k_h·k_w iterations, each over the whole batch) dy·kernel[tap]ᵀ is added
to the strided slice of the input that tap read (cells of the padding are never written);
distinct windows hit distinct cells within one tap, so the adds never collide.

The copies and adds, which NumPy runs on one core, run on slices of the batch at once
(`layerctl.ops.parallel`); the matmuls are BLAS's and thread themselves.

The transposed convolution (Keras Conv1DTranspose/Conv2DTranspose) is that dx computation run
forwards: its output is the input gradient of the convolution whose geometry
`transpose_geometry` gives, with Keras's kernel layout (*k, filters, Cin) unchanged. Its own
backward is then a plain convolution: dx = conv(dy) by im2col of dy, and dkernel = colsᵀ·x
from the same columns.

Memory: the cache holds the im2col columns, k_h·k_w times the size of x, to spare backward a
second copy; a stride-1 dx needs columns of dy (k_h·k_w times its size), a strided one a
(rows, Cg) buffer reused across taps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from layerctl.ops.blas import matmul
from layerctl.ops.parallel import for_each_chunk
from layerctl.ops.windows import Geometry, as_tuple, check_padding

IntOrTuple = int | Sequence[int]

# Inputs with at most this many channels (and one group) use the tap-by-tap im2col.
TAP_MAJOR_CHANNELS = 4


def conv_forward(x: np.ndarray, kernel: np.ndarray, strides: IntOrTuple = 1,
                 padding: str = "valid", dilation: IntOrTuple = 1,
                 groups: int = 1) -> tuple[np.ndarray, tuple]:
    """Cross-correlate x (B, *spatial, Cin) with kernel (*k, Cin//groups, F): y (B, *out, F).

    No bias and no activation. Raises ValueError with Keras's text when an output axis would be
    empty. The returned y never shares memory with the cache, so callers may add a bias in place.
    """
    geometry = _conv_geometry(x.shape, kernel.shape, strides, padding, dilation, groups)
    cols = _im2col(geometry, x, groups)
    weights = _grouped_kernel(kernel, groups)
    y = matmul(cols, weights)                                  # (g, rows, F/g)
    batch, filters = x.shape[0], kernel.shape[-1]
    y = _ungroup(y).reshape(batch, *geometry.out, filters)
    return y, (geometry, groups, kernel, cols, x.shape)


def conv_backward(cache: tuple, dy: np.ndarray,
                  need_dx: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """Gradients (dx, dkernel) of `conv_forward` given dy (B, *out, F); dx is None when not
    `need_dx` (a first layer, whose input is data)."""
    geometry, groups, kernel, cols, x_shape = cache
    filters = kernel.shape[-1]
    dy_grouped = dy.reshape(-1, groups, filters // groups).transpose(1, 0, 2)   # (g, rows, F/g)
    dkernel = _ungroup_kernel(matmul(cols.transpose(0, 2, 1), dy_grouped), kernel.shape)
    if not need_dx:
        return None, dkernel
    return _conv_input_grad(geometry, kernel, dy_grouped, x_shape), dkernel


def _conv_input_grad(geometry: Geometry, kernel: np.ndarray, dy_grouped: np.ndarray,
                     x_shape: tuple[int, ...]) -> np.ndarray:
    """dx of the convolution `geometry` describes, from dy as (groups, rows, F/g).

    With stride 1 it is itself a stride-1 convolution (`_full_conv_input_grad`); otherwise the
    taps scatter into strided slices (`_tap_input_grad`).
    """
    full = _full_conv_geometry(geometry)
    if full is None:
        return _tap_input_grad(geometry, kernel, dy_grouped, x_shape)
    return _full_conv_input_grad(full, kernel, dy_grouped, x_shape)


def _full_conv_geometry(geometry: Geometry) -> Geometry | None:
    """For a stride-1 convolution, the geometry of the one whose output is dx: over dy, the
    same window and dilation, padded so that every window that read input cell i is read back
    (span − 1 − pad cells each side: a `valid` conv's dy gets span − 1, a `same` one's the
    rest of the span). None for strides > 1, whose dy would need zeros between its cells, and
    for a padding wider than the window (possible only in a transposed convolution's
    geometry), whose dy would need cropping."""
    if any(s != 1 for s in geometry.strides):
        return None
    spans = [d * (k - 1) + 1 for k, d in zip(geometry.window, geometry.dilation, strict=True)]
    pads = [(span - 1 - lo, span - 1 - hi) for span, (lo, hi) in
            zip(spans, geometry.pads, strict=True)]
    if any(lo < 0 for lo, _ in pads):
        return None
    return Geometry.explicit(geometry.out, geometry.window, geometry.strides,
                             geometry.dilation, pads, geometry.spatial)


def _full_conv_input_grad(full: Geometry, kernel: np.ndarray, dy_grouped: np.ndarray,
                          x_shape: tuple[int, ...]) -> np.ndarray:
    """dx[i] = Σ_t dy[i + pad − t·d] · kernel[t]ᵀ: the cross-correlation of the padded dy with
    the kernel flipped in space and transposed per group, as im2col and ONE batched matmul.

    Measured on a 28×28×32 'same' 3×3 conv, batch 32: 2.5× faster than the per-tap scatter,
    whose strided adds cost four times its matmuls (and its K = F/g contractions are BLAS's
    least efficient).
    """
    groups, _, per_group = dy_grouped.shape
    batch, group_channels = x_shape[0], kernel.shape[-2]
    dy = dy_grouped.transpose(1, 0, 2).reshape(batch, *full.spatial, groups * per_group)
    rank = len(full.window)
    # (*k, Cg, g·F/g) flipped -> (*k, F/g, g·Cg): a kernel whose group g maps dy's filters of
    # group g back onto that group's input channels.
    flipped = kernel[(slice(None, None, -1),) * rank]
    flipped = flipped.reshape(*full.window, group_channels, groups, per_group)
    spatial_axes = tuple(range(rank))
    transposed = flipped.transpose(*spatial_axes, rank + 2, rank + 1, rank).reshape(
        *full.window, per_group, groups * group_channels)
    weights = _grouped_kernel(transposed.astype(np.result_type(kernel, dy), copy=False), groups)
    dx = matmul(_im2col(full, dy, groups), weights)          # (g, rows, Cg)
    return _ungroup(dx).reshape(x_shape)


def _tap_input_grad(geometry: Geometry, kernel: np.ndarray, dy_grouped: np.ndarray,
                    x_shape: tuple[int, ...]) -> np.ndarray:
    """dx: per kernel tap, dy·kernel[tap]ᵀ lands on that tap's strided slice of the input (the
    part of it that is not padding).

    One matmul per tap into a reused buffer, then one add whose source is contiguous, which
    numpy runs far faster than folding a (rows, taps·Cg) product with taps-strided reads. The
    adds run on slices of the batch at once; the matmuls stay on this thread (BLAS threads).
    """
    groups, rows, _ = dy_grouped.shape
    group_channels = kernel.shape[-2]
    taps = int(np.prod(geometry.window))
    # (*k, Cg, g·F/g) -> (taps, g, F/g, Cg): the transposed kernel of each tap and group.
    per_tap = kernel.reshape(taps, group_channels, groups, -1).transpose(0, 2, 3, 1)
    per_tap = np.ascontiguousarray(per_tap, dtype=np.result_type(kernel, dy_grouped))
    product_buffer = np.empty((groups, rows, group_channels), per_tap.dtype)
    batch = x_shape[0]
    dx = np.zeros((batch, *geometry.spatial, groups, group_channels), per_tap.dtype)
    contribution = np.moveaxis(
        product_buffer.reshape(groups, batch, *geometry.out, group_channels), 0, -2)
    for tap, input_slices, output_slices in geometry.interior_taps():
        matmul(dy_grouped, per_tap[tap], out=product_buffer)
        target = dx[(slice(None), *input_slices)]
        source = contribution[(slice(None), *output_slices)]

        def add_rows(rows: slice, target=target, source=source) -> None:
            target[rows] += source[rows]

        for_each_chunk(add_rows, batch, 3 * product_buffer.nbytes)
    return dx.reshape(x_shape)


def _conv_geometry(x_shape: tuple[int, ...], kernel_shape: tuple[int, ...], strides: IntOrTuple,
                   padding: str, dilation: IntOrTuple, groups: int) -> Geometry:
    """Check x against the kernel and return the window geometry (Keras's error when empty)."""
    rank = len(x_shape) - 2
    if rank < 1 or len(kernel_shape) != rank + 2:
        raise ValueError(f"conv expects x (batch, *spatial, channels) and a kernel of rank "
                         f"len(spatial) + 2; received x shape {x_shape}, kernel shape "
                         f"{kernel_shape}")
    if groups < 1 or x_shape[-1] != kernel_shape[-2] * groups or kernel_shape[-1] % groups:
        raise ValueError(f"kernel shape {kernel_shape} does not fit {x_shape[-1]} input channels "
                         f"in groups={groups}: expected (*kernel_size, {x_shape[-1]}//groups, F) "
                         "with F divisible by groups")
    padding = check_padding(padding)
    strides = as_tuple(strides, rank, "strides")
    dilation = as_tuple(dilation, rank, "dilation_rate")
    geometry = Geometry(x_shape[1:-1], kernel_shape[:rank], strides, padding, dilation)
    if geometry.empty:
        raise ValueError(
            "Computed output size would be zero or negative. Received "
            f"inputs shape={tuple(x_shape)}, kernel shape={tuple(kernel_shape)}, "
            f"dilation_rate={dilation}, strides={strides}, padding={padding}.")
    return geometry


def _im2col(geometry: Geometry, x: np.ndarray, groups: int) -> np.ndarray:
    """Every window of the zero-padded x as a (groups, B·out, K·Cg) array.

    Contiguous in that layout, except for inputs with few channels (see `_im2col_tap_major`).
    """
    batch, channels = x.shape[0], x.shape[-1]
    if groups == 1 and channels <= TAP_MAJOR_CHANNELS:
        return _im2col_tap_major(geometry, x)
    grouped = x.reshape(*x.shape[:-1], groups, channels // groups)
    view = np.moveaxis(geometry.windows(geometry.pad(grouped)), -2, 0)   # (g, B, *out, *k, Cg)
    cols = np.empty(view.shape, x.dtype)

    def copy_rows(rows: slice) -> None:
        np.copyto(cols[:, rows], view[:, rows])

    for_each_chunk(copy_rows, batch, 2 * cols.nbytes)              # the single copy
    rows = batch * int(np.prod(geometry.out))
    return cols.reshape(groups, rows, -1)


def _im2col_tap_major(geometry: Geometry, x: np.ndarray) -> np.ndarray:
    """The (1, B·out, K·C) columns as a transposed view of a contiguous (K·C, B·out) array.

    With one channel (grayscale images) a window row is only k_w floats long, and the single
    strided copy of `_im2col` crawls through it element by element; copying one tap at a time
    instead moves whole output rows (k_h·k_w copies over the batch, per channel). Both matmuls
    take the transposed operand as it is, so nothing is copied back.
    """
    x_padded = geometry.pad(x)
    taps = list(geometry.taps())
    channels = x.shape[-1]
    cols = np.empty((len(taps), channels, x.shape[0], *geometry.out), x.dtype)

    def copy_rows(rows: slice) -> None:
        for tap, slices in taps:
            np.copyto(cols[tap][:, rows], np.moveaxis(x_padded[(rows, *slices)], -1, 0))

    for_each_chunk(copy_rows, x.shape[0], 2 * cols.nbytes)
    return cols.reshape(1, len(taps) * channels, -1).transpose(0, 2, 1)


def _grouped_kernel(kernel: np.ndarray, groups: int) -> np.ndarray:
    """Keras kernel (*k, Cg, F) as (groups, K·Cg, F/groups): filter f belongs to group f//(F/g)."""
    filters = kernel.shape[-1]
    return kernel.reshape(-1, groups, filters // groups).transpose(1, 0, 2)


def _ungroup(y: np.ndarray) -> np.ndarray:
    """(g, rows, F/g) -> (rows, F) with the filters of group 0 first."""
    groups, rows, per_group = y.shape
    if groups == 1:
        return y[0]
    return y.transpose(1, 0, 2).reshape(rows, groups * per_group)


def _ungroup_kernel(dkernel: np.ndarray, kernel_shape: tuple[int, ...]) -> np.ndarray:
    """(g, K·Cg, F/g) -> Keras layout (*k, Cg, F), the inverse of `_grouped_kernel`."""
    return np.ascontiguousarray(dkernel.transpose(1, 0, 2)).reshape(kernel_shape)


# ---- transposed convolution: the input gradient of a convolution, and its own gradients -----
def transpose_padding(n: int, k: int, stride: int, padding: str,
                      output_padding: int | None = None, dilation: int = 1
                      ) -> tuple[int, int, int]:
    """(crop before, crop after, output size) along one axis of a transposed convolution.

    The full transposed convolution has (n − 1)·s + K cells (K = d·(k − 1) + 1, the dilated
    kernel); Keras 3 (TensorFlow's rule, which its torch backend reproduces by cropping) keeps
    a window of it: `valid` crops nothing before and adds `output_padding` (default
    max(K, s) − K) zero cells after; `same` pads the dilated input by p = s + K − 2 (without
    output_padding) or K + K mod 2 − 2 + output_padding, min(⌈p/2⌉, K − 1) of it before. A
    negative crop after means zero cells added after the full output.
    """
    span = dilation * (k - 1) + 1
    if padding == "valid":
        before = span - 1
        after = span - 1 + (max(span, stride) - span if output_padding is None else output_padding)
    else:
        total = (stride + span - 2 if output_padding is None
                 else span + span % 2 - 2 + output_padding)
        before = min(total // 2 + total % 2, span - 1)
        after = total - before
    crop_before, crop_after = span - 1 - before, span - 1 - after
    return crop_before, crop_after, (n - 1) * stride + span - crop_before - crop_after


def transpose_geometry(x_shape: tuple[int, ...], kernel_shape: tuple[int, ...],
                       strides: Sequence[int], padding: str,
                       output_padding: Sequence[int] | None, dilation: Sequence[int]) -> Geometry:
    """The geometry of the convolution whose input gradient this transposed convolution is:
    its input is the transposed convolution's output, its output the transposed input."""
    rank = len(x_shape) - 2
    if len(kernel_shape) != rank + 2 or kernel_shape[-1] != x_shape[-1]:
        raise ValueError(f"conv_transpose expects x (batch, *spatial, channels) and a kernel "
                         f"(*kernel_size, filters, channels); received x shape {x_shape}, "
                         f"kernel shape {kernel_shape}")
    paddings = output_padding if output_padding is not None else (None,) * rank
    axes = [transpose_padding(n, k, s, padding, p, d) for n, k, s, p, d in
            zip(x_shape[1:-1], kernel_shape[:rank], strides, paddings, dilation, strict=True)]
    return Geometry.explicit([size for _, _, size in axes], kernel_shape[:rank], strides,
                             dilation, [(lo, hi) for lo, hi, _ in axes], x_shape[1:-1])


def conv_transpose_forward(x: np.ndarray, kernel: np.ndarray, strides: Sequence[int],
                           padding: str = "valid", output_padding: Sequence[int] | None = None,
                           dilation: Sequence[int] | None = None) -> tuple[np.ndarray, tuple]:
    """Transposed convolution of x (B, *n, Cin) with a Keras kernel (*k, filters, Cin):
    y (B, *out, filters), sizes per `transpose_padding`. No bias, no activation.

    It is the input gradient of the convolution `transpose_geometry` describes, whose kernel
    layout (*k, C_in of that conv = filters, its F = Cin) is exactly Keras's transposed one, so
    `_conv_input_grad` computes it as it is (a stride-1 one as a plain convolution of x)."""
    rank = x.ndim - 2
    dilation = (1,) * rank if dilation is None else tuple(dilation)
    geometry = transpose_geometry(x.shape, kernel.shape, tuple(strides), padding,
                                  output_padding, dilation)
    if any(size <= 0 for size in geometry.spatial):
        raise ValueError(f"Computed output size would be zero or negative: {geometry.spatial}. "
                         f"Received inputs shape={tuple(x.shape)}, "
                         f"kernel shape={tuple(kernel.shape)}.")
    filters = kernel.shape[-2]
    rows = x.reshape(1, -1, x.shape[-1])
    y = _conv_input_grad(geometry, kernel, rows, (x.shape[0], *geometry.spatial, filters))
    return y, (geometry, kernel, rows, x.shape)


def conv_transpose_backward(cache: tuple, dy: np.ndarray, need_dx: bool = True
                            ) -> tuple[np.ndarray | None, np.ndarray]:
    """(dx, dkernel) of `conv_transpose_forward`: dx is the convolution of dy with the kernel
    (im2col and one matmul), dkernel = colsᵀ · x reuses the same columns."""
    geometry, kernel, rows, x_shape = cache
    cols = _im2col(geometry, dy, 1)                                     # (1, B·n, K·filters)
    dkernel = _ungroup_kernel(matmul(cols.transpose(0, 2, 1), rows), kernel.shape)
    if not need_dx:
        return None, dkernel
    return matmul(cols, _grouped_kernel(kernel, 1))[0].reshape(x_shape), dkernel
