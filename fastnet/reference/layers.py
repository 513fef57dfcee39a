"""The book's layers in plain NumPy: the oracle for ``fastnet.layers``.

Each layer has ``forward`` and ``backward`` and keeps what backward needs on the
instance.  Layers follow the dtype of their input: float32 stays float32.
"""
import numpy as np

from .functions import class_indices, cross_entropy_error, sigmoid, softmax
from .random import counter_uniform, draw_seed, resolve_rng


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


class Dropout:
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

    def __init__(self, dropout_ratio=0.5, seed=None, *, inverted=False):
        if isinstance(dropout_ratio, bool) or not 0 <= dropout_ratio <= 1:
            raise ValueError(f"dropout_ratio must be in [0, 1], got {dropout_ratio!r}")
        if seed is None:
            seed = draw_seed(resolve_rng())
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.dropout_ratio = float(dropout_ratio)
        self.seed = int(seed)
        self.inverted = bool(inverted)
        self.step = 0
        self.mask = None

    @property
    def kept_scale(self):
        """The factor of a kept element in training: 1, or ``1 / (1 - dropout_ratio)``
        (0 at ratio 1) when inverted."""
        if not self.inverted:
            return 1.0
        return 1 / (1 - self.dropout_ratio) if self.dropout_ratio < 1 else 0.0

    def forward(self, x, train_flg=True):
        if not train_flg:
            return x.copy() if self.inverted else x * x.dtype.type(1 - self.dropout_ratio)
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
