"""Batch norm's population estimate (``estimate_population_statistics``, Ioffe and
Szegedy's Algorithm 2): the m/(m-1) estimate against a hand computation, test-mode
output using it, fastnet against the reference with dropout, the errors, and the
Trainer's ``population_statistics=True``."""
import numpy as np
import pytest
from cases import DTYPES, assert_close

from fastnet import nets as fast_nets
from fastnet import trainer as fast_trainer
from fastnet.reference import nets as reference_nets
from fastnet.reference import trainer as reference_trainer

MODULES = [pytest.param(fast_nets, id="fastnet"), pytest.param(reference_nets, id="reference")]
BN_EPS = 1e-6  # the book's 10e-7


def bn_net(module, dtype=np.float64, sizes=(3, [4], 2), **kwargs):
    """A batch-norm net whose gammas and betas are not their initial ones."""
    net = module.MultiLayerNetExtend(*sizes, use_batchnorm=True, dtype=dtype, seed=0, **kwargs)
    rng = np.random.default_rng(5)
    for key in sorted(k for k in net.params if k.startswith(("gamma", "beta"))):
        net.params[key][...] = rng.uniform(0.5, 1.5, net.params[key].shape)
    return net


def batchnorms(net):
    return [layer for key, layer in net.layers.items() if key.startswith("BatchNorm")]


@pytest.mark.parametrize("module", MODULES)
def test_estimate_by_hand_and_the_test_mode_output_using_it(module):
    """Two whole batches of 4 among 10 rows (the last 2 left out): the mean of the batch
    means and 4/3 times the mean of the biased batch variances of z = x W1 + b1."""
    net = bn_net(module)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((10, 3)) * 2 + 0.5
    net.estimate_population_statistics(x, 4)

    W1, b1, W2, b2 = (net.params[k] for k in ("W1", "b1", "W2", "b2"))
    z1, z2 = x[0:4] @ W1 + b1, x[4:8] @ W1 + b1
    mean = (z1.mean(axis=0) + z2.mean(axis=0)) / 2
    var = 4 / 3 * (((z1 - z1.mean(axis=0)) ** 2).sum(axis=0) / 4
                   + ((z2 - z2.mean(axis=0)) ** 2).sum(axis=0) / 4) / 2
    (bn,) = batchnorms(net)
    np.testing.assert_allclose(bn.running_mean, mean, rtol=1e-13)
    np.testing.assert_allclose(bn.running_var, var, rtol=1e-13)

    x_test = rng.standard_normal((5, 3))
    z = x_test @ W1 + b1
    hidden = np.maximum(net.params["gamma1"] * (z - mean) / np.sqrt(var + BN_EPS)
                        + net.params["beta1"], 0)
    expected = hidden @ W2 + b2
    np.testing.assert_allclose(net.predict(x_test), expected, rtol=1e-12, atol=1e-14)
    labels = np.argmax(expected, axis=1)
    assert net.accuracy(x_test, labels) == 1.0


def test_fastnet_writes_the_estimate_into_its_running_statistics_arena():
    net = bn_net(fast_nets, np.float32, sizes=(6, [5, 7], 3))
    x = np.random.default_rng(2).standard_normal((30, 6)).astype(np.float32)
    views = [(bn.running_mean, bn.running_var) for bn in batchnorms(net)]
    net.estimate_population_statistics(x, 8)
    for bn, (mean, var) in zip(batchnorms(net), views):
        assert bn.running_mean is mean and bn.running_var is var
        assert np.shares_memory(mean, net._running) and np.shares_memory(var, net._running)
        assert mean.dtype == var.dtype == np.float32
    assert np.all(net._running[12:] > 0)  # the variances


@pytest.mark.parametrize("dtype", DTYPES)
def test_fastnet_matches_the_reference_with_dropout(dtype):
    x = np.random.default_rng(3).standard_normal((50, 6)).astype(dtype)
    nets = {}
    for name, module in (("fastnet", fast_nets), ("reference", reference_nets)):
        net = bn_net(module, dtype, sizes=(6, [16, 16], 3), use_dropout=True, dropout_ratio=0.3)
        params = {k: np.array(v) for k, v in net.params.items()}
        net.estimate_population_statistics(x, 8)
        for key, value in params.items():
            np.testing.assert_array_equal(net.params[key], value, err_msg=key)
        nets[name] = net
    fast, ref = nets["fastnet"], nets["reference"]
    for fast_bn, ref_bn in zip(batchnorms(fast), batchnorms(ref)):
        assert fast_bn.momentum == ref_bn.momentum == 0.9
        assert_close(fast_bn.running_mean, ref_bn.running_mean, dtype, "running_mean")
        assert_close(fast_bn.running_var, ref_bn.running_var, dtype, "running_var")
    assert [d.step for d in fast._dropouts] == [6, 6]  # one mask per whole batch
    assert [layer.step for key, layer in ref.layers.items() if key.startswith("Dropout")] == [6, 6]
    assert_close(fast.predict(x), ref.predict(x), dtype, "predict")


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("make, batch_size, message", [
    (lambda m: m.MultiLayerNetExtend(3, [4], 2, seed=0), 4,
     "estimate_population_statistics needs batch normalization (use_batchnorm=True)"),
    (lambda m: bn_net(m), 1,
     "batch_size must be an integer >= 2 (m / (m - 1) needs m >= 2), got 1"),
    (lambda m: bn_net(m), 2.0,
     "batch_size must be an integer >= 2 (m / (m - 1) needs m >= 2), got 2.0"),
    (lambda m: bn_net(m), 11, "x_train has 10 samples, fewer than one batch of 11"),
], ids=["no-batchnorm", "batch-1", "batch-float", "too-few-samples"])
def test_errors(module, make, batch_size, message):
    net = make(module)
    with pytest.raises(ValueError) as info:
        net.estimate_population_statistics(np.ones((10, 3)), batch_size)
    assert str(info.value) == message


# ------------------------------------------------------------------ the Trainer

def toy(n=60):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((n, 3))
    return x, np.argmax(x @ rng.standard_normal((3, 2)), axis=1)


@pytest.mark.parametrize("nets, trainer_module", [(fast_nets, fast_trainer),
                                                  (reference_nets, reference_trainer)],
                         ids=["fastnet", "reference"])
def test_trainer_estimates_after_the_last_epoch(nets, trainer_module):
    x, t = toy()
    trained = {}
    for population in (False, True):
        net = bn_net(nets)
        trainer = trainer_module.Trainer(net, x, t, x, t, epochs=3, mini_batch_size=16,
                                         optimizer="Adam", verbose=False, seed=1,
                                         population_statistics=population)
        trainer.train()
        trained[population] = net
    running, estimated = trained[False], trained[True]
    running.estimate_population_statistics(x, 16)  # what the Trainer did after training
    for a, b in zip(batchnorms(running), batchnorms(estimated)):
        np.testing.assert_array_equal(a.running_mean, b.running_mean)
        np.testing.assert_array_equal(a.running_var, b.running_var)


@pytest.mark.parametrize("make_net, batch, message", [
    (lambda: fast_nets.MultiLayerNet(3, [4], 2, seed=0), 16,
     ("population_statistics=True needs a network with batch normalization "
      "(MultiLayerNetExtend(..., use_batchnorm=True))")),
    (lambda: bn_net(fast_nets), 1,
     "population_statistics=True needs batches of at least 2 samples, got 1"),
], ids=["no-batchnorm", "batch-1"])
def test_trainer_refuses_an_impossible_estimate_before_training(make_net, batch, message):
    x, t = toy()
    with pytest.raises(ValueError) as info:
        fast_trainer.Trainer(make_net(), x, t, x, t, mini_batch_size=batch, verbose=False,
                             population_statistics=True)
    assert str(info.value) == message


@pytest.mark.parametrize("value", ["no", 1, None])
def test_trainer_population_statistics_is_a_bool(value):
    """A truthy "no" ran the estimate."""
    x, t = toy()
    with pytest.raises(TypeError) as info:
        fast_trainer.Trainer(bn_net(fast_nets), x, t, x, t, verbose=False,
                             population_statistics=value)
    assert str(info.value) == f"population_statistics must be True or False, got {value!r}"


def test_a_failed_estimate_leaves_the_net_as_it_was():
    """A pass refused midway (a dropout ratio set out of range on the second layer, after
    the first layer's statistics had moved) restores the running statistics and the
    dropout streams, not just the momenta."""
    net = fast_nets.MultiLayerNetExtend(12, [6, 4], 3, use_batchnorm=True, use_dropout=True,
                                        dtype=np.float64, seed=1)
    x = np.random.default_rng(0).standard_normal((20, 12))
    before = ([bn.running_mean.copy() for bn in batchnorms(net)],
              [net.layers[k].step for k in net.layers if k.startswith("Dropout")])
    net.layers["Dropout2"].dropout_ratio = 1.5
    with pytest.raises(ValueError, match="dropout_ratio"):
        net.estimate_population_statistics(x, 5)
    for bn, mean in zip(batchnorms(net), before[0]):
        np.testing.assert_array_equal(bn.running_mean, mean)
    assert [net.layers[k].step for k in net.layers if k.startswith("Dropout")] == before[1]
    assert [bn.momentum for bn in batchnorms(net)] == [0.9, 0.9]
