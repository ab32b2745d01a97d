"""`layerctl.ops.blas.matmul`: how products are cut (from shapes alone), results that match
np.matmul and are bit-identical whatever the thread count, and BLAS's setting left as it was."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from layerctl.ops import blas, parallel


def test_product_flops_counts_one_product_of_a_stack():
    assert blas.product_flops((128, 784), (784, 512)) == 2 * 128 * 784 * 512
    assert blas.product_flops((4, 64, 128), (4, 128, 32)) == 2 * 64 * 128 * 32
    assert blas.product_flops((300,), (300, 10)) == 2 * 300 * 10
    assert blas.product_flops((10, 300), (300,)) == 2 * 10 * 300


def test_a_small_product_is_one_piece():
    assert blas.piece_bounds(4096, blas.MIN_SPLIT_FLOPS - 1) == [(0, 4096)]
    assert blas.piece_bounds(blas.PIECE_ALIGN, 10**12) == [(0, blas.PIECE_ALIGN)]


@pytest.mark.parametrize("extent", [32, 100, 128, 784, 12544, 50001])
@pytest.mark.parametrize("flops", [blas.MIN_SPLIT_FLOPS, 10**8, 10**11])
def test_pieces_cover_the_axis_once_in_aligned_blocks(extent, flops):
    bounds = blas.piece_bounds(extent, flops)
    assert bounds[0][0] == 0 and bounds[-1][1] == extent
    assert all(stop == start for (_, stop), (start, _) in zip(bounds[:-1], bounds[1:], strict=True))
    assert all(start % blas.PIECE_ALIGN == 0 and stop > start for start, stop in bounds)
    assert 2 <= len(bounds) <= blas.MAX_PIECES
    assert len(bounds) <= max(flops // blas.PIECE_FLOPS, 2)


def test_pieces_do_not_depend_on_the_thread_count(monkeypatch):
    cuts = []
    for threads in ("1", "2", "5"):
        monkeypatch.setenv("LAYERCTL_NUM_THREADS", threads)
        cuts.append(blas.piece_bounds(12544, 462_422_016))
    assert cuts[0] == cuts[1] == cuts[2]


SHAPES = [
    ((128, 784), (784, 512)),            # cut by rows
    ((32, 6400), (4, 6400, 128)),        # a stack, cut by columns (a wide product)
    ((2, 3136, 288), (2, 288, 64)),      # grouped convolution: a stack cut by rows
    ((32, 4, 64, 32), (32, 4, 32, 64)),  # attention's heads: small products, the stack cut
    ((32, 64, 128), (128, 512)),         # Dense on a sequence: one (2048, 128) product
    ((784, 128), (128, 512)),
    ((64, 128), (128, 256)),             # below the threshold: one call
    ((300,), (300, 64)),                 # a vector: one call
]


@pytest.mark.parametrize(("a_shape", "b_shape"), SHAPES)
def test_matmul_matches_numpy_and_any_thread_count_bit_for_bit(monkeypatch, a_shape, b_shape):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    results = []
    for threads in ("1", "3"):
        monkeypatch.setenv("LAYERCTL_NUM_THREADS", threads)
        results.append(blas.matmul(a, b))
    expected = np.matmul(a, b)
    assert results[0].dtype == expected.dtype and results[0].shape == expected.shape
    np.testing.assert_allclose(results[0], expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(results[1], results[0], strict=True)


@pytest.mark.parametrize("count", [1, 2, 7, 32, 1000])
@pytest.mark.parametrize("flops", [blas.MIN_SPLIT_FLOPS - 1, blas.MIN_SPLIT_FLOPS, 10**10])
def test_a_stack_is_cut_into_whole_products_covering_it_once(count, flops):
    bounds = blas.stack_bounds(count, flops)
    assert bounds[0][0] == 0 and bounds[-1][1] == count
    assert all(stop == start for (_, stop), (start, _) in zip(bounds[:-1], bounds[1:], strict=True))
    assert all(stop > start for start, stop in bounds)
    assert len(bounds) <= blas.MAX_PIECES
    assert (len(bounds) == 1) == (flops < blas.MIN_SPLIT_FLOPS or count == 1)


def test_a_sequence_times_a_matrix_is_one_product_and_fills_out(monkeypatch):
    """Dense on (B, T, d) rows: one product of B·T rows, split across threads, not B small
    products on one; through a transposed (not reshapeable) input and into a given `out`."""
    monkeypatch.setenv("LAYERCTL_NUM_THREADS", "2")
    rng = np.random.default_rng(2)
    b = rng.standard_normal((128, 512)).astype(np.float32)
    calls = []
    real = np.matmul
    monkeypatch.setattr(blas.np, "matmul", lambda x, y, out=None: calls.append(x.shape)
                        or real(x, y, out=out))
    a = rng.standard_normal((64, 32, 128)).astype(np.float32).transpose(1, 0, 2)
    out = np.empty((32, 64, 512), np.float32)
    assert blas.matmul(a, b, out=out) is out
    np.testing.assert_allclose(out, real(a, b), rtol=1e-5, atol=1e-4)
    assert all(len(shape) == 2 for shape in calls) and sum(s[0] for s in calls) == 2048
    assert len(calls) > 1   # 268 MFLOP: cut into pieces the threads share


def test_matmul_writes_into_out_through_views(monkeypatch):
    monkeypatch.setenv("LAYERCTL_NUM_THREADS", "2")
    rng = np.random.default_rng(1)
    a = rng.standard_normal((784, 1024)).astype(np.float32).T      # a transposed view
    b = rng.standard_normal((784, 256)).astype(np.float32)
    out = np.empty((1024, 256), np.float32)
    assert blas.matmul(a, b, out=out) is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-4)


def test_matmul_leaves_blas_threads_as_configured():
    library = blas._library()
    if library is None:
        pytest.skip("no OpenBLAS found to set")
    a = np.ones((512, 512), np.float32)
    blas.matmul(a, a)
    assert library.get_threads() == library.configured


def test_each_piece_runs_once_on_several_threads(monkeypatch):
    monkeypatch.setenv("LAYERCTL_NUM_THREADS", "3")
    seen = [0] * 40
    lock = threading.Lock()

    def work(index):
        with lock:
            seen[index] += 1

    parallel.for_each_piece(work, len(seen))
    assert seen == [1] * 40


def test_one_thread_runs_the_pieces_in_order_here(monkeypatch):
    monkeypatch.setenv("LAYERCTL_NUM_THREADS", "1")
    order = []
    parallel.for_each_piece(lambda index: order.append((index, threading.current_thread())), 5)
    assert [index for index, _ in order] == list(range(5))
    assert {thread for _, thread in order} == {threading.current_thread()}


def test_blas_thread_setting_does_not_change_products(monkeypatch):
    library = blas._library()
    if library is None:
        pytest.skip("no OpenBLAS found to set")
    rng = np.random.default_rng(2)
    a = rng.standard_normal((128, 784)).astype(np.float32)   # a shape OpenBLAS rounds
    b = rng.standard_normal((784, 512)).astype(np.float32)   # differently on 1 and 2 threads
    results, original = [], library.configured
    try:
        for configured in (1, 2):
            monkeypatch.setattr(library, "configured", configured)
            library.set_threads(configured)
            results.append(blas.matmul(a, b))
    finally:
        library.set_threads(original)
    np.testing.assert_array_equal(results[1], results[0], strict=True)


@pytest.mark.parametrize(("environment", "expected"), [
    ({}, "1"),
    ({"OPENBLAS_NUM_THREADS": "2"}, "2"),
    ({"OMP_NUM_THREADS": "2"}, None),
])
def test_the_command_line_gives_openblas_one_thread_unless_the_user_chose(
        monkeypatch, environment, expected):
    from layerctl import runtime

    for name in runtime.BLAS_THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    runtime.configure_blas()
    assert os.environ.get("OPENBLAS_NUM_THREADS") == expected


def test_one_blas_thread_holds_while_any_thread_is_inside():
    """BLAS's thread count is process-wide (even OpenBLAS's "local" setter, measured): the
    last thread out restores it, not the first."""
    library = blas._library()
    if library is None or library.configured == 1:
        pytest.skip("needs an OpenBLAS configured with several threads")
    inside, leave = threading.Event(), threading.Event()

    def other():
        with blas.one_blas_thread():
            inside.set()
            leave.wait(timeout=60)

    worker = threading.Thread(target=other)
    with blas.one_blas_thread():
        worker.start()
        inside.wait(timeout=60)
    assert library.get_threads() == 1   # the other thread is still inside
    leave.set()
    worker.join(timeout=60)
    assert library.get_threads() == library.configured
