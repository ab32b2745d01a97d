"""Batch-sliced threading (`layerctl.ops.parallel`): coverage, errors, and results that are
bit-identical to the one-thread run for every op that splits its work."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from layerctl.layers.core import activate, activate_backward
from layerctl.ops import parallel
from layerctl.ops.conv import conv_backward, conv_forward
from layerctl.ops.pool import max_pool_backward, max_pool_forward
from layerctl.ops.windows import Geometry
from layerctl.training.optimizers import make_optimizer, parse_optimizer


@pytest.fixture
def split_three_ways(monkeypatch):
    """Every op splits, whatever its size, on three threads claiming three slices each (so a
    length of 9 gives 9 one-row slices)."""
    monkeypatch.setenv("LAYERCTL_NUM_THREADS", "3")
    monkeypatch.setattr(parallel, "MIN_PARALLEL_BYTES", 0)
    monkeypatch.setattr(parallel, "SLICES_PER_THREAD", 3)


def run_serial_and_split(monkeypatch, compute):
    """compute() once on one thread, once split three ways; both results."""
    with monkeypatch.context() as patch:
        patch.setenv("LAYERCTL_NUM_THREADS", "1")
        serial = compute()
    with monkeypatch.context() as patch:
        patch.setenv("LAYERCTL_NUM_THREADS", "3")
        patch.setattr(parallel, "MIN_PARALLEL_BYTES", 0)
        split = compute()
    return serial, split


def assert_same_arrays(serial, split):
    for expected, actual in zip(serial, split, strict=True):
        assert actual.dtype == expected.dtype
        np.testing.assert_array_equal(actual, expected, strict=True)


@pytest.mark.parametrize("length", [0, 1, 2, 3, 7, 64])
def test_slices_cover_the_range_once(split_three_ways, length):
    seen = np.zeros(length, int)
    lock = threading.Lock()

    def work(rows):
        with lock:
            seen[rows] += 1

    parallel.for_each_chunk(work, length, nbytes=1)
    assert seen.tolist() == [1] * length


def test_split_uses_other_threads(split_three_ways):
    names = set()

    def work(rows):
        names.add(threading.current_thread().name)
        time.sleep(0.02)   # long enough for the pool's threads to claim slices too

    parallel.for_each_chunk(work, 9, 1)
    assert threading.current_thread().name in names
    assert any(name.startswith("layerctl-chunk") for name in names)


def test_a_late_thread_leaves_its_slices_to_the_others(split_three_ways, monkeypatch):
    """Slices are claimed, not assigned: if the pool's threads cannot start (their cores busy),
    this thread runs every slice instead of waiting for them."""
    release = threading.Event()

    class LatePool:
        def submit(self, function):
            from concurrent.futures import Future

            future = Future()

            def late():
                release.wait(timeout=5)
                if future.set_running_or_notify_cancel():   # as an executor does
                    function()
                    future.set_result(None)

            threading.Thread(target=late, daemon=True).start()
            return future

    monkeypatch.setattr(parallel, "_executor", LatePool)
    caller = threading.current_thread()
    ran = []

    def work(rows):
        ran.append((rows.start, threading.current_thread() is caller))
        if len(ran) == 9:
            release.set()   # only now do the late threads get going: nothing is left

    parallel.for_each_chunk(work, 9, 1)
    assert sorted(ran) == [(start, True) for start in range(9)]


def test_small_work_stays_on_the_calling_thread(monkeypatch):
    monkeypatch.setenv("LAYERCTL_NUM_THREADS", "3")
    calls = []
    parallel.for_each_chunk(calls.append, 64, nbytes=parallel.MIN_PARALLEL_BYTES - 1)
    assert calls == [slice(0, 64)]


@pytest.mark.parametrize("failing_start", [0, 4, 8])
def test_an_error_in_any_slice_is_raised_after_all_slices_finish(split_three_ways, failing_start):
    finished = []

    def work(rows):
        if rows.start == failing_start:
            raise ValueError(f"slice {rows.start}")
        time.sleep(0.02)   # the failing slice is long done: raising early would miss these
        finished.append(rows.start)

    with pytest.raises(ValueError, match=f"slice {failing_start}"):
        parallel.for_each_chunk(work, 9, nbytes=1)
    assert sorted(finished) == sorted(set(range(9)) - {failing_start})


def test_ctrl_c_in_this_threads_slice_waits_for_the_other_slices(split_three_ways):
    finished = []
    caller = threading.current_thread()

    def work(rows):
        if threading.current_thread() is caller:
            raise KeyboardInterrupt
        time.sleep(0.02)
        finished.append(rows.start)

    with pytest.raises(KeyboardInterrupt):
        parallel.for_each_chunk(work, 9, nbytes=1)
    assert len(finished) == 8   # every slice but the interrupted one, all done


def test_a_split_inside_a_slice_runs_serially_instead_of_deadlocking(split_three_ways):
    """A pool thread waiting on work queued behind itself would hang: nested splits run in
    place. Run in a thread so that a regression fails the test instead of hanging the suite."""
    covered = []
    lock = threading.Lock()

    def inner(rows):
        with lock:
            covered.append((rows.start, rows.stop))

    def outer(rows):
        parallel.for_each_chunk(lambda inner_rows: inner(
            slice(rows.start + inner_rows.start, rows.start + inner_rows.stop)),
            rows.stop - rows.start, nbytes=1)

    runner = threading.Thread(target=parallel.for_each_chunk, args=(outer, 12, 1), daemon=True)
    runner.start()
    runner.join(timeout=20)
    assert not runner.is_alive(), "nested for_each_chunk deadlocked"
    assert sorted(index for start, stop in covered for index in range(start, stop)) == list(
        range(12))


def test_when_no_thread_can_start_every_slice_runs_here(split_three_ways, monkeypatch):
    class ShutDown:
        def submit(self, *args):
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    monkeypatch.setattr(parallel, "_executor", ShutDown)
    calls = []
    parallel.for_each_chunk(calls.append, 9, nbytes=1)
    assert calls == [slice(start, start + 1) for start in range(9)]


def test_a_forked_child_starts_its_own_threads(tmp_path):
    probe = (
        "import os, sys\n"
        "os.environ['LAYERCTL_NUM_THREADS'] = '2'\n"
        "from layerctl.ops import parallel\n"
        "parallel.MIN_PARALLEL_BYTES = 0\n"
        "seen = []\n"
        "parallel.for_each_chunk(seen.append, 4, 1)   # the parent's pool exists now\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    seen.clear()\n"
        "    parallel.for_each_chunk(seen.append, 4, 1)\n"
        "    os._exit(0 if sorted(s.start for s in seen) == [0, 1, 2, 3] else 3)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "sys.exit(os.waitstatus_to_exitcode(status))\n")
    done = subprocess.run([sys.executable, "-c", probe], timeout=60, cwd=tmp_path)
    assert done.returncode == 0


def test_behind_loop_runs_each_part_once_and_returns_them_in_order(monkeypatch):
    monkeypatch.setenv("LAYERCTL_NUM_THREADS", "2")
    runs = []

    def work(index):
        runs.append(index)
        return index * 10

    with parallel.BehindLoop(work, 4) as parts:
        parts.ready(3)
        parts.ready(2)
        assert parts.wait(2) == 20
        results = parts.finish()
    assert results == [0, 10, 20, 30]   # in index order, whatever order they ran in
    assert sorted(runs) == [0, 1, 2, 3]


def test_a_split_does_not_wait_behind_a_part_holding_the_pool(split_three_ways):
    """The loop's own splits, while the pool runs a `BehindLoop` part, run on this thread and
    return without waiting for that part."""
    release = threading.Event()
    parts = parallel.BehindLoop(lambda index: release.wait(20), 2)
    for index in range(2):
        parts.ready(index)   # both pool threads busy until released
    seen = []
    parallel.for_each_chunk(seen.append, 9, nbytes=1)
    assert sorted(s.start for s in seen) == list(range(9))
    assert not release.is_set()
    release.set()
    parts.finish()


def test_behind_loop_runs_parts_no_pool_thread_has_started_here(monkeypatch):
    """Pool threads held up (their cores busy) keep only the parts they run: `finish` takes
    back every part still queued instead of waiting for them."""
    monkeypatch.setenv("LAYERCTL_NUM_THREADS", "2")
    release = threading.Event()
    caller = threading.current_thread()
    ran_here = {}

    def work(index):
        ran_here[index] = threading.current_thread() is caller
        if not ran_here[index]:
            release.wait(20)

    parts = parallel.BehindLoop(work, 20)
    for index in range(19, 0, -1):
        parts.ready(index)
    pool_threads = parallel._executor()._max_workers
    threading.Timer(0.3, release.set).start()
    parts.finish()
    assert sorted(ran_here) == list(range(20))
    assert sum(not here for here in ran_here.values()) <= pool_threads
    assert ran_here[0]


def test_behind_loop_on_one_thread_runs_each_part_when_ready(monkeypatch):
    monkeypatch.setenv("LAYERCTL_NUM_THREADS", "1")
    order = []
    parts = parallel.BehindLoop(order.append, 3)
    parts.ready(2)
    assert order == [2]
    parts.finish()
    assert order == [2, 0, 1]


def test_behind_loop_raises_a_parts_error_after_every_part_is_done(monkeypatch):
    monkeypatch.setenv("LAYERCTL_NUM_THREADS", "2")
    finished = []

    def work(index):
        if index == 1:
            raise ValueError("part 1")
        time.sleep(0.02)
        finished.append(index)

    parts = parallel.BehindLoop(work, 3)
    parts.ready(1)
    parts.ready(2)
    with pytest.raises(ValueError, match="part 1"):
        parts.finish()
    assert sorted(finished) == [0, 2]


def test_behind_loop_waits_for_its_parts_when_the_loop_is_interrupted(monkeypatch):
    """Ctrl-C in the loop: the parts handed out still finish before the error goes on, so
    nothing writes into the loop's arrays while the caller handles it."""
    monkeypatch.setenv("LAYERCTL_NUM_THREADS", "2")
    finished = []

    def work(index):
        time.sleep(0.05)
        finished.append(index)

    with pytest.raises(KeyboardInterrupt), parallel.BehindLoop(work, 2) as parts:
        parts.ready(1)
        raise KeyboardInterrupt
    assert finished == [1]


@pytest.mark.parametrize("environment, expected", [
    ({"LAYERCTL_NUM_THREADS": "5", "OMP_NUM_THREADS": "2"}, 5),
    ({"OMP_NUM_THREADS": "2"}, 2),
    ({"LAYERCTL_NUM_THREADS": "zero", "OMP_NUM_THREADS": "0"}, None),
])
def test_thread_count_reads_the_environment(monkeypatch, environment, expected):
    for name in ("LAYERCTL_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    count = parallel.thread_count()
    assert count == expected if expected is not None else count >= 1


CONV_CASES = [
    dict(x=(5, 9, 8, 3), kernel=(3, 3, 3, 4), strides=1, padding="same"),          # tap-major
    dict(x=(5, 9, 8, 6), kernel=(3, 2, 6, 4), strides=(2, 1), padding="same"),
    dict(x=(4, 7, 7, 8), kernel=(3, 3, 4, 6), strides=1, padding="valid", groups=2),
    dict(x=(3, 11, 5), kernel=(3, 5, 2), strides=1, padding="causal", dilation=2),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_is_bit_identical_split(monkeypatch, case):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(case["x"]).astype(np.float32)
    kernel = rng.standard_normal(case["kernel"]).astype(np.float32)
    options = {key: value for key, value in case.items() if key not in ("x", "kernel")}

    def compute():
        y, cache = conv_forward(x, kernel, **options)
        dy = np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape)
        dx, dkernel = conv_backward(cache, dy)
        return y, dx, dkernel

    assert_same_arrays(*run_serial_and_split(monkeypatch, compute))


@pytest.mark.parametrize("pool, strides, padding", [
    ((2, 2), None, "valid"), ((3, 3), (2, 2), "same"), ((2, 3), (1, 2), "valid")])
def test_pool_is_bit_identical_split(monkeypatch, pool, strides, padding):
    rng = np.random.default_rng(1)
    # ties (rounded values) and a NaN window exercise the winner rules in every slice
    x = np.round(rng.standard_normal((7, 9, 10, 3)), 1).astype(np.float32)
    x[4, 2, 3, 1] = np.nan

    def compute():
        y, cache = max_pool_forward(x, pool, strides, padding)
        dy = np.sin(np.arange(y.size, dtype=np.float32)).reshape(y.shape)
        return y, cache[1], max_pool_backward(cache, dy)

    assert_same_arrays(*run_serial_and_split(monkeypatch, compute))


def test_padding_is_bit_identical_split(monkeypatch):
    x = np.arange(5 * 4 * 3 * 2, dtype=np.float64).reshape(5, 4, 3, 2)
    geometry = Geometry((4, 3), (3, 4), (1, 1), "same", (1, 1))

    def compute():
        return (geometry.pad(x, -np.inf),)

    serial, split = run_serial_and_split(monkeypatch, compute)
    assert_same_arrays(serial, split)
    expected = np.pad(x, [(0, 0), (1, 1), (1, 2), (0, 0)], constant_values=-np.inf)
    np.testing.assert_array_equal(split[0], expected)


@pytest.mark.parametrize("name", ["relu", "tanh", None])
def test_bias_and_activation_are_bit_identical_split(monkeypatch, name):
    rng = np.random.default_rng(2)
    z = rng.standard_normal((9, 4, 5)).astype(np.float32)
    bias = rng.standard_normal(5).astype(np.float32)
    dy = rng.standard_normal(z.shape).astype(np.float32)

    def compute():
        y = activate(name, z.copy(), overwrite=True, bias=bias)
        return y, activate_backward(name, z + bias, y, dy)

    serial, split = run_serial_and_split(monkeypatch, compute)
    assert_same_arrays(serial, split)
    reference = {"relu": np.maximum(z + bias, 0), "tanh": np.tanh(z + bias), None: z + bias}
    np.testing.assert_allclose(split[0], reference[name], rtol=1e-6)


@pytest.mark.parametrize("shape", [(), (5,)])
def test_bias_and_relu_on_arrays_without_a_batch_axis(split_three_ways, shape):
    z = np.linspace(-2, 2, int(np.prod(shape))).astype(np.float32).reshape(shape)
    bias = np.float32(0.5)
    y = activate("relu", z.copy(), overwrite=True, bias=bias)
    np.testing.assert_array_equal(y, np.maximum(z + bias, 0))
    dz = activate_backward("relu", z + bias, y, np.ones_like(z))
    np.testing.assert_array_equal(dz, (z + bias > 0).astype(np.float32))


@pytest.mark.parametrize("optimizer", [
    {"type": "sgd", "momentum": 0.9, "nesterov": True},
    {"type": "adam", "amsgrad": True},
    {"type": "adamw"},
    {"type": "rmsprop", "momentum": 0.5, "centered": True, "clipnorm": 1.0},
    {"type": "adagrad", "weight_decay": 0.01, "global_clipnorm": 0.5},
])
def test_optimizer_steps_are_bit_identical_split(monkeypatch, optimizer):
    rng = np.random.default_rng(3)
    start = rng.standard_normal(101).astype(np.float32)
    gradients = [rng.standard_normal(101).astype(np.float32) for _ in range(3)]
    segments = [(0, 40), (40, 41), (41, 101)]

    def compute():
        flat = make_optimizer(parse_optimizer(optimizer), segments, np.float32,
                              decay_mask=[True, False, True])
        params = start.copy()
        for grads in gradients:
            flat.apply(params, grads)
        return (params, *flat.state().values())

    serial, split = run_serial_and_split(monkeypatch, compute)
    assert_same_arrays(serial, split)
    assert not np.array_equal(split[0], start)


def test_command_line_shortens_blas_spin_before_numpy_loads(tmp_path):
    """`layerctl` sets OPENBLAS_THREAD_TIMEOUT while NumPy is still unloaded (OpenBLAS reads it
    only when it loads), and keeps a value the user chose."""
    probe = ("import os, sys\n"
             "import layerctl.cli\n"
             "print('numpy' in sys.modules)\n"
             "sys.argv = ['layerctl', '--version']\n"
             "try:\n"
             "    layerctl.cli.main()\n"
             "except SystemExit:\n"
             "    print(os.environ['OPENBLAS_THREAD_TIMEOUT'])\n")
    for preset, expected in ((None, "20"), ("16", "16")):
        environment = dict(os.environ)
        environment.pop("OPENBLAS_THREAD_TIMEOUT", None)
        if preset:
            environment["OPENBLAS_THREAD_TIMEOUT"] = preset
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              env=environment, check=True, cwd=tmp_path)
        assert done.stdout.split()[0] == "False"
        assert done.stdout.split()[-1] == expected
