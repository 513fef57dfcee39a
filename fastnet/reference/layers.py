"""The book's layers in plain NumPy: the oracle for ``fastnet.layers``.

Each layer has ``forward`` and ``backward`` and keeps what backward needs on the
instance.  Layers follow the dtype of their input: float32 stays float32.
"""
import math

import numpy as np

from .. import _book
from .functions import class_indices, cross_entropy_error, sigmoid, softmax
from .random import counter_uniform


class Relu:
    """``out = max(0, x)``; ``dx = dout`` where ``x > 0``, else 0."""

    def __init__(self):
        self.mask = None

    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        # A new array: the book zeroes ``dout`` in place, which surprises callers.
        dx = dout.copy()
        dx[self.mask] = 0
        return dx


class Sigmoid:
    """``out = 1 / (1 + exp(-x))``; ``dx = dout * (1 - out) * out``."""

    def __init__(self):
        self.out = None

    def forward(self, x):
        self.out = sigmoid(x)
        return self.out

    def backward(self, dout):
        return dout * (1 - self.out) * self.out


class Tanh:
    """``out = tanh(x)``; ``dx = dout * (1 - out**2)``."""

    def __init__(self):
        self.out = None

    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout):
        return dout * (1 - self.out ** 2)


class Affine:
    """``out = x @ W + b`` with ``x`` flattened to (N, -1).

    backward: ``dW = x.T @ dout``, ``db = sum(dout, axis=0)``, ``dx = dout @ W.T``
    in the original shape of ``x``.  ``W`` and ``b`` are the caller's arrays (not
    copies), so an optimizer updating them in place is seen here.
    """

    def __init__(self, W, b):
        self.W = W
        self.b = b
        self.x = None
        self.original_x_shape = None
        self.dW = None
        self.db = None

    def forward(self, x):
        self.original_x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        return self.x @ self.W + self.b

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0)
        return (dout @ self.W.T).reshape(self.original_x_shape)


class SoftmaxWithLoss:
    """``y = softmax(x)``, ``loss = -sum(log(y[i, t_i] + 1e-7)) / N``.

    ``t`` holds class indices (N,) or one-hot rows (N, C).  backward:
    ``dx = dout * (y - onehot(t)) / N``.
    """

    def __init__(self):
        self.loss = None
        self.y = None
        self.t = None

    def forward(self, x, t):
        self.t = t
        self.y = softmax(x)
        self.loss = float(cross_entropy_error(self.y, t))
        return self.loss

    def backward(self, dout=1):
        batch_size = self.y.shape[0]
        dx = self.y.copy()
        dx[np.arange(batch_size), class_indices(self.y, self.t)] -= 1
        return dx * np.asarray(dout / batch_size, dtype=dx.dtype)


class Dropout(_book.DropoutArgs):
    """The book's dropout, or inverted dropout with ``inverted=True``.

    Training: ``mask = u >= dropout_ratio`` for float64 uniforms ``u`` in [0, 1),
    ``out = x * mask``; inference: ``out = x * (1 - dropout_ratio)``.  backward:
    ``dx = dout * mask``.

    Inverted (Srivastava et al. 2014's scaling moved to training, as PyTorch's
    ``nn.Dropout``): training ``out = x * mask * kept_scale`` with ``kept_scale = 1 /
    (1 - dropout_ratio)`` (0 at ratio 1, where nothing is kept) in ``x``'s dtype, so
    ``E[out] = x``; inference returns a copy of ``x``; backward ``dx = dout * mask *
    kept_scale``.  The same ``(seed, step)`` gives the same mask either way.  The nets'
    fused step runs the book's dropout only (``MultiLayerNetExtend`` builds its Dropout
    layers with ``inverted=False``).

    The uniforms are ``counter_uniform(seed, step, x.size)`` (multiples of 2**-53) and
    ``step`` counts the training passes, so mask number ``k`` is a pure function of
    ``(seed, k)``.  With ``seed=None`` the seed is drawn from the global ``np.random``
    state.  ``P(keep) = 1 - dropout_ratio`` to within 2**-53, in float32 as in float64
    (``dropout_ratio`` is held as a float64): a ratio of 0 keeps everything, 1 drops
    everything.  The book's ``rand > dropout_ratio`` differs only where a draw equals
    the ratio, and so drops the rare draw of exactly 0 at ratio 0.
    """

    def forward(self, x, train_flg=True):
        if not train_flg:
            return self.infer(x)
        u = counter_uniform(self.seed, self.step, x.size).reshape(x.shape)
        self.mask = u >= self.dropout_ratio
        self.step += 1
        if self.inverted:
            return x * self.mask * x.dtype.type(self.kept_scale)
        return x * self.mask

    def backward(self, dout):
        if self.inverted:
            return dout * self.mask * dout.dtype.type(self.kept_scale)
        return dout * self.mask


class BatchNormalization:
    """Batch normalization (Ioffe and Szegedy 2015) of each feature over the batch.

    Training: ``mu``, ``var`` (biased) of the batch, ``xn = (x - mu) / sqrt(var + 10e-7)``,
    ``out = gamma * xn + beta``, and ``running = momentum * running + (1 - momentum) *
    batch_stat`` for the mean and the variance (zeros before the first batch).
    Inference normalizes with the running statistics.  Input of more than two
    dimensions, e.g. (N, C, H, W), is flattened to (N, -1) and restored.
    """

    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None):
        self.gamma = gamma
        self.beta = beta
        self.momentum = momentum
        self.running_mean = running_mean
        self.running_var = running_var
        self.input_shape = None
        self.batch_size = None
        self.xc = None
        self.xn = None
        self.std = None
        self.dgamma = None
        self.dbeta = None

    def forward(self, x, train_flg=True):
        self.input_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        if self.running_mean is None:
            self.running_mean = np.zeros(x.shape[1], dtype=x.dtype)
            self.running_var = np.zeros(x.shape[1], dtype=x.dtype)
        if train_flg:
            mu = x.mean(axis=0)
            self.xc = x - mu
            var = np.mean(self.xc ** 2, axis=0)
            self.std = np.sqrt(var + 10e-7)
            self.xn = self.xc / self.std
            self.batch_size = x.shape[0]
            self.running_mean = self.momentum * self.running_mean + (1 - self.momentum) * mu
            self.running_var = self.momentum * self.running_var + (1 - self.momentum) * var
            xn = self.xn
        else:
            xn = (x - self.running_mean) / np.sqrt(self.running_var + 10e-7)
        return (self.gamma * xn + self.beta).reshape(self.input_shape)

    def backward(self, dout):
        dout = dout.reshape(dout.shape[0], -1)
        self.dbeta = dout.sum(axis=0)
        self.dgamma = np.sum(self.xn * dout, axis=0)
        dxn = self.gamma * dout
        dxc = dxn / self.std
        dstd = -np.sum(dxn * self.xc / (self.std * self.std), axis=0)
        dvar = 0.5 * dstd / self.std
        dxc += (2 / self.batch_size) * self.xc * dvar
        dmu = np.sum(dxc, axis=0)
        dx = dxc - dmu / self.batch_size
        return dx.reshape(self.input_shape)


def _channel_shape(x):
    """The shape that broadcasts a per-channel (axis 1) vector against ``x``."""
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _sum_but_channels(a):
    return a.sum(axis=(0,) + tuple(range(2, a.ndim)))


class GroupNormalization:
    """Group normalization (Wu and He 2018): each sample's channels in ``groups`` groups,
    each group normalized over its channels and positions.

    ``x`` is (N, C) or (N, C, ...) with C divisible by ``groups``; per (sample, group):
    ``xn = (x - mu) / sqrt(var + eps)`` (biased variance), ``out = gamma * xn + beta``
    with ``gamma``, ``beta`` of shape (C,).  No running statistics: training and
    inference compute the same thing.
    """

    def __init__(self, gamma, beta, groups, eps=1e-6):
        self.gamma = gamma
        self.beta = beta
        self.groups = groups
        self.eps = eps
        self.xc = None
        self.xn = None
        self.std = None
        self.dgamma = None
        self.dbeta = None

    def _grouped(self, a):
        return a.reshape(a.shape[0], self.groups, -1)

    def forward(self, x, train_flg=True):
        xg = self._grouped(x)
        self.xc = xg - xg.mean(axis=2, keepdims=True)
        var = np.mean(self.xc ** 2, axis=2, keepdims=True)
        self.std = np.sqrt(var + self.eps)
        self.xn = (self.xc / self.std).reshape(x.shape)
        shape = _channel_shape(x)
        return self.gamma.reshape(shape) * self.xn + self.beta.reshape(shape)

    def backward(self, dout):
        self.dbeta = _sum_but_channels(dout)
        self.dgamma = _sum_but_channels(dout * self.xn)
        dxn = self._grouped(self.gamma.reshape(_channel_shape(dout)) * dout)
        size = dxn.shape[2]
        # The book's BatchNormalization.backward, per group instead of per column
        dxc = dxn / self.std
        dstd = -np.sum(dxn * self.xc / (self.std * self.std), axis=2, keepdims=True)
        dvar = 0.5 * dstd / self.std
        dxc += (2 / size) * self.xc * dvar
        dmu = np.sum(dxc, axis=2, keepdims=True)
        return (dxc - dmu / size).reshape(dout.shape)


class LayerNormalization(GroupNormalization):
    """Layer normalization (Ba, Kiros and Hinton 2016): each sample normalized over all
    its features, group normalization with one group.  ``gamma``, ``beta``: (D,) for
    (N, D) input, (C,) for (N, C, ...)."""

    def __init__(self, gamma, beta, eps=1e-6):
        super().__init__(gamma, beta, 1, eps)


class InstanceNormalization(GroupNormalization):
    """Instance normalization (Ulyanov, Vedaldi and Lempitsky 2016): each channel of each
    sample normalized over its positions, group normalization with a group per channel.
    ``x`` is (N, C, H, W) (any number of spatial axes); ``gamma``, ``beta``: (C,)."""

    def __init__(self, gamma, beta, eps=1e-6):
        super().__init__(gamma, beta, None, eps)

    def _grouped(self, a):
        return a.reshape(a.shape[0], a.shape[1], -1)


def _softmax(logits):
    e = np.exp(logits - logits.max())
    return e / e.sum()


class SwitchableNormalization:
    """Switchable normalization (Luo et al. 2018): the mean and the variance are
    softmax-weighted mixes of the instance, layer and batch statistics.

    ``x`` is (N, C, ...): the statistics of each channel of each sample over its
    positions (instance), of each sample (layer), of each channel over the batch
    (batch).  For (N, C) input the instance statistics are those of a single value, so
    only layer and batch are mixed.  ``mean_weight`` and ``var_weight`` are the mixing
    logits, (instance, layer, batch) or (layer, batch), zeros (an equal mix) unless
    given.  Training keeps ``running = momentum * running + (1 - momentum) * batch
    statistic``; inference uses those in place of the batch statistics.  Biased
    variances throughout.
    """

    def __init__(self, gamma, beta, momentum=0.9, eps=1e-6, mean_weight=None,
                 var_weight=None, running_mean=None, running_var=None):
        self.gamma = gamma
        self.beta = beta
        self.momentum = momentum
        self.eps = eps
        self.mean_weight = mean_weight
        self.var_weight = var_weight
        self.running_mean = running_mean
        self.running_var = running_var
        self.x = None
        self.stats = None
        self.xn = None
        self.std = None
        self.dgamma = None
        self.dbeta = None
        self.dmean_weight = None
        self.dvar_weight = None

    def _statistics(self, x3):
        """(mean, var) of each kind, each broadcastable against (N, C, S)."""
        stats = {}
        for kind, axes in (("instance", (2,)), ("layer", (1, 2)), ("batch", (0, 2))):
            mean = x3.mean(axis=axes, keepdims=True)
            stats[kind] = (mean, np.mean((x3 - mean) ** 2, axis=axes, keepdims=True))
        return stats

    def forward(self, x, train_flg=True):
        x3 = x.reshape(x.shape[0], x.shape[1], -1)
        kinds = ("instance", "layer", "batch") if x.ndim > 2 else ("layer", "batch")
        if self.mean_weight is None:
            self.mean_weight = np.zeros(len(kinds), x.dtype)
        if self.var_weight is None:
            self.var_weight = np.zeros(len(kinds), x.dtype)
        if self.running_mean is None:
            self.running_mean = np.zeros(x.shape[1], x.dtype)
            self.running_var = np.zeros(x.shape[1], x.dtype)
        stats = self._statistics(x3)
        if train_flg:
            mean, var = stats["batch"]
            m = self.momentum
            self.running_mean = m * self.running_mean + (1 - m) * mean.reshape(-1)
            self.running_var = m * self.running_var + (1 - m) * var.reshape(-1)
        else:
            stats["batch"] = (self.running_mean.reshape(1, -1, 1),
                              self.running_var.reshape(1, -1, 1))
        self.kinds = kinds
        w_mean, w_var = _softmax(self.mean_weight), _softmax(self.var_weight)
        mu = sum(w * stats[kind][0] for w, kind in zip(w_mean, kinds))
        var = sum(w * stats[kind][1] for w, kind in zip(w_var, kinds))
        self.x, self.stats = x3, stats
        self.std = np.sqrt(var + self.eps)
        self.xn = (x3 - mu) / self.std
        shape = (1, -1, 1)
        out = self.gamma.reshape(shape) * self.xn + self.beta.reshape(shape)
        return out.reshape(x.shape)

    def backward(self, dout):
        d3 = dout.reshape(self.x.shape)
        self.dbeta = d3.sum(axis=(0, 2))
        self.dgamma = (d3 * self.xn).sum(axis=(0, 2))
        dxn = self.gamma.reshape(1, -1, 1) * d3
        dmu = -np.sum(dxn, axis=2, keepdims=True) / self.std
        dvar = -0.5 * np.sum(dxn * self.xn, axis=2, keepdims=True) / self.std ** 2
        w_mean, w_var = _softmax(self.mean_weight), _softmax(self.var_weight)
        dx = dxn / self.std
        dw_mean, dw_var = [], []
        axes = {"instance": (2,), "layer": (1, 2), "batch": (0, 2)}
        for kind, wm, wv in zip(self.kinds, w_mean, w_var):
            mean, _ = self.stats[kind]
            size = math.prod(self.x.shape[a] for a in axes[kind])
            # d mean / dx = 1 / size, d var / dx = 2 (x - mean) / size, over the set
            share_mu = np.sum(dmu, axis=axes[kind], keepdims=True)
            share_var = np.sum(dvar, axis=axes[kind], keepdims=True)
            dx = dx + wm * share_mu / size + wv * 2 * (self.x - mean) * share_var / size
            dw_mean.append(np.sum(dmu * self.stats[kind][0]))
            dw_var.append(np.sum(dvar * self.stats[kind][1]))
        dw_mean, dw_var = np.array(dw_mean), np.array(dw_var)
        # softmax's backward: dlogit_k = w_k (dw_k - sum_j w_j dw_j)
        self.dmean_weight = (w_mean * (dw_mean - w_mean @ dw_mean)).astype(self.x.dtype)
        self.dvar_weight = (w_var * (dw_var - w_var @ dw_var)).astype(self.x.dtype)
        return dx.reshape(dout.shape)


class WeightNormalization:
    """An Affine layer whose weight is ``W = g * v / ||v||`` per output unit (column),
    weight normalization (Salimans and Kingma 2016).

    ``v`` (K, D), ``g``, ``b`` (D,); forward ``out = x @ W + b``; backward ``dW =
    x.T @ dout``, ``db``, ``dx`` as Affine's, then ``dg = sum(dW * v, axis=0) / ||v||``
    and ``dv = g / ||v|| * (dW - dg * v / ||v||)``.
    """

    def __init__(self, v, g, b):
        self.v = v
        self.g = g
        self.b = b
        self.affine = None
        self.dv = None
        self.dg = None
        self.db = None

    @property
    def W(self):
        return self.g * self.v / np.sqrt(np.sum(self.v ** 2, axis=0))

    def forward(self, x):
        self.affine = Affine(self.W, self.b)
        return self.affine.forward(x)

    def backward(self, dout):
        dx = self.affine.backward(dout)
        norm = np.sqrt(np.sum(self.v ** 2, axis=0))
        self.db = self.affine.db
        self.dg = np.sum(self.affine.dW * self.v, axis=0) / norm
        self.dv = self.g / norm * (self.affine.dW - self.dg * self.v / norm)
        return dx
