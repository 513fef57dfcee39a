"""The book's layers on compiled kernels: same classes, attributes and formulas as
``fastnet.reference.layers`` (see there, and ``docs`` of each class).

Each ``forward``/``backward`` validates its input once (float32 or float64, shapes,
labels) and calls one kernel.  Layers follow the dtype of what they are given; an
``Affine`` or ``BatchNormalization`` computes in the dtype of its parameters.  Outputs
are new arrays and inputs are never modified; the one state updated in place is
``BatchNormalization``'s running statistics, so that a net's arena sees them.
"""
import numpy as np

from . import _validate
from .kernels import activations, affine, batchnorm, dropout, softmax
from .kernels.jit import pick
from .reference import layers as reference
from .reference.random import stream_key

BN_EPS = 10e-7  # the book's 1e-6
_NO_MASK = np.empty(0, dtype=bool)


def _flat_kernel(kernel, *arrays):
    """Run an element-wise kernel over the flattened arrays (all C-contiguous)."""
    pick(kernel, arrays[0].size)(*[a.reshape(-1) if isinstance(a, np.ndarray) else a
                                   for a in arrays])


def _like(dout, ref, name="dout"):
    """``dout`` checked against the array its layer's forward produced."""
    if ref is None:
        raise RuntimeError("backward called before forward")
    return _validate.same_shape(_validate.float_array(dout, name, min_ndim=0),
                                ref.shape, name)


class _MaskedBackward:
    """``dx = dout`` zeroed where ``self.mask == zeroed_where`` (ReLU's mask marks the
    zeroed entries, dropout's the kept ones)."""

    zeroed_where = True

    def backward(self, dout):
        dout = _like(dout, self.mask)
        dx = np.empty_like(dout)
        _flat_kernel(activations.zero_where, dout, self.mask, self.zeroed_where, dx)
        return dx


class Relu(_MaskedBackward):
    __doc__ = reference.Relu.__doc__

    def __init__(self):
        self.mask = None

    def forward(self, x):
        x = _validate.float_array(x, "x")
        out = np.empty_like(x)
        self.mask = np.empty(x.shape, dtype=bool)
        _flat_kernel(activations.relu_forward, x, out, self.mask)
        return out


class _Elementwise:
    """An activation layer that keeps its output for the backward pass."""

    code = None

    def __init__(self):
        self.out = None

    def forward(self, x):
        x = _validate.float_array(x, "x")
        self.out = np.empty_like(x)
        _flat_kernel(activations.activation_forward, x, self.code, self.out)
        return self.out

    def backward(self, dout):
        dout = _like(dout, self.out)
        dx = np.empty_like(dout)
        _flat_kernel(activations.activation_backward, dout, self.out, self.code, dx)
        return dx


class Sigmoid(_Elementwise):
    __doc__ = reference.Sigmoid.__doc__
    code = activations.SIGMOID


class Tanh(_Elementwise):
    __doc__ = reference.Tanh.__doc__
    code = activations.TANH


class Affine:
    __doc__ = reference.Affine.__doc__

    def __init__(self, W, b):
        self.W = W
        self.b = b
        self.x = None
        self.original_x_shape = None
        self.dW = None
        self.db = None

    def _params(self):
        W = np.asarray(self.W)
        if W.ndim != 2 or W.dtype not in _validate.FLOAT_DTYPES:
            raise TypeError(f"W must be a 2-D float32 or float64 array, got "
                            f"{W.ndim}-D {W.dtype}")
        b = _validate.same_shape(np.asarray(self.b), (W.shape[1],), "b")
        return np.ascontiguousarray(W), np.ascontiguousarray(b, dtype=W.dtype)

    def forward(self, x):
        W, b = self._params()
        x = _validate.float_array(x, "x", W.dtype)
        self.original_x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        if self.x.shape[1] != W.shape[0]:
            raise ValueError(f"x has {self.x.shape[1]} features per sample (shape "
                             f"{x.shape}) but W expects {W.shape[0]} (W shape {W.shape})")
        out = np.empty((self.x.shape[0], W.shape[1]), dtype=W.dtype)
        affine.affine_forward(self.x, W, b, activations.IDENTITY, out)
        return out

    def backward(self, dout):
        if self.x is None:
            raise RuntimeError("backward called before forward")
        W, b = self._params()
        dout = _validate.same_shape(_validate.float_array(dout, "dout", W.dtype),
                                    (self.x.shape[0], W.shape[1]), "dout")
        self.dW = np.empty_like(W)
        self.db = np.empty_like(b)
        dx = np.empty_like(self.x)
        affine.affine_backward(dout, self.x, W, dout, activations.IDENTITY, _NO_MASK, dout,
                               self.dW, self.db, dx)
        return dx.reshape(self.original_x_shape)


class SoftmaxWithLoss:
    __doc__ = reference.SoftmaxWithLoss.__doc__

    def __init__(self):
        self.loss = None
        self.y = None
        self.t = None

    def forward(self, x, t):
        x = _validate.float_array(x, "x", min_ndim=2)
        if x.ndim != 2:
            raise ValueError(f"x must be 2-D logits (N, classes), got shape {x.shape}")
        self._labels = _validate.labels(t, *x.shape)
        self.t = t
        self.y = np.empty_like(x)
        self.loss = softmax.softmax_cross_entropy(x, self._labels, self.y)
        return self.loss

    def backward(self, dout=1):
        if self.y is None:
            raise RuntimeError("backward called before forward")
        dx = np.empty_like(self.y)
        softmax.cross_entropy_grad(self.y, self._labels, float(dout) / self.y.shape[0], dx)
        return dx


class Dropout(_MaskedBackward, reference.Dropout):
    __doc__ = reference.Dropout.__doc__
    zeroed_where = False

    def forward(self, x, train_flg=True):
        x = _validate.float_array(x, "x")
        if not train_flg:
            return super().forward(x, train_flg=False)  # x * (1 - ratio), or a copy
        out = np.empty_like(x)
        self.mask = np.empty(x.shape, dtype=bool)
        _flat_kernel(dropout.dropout_forward, x, activations.IDENTITY,
                     stream_key(self.seed, self.step), self.dropout_ratio,
                     x.dtype.type(self.kept_scale), self.mask, out)
        self.step += 1
        return out

    def backward(self, dout):
        if not self.inverted:
            return super().backward(dout)
        dout = _like(dout, self.mask)
        dx = np.empty_like(dout)
        _flat_kernel(dropout.dropout_backward, dout, self.mask,
                     dout.dtype.type(self.kept_scale), dx)
        return dx


class BatchNormalization:
    __doc__ = reference.BatchNormalization.__doc__

    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None):
        self.gamma = gamma
        self.beta = beta
        self.momentum = _validate.real_scalar(momentum, "momentum", 0, 1, high_open=False)
        self.running_mean = running_mean
        self.running_var = running_var
        self.input_shape = None
        self.xn = None
        self.std = None
        self.dgamma = None
        self.dbeta = None

    def _params(self, width, dtype):
        gamma = _validate.same_shape(np.asarray(self.gamma), (width,), "gamma")
        beta = _validate.same_shape(np.asarray(self.beta), (width,), "beta")
        if self.running_mean is None:
            self.running_mean = np.zeros(width, dtype)
            self.running_var = np.zeros(width, dtype)
        for name in ("running_mean", "running_var"):
            stat = _validate.same_shape(np.asarray(getattr(self, name)), (width,), name)
            if stat.dtype != dtype or not stat.flags.c_contiguous or not stat.flags.writeable:
                setattr(self, name, np.array(stat, dtype=dtype))
        return (np.ascontiguousarray(gamma, dtype=dtype),
                np.ascontiguousarray(beta, dtype=dtype))

    def forward(self, x, train_flg=True):
        dtype = np.asarray(self.gamma).dtype
        x = _validate.float_array(x, "x", dtype if dtype in _validate.FLOAT_DTYPES else None)
        self.input_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        gamma, beta = self._params(x.shape[1], x.dtype)
        out = np.empty_like(x)
        if train_flg:
            self.xn = np.empty_like(x)
            self.std = np.empty(x.shape[1], x.dtype)
            pick(batchnorm.batchnorm_forward_train, x.size)(
                x, gamma, beta, BN_EPS, self.momentum, self.running_mean,
                self.running_var, activations.IDENTITY, self.xn, self.std, out)
        else:
            pick(batchnorm.batchnorm_forward_infer, x.size)(
                x, gamma, beta, self.running_mean, self.running_var, BN_EPS, out)
        return out.reshape(self.input_shape)

    def backward(self, dout):
        if self.xn is None:
            raise RuntimeError("backward called before a training forward")
        dout = _validate.same_shape(
            _validate.float_array(dout, "dout", self.xn.dtype).reshape(self.xn.shape[0], -1),
            self.xn.shape, "dout (flattened)")
        gamma, _ = self._params(self.xn.shape[1], self.xn.dtype)
        self.dgamma = np.empty_like(gamma)
        self.dbeta = np.empty_like(gamma)
        dx = np.empty_like(dout)
        pick(batchnorm.batchnorm_backward, dout.size)(
            dout, self.xn, self.std, gamma, self.dgamma, self.dbeta, dx)
        return dx.reshape(self.input_shape)
