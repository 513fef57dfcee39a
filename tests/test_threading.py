"""Parallel kernels in forked workers and in several threads at once (fastnet/threads.py).

Each case runs in a fresh interpreter, where fastnet picks Numba's threading layer as it
is imported: once as fastnet chooses (TBB where the ``tbb`` wheel is installed, else
workqueue with fastnet's lock) and once under a user's ``NUMBA_THREADING_LAYER=workqueue``.
The results of the parallel builds, forked or concurrent, must equal to the bit those of
the serial builds run one after another.  A worker that hangs or dies (GNU OpenMP kills
a forked child that reaches a parallel kernel) fails the case after a timeout.
"""
import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 120  # for the workers, once the parent has compiled every kernel they run

SCRIPT = """
import json, multiprocessing, sys, warnings
from concurrent.futures import ThreadPoolExecutor
warnings.simplefilter("always")
import numba
import numpy as np
from fastnet import config, nets, optimizers, threading_info
from fastnet.population import Population
from fastnet.kernels import optimizers as update_kernels
from fastnet.kernels.jit import pick

mode, wait_s = sys.argv[1], float(sys.argv[2])
SIZE = 1 << 21  # well above config.PARALLEL_MIN_SIZE

def work(seed):
    # Adam on a 2M-parameter dict, then fused train steps of a 400k-parameter net (its
    # Adam update is parallel too), then a population on two threads of fastnet's own;
    # what each returns is compared bit for bit.
    rng = np.random.default_rng(seed)
    params = {"W": rng.standard_normal(SIZE).astype(np.float32)}
    adam = optimizers.Adam(lr=1e-3)
    for _ in range(3):
        adam.update(params, {"W": rng.standard_normal(SIZE).astype(np.float32)})
    net = nets.MultiLayerNet(256, [512, 512], 10, weight_init_std="he", seed=seed)
    x = rng.standard_normal((64, 256)).astype(np.float32)
    t = rng.integers(0, 10, 64)
    net_adam = optimizers.Adam(lr=1e-3)
    losses = [net.train_step(x, t, net_adam) for _ in range(3)]
    took_parallel = pick(update_kernels.adam, SIZE) is not update_kernels.adam
    # a population's members stepped by two threads of fastnet's own (run_shares)
    pop = Population(256, [64, 32], 10, [{"seed": seed + i} for i in range(3)], "Adam",
                     num_threads=2)
    pop_losses = [pop.train_step(x, t) for _ in range(2)]
    return {"adam": params["W"], "W1": net.params["W1"].copy(), "losses": np.array(losses),
            "pop": np.concatenate([*pop_losses, pop.predict(x).ravel()]),
            "took_parallel": took_parallel, "layer": numba.threading_layer()}

seeds = [1, 2, 3, 4]
with warnings.catch_warnings(record=True) as caught:
    work(0)  # compiles every kernel the workers run, and starts Numba's threads
if mode == "fork":
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pending = pool.map_async(work, seeds)
        try:
            results = pending.get(timeout=wait_s)
        except multiprocessing.TimeoutError:
            sys.exit(f"forked workers gave no result within {wait_s} s")
else:
    with ThreadPoolExecutor(4) as threads:
        results = list(threads.map(work, seeds))
config.PARALLEL_MIN_SIZE = 1 << 62  # the serial builds only, one call after another
serial = [work(seed) for seed in seeds]
assert all(r["took_parallel"] for r in results)
assert not any(s["took_parallel"] for s in serial)
differ = [(seed, key) for seed, r, s in zip(seeds, results, serial)
          for key in ("adam", "W1", "losses", "pop") if r[key].tobytes() != s[key].tobytes()]
print(json.dumps({"layer": numba.threading_layer(),
                  "tbb_runtime": threading_info()["tbb_runtime"],
                  "workers_layers": sorted({r["layer"] for r in results}),
                  "differ": differ,
                  "warnings": [str(w.message) for w in caught]}))
"""


def has_tbb_wheel():
    try:
        importlib.metadata.version("tbb")
    except importlib.metadata.PackageNotFoundError:
        return False
    return sys.platform == "linux"


def run(mode, layer):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("NUMBA_THREADING_LAYER") and k != "FASTNET_NUM_THREADS"}
    # BLAS single-threaded throughout: a population's run_shares makes it so, process
    # wide, while the other threads step their nets, and OpenBLAS's last bits can depend
    # on its thread count (fastnet.threads.blas_single_threaded); Numba's pools are what
    # is tested here
    env.update(NUMBA_NUM_THREADS="2", OPENBLAS_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(ROOT), env.get("PYTHONPATH", "")]))
    if layer:
        env["NUMBA_THREADING_LAYER"] = layer
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode, str(WAIT_S)], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=600 + WAIT_S,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fork", "threads"])
@pytest.mark.parametrize("layer", [None, "workqueue"], ids=["fastnets-choice", "workqueue"])
def test_parallel_kernels_in_forked_workers_and_concurrent_threads(mode, layer):
    if mode == "fork" and sys.platform != "linux":
        pytest.skip("fork start method: Linux")
    report = run(mode, layer)
    assert not report["differ"], report
    expected = layer or ("tbb" if has_tbb_wheel() else "workqueue")
    assert report["layer"] == expected
    assert report["workers_layers"] == [expected]
    assert (report["tbb_runtime"] is not None) == has_tbb_wheel()
    fallback = [w for w in report["warnings"] if "TBB was not found" in w]
    assert len(fallback) == (expected == "workqueue" and layer is None)


# ---------------------------------------------------------------- run_shares, BLAS limits

def blas_threads():
    import scipy.linalg  # noqa: F401  (its BLAS too, as fastnet's limits cover it)
    import threadpoolctl
    return [info["num_threads"] for info in threadpoolctl.threadpool_info()
            if info["user_api"] == "blas"]


def test_set_num_threads_is_heard_from_any_thread():
    """threadpoolctl lets one thread only change OpenBLAS's pool; fastnet's calls take
    that control, so a worker thread's ``set_num_threads`` is not silently ignored."""
    from concurrent.futures import ThreadPoolExecutor

    from fastnet import threads
    before = threads.get_num_threads()
    try:
        threads.set_num_threads(1)  # the main thread first
        with ThreadPoolExecutor(1) as pool:
            pool.submit(threads.set_num_threads, 2).result()
        assert set(blas_threads()) == {2}
        threads.set_num_threads(1)
        assert set(blas_threads()) == {1}
    finally:
        threads.set_num_threads(before)


@pytest.mark.parametrize("n, error, message", [
    (2.9, TypeError, "n must be an integer, got 2.9"),  # was taken as 2
    (0.5, TypeError, "n must be an integer, got 0.5"),  # was "got 0"
    (True, TypeError, "n must be an integer, got True"),
    ("2", TypeError, "n must be an integer, got '2'"),
    (0, ValueError, "n must be between 1 and "),
])
def test_set_num_threads_refuses_what_is_not_a_thread_count(n, error, message):
    from fastnet import threads
    before = threads.get_num_threads()
    with pytest.raises(error, match=f"^{re.escape(message)}"):
        threads.set_num_threads(n)
    assert threads.get_num_threads() == before


@pytest.mark.parametrize("value, message", [
    ("2.9", "FASTNET_NUM_THREADS='2.9': not an integer"),
    ("0", "FASTNET_NUM_THREADS='0': must be between 1 and 2 (NUMBA_NUM_THREADS), got 0"),
])
def test_a_bad_fastnet_num_threads_is_named_at_import(value, message):
    env = {**os.environ, "FASTNET_NUM_THREADS": value, "NUMBA_NUM_THREADS": "2",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", "import fastnet.nets"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1 and done.stderr.splitlines()[-1] == f"ValueError: {message}"
    # the command: one line, not a traceback through its imports (--help included)
    done = subprocess.run([sys.executable, "-m", "fastnet", "--help"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", f"fastnet: error: {message}\n")


@pytest.mark.parametrize("n, shares", [(5, 2), (5, 3), (2, 4), (1, 1), (7, 7)])
def test_run_shares_covers_every_item_once_with_blas_single_threaded(n, shares):
    import threading

    from fastnet import threads
    before = blas_threads()
    seen, lock = [], threading.Lock()
    together = threading.Barrier(min(n, shares), timeout=30)  # the shares run at once

    def call(first, last, share):
        together.wait()
        with lock:
            seen.append((first, last, share, blas_threads()))

    threads.run_shares(call, n, shares)
    assert sorted(i for first, last, *_ in seen for i in range(first, last)) == list(range(n))
    assert sorted(share for _, _, share, *_ in seen) == list(range(min(n, shares)))
    assert all(set(inside) == {1} for *_, inside in seen)
    assert blas_threads() == before


def test_run_shares_raises_a_share_error_after_every_share_ended():
    import time

    from fastnet import threads
    before, ended = blas_threads(), []

    def call(first, last, share):
        if share == 1:
            raise ZeroDivisionError("share 1")
        time.sleep(0.2)
        ended.append(share)

    with pytest.raises(ZeroDivisionError, match="share 1"):
        threads.run_shares(call, 3, 3)
    assert sorted(ended) == [0, 2] and blas_threads() == before


def test_set_num_threads_during_run_shares_applies_after_it():
    import numba

    from fastnet import threads
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 threads")
    before = threads.get_num_threads()
    inside = []

    def call(first, last, share):
        threads.set_num_threads(2)  # another thread's call, say
        inside.append(blas_threads())

    try:
        threads.set_num_threads(1)
        threads.run_shares(call, 1, 1)
        assert set(inside[0]) == {1}  # the share's BLAS stayed single-threaded
        assert set(blas_threads()) == {2} and threads.get_num_threads() == 2
    finally:
        threads.set_num_threads(before)


def test_blas_single_threaded_nests_restores_on_error_and_leaves_threadpoolctl_usable():
    from concurrent.futures import ThreadPoolExecutor

    import threadpoolctl

    from fastnet import threads
    before = threads.get_num_threads()
    try:
        threads.set_num_threads(2)
        with pytest.raises(KeyError), threads.blas_single_threaded():
            with threads.blas_single_threaded():
                assert set(blas_threads()) == {1}
            assert set(blas_threads()) == {1}  # the outer block still open
            threads.set_num_threads(2)  # deferred to the block's end
            assert set(blas_threads()) == {1}
            raise KeyError
        assert set(blas_threads()) == {2}

        def block():
            with threads.blas_single_threaded():
                pass

        with ThreadPoolExecutor(1) as pool:  # a block in a thread that stays alive
            pool.submit(block).result()
            with threadpoolctl.threadpool_limits(1, user_api="blas"):  # heard, not ignored
                assert set(blas_threads()) == {1}
    finally:
        threads.set_num_threads(before)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_inside_blas_single_threaded_has_no_block_open():
    from fastnet import threads
    before = threads.get_num_threads()
    try:
        threads.set_num_threads(2)
        read, write = os.pipe()
        with threads.blas_single_threaded():
            pid = os.fork()
            at_fork = blas_threads()
        if pid == 0:  # the child, out of its parent's block, which it did not count down
            try:
                seen = [at_fork, threads._blas_users]
                threads.set_num_threads(2)  # at once: no block is open here
                seen.append(blas_threads())
                with threads.blas_single_threaded():
                    seen.append(blas_threads())
                seen.append(blas_threads())
                os.write(write, json.dumps(seen).encode())
            finally:
                os._exit(0)
        os.close(write)
        _, status = os.waitpid(pid, 0)
        with os.fdopen(read) as pipe:
            seen = json.loads(pipe.read())
        assert status == 0
        assert [set(seen[0]), seen[1], *map(set, seen[2:])] == [{1}, 0, {2}, {1}, {2}]
        assert set(blas_threads()) == {2} and threads._blas_users == 0
    finally:
        threads.set_num_threads(before)


def test_run_shares_from_threads_growing_the_pool_at_once():
    """Threads asking for more helper threads than the pool has while others submit
    to it: every share runs (the pool is never retired between growth and submission)."""
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from fastnet import threads

    def many(shares):
        done = []
        for k in range(2, shares):
            threads.run_shares(lambda first, last, j: done.append(last - first), 50, k)
        return sum(done)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with ThreadPoolExecutor(4) as pool:
            totals = list(pool.map(many, [8, 12, 16, 20]))
    finally:
        sys.setswitchinterval(interval)
    assert totals == [50 * (shares - 2) for shares in (8, 12, 16, 20)]
