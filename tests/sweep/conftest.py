"""Shared by the sweep tests that run whole sweeps: small learnable data of 784 features
(MNIST's: on AVX-512, OpenBLAS's bits for K = 784 depend on its thread count), the
results table without its timing columns, and one Dask ``LocalCluster`` on loopback for
the session."""
import dataclasses

import numpy as np
import pytest

# What may differ between two runs of the same sweep: how long, where, how often.
VOLATILE = ("wall_time", "host", "attempts")


def table(results):
    """``results`` (TrialResult list) as plain dicts without the ``VOLATILE`` fields."""
    return [{k: v for k, v in dataclasses.asdict(r).items() if k not in VOLATILE}
            for r in results]


def learnable(n_train=200, n_val=60, seed=0):
    """784-feature images: noise plus a bright block whose position is the label."""
    rng = np.random.default_rng(seed)
    n = n_train + n_val
    t = rng.integers(0, 10, n)
    x = rng.random((n, 784), dtype=np.float32) * 0.3
    for k in range(10):
        x[t == k, 70 * k:70 * k + 40] += 0.7
    return (x[:n_train], t[:n_train]), (x[n_train:], t[n_train:])


def local_cluster(**config):
    """A real ``distributed.LocalCluster``: 2 worker processes of 1 thread on loopback,
    its scheduler made under the Dask ``config`` given."""
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set(config):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None, host="127.0.0.1")
    return cluster


@pytest.fixture(scope="session")
def dask_cluster():
    with local_cluster() as cluster:
        yield cluster


@pytest.fixture
def dask_client(dask_cluster):
    import distributed

    with distributed.Client(dask_cluster) as client:
        client.wait_for_workers(2, timeout=60)
        yield client
