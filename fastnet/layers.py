"""The book's layers on compiled kernels: the classes, attributes and formulas of the
book's ``common/layers.py`` (``fastnet.reference.layers`` is their NumPy oracle).

Each ``forward``/``backward`` validates its input once (float32 or float64, shapes,
labels) and calls one kernel.  Layers follow the dtype of what they are given; an
``Affine`` or ``BatchNormalization`` computes in the dtype of its parameters.  Outputs
are new arrays and inputs are never modified; the one state updated in place is the
running statistics of ``BatchNormalization`` and ``SwitchableNormalization``, so that a
net's arena sees them.

Beyond the book: ``LayerNormalization``, ``GroupNormalization``,
``InstanceNormalization``, ``SwitchableNormalization`` and ``WeightNormalization``
(kernels in ``fastnet.kernels.normalization``), documented here.
"""
import math

import numpy as np

from . import _book, _validate
from .kernels import activations, affine, batchnorm, dropout, normalization, softmax
from .kernels.jit import pick

BN_EPS = 10e-7  # the book's 1e-6
NORM_EPS = 1e-6  # the other normalizations' default, the book's batch-norm epsilon


def _flat_kernel(kernel, *arrays):
    """Run an element-wise kernel over the flattened arrays (all C-contiguous)."""
    pick(kernel, arrays[0].size)(*[a.reshape(-1) if isinstance(a, np.ndarray) else a
                                   for a in arrays])


def _before_forward(forward="forward", also=""):
    """The error of a backward with no ``forward`` pass of its own layer to go back
    through."""
    return RuntimeError(
        f"backward called before {forward}{also}; a fastnet net's predict, loss and "
        f"gradient run compiled passes that leave its layers' saved inputs unset, so code "
        f"that walks its layers backward must first run each one's forward")


def _like(dout, ref, name="dout"):
    """``dout`` checked against the array its layer's forward produced."""
    if ref is None:
        raise _before_forward()
    return _validate.same_shape(_validate.float_array(dout, name, min_ndim=0),
                                ref.shape, name)


def _param_dtype(param):
    """The dtype a layer with parameter ``param`` computes in (None: the input's)."""
    dtype = np.asarray(param).dtype
    return dtype if dtype in _validate.FLOAT_DTYPES else None


def _vector_params(layer, names, width, dtype,
                   what="features (channels) the layer normalizes in x"):
    """The layer's attributes ``names``, each checked to be (width,), one value per
    ``what`` (by default a feature or channel of ``x``), as C-contiguous arrays of
    ``dtype``.  ValueError naming both widths otherwise: which of the two is wrong, only
    the caller knows."""
    out = []
    for name in names:
        value = _validate.real_values(getattr(layer, name), name)
        if value.shape != (width,):
            raise ValueError(f"{name} must have shape ({width},), got {value.shape}: one "
                             f"value for each of the {width} {what}")
        out.append(np.ascontiguousarray(value, dtype=dtype))
    return out


def _running_stats(layer, width, dtype):
    """Zeros for running statistics not yet set; a writable C-contiguous copy of ``dtype``
    of any that is not one (the kernels update them in place)."""
    if layer.running_mean is None:
        layer.running_mean = np.zeros(width, dtype)
        layer.running_var = np.zeros(width, dtype)
    for name in ("running_mean", "running_var"):
        stat = _validate.same_shape(np.asarray(getattr(layer, name)), (width,), name)
        if stat.dtype != dtype or not stat.flags.c_contiguous or not stat.flags.writeable:
            setattr(layer, name, np.array(stat, dtype=dtype))


class Relu:
    """``out = max(0, x)``; ``dx = dout`` where ``x > 0``, else 0."""

    def __init__(self):
        self.mask = None

    def forward(self, x):
        """``max(0, x)``, ``x`` of any shape, float32 or float64 (the output's dtype); the
        book's mask ``x <= 0`` (where the output and the gradient are 0) is kept as
        ``mask`` for backward.  TypeError for other dtypes, ValueError for an empty ``x``."""
        x = _validate.float_array(x, "x")
        out = np.empty_like(x)
        self.mask = np.empty(x.shape, dtype=bool)
        _flat_kernel(activations.relu_forward, x, out, self.mask)
        return out

    def backward(self, dout):
        """``dx = dout`` where ``mask`` is False, else 0; ``dout`` of the forward output's
        shape (ValueError otherwise; RuntimeError before any forward)."""
        dout = _like(dout, self.mask)
        dx = np.empty_like(dout)
        _flat_kernel(activations.relu_backward, dout, self.mask, dx)
        return dx


class _Elementwise:
    """An activation layer that keeps its output for the backward pass: ``forward_kernel
    (x, out)`` and ``backward_kernel(dout, out, dx)`` over flat arrays."""

    forward_kernel = backward_kernel = None

    def __init__(self):
        self.out = None

    def forward(self, x):
        """The activation of ``x`` (any shape, float32 or float64), kept for backward.
        TypeError for other dtypes, ValueError for an empty ``x``."""
        x = _validate.float_array(x, "x")
        self.out = np.empty_like(x)
        _flat_kernel(self.forward_kernel, x, self.out)
        return self.out

    def backward(self, dout):
        """``dx = dout * act'(x)``, computed from the kept output; ``dout`` of its shape
        (ValueError otherwise; RuntimeError before any forward)."""
        dout = _like(dout, self.out)
        dx = np.empty_like(dout)
        _flat_kernel(self.backward_kernel, dout, self.out, dx)
        return dx


class Sigmoid(_Elementwise):
    """``out = 1 / (1 + exp(-x))``; ``dx = dout * (1 - out) * out``."""
    forward_kernel = staticmethod(activations.sigmoid_forward)
    backward_kernel = staticmethod(activations.sigmoid_backward)


class Tanh(_Elementwise):
    """``out = tanh(x)``; ``dx = dout * (1 - out**2)``."""
    forward_kernel = staticmethod(activations.tanh_forward)
    backward_kernel = staticmethod(activations.tanh_backward)


class Affine:
    """``out = x @ W + b`` with ``x`` flattened to (N, -1).

    ``W`` (D_in, D) float32 or float64; ``b`` (D,), or any shape that broadcasts to
    (1, D) as the book's ``x @ W + b`` broadcasts it (a scalar, (1, D)), converted to
    W's dtype.  backward: ``dW = x.T @ dout``, ``db = sum(dout, axis=0)`` (D,),
    ``dx = dout @ W.T`` in the original shape of ``x``.  ``W`` and ``b`` are the
    caller's arrays (not copies), so an optimizer updating them in place is seen here.
    TypeError for a W that is not a 2-D float array or non-real b, ValueError for
    shapes that do not fit.
    """

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
        d = W.shape[1]
        b = _validate.real_values(self.b, "b")
        if b.shape != (d,):  # the book's broadcasting, where it gives one bias per unit
            try:
                b = np.broadcast_to(b, (1, d)).reshape(d)
            except ValueError:
                raise ValueError(f"b must have shape ({d},) (or broadcast to (1, {d})), got "
                                 f"{b.shape}") from None
        return np.ascontiguousarray(W), np.ascontiguousarray(b, dtype=W.dtype)

    def _backward_params(self):
        """The W and b backward differentiates at: the current ones, checked."""
        return self._params()

    def forward(self, x):
        """``x @ W + b`` (N, D) for ``x`` (N, ...) of D_in features in all, converted to
        W's dtype.  ValueError for another feature count; see the class for W and b."""
        W, b = self._params()
        x = _validate.float_array(x, "x", W.dtype)
        rows = x.reshape(x.shape[0], -1)
        if rows.shape[1] != W.shape[0]:  # refused before the kept input is replaced
            one = " (a batch of one sample is x[None])" if x.ndim == 1 else ""
            raise ValueError(f"x has {rows.shape[1]} features per sample (shape "
                             f"{x.shape}: samples along the first axis) but W expects "
                             f"{W.shape[0]} (W shape {W.shape}){one}")
        self.original_x_shape, self.x = x.shape, rows
        out = np.empty((self.x.shape[0], W.shape[1]), dtype=W.dtype)
        affine.affine_forward(self.x, W, b, out)
        return out

    def backward(self, dout):
        """``dx`` in the forward input's shape, from ``dout`` (N, D) in W's dtype (ValueError
        for another shape, or for a W re-bound since forward to another input width or
        dtype; RuntimeError before any forward); sets ``dW`` and ``db``."""
        if self.x is None:
            raise _before_forward()
        W, b = self._backward_params()
        if W.shape[0] != self.x.shape[1] or W.dtype != self.x.dtype:
            raise ValueError(f"W changed since forward: the forward's x was "
                             f"{self.x.shape[1]} features per sample in {self.x.dtype}, "
                             f"so W must be ({self.x.shape[1]}, D) {self.x.dtype}; it is "
                             f"{W.shape} {W.dtype}")
        dout = _validate.same_shape(_validate.float_array(dout, "dout", W.dtype),
                                    (self.x.shape[0], W.shape[1]), "dout")
        self.dW = np.empty_like(W)
        self.db = np.empty_like(b)
        dx = np.empty_like(self.x)
        affine.affine_backward(dout, self.x, W, self.dW, self.db, dx)
        return dx.reshape(self.original_x_shape)


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
        """The mean cross-entropy (a float) of logits ``x`` (N, C), float32 or float64,
        against ``t``: class indices (N,) or one-hot (N, C).  ValueError for other shapes
        or labels outside 0..C-1, TypeError for float labels."""
        x = _validate.float_array(x, "x", min_ndim=2)
        if x.ndim != 2:
            raise ValueError(f"x must be 2-D logits (N, classes), got shape {x.shape}")
        self._labels = _validate.labels(t, *x.shape)
        self.t = t
        self.y = np.empty_like(x)
        self.loss = softmax.softmax_cross_entropy(x, self._labels, self.y)
        return self.loss

    def backward(self, dout=1):
        """``dx = dout * (y - onehot(t)) / N`` (N, C), ``dout`` a scalar (the loss's
        gradient, 1 by default; TypeError otherwise).  RuntimeError before any
        forward."""
        if self.y is None:
            raise _before_forward()
        if not _validate.is_real_number(dout):
            raise TypeError(f"dout must be a real scalar (the loss's gradient), got "
                            f"{type(dout).__name__} of shape {np.shape(dout)}")
        dx = np.empty_like(self.y)
        softmax.cross_entropy_grad(self.y, self._labels, float(dout) / self.y.shape[0], dx)
        return dx


class Dropout(_book.DropoutArgs):
    """The book's dropout, or inverted dropout with ``inverted=True``.

    Training: ``mask = u >= dropout_ratio`` for the float64 uniforms ``u`` of stream
    ``(seed, step)`` (``fastnet.kernels.dropout``; ``step`` counts the training passes),
    ``out = x * mask``, times ``kept_scale = 1 / (1 - dropout_ratio)`` (0 at ratio 1)
    when inverted; inference: ``out = x * (1 - dropout_ratio)``, a copy of ``x`` when
    inverted.  backward: ``dx = dout * mask`` (times ``kept_scale`` when inverted).
    ``seed=None`` draws the seed from the global ``np.random`` state.  A ratio of 0
    keeps everything, 1 drops everything, in float32 as in float64.
    """

    def forward(self, x, train_flg=True):
        """Training (``train_flg``): ``x`` times this step's mask (see the class), the mask
        kept for backward and ``step`` advanced; inference: the scaled copy.  ``x`` of any
        shape, float32 or float64 (TypeError otherwise)."""
        x = _validate.float_array(x, "x")
        if not train_flg:
            return self.infer(x)
        ratio = _validate.dropout_ratio(self.dropout_ratio)  # before the mask is replaced
        out = np.empty_like(x)
        self.mask = np.empty(x.shape, dtype=bool)
        _flat_kernel(dropout.dropout_forward, x, _book.stream_key(self.seed, self.step),
                     ratio, x.dtype.type(self.kept_scale), self.mask, out)
        self.step += 1
        return out

    def backward(self, dout):
        """``dx = dout * mask`` (times ``kept_scale`` when inverted), ``dout`` of the
        training forward's shape (ValueError otherwise; RuntimeError before one)."""
        dout = _like(dout, self.mask)
        dx = np.empty_like(dout)
        _flat_kernel(dropout.dropout_backward, dout, self.mask,
                     dout.dtype.type(self.kept_scale), dx)
        return dx


class BatchNormalization:
    """Batch normalization (Ioffe and Szegedy 2015) of each feature over the batch.

    Training: ``mu``, ``var`` (biased) of the batch, ``xn = (x - mu) / sqrt(var + 10e-7)``,
    ``out = gamma * xn + beta``, and ``running = momentum * running + (1 - momentum) *
    batch_stat`` for the mean and the variance (zeros before the first batch).
    Inference normalizes with the running statistics.  Input of more than two
    dimensions, e.g. (N, C, H, W), is flattened to (N, -1) and restored.  A training
    pass on a single sample is a ValueError: its batch statistics would normalize every
    feature to 0.
    """

    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None):
        self.gamma = gamma
        self.beta = beta
        self.momentum = _validate.momentum(momentum)
        self.running_mean = running_mean
        self.running_var = running_var
        self.input_shape = None
        self._train_shape = None  # the last training forward's input shape
        self.xn = None
        self.std = None
        self.dgamma = None
        self.dbeta = None

    def _params(self, width, dtype):
        _running_stats(self, width, dtype)
        return _vector_params(self, ("gamma", "beta"), width, dtype)

    def forward(self, x, train_flg=True):
        """``x`` (N, D) or (N, ...) normalized per feature, in gamma's dtype; training mode
        uses (and updates the running averages with) the batch statistics and keeps
        what backward needs, inference uses the running ones.  ValueError for a
        training batch of one sample, or gamma/beta not one per feature."""
        x = _validate.float_array(x, "x", _param_dtype(self.gamma))
        self.input_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        gamma, beta = self._params(x.shape[1], x.dtype)
        out = np.empty_like(x)
        if train_flg:
            _validate.batch_statistics(type(self).__name__, x.shape[0], self.input_shape)
            momentum = _validate.momentum(self.momentum)  # before the kept pass is replaced
            self._train_shape = self.input_shape
            self.xn = np.empty_like(x)
            self.std = np.empty(x.shape[1], x.dtype)
            pick(batchnorm.batchnorm_forward_train, x.size)(
                x, gamma, beta, BN_EPS, momentum, self.running_mean, self.running_var,
                self.xn, self.std, out)
        else:
            pick(batchnorm.batchnorm_forward_infer, x.size)(
                x, gamma, beta, self.running_mean, self.running_var, BN_EPS, out)
        return out.reshape(self.input_shape)

    def backward(self, dout):
        """``dx`` of the last training forward (an inference forward since does not
        change it), ``dout`` of its output's shape or, as the book's layer takes it,
        that shape flattened to (N, D) (ValueError otherwise; RuntimeError before one);
        sets ``dgamma`` and ``dbeta`` (D,)."""
        if self.xn is None:
            raise _before_forward("a training forward")
        dout = _validate.float_array(dout, "dout", self.xn.dtype)
        if dout.shape not in (self._train_shape, self.xn.shape):
            flat = "" if self.xn.shape == self._train_shape else f" or {self.xn.shape}"
            raise ValueError(f"dout must have the shape of the last training forward's "
                             f"output, {self._train_shape}{flat}, got {dout.shape}")
        dout = dout.reshape(self.xn.shape)  # flattened, as the forward flattened x
        gamma, _ = self._params(self.xn.shape[1], self.xn.dtype)
        self.dgamma = np.empty_like(gamma)
        self.dbeta = np.empty_like(gamma)
        dx = np.empty_like(dout)
        pick(batchnorm.batchnorm_backward, dout.size)(
            dout, self.xn, self.std, gamma, self.dgamma, self.dbeta, dx)
        return dx.reshape(self._train_shape)


def _dout_like_input(layer, dout, shape):
    """``dout`` checked against ``shape``, the input of the layer's last training
    forward, and shaped like its ``xn``."""
    if layer.xn is None:
        raise _before_forward("a training forward")
    dout = _validate.float_array(dout, "dout", layer.xn.dtype)
    return _validate.same_shape(dout, shape, "dout").reshape(layer.xn.shape)


def _softmax(logits):
    e = np.exp(np.asarray(logits, np.float64) - np.max(logits))
    return e / e.sum()


class GroupNormalization:
    """Group normalization (Wu and He 2018, "Group Normalization").

    ``x`` (N, C) or (N, C, H, W) (any number of spatial axes), float32 or float64 (the
    dtype of ``gamma``); each sample's C channels form ``groups`` groups of C/groups
    channels, each normalized over its channels and positions::

        mu, var = mean, biased variance of the group;  std = sqrt(var + eps)
        xn = (x - mu) / std;  out = gamma[c] * xn + beta[c]

    ``gamma``, ``beta``: (C,), one per feature of (N, D) input, one per channel of
    (N, C, H, W).  backward(dout) sets ``dgamma``, ``dbeta`` (C,) and returns ``dx``
    (shaped like ``x``).  ``train_flg`` is accepted for the book's calling convention;
    training and inference compute the same thing (no running statistics), and a batch
    of one sample is fine.  ValueError where ``groups`` does not divide C, where a group
    holds a single value (normalized to 0 whatever x; PyTorch's InstanceNorm refuses one
    position per channel alike), or ``gamma`` and ``beta`` are not (C,).
    """

    def __init__(self, gamma, beta, groups, eps=NORM_EPS):
        self.gamma = gamma
        self.beta = beta
        self.groups = _book.check_size("groups", groups)
        self.eps = _validate.eps(eps)
        self.input_shape = None
        self.xn = None
        self.std = None
        self.dgamma = None
        self.dbeta = None

    def _group_count(self, x):
        groups = _book.check_size("groups", self.groups)
        if x.shape[1] % groups:
            raise ValueError(f"groups={groups} does not divide the {x.shape[1]} channels "
                             f"of x (shape {x.shape})")
        return groups

    def forward(self, x, train_flg=True):
        """``x`` (N, C) or (N, C, H, W) normalized per sample and group (see the class),
        in gamma's dtype, kept for backward in either mode.  ValueError where
        ``groups`` does not divide C, a group holds one value, or gamma/beta are not
        (C,)."""
        x = _validate.float_array(x, "x", _param_dtype(self.gamma), min_ndim=2)
        groups = self._group_count(x)
        if x.size // (x.shape[0] * groups) < 2:
            raise ValueError(f"{type(self).__name__} of x of shape {x.shape} normalizes "
                             f"groups of one value each ({groups} per sample) to 0, the "
                             f"output beta whatever x; it needs at least 2 values per group")
        gamma, beta = _vector_params(self, ("gamma", "beta"), x.shape[1], x.dtype)
        eps = _validate.eps(self.eps)  # all checked before the kept pass is replaced
        self.input_shape = x.shape
        x = x.reshape(x.shape[0], groups, -1)
        self.xn = np.empty_like(x)
        self.std = np.empty((x.shape[0], groups), x.dtype)
        out = np.empty_like(x)
        # parallel over samples: a single sample stays serial, whatever its size
        pick(normalization.group_norm_forward, x.size if x.shape[0] > 1 else 0)(
            x, self._positions(), gamma, beta, eps, self.xn, self.std, out)
        return out.reshape(self.input_shape)

    def _positions(self):
        """Positions per channel: H * W (1 for (N, C) input)."""
        return math.prod(self.input_shape[2:])

    def backward(self, dout):
        """``dx`` in the forward input's shape from ``dout`` of that shape (ValueError
        otherwise; RuntimeError before any forward); sets ``dgamma`` and ``dbeta``."""
        dout = _dout_like_input(self, dout, self.input_shape)
        gamma, _ = _vector_params(self, ("gamma", "beta"), self.input_shape[1], self.xn.dtype)
        self.dgamma = np.empty_like(gamma)
        self.dbeta = np.empty_like(gamma)
        dx = np.empty_like(dout)
        # parallel over chunks of ROWS_PER_TASK samples: one chunk stays serial
        parallel = dout.shape[0] > normalization.ROWS_PER_TASK
        pick(normalization.group_norm_backward, dout.size if parallel else 0)(
            dout, self._positions(), self.xn, self.std, gamma, self.dgamma, self.dbeta, dx)
        return dx.reshape(self.input_shape)


class LayerNormalization(GroupNormalization):
    """Layer normalization (Ba, Kiros and Hinton 2016, "Layer Normalization"): each
    sample normalized over all its features, ``GroupNormalization`` with one group::

        mu, var = mean, biased variance of x[n];  xn = (x - mu) / sqrt(var + eps)
        out = gamma * xn + beta

    ``x`` (N, D) with ``gamma``, ``beta`` (D,), or (N, C, H, W) with ``gamma``, ``beta``
    (C,), per channel; float32 or float64.  Works on a batch of one sample; training and
    inference compute the same thing.  See ``GroupNormalization`` for the rest.
    """

    def __init__(self, gamma, beta, eps=NORM_EPS):
        super().__init__(gamma, beta, 1, eps)


class InstanceNormalization(GroupNormalization):
    """Instance normalization (Ulyanov, Vedaldi and Lempitsky 2016, "Instance
    Normalization: The Missing Ingredient for Fast Stylization"): each channel of each
    sample normalized over its positions, ``GroupNormalization`` with a group per channel::

        mu, var = mean, biased variance of x[n, c] over H, W
        out = gamma[c] * (x - mu) / sqrt(var + eps) + beta[c]

    ``x`` (N, C, H, W) (any number of spatial axes, at least one), float32 or float64;
    ``gamma``, ``beta`` (C,).  ValueError for (N, D) input, which has no positions to
    normalize over (``LayerNormalization`` normalizes a sample's features).
    """

    def __init__(self, gamma, beta, eps=NORM_EPS):
        super().__init__(gamma, beta, 1, eps)
        self.groups = None  # one per channel

    def _group_count(self, x):
        if x.ndim < 3:
            raise ValueError(f"InstanceNormalization needs (N, C, H, W) input, with positions "
                             f"to normalize each channel over; got shape {x.shape} (use "
                             f"LayerNormalization for (N, D))")
        return x.shape[1]


class SwitchableNormalization:
    """Switchable normalization (Luo, Ren, Peng, Zhang and Li 2018, "Differentiable
    Learning-to-Normalize via Switchable Normalization").

    ``x`` (N, C, H, W) (any number of spatial axes) or (N, C), float32 or float64 (the
    dtype of ``gamma``).  Per channel c of sample n, the mean and the variance are
    softmax-weighted mixes of three statistics::

        instance: over the positions of x[n, c]      layer: over all of x[n]
        batch:    over x[:, c] (training), the running statistics (inference)
        mu  = sum_k softmax(mean_weight)_k mu_k;   var = sum_k softmax(var_weight)_k var_k
        out = gamma[c] * (x - mu) / sqrt(var + eps) + beta[c]

    Biased variances throughout.  (N, C) input has no positions, and the instance
    statistics of a single value are the value itself (variance 0): there only the layer
    and the batch statistics are mixed.  ``mean_weight`` and ``var_weight`` are the mixing
    logits, of shape (3,) (instance, layer, batch) for input with positions and (2,)
    (layer, batch) for (N, C); ``None`` (the default) becomes zeros, an equal mix, at the
    first forward.  Training updates ``running = momentum * running + (1 - momentum) *
    batch statistic`` for the mean and the variance (zeros before the first batch), as
    ``BatchNormalization`` does.  backward(dout) sets ``dgamma``, ``dbeta`` (C,),
    ``dmean_weight``, ``dvar_weight`` and returns ``dx``.  ValueError in training where
    a channel has a single value over the batch (N * H * W < 2).
    """

    def __init__(self, gamma, beta, momentum=0.9, eps=NORM_EPS, mean_weight=None,
                 var_weight=None, running_mean=None, running_var=None):
        self.gamma = gamma
        self.beta = beta
        self.momentum = _validate.momentum(momentum)
        self.eps = _validate.eps(eps)
        self.mean_weight = mean_weight
        self.var_weight = var_weight
        self.running_mean = running_mean
        self.running_var = running_var
        self.input_shape = None
        self._train_shape = None  # the last training forward's input shape
        self._stats = None
        self.xn = None
        self.std = None
        self.dgamma = None
        self.dbeta = None
        self.dmean_weight = None
        self.dvar_weight = None

    def _mixing_weights(self, kinds, dtype):
        """The softmax weights (3,) of (instance, layer, batch): instance 0 for (N, C)."""
        if self.mean_weight is None:
            self.mean_weight = np.zeros(kinds, dtype)
        if self.var_weight is None:
            self.var_weight = np.zeros(kinds, dtype)
        weights = []
        statistics = "(instance, layer, batch)" if kinds == 3 else "(layer, batch)"
        for logits in _vector_params(self, ("mean_weight", "var_weight"), kinds, dtype,
                                     f"statistics {statistics} mixed for this input"):
            w = np.zeros(3)
            w[3 - kinds:] = _softmax(logits)
            weights.append(w)
        return weights

    def forward(self, x, train_flg=True):
        """``x`` (N, C) or (N, C, H, W) normalized with the mixed statistics (see the class),
        in gamma's dtype; training mode mixes the batch statistics (updating the
        running ones) and keeps what backward needs, inference the running ones.
        ValueError for one value per channel over a training batch, or parameters of
        the wrong shape."""
        x = _validate.float_array(x, "x", _param_dtype(self.gamma), min_ndim=2)
        shape = x.shape
        n, c = x.shape[:2]
        positions = x.size // (n * c)
        x = x.reshape(n, -1)
        gamma, beta = _vector_params(self, ("gamma", "beta"), c, x.dtype)
        w_mean, w_var = self._mixing_weights(3 if len(shape) > 2 else 2, x.dtype)
        eps = _validate.eps(self.eps)
        if train_flg:  # all checked before the kept pass is replaced
            _validate.batch_statistics(type(self).__name__, n * positions, shape)
            momentum = _validate.momentum(self.momentum)
        _running_stats(self, c, x.dtype)
        self.input_shape = shape
        out = np.empty_like(x)
        if not train_flg:
            pick(normalization.switchable_forward_infer, x.size)(
                x, positions, gamma, beta, w_mean, w_var, eps, self.running_mean,
                self.running_var, out)
            return out.reshape(self.input_shape)
        self._train_shape = self.input_shape
        self._stats = (np.empty((2, n, c)), np.empty((2, n)), np.empty((2, c)),
                       np.empty((n, c)), w_mean, w_var)
        self.xn = np.empty_like(x)
        self.std = np.empty((n, c))
        pick(normalization.switchable_forward_train, x.size)(
            x, positions, gamma, beta, w_mean, w_var, eps, momentum, self.running_mean,
            self.running_var, *self._stats[:4], self.std, self.xn, out)
        return out.reshape(self.input_shape)

    def backward(self, dout):
        """``dx`` of the last training forward, ``dout`` of its input's shape (ValueError
        otherwise; RuntimeError before one); sets ``dgamma``, ``dbeta``,
        ``dmean_weight`` and ``dvar_weight``."""
        dout = _dout_like_input(self, dout, self._train_shape)
        inst, layer, batch, mean, w_mean, w_var = self._stats
        gamma, _ = _vector_params(self, ("gamma", "beta"), inst.shape[2], self.xn.dtype)
        self.dgamma = np.empty_like(gamma)
        self.dbeta = np.empty_like(gamma)
        dw_mean, dw_var = np.empty(3), np.empty(3)
        dx = np.empty_like(dout)
        pick(normalization.switchable_backward, dout.size)(
            dout, self.xn.shape[1] // inst.shape[2], self.xn, gamma, w_mean, w_var, inst, layer, batch, mean, self.std,
            self.dgamma, self.dbeta, dw_mean, dw_var, dx)
        kinds = 3 if len(self._train_shape) > 2 else 2  # the statistics the forward mixed
        # softmax's backward: d logit_k = w_k (dw_k - sum_j w_j dw_j)
        self.dmean_weight, self.dvar_weight = [
            (w[3 - kinds:] * (dw[3 - kinds:] - w @ dw)).astype(dout.dtype)
            for w, dw in ((w_mean, dw_mean), (w_var, dw_var))]
        return dx.reshape(self._train_shape)


class WeightNormalization(Affine):
    """An Affine layer with weight normalization (Salimans and Kingma 2016, "Weight
    Normalization: A Simple Reparameterization to Accelerate Training of Deep Neural
    Networks"): its weight is ``W = g * v / ||v||``, each output unit's column of ``v``
    scaled to length ``g``::

        forward:  out = x @ W + b            (x flattened to (N, K), as Affine)
        backward: dW = x.T @ dout,  db = sum(dout),  dx = dout @ W.T
                  dg = sum(dW * v, axis=0) / ||v||
                  dv = g / ||v|| * (dW - dg * v / ||v||)

    ``v`` (K, D) float32 or float64 (the dtype it computes in), ``g`` and ``b`` (D,).
    ``W`` (K, D) holds the weight of the last forward pass (one array, rewritten in
    place by each pass, a refused one included; never an array assigned to ``W`` or
    one that ``v`` or ``g`` share memory with), which backward differentiates at:
    change ``v`` and ``g`` after backward, as the book's training loop does.  ``dv``,
    ``dg``, ``db`` (and ``dW``) are new arrays set by backward.  ValueError where a
    column of ``v`` is all zeros (no direction) or ``v`` changed shape or dtype between
    forward and backward; RuntimeError for a backward with no forward, or after a
    forward that raised.
    """

    def __init__(self, v, g, b):
        super().__init__(None, b)
        self.v = v
        self.g = g
        self.norms = None
        self.dv = None
        self.dg = None
        self._weight = None  # the array this layer writes W into
        self._pass = None  # the (W, b) of the last forward pass that returned

    def _params(self):
        self._pass = None  # set again at the end of a pass that succeeds
        v = np.asarray(self.v)
        if v.ndim != 2 or v.dtype not in _validate.FLOAT_DTYPES:
            raise TypeError(f"v must be a 2-D float32 or float64 array, got {v.ndim}-D {v.dtype}")
        v = np.ascontiguousarray(v)
        g, b = _vector_params(self, ("g", "b"), v.shape[1], v.dtype,
                              "output units (columns of v)")
        norms = np.empty(v.shape[1], v.dtype)
        W = self._weight  # the array of the last pass, written again where it may be
        if (W is None or self.W is not W or W.shape != v.shape or W.dtype != v.dtype
                or np.may_share_memory(W, v) or np.may_share_memory(W, g)):
            W = self._weight = np.empty_like(v)
        normalization.weight_norm_weight(v, g, norms, W)
        if not norms.all():
            raise ValueError(f"v has an all-zero column (output unit "
                             f"{np.flatnonzero(norms == 0)[0]}): g * v / ||v|| is undefined")
        self.W, self.norms, self._pass = W, norms, (W, b)
        return W, b

    def forward(self, x):
        """``x @ W + b`` with ``W = g * v / ||v||`` formed first (see the class)."""
        try:
            return super().forward(x)
        except BaseException:
            self._pass = None  # an input refused after the weight was made
            raise

    def _backward_params(self):
        """The weight of the forward pass (the gradient is taken where the loss was)."""
        if self._pass is None:
            raise _before_forward(also=" (or after a forward that raised)")
        return self._pass

    def backward(self, dout):
        """``dx`` as Affine's, at the forward pass's weight; sets ``dW``, ``db``, ``dv`` and
        ``dg``."""
        W, _ = self._backward_params()  # RuntimeError before any (successful) forward
        v = np.ascontiguousarray(self.v)
        if v.shape != W.shape or v.dtype != W.dtype:
            raise ValueError(f"v changed since forward: it was {W.shape} {W.dtype}, it is "
                             f"{v.shape} {v.dtype}")
        g, = _vector_params(self, ("g",), v.shape[1], v.dtype)
        dx = super().backward(dout)
        self.dv = np.empty_like(v)
        self.dg = np.empty_like(g)
        normalization.weight_norm_backward(self.dW, v, g, self.norms, self.dv, self.dg)
        return dx
