"""Tests of the NumPy reference (the oracle) against numerical gradients and hand math."""
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from fastnet.reference import functions as F
from fastnet.reference import layers as L
from fastnet.reference import optimizers as O
from fastnet.reference.nets import MultiLayerNet, MultiLayerNetExtend
from fastnet.reference.random import counter_uniform
from fastnet.reference.trainer import Trainer
from fastnet.reference.util import shuffle_dataset, smooth_curve


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# ---------------------------------------------------------------- functions

def test_softmax_rows_sum_to_one_and_survive_large_logits():
    x = np.array([[1000.0, 1001.0, 1002.0], [-1.0, 0.0, 1.0]])
    y = F.softmax(x)
    assert_allclose(y.sum(axis=1), 1.0)
    assert_allclose(y[0], y[1])
    assert_allclose(F.softmax(x[1]), y[1])


def test_cross_entropy_labels_one_hot_and_single_sample_agree():
    y = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]])
    labels = np.array([1, 0])
    expected = -(math.log(0.7 + 1e-7) + math.log(0.5 + 1e-7)) / 2
    assert F.cross_entropy_error(y, labels) == pytest.approx(expected)
    assert F.cross_entropy_error(y, np.eye(3)[labels]) == pytest.approx(expected)
    assert F.cross_entropy_error(y[0], np.array(1)) == pytest.approx(-math.log(0.7 + 1e-7))
    assert F.softmax_loss(np.log(y), labels) == pytest.approx(expected)


def test_small_functions():
    x = np.array([-2.0, 0.0, 3.0])
    assert_array_equal(F.step_function(x), [0, 0, 1])
    assert F.step_function(x).dtype == np.int64
    assert_array_equal(F.relu(x), [0, 0, 3])
    assert_array_equal(F.relu_grad(x), [0, 1, 1])
    assert F.identity_function(x) is x
    assert F.sum_squared_error(x, np.zeros(3)) == pytest.approx(6.5)
    assert F.mean_squared_error is F.sum_squared_error
    assert_allclose(F.sigmoid_grad(x), F.numerical_gradient(lambda v: F.sigmoid(v).sum(), x.copy()),
                    rtol=1e-6)
    assert F.sigmoid(np.float32(-1000)) == 0 and F.sigmoid(np.float32(1)).dtype == np.float32


def test_numerical_gradient_any_shape_restores_x(rng):
    x = rng.standard_normal((2, 3, 4))
    before = x.copy()
    assert_allclose(F.numerical_gradient(lambda v: np.sum(v ** 3), x), 3 * before ** 2, rtol=1e-6)
    assert_array_equal(x, before)


# ---------------------------------------------------------------- layers

def check_backward(forward, backward, x, rng, rtol=1e-5, atol=1e-7):
    """backward(dout) == d(sum(forward(x) * dout))/dx by central differences."""
    dout = rng.standard_normal(forward(x).shape)
    numeric = F.numerical_gradient(lambda _: np.sum(forward(x) * dout), x)
    forward(x)
    assert_allclose(backward(dout), numeric, rtol=rtol, atol=atol)
    return dout


@pytest.mark.parametrize("layer_class", [L.Relu, L.Sigmoid, L.Tanh])
def test_activation_backward(layer_class, rng):
    layer = layer_class()
    x = rng.standard_normal((4, 5)) + 0.05  # keep Relu's kink away from the samples
    check_backward(layer.forward, layer.backward, x, rng)


def test_relu_leaves_dout_and_x_alone(rng):
    layer = L.Relu()
    x = rng.standard_normal((3, 4))
    x_before = x.copy()
    dout = np.ones((3, 4))
    layer.forward(x)
    dx = layer.backward(dout)
    assert_array_equal(dout, 1.0)
    assert_array_equal(x, x_before)
    assert_array_equal(dx, x > 0)


def test_affine_backward_with_4d_input(rng):
    W, b = rng.standard_normal((12, 5)), rng.standard_normal(5)
    layer = L.Affine(W, b)
    x = rng.standard_normal((2, 3, 2, 2))
    dout = check_backward(layer.forward, layer.backward, x, rng)
    assert layer.original_x_shape == (2, 3, 2, 2) and layer.x.shape == (2, 12)
    for param, grad in ((W, layer.dW), (b, layer.db)):
        numeric = F.numerical_gradient(lambda _: np.sum(layer.forward(x) * dout), param)
        assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_softmax_with_loss_labels_and_one_hot(rng):
    x = rng.standard_normal((4, 3))
    labels = np.array([0, 2, 1, 2])
    by_label, by_one_hot = L.SoftmaxWithLoss(), L.SoftmaxWithLoss()
    loss = by_label.forward(x, labels)
    assert isinstance(loss, float)
    assert loss == pytest.approx(by_one_hot.forward(x, np.eye(3)[labels]))
    assert_allclose(by_label.backward(), by_one_hot.backward())
    numeric = F.numerical_gradient(lambda _: L.SoftmaxWithLoss().forward(x, labels), x)
    assert_allclose(by_label.backward(2.0), 2 * numeric, rtol=1e-5, atol=1e-8)
    x32 = x.astype(np.float32)
    by_label.forward(x32, labels)
    assert by_label.backward(np.float64(1)).dtype == np.float32


@pytest.mark.parametrize("shape", [(6, 4), (5, 2, 2, 3)])
def test_batchnorm_backward(shape, rng):
    features = int(np.prod(shape[1:]))
    gamma, beta = rng.standard_normal(features), rng.standard_normal(features)
    layer = L.BatchNormalization(gamma, beta)
    x = rng.standard_normal(shape)
    dout = check_backward(layer.forward, layer.backward, x, rng, rtol=1e-4, atol=1e-6)
    for param, grad in ((gamma, layer.dgamma), (beta, layer.dbeta)):
        numeric = F.numerical_gradient(lambda _: np.sum(layer.forward(x) * dout), param)
        assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_batchnorm_statistics_and_inference(rng):
    layer = L.BatchNormalization(np.ones(3), np.zeros(3), momentum=0.9)
    x = rng.standard_normal((8, 3)) * 2 + 1
    out = layer.forward(x)
    assert_allclose(out.mean(axis=0), 0, atol=1e-12)
    assert_allclose(out.var(axis=0), x.var(axis=0) / (x.var(axis=0) + 1e-6))
    assert_allclose(layer.running_mean, 0.1 * x.mean(axis=0))
    assert_allclose(layer.running_var, 0.1 * x.var(axis=0))
    expected = (x - layer.running_mean) / np.sqrt(layer.running_var + 1e-6)
    assert_allclose(layer.forward(x, train_flg=False), expected)


def test_dropout_mask_is_a_function_of_seed_and_step():
    x = np.ones((50, 40))
    a, b = L.Dropout(0.3, seed=7), L.Dropout(0.3, seed=7)
    first = a.forward(x)
    assert a.step == 1
    assert_array_equal(first, b.forward(x))
    assert_array_equal(a.mask, counter_uniform(7, 0, x.size).reshape(x.shape) >= 0.3)
    assert not np.array_equal(a.forward(x), first)
    assert a.mask.dtype == bool and a.mask.mean() == pytest.approx(0.7, abs=0.03)
    assert_array_equal(a.backward(x), a.mask)


def test_dropout_inference_and_default_seed():
    x = np.ones((2, 3), dtype=np.float32)
    layer = L.Dropout(0.25)
    out = layer.forward(x, train_flg=False)
    assert out.dtype == np.float32 and layer.step == 0
    assert_allclose(out, 0.75)
    assert layer.forward(x).dtype == np.float32
    np.random.seed(3)
    first = L.Dropout().seed
    np.random.seed(3)
    assert L.Dropout().seed == first
    with pytest.raises(ValueError, match="dropout_ratio"):
        L.Dropout(1.5)


# ---------------------------------------------------------------- optimizers

# (optimizer, gradients of successive steps, parameter after each step), worked by hand
# from the formulas with p = 1.
OPTIMIZER_STEPS = [
    (O.SGD(lr=0.1), [0.5, -1.0], [0.95, 1.05]),
    (O.Momentum(lr=0.1, momentum=0.9), [0.5, 0.5, 0.5], [0.95, 0.855, 0.7195]),
    (O.Nesterov(lr=0.1, momentum=0.9), [0.5, 0.5, 0.5], [0.905, 0.7695, 0.59755]),
    (O.AdaGrad(lr=0.1), [0.5, -1.0],
     [1 - 0.05 / (0.5 + 1e-7), 1 - 0.05 / (0.5 + 1e-7) + 0.1 / (math.sqrt(1.25) + 1e-7)]),
    (O.RMSprop(lr=0.1, decay_rate=0.9), [0.5, -1.0],
     [1 - 0.05 / (math.sqrt(0.025) + 1e-7),
      1 - 0.05 / (math.sqrt(0.025) + 1e-7) + 0.1 / (math.sqrt(0.1225) + 1e-7)]),
    (O.Adam(lr=0.1, beta1=0.9, beta2=0.99), [0.5, -1.0],
     [1 - 0.1 * 0.05 / (0.05 + 1e-7), 0.93656093859942]),
]


@pytest.mark.parametrize("optimizer, gradients, expected", OPTIMIZER_STEPS,
                         ids=lambda v: type(v).__name__ if hasattr(v, "update") else "")
def test_optimizer_steps_by_hand(optimizer, gradients, expected):
    params = {"w": np.array([1.0])}
    held = params["w"]
    for g, p in zip(gradients, expected, strict=True):
        optimizer.update(params, {"w": np.array([g])})
        assert params["w"][0] == pytest.approx(p, rel=1e-12)
    assert params["w"] is held


@pytest.mark.parametrize("name", list(O.OPTIMIZERS))
def test_optimizer_keeps_float32_and_adds_state_per_key(name):
    optimizer = O.make_optimizer(name.upper())
    params = {"a": np.ones(3, np.float32)}
    optimizer.update(params, {"a": np.full(3, 0.5, np.float32)})
    params["b"] = np.ones((2, 2), np.float32)
    grads = {"a": np.full(3, 0.5, np.float32), "b": np.ones((2, 2), np.float32)}
    optimizer.update(params, grads)
    for state_name in ("v", "h", "m"):
        state = getattr(optimizer, state_name, None)
        if state is not None:
            assert state["b"].shape == (2, 2) and state["b"].dtype == np.float32
    assert all(p.dtype == np.float32 for p in params.values())


@pytest.mark.parametrize("make, match", [
    (lambda: O.SGD(lr=0), "learning rate"),
    (lambda: O.Adam(lr=float("nan")), "learning rate"),
    (lambda: O.AdaGrad(lr=float("inf")), "learning rate"),
    (lambda: O.Momentum(momentum=1.0), "momentum"),
    (lambda: O.Nesterov(momentum=-0.1), "momentum"),
    (lambda: O.RMSprop(decay_rate=1.5), "decay_rate"),
    (lambda: O.Adam(beta1=1.0), "beta1"),
    (lambda: O.Adam(beta2=-1e-3), "beta2"),
    (lambda: O.make_optimizer("lbfgs"), "sgd, momentum, nesterov, adagrad, rmsprop, adam"),
])
def test_invalid_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# ---------------------------------------------------------------- nets

def small_batch(rng, n=4, d=6, classes=3):
    return rng.standard_normal((n, d)), rng.integers(0, classes, n)


@pytest.mark.parametrize("make_net", [
    lambda: MultiLayerNet(6, [5, 4], 3, weight_decay_lambda=0.1, dtype=np.float64, seed=0),
    lambda: MultiLayerNet(6, [5, 4], 3, "sigmoid", "xavier", 0.1, dtype=np.float64, seed=0),
    lambda: MultiLayerNetExtend(6, [5, 4], 3, "tanh", 0.5, weight_decay_lambda=0.1,
                                use_batchnorm=True, dtype=np.float64, seed=0),
])
def test_net_gradient_matches_numerical_gradient(make_net, rng):
    net = make_net()
    x, t = small_batch(rng)
    backprop = net.gradient(x, t)
    numeric = net.numerical_gradient(x, t)
    assert backprop.keys() == numeric.keys() == net.params.keys()
    # The loss takes log(y + 1e-7) but backprop differentiates log(y): a relative gap
    # of about 1e-7 / y, 2e-5 here (a sample gets y = 0.005 for its label).
    for key in net.params:
        assert_allclose(backprop[key], numeric[key], rtol=1e-3, atol=1e-6, err_msg=key)


def test_net_layout_and_shared_params():
    net = MultiLayerNetExtend(6, [5, 4], 3, use_dropout=True, use_batchnorm=True, seed=0)
    assert list(net.layers) == [
        "Affine1", "BatchNorm1", "Activation_function1", "Dropout1",
        "Affine2", "BatchNorm2", "Activation_function2", "Dropout2", "Affine3"]
    assert sorted(net.params) == sorted(["W1", "b1", "W2", "b2", "W3", "b3",
                                         "gamma1", "beta1", "gamma2", "beta2"])
    assert net.layers["Affine2"].W is net.params["W2"]
    assert net.layers["BatchNorm1"].gamma is net.params["gamma1"]
    assert net.layers["Dropout1"].seed != net.layers["Dropout2"].seed


def test_float32_net_stays_float32(rng):
    net = MultiLayerNetExtend(6, [5, 4], 3, weight_decay_lambda=0.01, use_dropout=True,
                              use_batchnorm=True, seed=1)
    x, t = small_batch(rng)  # float64 input is computed in the net's dtype
    assert net.predict(x).dtype == np.float32
    grads = net.gradient(x, t)
    assert all(g.dtype == np.float32 for g in grads.values())
    O.Adam().update(net.params, grads)
    assert all(p.dtype == np.float32 for p in net.params.values())
    assert isinstance(net.loss(x, t), float)
    assert 0 <= net.accuracy(x, np.eye(3)[t]) == net.accuracy(x, t) <= 1


def test_seed_reproducibility():
    def params_of(**kwargs):
        return MultiLayerNetExtend(6, [5], 3, use_dropout=True, **kwargs).params

    for a, b in [(params_of(seed=5), params_of(seed=5)),
                 (params_of(rng=np.random.default_rng(5)), params_of(seed=5))]:
        for key in a:
            assert_array_equal(a[key], b[key])
    np.random.seed(0)
    first = MultiLayerNetExtend(6, [5], 3, use_dropout=True)
    np.random.seed(0)
    second = MultiLayerNetExtend(6, [5], 3, use_dropout=True)
    assert_array_equal(first.params["W1"], second.params["W1"])
    assert first.layers["Dropout1"].seed == second.layers["Dropout1"].seed
    assert not np.array_equal(params_of(seed=6)["W1"], first.params["W1"])


def test_weight_init_std():
    net = MultiLayerNet(400, [300], 2, weight_init_std="He", seed=0)
    assert net.params["W1"].std() == pytest.approx(math.sqrt(2 / 400), rel=0.02)
    assert net.params["W2"].std() == pytest.approx(math.sqrt(2 / 300), rel=0.1)
    net = MultiLayerNet(400, [300], 2, activation="Sigmoid", weight_init_std=0.01, seed=0)
    assert net.params["W1"].std() == pytest.approx(0.01, rel=0.02)
    assert_array_equal(net.params["b1"], 0)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"activation": "softplus"}, ValueError, "relu"),
    ({"weight_init_std": "lecun"}, ValueError, "weight_init_std"),
    ({"weight_init_std": -1.0}, ValueError, "weight_init_std"),
    ({"input_size": 0}, ValueError, "input_size"),
    ({"hidden_size_list": [5, 2.5]}, ValueError, "hidden size"),
    ({"weight_decay_lambda": -1}, ValueError, "weight_decay_lambda"),
    ({"dtype": np.int32}, TypeError, "float32 or float64"),
    ({"dtype": "no such type"}, TypeError, "data type"),
    ({"seed": 1, "rng": np.random.default_rng()}, ValueError, "seed"),
    ({"dropout_ration": 0.3, "dropout_ratio": 0.2}, ValueError, "dropout_ratio"),
])
def test_invalid_net_arguments(kwargs, error, match):
    arguments = dict(input_size=6, hidden_size_list=[5], output_size=3) | kwargs
    with pytest.raises(error, match=match):
        MultiLayerNetExtend(**arguments)


def test_dropout_ratio_alias():
    net = MultiLayerNetExtend(6, [5], 3, use_dropout=True, dropout_ratio=0.2, seed=0)
    assert net.layers["Dropout1"].dropout_ratio == 0.2
    net = MultiLayerNetExtend(6, [5], 3, use_dropout=True, dropout_ration=0.3, seed=0)
    assert net.layers["Dropout1"].dropout_ratio == 0.3


# ---------------------------------------------------------------- trainer

class RecordingTrainer(Trainer):
    """A Trainer that remembers the first column of every mini-batch it trains on."""

    def _step(self, x_batch, t_batch):
        self.batches.append(x_batch[:, 0])
        return super()._step(x_batch, t_batch)


def test_trainer_epochs_batches_and_reports(rng, capsys):
    x, t = rng.standard_normal((40, 6)), np.arange(40) % 3
    net = MultiLayerNet(6, [5], 3, seed=0)
    trainer = RecordingTrainer(net, x, t, x[:10], t[:10], epochs=3, mini_batch_size=10,
                               optimizer="Adam", optimizer_param={"lr": 0.01}, seed=0)
    trainer.batches = []
    trainer.train()
    assert trainer.max_iter == 12 and len(trainer.train_loss_list) == 12
    assert len(trainer.train_acc_list) == len(trainer.test_acc_list) == 3
    first_epoch = np.concatenate(trainer.batches[:4])
    assert_array_equal(np.sort(first_epoch), np.sort(x[:, 0]))  # each sample once
    out = capsys.readouterr().out
    assert "=== epoch:3, train acc:" in out and "Final Test Accuracy" in out


def test_trainer_sampling_is_seeded_and_subsampled(rng):
    x, t = rng.standard_normal((30, 6)), rng.integers(0, 3, 30)

    def run(seed):
        trainer = Trainer(MultiLayerNet(6, [5], 3, seed=0), x, t, x, t, epochs=2,
                          mini_batch_size=7, evaluate_sample_num_per_epoch=4,
                          verbose=False, seed=seed)
        trainer.train()
        return trainer.train_loss_list, trainer.train_acc_list

    losses, accuracies = run(1)
    assert run(1) == (losses, accuracies)
    assert all(acc in (0, 0.25, 0.5, 0.75, 1) for acc in accuracies)


@pytest.mark.parametrize("kwargs, match", [
    ({"optimizer": "adamx"}, "unknown optimizer .adamx."),
    ({"t_train": np.zeros(3)}, "different lengths"),
    ({"mini_batch_size": 0}, "mini_batch_size"),
])
def test_invalid_trainer_arguments(kwargs, match):
    arguments = dict(network=MultiLayerNet(2, [], 2, seed=0), x_train=np.zeros((4, 2)),
                     t_train=np.zeros(4, int), x_test=np.zeros((4, 2)),
                     t_test=np.zeros(4, int)) | kwargs
    with pytest.raises(ValueError, match=match):
        Trainer(**arguments)


# ---------------------------------------------------------------- util

def test_smooth_curve_keeps_length_and_constants(rng):
    assert_allclose(smooth_curve(np.full(30, 2.5)), 2.5)
    noisy = np.linspace(0, 1, 50) + rng.standard_normal(50) * 0.1
    smooth = smooth_curve(noisy)
    assert smooth.shape == noisy.shape
    assert np.abs(np.diff(smooth)).sum() < np.abs(np.diff(noisy)).sum()


def test_shuffle_dataset_keeps_pairs():
    x, t = np.arange(20).reshape(10, 2), np.arange(10)
    xs, ts = shuffle_dataset(x, t, seed=0)
    assert_array_equal(xs[:, 0] // 2, ts)
    assert sorted(ts) == list(range(10)) and not np.array_equal(ts, t)
    assert_array_equal(shuffle_dataset(x, t, rng=np.random.default_rng(0))[1], ts)
    np.random.seed(4)
    first = shuffle_dataset(x, t)[1]
    np.random.seed(4)
    assert_array_equal(shuffle_dataset(x, t)[1], first)


# ------------------------------------------------------------------ independence

# The product's modules that may import the reference: the book's plain functions,
# re-exported (no compiled version exists), and the code that compares against it.
MAY_IMPORT_REFERENCE = {"functions.py", "util.py", "bench", "experiments"}


def _imports_of(path):
    import ast

    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            yield "." * node.level + (node.module or ""), [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def test_product_does_not_import_the_reference():
    """The oracle stays independent: what both need is in ``fastnet._book``."""
    import pathlib

    import fastnet

    root = pathlib.Path(fastnet.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        relative = path.relative_to(root)
        if relative.parts[0] in MAY_IMPORT_REFERENCE | {"reference"}:
            continue
        for module, names in _imports_of(path):
            if "reference" in module.split(".") or "reference" in names:
                offenders.append(f"{relative}: {module} {names}")
    assert not offenders


@pytest.mark.parametrize("module", ["layers", "optimizers", "nets", "trainer"])
def test_no_product_class_subclasses_the_reference(module):
    import importlib
    import inspect

    product = importlib.import_module(f"fastnet.{module}")
    for name, cls in inspect.getmembers(product, inspect.isclass):
        if cls.__module__ != product.__name__:
            continue
        assert not [base for base in cls.__mro__
                    if base.__module__.startswith("fastnet.reference")], name
        reference = getattr(importlib.import_module(f"fastnet.reference.{module}"), name, None)
        if reference is not None:
            assert inspect.signature(cls) == inspect.signature(reference), name


def test_evaluating_fewer_samples_does_not_move_the_training(rng):
    """``evaluate_sample_num_per_epoch`` takes the first samples, as the book's Trainer
    does: the mini-batches, and so the losses, are those of a full evaluation (drawing
    the subset from the Trainer's generator once moved them); a count that is not a
    positive integer is refused before any step."""
    x, t = rng.standard_normal((30, 6)), rng.integers(0, 3, 30)

    def losses(**kwargs):
        trainer = Trainer(MultiLayerNet(6, [5], 3, seed=0), x, t, x, t, epochs=3,
                          mini_batch_size=7, verbose=False, seed=0, **kwargs)
        trainer.train()
        return trainer.train_loss_list

    assert losses(evaluate_sample_num_per_epoch=5) == losses()
    for bad in (50.0, True, "abc", 0):
        with pytest.raises(ValueError, match="evaluate_sample_num_per_epoch must be a "
                                             "positive integer"):
            Trainer(MultiLayerNet(6, [5], 3, seed=0), x, t, x, t,
                    evaluate_sample_num_per_epoch=bad, verbose=False)


def test_numerical_gradient_refuses_an_int_array():
    """The chapter-4 call on ``np.array([3, 4])`` truncated the +-h steps and returned
    [25000, 35000] for the gradient (6, 8) of x0^2 + x1^2: refused, naming the fix."""
    with pytest.raises(TypeError, match=r"needs x as a float array.*np.array\(x, "
                                        r"dtype=float\)"):
        F.numerical_gradient(lambda x: x[0] ** 2 + x[1] ** 2, np.array([3, 4]))
    assert_allclose(F.numerical_gradient(lambda x: x[0] ** 2 + x[1] ** 2,
                                         np.array([3.0, 4.0])), [6, 8])


def test_numerical_gradient_refuses_a_dtype_that_cannot_resolve_its_step():
    """float16 rounds 1 + 1e-4 back to 1: the gradient came out 0, as if it were."""
    def f(x):
        return float(np.sum(x.astype(np.float64) ** 2))

    with pytest.raises(TypeError, match=r"float32 or wider: float16 resolves steps of "
                                        r"0.000977 near 1, coarser than h = 0.0001"):
        F.numerical_gradient(f, np.array([1.0, 2.0], np.float16))
    assert_allclose(F.numerical_gradient(f, np.array([1.0, 2.0], np.float32)), [2, 4],
                    rtol=1e-2)


@pytest.mark.parametrize("inverted", ["no", 1, None])
def test_dropout_inverted_is_a_bool(inverted):
    with pytest.raises(TypeError, match="inverted must be True or False"):
        L.Dropout(0.3, inverted=inverted)
