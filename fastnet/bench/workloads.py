"""What ``fastnet bench`` measures: the headline nets and a step builder per implementation.

Every builder returns a zero-argument function, one call of which is one timed step:

* ``fastnet_step``: ``net.train_step(x, t, optimizer)`` with a ``fastnet.optimizers``
  optimizer;
* ``book_step``: the book's ``optimizer.update(net.params, net.gradient(x, t))`` on the
  NumPy oracle (``fastnet.reference``) or on fastnet's nets and optimizers;
* ``torch_step``: the same model in ``torch.nn`` (float32; ``torch.optim`` with
  ``fused=True`` where the build supports it);
* ``gemm_floor_step``: only the GEMMs of the step (one per layer forward, two per layer
  backward but one for the first layer), as NumPy ``np.matmul(out=)`` into
  preallocated arrays: what a step costs with nothing but BLAS;
* ``gemm_floor_njit_step``: the same GEMMs from one compiled function, through
  fastnet's compiled ``blas.gemm``, without Python in between;
* ``gemm_list_step``: any list of GEMM shapes back to back through ``blas.gemm``
  (``forward_gemms``/``backward_gemms`` give a net's); ``accuracy_step`` and
  ``accuracy_floor_step``: ``net.accuracy`` on 10,000 images and its GEMMs (issue 8);
* ``adam_data``, ``torch_adam_step`` and ``copy_kernels``: Adam's update alone over the
  wide net's parameters, and a copy that moves the same bytes;
* populations (``POPULATIONS``, issue 10): ``population_step`` (``Population.train_step``
  of K members), ``sequential_step`` (K fused ``train_step`` calls), ``torch_vmap_step``
  (``torch.func.vmap``), ``torch_bmm_step`` (``torch.baddbmm`` over weight stacks) and
  ``population_floor_step`` (the K members' GEMMs back to back, shared among the
  threads as the population shares its members, or each on every thread);
* ``STARTUP_FASTNET`` and ``STARTUP_TORCH``: a new process's import, build and first step.

Issue 11's normalization layers, one at a time, are in ``norm_workload``.

The asv suite (``benchmarks/``) keeps its own definitions of these nets, so that it
runs against commits of fastnet older than this module.
"""
import importlib
import itertools
import math
from dataclasses import dataclass, field
from functools import cache

import numpy as np

INPUT_SIZE, OUTPUT_SIZE = 784, 10
WIDE_HIDDEN = (1024, 1024)


@dataclass
class NetSpec:
    """A headline training workload."""

    net: str                    # MultiLayerNet or MultiLayerNetExtend
    hidden: tuple
    batch: int
    optimizer: str              # SGD or Adam
    lr: float
    extend: dict = field(default_factory=dict)  # use_batchnorm / use_dropout, dropout_ratio

    def describe(self):
        sizes = [INPUT_SIZE, *self.hidden, OUTPUT_SIZE]
        text = "-".join(map(str, sizes))
        if len(set(self.hidden)) == 1 and len(self.hidden) > 2:
            text = f"{INPUT_SIZE}-{self.hidden[0]}x{len(self.hidden)}-{OUTPUT_SIZE}"
        extra = "".join(f" {k}={v}" for k, v in self.extend.items())
        return f"{self.net} {text}{extra}, batch {self.batch}, {self.optimizer}(lr={self.lr})"


NETS = {
    "mlp-sgd": NetSpec("MultiLayerNet", (100,) * 4, 128, "SGD", 0.01),
    "mlp-adam": NetSpec("MultiLayerNet", (100,) * 4, 128, "Adam", 0.001),
    "bn-sgd": NetSpec("MultiLayerNetExtend", (100,) * 5, 100, "SGD", 0.01,
                      {"use_batchnorm": True}),
    "dropout-sgd": NetSpec("MultiLayerNetExtend", (100,) * 6, 100, "SGD", 0.01,
                           {"use_dropout": True, "dropout_ratio": 0.2}),
    "ln-sgd": NetSpec("MultiLayerNetExtend", (100,) * 5, 100, "SGD", 0.01,
                      {"normalization": "layer"}),
    "wide-adam": NetSpec("MultiLayerNet", WIDE_HIDDEN, 256, "Adam", 0.001),
}


@dataclass
class PopulationSpec:
    """A population workload: ``k`` members of ``net``'s net, batch and optimizer."""

    net: NetSpec
    k: int

    def describe(self):
        return f"{self.k} x {self.net.describe()}; ms per step of all {self.k}"


# Issue 10's population workloads: 784-100x4-10 batch 128 and 784-100x6-10 batch 100.
POPULATION_NETS = {
    "mlp-sgd": NETS["mlp-sgd"],
    "mlp-adam": NETS["mlp-adam"],
    "deep-sgd": NetSpec("MultiLayerNet", (100,) * 6, 100, "SGD", 0.01),
    "deep-adam": NetSpec("MultiLayerNet", (100,) * 6, 100, "Adam", 0.001),
}
POPULATIONS = {f"pop{k}-{name}": PopulationSpec(spec, k)
               for name, spec in POPULATION_NETS.items() for k in (4, 16, 64)}


def make_batch(batch, seed=0):
    """MNIST-shaped float32 inputs in [0, 1) and labels."""
    rng = np.random.default_rng(seed)
    x = rng.random((batch, INPUT_SIZE), dtype=np.float32)
    t = rng.integers(0, OUTPUT_SIZE, batch)
    return x, t


# --------------------------------------------------------------------------- training steps

def make_net(spec, seed=0, package="fastnet"):
    """The net of ``spec`` from ``package``'s ``nets`` (fastnet's, or the NumPy
    reference's), drawn from ``seed``."""
    nets = importlib.import_module(f"{package}.nets")
    return getattr(nets, spec.net)(INPUT_SIZE, list(spec.hidden), OUTPUT_SIZE, seed=seed,
                                   **spec.extend)


def fastnet_step(spec, x, t, seed=0):
    """fastnet's fused step of ``spec``: ``net.train_step(x, t, optimizer)``."""
    from fastnet import optimizers

    net = make_net(spec, seed)
    optimizer = getattr(optimizers, spec.optimizer)(lr=spec.lr)
    return lambda: net.train_step(x, t, optimizer)


def make_population_batches(spec, seed=0):
    """One mini-batch per member: x (K, N, 784), t (K, N)."""
    batches = [make_batch(spec.net.batch, [seed, i]) for i in range(spec.k)]
    return np.stack([x for x, _ in batches]), np.stack([t for _, t in batches])


def population_step(spec, x, t):
    """``Population.train_step(x, t)`` of ``spec``'s K members (x: (N, D) shared, or
    (K, N, D) one mini-batch each)."""
    from fastnet.population import Population

    net = spec.net
    configs = [{"seed": i, "lr": net.lr} for i in range(spec.k)]
    pop = Population(INPUT_SIZE, list(net.hidden), OUTPUT_SIZE, configs, net.optimizer)
    return lambda: pop.train_step(x, t)


def sequential_step(spec, x, t):
    """K fused nets' ``train_step`` one after the other on the same mini-batch."""
    steps = [fastnet_step(spec.net, x, t, seed=i) for i in range(spec.k)]

    def step():
        for member_step in steps:
            member_step()
    return step


def book_step(spec, x, t, package="fastnet.reference"):
    """The book's step, ``optimizer.update(net.params, net.gradient(x, t))``, on the
    nets and optimizers of ``package`` (the NumPy reference, or fastnet's layers)."""
    optimizers = importlib.import_module(f"{package}.optimizers")
    net = make_net(spec, package=package)
    optimizer = getattr(optimizers, spec.optimizer)(lr=spec.lr)

    def step():
        optimizer.update(net.params, net.gradient(x, t))
    return step


def torch_model(torch, hidden, use_batchnorm=False, use_dropout=False, dropout_ratio=0.5,
                normalization=None):
    """The book's MultiLayerNet(Extend) in torch.nn: [Linear, (BatchNorm1d or
    LayerNorm), ReLU, (Dropout)] per hidden layer, then Linear (float32)."""
    nn = torch.nn
    if normalization not in (None, "batch", "layer"):
        raise ValueError(f"torch_model: no torch net for normalization={normalization!r}")
    modules, fan_in = [], INPUT_SIZE
    for width in hidden:
        modules.append(nn.Linear(fan_in, width))
        if use_batchnorm or normalization == "batch":
            modules.append(nn.BatchNorm1d(width, eps=1e-6, momentum=0.1))  # the book's 0.9
        elif normalization == "layer":
            modules.append(nn.LayerNorm(width, eps=1e-6))
        modules.append(nn.ReLU())
        if use_dropout:
            modules.append(nn.Dropout(dropout_ratio))
        fan_in = width
    modules.append(nn.Linear(fan_in, OUTPUT_SIZE))
    return nn.Sequential(*modules).train()


def torch_optimizer(torch, name, params, **hyper):
    """``torch.optim.<name>(params, **hyper)`` fused when this build supports it (else
    foreach), and which of the two it is; gradients set before the call are kept."""
    cls = getattr(torch.optim, name)
    params = list(params)
    for flavour in ("fused", "foreach"):
        try:
            optimizer = cls(params, **hyper, **{flavour: True})
            if flavour == "fused":  # some builds accept the flag and fail at the first step
                saved = [(p.detach().clone(), p.grad) for p in params]
                for p in params:
                    p.grad = torch.zeros_like(p)
                optimizer.step()
                with torch.no_grad():
                    for p, (value, grad) in zip(params, saved):
                        p.copy_(value)
                        p.grad = grad
                optimizer = cls(params, **hyper, fused=True)
            return optimizer, flavour
        except (RuntimeError, TypeError, ValueError):
            continue
    return cls(params, **hyper), "for-loop"


def torch_step(torch, spec, x, t):
    """A torch training step of ``spec`` and a note on the optimizer's flavour."""
    torch.manual_seed(0)
    model = torch_model(torch, spec.hidden, **spec.extend)
    optimizer, flavour = torch_optimizer(torch, spec.optimizer, model.parameters(),
                                         lr=spec.lr)
    xt, tt = torch.from_numpy(x), torch.from_numpy(t).long()
    cross_entropy = torch.nn.functional.cross_entropy

    def step():
        optimizer.zero_grad(set_to_none=True)
        cross_entropy(model(xt), tt).backward()
        optimizer.step()
    return step, f"{flavour} {spec.optimizer}"


def _torch_population_data(torch, spec, x, t):
    """x as (K, N, D) (a shared (N, D) batch expanded, not copied) and t as (K, N)."""
    xt, tt = torch.from_numpy(x), torch.from_numpy(t).long()
    if xt.dim() == 2:
        xt, tt = xt.expand(spec.k, *xt.shape), tt.expand(spec.k, *tt.shape)
    return xt, tt


def torch_vmap_step(torch, spec, x, t):
    """K torch.nn models stacked by ``torch.func.stack_module_state``, their gradients
    from ``vmap(grad_and_value(loss))``, then one optimizer step over the stacks."""
    import copy

    from torch.func import functional_call, grad_and_value, stack_module_state, vmap

    torch.manual_seed(0)
    net = spec.net
    models = [torch_model(torch, net.hidden) for _ in range(spec.k)]
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    cross_entropy = torch.nn.functional.cross_entropy

    def loss(p, b, xb, tb):
        return cross_entropy(functional_call(base, (p, b), (xb,)), tb)

    grad_fn = vmap(grad_and_value(loss))
    optimizer, flavour = torch_optimizer(torch, net.optimizer, params.values(), lr=net.lr)
    xt, tt = _torch_population_data(torch, spec, x, t)

    def step():
        grads, _ = grad_fn(params, buffers, xt, tt)
        for name, p in params.items():
            p.grad = grads[name]
        optimizer.step()
    return step, f"torch.func.vmap, {flavour} {net.optimizer}"


def torch_bmm_step(torch, spec, x, t):
    """The K nets as (K, d_in, d_out) weight stacks: ``torch.baddbmm`` per layer, the
    sum of the members' mean losses backwards, one optimizer step over the stacks."""
    torch.manual_seed(0)
    net = spec.net
    dims = [INPUT_SIZE, *net.hidden, OUTPUT_SIZE]
    weights = [(torch.randn(spec.k, a, b) * math.sqrt(2 / a)).requires_grad_()
               for a, b in itertools.pairwise(dims)]
    biases = [torch.zeros(spec.k, 1, b, requires_grad=True) for b in dims[1:]]
    optimizer, flavour = torch_optimizer(torch, net.optimizer, weights + biases, lr=net.lr)
    xt, tt = _torch_population_data(torch, spec, x, t)
    n = xt.shape[1]
    cross_entropy = torch.nn.functional.cross_entropy

    def step():
        optimizer.zero_grad(set_to_none=True)
        h = xt
        for layer, (w, b) in enumerate(zip(weights, biases)):
            h = torch.baddbmm(b, h, w)
            if layer < len(weights) - 1:
                h = torch.relu(h)
        loss = cross_entropy(h.reshape(-1, OUTPUT_SIZE), tt.reshape(-1), reduction="sum") / n
        loss.backward()
        optimizer.step()
    return step, f"torch.baddbmm, {flavour} {net.optimizer}"


# --------------------------------------------------------------------------- GEMM floors

def _floor_arrays(spec, x, seed=1):
    rng = np.random.default_rng(seed)
    dims = [INPUT_SIZE, *spec.hidden, OUTPUT_SIZE]
    n = x.shape[0]
    weights = [(rng.standard_normal((a, b)) / math.sqrt(a)).astype(np.float32)
               for a, b in itertools.pairwise(dims)]
    dlogits = (rng.standard_normal((n, OUTPUT_SIZE)) / n).astype(np.float32)
    return dims, weights, dlogits


def gemm_floor_step(spec, x):
    """The step's GEMMs alone: NumPy matmuls into preallocated outputs."""
    dims, weights, dlogits = _floor_arrays(spec, x)
    n = x.shape[0]
    acts = [x] + [np.empty((n, d), np.float32) for d in dims[1:]]
    wgrads = [np.empty_like(w) for w in weights]
    dacts = [None] + [np.empty((n, d), np.float32) for d in dims[1:-1]]
    matmul = np.matmul

    def step():
        for layer, w in enumerate(weights):
            matmul(acts[layer], w, out=acts[layer + 1])
        dz = dlogits
        for layer in range(len(weights) - 1, -1, -1):
            matmul(acts[layer].T, dz, out=wgrads[layer])
            if layer:
                matmul(dz, weights[layer].T, out=dacts[layer])
                dz = dacts[layer]
    return step


@cache
def _gemm_chain_kernel():
    import numba

    from fastnet import config
    from fastnet.kernels.blas import gemm

    # Not cached: Numba would not see a change to blas.gemm, inlined from another module.
    @numba.njit(**dict(config.JIT, cache=False))
    def gemm_chain(x, dims, weights, wgrads, acts, scratch, dlogits):
        n = x.shape[0]
        n_layers = dims.size - 1
        h = x
        w_off, a_off = 0, 0
        for layer in range(n_layers):
            d_in, d = dims[layer], dims[layer + 1]
            out = acts[a_off:a_off + n * d].reshape((n, d))
            gemm(h, weights[w_off:w_off + d_in * d].reshape((d_in, d)), out)
            h = out
            w_off += d_in * d
            a_off += n * d
        dz = dlogits
        a_off -= n * dims[n_layers]
        for layer in range(n_layers - 1, -1, -1):
            d_in, d = dims[layer], dims[layer + 1]
            w_off -= d_in * d
            h_in = x if layer == 0 else acts[a_off - n * d_in:a_off].reshape((n, d_in))
            gemm(h_in.T, dz, wgrads[w_off:w_off + d_in * d].reshape((d_in, d)))
            if layer > 0:
                dh = scratch[layer % 2, :n * d_in].reshape((n, d_in))
                gemm(dz, weights[w_off:w_off + d_in * d].reshape((d_in, d)).T, dh)
                dz = dh
                a_off -= n * d_in

    return gemm_chain


def gemm_floor_njit_step(spec, x):
    """The same GEMMs from one compiled function, through fastnet's ``blas.gemm``
    (NumPy's BLAS where it exposes CBLAS, else Numba's ``np.dot`` and SciPy's BLAS)."""
    dims, weights, dlogits = _floor_arrays(spec, x)
    n = x.shape[0]
    flat_w = np.concatenate([w.ravel() for w in weights])
    wgrads = np.empty_like(flat_w)
    acts = np.empty(n * sum(dims[1:]), np.float32)
    scratch = np.empty((2, n * max(dims[1:-1])), np.float32)
    dims = np.array(dims, np.int64)
    kernel = _gemm_chain_kernel()
    return lambda: kernel(x, dims, flat_w, wgrads, acts, scratch, dlogits)


def population_floor_step(spec, x, shared=True):
    """The population's GEMMs back to back: each member's ``gemm_floor_njit_step``,
    run as the population runs its members (``shared``: threads share the members,
    BLAS single-threaded, ``fastnet.threads.run_shares``) or one after another with
    BLAS on every thread."""
    from fastnet import threads

    floors = [gemm_floor_njit_step(spec.net, x) for _ in range(spec.k)]

    def chain(first, last, share=0):
        for floor in floors[first:last]:
            floor()
    if not shared:
        return lambda: chain(0, spec.k)
    return lambda: threads.run_shares(chain, spec.k, threads.get_num_threads())


# --------------------------------------------------------------------------- GEMM lists

@cache
def _gemm_list_kernel():
    import numba

    from fastnet import config
    from fastnet.kernels.blas import gemm

    # Not cached, as _gemm_chain_kernel.
    @numba.njit(**dict(config.JIT, cache=False))
    def gemm_list(gemms, a, b, c):
        for g in range(gemms.shape[0]):
            m, k, n, trans_a, trans_b = gemms[g]
            out = c[:m * n].reshape((m, n))
            if trans_a:
                gemm(a[:m * k].reshape((k, m)).T, b[:k * n].reshape((k, n)), out)
            elif trans_b:
                gemm(a[:m * k].reshape((m, k)), b[:k * n].reshape((n, k)).T, out)
            else:
                gemm(a[:m * k].reshape((m, k)), b[:k * n].reshape((k, n)), out)

    return gemm_list


def gemm_list_step(gemms, dtype=np.float32, seed=1):
    """A list of GEMMs back to back from one compiled function, through fastnet's
    ``blas.gemm``: ``gemms`` is an (G, 5) int array of rows ``(m, k, n, trans_a,
    trans_b)``, each ``C(m, n) = A(m, k) @ B(k, n)`` with A stored as its (k, m)
    transpose when ``trans_a`` (a weight gradient ``X^T dZ``) and B as its (n, k)
    transpose when ``trans_b`` (an input gradient ``dZ W^T``).  The operands are
    slices of three preallocated ``dtype`` buffers of random values, as large as the
    largest operand: the floor of the list's arithmetic, read from buffers that
    stay as warm as the cache lets them."""
    gemms = np.ascontiguousarray(gemms, np.int64).reshape(-1, 5)
    rng = np.random.default_rng(seed)
    sizes = [int((gemms[:, i] * gemms[:, j]).max(initial=1)) for i, j in ((0, 1), (1, 2), (0, 2))]
    a, b, c = (rng.standard_normal(size).astype(dtype) for size in sizes)
    kernel = _gemm_list_kernel()
    return lambda: kernel(gemms, a, b, c)


def forward_gemms(dims, rows, chunk=None):
    """The forward GEMMs of a net of layer sizes ``dims`` on ``rows`` rows, ``chunk``
    rows at a time (None: all at once), as ``gemm_list_step`` rows."""
    chunk = chunk or rows
    return [(min(chunk, rows - start), d_in, d_out, 0, 0)
            for start in range(0, rows, chunk) for d_in, d_out in itertools.pairwise(dims)]


def backward_gemms(dims, rows):
    """The backward GEMMs of a training step on ``rows`` rows: per layer, last first,
    ``dW = X^T dZ``, and ``dX = dZ W^T`` for all but the first layer."""
    gemms = []
    for layer in range(len(dims) - 2, -1, -1):
        d_in, d_out = dims[layer], dims[layer + 1]
        gemms.append((d_in, rows, d_out, 1, 0))
        if layer:
            gemms.append((rows, d_out, d_in, 0, 1))
    return gemms


# Issue 8's accuracy workload: the mlp net on 10,000 MNIST-shaped test images.
ACCURACY_NET = NETS["mlp-sgd"]
ACCURACY_ROWS = 10_000


def accuracy_step(spec, x, t):
    """fastnet's ``net.accuracy(x, t)`` of ``spec``'s net (untrained, seed 0)."""
    net = make_net(spec)
    return lambda: net.accuracy(x, t)


def accuracy_floor_step(spec, x):
    """The GEMMs of ``accuracy_step``: each layer's forward GEMM on every chunk of
    ``nets.INFERENCE_CHUNK`` rows of ``x``, float32, by ``gemm_list_step``."""
    from fastnet.nets import INFERENCE_CHUNK

    dims = [INPUT_SIZE, *spec.hidden, OUTPUT_SIZE]
    return gemm_list_step(forward_gemms(dims, x.shape[0], INFERENCE_CHUNK))


# --------------------------------------------------------------------------- Adam alone

@cache
def copy_kernels():
    """A copy of Adam's traffic: read p, g, m, v; write p, m, v (serial and parallel)."""
    import numba

    from fastnet.kernels.jit import serial_and_parallel

    @serial_and_parallel
    def rotate(p, g, m, v):
        for i in numba.prange(p.size):
            old = p[i]
            p[i] = m[i]
            m[i] = v[i]
            v[i] = old + g[i]

    return rotate, rotate.parallel_version


def adam_data():
    """The wide net's parameters as one arena (``fastnet.arena.NetLayout``'s), its
    ``views`` (key -> offset, shape), the number of weight values (decayed) and
    gradients."""
    from fastnet.arena import NetLayout
    from fastnet.reference import nets as reference_nets

    net = reference_nets.MultiLayerNet(INPUT_SIZE, list(WIDE_HIDDEN), OUTPUT_SIZE, seed=0)
    layout = NetLayout(INPUT_SIZE, WIDE_HIDDEN, OUTPUT_SIZE)
    params = np.empty(layout.size, np.float32)
    for key, view in layout.params(params).items():
        view[...] = net.params[key]
    rng = np.random.default_rng(2)
    grads = (rng.standard_normal(params.size) * 1e-2).astype(np.float32)
    return layout.views, layout.n_decayed, params, grads


def split_arena(arena, views):
    """Copies of the per-key arrays of an arena."""
    from fastnet.arena import ArenaDict

    return {key: view.copy() for key, view in ArenaDict(arena, views).items()}


def torch_adam_step(torch):
    """``torch.optim.Adam``'s step over the wide net's parameters, gradients preset."""
    views, _, params, grads = adam_data()
    grad_dict = split_arena(grads, views)
    tensors = [torch.from_numpy(p) for p in split_arena(params, views).values()]
    optimizer, flavour = torch_optimizer(torch, "Adam", tensors, lr=0.001)
    for tensor, key in zip(tensors, views):
        tensor.grad = torch.from_numpy(grad_dict[key])
    return optimizer.step, f"{flavour} Adam, grads preset"


# --------------------------------------------------------------------------- start-up

# Each is run as ``python -c``; the last line printed holds the phases' seconds.
STARTUP_FASTNET = """
import time
start = time.perf_counter()
import numpy as np
from fastnet.nets import MultiLayerNet
from fastnet.optimizers import SGD
imported = time.perf_counter()
net = MultiLayerNet(784, [100] * 4, 10, seed=0)
optimizer = SGD(lr=0.01)
rng = np.random.default_rng(0)
x, t = rng.random((128, 784), dtype=np.float32), rng.integers(0, 10, 128)
built = time.perf_counter()
net.train_step(x, t, optimizer)
done = time.perf_counter()
print({"import": imported - start, "build": built - imported, "first_step": done - built})
"""

STARTUP_TORCH = """
import time
start = time.perf_counter()
import torch
imported = time.perf_counter()
torch.set_num_threads({threads})
torch.manual_seed(0)
layers, fan_in = [], 784
for width in [100] * 4:
    layers += [torch.nn.Linear(fan_in, width), torch.nn.ReLU()]
    fan_in = width
model = torch.nn.Sequential(*layers, torch.nn.Linear(fan_in, 10))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
x, t = torch.rand(128, 784), torch.randint(0, 10, (128,))
built = time.perf_counter()
optimizer.zero_grad()
torch.nn.functional.cross_entropy(model(x), t).backward()
optimizer.step()
done = time.perf_counter()
print({{"import": imported - start, "build": built - imported, "first_step": done - built}})
"""
