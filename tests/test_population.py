"""fastnet.population: each member of a population trains exactly as the same net
trained alone.  Against ``fastnet.nets`` (the same kernels) bit for bit; against the
NumPy reference (``fastnet.reference``, the book's ``gradient()`` + ``update()``) within
float64 1e-12 / the float32 tolerance the fused step meets.  Driven by
``cases.NET_CASES`` (and ``cases.NORM_NET_CASES`` but weight norm's) x
``cases.OPTIMIZER_CASES``, with members that differ in seed,
learning rate, weight decay and dropout ratio, on one shared mini-batch or one each."""
import gc
import re
import weakref

import numpy as np
import pytest
from cases import (
    DTYPES,
    NETS,
    NORM_NET_SIZES,
    NORM_NETS,
    OPTIMIZERS,
    TOLERANCES,
    Tolerance,
    assert_close,
    optimizer_state,
)
from numpy.testing import assert_array_equal
from test_nets import book_step, dropouts, inert_biases, running_layers, running_stats

from fastnet import nets as fast_nets
from fastnet import optimizers as fast_optimizers
from fastnet.population import Population
from fastnet.reference import nets as reference_nets
from fastnet.reference import optimizers as reference_optimizers

SIZES = (6, [5, 4], 3)  # input, hidden, output
N = 8
# the population's own arguments
SHARED = ("activation", "use_batchnorm", "use_dropout", "normalization", "groups")
# every net case a population trains: those of one net's fused step but weight norm's
POP_NETS = NETS + [p for p in NORM_NETS if p.values[0].kwargs["normalization"] != "weight"]
LR_SCALES = (1.0, 0.5, 2.0)
DECAYS = (0.0, 0.05, 0.1)
RATIOS = (0.3, 0.5, 0.2)
MODES = ["shared", "per-member", "rows"]
M = 20  # samples of the training set that "rows" mini-batches are drawn from


def member_configs(net_case, opt_case, k=3):
    """K configs of one case: member i's seed, lr, weight decay and dropout ratio differ."""
    configs = []
    for i in range(k):
        config = {**opt_case.kwargs, "seed": 10 + i, "lr": opt_case.kwargs["lr"] * LR_SCALES[i % 3]}
        if "weight_decay_lambda" in net_case.kwargs:
            config["weight_decay_lambda"] = DECAYS[i % 3]
        if net_case.kwargs.get("use_dropout"):
            config["dropout_ratio"] = RATIOS[i % 3]
        configs.append(config)
    return configs


def shared_kwargs(net_case):
    return {k: v for k, v in net_case.kwargs.items() if k in SHARED}


def sizes(net_case):
    """The nets' sizes: group and instance norm's hidden widths divisible by their groups
    (the same input and output sizes)."""
    grouped = net_case.kwargs.get("normalization") in ("group", "instance")
    return NORM_NET_SIZES if grouped else SIZES


def make_population(net_case, opt_case, dtype, k=3):
    return Population(*sizes(net_case), member_configs(net_case, opt_case, k), optimizer=opt_case.name,
                      dtype=dtype, **shared_kwargs(net_case))


def alone(net_case, opt_case, dtype, config, net_module=fast_nets, opt_module=fast_optimizers):
    """The net and optimizer of one member's config, built on their own."""
    net_keys = ("weight_decay_lambda", "dropout_ratio")
    net = net_module.MultiLayerNetExtend(
        *sizes(net_case), dtype=dtype, seed=config["seed"], **shared_kwargs(net_case),
        **{k: v for k, v in config.items() if k in net_keys})
    hyper = {k: v for k, v in config.items() if k not in net_keys + ("seed",)}
    return net, getattr(opt_module, opt_case.name)(**hyper)


def batches(step, k, mode, dtype):
    """``train_step``'s arguments at step ``step``: an (N, D) mini-batch for all, (K, N,
    D) with one each, or an (M, D) training set and (K, N) rows of it, one row set each."""
    rng = np.random.default_rng([7, step])
    shape = {"shared": (N,), "per-member": (k, N), "rows": (M,)}[mode]
    x = (rng.standard_normal((*shape, SIZES[0])) + 0.2).astype(dtype)
    t = rng.integers(0, SIZES[2], size=shape)
    return (x, t, rng.integers(0, M, size=(k, N))) if mode == "rows" else (x, t)


def own(batch, i, mode):
    """Member ``i``'s mini-batch of ``batches``."""
    if mode == "rows":
        x, t, rows = batch
        return x[rows[i]], t[rows[i]]
    x, t = batch
    return (x, t) if mode == "shared" else (x[i], t[i])


def assert_member_is(pop, i, net, optimizer, opt_case, compare):
    """Member ``i`` of ``pop`` holds ``net``'s and ``optimizer``'s state, by ``compare``."""
    member = pop.member(i)
    for key in net.params:
        compare(member.params[key], net.params[key], key)
    for name, value in running_stats(net).items():
        compare(running_stats(member)[name], value, name)
    assert [(d.seed, d.step) for d in dropouts(member)] == [(d.seed, d.step) for d in dropouts(net)]
    mine, theirs = optimizer_state(pop.member_optimizer(i), opt_case), optimizer_state(optimizer, opt_case)
    assert theirs.keys() <= mine.keys()  # a fresh optimizer has no state yet: zeros
    for name, value in mine.items():
        compare(value, theirs.get(name, np.zeros_like(value)), name)


def exactly(actual, desired, name):
    assert_array_equal(actual, desired, err_msg=name)


# ------------------------------------------------------------------ exactness

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("net_case", POP_NETS)
@pytest.mark.parametrize("opt_case", OPTIMIZERS)
def test_members_train_bit_for_bit_as_nets_alone(opt_case, net_case, dtype, mode):
    pop = make_population(net_case, opt_case, dtype)
    singles = [alone(net_case, opt_case, dtype, c) for c in pop.configs]
    for i, (net, opt) in enumerate(singles):
        assert_member_is(pop, i, net, opt, opt_case, exactly)  # the same start
    for step in range(4):
        batch = batches(step, len(pop), mode, dtype)
        losses = pop.train_step(*batch)
        assert losses.shape == (3,) and np.isfinite(losses).all()
        assert_array_equal(losses, [net.train_step(*own(batch, i, mode), opt)
                                    for i, (net, opt) in enumerate(singles)])
    for i, (net, opt) in enumerate(singles):
        assert_member_is(pop, i, net, opt, opt_case, exactly)
    mode = "shared" if mode == "rows" else mode  # evaluation takes (N, D) or (K, N, D)
    x, t = batches(9, len(pop), mode, dtype)
    assert_array_equal(pop.predict(x), [net.predict(own((x, t), i, mode)[0])
                                        for i, (net, _) in enumerate(singles)])
    assert_array_equal(pop.loss(x, t), [net.loss(*own((x, t), i, mode))
                                        for i, (net, _) in enumerate(singles)])
    assert_array_equal(pop.accuracy(x, t), [net.accuracy(*own((x, t), i, mode))
                                            for i, (net, _) in enumerate(singles)])


# float64 to 1e-12 relative; float32 as the fused step meets the reference (test_nets)
REFERENCE_TOLERANCES = {np.dtype(np.float64): Tolerance(rtol=1e-12, atol=1e-12),
                        np.dtype(np.float32): TOLERANCES[np.dtype(np.float32)]}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("net_case", POP_NETS)
@pytest.mark.parametrize("opt_case", OPTIMIZERS)
def test_members_match_the_reference_trained_alone(opt_case, net_case, dtype, monkeypatch):
    adaptive = any(name in opt_case.state for name in ("h", "m"))
    if net_case.id == "layer-dropout-wd" and adaptive:
        # Layer norm over 4-5 units with dropout is ill-conditioned here: one net's
        # fused step and the book's path differ by 1e-17, 6e-15, 9e-13 in W1's gradient
        # over three steps (float64), and AdaGrad/RMSprop/Adam magnify that past the
        # tolerances.  The members still match the fused net alone bit for bit (above).
        pytest.skip("adaptive optimizer on an ill-conditioned layer-norm net")
    if net_case.kwargs.get("normalization") == "instance" and adaptive and dtype == np.float32:
        # The reference sums a channel's values in float32, the kernels in float64: gamma's
        # gradient differs in its last float32 bits, and AdaGrad/RMSprop/Adam, which divide
        # by the gradient's own size, magnify that to 1.3e-4 relative in 4 steps (gamma1 of
        # one channel), past the float32 tolerance.  Float64 meets 1e-12, and the members
        # match the fused net alone bit for bit (above).
        pytest.skip("adaptive optimizer, float32, instance norm: rounding magnified")
    monkeypatch.setitem(TOLERANCES, np.dtype(dtype), REFERENCE_TOLERANCES[np.dtype(dtype)])
    pop = make_population(net_case, opt_case, dtype)
    refs = [alone(net_case, opt_case, dtype, c, reference_nets, reference_optimizers)
            for c in pop.configs]
    inert = inert_biases(refs[0][0], opt_case)
    for step in range(4):
        batch = batches(step, len(pop), "per-member", dtype)
        losses = pop.train_step(*batch)
        for i, (net, opt) in enumerate(refs):
            assert_close(losses[i], book_step(net, *own(batch, i, "per-member"), opt), dtype,
                         f"loss {i} of step {step}", check_dtype=False)

    def close(actual, desired, name):
        if name.split("/")[-1] not in inert:
            assert_close(actual, desired, dtype, name)

    for i, (net, opt) in enumerate(refs):
        assert_member_is(pop, i, net, opt, opt_case, close)


# ------------------------------------------------------------------ members in and out

ADAM = next(p.values[0] for p in OPTIMIZERS if p.id == "adam")
MOMENTUM = next(p.values[0] for p in OPTIMIZERS if p.id == "momentum")
BN_DROPOUT = next(p.values[0] for p in NETS if p.id == "bn-dropout-wd")


@pytest.mark.parametrize("mode", MODES)
def test_keep_compacts_and_the_survivors_continue_exactly(mode):
    dtype = np.dtype(np.float64)
    pop = make_population(BN_DROPOUT, ADAM, dtype, k=5)
    singles = [alone(BN_DROPOUT, ADAM, dtype, c) for c in pop.configs]
    for step in range(2):
        batch = batches(step, 5, mode, dtype)
        pop.train_step(*batch)
        for i, (net, opt) in enumerate(singles):
            net.train_step(*own(batch, i, mode), opt)
    mask = np.array([True, False, True, True, False])
    pop.keep(mask)
    assert len(pop) == 3 and list(pop.indices) == [0, 2, 3]
    survivors = [s for s, kept in zip(singles, mask) if kept]
    for step in range(2, 4):
        batch = batches(step, 3, mode, dtype)
        assert_array_equal(pop.train_step(*batch), [net.train_step(*own(batch, i, mode), opt)
                                                    for i, (net, opt) in enumerate(survivors)])
    for i, (net, opt) in enumerate(survivors):
        assert_member_is(pop, i, net, opt, ADAM, exactly)
    pop.keep(np.array([False, False, True]))
    assert list(pop.indices) == [3]
    assert_member_is(pop, 0, *survivors[2], ADAM, exactly)


def test_member_round_trip_continues_exactly():
    """``member(i)`` and ``member_optimizer(i)`` train on alone exactly as the member does
    in the population; ``set_member`` puts a net and its optimizer back, and they are
    copies both ways."""
    dtype = np.dtype(np.float32)
    pop = make_population(BN_DROPOUT, ADAM, dtype)
    pop.train_step(*batches(0, 3, "shared", dtype))
    net, opt = pop.member(1), pop.member_optimizer(1)
    assert isinstance(net, fast_nets.MultiLayerNetExtend) and opt.iter == 1
    for step in range(1, 3):
        x, t = batches(step, 3, "shared", dtype)
        assert pop.train_step(x, t)[1] == net.train_step(x, t, opt)
    assert_member_is(pop, 1, net, opt, ADAM, exactly)
    # a checkpoint of member 1 restored into member 0, then both go on alike
    pop.set_member(0, net, opt)
    net.params["W1"][...] = 0  # the population holds copies
    opt.m["W1"][...] = 0
    opt.iter = 100
    x, t = batches(5, 3, "shared", dtype)
    losses = pop.train_step(x, t)
    assert losses[0] == losses[1]
    assert_array_equal(pop.member(0).params["W1"], pop.member(1).params["W1"])
    assert pop.member_optimizer(0).iter == 4


def test_a_refused_set_member_changes_nothing():
    """Whatever is wrong (the optimizer's kind, its state from a net of another
    architecture, a net's dropout ratio set out of range), nothing of the member moves."""
    dtype = np.dtype(np.float32)
    pop = make_population(BN_DROPOUT, MOMENTUM, dtype)
    pop.train_step(*batches(0, 3, "shared", dtype))
    before, before_opt = pop.member(0), pop.member_optimizer(0)
    other_net, other_opt = fast_nets.MultiLayerNetExtend(6, [7], 3, seed=1), fast_optimizers.Momentum()
    other_net.train_step(*batches(0, 3, "shared", dtype)[:2], other_opt)  # its velocities
    bad_ratio = pop.member(1)
    bad_ratio.layers["Dropout1"].dropout_ratio = 1.5
    for net, opt, error, message in (
            (pop.member(1), fast_optimizers.Adam(), TypeError, "must be a fastnet.optimizers.Momentum"),
            (pop.member(1), other_opt, ValueError, r"the optimizer's v\['W1'\] \(shape \(6, 7\)\)"),
            (bad_ratio, None, ValueError, "dropout_ratio must be <= 1")):
        with pytest.raises(error, match=message):
            pop.set_member(0, net, opt)
        assert_member_is(pop, 0, before, before_opt, MOMENTUM, exactly)


def test_set_member_of_a_fresh_optimizer_zeroes_the_state():
    dtype = np.dtype(np.float64)
    pop = make_population(BN_DROPOUT, MOMENTUM, dtype)
    pop.train_step(*batches(0, 3, "shared", dtype))
    net, opt = alone(BN_DROPOUT, MOMENTUM, dtype, pop.configs[2])
    pop.set_member(2, net, opt)
    batch = batches(1, 3, "shared", dtype)
    assert pop.train_step(*batch)[2] == net.train_step(*batch, opt)
    assert_member_is(pop, 2, net, opt, MOMENTUM, exactly)


@pytest.mark.parametrize("mode", MODES)
def test_a_diverging_member_leaves_the_others_untouched(mode):
    dtype = np.dtype(np.float32)
    pop = make_population(BN_DROPOUT, ADAM, dtype)
    singles = [alone(BN_DROPOUT, ADAM, dtype, c) for c in pop.configs]
    poisoned = pop.member(1)
    poisoned.params["W2"][0, 0] = np.nan
    pop.set_member(1, poisoned)
    for step in range(3):
        batch = batches(step, 3, mode, dtype)
        losses = pop.train_step(*batch)
        assert np.isnan(losses[1])
        for i in (0, 2):
            assert losses[i] == singles[i][0].train_step(*own(batch, i, mode), singles[i][1])
    assert np.isnan(pop.member(1).params["W1"]).any()
    pop.keep(np.isfinite(losses))
    assert list(pop.indices) == [0, 2]
    for i, (net, opt) in enumerate((singles[0], singles[2])):
        assert_member_is(pop, i, net, opt, ADAM, exactly)


def test_configs_may_be_any_iterable_of_dicts():
    """A generator is read once, as a list would be."""
    configs = [{"seed": 1}, {"seed": 2, "lr": 0.1}]
    pop = Population(*SIZES, (config for config in configs))
    assert len(pop) == 2 and pop.configs == configs


def test_configs_take_the_net_and_optimizer_defaults():
    pop = Population(*SIZES, [{}, {"seed": 3}], optimizer="adam", use_dropout=True)
    assert pop.optimizer == "Adam" and pop.dtype == np.float32
    opt = pop.member_optimizer(1)
    assert (opt.lr, opt.beta1, opt.beta2) == (0.001, 0.9, 0.999)
    net = pop.member(1)
    reference = fast_nets.MultiLayerNetExtend(*SIZES, use_dropout=True, seed=3)
    for key, value in reference.params.items():
        assert_array_equal(net.params[key], value)
    assert [d.dropout_ratio for d in dropouts(net)] == [0.5, 0.5]
    assert net.weight_decay_lambda == 0 and not running_layers(net)


def test_the_build_holds_one_member_net_at_a_time(monkeypatch):
    """A population is built one member's net at a time: its peak memory is its arenas
    and one net, not two (the loop once kept member i's net alive while member i + 1's
    was made)."""
    made, most_alive = [], []
    init = fast_nets.MultiLayerNetExtend.__init__

    def counting_init(net, *args, **kwargs):
        gc.collect()
        most_alive.append(sum(ref() is not None for ref in made))
        init(net, *args, **kwargs)
        made.append(weakref.ref(net))

    monkeypatch.setattr(fast_nets.MultiLayerNetExtend, "__init__", counting_init)
    Population(*SIZES, [{"seed": i} for i in range(4)])
    assert len(made) == 5 and max(most_alive) == 0  # the shared arguments' check, 4 members


# ------------------------------------------------------------------ bad input

def pop3(**kwargs):
    return Population(*SIZES, [{"seed": i} for i in range(3)], **kwargs)


def inverted_dropout_net():
    """A net whose Dropout layer was set to ``inverted``, which the fused passes (and so
    a population) do not run."""
    net = fast_nets.MultiLayerNetExtend(*SIZES, use_dropout=True)
    net.layers["Dropout1"].inverted = True
    return net


X3 = np.zeros((3, N, 6), np.float32)
T3 = np.zeros((3, N), np.int64)
ERRORS = [
    ("unknown key", lambda: Population(*SIZES, [{"seed": 0}, {"lr": 0.1, "momentum": 0.9}]),
     ValueError, ("configs[1] has unknown keys ['momentum']; a member of a SGD population "
                 "takes ['seed', 'weight_init_std', 'weight_decay_lambda', 'dropout_ratio', 'lr']")),
    ("no configs", lambda: Population(*SIZES, []), ValueError,
     "configs is empty: a population needs at least one member"),
    ("bad lr", lambda: Population(*SIZES, [{"lr": -1.0}]), ValueError,
     "Invalid learning rate: -1.0 (must be a finite number > 0)"),
    ("bad optimizer", lambda: Population(*SIZES, [{}], optimizer="lion"), ValueError,
     ("unknown optimizer 'lion'; choose one of: sgd, momentum, nesterov, adagrad, rmsprop, "
     "adam, adamw")),
    ("x 1-D", lambda: pop3().train_step(np.zeros(6, np.float32), T3[0]), ValueError,
     ("x must be (N, 6), one mini-batch for every member, or (3, N, 6), one per member; "
     "got shape (6,)")),
    ("x features", lambda: pop3().train_step(np.zeros((N, 7), np.float32), T3[0]), ValueError,
     ("x must be (N, 6), one mini-batch for every member, or (3, N, 6), one per member; "
     "got shape (8, 7)")),
    ("x int", lambda: pop3().train_step(X3.astype(int), T3), TypeError,
     "x must be a float32 or float64 array, got dtype int64"),
    ("x K", lambda: pop3().train_step(np.zeros((4, N, 6), np.float32), T3), ValueError,
     "x holds 4 mini-batches for 3 members"),
    ("t K", lambda: pop3().train_step(X3, T3[:2]), ValueError,
     ("t must hold one row of labels per member, shape (3, 8) (or one-hot (3, 8, 3)), "
     "got shape (2, 8)")),
    ("t shared for x per member", lambda: pop3().train_step(X3, T3[0]), ValueError,
     "t must hold one row of labels per member"),
    ("t range", lambda: pop3().train_step(X3, T3 + 3), ValueError,
     "class indices t must lie in [0, 3), got values from 3 to 3"),
    ("predict x K", lambda: pop3().predict(np.zeros((2, N, 6))), ValueError,
     ("x must be (N, 6), one batch for every member, or (3, N, 6), one per member; "
     "got shape (2, 8, 6)")),
    ("rows with x per member", lambda: pop3().train_step(X3, T3, np.zeros((3, 2), int)),
     ValueError, "with rows, x must be a training set of shape (M, 6), got shape (3, 8, 6)"),
    ("rows shape", lambda: pop3().train_step(X3[0], T3[0], np.zeros((2, 4), int)), ValueError,
     ("rows must be integer indices of shape (3, N), one mini-batch per member, got int64 of "
     "shape (2, 4)")),
    ("rows float", lambda: pop3().train_step(X3[0], T3[0], np.zeros((3, 4))), ValueError,
     ("rows must be integer indices of shape (3, N), one mini-batch per member, got float64 "
     "of shape (3, 4)")),
    ("rows range", lambda: pop3().train_step(X3[0], T3[0], np.full((3, 4), 8)), ValueError,
     "rows must lie in [0, 8) (x has 8 samples), got values from 8 to 8"),
    ("keep shape", lambda: pop3().keep(np.ones(2, bool)), ValueError,
     "mask must be a boolean array of shape (3,), got bool of shape (2,)"),
    ("keep ints", lambda: pop3().keep(np.ones(3, int)), ValueError,
     "mask must be a boolean array of shape (3,), got int64 of shape (3,)"),
    ("keep none", lambda: pop3().keep(np.zeros(3, bool)), ValueError,
     "mask keeps no member; a population needs at least one"),
    ("member range", lambda: pop3().member(3), IndexError,
     "member 3 out of range for a population of 3"),
    ("set_member optimizer", lambda: pop3().set_member(0, pop3().member(0),
                                                       fast_optimizers.Adam()),
     TypeError, "optimizer must be a fastnet.optimizers.SGD, got fastnet.optimizers.Adam"),
    ("set_member reference optimizer",
     lambda: pop3().set_member(0, pop3().member(0), reference_optimizers.SGD()), TypeError,
     "optimizer must be a fastnet.optimizers.SGD, got fastnet.reference.optimizers.SGD"),
    ("set_member architecture",
     lambda: pop3().set_member(0, fast_nets.MultiLayerNetExtend(6, [5, 5], 3)), ValueError,
     ("net must be a fastnet.nets.MultiLayerNetExtend of the population's architecture, "
      "normalization (and groups), activation and dtype: the net's sizes (6, [5, 5], 3), "
      "the population's (6, [5, 4], 3)")),
    ("set_member normalization",
     lambda: pop3(use_batchnorm=True).set_member(  # the same arenas, another kernel path
         0, fast_nets.MultiLayerNetExtend(*SIZES, normalization="layer")),
     ValueError, "the net's normalization 'layer', the population's 'batch'"),
    ("normalization", lambda: pop3(normalization="weight"), ValueError,
     ("a population's normalization must be one of (None, 'batch', 'layer', 'group', "
      "'instance', 'switchable') (what the compiled step runs), got 'weight'")),
    ("switchable norm, one sample",
     lambda: pop3(normalization="switchable").train_step(np.ones((1, 6)), [0]), ValueError,
     "SwitchableNormalization in training needs at least 2 values per feature"),
    ("set_member groups",  # the same parameter shapes, other groups
     lambda: Population(*NORM_NET_SIZES, [{}], normalization="group").set_member(
         0, fast_nets.MultiLayerNetExtend(*NORM_NET_SIZES, normalization="group", groups=1)),
     ValueError, "and dtype: the net's groups 1, the population's 2"),
    ("set_member dtype",
     lambda: pop3().set_member(0, fast_nets.MultiLayerNetExtend(*SIZES, dtype=np.float64)),
     ValueError, "the net's dtype 'float64', the population's 'float32'"),
    ("set_member reference net",
     lambda: pop3().set_member(0, reference_nets.MultiLayerNetExtend(*SIZES)), ValueError,
     ("net must be a fastnet.nets.MultiLayerNetExtend of the population's architecture, "
      "normalization (and groups), activation and dtype: got a "
      "fastnet.reference.nets.MultiLayerNetExtend")),
    ("empty", lambda: Population.from_members([]), ValueError,
     "members is empty: a population needs at least one member"),
    ("weight norm", lambda: Population.from_members(
        [(fast_nets.MultiLayerNetExtend(*SIZES, normalization="weight"),
          fast_optimizers.SGD())]), ValueError,
     ("members' nets must be fastnet.nets.MultiLayerNetExtend with a normalization in "
     "(None, 'batch', 'layer', 'group', 'instance', 'switchable'), got "
     "fastnet.nets.MultiLayerNetExtend with 'weight'")),
    ("reference net", lambda: Population.from_members(
        [(reference_nets.MultiLayerNetExtend(*SIZES), fast_optimizers.SGD())]), ValueError,
     "got fastnet.reference.nets.MultiLayerNetExtend with None"),
    ("reference optimizer", lambda: Population.from_members(
        [(fast_nets.MultiLayerNetExtend(*SIZES), reference_optimizers.SGD())]), TypeError,
     ("members[0]'s optimizer must be one of fastnet.optimizers' classes, got "
      "fastnet.reference.optimizers.SGD")),
    ("mixed optimizers", lambda: Population.from_members(
        [(fast_nets.MultiLayerNetExtend(*SIZES), fast_optimizers.SGD()),
         (fast_nets.MultiLayerNetExtend(*SIZES), fast_optimizers.Adam())]), TypeError,
     "got fastnet.optimizers.Adam in members[1]"),
    ("no optimizer", lambda: Population.from_members(
        [(fast_nets.MultiLayerNetExtend(*SIZES), fast_optimizers.SGD()),
         (fast_nets.MultiLayerNetExtend(*SIZES), None)]), TypeError,
     ("members[1]'s optimizer must be one of fastnet.optimizers' classes, got "
      "builtins.NoneType")),
    ("inverted dropout", lambda: Population.from_members(
        [(inverted_dropout_net(), fast_optimizers.SGD())]), ValueError,
     "members[0]: a Dropout layer of the net has inverted=True: the net's fused passes"),
    ("a triple", lambda: Population.from_members(
        [(fast_nets.MultiLayerNetExtend(*SIZES), fast_optimizers.SGD(), 1)]), TypeError,
     "members[0] must be a (net, optimizer) pair, got builtins.tuple"),
    ("a bad config's hyperparameter", lambda: Population(*SIZES, [{}, {"lr": -0.1}]),
     ValueError, r"configs[1]: Invalid learning rate: -0.1"),
    ("a bad config's seed", lambda: Population(*SIZES, [{"seed": -1}]), ValueError,
     "configs[0]: seed must be a non-negative integer, got -1"),
    ("a config's fractional seed", lambda: Population(*SIZES, [{"seed": 1.5}]), TypeError,
     "configs[0]: seed must be a non-negative integer or None, got 1.5"),
    ("mixed nets", lambda: Population.from_members(
        [(fast_nets.MultiLayerNetExtend(*SIZES), fast_optimizers.SGD()),
         (fast_nets.MultiLayerNetExtend(6, [5, 5], 3), fast_optimizers.SGD())]), ValueError,
     ("members[1]: net must be a fastnet.nets.MultiLayerNetExtend of the population's "
     "architecture")),
    ("configs a dict", lambda: Population(*SIZES, {"seed": 1}), TypeError,
     "configs must be a sequence of dicts, one per member, got {'seed': 1}"),
    ("configs of ints", lambda: Population(*SIZES, [1, 2]), TypeError,
     "configs must be a sequence of dicts, one per member, got [1, 2]"),
    ("member float index", lambda: Population(*SIZES, [{}]).member(1.0), TypeError,
     "a member's index must be an int, got 1.0"),
    ("configs a string", lambda: Population(*SIZES, "seed"), TypeError,
     "configs must be a sequence of dicts, one per member, got 'seed'"),
    ("x past float32", lambda: pop3().train_step(np.full((N, 6), 1e39), np.zeros(N, int)),
     ValueError, "x has values beyond the range of float32"),
    ("configs None", lambda: Population(*SIZES, None), TypeError,
     "configs must be a sequence of dicts, one per member, got None"),
]


@pytest.mark.parametrize("call, error, message", [pytest.param(*case[1:], id=case[0])
                                                  for case in ERRORS])
def test_bad_input_is_refused(call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call()


# ------------------------------------------------------------------ threads

WIDE = (784, [100, 50], 10)  # 784 inputs: GEMMs whose last bits follow BLAS's threads
WIDE_N = 64


def wide_run(dtype, num_threads, k=5, steps=3):
    """A population of ``k`` Momentum members of a 784-100-50-10 net stepped ``steps``
    times on ``num_threads`` threads: (losses per step, parameters, predict, loss,
    accuracy)."""
    configs = [{"seed": i, "lr": 0.02 * (i + 1), "weight_decay_lambda": 0.01 * i}
               for i in range(k)]
    pop = Population(*WIDE, configs, optimizer="Momentum", use_batchnorm=True, dtype=dtype,
                     num_threads=num_threads)
    rng = np.random.default_rng(3)
    train = rng.standard_normal((200, WIDE[0])).astype(dtype), rng.integers(0, 10, 200)
    rows = [rng.integers(0, 200, (k, WIDE_N)) for _ in range(steps)]
    losses = [pop.train_step(*train, rows=r) for r in rows]
    return (losses, pop._params.copy(), pop.predict(train[0]), pop.loss(*train),
            pop.accuracy(*train)), configs, train, rows


@pytest.mark.parametrize("dtype", DTYPES)
def test_members_do_not_depend_on_the_thread_count(dtype):
    """Members are stepped by threads with single-threaded BLAS each: the same bits on
    1, 2 or 3 threads (K = 5 does not divide evenly), and those of each member's net
    trained alone with BLAS single-threaded."""
    import threadpoolctl
    one, configs, (x, t), rows = wide_run(dtype, 1)
    for num_threads in (2, 3, None):
        other = wide_run(dtype, num_threads)[0]
        for a, b in zip(one, other):
            assert_array_equal(a, b, err_msg=f"num_threads={num_threads}")
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        for i, config in enumerate(configs):
            net = fast_nets.MultiLayerNetExtend(
                *WIDE, use_batchnorm=True, dtype=dtype, seed=config["seed"],
                weight_decay_lambda=config["weight_decay_lambda"])
            opt = fast_optimizers.Momentum(lr=config["lr"])
            losses = [net.train_step(x[r[i]], t[r[i]], opt) for r in rows]
            assert_array_equal(losses, [step[i] for step in one[0]])
            assert_array_equal(net.predict(x), one[2][i])


def test_a_step_leaves_blas_threads_as_they_were():
    import threadpoolctl
    before = [info["num_threads"] for info in threadpoolctl.threadpool_info()
              if info["user_api"] == "blas"]
    wide_run(np.float32, 2, steps=1)
    assert [info["num_threads"] for info in threadpoolctl.threadpool_info()
            if info["user_api"] == "blas"] == before


def test_populations_stepped_by_concurrent_threads_are_exact():
    from concurrent.futures import ThreadPoolExecutor
    alone_results = wide_run(np.float64, 2)[0]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: wide_run(np.float64, 2)[0], range(3)))
    for result in results:
        for a, b in zip(result, alone_results):
            assert_array_equal(a, b)


@pytest.mark.parametrize("num_threads", [0, -1, 1.5, True, "2"])
def test_bad_num_threads_is_refused(num_threads):
    with pytest.raises(ValueError, match=re.escape(
            f"num_threads must be a positive int or None (fastnet's thread count), got "
            f"{num_threads!r}")):
        pop3(num_threads=num_threads)


def test_from_members_continues_each_member_exactly():
    """A population built from (net, optimizer) pairs steps each pair as it would alone."""
    opt_case = next(p.values[0] for p in OPTIMIZERS if p.values[0].name == "Adam")
    net_case = NETS[0].values[0]
    pop = make_population(net_case, opt_case, np.float64)
    for step in range(2):
        pop.train_step(*batches(step, len(pop), "shared", np.float64))
    members = [(pop.member(i), pop.member_optimizer(i)) for i in range(len(pop))]
    copy = Population.from_members(members, num_threads=2)
    assert copy.configs == [None] * 3 and copy.optimizer == "Adam"
    for step in range(2, 4):
        batch = batches(step, len(pop), "shared", np.float64)
        assert_array_equal(copy.train_step(*batch), pop.train_step(*batch))
    assert_array_equal(copy._params, pop._params)


def test_from_members_keeps_each_layers_dropout_ratio_eps_and_momentum():
    """``member(i)`` returns the member's per-layer dropout ratios (once every layer got
    the first's), its normalization eps and running statistics' momenta, so that it
    trains on exactly as the member does."""
    net = fast_nets.MultiLayerNetExtend(*SIZES, use_dropout=True, normalization="layer",
                                        dtype=np.float64, seed=1)
    net.layers["Dropout2"].dropout_ratio = 0.1
    for key in ("LayerNorm1", "LayerNorm2"):
        net.layers[key].eps = 1e-3
    pop = Population.from_members([(net, fast_optimizers.SGD(lr=0.1))])
    member = pop.member(0)
    assert [d.dropout_ratio for d in dropouts(member)] == [0.5, 0.1]
    assert [member.layers[k].eps for k in ("LayerNorm1", "LayerNorm2")] == [1e-3, 1e-3]
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((4, SIZES[0])), rng.integers(0, 3, 4)
    pop.train_step(x, t)
    member.train_step(x, t, fast_optimizers.SGD(lr=0.1))
    for key, value in pop.member(0).params.items():
        assert_array_equal(value, member.params[key], err_msg=key)


def test_members_must_share_the_normalization_eps_and_momenta():
    """The compiled step takes one eps and one momentum per layer for all members: a
    member whose batch norm momentum differs is refused (it was trained with the
    first's), and ``member(i)`` carries the shared momentum."""
    a, b = (fast_nets.MultiLayerNetExtend(*SIZES, use_batchnorm=True, seed=s) for s in (1, 2))
    for net in (a, b):
        net.layers["BatchNorm1"].momentum = 0.5
    pop = Population.from_members([(a, fast_optimizers.SGD()), (b, fast_optimizers.SGD())])
    assert [bn.momentum for bn in running_layers(pop.member(1))] == [0.5, 0.9]
    b.layers["BatchNorm2"].momentum = 0.7
    with pytest.raises(ValueError, match=r"members\[1\]: net's normalization layers have "
                                         r"eps=1e-06 and running statistics' momenta "
                                         r"\[0.5, 0.7\], the population's members share"):
        Population.from_members([(a, fast_optimizers.SGD()), (b, fast_optimizers.SGD())])


@pytest.mark.parametrize("kwargs, error, message", [
    ({"normalization": "group", "groups": 3}, ValueError,
     "groups=3 does not divide the hidden size 5"),
    ({"dtype": np.int32}, TypeError, "dtype must be float32 or float64"),
    ({"activation": "softsign"}, ValueError, "softsign"),
])
def test_arguments_every_member_shares_are_not_blamed_on_a_config(kwargs, error, message):
    with pytest.raises(error, match=message) as info:
        Population(*SIZES, [{}, {}], **kwargs)
    assert "configs[" not in str(info.value)
