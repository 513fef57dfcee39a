"""The one table of cases behind the layer, optimizer and net tests.

Every layer case names a class that exists in both ``fastnet.layers`` and
``fastnet.reference.layers``, how to build it, which forward passes to run
(``train_flg`` per pass) and which attributes to compare after each pass.  Running a
case produces a *trace*: a dict ``"name@pass" -> array`` (``forward@0``, ``dx@0``,
``dW@0``, ``running_mean@2``, ...).  The same case is run three ways, compared trace
to trace:

* the reference class (the oracle),
* the fastnet class,
* the compiled kernels called directly (``case.kernels``), serial or parallel build.

Optimizer cases work the same way over dicts of parameters and per-key state.
Tolerances: float64 tight, float32 loose (``TOLERANCES``), ``atol`` scaled by the
magnitude of the expected array so one table fits values of any size.
"""
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

from fastnet import layers as fast_layers
from fastnet.kernels import activations, affine, batchnorm, dropout, normalization, softmax
from fastnet.kernels import optimizers as optimizer_kernels
from fastnet.reference.random import stream_key

# --------------------------------------------------------------------- tolerances


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float


TOLERANCES = {
    np.dtype(np.float32): Tolerance(rtol=1e-4, atol=1e-5),
    np.dtype(np.float64): Tolerance(rtol=1e-10, atol=1e-12),
}
DTYPES = [pytest.param(np.dtype(np.float32), id="float32"),
          pytest.param(np.dtype(np.float64), id="float64")]


def assert_close(actual, desired, dtype, name="", check_dtype=True):
    """``actual`` equals ``desired`` within the tolerance of ``dtype``.

    ``atol`` is scaled by ``max(1, max|desired|)``; boolean and integer arrays must be
    equal.  Unless told otherwise, ``actual`` must also have ``desired``'s dtype.
    """
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.shape == desired.shape, f"{name}: shape {actual.shape} != {desired.shape}"
    if check_dtype:
        assert actual.dtype == desired.dtype, f"{name}: dtype {actual.dtype} != {desired.dtype}"
    if desired.dtype.kind in "biu":
        np.testing.assert_array_equal(actual, desired, err_msg=name)
        return
    tol = TOLERANCES[np.dtype(dtype)]
    finite = desired[np.isfinite(desired)]
    scale = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
    np.testing.assert_allclose(actual, desired, rtol=tol.rtol, atol=tol.atol * scale,
                               err_msg=name)


def assert_traces_close(actual, desired, dtype, check_dtype=True):
    """Every entry of the trace ``actual`` is close to the same entry of ``desired``."""
    missing = set(actual) - set(desired)
    assert not missing, f"entries not in the reference trace: {sorted(missing)}"
    assert actual, "empty trace"
    for name in sorted(actual):
        assert_close(actual[name], desired[name], dtype, name, check_dtype)


def assert_bitwise_equal(actual, desired, name=""):
    """The same shape, dtype and bytes (so -0.0 != 0.0 and NaN payloads count)."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.shape == desired.shape and actual.dtype == desired.dtype, name
    if actual.tobytes() != desired.tobytes():
        differ = np.flatnonzero(actual.reshape(-1).view(np.uint8 if actual.dtype == bool else
                                                        f"u{actual.dtype.itemsize}")
                                != desired.reshape(-1).view(np.uint8 if desired.dtype == bool else
                                                            f"u{desired.dtype.itemsize}"))
        raise AssertionError(f"{name}: {differ.size} elements differ bitwise, first at flat "
                             f"index {differ[:5]}: {actual.reshape(-1)[differ[:5]]} vs "
                             f"{desired.reshape(-1)[differ[:5]]}")


# --------------------------------------------------------------------- layers


@dataclass(frozen=True)
class LayerInputs:
    """Everything one run of a layer case consumes; both sides get the same values."""

    xs: list          # one input per forward pass
    douts: list       # one upstream gradient per forward pass (scalars for the loss)
    targets: list     # SoftmaxWithLoss's t per pass, else Nones
    kwargs: dict      # constructor arguments (arrays are copied for each side)


@dataclass(frozen=True)
class LayerCase:
    id: str
    layer: str                      # class name in fastnet.layers and reference.layers
    shape: tuple = ("N", "D")       # input shape: "N" the batch, "D" the width
    passes: tuple = (None,)         # train_flg of each forward pass (None: not passed)
    attrs: tuple = ()               # attributes compared after every pass
    init: Callable = None           # (rng, dtype, features) -> constructor kwargs
    out_width: int = None           # output (N, out_width); None: shaped like the input
    target: str = None              # "labels" or "onehot" (SoftmaxWithLoss)
    kernels: Callable = None        # (build, inputs, case) -> trace, calling kernels directly
    parallel: bool = True           # the kernels have a parallel build
    exact: bool = False             # no rounding anywhere: fastnet equals the reference bitwise
    min_batch: int = 1              # fastnet's training forward refuses smaller batches
    min_group: int = 1              # ... and groups of fewer values (one per sample here)
    # float32 compared with the reference run in float64, rounded: a near-constant group
    # (var << eps) amplifies the reference's own float32 rounding by 1/std = 1000, beyond
    # the tolerance, while fastnet's kernels sum in float64 and stay close to the truth.
    oracle_float64: bool = False
    grad_rtol: float = 1e-6         # backward vs central differences, float64

    def input_shape(self, n, d):
        return tuple(n if s == "N" else d if s == "D" else s for s in self.shape)

    def make(self, module, kwargs):
        """The layer from ``module``, built from private copies of the arrays."""
        return getattr(module, self.layer)(
            **{k: v.copy() if isinstance(v, np.ndarray) else v for k, v in kwargs.items()})


def make_inputs(case, dtype, n=8, d=7, seed=0):
    """Inputs for ``case`` at batch ``n`` and width ``d``, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    shape = case.input_shape(n, d)
    features = math.prod(shape[1:])
    kwargs = case.init(rng, dtype, features) if case.init else {}
    out_shape = (n, case.out_width) if case.out_width else shape
    xs, douts, targets = [], [], []
    for _ in case.passes:
        # Offset and scaled so batch statistics and running statistics are not trivial.
        xs.append((rng.standard_normal(shape) * 1.5 + 0.3).astype(dtype))
        if case.target:
            labels = rng.integers(0, shape[1], size=n)
            targets.append(labels if case.target == "labels"
                           else np.eye(shape[1], dtype=dtype)[labels])
            douts.append(float(rng.uniform(0.5, 2.0)))
        else:
            targets.append(None)
            douts.append(rng.standard_normal(out_shape).astype(dtype))
    return LayerInputs(xs, douts, targets, kwargs)


def forward(layer, case, x, t, flag):
    args = (x,) if t is None else (x, t)
    return layer.forward(*args) if flag is None else layer.forward(*args, train_flg=flag)


def layer_trace(case, module, inputs):
    """Run the passes of ``case`` on ``module``'s class; backward after every pass that
    is not an inference pass.  Returns the trace (copies, so later passes cannot change
    earlier entries)."""
    layer = case.make(module, inputs.kwargs)
    trace = {}
    for k, flag in enumerate(case.passes):
        trace[f"forward@{k}"] = np.array(forward(layer, case, inputs.xs[k], inputs.targets[k], flag))
        if flag is not False:
            trace[f"dx@{k}"] = np.array(layer.backward(inputs.douts[k]))
        for attr in case.attrs:
            trace[f"{attr}@{k}"] = np.array(getattr(layer, attr))
    return trace


def reference_trace(case, module, inputs):
    """``layer_trace`` of the reference ``module``; for a case with ``oracle_float64``,
    of the reference in float64 on the same values, rounded to the inputs' dtype."""
    dtype = inputs.xs[0].dtype
    if not case.oracle_float64 or dtype == np.float64:
        return layer_trace(case, module, inputs)

    def wide(v):
        return v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype == dtype else v

    wide_inputs = LayerInputs([wide(x) for x in inputs.xs], [wide(d) for d in inputs.douts],
                              inputs.targets, {k: wide(v) for k, v in inputs.kwargs.items()})
    return {k: v.astype(dtype) if v.dtype == np.float64 else v
            for k, v in layer_trace(case, module, wide_inputs).items()}


def kernel_trace(case, build, inputs):
    """The trace of ``case`` on its kernels called directly (``build`` picks the serial
    kernel or its parallel build), limited to what the class trace records."""
    trace = case.kernels(build, inputs, case)
    return {k: v for k, v in trace.items() if k.split("@")[0] in ("forward", "dx") + case.attrs}


# Kernel legs: the passes of a case on the compiled kernels, called directly.
# ``build`` picks the serial kernel (``lambda k: k``) or its parallel build.

def _relu_kernels(build, inputs, case):
    trace = {}
    for k, (x, dout) in enumerate(zip(inputs.xs, inputs.douts)):
        out, mask, dx = np.empty_like(x), np.empty(x.shape, bool), np.empty_like(dout)
        build(activations.relu_forward)(x.reshape(-1), out.reshape(-1), mask.reshape(-1))
        build(activations.relu_backward)(dout.reshape(-1), mask.reshape(-1), dx.reshape(-1))
        trace.update({f"forward@{k}": out, f"dx@{k}": dx, f"mask@{k}": mask})
    return trace


def _activation_kernels(forward, backward, build, inputs, case):
    trace = {}
    for k, (x, dout) in enumerate(zip(inputs.xs, inputs.douts)):
        out, dx = np.empty_like(x), np.empty_like(dout)
        build(forward)(x.reshape(-1), out.reshape(-1))
        build(backward)(dout.reshape(-1), out.reshape(-1), dx.reshape(-1))
        trace.update({f"forward@{k}": out, f"dx@{k}": dx, f"out@{k}": out})
    return trace


def _affine_kernels(build, inputs, case):
    W, b = inputs.kwargs["W"], inputs.kwargs["b"]
    trace = {}
    for k, (x, dout) in enumerate(zip(inputs.xs, inputs.douts)):
        x2 = x.reshape(x.shape[0], -1)
        out = np.empty((x2.shape[0], W.shape[1]), W.dtype)
        affine.affine_forward(x2, W, b, out)
        dW, db, dx = np.empty_like(W), np.empty_like(b), np.empty_like(x2)
        affine.affine_backward(dout, x2, W, dW, db, dx)
        trace.update({f"forward@{k}": out, f"dx@{k}": dx.reshape(x.shape), f"dW@{k}": dW,
                      f"db@{k}": db})
    return trace


def _softmax_kernels(build, inputs, case):
    trace = {}
    for k, (x, t, dout) in enumerate(zip(inputs.xs, inputs.targets, inputs.douts)):
        labels = np.ascontiguousarray(t if t.ndim == 1 else t.argmax(axis=1), np.int64)
        y, dx = np.empty_like(x), np.empty_like(x)
        loss = softmax.softmax_cross_entropy(x, labels, y)
        softmax.cross_entropy_grad(y, labels, dout / x.shape[0], dx)
        trace.update({f"forward@{k}": np.array(loss), f"loss@{k}": np.array(loss), f"y@{k}": y,
                      f"dx@{k}": dx})
    return trace


def _dropout_kernels(build, inputs, case):
    seed, ratio, step = inputs.kwargs["seed"], inputs.kwargs["dropout_ratio"], 0
    inverted = inputs.kwargs.get("inverted", False)
    trace = {}
    for k, (x, dout, flag) in enumerate(zip(inputs.xs, inputs.douts, case.passes)):
        if flag is False:
            continue
        out, mask, dx = np.empty_like(x), np.empty(x.shape, bool), np.empty_like(dout)
        scale = x.dtype.type(1 / (1 - ratio) if ratio < 1 else 0) if inverted else x.dtype.type(1)
        build(dropout.dropout_forward)(x.reshape(-1), stream_key(seed, step), ratio, scale,
                                       mask.reshape(-1), out.reshape(-1))
        step += 1
        build(dropout.dropout_backward)(dout.reshape(-1), mask.reshape(-1), scale,
                                        dx.reshape(-1))
        trace.update({f"forward@{k}": out, f"dx@{k}": dx, f"mask@{k}": mask,
                      f"step@{k}": np.array(step)})
    return trace


def _batchnorm_kernels(build, inputs, case):
    gamma, beta = inputs.kwargs["gamma"], inputs.kwargs["beta"]
    momentum = inputs.kwargs.get("momentum", 0.9)
    dtype = gamma.dtype
    running_mean = inputs.kwargs.get("running_mean", np.zeros(gamma.size, dtype)).copy()
    running_var = inputs.kwargs.get("running_var", np.zeros(gamma.size, dtype)).copy()
    trace = {}
    for k, (x, dout, flag) in enumerate(zip(inputs.xs, inputs.douts, case.passes)):
        x2 = x.reshape(x.shape[0], -1)
        out = np.empty_like(x2)
        if flag is False:
            build(batchnorm.batchnorm_forward_infer)(x2, gamma, beta, running_mean, running_var,
                                                     fast_layers.BN_EPS, out)
            trace[f"forward@{k}"] = out.reshape(x.shape)
        else:
            xn, std = np.empty_like(x2), np.empty(x2.shape[1], dtype)
            build(batchnorm.batchnorm_forward_train)(
                x2, gamma, beta, fast_layers.BN_EPS, momentum, running_mean, running_var, xn,
                std, out)
            dgamma, dbeta, dx = np.empty_like(gamma), np.empty_like(gamma), np.empty_like(x2)
            build(batchnorm.batchnorm_backward)(dout.reshape(x2.shape), xn, std, gamma,
                                                dgamma, dbeta, dx)
            trace.update({f"forward@{k}": out.reshape(x.shape), f"dx@{k}": dx.reshape(x.shape),
                          f"xn@{k}": xn.copy(), f"std@{k}": std.copy(),
                          f"dgamma@{k}": dgamma, f"dbeta@{k}": dbeta})
        trace.update({f"running_mean@{k}": running_mean.copy(),
                      f"running_var@{k}": running_var.copy()})
    return trace


def _group_norm_kernels(build, inputs, case):
    gamma, beta = inputs.kwargs["gamma"], inputs.kwargs["beta"]
    trace = {}
    for k, (x, dout, flag) in enumerate(zip(inputs.xs, inputs.douts, case.passes)):
        groups = {"LayerNormalization": 1, "InstanceNormalization": x.shape[1]}.get(
            case.layer, inputs.kwargs.get("groups"))
        x3, positions = x.reshape(x.shape[0], groups, -1), math.prod(x.shape[2:])
        xn, std, out = np.empty_like(x3), np.empty((x.shape[0], groups), x.dtype), np.empty_like(x3)
        build(normalization.group_norm_forward)(x3, positions, gamma, beta, 1e-6, xn, std, out)
        trace[f"forward@{k}"] = out.reshape(x.shape)
        if flag is False:
            continue
        dgamma, dbeta, dx = np.empty_like(gamma), np.empty_like(gamma), np.empty_like(x3)
        build(normalization.group_norm_backward)(dout.reshape(x3.shape), positions, xn, std,
                                                 gamma, dgamma, dbeta, dx)
        trace.update({f"dx@{k}": dx.reshape(x.shape), f"dgamma@{k}": dgamma,
                      f"dbeta@{k}": dbeta})
    return trace


def _mixing(logits):
    w = np.zeros(3)
    e = np.exp(logits - logits.max())
    w[3 - logits.size:] = e / e.sum()
    return w


def _switchable_kernels(build, inputs, case):
    kw = inputs.kwargs
    gamma, beta = kw["gamma"], kw["beta"]
    w_mean, w_var = _mixing(kw["mean_weight"]), _mixing(kw["var_weight"])
    running_mean, running_var = np.zeros_like(gamma), np.zeros_like(gamma)
    trace = {}
    for k, (x, dout, flag) in enumerate(zip(inputs.xs, inputs.douts, case.passes)):
        x3, positions = x.reshape(x.shape[0], -1), math.prod(x.shape[2:])
        n, c = x.shape[:2]
        out = np.empty_like(x3)
        if flag is False:
            build(normalization.switchable_forward_infer)(
                x3, positions, gamma, beta, w_mean, w_var, 1e-6, running_mean, running_var, out)
        else:
            stats = (np.empty((2, n, c)), np.empty((2, n)), np.empty((2, c)), np.empty((n, c)),
                     np.empty((n, c)))
            xn = np.empty_like(x3)
            build(normalization.switchable_forward_train)(
                x3, positions, gamma, beta, w_mean, w_var, 1e-6, kw["momentum"], running_mean,
                running_var, *stats, xn, out)
            dgamma, dbeta, dx = np.empty_like(gamma), np.empty_like(gamma), np.empty_like(x3)
            dw_mean, dw_var = np.empty(3), np.empty(3)
            build(normalization.switchable_backward)(
                dout.reshape(x3.shape), positions, xn, gamma, w_mean, w_var, *stats, dgamma, dbeta,
                dw_mean, dw_var, dx)
            trace.update({f"dx@{k}": dx.reshape(x.shape), f"dgamma@{k}": dgamma,
                          f"dbeta@{k}": dbeta})
        trace.update({f"forward@{k}": out.reshape(x.shape),
                      f"running_mean@{k}": running_mean.copy(),
                      f"running_var@{k}": running_var.copy()})
    return trace


def _weight_norm_kernels(build, inputs, case):
    v, g, b = inputs.kwargs["v"], inputs.kwargs["g"], inputs.kwargs["b"]
    norms, W = np.empty_like(g), np.empty_like(v)
    normalization.weight_norm_weight(v, g, norms, W)
    trace = _affine_kernels(build, LayerInputs(inputs.xs, inputs.douts, inputs.targets,
                                               {"W": W, "b": b}), case)
    for k in range(len(inputs.xs)):
        dv, dg = np.empty_like(v), np.empty_like(g)
        normalization.weight_norm_backward(trace[f"dW@{k}"], v, g, norms, dv, dg)
        trace.update({f"dv@{k}": dv, f"dg@{k}": dg, f"W@{k}": W})
    return trace


def _affine_init(rng, dtype, features, out_width=6):
    return {"W": (rng.standard_normal((features, out_width)) / np.sqrt(features)).astype(dtype),
            "b": rng.standard_normal(out_width).astype(dtype)}


def _batchnorm_init(rng, dtype, features, momentum=0.9, running=False):
    kwargs = {"gamma": (1 + 0.2 * rng.standard_normal(features)).astype(dtype),
              "beta": (0.2 * rng.standard_normal(features)).astype(dtype),
              "momentum": momentum}
    if running:
        kwargs["running_mean"] = (0.3 * rng.standard_normal(features)).astype(dtype)
        kwargs["running_var"] = rng.uniform(0.5, 2.0, features).astype(dtype)
    return kwargs


def _norm_init(rng, dtype, features, channels=None, **kwargs):
    """gamma and beta, one per channel (``channels``) or per feature, and ``kwargs``."""
    width = channels or features
    return {"gamma": (1 + 0.2 * rng.standard_normal(width)).astype(dtype),
            "beta": (0.2 * rng.standard_normal(width)).astype(dtype), **kwargs}


def _switchable_init(rng, dtype, features, channels=None):
    kinds = 3 if channels else 2
    return _norm_init(rng, dtype, features, channels, momentum=0.8,
                      mean_weight=rng.standard_normal(kinds).astype(dtype),
                      var_weight=rng.standard_normal(kinds).astype(dtype))


def _weight_norm_init(rng, dtype, features, out_width=6):
    return {"v": rng.standard_normal((features, out_width)).astype(dtype),
            "g": rng.uniform(0.5, 2.0, out_width).astype(dtype),
            "b": rng.standard_normal(out_width).astype(dtype)}


def _dropout_init(rng, dtype, features, ratio=0.5, inverted=False):
    kwargs = {"dropout_ratio": ratio, "seed": 20240611}
    return {**kwargs, "inverted": True} if inverted else kwargs


BN_ATTRS = ("running_mean", "running_var", "xn", "std", "dgamma", "dbeta")

LAYER_CASES = [
    LayerCase("relu", "Relu", attrs=("mask",), kernels=_relu_kernels, exact=True),
    LayerCase("sigmoid", "Sigmoid", attrs=("out",),
              kernels=functools.partial(_activation_kernels, activations.sigmoid_forward,
                                        activations.sigmoid_backward)),
    LayerCase("tanh", "Tanh", attrs=("out",),
              kernels=functools.partial(_activation_kernels, activations.tanh_forward,
                                        activations.tanh_backward)),
    LayerCase("affine", "Affine", init=_affine_init, out_width=6, attrs=("dW", "db"),
              kernels=_affine_kernels, parallel=False),
    LayerCase("affine-4d", "Affine", shape=("N", 2, 3, "D"), init=_affine_init, out_width=6,
              attrs=("dW", "db"), kernels=_affine_kernels, parallel=False),
    # The loss is -log(y + 1e-7), the backward differentiates -log(y): they differ by
    # about 1e-7 / y relative, hence the looser gradient check.
    LayerCase("softmax-labels", "SoftmaxWithLoss", passes=(None, None), target="labels",
              attrs=("y", "loss"), kernels=_softmax_kernels, parallel=False, grad_rtol=1e-4),
    LayerCase("softmax-onehot", "SoftmaxWithLoss", target="onehot", attrs=("y", "loss"),
              kernels=_softmax_kernels, parallel=False, grad_rtol=1e-4),
    LayerCase("dropout", "Dropout", passes=(True, False, True, True), init=_dropout_init,
              attrs=("mask", "step"), kernels=_dropout_kernels, exact=True),
    LayerCase("dropout-0.2", "Dropout", passes=(True, True),
              init=functools.partial(_dropout_init, ratio=0.2), attrs=("mask", "step"),
              kernels=_dropout_kernels, exact=True),
    # The edge rates: keep everything, drop everything.
    LayerCase("dropout-0", "Dropout", passes=(True, False, True),
              init=functools.partial(_dropout_init, ratio=0.0), attrs=("mask", "step"),
              kernels=_dropout_kernels, exact=True),
    LayerCase("dropout-1", "Dropout", passes=(True, False, True),
              init=functools.partial(_dropout_init, ratio=1.0), attrs=("mask", "step"),
              kernels=_dropout_kernels, exact=True),
    # Inverted: kept elements scaled by 1 / (1 - ratio) in training, identity at test.
    LayerCase("dropout-inverted", "Dropout", passes=(True, False, True, True),
              init=functools.partial(_dropout_init, inverted=True), attrs=("mask", "step"),
              kernels=_dropout_kernels, exact=True),
    LayerCase("dropout-inverted-0.2", "Dropout", passes=(True, True),
              init=functools.partial(_dropout_init, ratio=0.2, inverted=True),
              attrs=("mask", "step"), kernels=_dropout_kernels, exact=True),
    LayerCase("dropout-inverted-0", "Dropout", passes=(True, False, True),
              init=functools.partial(_dropout_init, ratio=0.0, inverted=True),
              attrs=("mask", "step"), kernels=_dropout_kernels, exact=True),
    LayerCase("dropout-inverted-1", "Dropout", passes=(True, False, True),
              init=functools.partial(_dropout_init, ratio=1.0, inverted=True),
              attrs=("mask", "step"), kernels=_dropout_kernels, exact=True),
    LayerCase("batchnorm-train", "BatchNormalization", passes=(True, True, True),
              init=_batchnorm_init, attrs=BN_ATTRS, kernels=_batchnorm_kernels, min_batch=2),
    LayerCase("batchnorm-infer", "BatchNormalization", passes=(True, True, True, False),
              init=functools.partial(_batchnorm_init, momentum=0.7), attrs=BN_ATTRS,
              kernels=_batchnorm_kernels, min_batch=2),
    LayerCase("batchnorm-4d", "BatchNormalization", shape=("N", 2, 3, "D"),
              passes=(True, True, False), init=_batchnorm_init, attrs=BN_ATTRS,
              kernels=_batchnorm_kernels, min_batch=2),
    LayerCase("batchnorm-given-stats", "BatchNormalization", passes=(False, True, False),
              init=functools.partial(_batchnorm_init, running=True),
              attrs=("running_mean", "running_var"), kernels=_batchnorm_kernels, min_batch=2),
]
NORM_ATTRS = ("dgamma", "dbeta")
NormCase = functools.partial(LayerCase, oracle_float64=True)
SN_ATTRS = ("running_mean", "running_var", "dgamma", "dbeta", "dmean_weight", "dvar_weight")
LAYER_CASES += [
    NormCase("layernorm", "LayerNormalization", passes=(True, False, True), init=_norm_init,
             attrs=NORM_ATTRS, kernels=_group_norm_kernels, min_group=2),
    NormCase("layernorm-4d", "LayerNormalization", shape=("N", 4, 3, "D"),
             init=functools.partial(_norm_init, channels=4), passes=(True, True),
             attrs=NORM_ATTRS, kernels=_group_norm_kernels),
    NormCase("groupnorm", "GroupNormalization", shape=("N", 6),
             init=functools.partial(_norm_init, groups=2), passes=(True, False, True),
             attrs=NORM_ATTRS, kernels=_group_norm_kernels),
    NormCase("groupnorm-4d", "GroupNormalization", shape=("N", 4, 2, "D"),
             init=functools.partial(_norm_init, channels=4, groups=2), passes=(True, True),
             attrs=NORM_ATTRS, kernels=_group_norm_kernels),
    NormCase("instancenorm-4d", "InstanceNormalization", shape=("N", 3, 2, "D"),
             init=functools.partial(_norm_init, channels=3), passes=(True, False, True),
             attrs=NORM_ATTRS, kernels=_group_norm_kernels),
    NormCase("switchable", "SwitchableNormalization", passes=(True, True, False),
             init=_switchable_init, attrs=SN_ATTRS, kernels=_switchable_kernels,
             min_batch=2),
    NormCase("switchable-4d", "SwitchableNormalization", shape=("N", 3, 2, "D"),
             passes=(True, True, False), init=functools.partial(_switchable_init, channels=3),
             attrs=SN_ATTRS, kernels=_switchable_kernels),
    NormCase("weightnorm", "WeightNormalization", init=_weight_norm_init, out_width=6,
             attrs=("W", "dv", "dg", "db"), kernels=_weight_norm_kernels, parallel=False),
    NormCase("weightnorm-4d", "WeightNormalization", shape=("N", 2, 3, "D"),
             init=_weight_norm_init, out_width=6, attrs=("W", "dv", "dg", "db"),
             kernels=_weight_norm_kernels, parallel=False),
]
LAYERS = [pytest.param(case, id=case.id) for case in LAYER_CASES]

# Constructor arguments that are parameters, and the attribute holding their gradient.
PARAM_GRADS = {"W": "dW", "b": "db", "gamma": "dgamma", "beta": "dbeta", "v": "dv", "g": "dg",
               "mean_weight": "dmean_weight", "var_weight": "dvar_weight"}


# --------------------------------------------------------------------- optimizers


@dataclass(frozen=True)
class OptimizerCase:
    id: str
    name: str                       # class name in fastnet.optimizers and the reference
    kwargs: dict = field(default_factory=dict)
    state: tuple = ()               # per-key state dicts
    scalars: Callable = None        # (kwargs, step) -> the kernel's scalars before wd

    def make(self, module):
        return getattr(module, self.name)(**self.kwargs)

    @property
    def kernel(self):
        return getattr(optimizer_kernels, self.name.lower())


EPS = 1e-7


# The kernels take the combined coefficients (``1 - beta1``, ``(1 + mu) lr``...) formed in
# Python, as the reference forms them.

def _nesterov_scalars(kw, step):
    mu = kw["momentum"]
    return (kw["lr"], mu, mu * mu, (1 + mu) * kw["lr"])


def _adam_scalars(kw, step):
    lr_t = kw["lr"] * math.sqrt(1 - kw["beta2"] ** step) / (1 - kw["beta1"] ** step)
    return (lr_t, 1 - kw["beta1"], 1 - kw["beta2"], EPS)


def _adamw_scalars(kw, step):
    kw = {"beta1": 0.9, "beta2": 0.999, "weight_decay": 0.01, "eps": 1e-8, **kw}
    return (kw["lr"], 1 - kw["beta1"], 1 - kw["beta2"], 1 - kw["beta1"] ** step,
            1 - kw["beta2"] ** step, kw["eps"], kw["weight_decay"])


OPTIMIZER_CASES = [
    OptimizerCase("sgd", "SGD", {"lr": 0.1}, (), lambda kw, s: (kw["lr"],)),
    OptimizerCase("momentum", "Momentum", {"lr": 0.05, "momentum": 0.8}, ("v",),
                  lambda kw, s: (kw["lr"], kw["momentum"])),
    OptimizerCase("nesterov", "Nesterov", {"lr": 0.05, "momentum": 0.9}, ("v",),
                  _nesterov_scalars),
    OptimizerCase("adagrad", "AdaGrad", {"lr": 0.1}, ("h",), lambda kw, s: (kw["lr"], EPS)),
    OptimizerCase("rmsprop", "RMSprop", {"lr": 0.01, "decay_rate": 0.9}, ("h",),
                  lambda kw, s: (kw["lr"], kw["decay_rate"], 1 - kw["decay_rate"], EPS)),
    OptimizerCase("adam", "Adam", {"lr": 0.01, "beta1": 0.8, "beta2": 0.99}, ("m", "v"),
                  _adam_scalars),
    OptimizerCase("adam-book", "Adam", {"lr": 0.001, "beta1": 0.9, "beta2": 0.999},
                  ("m", "v"), _adam_scalars),
    OptimizerCase("adamw", "AdamW", {"lr": 0.01, "beta1": 0.8, "beta2": 0.99,
                                     "weight_decay": 0.1, "eps": 1e-7}, ("m", "v"),
                  _adamw_scalars),
    OptimizerCase("adamw-torch-defaults", "AdamW", {"lr": 0.001}, ("m", "v"), _adamw_scalars),
]
OPTIMIZERS = [pytest.param(case, id=case.id) for case in OPTIMIZER_CASES]

# Several keys of different shapes, weights first (update_flat decays a prefix).
PARAM_SHAPES = {"W1": (7, 5), "W2": (5, 3, 2), "b1": (5,), "b2": (1,), "scale": ()}
DECAYED_KEYS = ("W1", "W2")


def make_params(dtype, seed=0, shapes=PARAM_SHAPES):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(shape).astype(dtype) for k, shape in shapes.items()}


def gradient_of(params, step, seed=1):
    """A gradient that depends on the parameters (so differences feed back) and on a
    noise stream fixed by ``(seed, step)``: ``0.3 p + noise``."""
    rng = np.random.default_rng([seed, step])
    return {k: (0.3 * p + rng.standard_normal(np.shape(p))).astype(p.dtype)
            for k, p in params.items()}


def optimizer_state(optimizer, case):
    """The optimizer's state as a flat dict of copies: ``"v/W1"``, ``"iter"``, ..."""
    state = {f"{name}/{key}": np.array(value)
             for name in case.state for key, value in getattr(optimizer, name).items()}
    if hasattr(optimizer, "iter"):
        state["iter"] = np.array(optimizer.iter)
    return state


# --------------------------------------------------------------------- nets


@dataclass(frozen=True)
class NetCase:
    id: str
    kwargs: dict

    @property
    def extend(self):
        return any(k in self.kwargs for k in ("use_batchnorm", "use_dropout", "normalization"))


NET_CASES = [
    NetCase("plain", {}),
    NetCase("sigmoid-wd", {"activation": "sigmoid", "weight_decay_lambda": 0.1}),
    NetCase("bn", {"use_batchnorm": True}),
    NetCase("dropout", {"use_dropout": True, "dropout_ration": 0.3}),
    # tanh's gradient at a dropped (zeroed) output is 1, not 0: the mask must be read
    NetCase("tanh-dropout", {"activation": "tanh", "use_dropout": True}),
    NetCase("tanh-bn", {"activation": "tanh", "use_batchnorm": True}),
    NetCase("sigmoid-bn-dropout", {"activation": "sigmoid", "use_batchnorm": True,
                                   "use_dropout": True, "dropout_ration": 0.3}),
    NetCase("bn-dropout-wd", {"use_batchnorm": True, "use_dropout": True,
                              "weight_decay_lambda": 0.05}),
]
NETS = [pytest.param(case, id=case.id) for case in NET_CASES]

# The normalizations beyond batch norm, on hidden layers that ``groups=2`` divides.
NORM_NET_SIZES = (6, [8, 6], 3)
NORM_NET_CASES = [
    NetCase("layer", {"normalization": "layer"}),
    NetCase("group", {"normalization": "group"}),
    NetCase("instance-tanh", {"normalization": "instance", "activation": "tanh"}),
    NetCase("instance-one-channel", {"normalization": "instance", "groups": 1}),
    NetCase("weight-wd", {"normalization": "weight", "weight_decay_lambda": 0.1}),
    NetCase("switchable", {"normalization": "switchable"}),
    NetCase("layer-dropout-wd", {"normalization": "layer", "use_dropout": True,
                                 "dropout_ratio": 0.2, "weight_decay_lambda": 0.05}),
    NetCase("instance-dropout-wd", {"normalization": "instance", "use_dropout": True,
                                    "dropout_ratio": 0.2, "weight_decay_lambda": 0.05}),
    NetCase("switchable-sigmoid-dropout", {"normalization": "switchable",
                                           "activation": "sigmoid", "use_dropout": True}),
    NetCase("switchable-tanh-dropout-wd", {"normalization": "switchable", "activation": "tanh",
                                           "use_dropout": True, "dropout_ratio": 0.2,
                                           "weight_decay_lambda": 0.05}),
]
NORM_NETS = [pytest.param(case, id=case.id) for case in NORM_NET_CASES]
# The parameters a normalization adds to hidden layer i (``W{i}`` replaced for 'weight')
NORM_PARAMS = {"layer": {"gamma", "beta"}, "group": {"gamma", "beta"},
               "instance": {"gamma", "beta"}, "weight": {"v", "g"},
               "switchable": {"gamma", "beta", "mean_weight", "var_weight"}}
