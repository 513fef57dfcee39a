"""fastnet.nets and fastnet.trainer: backprop vs numerical gradients, fastnet vs the
reference nets, the fused ``train_step`` vs the book's ``gradient()`` + ``update()``,
shared parameter views, dtypes, the Trainer and seeds.  Driven by ``cases.NET_CASES``
and ``cases.OPTIMIZER_CASES``."""
import copy
import inspect
import multiprocessing
import pickle
from collections import OrderedDict

import numpy as np
import pytest
from cases import (
    DTYPES,
    NET_CASES,
    NETS,
    NORM_NET_SIZES,
    NORM_NETS,
    NORM_PARAMS,
    OPTIMIZERS,
    assert_close,
    optimizer_state,
)
from numpy.testing import assert_allclose, assert_array_equal

from fastnet import _book
from fastnet import layers as fast_layers
from fastnet import nets as fast_nets
from fastnet import optimizers as fast_optimizers
from fastnet import trainer as fast_trainer
from fastnet.kernels import network
from fastnet.reference import nets as reference_nets
from fastnet.reference import optimizers as reference_optimizers
from fastnet.reference import trainer as reference_trainer

SIZES = (6, [5, 4], 3)  # input, hidden, output
# The net cases and switchable norm's: batch statistics in training and running ones in
# inference, as batch norm's, and (unlike the group-norm family) any hidden sizes
TABLE_NETS = NETS + [p for p in NORM_NETS if p.values[0].kwargs["normalization"] == "switchable"]


def make_net(module, case, dtype=np.float64, seed=0, sizes=SIZES):
    cls = module.MultiLayerNetExtend if case.extend else module.MultiLayerNet
    return cls(*sizes, dtype=dtype, seed=seed, **case.kwargs)


def batch(step, n=8, dtype=np.float64, sizes=SIZES):
    rng = np.random.default_rng([7, step])
    x = (rng.standard_normal((n, sizes[0])) + 0.2).astype(dtype)
    return x, rng.integers(0, sizes[2], size=n)


def dropouts(net):
    return [layer for key, layer in net.layers.items() if key.startswith("Dropout")]


def running_layers(net):
    """The batch- and switchable-norm layers, which keep running statistics."""
    return [layer for key, layer in net.layers.items()
            if key.startswith(("BatchNorm", "SwitchNorm"))]


def running_stats(net):
    """Their running statistics, made yet or not (the reference's switchable norm makes
    them on its first training batch)."""
    return {f"{name}{i}": np.array(getattr(layer, name))
            for i, layer in enumerate(running_layers(net), 1)
            for name in ("running_mean", "running_var")
            if getattr(layer, name) is not None}


# ------------------------------------------------------------------ gradients

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", TABLE_NETS)
def test_gradient_matches_numerical_gradient(case, dtype):
    """Central differences in float64 whatever the net's dtype, with the dropout masks
    the next ``gradient()`` draws; the net is left as it was."""
    net = make_net(fast_nets, case, dtype, seed=3)
    x, t = batch(0, dtype=dtype)
    before = {k: v.copy() for k, v in net.params.items()}, running_stats(net)
    numeric = net.numerical_gradient(x, t)
    for key, value in before[0].items():
        assert_array_equal(net.params[key], value, err_msg=key)
    for key, value in before[1].items():
        assert_array_equal(running_stats(net)[key], value, err_msg=key)
    assert all(layer.step == 0 for layer in dropouts(net))
    analytic = net.gradient(x, t)
    assert analytic.keys() == numeric.keys() == net.params.keys()
    for key in numeric:
        assert numeric[key].dtype == np.float64
        assert analytic[key].shape == net.params[key].shape
        # Central differences of a loss with log(y + 1e-7) inside, through ReLU kinks:
        # good to about 1e-6 absolute; a wrong gradient is off by far more.  A float32
        # backprop adds its own rounding.
        atol = 1e-6 if dtype == np.float64 else 1e-5
        assert_allclose(analytic[key], numeric[key], rtol=1e-4, atol=atol, err_msg=key)
    if case.kwargs.get("use_dropout"):
        assert all(0 < layer.mask.mean() < 1 for layer in dropouts(net))
    if case.kwargs.get("use_batchnorm"):
        assert {"gamma1", "beta1", "gamma2", "beta2"} <= analytic.keys()


@pytest.mark.parametrize("case", TABLE_NETS)
def test_numerical_gradient_matches_whole_passes(case):
    """The kernel's evaluations run from the moved element's layer (a moved W changes one
    column of its layer's kept h @ W); the layers' central differences run every pass
    whole, with the same dropout masks: the same gradient, to rounding."""
    net = make_net(fast_nets, case, seed=5)
    x, t = batch(2, n=3)
    numeric, whole = net.numerical_gradient(x, t), net._layer_numerical_gradient(x, t)
    assert numeric.keys() == whole.keys()
    for key in whole:
        assert_allclose(numeric[key], whole[key], rtol=1e-8, atol=1e-10, err_msg=key)


@pytest.mark.parametrize("case", [c for c in TABLE_NETS
                                  if not c.values[0].kwargs.get("use_dropout")])
def test_numerical_gradient_matches_the_reference(case):
    """Without dropout (whose masks the book redraws at every evaluation) the book's
    numerical gradient, float64, to the precision of central differences."""
    fast, ref = make_net(fast_nets, case, seed=3), make_net(reference_nets, case, seed=3)
    x, t = batch(1)
    numeric, desired = fast.numerical_gradient(x, t), ref.numerical_gradient(x, t)
    for key in desired:
        assert_allclose(numeric[key], desired[key], rtol=1e-7, atol=1e-9, err_msg=key)


# ------------------------------------------------------------------ fastnet vs reference

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", TABLE_NETS)
def test_same_seed_same_net_as_the_reference(case, dtype):
    fast, ref = make_net(fast_nets, case, dtype, seed=11), make_net(reference_nets, case, dtype, seed=11)
    assert fast.params.keys() == ref.params.keys()
    for key in ref.params:
        assert fast.params[key].dtype == dtype
        assert_array_equal(fast.params[key], ref.params[key], err_msg=key)
    assert [d.seed for d in dropouts(fast)] == [d.seed for d in dropouts(ref)]
    x, t = batch(1, dtype=dtype)
    assert_close(fast.predict(x), ref.predict(x), dtype, "predict")
    assert_close(fast.loss(x, t), ref.loss(x, t), dtype, "loss", check_dtype=False)
    assert fast.accuracy(x, t) == ref.accuracy(x, t)
    fast_grads, ref_grads = fast.gradient(x, t), ref.gradient(x, t)  # training mode
    for key in ref_grads:
        assert_close(fast_grads[key], ref_grads[key], dtype, key)
    if case.extend:
        assert_close(fast.predict(x, train_flg=True), ref.predict(x, train_flg=True), dtype)
        for name, value in running_stats(ref).items():
            assert_close(running_stats(fast)[name], value, dtype, name)


# ------------------------------------------------------------------ train_step vs book path

def book_step(net, x, t, optimizer):
    """The book's step: backprop, then ``update``; returns the loss of that forward pass."""
    weights = [net.params[f"W{i}"] for i in range(1, net.hidden_layer_num + 2)]
    decay = 0.5 * net.weight_decay_lambda * sum(float(np.sum(w.astype(np.float64) ** 2))
                                                for w in weights)
    grads = net.gradient(x, t)
    loss = net.last_layer.loss + decay
    optimizer.update(net.params, grads)
    net.last_grads = grads
    return loss


def inert_biases(net, optimizer_case):
    """Biases of the affine layers that feed a batch norm, under an adaptive optimizer.

    Batch norm subtracts the batch mean, so these biases have a true gradient of exactly
    0; what backprop computes for them is rounding noise (1e-17 in float64, 1e-9 in
    float32), different in the fused and the book path.  AdaGrad, RMSprop and Adam
    divide by the root of that noise's own square and turn it into steps of the order
    of ``lr``: those parameters cannot be compared, only checked to be inert.
    """
    adaptive = any(name in optimizer_case.state for name in ("h", "m"))
    if not (adaptive and getattr(net, "use_batchnorm", False)):
        return set()
    # The running means of those layers carry the biases along.
    return {f"{name}{i}" for i in range(1, net.hidden_layer_num + 1)
            for name in ("b", "running_mean")}


def assert_same_nets(fused, book, dtype, skip=()):
    for key in book.params:
        assert fused.params[key].dtype == dtype
        if key not in skip:
            assert_close(fused.params[key], book.params[key], dtype, key)
    for name, value in running_stats(book).items():
        if name not in skip:
            assert_close(running_stats(fused)[name], value, dtype, name)
    assert [d.step for d in dropouts(fused)] == [d.step for d in dropouts(book)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("net_case", TABLE_NETS)
@pytest.mark.parametrize("opt_case", OPTIMIZERS)
def test_train_step_matches_gradient_then_update(opt_case, net_case, dtype):
    fused, book = make_net(fast_nets, net_case, dtype), make_net(fast_nets, net_case, dtype)
    fused_opt, book_opt = opt_case.make(fast_optimizers), opt_case.make(fast_optimizers)
    start = {k: v.copy() for k, v in fused.params.items()}
    inert = inert_biases(book, opt_case)
    for step in range(5):
        x, t = batch(step, dtype=dtype)
        fused_loss = fused.train_step(x, t, fused_opt)
        book_loss = book_step(book, x, t, book_opt)
        assert np.isfinite(fused_loss)
        assert_close(fused_loss, book_loss, dtype, f"loss of step {step}", check_dtype=False)
        for key in inert & book.params.keys():
            noise = 1e-5 if dtype == np.float32 else 1e-13
            assert np.abs(book.last_grads[key]).max() < noise
            assert np.abs(fused.grads[key]).max() < noise
    assert_same_nets(fused, book, dtype, skip=inert)
    fused_state, book_state = optimizer_state(fused_opt, opt_case), optimizer_state(book_opt, opt_case)
    assert fused_state.keys() == book_state.keys()
    for name in book_state:
        if name.split("/")[-1] not in inert:
            assert_close(fused_state[name], book_state[name], dtype, name)
    moved = [k for k in start if not np.array_equal(fused.params[k], start[k])]
    assert {f"W{i}" for i in (1, 2, 3)} <= set(moved)


@pytest.mark.parametrize("n", [2, 3, 8, 100])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("net_case", TABLE_NETS)
@pytest.mark.parametrize("opt_case", [c for c in OPTIMIZERS if c.id in ("sgd", "adam")])
def test_book_path_matches_the_reference(opt_case, net_case, dtype, n, monkeypatch):
    """``optimizer.update(net.params, net.gradient(x, t))`` on fastnet's net: the
    reference net's trajectory (weight decay added once, by ``gradient()``), with one
    flat update pass per step, on batches of ``n`` rows (2: the fewest batch statistics
    allow)."""
    if n == 2 and net_case.kwargs.get("use_batchnorm"):
        # every unit's two values normalize to about -1 and +1 whatever the layers below
        # do: the gradients below are what a cancellation leaves, rounding noise that
        # Adam (float64) and float32 SGD steps turn into different trajectories
        pytest.skip("batch norm of two samples: the gradients below it are rounding noise")
    fast, ref = make_net(fast_nets, net_case, dtype), make_net(reference_nets, net_case, dtype)
    fast_opt, ref_opt = opt_case.make(fast_optimizers), opt_case.make(reference_optimizers)
    update_flat, calls = fast_opt.update_flat, []
    monkeypatch.setattr(fast_opt, "update_flat",
                        lambda *args: calls.append(args) or update_flat(*args))
    inert = inert_biases(ref, opt_case)
    for step in range(5):
        x, t = batch(step, n=n, dtype=dtype)
        assert_close(book_step(fast, x, t, fast_opt), book_step(ref, x, t, ref_opt), dtype,
                     f"loss of step {step}", check_dtype=False)
    assert len(calls) == 5
    assert_same_nets(fast, ref, dtype, skip=inert)


def test_gradient_returns_the_gradient_arena():
    """``gradient()`` returns ``net.grads``, views into the gradient arena that the next
    call overwrites; the book's dict of arrays shaped like ``params``."""
    net = make_net(fast_nets, NET_CASES[-1])
    first = net.gradient(*batch(0))
    kept = {k: v.copy() for k, v in first.items()}
    assert first is net.grads and first.intact() and first.keys() == net.params.keys()
    for key, grad in first.items():
        assert grad.shape == net.params[key].shape and np.shares_memory(grad, net._grad_arena)
    second = net.gradient(*batch(1))
    assert second is first
    assert not np.array_equal(kept["W1"], second["W1"])


COPIES = {"deepcopy": copy.deepcopy, "pickle": lambda obj: pickle.loads(pickle.dumps(obj))}


@pytest.mark.parametrize("copy_of", list(COPIES))
@pytest.mark.parametrize("kwargs", [{}, {"use_batchnorm": True, "use_dropout": True},
                                    {"normalization": "layer"}, {"normalization": "weight"},
                                    {"normalization": "switchable"}],
                         ids=["plain", "batchnorm-dropout", "layer", "weight", "switchable"])
def test_a_copied_net_trains_its_own_parameters(copy_of, kwargs):
    """A trained net and its Adam copied together (``copy.deepcopy``, pickle) go on as
    the originals do: ``params`` and the layers read the copy's own arenas (they used to
    keep training arenas that ``params`` no longer shared), the running statistics and
    Adam's state carry over, and the original is untouched."""
    sizes = (13, [6, 6], 5)
    x, t = batch(0, sizes=sizes)
    net = fast_nets.MultiLayerNetExtend(*sizes, dtype=np.float64, seed=3, **kwargs)
    adam = fast_optimizers.Adam(lr=0.05)
    for _ in range(3):
        net.train_step(x, t, adam)
    twin, twin_adam = COPIES[copy_of]((net, adam))
    before = {key: value.copy() for key, value in net.params.items()}
    for _ in range(3):
        twin.train_step(x, t, twin_adam)
        twin_adam.update(twin.params, twin.gradient(x, t))  # the book's path too
    assert twin.params.intact() and twin.grads.intact()
    assert twin._arena.ctypes.data % 64 == 0
    for key, value in net.params.items():
        assert_array_equal(value, before[key], err_msg=key)
    for _ in range(3):
        net.train_step(x, t, adam)
        adam.update(net.params, net.gradient(x, t))
    for key, value in net.params.items():
        assert_array_equal(twin.params[key], value, err_msg=key)
    assert twin.loss(x, t) == net.loss(x, t)
    twin.params[next(iter(twin.params))][...] = 0  # what params say is what it computes with
    assert twin.loss(x, t) != net.loss(x, t)


def _write_first(arena):
    arena[0] = 7


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                    reason="no fork start method")
def test_a_forked_child_writes_its_own_copy_of_a_large_zero_arena():
    """A zero arena of at least ``config.LAZY_ZEROS_MIN_BYTES`` is a memory mapping of
    its own: private, so that a forked worker's writes do not reach its parent."""
    from fastnet import config
    from fastnet.arena import aligned_zeros

    arena = aligned_zeros(config.LAZY_ZEROS_MIN_BYTES // 4 + 1, np.float32)
    child = multiprocessing.get_context("fork").Process(target=_write_first, args=(arena,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert not arena.any()


def test_a_large_zero_arena_survives_a_refused_mapping_or_advice(monkeypatch):
    """A kernel without transparent huge pages refuses MADV_NOHUGEPAGE (EINVAL): the
    advice is only about memory use, so the arena is made all the same; and where no
    mapping can be made, the arena comes from np.zeros."""
    import mmap
    import types

    from fastnet import arena, config

    refused = []

    class Refusing(mmap.mmap):
        def madvise(self, *args):
            refused.append(args)
            raise OSError(22, "Invalid argument")

    private = {"MAP_PRIVATE": mmap.MAP_PRIVATE} if hasattr(mmap, "MAP_PRIVATE") else {}
    fake = types.SimpleNamespace(mmap=Refusing, MADV_NOHUGEPAGE=14, **private)
    monkeypatch.setattr(arena, "mmap", fake)
    zeros = arena.aligned_zeros(config.LAZY_ZEROS_MIN_BYTES // 8 + 1, np.float64)
    assert refused and not zeros.any() and zeros.flags.writeable

    def no_mapping(*args, **kwargs):
        raise OSError(12, "Cannot allocate memory")

    # where no mapping can be made, np.zeros (and its MemoryError, if it fails too)
    monkeypatch.setattr(fake, "mmap", no_mapping)
    zeros = arena.aligned_zeros(config.LAZY_ZEROS_MIN_BYTES // 8 + 1, np.float64)
    assert not zeros.any() and zeros.ctypes.data % config.ALIGNMENT == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_arenas_start_on_cache_lines(dtype):
    """Every arena a kernel streams over (parameters, gradients, running statistics,
    optimizer state, workspaces; a population's too) starts on a ``config.ALIGNMENT``
    boundary: NumPy aligns to 16 bytes, and AVX-512 loads that straddle cache lines
    made Adam's pass 3x slower."""
    from fastnet import config
    from fastnet.arena import aligned_empty, aligned_zeros
    from fastnet.population import Population

    def aligned(a):  # an empty array has no data to align
        return a.size == 0 or a.ctypes.data % config.ALIGNMENT == 0

    # (1 << 19, 3): above config.LAZY_ZEROS_MIN_BYTES, a memory mapping of its own
    for shape in (0, 1, 7, (3, 5), (2, 0, 4), (1 << 19, 3)):
        for make in (aligned_empty, aligned_zeros):
            a = make(shape, dtype)
            assert a.shape == (shape if isinstance(shape, tuple) else (shape,))
            assert a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
            assert aligned(a)
        assert not aligned_zeros(shape, dtype).any()
    for shape in (-1, (2, -3)):  # refused, as NumPy refuses them
        for make in (aligned_empty, aligned_zeros):
            with pytest.raises(ValueError, match="negative dimensions"):
                make(shape, dtype)
    for shape in (2.0, (2, 1.5), "3", None):  # refused as NumPy refuses them
        for make in (aligned_empty, aligned_zeros):
            with pytest.raises(TypeError, match="a shape is an int or a sequence of ints"):
                make(shape, dtype)
    assert aligned_empty([2, np.int64(3)], dtype).shape == (2, 3)
    net = fast_nets.MultiLayerNetExtend(20, [9, 7], 3, use_batchnorm=True, use_dropout=True,
                                        dtype=dtype, seed=1)
    adam = fast_optimizers.Adam()
    x = np.random.default_rng(0).random((5, 20)).astype(dtype)
    net.train_step(x, np.arange(5) % 3, adam)
    arenas = [net._arena, net._grad_arena, net._running,
              *(arena for arena, _, _ in adam._arenas.values())]  # (arena, dict, views)
    for workspace in net._workspaces.values():
        arenas += [a for a in workspace.values() if isinstance(a, np.ndarray)]
    population = Population(20, [9, 7], 3, [{"seed": 1}, {"seed": 2}], optimizer="Adam",
                            dtype=dtype)
    arenas += [population._params, population._grads, population._states]
    population.keep(np.array([False, True]))  # compacted arenas are fresh ones
    arenas += [population._params, population._grads, population._states,
               population._running]
    assert all(aligned(a) and a.flags.c_contiguous for a in arenas)


# ------------------------------------------------------------------ inference

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", TABLE_NETS)
def test_inference_matches_the_reference(case, dtype, monkeypatch):
    """predict, loss and accuracy after some training (real running statistics), in
    chunks of 3 rows (the last one short), train_flg False and True."""
    monkeypatch.setattr(fast_nets, "INFERENCE_CHUNK", 3)
    fast, ref = make_net(fast_nets, case, dtype, seed=6), make_net(reference_nets, case, dtype, seed=6)
    for step in range(3):
        x, t = batch(step, dtype=dtype)
        book_step(fast, x, t, fast_optimizers.SGD(0.3))
        book_step(ref, x, t, reference_optimizers.SGD(0.3))
    x, t = batch(5, n=11, dtype=dtype)
    onehot = np.eye(SIZES[2], dtype=dtype)[t]
    flags = [False, True] if case.extend else [None]
    for flag in flags:
        kwargs = {} if flag is None else {"train_flg": flag}
        predicted = fast.predict(x, **kwargs)
        assert predicted.dtype == dtype
        assert_close(predicted, ref.predict(x, **kwargs), dtype, f"predict {kwargs}")
        assert_close(fast.loss(x, t, **kwargs), ref.loss(x, t, **kwargs), dtype,
                     f"loss {kwargs}", check_dtype=False)
        assert_close(fast.loss(x, onehot, **kwargs), ref.loss(x, onehot, **kwargs), dtype,
                     f"loss one-hot {kwargs}", check_dtype=False)
    assert fast.accuracy(x, t) == ref.accuracy(x, t) == fast.accuracy(x, onehot)
    assert 0 < fast.accuracy(x, t) < 1
    assert_same_nets(fast, ref, np.dtype(dtype))  # train_flg=True moved both alike


def test_inference_of_many_rows_and_images():
    """4-D image input, more rows than a chunk, and argmax ties, NaN as np.argmax."""
    net = make_net(fast_nets, NET_CASES[-1], np.float32, sizes=(12, [9, 7], 4))
    ref = make_net(reference_nets, NET_CASES[-1], np.float32, sizes=(12, [9, 7], 4))
    x = np.random.default_rng(3).standard_normal((fast_nets.INFERENCE_CHUNK * 2 + 5, 1, 3, 4))
    assert_close(net.predict(x), ref.predict(x), np.float32, "predict")
    zeros = make_net(fast_nets, NET_CASES[0], sizes=(12, [9, 7], 4))
    for key in zeros.params:
        zeros.params[key][...] = 0
    assert_array_equal(zeros.predict(x), 0)
    assert zeros.accuracy(x, np.zeros(x.shape[0], int)) == 1.0  # all tied: the first
    x[1, 0, 0, 0] = np.nan
    assert np.isnan(net.predict(x)[1]).all()
    assert net.accuracy(x[:2], np.zeros(2, int)) == ref.accuracy(x[:2], np.zeros(2, int))


def test_sgd_steps_inside_the_backward_pass():
    """fastnet's SGD updates each weight matrix in the GEMM that would have computed its
    gradient, so the step leaves the weight gradients unwritten; a subclass, which may
    change ``update``, goes through ``update_flat`` and gets every gradient."""
    class MySGD(fast_optimizers.SGD):
        pass

    for optimizer, weights_written in ((fast_optimizers.SGD(0.1), False), (MySGD(0.1), True)):
        net = make_net(fast_nets, NET_CASES[0])
        for grad in net.grads.values():
            grad[...] = np.nan
        net.train_step(*batch(0), optimizer)
        for key, grad in net.grads.items():
            assert np.isnan(grad).all() != (weights_written or key.startswith("b")), key


@pytest.mark.parametrize("case", OPTIMIZERS)
def test_train_step_calls_the_update_a_subclass_overrides(case):
    """An optimizer subclass's own ``update`` (clipping the gradients here) makes the
    step, with the net's params and grads, as the book's step would call it."""
    class Clipped(getattr(fast_optimizers, case.name)):
        calls = 0

        def update(self, params, grads):
            self.calls += 1
            super().update(params, {key: np.clip(g, -0.01, 0.01) for key, g in grads.items()})

    fused, book = make_net(fast_nets, NET_CASES[1]), make_net(fast_nets, NET_CASES[1])
    fused_opt, book_opt = Clipped(**case.kwargs), Clipped(**case.kwargs)
    for step in range(3):
        x, t = batch(step)
        assert fused.train_step(x, t, fused_opt) == pytest.approx(
            book_step(book, x, t, book_opt), rel=1e-12)
    assert fused_opt.calls == 3
    assert_same_nets(fused, book, np.dtype(np.float64))


class Frozen(fast_nets.MultiLayerNet):
    def gradient(self, x, t):
        return {key: np.zeros_like(g) for key, g in super().gradient(x, t).items()}


class Tempered(fast_nets.MultiLayerNetExtend):
    def predict(self, x, train_flg=False):
        return super().predict(x, train_flg) / 4


def test_trainer_steps_a_net_whose_class_overrides_the_books_methods_the_books_way():
    """The fused step would skip a subclass's gradient, loss or predict: the Trainer
    steps such a net as the book's does (a frozen net stays as it was; the loss recorded
    is the subclass's, after the update)."""
    x, t = batch(0, n=40)
    frozen = Frozen(*SIZES, dtype=np.float64, seed=0)
    before = {key: p.copy() for key, p in frozen.params.items()}
    fast_trainer.Trainer(frozen, x, t, x, t, epochs=2, mini_batch_size=10, verbose=False,
                         optimizer_param={"lr": 0.5}).train()
    for key, p in frozen.params.items():
        assert_array_equal(p, before[key], err_msg=key)
    tempered = Tempered(*SIZES, dtype=np.float64, seed=0)
    trainer = fast_trainer.Trainer(tempered, x, t, x, t, epochs=1, mini_batch_size=10,
                                   verbose=False, seed=1)
    trainer.train()
    last = trainer._order[trainer._cursor - 10:trainer._cursor]
    assert trainer.train_loss_list[-1] == tempered.loss(x[last], t[last])


def test_loss_and_accuracy_call_the_predict_a_subclass_overrides():
    """As the book's loss and accuracy call ``self.predict``."""
    x, t = batch(0, n=40)
    net, book = Tempered(*SIZES, dtype=np.float64, seed=0), reference_nets.MultiLayerNetExtend(
        *SIZES, dtype=np.float64, seed=0)
    logits = book.predict(x) / 4
    assert net.loss(x, t) == pytest.approx(book.last_layer.forward(logits, t), rel=1e-12)
    assert net.accuracy(x, t) == np.mean(np.argmax(logits, axis=1) == t)


@pytest.mark.parametrize("module", [fast_nets, reference_nets], ids=["fastnet", "reference"])
def test_a_net_pickled_before_layers_and_weight_decay_were_properties_loads(module):
    """An older fastnet pickled ``layers`` and ``weight_decay_lambda`` under those names
    (KeyError '_layers', AttributeError '_weight_decay_lambda' on loading)."""
    net = module.MultiLayerNetExtend(*SIZES, use_batchnorm=True, weight_decay_lambda=0.1,
                                     dtype=np.float64, seed=0)
    state = dict(vars(net))
    state["weight_decay_lambda"] = state.pop("_weight_decay_lambda")
    if module is fast_nets:
        state["layers"] = OrderedDict(state.pop("_layers"))
    older = type(net).__new__(type(net))
    older.__setstate__(state)
    x, t = batch(0)
    assert older.weight_decay_lambda == 0.1 and list(older.layers) == list(net.layers)
    assert_array_equal(older.predict(x), net.predict(x))
    assert older.loss(x, t) == net.loss(x, t)


def test_a_nets_layers_cannot_be_replaced_added_or_removed():
    """Its compiled passes would ignore the change (a swapped-in Sigmoid never ran);
    copies and pickles keep the layers."""
    net = fast_nets.MultiLayerNet(*SIZES, dtype=np.float64, seed=0)
    for change in (lambda d: d.__setitem__("Activation_function1", fast_layers.Sigmoid()),
                   lambda d: d.__delitem__("Affine1"), lambda d: d.pop("Affine1"),
                   lambda d: d.popitem(), lambda d: d.clear(), lambda d: d.update({}),
                   lambda d: d.setdefault("New", None), lambda d: d.move_to_end("Affine1")):
        with pytest.raises(TypeError, match="layers are fixed when it is built"):
            change(net.layers)
    layers = net.layers
    for replacement in ({}, OrderedDict(layers), layers):  # save_net then wrote another net
        with pytest.raises(TypeError, match="layers are fixed when it is built"):
            net.layers = replacement
    assert net.layers is layers
    assert list(net.layers) == ["Affine1", "Activation_function1", "Affine2",
                                "Activation_function2", "Affine3"]
    for plain in (net.layers.copy(), net.layers | {"Extra": None}):  # plain dicts, free
        assert type(plain) is OrderedDict and list(plain)[:5] == list(net.layers)
        plain["Extra"] = fast_layers.Sigmoid()
    x = batch(0)[0]
    for other in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert list(other.layers) == list(net.layers)
        assert_array_equal(other.predict(x), net.predict(x))
        with pytest.raises(TypeError, match="layers are fixed when it is built"):
            other.layers = {}


@pytest.mark.parametrize("n", [8, 1 << 15], ids=["serial-layer", "parallel-layer"])
@pytest.mark.parametrize("ratio", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("dtype", DTYPES)
def test_train_step_dropout_masks_equal_the_layers(dtype, ratio, n):
    """The fused step's dropout masks, read from its workspace, equal those of
    ``gradient()`` and those a Dropout layer of the same seed and step draws, at the edge
    rates too; with ``n`` rows the Dropout layer takes the serial or the parallel kernel
    (the fused passes the serial)."""
    kwargs = {"use_dropout": True, "dropout_ratio": ratio, "dtype": dtype, "seed": 5}
    fused, book = (fast_nets.MultiLayerNetExtend(*SIZES, **kwargs) for _ in range(2))
    for step in range(2):
        x, t = batch(step, n=n, dtype=dtype)
        fused.train_step(x, t, fast_optimizers.SGD(0.01))
        book_step(book, x, t, fast_optimizers.SGD(0.01))
        masks, offset = fused._workspace(n)["masks"], 0
        for layer in dropouts(book):
            assert_array_equal(masks[offset:offset + layer.mask.size], layer.mask.reshape(-1))
            alone = fast_layers.Dropout(ratio, seed=layer.seed)
            alone.step = step
            alone.forward(np.ones(layer.mask.shape, dtype))
            assert_array_equal(alone.mask, layer.mask)
            offset += layer.mask.size
        assert offset == masks.size
        if ratio in (0, 1):
            assert_array_equal(masks, ratio == 0)
    assert_same_nets(fused, book, np.dtype(dtype))


@pytest.mark.parametrize("net_case", TABLE_NETS)
def test_train_step_with_a_book_optimizer(net_case):
    """An optimizer without ``update_flat`` (here the reference's) gets the dicts."""
    fused, book = make_net(fast_nets, net_case), make_net(fast_nets, net_case)
    fused_opt, book_opt = reference_optimizers.Adam(lr=0.01), reference_optimizers.Adam(lr=0.01)
    for step in range(5):
        x, t = batch(step)
        fused.train_step(x, t, fused_opt)
        book_step(book, x, t, book_opt)
    assert_same_nets(fused, book, np.dtype(np.float64))


@pytest.mark.parametrize("case", TABLE_NETS)
def test_float32_stays_float32_through_train_step(case):
    net = make_net(fast_nets, case, np.float32)
    optimizer = fast_optimizers.Adam()
    x, t = batch(0)  # float64 input: converted, not promoting the net
    loss = net.train_step(x, t, optimizer)
    assert isinstance(loss, float) and np.isfinite(loss)
    assert all(p.dtype == np.float32 for p in net.params.values())
    assert all(s.dtype == np.float32 for s in optimizer.m.values())
    assert all(s.dtype == np.float32 for s in running_stats(net).values())
    assert net.predict(x).dtype == np.float32
    assert all(g.dtype == np.float32 for g in net.gradient(x.astype(np.float32), t).values())


# ------------------------------------------------------------------ shared parameters

@pytest.mark.parametrize("case", TABLE_NETS)
def test_in_place_edits_of_params_are_seen_by_the_layers(case):
    fast, ref = make_net(fast_nets, case, seed=2), make_net(reference_nets, case, seed=2)
    x, t = batch(2)
    book_step(fast, x, t, fast_optimizers.SGD(0.1))  # real running statistics
    book_step(ref, x, t, reference_optimizers.SGD(0.1))
    before = fast.predict(x)
    for net in (fast, ref):
        net.params["W1"][0] += 1.0
        net.params["b2"] -= 0.5
    assert not np.allclose(fast.predict(x), before)
    assert_close(fast.predict(x), ref.predict(x), np.float64, "predict")
    # ... and by the fused step
    fast_opt, ref_opt = fast_optimizers.SGD(0.1), reference_optimizers.SGD(0.1)
    fast.train_step(x, t, fast_opt)
    book_step(ref, x, t, ref_opt)
    for key in ref.params:
        assert_close(fast.params[key], ref.params[key], np.float64, key)


@pytest.mark.parametrize("case", TABLE_NETS)
def test_rebound_params_are_picked_up_by_the_next_train_step(case):
    rebound, edited = make_net(fast_nets, case, seed=5), make_net(fast_nets, case, seed=5)
    new_w1 = np.random.default_rng(9).standard_normal(rebound.params["W1"].shape)
    rebound.params["W1"] = new_w1.copy()
    edited.params["W1"][...] = new_w1
    rebound_opt, edited_opt = fast_optimizers.Momentum(0.1), fast_optimizers.Momentum(0.1)
    for step in range(3):
        x, t = batch(step)
        assert rebound.train_step(x, t, rebound_opt) == edited.train_step(x, t, edited_opt)
    for key in edited.params:
        assert_array_equal(rebound.params[key], edited.params[key], err_msg=key)
    x, _ = batch(9)
    assert_array_equal(rebound.predict(x), edited.predict(x))
    # W1 moved away from the re-bound values: the step trained them, not the old ones.
    assert not np.array_equal(rebound.params["W1"], new_w1)


@pytest.mark.parametrize("case", NETS + NORM_NETS)
def test_rebound_layer_attributes_are_picked_up_by_every_pass(case):
    """A layer's own parameter re-bound (``layers['Affine1'].W = ...``, a norm layer's
    gamma, also through instance norm's channel view) reaches the fused passes as a
    re-bound ``params`` entry does; a running statistic set to None starts again from
    zeros, as the book's layer does."""
    sizes = NORM_NET_SIZES if case.kwargs.get("normalization") else SIZES
    rebound, edited = (make_net(fast_nets, case, seed=5, sizes=sizes) for _ in range(2))
    key = "v1" if "v1" in rebound.params else "W1"  # weight norm's v, else W
    new = np.random.default_rng(9).standard_normal(rebound.params[key].shape)
    setattr(rebound.layers[f"Affine{key[1:]}"], key[0], new.copy())
    edited.params[key][...] = new
    normed = [k for k in rebound.layers if k.startswith(("BatchNorm", "LayerNorm", "GroupNorm",
                                                          "InstanceNorm", "SwitchNorm"))]
    if normed:
        rebound.layers[normed[0]].gamma = np.full_like(rebound.params["gamma1"], 2.0)
        edited.params["gamma1"][...] = 2.0
    x, t = batch(0, sizes=sizes)
    assert_array_equal(rebound.predict(x), edited.predict(x))
    opts = fast_optimizers.Momentum(0.1), fast_optimizers.Momentum(0.1)
    assert rebound.train_step(x, t, opts[0]) == edited.train_step(x, t, opts[1])
    for k in edited.params:
        assert_array_equal(rebound.params[k], edited.params[k], err_msg=k)
    running = [k for k in normed if k.startswith(("BatchNorm", "SwitchNorm"))]
    if running:
        rebound.layers[running[0]].running_mean = None  # the book's: both from zeros
        edited.layers[running[0]].running_mean[...] = 0
        edited.layers[running[0]].running_var[...] = 0
        assert_array_equal(rebound.predict(x), edited.predict(x))


def test_every_rebound_param_and_running_statistic_is_picked_up():
    """Loading a saved net by re-binding all of ``params`` and the running statistics."""
    case = next(c for c in NET_CASES if c.kwargs.get("use_batchnorm"))
    source, loaded = make_net(fast_nets, case, seed=3), make_net(fast_nets, case, seed=4)
    x, t = batch(0)
    source.train_step(x, t, fast_optimizers.SGD(0.1))  # non-trivial running statistics
    batchnorms = [key for key in source.layers if key.startswith("BatchNorm")]
    for key in source.params:
        loaded.params[key] = source.params[key].copy()
    for key in batchnorms:
        for stat in ("running_mean", "running_var"):
            setattr(loaded.layers[key], stat, getattr(source.layers[key], stat).copy())
    assert_array_equal(loaded.predict(x), source.predict(x))
    source_opt, loaded_opt = fast_optimizers.SGD(0.1), fast_optimizers.SGD(0.1)
    assert loaded.train_step(x, t, loaded_opt) == source.train_step(x, t, source_opt)
    for key in source.params:
        assert_array_equal(loaded.params[key], source.params[key], err_msg=key)
    for key in batchnorms:  # the step's running update reached the layers' arrays
        assert_array_equal(loaded.layers[key].running_var, source.layers[key].running_var)
    assert_array_equal(loaded.predict(x), source.predict(x))


def test_train_step_takes_the_rows_gradient_takes():
    """uint8 images (unnormalized, as ``load_mnist(normalize=False)`` gives them) train
    as their float conversion does, in train_step as in gradient() and the book's code."""
    pixels = np.random.default_rng(0).integers(0, 256, (8, 6), dtype=np.uint8)
    t = np.arange(8) % SIZES[2]
    as_bytes, as_floats = (make_net(fast_nets, NET_CASES[0], np.float32) for _ in range(2))
    assert (as_bytes.train_step(pixels, t, fast_optimizers.Adam())
            == as_floats.train_step(pixels.astype(np.float32), t, fast_optimizers.Adam()))
    for key in as_floats.params:
        assert_array_equal(as_bytes.params[key], as_floats.params[key], err_msg=key)


@pytest.mark.parametrize("given, error, message", [
    (np.zeros((2, 2)), ValueError, r"params\['W1'\] must have shape \(6, 5\), got \(2, 2\)"),
    # taken with only a warning, as inf, as the real part, as parsed text
    (np.full((6, 5), 1e300), ValueError,
     r"params\['W1'\] has values beyond the range of float32 \(largest 3.4e\+38\)"),
    (np.ones((6, 5)) * 1j, TypeError, r"params\['W1'\] must hold real numbers, got dtype complex128"),
    (np.full((6, 5), "0.5"), TypeError, r"params\['W1'\] must hold real numbers, got dtype <U3"),
], ids=["shape", "overflow", "complex", "text"])
def test_a_rebound_param_that_the_net_cannot_hold_is_refused(given, error, message):
    net = make_net(fast_nets, NET_CASES[0], np.float32)
    before = {key: value.copy() for key, value in net.params.items()}
    net.params["W1"] = given
    with pytest.raises(error, match=f"^{message}$"):
        net.train_step(*batch(0, dtype=np.float32), fast_optimizers.SGD())
    net.params["W1"] = before["W1"]
    for key, value in net.params.items():  # nothing written
        assert_array_equal(value, before[key], err_msg=key)


def test_rebinding_a_param_keeps_the_dicts_and_arrays_a_user_holds_the_nets():
    """The values re-bound are copied into the arenas in place: a ``params = net.params``
    held across the re-bind (the book's optimizer.update(params, grads)) still trains
    the net, and a kept array of another entry is still the net's (moving the arenas
    to keep ``saved = net.params['W1']`` unchanged, as the book's net does, stopped the
    training of every such script).  A kept view of the re-bound entry shows the new
    values (documented: keep a copy)."""
    case = next(c for c in NET_CASES if c.kwargs.get("use_batchnorm"))
    nets = [make_net(fast_nets, case, seed=3) for _ in range(2)]
    x, t = batch(0)
    params = nets[0].params
    saved, other = params["W1"], params["W2"]
    params["b1"] = params["b1"] + 0.0  # the same values, re-bound
    params["W1"] = saved.copy()
    for net, held in zip(nets, (params, nets[1].params)):
        optimizer = fast_optimizers.Adam(0.01)
        for _ in range(5):
            optimizer.update(held, net.gradient(x, t))
    assert nets[0].params is params and nets[0].params["W2"] is other
    for key in params:
        assert_array_equal(nets[0].params[key], nets[1].params[key], err_msg=key)
    assert nets[0].loss(x, t) == nets[1].loss(x, t) < make_net(fast_nets, case, seed=3).loss(x, t)
    other[...] = 0  # a kept array is the net's
    assert not nets[0].params["W2"].any()
    nets[0].params["W1"] = np.zeros_like(saved)
    nets[0].predict(x)
    assert not saved.any()


# ------------------------------------------------------------------ trainer and seeds

def toy_data(n=400, d=6, classes=3, seed=0, dtype=np.float64):
    """A learnable problem: labels are the argmax of a fixed linear map of x."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(dtype)
    return x, np.argmax(x @ rng.standard_normal((d, classes)), axis=1)


def train(module, trainer_module, case, dtype=np.float64, net_seed=0, trainer_seed=1, epochs=4):
    x, t = toy_data(dtype=dtype)
    net = make_net(module, case, dtype, seed=net_seed, sizes=(6, [16, 16], 3))
    trainer = trainer_module.Trainer(net, x[:300], t[:300], x[300:], t[300:], epochs=epochs,
                                     mini_batch_size=50, optimizer="Adam",
                                     optimizer_param={"lr": 0.03}, verbose=False,
                                     seed=trainer_seed)
    trainer.train()
    return net, trainer


@pytest.mark.parametrize("case", NETS)
def test_trainer_records_epoch_accuracies_like_the_reference(case):
    net, trainer = train(fast_nets, fast_trainer, case)
    x_test, t_test = toy_data()[0][300:], toy_data()[1][300:]
    assert isinstance(trainer.optimizer, fast_optimizers.Adam)
    assert len(trainer.train_loss_list) == trainer.max_iter == 24
    assert len(trainer.train_acc_list) == len(trainer.test_acc_list) == 4  # iterations 0, 6, 12, 18
    assert all(np.isfinite(trainer.train_loss_list))
    for acc in trainer.test_acc_list:
        assert 0 <= acc <= 1 and round(acc * 100) == pytest.approx(acc * 100)
    assert net.accuracy(x_test, t_test) > trainer.test_acc_list[0] + 0.15  # it learns
    _, ref_trainer = train(reference_nets, reference_trainer, case)
    assert_allclose(trainer.test_acc_list, ref_trainer.test_acc_list, atol=0.0101)
    assert_allclose(trainer.train_acc_list, ref_trainer.train_acc_list, atol=0.0101)


def test_trainer_trains_a_network_without_train_step():
    """A book-style network (here the reference's) goes through gradient() + update()."""
    case = NET_CASES[2]
    _, fast = train(reference_nets, fast_trainer, case)
    _, ref = train(reference_nets, reference_trainer, case)
    assert_allclose(fast.test_acc_list, ref.test_acc_list, atol=0.0101)


@pytest.mark.parametrize("case", NETS)
def test_seed_reproducibility(case):
    a, b, c = (make_net(fast_nets, case, np.float32, seed=s) for s in (4, 4, 5))
    for key in a.params:
        assert_array_equal(a.params[key], b.params[key])
    assert not np.array_equal(a.params["W1"], c.params["W1"])
    assert [d.seed for d in dropouts(a)] == [d.seed for d in dropouts(b)]
    net_a, trainer_a = train(fast_nets, fast_trainer, case, np.float32, net_seed=4, trainer_seed=2)
    net_b, trainer_b = train(fast_nets, fast_trainer, case, np.float32, net_seed=4, trainer_seed=2)
    for key in net_a.params:
        assert_array_equal(net_a.params[key], net_b.params[key], err_msg=key)
    assert trainer_a.train_loss_list == trainer_b.train_loss_list
    assert trainer_a.test_acc_list == trainer_b.test_acc_list
    net_c, _ = train(fast_nets, fast_trainer, case, np.float32, net_seed=4, trainer_seed=3)
    assert not np.array_equal(net_a.params["W1"], net_c.params["W1"])


def test_global_seed_makes_seedless_nets_reproducible():
    """A book script calls np.random.seed(...) and passes no seed."""
    nets = []
    for _ in range(2):
        np.random.seed(1234)
        nets.append(fast_nets.MultiLayerNetExtend(6, [5], 3, use_dropout=True))
    for key in nets[0].params:
        assert_array_equal(nets[0].params[key], nets[1].params[key])
    assert dropouts(nets[0])[0].seed == dropouts(nets[1])[0].seed


@pytest.mark.parametrize("name", ["MultiLayerNet", "MultiLayerNetExtend"])
def test_nets_show_the_books_parameters(name):
    """help() and inspect.signature() show the real parameters, the reference's."""
    signature = inspect.signature(getattr(fast_nets, name))
    assert signature == inspect.signature(getattr(reference_nets, name))
    assert "input_size" in signature.parameters and "kwargs" not in signature.parameters


# ------------------------------------------------------------------ the other normalizations

@pytest.mark.parametrize("case", NORM_NETS)
def test_normalized_net_gradient_matches_numerical_gradient(case):
    """Backprop against central differences, float64 (the fused kernels', or the
    layers' for weight norm's numerical gradient); the numerical gradient leaves the net
    as it was (dropout steps, running statistics)."""
    net = make_net(fast_nets, case, np.float64, seed=3, sizes=NORM_NET_SIZES)
    x, t = batch(0, sizes=NORM_NET_SIZES)
    before = {k: v.copy() for k, v in net.params.items()}
    net.predict(x, train_flg=True)  # switchable norm: running statistics to keep
    running = {key: np.array(layer.running_var) for key, layer in net.layers.items()
               if getattr(layer, "running_var", None) is not None}
    assert bool(running) == (case.kwargs["normalization"] == "switchable")
    steps = [layer.step for layer in dropouts(net)]
    numeric = net.numerical_gradient(x, t)
    for key, value in before.items():
        assert_array_equal(net.params[key], value, err_msg=key)
    for key, value in running.items():
        assert_array_equal(net.layers[key].running_var, value, err_msg=key)
    assert [layer.step for layer in dropouts(net)] == steps
    analytic = net.gradient(x, t)
    assert analytic.keys() == numeric.keys() == net.params.keys()
    for key in numeric:
        assert_allclose(analytic[key], numeric[key], rtol=1e-4, atol=1e-6, err_msg=key)
    normalization = case.kwargs["normalization"]
    assert {f"{name}1" for name in NORM_PARAMS[normalization]} <= analytic.keys()
    assert ("W1" in analytic) == (normalization != "weight")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", NORM_NETS)
def test_normalized_net_follows_the_reference(case, dtype):
    """Same seed, same parameters; the same predictions, loss and accuracy; then a few
    SGD steps, fastnet's ``train_step`` against the reference's gradient and update."""
    fast = make_net(fast_nets, case, dtype, seed=11, sizes=NORM_NET_SIZES)
    ref = make_net(reference_nets, case, dtype, seed=11, sizes=NORM_NET_SIZES)
    assert fast.params.keys() == ref.params.keys()
    for key in ref.params:
        assert_array_equal(fast.params[key], ref.params[key], err_msg=key)
    x, t = batch(1, dtype=dtype, sizes=NORM_NET_SIZES)
    fast_opt, ref_opt = fast_optimizers.SGD(lr=0.1), reference_optimizers.SGD(lr=0.1)
    for step in range(3):
        x, t = batch(step, dtype=dtype, sizes=NORM_NET_SIZES)
        fast_loss = fast.train_step(x, t, fast_opt)
        grads = ref.gradient(x, t)
        ref_loss = ref.last_layer.loss + 0.5 * ref.weight_decay_lambda * sum(
            float(np.sum(w.astype(np.float64) ** 2)) for w in ref._weight_matrices())
        ref_opt.update(ref.params, grads)
        assert_close(fast_loss, ref_loss, dtype, f"loss of step {step}", check_dtype=False)
    for key in ref.params:
        assert fast.params[key].dtype == dtype
        assert_close(fast.params[key], ref.params[key], dtype, key)
    for flag in (False, True):
        assert_close(fast.predict(x, train_flg=flag), ref.predict(x, train_flg=flag), dtype,
                     f"predict train_flg={flag}")
    assert_close(fast.loss(x, t), ref.loss(x, t), dtype, "loss", check_dtype=False)
    assert fast.accuracy(x, t) == ref.accuracy(x, t)


@pytest.mark.parametrize("case", NORM_NETS)
def test_normalized_train_step_is_gradient_then_update(case):
    fused = make_net(fast_nets, case, seed=5, sizes=NORM_NET_SIZES)
    book = make_net(fast_nets, case, seed=5, sizes=NORM_NET_SIZES)
    fused_opt, book_opt = fast_optimizers.Adam(lr=0.01), fast_optimizers.Adam(lr=0.01)
    for step in range(3):
        x, t = batch(step, sizes=NORM_NET_SIZES)
        fused_loss = fused.train_step(x, t, fused_opt)
        assert_close(fused_loss, book_step(book, x, t, book_opt) if "W1" in book.params else
                     _book_step_weight_norm(book, x, t, book_opt), np.float64, "loss",
                     check_dtype=False)
    for key in book.params:
        assert_array_equal(fused.params[key], book.params[key], err_msg=key)


def _book_step_weight_norm(net, x, t, optimizer):
    """``book_step`` for a weight-normalized net: the decay is ``0.5 lambda sum(g^2)``."""
    grads = net.gradient(x, t)
    loss = net.last_layer.loss + 0.5 * net.weight_decay_lambda * sum(
        float(np.sum(net.params[f"g{i}"] ** 2)) for i in range(1, net.hidden_layer_num + 2))
    optimizer.update(net.params, grads)
    return loss


def test_use_batchnorm_is_normalization_batch():
    book = make_net(fast_nets, next(c for c in NET_CASES if c.id == "bn"), seed=2)
    named = fast_nets.MultiLayerNetExtend(*SIZES, normalization="batch", dtype=np.float64,
                                          seed=2)
    assert book.normalization == named.normalization == "batch" and named.use_batchnorm
    x, t = batch(0)
    assert_array_equal(book.gradient(x, t)["gamma1"], named.gradient(x, t)["gamma1"])


@pytest.mark.parametrize("module", [fast_nets, reference_nets])
def test_weight_normalized_net_starts_as_the_plain_net(module):
    plain = module.MultiLayerNetExtend(*SIZES, dtype=np.float64, seed=4)
    weighted = module.MultiLayerNetExtend(*SIZES, normalization="weight", dtype=np.float64,
                                          seed=4)
    x, _ = batch(0)
    assert_allclose(weighted.predict(x), plain.predict(x), rtol=1e-12, atol=1e-12)
    assert_allclose(weighted.params["g1"], np.linalg.norm(weighted.params["v1"], axis=0))


@pytest.mark.parametrize("normalization", _book.NORMALIZATIONS)
def test_every_normalization_runs_the_fused_step(normalization, monkeypatch):
    calls = []
    step = network.mlp_train_step
    monkeypatch.setattr(network, "mlp_train_step", lambda *args: calls.append(1) or step(*args))
    net = fast_nets.MultiLayerNetExtend(*NORM_NET_SIZES, normalization=normalization, seed=1)
    x, t = batch(0, dtype=np.float32, sizes=NORM_NET_SIZES)
    assert np.isfinite(net.train_step(x, t, fast_optimizers.SGD()))
    assert calls == [1]


# ------------------------------------------------------------------ the fused normalizations

GROUPED_SIZES = (6, [8, 8], 3)  # groups of 1, 2, 4 divide both hidden layers, each group of 2 units or more


def layer_by_layer_gradient(net, x, t):
    """The book's backprop through ``net``'s layer classes (``fastnet.layers``), not the
    fused kernels, as copies."""
    return {key: np.array(grad) for key, grad in _book.LayerNetExtend.gradient(net, x, t).items()}


@pytest.mark.parametrize("normalization, groups", [
    *((normalization, groups) for normalization in ("group", "instance")
      for groups in (1, 2, 4)), ("switchable", 2)])
def test_fused_normalizations_match_the_layers(normalization, groups, monkeypatch):
    """Group, instance and switchable norm run the fused kernels (groups = 1 to groups =
    D / 2: instance norm's channels of 8 positions down to two; groups of one are
    refused); the fused gradient (and switchable norm's running statistics) equals the
    layer classes', so do the central differences of each (float64, tanh), and
    inference equals the layers'.  (Backprop against central
    differences: over the net cases, these among them, in
    ``test_normalized_net_gradient_matches_numerical_gradient``.)"""
    calls = []
    for name in ("mlp_train_step", "mlp_numerical_gradient", "mlp_predict",
                 "mlp_predict_labels", "mlp_cross_entropy"):
        kernel = getattr(network, name)
        monkeypatch.setattr(network, name, lambda *args, kernel=kernel, name=name:
                            calls.append(name) or kernel(*args))
    net = fast_nets.MultiLayerNetExtend(*GROUPED_SIZES, activation="tanh",
                                        weight_decay_lambda=0.05, normalization=normalization,
                                        groups=groups, dtype=np.float64, seed=0)
    width = groups if normalization == "instance" else 8
    assert net.params["gamma1"].shape == net.params["beta2"].shape == (width,)
    x, t = batch(0, sizes=GROUPED_SIZES)
    for key, param in net.params.items():  # the normalizations', away from 1s and 0s
        if key.rstrip("0123456789") not in ("W", "b"):
            param[...] += np.linspace(-0.3, 0.3, param.size)
    running = {key: np.array(stats) for key, stats in running_stats(net).items()}
    fused = {key: grad.copy() for key, grad in net.gradient(x, t).items()}
    assert calls == ["mlp_train_step"]
    fused_running = running_stats(net)
    for layer, i in zip(running_layers(net), (1, 2)):  # rewound for the layers' pass
        layer.running_mean[...], layer.running_var[...] = (running[f"running_mean{i}"],
                                                           running[f"running_var{i}"])
    layered = layer_by_layer_gradient(net, x, t)
    kept = {f"{name}{i}" for name in ("running_mean", "running_var") for i in (1, 2)}
    assert fused_running.keys() == running.keys() == (
        kept if normalization == "switchable" else set())
    for key, stats in running_stats(net).items():
        assert not np.array_equal(stats, running[key]), key
        assert_allclose(fused_running[key], stats, rtol=1e-12, atol=1e-14, err_msg=key)
    numeric = net.numerical_gradient(x, t)
    layered_numeric = net._layer_numerical_gradient(x, t)
    assert fused.keys() == layered.keys() == numeric.keys() == layered_numeric.keys()
    for key in fused:
        assert_allclose(fused[key], layered[key], rtol=1e-12, atol=1e-14, err_msg=key)
        assert_allclose(numeric[key], layered_numeric[key], rtol=1e-8, atol=1e-10,
                        err_msg=key)

    logits = _book.LayerNetExtend.predict(net, x)
    assert_allclose(net.predict(x), logits, rtol=1e-12, atol=1e-14)
    assert_allclose(net.loss(x, t), _book.LayerNetExtend.loss(net, x, t), rtol=1e-12)
    assert net.accuracy(x, t) == np.mean(np.argmax(logits, axis=1) == t)
    assert calls == ["mlp_train_step", "mlp_numerical_gradient", "mlp_predict",
                     "mlp_cross_entropy", "mlp_predict_labels"]


@pytest.mark.parametrize("n", [8, 1 << 14], ids=["serial-layers", "parallel-layers"])
@pytest.mark.parametrize("normalization", ["layer", "group", "instance"])
def test_fused_group_norm_family_is_the_layers_bit_for_bit(normalization, n):
    """The fused step (serial group-norm kernels) against the layer classes, whose
    group-norm kernels are the parallel builds for ``n`` rows of 16 units: bitwise equal
    gradients, float32."""
    sizes = (6, [16, 16], 3)
    net = fast_nets.MultiLayerNetExtend(*sizes, normalization=normalization, groups=4,
                                        seed=2)
    x, t = batch(0, n=n, dtype=np.float32, sizes=sizes)
    fused = {key: grad.copy() for key, grad in net.gradient(x, t).items()}
    for key, grad in layer_by_layer_gradient(net, x, t).items():
        assert_array_equal(fused[key], grad, err_msg=key)


@pytest.mark.parametrize("normalization", ["layer", "group", "instance", "switchable"])
def test_the_fused_passes_take_the_layers_eps(normalization):
    """An eps set on every normalization layer is the fused passes' too (they ignored
    it): predict, gradient and train_step equal the reference's with that eps."""
    kwargs = {"activation": "tanh", "normalization": normalization, "groups": 2,
              "dtype": np.float64, "seed": 1}
    fast = fast_nets.MultiLayerNetExtend(*GROUPED_SIZES, **kwargs)
    ref = reference_nets.MultiLayerNetExtend(*GROUPED_SIZES, **kwargs)
    prefix = _book.NORMALIZATION_LAYERS[normalization]
    for net in (fast, ref):
        for key in net.layers:
            if key.startswith(prefix):
                net.layers[key].eps = 0.5
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((5, GROUPED_SIZES[0])), rng.integers(0, 3, 5)
    assert_allclose(fast.predict(x), ref.predict(x), rtol=1e-12, atol=1e-14)
    fast_grads, ref_grads = fast.gradient(x, t), ref.gradient(x, t)
    for key in ref_grads:
        assert_allclose(fast_grads[key], ref_grads[key], rtol=1e-10, atol=1e-14, err_msg=key)


def test_the_fused_passes_refuse_what_they_cannot_take_from_the_layers():
    """One eps for every layer (the kernels take one) and the groups the net was built
    with: anything else set on the layers is refused by name, before a pass."""
    net = fast_nets.MultiLayerNetExtend(*GROUPED_SIZES, normalization="group", groups=2,
                                        seed=1)
    x, t = np.ones((2, GROUPED_SIZES[0])), np.array([0, 1])
    net.layers["GroupNorm2"].eps = 1e-3
    with pytest.raises(ValueError, match=r"eps differ \(GroupNorm1: 1e-06, GroupNorm2: "
                                         r"0.001\)"):
        net.predict(x)
    net.layers["GroupNorm2"].eps = -1.0
    with pytest.raises(ValueError, match=r"layers\['GroupNorm2'\].eps must be > 0"):
        net.gradient(x, t)
    net.layers["GroupNorm2"].eps = 1e-6
    net.layers["GroupNorm1"].groups = 4
    with pytest.raises(ValueError, match=r"layers\['GroupNorm1'\].groups=4: the net's fused "
                                         r"passes group its channels as built, groups=2"):
        net.train_step(x, t, fast_optimizers.SGD())


def _batches(n=4, size=20, features=6, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((size, features)), rng.integers(0, 3, size))
            for _ in range(n)]


def test_a_gradient_entry_the_user_replaced_is_fresh_at_the_next_call():
    """``grads[k] = np.clip(grads[k], ...)`` re-binds an entry of the dict ``gradient()``
    returns: the next call fills the arena's view again (it returned the stale array),
    and an optimizer the net hands ``grads`` to steps on the fresh gradient."""
    nets = [module.MultiLayerNet(6, [5], 3, dtype=np.float64, seed=0)
            for module in (fast_nets, reference_nets)]
    for x, t in _batches():
        for net in nets:
            grads = net.gradient(x, t)
            for key in list(grads):
                grads[key] = np.clip(grads[key], -0.01, 0.01)
            reference_optimizers.SGD(lr=1.0).update(net.params, grads)
    for key in nets[1].params:
        assert_allclose(nets[0].params[key], nets[1].params[key], rtol=1e-12, err_msg=key)
    x, t = _batches(1, seed=1)[0]
    nets[0].gradient(x, t)["W1"] = np.zeros((6, 5))
    nets[0].train_step(x, t, reference_optimizers.SGD(lr=1.0))
    reference_optimizers.SGD(lr=1.0).update(nets[1].params, nets[1].gradient(x, t))
    assert_allclose(nets[0].params["W1"], nets[1].params["W1"], rtol=1e-12)


@pytest.mark.parametrize("name", ["Momentum", "Adam"])
def test_optimizer_state_the_user_set_is_the_state_stepped_on(name):
    """The book's per-key state may be set (``opt.v[k] = 0``; ``opt.m = {}`` and ``iter =
    0`` restart Adam): the fused pass over a net's arenas takes it up (it kept stepping
    on the old state), as the reference's update does."""
    nets = [module.MultiLayerNet(6, [5], 3, dtype=np.float64, seed=0)
            for module in (fast_nets, reference_nets)]
    opts = [getattr(module, name)(lr=0.1) for module in (fast_optimizers, reference_optimizers)]
    batches = _batches(6)
    for i, (x, t) in enumerate(batches):
        if i == 3:
            for opt in opts:
                if name == "Momentum":
                    for key in list(opt.v):
                        opt.v[key] = np.zeros_like(opt.v[key])
                else:
                    opt.m, opt.v, opt.iter = {}, {}, 0
        for net, opt in zip(nets, opts):
            opt.update(net.params, net.gradient(x, t))
    for key in nets[1].params:
        assert_allclose(nets[0].params[key], nets[1].params[key], rtol=1e-10, err_msg=key)


def test_a_shallow_copy_shares_the_net_as_the_books_does():
    """``copy.copy`` of the book's net shares its params and layers; fastnet's shares its
    arenas too (it rebound the shared layers to new arenas, and the original then
    undid in-place edits of its own parameters)."""
    net = fast_nets.MultiLayerNet(6, [5], 3, dtype=np.float64, seed=0)
    twin = copy.copy(net)
    net.params["W1"] *= 0
    net.params["W2"] *= 0
    x = np.ones((2, 6))
    assert not net.predict(x).any() and not twin.predict(x).any()
    assert not net.params["W1"].any()


def test_weight_init_std_zero_is_the_books_all_zero_start():
    """The book's section 6.2.1 asks what all-zero weights do: 0 is a number, taken."""
    fast = fast_nets.MultiLayerNet(6, [5], 3, weight_init_std=0, dtype=np.float64, seed=0)
    ref = reference_nets.MultiLayerNet(6, [5], 3, weight_init_std=0, dtype=np.float64)
    assert not any(p.any() for p in fast.params.values())
    x, t = _batches(1)[0]
    for key, grad in ref.gradient(x, t).items():
        assert_allclose(fast.gradient(x, t)[key], grad, rtol=1e-12, atol=1e-15, err_msg=key)


def test_an_inverted_dropout_layer_in_a_net_is_refused():
    """The fused passes run the book's dropout: a layer set to inverted is refused by
    every pass (it was ignored), not silently trained the book's way; the training-mode
    passes through the layers too, so that loss(train_flg=True) agrees with gradient()."""
    net = fast_nets.MultiLayerNetExtend(6, [5], 3, use_dropout=True, seed=0)
    net.layers["Dropout1"].inverted = True
    x, t = _batches(1)[0]
    for call in (lambda: net.predict(x), lambda: net.gradient(x, t),
                 lambda: net.train_step(x, t, fast_optimizers.SGD()),
                 lambda: net.predict(x, train_flg=True),
                 lambda: net.loss(x, t, train_flg=True)):
        with pytest.raises(ValueError, match="inverted=True: the net's fused passes run the "
                                             "book's dropout"):
            call()
