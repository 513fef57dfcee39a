"""Bitwise determinism across thread counts.

The same seeded training runs in fresh processes with 1 and with 2 Numba threads; the
parameters, running statistics, losses and predictions must agree to the bit.  fastnet's
own kernels guarantee that by construction (fixed chunking).  BLAS is another matter:
OpenBLAS on AVX-512 blocks the inner dimension K differently on 1 and on several threads
when K > 448 is not a multiple of 32 (K = 784, the MNIST input, among them), and its
AVX2 kernels (Haswell's; OPENBLAS_CORETYPE=Haswell picks them on any x86-64) split most
products so that about 5% of the elements change, so a GEMM's last bits can change
with *BLAS's* thread count.
The cases below pin both: Numba's thread count varied with BLAS's fixed, and both
varied where this BLAS computes the net's products alike on 1 and 2 threads.
"""
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastnet import config

ROOT = Path(__file__).resolve().parents[1]

TRAINING = """
import json
import sys
import numba
import numpy as np
import threadpoolctl
from fastnet import nets, optimizers
from fastnet.kernels import activations, batchnorm, dropout, optimizers as update_kernels
from fastnet.kernels.jit import pick
from fastnet.threads import one_at_a_time

path, threads, shape = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
# set here, not by OPENBLAS_NUM_THREADS, which OpenBLAS caps at the cores it may use
threadpoolctl.threadpool_limits(int(sys.argv[4]), user_api="blas")
batch, inputs, hidden, classes = shape["batch"], shape["inputs"], shape["hidden"], shape["classes"]
assert numba.get_num_threads() == threads, numba.get_num_threads()
if shape["parallel"]:
    for kernel in (activations.relu_forward, batchnorm.batchnorm_forward_train,
                   dropout.dropout_forward, update_kernels.adam):
        parallel = kernel.parallel_version  # behind a lock on Numba's workqueue layer
        assert pick(kernel, batch * hidden[0]) in (parallel, one_at_a_time(parallel))

rng = np.random.default_rng(0)
x = rng.standard_normal((batch, inputs)).astype(np.float32)
t = rng.integers(0, classes, batch)
kwargs = dict(use_batchnorm=True, use_dropout=True, dropout_ration=0.2,
              weight_decay_lambda=1e-4, seed=3)
results = {}

fused = nets.MultiLayerNetExtend(inputs, hidden, classes, **kwargs)
adam = optimizers.Adam(lr=1e-3)
results["fused/losses"] = np.array([fused.train_step(x, t, adam) for _ in range(20)])

# The book's path: gradient() (the fused pass) and update() (one pass over the arena);
# the training loss runs the layers one by one: their parallel builds.
book = nets.MultiLayerNetExtend(inputs, hidden, classes, **kwargs)
adam_book = optimizers.Adam(lr=1e-3)
for _ in range(5):
    adam_book.update(book.params, book.gradient(x, t))
results["book/losses"] = np.array([book.loss(x, t, train_flg=True)])

for name, net, opt in (("fused", fused, adam), ("book", book, adam_book)):
    for key, value in net.params.items():
        results[f"{name}/{key}"] = value
    for key, value in opt.m.items():
        results[f"{name}/m/{key}"] = value
    for key, layer in net.layers.items():
        if key.startswith("BatchNorm"):
            results[f"{name}/{key}/running_mean"] = layer.running_mean
            results[f"{name}/{key}/running_var"] = layer.running_var
    results[f"{name}/predict"] = net.predict(x)
np.savez(path, **results)
"""

WIDE = {"batch": 512, "inputs": 256, "hidden": [512, 512], "classes": 10, "parallel": True}
MNIST = {"batch": 128, "inputs": 784, "hidden": [100, 100], "classes": 10, "parallel": False}
CASES = [
    # Big enough that the parallel builds of the element-wise kernels are taken.
    pytest.param(WIDE, False, id="wide-512-numba-threads"),
    # Every K a multiple of 32: on AVX-512 kernels even BLAS's thread count may vary.
    pytest.param(WIDE, True, id="wide-512-numba-and-blas-threads"),
    # The MNIST net of the book, Numba's thread count varied, BLAS's fixed.
    pytest.param(MNIST, False, id="mnist-784-numba-threads"),
    # OpenBLAS's AVX-512 kernels compute a (128, 784) @ (784, 100) GEMM differently on 1
    # and 2 threads (K = 784 > 448, not a multiple of 32): skipped there, with the reason
    pytest.param(MNIST, True, id="mnist-784-blas-threads"),
]


def blas_differs_between_1_and_2_threads(shape):
    """The float32 products of ``shape``'s net (forward, both backward ones) that this
    process's BLAS computes differently on 1 and on 2 threads, as (m, k, n) and form."""
    import threadpoolctl

    rng = np.random.default_rng(0)
    sizes = [shape["inputs"], *shape["hidden"], shape["classes"]]
    products = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        x = rng.standard_normal((shape["batch"], fan_in)).astype(np.float32)
        w = rng.standard_normal((fan_in, fan_out)).astype(np.float32)
        d = rng.standard_normal((shape["batch"], fan_out)).astype(np.float32)
        products += [("x W", x, w), ("x.T d", x.T, d), ("d W.T", d, w.T)]
    differ = []
    for form, a, b in products:
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            one = a @ b
        with threadpoolctl.threadpool_limits(2, user_api="blas"):
            two = a @ b
        if one.tobytes() != two.tobytes():
            differ.append((a.shape[0], a.shape[1], b.shape[1], form))
    return differ


def run_training(path, threads, shape, vary_blas):
    blas = str(threads) if vary_blas else "2"
    env = {k: v for k, v in os.environ.items() if k != "FASTNET_NUM_THREADS"}
    env.update(NUMBA_NUM_THREADS=str(threads),
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", TRAINING, str(path), str(threads),
                           json.dumps(shape), blas], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(path) as data:
        return dict(data)


@pytest.mark.parametrize(("shape", "vary_blas"), CASES)
def test_training_is_bitwise_identical_on_1_and_2_threads(tmp_path, shape, vary_blas):
    if vary_blas and (differ := blas_differs_between_1_and_2_threads(shape)):
        pytest.skip(f"this BLAS computes {len(differ)} of the net's products differently on "
                    f"1 and 2 threads, e.g. (m, k, n, form) = {differ[0]}")
    if shape["parallel"]:
        assert shape["batch"] * shape["hidden"][0] >= config.PARALLEL_MIN_SIZE
    one = run_training(tmp_path / "one.npz", 1, shape, vary_blas)
    two = run_training(tmp_path / "two.npz", 2, shape, vary_blas)
    assert one.keys() == two.keys()
    assert {"fused/W1", "fused/gamma2", "book/W3", "fused/BatchNorm1/running_var"} <= one.keys()
    assert np.isfinite(one["fused/losses"]).all()
    assert one["fused/losses"][-1] < one["fused/losses"][0]  # it trained
    differ = [k for k in one if one[k].tobytes() != two[k].tobytes()]
    assert not differ, f"differ between 1 and 2 threads: {differ}"


# Bitwise determinism across processes whatever they ran before.  A fused kernel that
# calls a separately compiled kernel (group norm's, say) carries a copy of it, optimised
# again inside the caller; at run time the call goes to whichever definition the JIT
# linker saw first: the callee's own build when this process compiled or loaded it
# before, the caller's copy when the caller came from the cache alone.  With ``reassoc``
# the two copies summed a row in different orders and a float64 net's last bits
# depended on the process's history; without it (``config.FASTMATH``) every copy sums in
# the source's order.  The test runs a compiling, a cached and a layers-first process.
NORM_NETS = """
import sys
import numpy as np
from fastnet import layers, nets
from fastnet.population import Population

path, layers_first = sys.argv[1], sys.argv[2] == "layers-first"
rng = np.random.default_rng(0)
# rows long enough for the reductions' vector loops (a short row is summed in order)
x, t = rng.standard_normal((40, 16)), rng.integers(0, 5, 40)
if layers_first:  # the layer classes' own builds of the same kernels, loaded first
    for layer in (layers.LayerNormalization(np.ones(256), np.zeros(256)),
                  layers.GroupNormalization(np.ones(256), np.zeros(256), 4),
                  layers.SwitchableNormalization(np.ones(256), np.zeros(256))):
        out = layer.forward(rng.standard_normal((40, 256)))
        layer.backward(np.ones_like(out))
        layer.forward(out, train_flg=False)
    instance = layers.InstanceNormalization(np.ones(4), np.zeros(4))
    instance.backward(instance.forward(rng.standard_normal((40, 4, 64))))
results = {}

def population():  # its kernels call the nets' kernels: before or after those ran
    pop = Population(16, [256, 256], 5, [{"seed": 0}, {"seed": 1}], "Adam",
                     normalization="layer", dtype=np.float64)
    results["population/losses"] = np.array([pop.train_step(x, t) for _ in range(2)])
    results["population/predict"] = pop.predict(x)

if not layers_first:
    population()
for norm in ("layer", "group", "instance", "switchable"):
    net = nets.MultiLayerNetExtend(16, [256, 256], 5, normalization=norm, groups=4, seed=0,
                                   dtype=np.float64)
    for key, grad in net.gradient(x, t).items():
        results[f"{norm}/grad/{key}"] = grad
    results[f"{norm}/predict"] = net.predict(x)
    results[f"{norm}/loss"] = np.array(net.loss(x, t))
if layers_first:
    population()
np.savez(path, **results)
"""


class ProcessHistoryChangedBits(AssertionError):
    """Results of the same net differ between processes that ran different things."""


@pytest.mark.slow
def test_results_do_not_depend_on_what_the_process_compiled_or_loaded_before(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(NUMBA_CACHE_DIR=str(tmp_path / "cache"),  # empty: the first run compiles
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    runs = {}
    for name, mode in (("compiled", "nets"), ("cached", "nets"),
                       ("cached-after-layers", "layers-first")):
        done = subprocess.run([sys.executable, "-c", NORM_NETS, str(tmp_path / name), mode],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=900,
                              check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        with np.load(tmp_path / f"{name}.npz") as data:
            runs[name] = dict(data)
    first = runs["compiled"]
    assert {"layer/grad/W1", "group/grad/gamma2", "instance/predict",
            "switchable/grad/mean_weight1", "population/predict"} <= first.keys()
    for name, other in runs.items():
        differ = [k for k in first if first[k].tobytes() != other[k].tobytes()]
        if differ:
            raise ProcessHistoryChangedBits(f"{name} differs from the compiling run: {differ}")
