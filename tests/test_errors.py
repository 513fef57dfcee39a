"""The bad-input table: each case names the call, the exception and a fragment of its
message.  Then non-finite inputs, which are not errors: NaN and Inf flow through like
in the reference and give a NaN loss, never an exception or a crash."""
import re

import numpy as np
import pytest
from cases import LAYERS, assert_traces_close, layer_trace, make_inputs

from fastnet import layers as L
from fastnet import nets as N
from fastnet import optimizers as O
from fastnet.arena import NetLayout
from fastnet.io import save_net
from fastnet.reference import layers as reference_layers
from fastnet.schedules import StepDecay
from fastnet.trainer import Trainer

X = np.arange(6, dtype=np.float64).reshape(2, 3) / 10 - 0.2
T = np.array([0, 2])
ONES, ZEROS = np.ones(3), np.zeros(3)


def affine(w_shape=(3, 4), b_shape=(4,), dtype=np.float64):
    return L.Affine(np.ones(w_shape, dtype), np.zeros(b_shape, dtype))


def forwarded(layer, *args):
    layer.forward(*args)
    return layer


def weight_norm_refused_pass():
    """A WeightNormalization whose second forward refused its all-zero v."""
    layer = forwarded(L.WeightNormalization(np.ones((3, 4)), np.ones(4), np.zeros(4)), X)
    layer.v = np.zeros((3, 4))
    with pytest.raises(ValueError, match="all-zero column"):
        layer.forward(X)
    return layer


def weight_norm_reshaped_v():
    layer = forwarded(L.WeightNormalization(np.ones((3, 4)), np.ones(4), np.zeros(4)), X)
    layer.v = np.ones((3, 5))
    return layer


def batchnorm(width=3, **kwargs):
    return L.BatchNormalization(np.ones(width), np.zeros(width), **kwargs)


def net(**kwargs):
    return N.MultiLayerNetExtend(3, [4], 3, seed=0, **kwargs)


def renamed(network, **attributes):
    """``network`` with ``attributes`` set, as no constructor would set them."""
    for name, value in attributes.items():
        setattr(network, name, value)
    return network


def renamed_layer(network, key, **attributes):
    """``network`` with its layer ``key``'s ``attributes`` set after construction."""
    renamed(network.layers[key], **attributes)
    return network


def read_only(array):
    array.setflags(write=False)
    return array


def train_step(x, t):
    return net(use_batchnorm=True).train_step(x, t, O.SGD())


BAD_INPUTS = [
    # --- shapes
    ("affine-x-features", lambda: affine().forward(np.ones((2, 5))), ValueError,
     ("x has 5 features per sample (shape (2, 5): samples along the first axis) but W "
      "expects 3 (W shape (3, 4))")),
    # one sample as a vector is 3 samples of one feature to the book's reshape
    ("affine-1d-x", lambda: affine().forward(np.ones(3)), ValueError,
     ("x has 1 features per sample (shape (3,): samples along the first axis) but W "
      "expects 3 (W shape (3, 4)) (a batch of one sample is x[None])")),
    ("softmax-array-dout",
     lambda: forwarded(L.SoftmaxWithLoss(), X, T).backward(np.ones(4)), TypeError,
     "dout must be a real scalar (the loss's gradient), got ndarray of shape (4,)"),
    ("affine-4d-x-features", lambda: affine().forward(np.ones((2, 1, 2, 2))), ValueError,
     "x has 4 features per sample"),
    ("affine-W-1d", lambda: affine(w_shape=(3,)).forward(X), TypeError,
     "W must be a 2-D float32 or float64 array, got 1-D float64"),
    ("affine-b-shape", lambda: affine(b_shape=(3,)).forward(X), ValueError,
     "b must have shape (4,) (or broadcast to (1, 4)), got (3,)"),
    ("affine-b-per-sample", lambda: affine(b_shape=(2, 4)).forward(X), ValueError,
     "b must have shape (4,) (or broadcast to (1, 4)), got (2, 4)"),
    ("affine-dout-shape", lambda: forwarded(affine(), X).backward(np.ones((2, 3))), ValueError,
     "dout must have shape (2, 4), got (2, 3)"),
    ("relu-dout-shape", lambda: forwarded(L.Relu(), X).backward(np.ones((3, 2))), ValueError,
     "dout must have shape (2, 3), got (3, 2)"),
    ("sigmoid-dout-shape", lambda: forwarded(L.Sigmoid(), X).backward(np.ones(6)), ValueError,
     "dout must have shape (2, 3)"),
    # W re-bound between forward and backward (raw Numba typing and gemm errors before)
    ("affine-W-rebound-dtype",
     lambda: renamed(forwarded(L.Affine(np.ones((3, 4), np.float32), np.zeros(4, np.float32)),
                               X), W=np.ones((3, 4))).backward(np.ones((2, 4))),
     ValueError, ("W changed since forward: the forward's x was 3 features per sample in "
                  "float32, so W must be (3, D) float32; it is (3, 4) float64")),
    ("affine-W-rebound-width",
     lambda: renamed(forwarded(L.Affine(np.ones((3, 4)), np.zeros(4)), X),
                     W=np.ones((5, 4))).backward(np.ones((2, 4))),
     ValueError, "so W must be (3, D) float64; it is (5, 4) float64"),
    ("batchnorm-width", lambda: batchnorm(width=4).forward(X), ValueError,
     "gamma must have shape (3,), got (4,)"),
    ("batchnorm-dout-shape", lambda: forwarded(batchnorm(), X).backward(np.ones((2, 4))),
     ValueError, "dout must have the shape of the last training forward's output, (2, 3), got (2, 4)"),
    # a dout of another batch size (a raw NumPy reshape error before)
    ("batchnorm-dout-batch", lambda: forwarded(batchnorm(), X).backward(np.ones((5, 3))),
     ValueError, "dout must have the shape of the last training forward's output, (2, 3), got (5, 3)"),
    # (N, C, H, W): dout as the output, or flattened as the book's layer takes it; a
    # transposed one, of the same size and batch, gave a wrong dx
    ("batchnorm-dout-4d-transposed",
     lambda: forwarded(batchnorm(width=12), np.ones((4, 3, 2, 2))).backward(
         np.ones((4, 2, 2, 3))), ValueError,
     ("dout must have the shape of the last training forward's output, (4, 3, 2, 2) or "
      "(4, 12), got (4, 2, 2, 3)")),
    ("softmax-1d-x", lambda: L.SoftmaxWithLoss().forward(np.ones(3), np.array([0])), ValueError,
     "x must have at least 2 dimension(s), got shape (3,)"),
    ("softmax-3d-x", lambda: L.SoftmaxWithLoss().forward(np.ones((2, 3, 1)), T), ValueError,
     "x must be 2-D logits (N, classes), got shape (2, 3, 1)"),
    ("labels-length", lambda: L.SoftmaxWithLoss().forward(X, np.array([0, 1, 2])), ValueError,
     "t must be class indices of shape (2,) or one-hot of shape (2, 3), got shape (3,)"),
    ("one-hot-width", lambda: L.SoftmaxWithLoss().forward(X, np.eye(4)[T]), ValueError,
     "got shape (2, 4)"),
    # --- labels
    ("labels-too-large", lambda: L.SoftmaxWithLoss().forward(X, np.array([0, 3])), ValueError,
     "class indices t must lie in [0, 3), got values from 0 to 3"),
    ("labels-negative", lambda: L.SoftmaxWithLoss().forward(X, np.array([-1, 0])), ValueError,
     "class indices t must lie in [0, 3), got values from -1 to 0"),
    ("labels-float", lambda: L.SoftmaxWithLoss().forward(X, np.array([0.0, 2.0])), TypeError,
     "class indices t must be integers, got dtype float64"),
    ("labels-bool", lambda: L.SoftmaxWithLoss().forward(X, np.array([True, False])), TypeError,
     "class indices t must be integers, got dtype bool"),
    ("one-hot-two-ones", lambda: L.SoftmaxWithLoss().forward(X, np.array([[1, 1, 0], [0, 0, 1]])),
     ValueError, "one-hot targets t must hold a single 1 per row and 0 elsewhere"),
    ("one-hot-soft", lambda: L.SoftmaxWithLoss().forward(X, np.full((2, 3), 1 / 3)), ValueError,
     "one-hot targets t must hold a single 1 per row"),
    ("one-hot-empty-row", lambda: L.SoftmaxWithLoss().forward(X, np.array([[0, 0, 0], [0, 1, 0]])),
     ValueError, "one-hot targets t must hold a single 1 per row"),
    # --- dtypes
    ("relu-int", lambda: L.Relu().forward(np.arange(6).reshape(2, 3)), TypeError,
     "x must be a float32 or float64 array, got dtype int64"),
    ("sigmoid-float16", lambda: L.Sigmoid().forward(X.astype(np.float16)), TypeError,
     "x must be a float32 or float64 array, got dtype float16"),
    ("tanh-bool", lambda: L.Tanh().forward(X > 0), TypeError, "got dtype bool"),
    ("affine-uint8-x", lambda: affine().forward(np.ones((2, 3), np.uint8)), TypeError,
     "x must be a float32 or float64 array, got dtype uint8"),
    ("affine-int-W", lambda: L.Affine(np.ones((3, 4), int), np.zeros(4)).forward(X), TypeError,
     "W must be a 2-D float32 or float64 array, got 2-D int64"),
    ("dropout-float16", lambda: L.Dropout(seed=1).forward(X.astype(np.float16)), TypeError,
     "got dtype float16"),
    ("batchnorm-int", lambda: batchnorm().forward(np.ones((2, 3), np.int32)), TypeError,
     "x must be a float32 or float64 array, got dtype int32"),
    ("softmax-strings", lambda: L.SoftmaxWithLoss().forward(np.array([["a", "b"]]), np.array([0])),
     TypeError, "x must be a float32 or float64 array, got dtype <U1"),
    ("relu-dout-int", lambda: forwarded(L.Relu(), X).backward(np.ones((2, 3), int)), TypeError,
     "dout must be a float32 or float64 array, got dtype int64"),
    # --- empty batches
    ("relu-empty", lambda: L.Relu().forward(np.ones((0, 3))), ValueError,
     "x is empty (shape (0, 3)); a batch needs at least one sample"),
    ("affine-empty", lambda: affine().forward(np.ones((0, 3))), ValueError, "x is empty"),
    ("softmax-empty", lambda: L.SoftmaxWithLoss().forward(np.ones((0, 3)), np.zeros(0, int)),
     ValueError, "x is empty"),
    ("batchnorm-empty", lambda: batchnorm().forward(np.ones((0, 3))), ValueError, "x is empty"),
    ("dropout-empty", lambda: L.Dropout(seed=1).forward(np.ones((0, 3))), ValueError, "x is empty"),
    ("sigmoid-zero-width", lambda: L.Sigmoid().forward(np.ones((2, 0))), ValueError,
     "x is empty (shape (2, 0))"),
    # --- backward before forward
    ("relu-backward-first", lambda: L.Relu().backward(X), RuntimeError,
     "backward called before forward"),
    ("sigmoid-backward-first", lambda: L.Sigmoid().backward(X), RuntimeError,
     "backward called before forward"),
    ("tanh-backward-first", lambda: L.Tanh().backward(X), RuntimeError,
     "backward called before forward"),
    ("affine-backward-first", lambda: affine().backward(np.ones((2, 4))), RuntimeError,
     "backward called before forward"),
    ("softmax-backward-first", lambda: L.SoftmaxWithLoss().backward(), RuntimeError,
     "backward called before forward"),
    ("dropout-backward-first", lambda: L.Dropout(seed=1).backward(X), RuntimeError,
     "backward called before forward"),
    # the book's gradient() body after a fused loss: its layers hold no forward pass
    ("net-layers-backward-after-loss",
     lambda: (lambda n: (n.loss(X, T), n.last_layer.backward(1)))(net()), RuntimeError,
     "; a fastnet net's predict, loss and gradient run compiled passes"),
    ("net-batchnorm-backward-after-loss",
     lambda: (lambda n: (n.loss(X, T), n.layers["BatchNorm1"].backward(np.ones((2, 4)))))(
         net(use_batchnorm=True)), RuntimeError,
     "backward called before a training forward; a fastnet net's predict, loss and "),
    ("batchnorm-backward-first", lambda: batchnorm().backward(X), RuntimeError,
     "backward called before a training forward"),
    ("batchnorm-backward-after-inference",
     lambda: forwarded(batchnorm(), X, False).backward(X), RuntimeError,
     "backward called before a training forward"),
    # --- layer hyperparameters
    ("dropout-ratio-above-1", lambda: L.Dropout(1.5), ValueError,
     "dropout_ratio must be in [0, 1], got 1.5"),
    ("dropout-ratio-negative", lambda: L.Dropout(-0.1), ValueError,
     "dropout_ratio must be in [0, 1], got -0.1"),
    ("dropout-ratio-nan", lambda: L.Dropout(float("nan")), ValueError,
     "dropout_ratio must be in [0, 1], got nan"),
    ("net-dropout-ratio", lambda: net(use_dropout=True, dropout_ratio=1.5), ValueError,
     "dropout_ratio must be in [0, 1], got 1.5"),
    ("dropout-negative-seed", lambda: L.Dropout(0.5, seed=-3), ValueError,
     "seed must be an integer in [0, 2**64) (the stream's 64-bit key), got -3"),
    ("dropout-seed-past-64-bits", lambda: L.Dropout(0.5, seed=2**70), ValueError,
     "seed must be an integer in [0, 2**64)"),
    ("dropout-fractional-seed", lambda: L.Dropout(0.5, seed=1.5), ValueError,
     "seed must be an integer in [0, 2**64) (the stream's 64-bit key), got 1.5"),
    ("net-negative-seed", lambda: N.MultiLayerNetExtend(3, [4], 3, seed=-1), ValueError,
     "seed must be a non-negative integer, got -1"),
    # NumPy's "SeedSequence expects int or sequence of ints for entropy not 1.5" before,
    # and True taken as 1, a list as entropy
    ("net-fractional-seed", lambda: N.MultiLayerNetExtend(3, [4], 3, seed=1.5), TypeError,
     "seed must be a non-negative integer or None, got 1.5"),
    ("net-bool-seed", lambda: N.MultiLayerNet(3, [4], 3, seed=True), TypeError,
     "seed must be a non-negative integer or None, got True"),
    ("trainer-list-seed", lambda: Trainer(net(), X, T, X, T, seed=[1, 2]), TypeError,
     "seed must be a non-negative integer or None, got [1, 2]"),
    ("dropout-ratio-set-invalid-then-inference",
     lambda: renamed_layer(net(use_dropout=True), "Dropout1", dropout_ratio=2.0).predict(X),
     ValueError, "dropout_ratio must be <= 1, got 2.0"),
    ("dropout-layer-ratio-set-invalid-then-inference",
     lambda: renamed(L.Dropout(0.5), dropout_ratio=-1).forward(X, train_flg=False),
     ValueError, "dropout_ratio must be >= 0, got -1"),
    ("batchnorm-momentum", lambda: batchnorm(momentum=1.5), ValueError,
     "momentum must be <= 1, got 1.5"),
    ("batchnorm-momentum-nan", lambda: batchnorm(momentum=float("nan")), ValueError,
     "momentum must be a finite real number, got nan"),
    ("batchnorm-one-sample", lambda: batchnorm().forward(X[:1]), ValueError,
     "BatchNormalization in training needs at least 2 values per feature over the batch "
     "(batch statistics of one value normalize it to 0), got x of shape (1, 3)"),
    # --- the normalization family
    ("groupnorm-groups-divide", lambda: L.GroupNormalization(ONES, ZEROS, 2).forward(X),
     ValueError, "groups=2 does not divide the 3 channels of x (shape (2, 3))"),
    ("groupnorm-groups-4d", lambda: L.GroupNormalization(ONES, ZEROS, 2).forward(
        np.ones((2, 3, 4, 4))), ValueError, "groups=2 does not divide the 3 channels of x"),
    ("groupnorm-groups-zero", lambda: L.GroupNormalization(ONES, ZEROS, 0), ValueError,
     "groups must be a positive integer, got 0"),
    ("groupnorm-groups-float", lambda: L.GroupNormalization(ONES, ZEROS, 1.5), ValueError,
     "groups must be a positive integer, got 1.5"),
    ("instancenorm-2d", lambda: L.InstanceNormalization(ONES, ZEROS).forward(X), ValueError,
     "InstanceNormalization needs (N, C, H, W) input, with positions to normalize each "
     "channel over; got shape (2, 3) (use LayerNormalization for (N, D))"),
    ("instancenorm-gamma-per-channel",
     lambda: L.InstanceNormalization(np.ones(12), np.zeros(12)).forward(np.ones((2, 3, 2, 2))),
     ValueError, "gamma must have shape (3,), got (12,)"),
    ("layernorm-gamma-shape", lambda: L.LayerNormalization(np.ones(4), np.zeros(4)).forward(X),
     ValueError, "gamma must have shape (3,), got (4,)"),
    # the message names x's width too: a wrong x is as likely as a wrong gamma
    ("layernorm-x-width", lambda: L.LayerNormalization(ONES, ZEROS).forward(np.ones((2, 4))),
     ValueError, "gamma must have shape (4,), got (3,): one value for each of the 4 "
                 "features (channels) the layer normalizes in x"),
    ("layernorm-beta-shape", lambda: L.LayerNormalization(ONES, np.zeros(2)).forward(X),
     ValueError, "beta must have shape (3,), got (2,)"),
    ("layernorm-1d", lambda: L.LayerNormalization(ONES, ZEROS).forward(np.ones(3)), ValueError,
     "x must have at least 2 dimension(s), got shape (3,)"),
    ("layernorm-int", lambda: L.LayerNormalization(ONES, ZEROS).forward(np.ones((2, 3), int)),
     TypeError, "x must be a float32 or float64 array, got dtype int64"),
    ("layernorm-eps", lambda: L.LayerNormalization(ONES, ZEROS, eps=0), ValueError,
     "eps must be > 0, got 0.0"),
    ("layernorm-dout-shape",
     lambda: forwarded(L.LayerNormalization(ONES, ZEROS), X).backward(np.ones((2, 4))),
     ValueError, "dout must have shape (2, 3), got (2, 4)"),
    ("layernorm-backward-first", lambda: L.LayerNormalization(ONES, ZEROS).backward(X),
     RuntimeError, "backward called before a training forward"),
    ("switchable-one-sample", lambda: L.SwitchableNormalization(ONES, ZEROS).forward(X[:1]),
     ValueError, "SwitchableNormalization in training needs at least 2 values per feature "
                 "over the batch"),
    ("net-switchable-one-sample",
     lambda: net(normalization="switchable").train_step(X[:1], T[:1], O.SGD()), ValueError,
     ("SwitchableNormalization in training needs at least 2 values per feature over the "
      "batch (batch statistics of one value normalize it to 0), got x of shape (1, 3)")),
    ("switchable-one-value-4d", lambda: L.SwitchableNormalization(ONES, ZEROS).forward(
        np.ones((1, 3, 1, 1))), ValueError, "got x of shape (1, 3, 1, 1)"),
    ("switchable-logits-2d",
     lambda: L.SwitchableNormalization(ONES, ZEROS, mean_weight=np.zeros(3),
                                       var_weight=np.zeros(3)).forward(X),
     ValueError, "mean_weight must have shape (2,), got (3,)"),
    ("switchable-momentum", lambda: L.SwitchableNormalization(ONES, ZEROS, momentum=2),
     ValueError, "momentum must be <= 1, got 2.0"),
    ("switchable-backward-after-inference",
     lambda: forwarded(L.SwitchableNormalization(ONES, ZEROS), X, False).backward(X),
     RuntimeError, "backward called before a training forward"),
    # attributes set after construction are checked as the constructor checks them
    ("batchnorm-momentum-set-later",
     lambda: renamed(batchnorm(), momentum=5).forward(np.ones((2, 3))), ValueError,
     "momentum must be <= 1, got 5.0"),
    ("layernorm-eps-set-later",
     lambda: renamed(L.LayerNormalization(ONES, ZEROS), eps="a").forward(X), TypeError,
     "eps must be a finite real number, got 'a'"),
    ("groupnorm-groups-set-later",
     lambda: renamed(L.GroupNormalization(ONES, ZEROS, 3), groups=0).forward(X), ValueError,
     "groups must be a positive integer, got 0"),
    ("switchable-eps-set-later",
     lambda: renamed(L.SwitchableNormalization(ONES, ZEROS), eps=-1.0).forward(X), ValueError,
     "eps must be > 0, got -1.0"),
    # backward is the last training forward's (the book's), whatever inference ran since
    ("batchnorm-backward-after-training-then-inference",
     lambda: forwarded(forwarded(batchnorm(), X), X[:1], False).backward(X[:1]), ValueError,
     "dout must have the shape of the last training forward's output, (2, 3), got (1, 3)"),
    ("switchable-backward-after-training-then-inference",
     lambda: forwarded(forwarded(L.SwitchableNormalization(ONES, ZEROS), X), X[:1],
                       False).backward(X[:1]),
     ValueError, "dout must have shape (2, 3), got (1, 3)"),
    ("switchable-logits-4d-after-2d",
     lambda: forwarded(L.SwitchableNormalization(ONES, ZEROS), X).forward(np.ones((2, 3, 2, 2))),
     ValueError, "mean_weight must have shape (3,), got (2,): one value for each of the 3 "
                 "statistics (instance, layer, batch) mixed for this input"),
    ("weightnorm-zero-column",
     lambda: L.WeightNormalization(np.zeros((3, 4)), np.ones(4), np.zeros(4)).forward(X),
     ValueError, "v has an all-zero column (output unit 0): g * v / ||v|| is undefined"),
    ("weightnorm-backward-after-failed-forward",
     lambda: weight_norm_refused_pass().backward(np.ones((2, 4))), RuntimeError,
     "backward called before forward (or after a forward that raised)"),
    ("weightnorm-v-reshaped",
     lambda: weight_norm_reshaped_v().backward(np.ones((2, 4))), ValueError,
     "v changed since forward: it was (3, 4) float64, it is (3, 5) float64"),
    ("weightnorm-v-1d", lambda: L.WeightNormalization(ONES, np.ones(4), np.zeros(4)).forward(X),
     TypeError, "v must be a 2-D float32 or float64 array, got 1-D float64"),
    ("weightnorm-g-shape",
     lambda: L.WeightNormalization(np.ones((3, 4)), ONES, np.zeros(4)).forward(X),
     ValueError, "g must have shape (4,), got (3,)"),
    ("weightnorm-features",
     lambda: L.WeightNormalization(np.ones((5, 4)), np.ones(4), np.zeros(4)).forward(X),
     ValueError, ("x has 3 features per sample (shape (2, 3): samples along the first "
                  "axis) but W expects 5")),
    # --- optimizers
    ("unknown-optimizer", lambda: O.make_optimizer("lamb"), ValueError,
     ("unknown optimizer 'lamb'; choose one of: sgd, momentum, nesterov, adagrad, rmsprop, "
      "adam, adamw")),
    ("trainer-unknown-optimizer",
     lambda: Trainer(net(), X, T, X, T, optimizer="LBFGS", verbose=False), ValueError,
     "unknown optimizer 'LBFGS'"),
    # What the book's NumPy update rejects (test_optimizers.BOOK_INPUTS: the same type)
    ("optimizer-int-param", lambda: O.SGD().update({"W": np.ones(3, int)}, {"W": np.ones(3)}),
     TypeError, "Cannot cast ufunc 'subtract' output from dtype('float64') to dtype('int64')"),
    ("optimizer-list-grad", lambda: O.Adam().update({"W": np.ones(2)}, {"W": [1.0, 2.0]}),
     TypeError, "unsupported operand type(s) for ** or pow(): 'list' and 'int'"),
    # --- nets
    ("net-activation", lambda: N.MultiLayerNet(3, [4], 3, activation="softplus"), ValueError,
     "activation must be one of ('relu', 'sigmoid', 'tanh'), got 'softplus'"),
    ("net-weight-init-name", lambda: N.MultiLayerNet(3, [4], 3, weight_init_std="glorot"),
     ValueError, "weight_init_std must be a finite number >= 0 or one of"),
    ("net-weight-init-negative", lambda: N.MultiLayerNet(3, [4], 3, weight_init_std=-0.01),
     ValueError, "got -0.01"),
    ("net-weight-init-zero-weight-norm",
     lambda: N.MultiLayerNetExtend(3, [4], 3, weight_init_std=0, normalization="weight"),
     ValueError, ("weight_init_std=0 with weight normalization: v1 has a column whose norm "
                  "is 0 in float32, with no direction")),
    ("net-weight-init-underflow-weight-norm",
     lambda: N.MultiLayerNetExtend(3, [4], 3, weight_init_std=1e-30, normalization="weight"),
     ValueError, "weight_init_std=1e-30 with weight normalization: v1 has a column whose"),
    ("net-weight-init-overflow-float32",
     lambda: N.MultiLayerNet(3, [4], 3, weight_init_std=1e39, seed=0), ValueError,
     "weight_init_std=1e+39 gives W1 weights beyond the range of float32 (largest 3.4e+38)"),
    ("net-weight-init-overflow-float64",
     lambda: N.MultiLayerNetExtend(3, [100], 3, weight_init_std=1e308, dtype=np.float64,
                                  seed=0),
     ValueError, "gives W1 weights beyond the range of float64"),
    ("net-weight-init-overflow-weight-norm",
     lambda: N.MultiLayerNetExtend(3, [4], 3, weight_init_std=1e20, normalization="weight"),
     ValueError, ("weight_init_std=1e+20 with weight normalization: the norm of a column of v1 "
                  "overflows float32")),
    ("net-weight-init-nan", lambda: N.MultiLayerNetExtend(3, [4], 3, weight_init_std=float("nan")),
     ValueError, "weight_init_std must be a finite number >= 0"),
    ("net-weight-init-huge-int", lambda: N.MultiLayerNet(3, [4], 3, weight_init_std=10**400),
     ValueError, "weight_init_std must be a finite number >= 0"),
    ("net-dtype-int", lambda: N.MultiLayerNet(3, [4], 3, dtype=np.int32), TypeError,
     "dtype must be float32 or float64, got int32"),
    ("net-dtype-float16", lambda: N.MultiLayerNetExtend(3, [4], 3, dtype="float16"), TypeError,
     "dtype must be float32 or float64, got float16"),
    ("net-dtype-name", lambda: N.MultiLayerNet(3, [4], 3, dtype="banana"), TypeError,
     "banana"),
    ("net-hidden-size", lambda: N.MultiLayerNet(3, [4, 0], 3), ValueError,
     "hidden size must be a positive integer, got 0"),
    ("net-input-size", lambda: N.MultiLayerNet(2.5, [4], 3), ValueError,
     "input_size must be a positive integer, got 2.5"),
    # the arena's layout on its own: a size of -1 with negative offsets, 4.5 taken as 4
    ("layout-input-size", lambda: NetLayout(-4, [3], 2), ValueError,
     "input_size must be a positive integer, got -4"),
    ("layout-fractional-size", lambda: NetLayout(4.5, [3], 2), ValueError,
     "input_size must be a positive integer, got 4.5"),
    ("layout-hidden-size", lambda: NetLayout(4, [3, 0], 2), ValueError,
     "hidden size must be a positive integer, got 0"),
    ("net-weight-decay", lambda: N.MultiLayerNet(3, [4], 3, weight_decay_lambda=-1), ValueError,
     "weight_decay_lambda must be >= 0, got -1.0"),
    ("net-weight-decay-set-later",
     lambda: setattr(N.MultiLayerNet(3, [4], 3), "weight_decay_lambda", -1), ValueError,
     "weight_decay_lambda must be >= 0, got -1.0"),
    ("net-weight-decay-nan-set-later",
     lambda: setattr(N.MultiLayerNetExtend(3, [4], 3), "weight_decay_lambda", np.nan),
     ValueError, "weight_decay_lambda must be a finite real number, got nan"),
    ("net-dropout-ratio-conflict",
     lambda: N.MultiLayerNetExtend(3, [4], 3, dropout_ration=0.3, dropout_ratio=0.4), ValueError,
     "disagree"),
    ("net-normalization-unknown", lambda: net(normalization="batchnorm"), ValueError,
     "normalization must be None or one of ('batch', 'layer', 'group', 'instance', "
     "'weight', 'switchable'), got 'batchnorm'"),
    ("net-normalization-conflict", lambda: net(use_batchnorm=True, normalization="layer"),
     ValueError, "use_batchnorm=True and normalization='layer' conflict; give only "
                 "normalization"),
    ("net-groups-divide", lambda: net(normalization="group", groups=3), ValueError,
     "groups=3 does not divide the hidden size 4"),
    ("net-groups-zero", lambda: net(normalization="instance", groups=0), ValueError,
     "groups must be a positive integer, got 0"),
    ("net-groups-of-one", lambda: net(normalization="instance", groups=4), ValueError,
     "instance norm of the hidden size 4 in 4 groups normalizes groups of one unit "
     "each to 0"),
    ("net-layer-norm-of-one", lambda: N.MultiLayerNetExtend(3, [4, 1], 3, normalization="layer"),
     ValueError, "layer norm of a hidden layer of 1 unit normalizes it to 0"),
    ("save-unknown-normalization",
     lambda: save_net(renamed(net(), normalization="spectral"), "never-written.npz"),
     ValueError, "the fastnet-mlp formats hold the normalizations none, batch, layer, group, "
                 "instance, weight, switchable, not 'spectral'"),
    ("train-step-features", lambda: train_step(np.ones((2, 5)), T), ValueError,
     "x has 5 features per sample, the net expects 3"),
    ("train-step-labels", lambda: train_step(X, np.array([0, 7])), ValueError,
     "class indices t must lie in [0, 3)"),
    ("train-step-float-labels", lambda: train_step(X, T.astype(float)), TypeError,
     "class indices t must be integers"),
    ("net-x-past-float32", lambda: net().predict(np.full((2, 3), 1e39)), ValueError,
     ("x has values beyond the range of float32 (largest 3.4e+38); scale it, or use a "
      "float64 net")),
    ("train-step-x-past-float32", lambda: train_step(np.full((2, 3), -1e39), T), ValueError,
     "x has values beyond the range of float32"),
    ("net-predict-1d-x", lambda: net().predict(np.ones(3)), ValueError,
     ("x must have one row per sample, shape (N, 3) or (N, ...), got shape (3,) (one "
      "sample: x[None])")),
    ("train-step-complex-x", lambda: train_step(np.ones((2, 3), complex), T), TypeError,
     "x must hold real numbers, got dtype complex128"),
    ("train-step-empty", lambda: train_step(np.ones((0, 3)), T[:0]), ValueError, "x is empty"),
    ("net-loss-one-hot", lambda: net().loss(X, np.array([[1, 0, 1], [0, 1, 0]])), ValueError,
     "one-hot targets t must hold a single 1"),
    # accuracy checks t as loss does (it broadcast a short t, and read any 2-D t by argmax)
    ("net-accuracy-labels", lambda: net().accuracy(X, np.array([0, 7])), ValueError,
     "class indices t must lie in [0, 3)"),
    ("net-accuracy-short-t", lambda: net().accuracy(X, np.zeros(1, int)), ValueError,
     "t must be class indices of shape (2,) or one-hot of shape (2, 3), got shape (1,)"),
    ("net-accuracy-float-labels", lambda: net().accuracy(X, T.astype(float)), TypeError,
     "class indices t must be integers"),
    # hyperparameters set between steps are checked as the constructor checks them
    ("sgd-lr-set-to-none",
     lambda: renamed(O.SGD(), lr=None).update({"w": np.zeros(3)}, {"w": np.ones(3)}),
     TypeError, "Invalid learning rate: None (must be a real number)"),
    ("adam-lr-set-to-nan",
     lambda: renamed(O.Adam(), lr=float("nan")).update({"w": np.zeros(3)}, {"w": np.ones(3)}),
     ValueError, "Invalid learning rate: nan (must be a finite number >= 0)"),
    ("train-step-sgd-lr-negative",
     lambda: net().train_step(X, T, renamed(O.SGD(), lr=-1.0)), ValueError,
     "Invalid learning rate: -1.0 (must be a finite number >= 0)"),
    ("make-optimizer-unknown-argument",  # named SGDArgs.__init__, a private base
     lambda: O.make_optimizer("sgd", momentum=0.9), TypeError,
     "SGD takes lr: got an unexpected keyword argument 'momentum'"),
    ("trainer-optimizer-param-unknown",
     lambda: Trainer(net(), X, T, X, T, optimizer="Adam", optimizer_param={"b1": 0.9},
                     verbose=False), TypeError,
     "Adam takes lr, beta1, beta2: got an unexpected keyword argument 'b1'"),
    ("adam-iter-negative",  # a math domain error or a ZeroDivisionError before
     lambda: renamed(O.Adam(), iter=-1).update({"w": np.zeros(3)}, {"w": np.ones(3)}),
     ValueError, "Invalid iter: -1 (Adam's step count, must be an int >= 0)"),
    ("adamw-iter-str", lambda: net().train_step(X, T, renamed(O.AdamW(), iter="3")),
     TypeError, "Invalid iter: '3' (Adam's step count, must be an int >= 0)"),
    ("sgd-lr-overflows-float32", lambda: net().train_step(X.astype(np.float32), T, O.SGD(1e308)),
     ValueError, "SGD's lr=1e+308 does not fit float32"),
    ("sgd-weight-decay-overflows-float32",
     lambda: net(weight_decay_lambda=1e39).train_step(X.astype(np.float32), T, O.SGD()),
     ValueError, "the weight decay (weight_decay_lambda)=1e+39 does not fit float32"),
    ("adam-step-size-overflows-float32",
     lambda: net().train_step(X, T, O.Adam(1e37, beta1=0.99, beta2=0.0)), ValueError,
     ("Adam's step size lr * sqrt(1 - beta2**iter) / (1 - beta1**iter) is 1e+39 with "
      "lr=1e+37, beta1=0.99, beta2=0.0, iter=1: it does not fit float32")),
    ("nesterov-step-overflows-float32",
     lambda: O.Nesterov(3e38, momentum=0.5).update({"w": np.zeros(3, np.float32)},
                                                   {"w": np.ones(3, np.float32)}),
     ValueError, "Nesterov's (1 + momentum) * lr is 4.5e+38 with lr=3e+38, momentum=0.5"),
    ("adamw-decay-past-float32",
     lambda: O.AdamW(weight_decay=1e308).update({"w": np.zeros(3, np.float32)},
                                                {"w": np.ones(3, np.float32)}),
     ValueError, "AdamW's weight_decay=1e+308 does not fit float32 (a value overflows to inf)"),
    ("adam-lr-overflows-float32",
     lambda: O.Adam(1e308).update({"w": np.zeros(3, np.float32)}, {"w": np.ones(3, np.float32)}),
     ValueError, "Adam's lr=1e+308 does not fit float32"),
    ("trainer-epochs-str",
     lambda: Trainer(net(), X, T, X, T, epochs="2", verbose=False), TypeError,
     "epochs must be a number, got '2'"),
    ("trainer-epochs-negative",
     lambda: Trainer(net(), X, T, X, T, epochs=-1, verbose=False), ValueError,
     "epochs must be a finite number >= 0, got -1"),
    ("trainer-empty-test", lambda: Trainer(net(), X, T, X[:0], T[:0], verbose=False),
     ValueError, "x_test is empty"),
    ("net-batchnorm-momentum-set-later",
     lambda: renamed_layer(net(use_batchnorm=True), "BatchNorm1", momentum=float("nan")
                           ).gradient(X, T), ValueError,
     "momentum must be a finite real number, got nan"),
    ("net-dropout-ratio-set-later",
     lambda: renamed_layer(net(use_dropout=True), "Dropout1", dropout_ratio=1.7
                           ).train_step(X, T, O.SGD()), ValueError,
     "dropout_ratio must be <= 1, got 1.7"),
    ("momentum-str", lambda: O.Momentum(momentum="a"), TypeError,
     "Invalid momentum: 'a' (must be a real number)"),
    ("update-read-only-param",
     lambda: O.SGD().update({"w": np.zeros(3), "r": read_only(np.zeros(3))},
                            {"w": np.ones(3), "r": np.ones(3)}),
     ValueError, "params['r'] is read-only: update writes each array parameter in place"),
    ("train-step-no-optimizer", lambda: net().train_step(X, T, None), TypeError,
     "optimizer must be a fastnet.optimizers instance or an object with the book's "
     "update(params, grads), got None"),
    # complex values would lose their imaginary part in the conversion to float
    ("net-predict-complex", lambda: net().predict(X * (1 + 1j)), TypeError,
     "x must hold real numbers, got dtype complex128"),
    ("net-gradient-complex", lambda: net().gradient(X.astype(complex), T), TypeError,
     "x must hold real numbers, got dtype complex128"),
    ("layernorm-complex-gamma",
     lambda: L.LayerNormalization(ONES * 1j, ZEROS).forward(X), TypeError,
     "gamma must hold real numbers, got dtype complex128"),
    ("net-weight-decay-str", lambda: net(weight_decay_lambda="a"), TypeError,
     "weight_decay_lambda must be a finite real number, got 'a'"),
    ("net-dropout-ratio-str", lambda: net(use_dropout=True, dropout_ratio="a"), ValueError,
     "dropout_ratio must be in [0, 1], got 'a'"),
    ("schedule-huge-t", lambda: StepDecay(3)(10**400), ValueError,
     "t must be a finite real number, got 1000"),
    ("trainer-epochs-past-float",
     lambda: Trainer(net(), X, T, X, T, epochs=1e308, mini_batch_size=1, verbose=False),
     ValueError, "epochs=1e+308 of "),
    ("trainer-batch-size-float",
     lambda: Trainer(net(), X, T, X, T, mini_batch_size=10.5, verbose=False), TypeError,
     "mini_batch_size must be an int, got 10.5"),
    ("trainer-batch-size", lambda: Trainer(net(), X, T, X, T, mini_batch_size=0, verbose=False),
     ValueError, "mini_batch_size must be >= 1, got 0"),
]


@pytest.mark.parametrize("call, error, message",
                         [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUTS])
def test_bad_input_raises(call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_case_ids_are_unique():
    ids = [case[0] for case in BAD_INPUTS]
    assert len(ids) == len(set(ids))


# ------------------------------------------------------------------ NaN and Inf

def poison(inputs):
    """The inputs with a NaN, a +inf and a -inf in the first sample of every pass."""
    xs = []
    for x in inputs.xs:
        x = x.copy()
        flat = x.reshape(x.shape[0], -1)
        for j, value in enumerate([np.nan, np.inf, -np.inf][:flat.shape[1]]):
            flat[0, j] = value
        xs.append(x)
    return type(inputs)(xs, inputs.douts, inputs.targets, inputs.kwargs)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference's invalid values
@pytest.mark.parametrize("case", LAYERS)
def test_non_finite_inputs_propagate_like_the_reference(case):
    inputs = poison(make_inputs(case, np.float64, n=5, d=4, seed=6))
    desired = layer_trace(case, reference_layers, inputs)
    actual = layer_trace(case, L, inputs)
    assert not np.isfinite(desired["forward@0"]).all()
    assert actual.keys() == desired.keys()
    for name in desired:
        # Non-finite where, and only where, the reference is; which non-finite value
        # may differ (a batch mean over +inf: the reference says inf, fastnet's shifted
        # sums may say NaN).
        finite = np.isfinite(desired[name])
        np.testing.assert_array_equal(np.isfinite(actual[name]), finite, err_msg=name)
        assert_traces_close({name: np.where(finite, actual[name], 0)},
                            {name: np.where(finite, desired[name], 0)}, np.float64)


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_or_inf_logits_give_a_nan_loss(value, dtype):
    layer = L.SoftmaxWithLoss()
    x = np.array([[value, 1.0, 2.0], [0.5, 0.0, 1.0]], dtype)
    loss = layer.forward(x, T)
    assert np.isnan(loss)
    dx = layer.backward()
    assert np.isnan(dx[0]).all() and np.isfinite(dx[1]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_minus_inf_logit_is_probability_zero(dtype):
    """-inf is a legitimate logit: probability 0, and the loss is -log(0 + 1e-7)."""
    x = np.array([[-np.inf, 1.0, 2.0], [0.5, 0.0, 1.0]], dtype)
    fast, ref = L.SoftmaxWithLoss(), reference_layers.SoftmaxWithLoss()
    assert fast.forward(x, T) == pytest.approx(ref.forward(x, T), rel=1e-6)
    assert fast.y[0, 0] == 0
    np.testing.assert_allclose(fast.backward(), ref.backward(), rtol=1e-6)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("kwargs", [{}, {"use_batchnorm": True, "use_dropout": True}],
                         ids=["plain", "bn-dropout"])
def test_non_finite_batches_give_a_nan_loss_and_never_crash(kwargs, value):
    x = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    x[2, 1] = value
    t = np.array([0, 1, 2, 0, 1, 2])
    book = net(**kwargs)
    assert np.isnan(book.loss(x, t))
    assert all(g.shape == book.params[k].shape for k, g in book.gradient(x, t).items())
    fused = net(**kwargs)
    assert np.isnan(fused.train_step(x, t, O.Adam()))
    assert np.isnan(fused.predict(x)).any()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference's overflow
@pytest.mark.parametrize("kwargs", [{}, {"use_dropout": True, "dropout_ratio": 0.0}],
                         ids=["plain", "dropout"])
def test_relu_of_minus_inf_is_zero_as_in_the_book(kwargs):
    """A pre-activation that overflows to -inf (a diverged float32 run) is 0 after ReLU,
    as in the book's ``x[x <= 0] = 0``, in the fused passes too (not ``-inf * 0``, NaN)."""
    from fastnet.reference import nets as reference_nets

    x, t = np.ones((2, 2), np.float32), np.array([0, 1])
    fast, ref = (module.MultiLayerNetExtend(2, [3], 2, seed=0, **kwargs)
                 for module in (N, reference_nets))
    for model in (fast, ref):
        model.params["W1"][:, 0] = -3e38  # x @ W1 overflows to -inf in column 0
    predicted = fast.predict(x)
    assert np.isfinite(predicted).all()
    np.testing.assert_allclose(predicted, ref.predict(x), rtol=1e-6)
    assert fast.accuracy(x, t) == ref.accuracy(x, t)
    fast_grads, ref_grads = fast.gradient(x, t), ref.gradient(x, t)
    for key in ("b1", "W2", "b2"):
        np.testing.assert_allclose(fast_grads[key], ref_grads[key], rtol=1e-5, err_msg=key)
    assert np.isfinite(fast.train_step(x, t, O.SGD(0.1)))


def test_the_trainer_takes_a_fractional_epoch_count_as_the_book_does():
    trainer = Trainer(net(), X, T, X, T, epochs=2.5, mini_batch_size=1, verbose=False)
    assert trainer.max_iter == int(2.5 * trainer.iter_per_epoch)


@pytest.mark.parametrize("module", [N, pytest.importorskip("fastnet.reference.nets")],
                         ids=["fastnet", "reference"])
@pytest.mark.parametrize("hidden, what", [
    ([200_000], "a net of 1 hidden layer and 159,000,010 float32 parameters needs 2.9 GiB"),
    ([10] * 200_000, ("a net of 200,000 hidden layers and 22,007,850 float32 parameters "
                      "needs 1.8 GiB"))])
def test_a_net_larger_than_the_machines_memory_is_a_memory_error(module, hidden, what,
                                                                 monkeypatch):
    """Linux grants the allocation and kills the process that writes it (SIGKILL, no
    message): a size that cannot fit is refused before anything is allocated."""
    from fastnet import _validate

    monkeypatch.setattr(_validate, "physical_memory", lambda: 2**30)
    with pytest.raises(MemoryError, match=re.escape(
            f"{what}, more than this machine's 1.0 GiB of memory")):
        module.MultiLayerNet(784, hidden, 10)


@pytest.mark.parametrize("pages", [-1, 0], ids=["indeterminate", "zero"])
def test_no_memory_check_where_the_system_does_not_say(pages, monkeypatch):
    """sysconf answers -1 for a value it cannot determine: every net was refused, as
    needing more than '-0.0 GiB'."""
    from fastnet import _validate

    real = _validate.os.sysconf
    monkeypatch.setattr(_validate.os, "sysconf", lambda name: pages if name == "SC_PHYS_PAGES"
                        else real(name))
    assert _validate.physical_memory() is None
    N.MultiLayerNet(784, [100], 10)


def test_a_population_larger_than_the_machines_memory_is_a_memory_error(monkeypatch):
    from fastnet import _validate
    from fastnet.population import Population

    monkeypatch.setattr(_validate, "physical_memory", lambda: 2**30)
    with pytest.raises(MemoryError, match=re.escape(
            "a population of 100 members of 795,010 float32 parameters (their parameters, "
            "gradients and Adam state) needs 1.2 GiB")):
        Population(784, [1000], 10, [{"seed": i} for i in range(100)], optimizer="Adam")
