"""What fastnet's classes and the NumPy reference share: the book's arguments.

The oracle (``fastnet.reference``) and the product (``fastnet.layers``,
``optimizers``, ``nets``, ``trainer``) are independent implementations of the same
API; neither subclasses the other.  What they must agree on by construction, not by
test, lives here once: how the book's arguments are read and checked (names, defaults,
error messages), the weight initialisation, the seeds and counter-based random
streams, central differences, and the parts of the book's code that are the same in
both (the layer-by-layer net over a module of layer classes, the Trainer's loop).
Everything here is plain NumPy and imports nothing from either side.

Sections: seeds and streams; numerical gradient; optimizer hyperparameters; dropout's
arguments; nets (names, weight init, ``LayerNet``/``LayerNetExtend``); ``TrainerLoop``.
"""
import functools
import inspect
import itertools
import math
from collections import OrderedDict
from numbers import Integral

import numpy as np

from . import _validate, schedules

# ------------------------------------------------------------------ seeds and streams

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def mix64(z):
    """SplitMix64 finaliser (Steele, Lea and Flood 2014) over uint64 (scalars or
    arrays, wrapping arithmetic)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def stream_key(seed, step):
    """The 64-bit key ``mix64(seed * G + mix64(step + G))`` of the counter-based stream
    ``(seed, step)`` (``G = GOLDEN``); both must be non-negative ints.  The dropout
    kernels draw number ``i`` of it (``fastnet.reference.random`` is their oracle)."""
    with np.errstate(over="ignore"):
        return mix64(np.uint64(seed) * GOLDEN + mix64(np.uint64(step) + GOLDEN))


def resolve_rng(seed=None, rng=None):
    """The Generator a net or trainer draws from.

    An explicit ``rng`` wins, then ``seed`` (a non-negative int: TypeError for another
    type, ``True`` included, ValueError below 0).  With neither, the seed is drawn from
    NumPy's global state, so a book script that calls ``np.random.seed(0)`` first is
    still reproducible.
    """
    if rng is not None:
        if seed is not None:
            raise ValueError("give either seed= or rng=, not both")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        return rng
    if seed is None:
        seed = np.random.randint(0, 2**31 - 1)
    # NumPy's messages do not name the seed, and it takes True as 1 and lists of ints
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise TypeError(f"seed must be a non-negative integer or None, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng(seed)


def draw_seed(rng):
    """A fresh non-negative 63-bit seed from ``rng`` (for a Dropout layer's stream)."""
    return int(rng.integers(0, 2**63 - 1))


# ------------------------------------------------------------------ numerical gradient

def numerical_gradient(f, x):
    """Central differences ``(f(x + h e_i) - f(x - h e_i)) / 2h``, ``h = 1e-4``.

    ``x`` (any shape) is perturbed in place one element at a time and restored, so
    ``f`` may ignore its argument and read ``x`` through a closure, as the nets do.
    Raises ``TypeError`` unless ``x`` is a float array whose dtype resolves ``h``
    (float32 or wider: float16's steps between numbers near 1 are ten times ``h``, so
    ``x + h`` rounds back to ``x`` and the gradient comes out 0).  Book sections 4.3-4.4.
    """
    h = 1e-4
    if not (isinstance(x, np.ndarray) and x.dtype.kind == "f"):
        raise TypeError(f"numerical_gradient needs x as a float array, moved in place by "
                        f"+-h (an int array would truncate the steps to 0 and 1e4 times "
                        f"the gradient came out), got {type(x).__name__} of "
                        f"{getattr(x, 'dtype', None)}: np.array(x, dtype=float)")
    if np.finfo(x.dtype).eps >= h:
        raise TypeError(f"numerical_gradient needs x in float32 or wider: {x.dtype} "
                        f"resolves steps of {np.finfo(x.dtype).eps:.3g} near 1, coarser than "
                        f"h = {h}, so x + h rounds back to x and the gradient comes out 0; "
                        f"x.astype(np.float32)")
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        original = x[idx]
        try:
            x[idx] = original + h
            f_plus = f(x)
            x[idx] = original - h
            f_minus = f(x)
        finally:
            x[idx] = original
        grad[idx] = (f_plus - f_minus) / (2 * h)
    return grad


# ------------------------------------------------------------------ optimizers

# Hyperparameters are kept as Python floats: a NumPy float64 scalar would promote
# float32 parameters and state to float64.
def _check_real(name, value):
    if not _validate.is_real_number(value):
        raise TypeError(f"Invalid {name}: {value!r} (must be a real number)")


def check_lr(lr):
    _check_real("learning rate", lr)
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"Invalid learning rate: {lr!r} (must be a finite number > 0)")
    return float(lr)


def check_positive(name, value):
    _check_real(name, value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"Invalid {name}: {value!r} (must be a finite number > 0)")
    return float(value)


def check_nonnegative(name, value):
    _check_real(name, value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"Invalid {name}: {value!r} (must be a finite number >= 0)")
    return float(value)


def check_fraction(name, value):
    _check_real(name, value)
    if not 0 <= value < 1:
        raise ValueError(f"Invalid {name}: {value!r} (must be in [0, 1))")
    return float(value)


def check_step_count(value):
    """Adam's ``iter``, the steps taken: an int >= 0 (the bias corrections divide by
    ``1 - beta1**iter`` after the step's ``iter += 1``, which is 0 for an iter of -1)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"Invalid iter: {value!r} (Adam's step count, must be an int >= 0)")
    if value < 0:
        raise ValueError(f"Invalid iter: {value!r} (Adam's step count, must be an int >= 0)")
    return int(value)


# The check of each optimizer hyperparameter, by attribute name, between steps: as the
# constructor's, but a learning rate of 0 is one a schedule may reach (cosine decay
# with alpha 0).
HYPERPARAMETER_CHECKS = {
    "lr": functools.partial(check_nonnegative, "learning rate"),
    "momentum": functools.partial(check_fraction, "momentum"),
    "decay_rate": functools.partial(check_fraction, "decay_rate"),
    "beta1": functools.partial(check_fraction, "beta1"),
    "beta2": functools.partial(check_fraction, "beta2"),
    "weight_decay": functools.partial(check_nonnegative, "weight_decay"),
    "eps": functools.partial(check_positive, "eps"),
    "iter": check_step_count,
}


def check_hyperparameters(optimizer):
    """Check ``optimizer``'s hyperparameters again, as its constructor checked them:
    they are plain attributes, which a user (or a learning-rate schedule) may set
    between steps.  TypeError for a value that is not a real number, ValueError for
    one out of its range."""
    for name, check in HYPERPARAMETER_CHECKS.items():
        if name in vars(optimizer):
            check(getattr(optimizer, name))


class SGDArgs:
    """SGD's arguments: ``lr``."""

    def __init__(self, lr=0.01):
        self.lr = check_lr(lr)


class MomentumArgs:
    """Momentum's (and Nesterov's) arguments, and the velocities ``v`` (per key)."""

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = check_lr(lr)
        self.momentum = check_fraction("momentum", momentum)
        self.v = {}


class AdaGradArgs:
    """AdaGrad's arguments, and the accumulators ``h`` (per key)."""

    def __init__(self, lr=0.01):
        self.lr = check_lr(lr)
        self.h = {}


class RMSpropArgs:
    """RMSprop's arguments, and the accumulators ``h`` (per key)."""

    def __init__(self, lr=0.01, decay_rate=0.99):
        self.lr = check_lr(lr)
        self.decay_rate = check_fraction("decay_rate", decay_rate)
        self.h = {}


class AdamArgs:
    """Adam's arguments, the step count ``iter`` and the moments ``m``, ``v`` (per key)."""

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr = check_lr(lr)
        self.beta1 = check_fraction("beta1", beta1)
        self.beta2 = check_fraction("beta2", beta2)
        self.iter = 0
        self.m = {}
        self.v = {}


class AdamWArgs(AdamArgs):
    """AdamW's arguments: Adam's, ``weight_decay`` and ``eps``."""

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, weight_decay=0.01, eps=1e-8):
        super().__init__(lr, beta1, beta2)
        self.weight_decay = check_nonnegative("weight_decay", weight_decay)
        self.eps = check_positive("eps", eps)


# name (lower case) -> class name, the same in fastnet.optimizers and the reference
OPTIMIZER_CLASSES = {
    "sgd": "SGD",
    "momentum": "Momentum",
    "nesterov": "Nesterov",
    "adagrad": "AdaGrad",
    "rmsprop": "RMSprop",
    "adam": "Adam",
    "adamw": "AdamW",
}


def make_optimizer(name, registry, kwargs):
    """An instance of the class called ``name`` (case-insensitive) in ``registry`` (name
    -> class), made with ``kwargs``: ValueError for an unknown name, TypeError naming the
    class and what it takes for an argument it does not take."""
    cls = registry.get(str(name).lower())
    if cls is None:
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(registry)}")
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as err:  # not the message of the private base that holds __init__
        takes = ", ".join(inspect.signature(cls).parameters)
        raise TypeError(f"{cls.__name__} takes {takes}: {err}") from None
    return cls(**kwargs)


# ------------------------------------------------------------------ dropout

class DropoutArgs:
    """Dropout's arguments (checked), its stream ``(seed, step)`` and its inference pass.

    ``seed=None`` draws the seed from the global ``np.random`` state; ``step`` counts
    the training passes, so mask number ``k`` is a pure function of ``(seed, k)``.
    """

    def __init__(self, dropout_ratio=0.5, seed=None, *, inverted=False):
        if not _validate.is_real_number(dropout_ratio) or not 0 <= dropout_ratio <= 1:
            raise ValueError(f"dropout_ratio must be in [0, 1], got {dropout_ratio!r}")
        if seed is None:
            seed = draw_seed(resolve_rng())
        if not isinstance(seed, Integral) or isinstance(seed, bool) or not 0 <= seed < 2**64:
            raise ValueError(f"seed must be an integer in [0, 2**64) (the stream's 64-bit "
                             f"key), got {seed!r}")
        self.dropout_ratio = float(dropout_ratio)
        self.seed = int(seed)
        if not isinstance(inverted, bool | np.bool_):
            raise TypeError(f"inverted must be True or False, got {inverted!r}")
        self.inverted = bool(inverted)
        self.step = 0
        self.mask = None

    @property
    def kept_scale(self):
        """The factor of a kept element in training: 1, or ``1 / (1 - dropout_ratio)``
        (0 at ratio 1) when inverted."""
        ratio = _validate.dropout_ratio(self.dropout_ratio)
        if not self.inverted:
            return 1.0
        return 1 / (1 - ratio) if ratio < 1 else 0.0

    def infer(self, x):
        """The inference pass: ``x * (1 - dropout_ratio)`` in ``x``'s dtype (the book's),
        or a copy of ``x`` when inverted."""
        ratio = _validate.dropout_ratio(self.dropout_ratio)
        return x.copy() if self.inverted else x * x.dtype.type(1 - ratio)


# ------------------------------------------------------------------ nets

ACTIVATION_LAYERS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}
NORMALIZATIONS = ("batch", "layer", "group", "instance", "weight", "switchable")
# normalization -> the prefix of its layers' keys in ``layers``, and its class
NORMALIZATION_LAYERS = {"batch": "BatchNorm", "layer": "LayerNorm", "group": "GroupNorm",
                        "instance": "InstanceNorm", "switchable": "SwitchNorm"}
NORMALIZATION_CLASSES = {"batch": "BatchNormalization", "layer": "LayerNormalization",
                         "group": "GroupNormalization", "instance": "InstanceNormalization",
                         "switchable": "SwitchableNormalization"}
# Layers whose forward takes ``train_flg``
TRAIN_FLAG_LAYERS = ("Dropout",) + tuple(NORMALIZATION_LAYERS.values())
# The Python objects of a hidden layer (its layers, views, dict entries), for the memory
# check: 5.6 kB measured with batch norm and dropout (20,000 hidden layers of 2 units)
LAYER_BYTES = 8192
HE_NAMES = ("relu", "he")
XAVIER_NAMES = ("sigmoid", "xavier")


def check_normalized_sizes(normalization, groups, hidden_size_list):
    """ValueError where a hidden layer of ``hidden_size_list`` cannot be normalized by
    ``normalization``: ``groups`` (group norm's groups, instance norm's channels) not
    dividing its size, or groups of a single value, which normalization sets to 0 (the
    layer's output would be beta whatever its input, and nothing below it would learn;
    PyTorch's InstanceNorm refuses one position per channel alike)."""
    for size in hidden_size_list:
        if normalization in ("group", "instance") and size % groups:
            raise ValueError(f"groups={groups} does not divide the hidden size {size} "
                             f"({normalization} norm needs groups dividing every hidden size)")
        if normalization == "layer" and size < 2:
            raise ValueError(f"layer norm of a hidden layer of {size} unit normalizes it to "
                             f"0 whatever its input; it needs at least 2 units")
        if normalization in ("group", "instance") and size // groups < 2:
            raise ValueError(f"{normalization} norm of the hidden size {size} in {groups} "
                             f"groups normalizes groups of one unit each to 0 whatever the "
                             f"input; it needs at least 2 units per group")


def check_size(name, value):
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _finite_nonnegative(value):
    """Whether the real ``value`` is >= 0 and finite as a float64 (an int such as 10**400
    is finite to Python, not to the float64 weights it would scale)."""
    try:
        return 0 <= float(value) < np.inf
    except OverflowError:
        return False


def weight_std(weight_init_std, fan_in):
    """The std of a weight matrix with ``fan_in`` inputs: He, Xavier or a number."""
    if isinstance(weight_init_std, str):
        name = weight_init_std.lower()
        if name in HE_NAMES:
            return np.sqrt(2.0 / fan_in)
        if name in XAVIER_NAMES:
            return np.sqrt(1.0 / fan_in)
    elif _validate.is_real_number(weight_init_std) and _finite_nonnegative(weight_init_std):
        # 0 too: all-zero weights, what the book's section 6.2.1 discusses
        return float(weight_init_std)
    raise ValueError(f"weight_init_std must be a finite number >= 0 or one of "
                     f"{HE_NAMES + XAVIER_NAMES}, got {weight_init_std!r}")


def population_batches(use_batchnorm, n, batch_size):
    """The number of whole batches of ``batch_size`` among ``n`` samples, for
    ``estimate_population_statistics``; a ValueError where the estimate is undefined."""
    if not use_batchnorm:
        raise ValueError("estimate_population_statistics needs batch normalization "
                         "(use_batchnorm=True)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, Integral) or batch_size < 2:
        raise ValueError(f"batch_size must be an integer >= 2 (m / (m - 1) needs m >= 2), "
                         f"got {batch_size!r}")
    if n < batch_size:
        raise ValueError(f"x_train has {n} samples, fewer than one batch of {batch_size}")
    return n // batch_size


class ChannelView:
    """``layer``, a layer of (N, C, L) input, on the (N, D) rows of a fully connected
    net: each row viewed as ``channels`` channels of D / channels positions."""

    def __init__(self, layer, channels):
        self.layer = layer
        self.channels = channels

    # Any other attribute (gamma, beta, dgamma, eps...) is the layer's, read and set.
    def __getattr__(self, name):
        if name in ("layer", "channels"):  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.layer, name)

    def __setattr__(self, name, value):
        if name in ("layer", "channels"):
            object.__setattr__(self, name, value)
        else:
            setattr(self.layer, name, value)

    def forward(self, x, train_flg=True):
        return self.layer.forward(x.reshape(x.shape[0], self.channels, -1),
                                  train_flg).reshape(x.shape)

    def backward(self, dout):
        return self.layer.backward(dout.reshape(dout.shape[0], self.channels, -1)
                                   ).reshape(dout.shape)


class LayerNet:
    """Fully connected net: (Affine, activation) per hidden layer, Affine, softmax loss.

    ``weight_init_std`` is the std of the weights, or 'relu'/'he' for
    ``sqrt(2 / fan_in)``, or 'sigmoid'/'xavier' for ``sqrt(1 / fan_in)``; the loss
    adds ``0.5 * weight_decay_lambda * sum(W**2)`` over every weight matrix.  Weights
    are ``std * standard_normal((fan_in, fan_out))`` in ``dtype``, drawn W1, W2, ...
    from ``resolve_rng(seed, rng)`` (kept as ``self.rng``); biases are zeros.
    ValueError for a ``weight_init_std`` that is not one of these, or whose weights
    overflow ``dtype``.
    """

    layers_module = None  # the module of layer classes the net is built from

    @property
    def weight_decay_lambda(self):
        """The L2 penalty's lambda, a float; set to a finite real >= 0 (TypeError for
        a value that is not a real number, ValueError for one that is not finite or
        below 0), at construction as after it."""
        return self._weight_decay_lambda

    @weight_decay_lambda.setter
    def weight_decay_lambda(self, value):
        self._weight_decay_lambda = _validate.real_scalar(value, "weight_decay_lambda", 0)

    def __setstate__(self, state):
        """A pickle's state; one written before ``weight_decay_lambda`` was a property
        holds it under that name."""
        state = dict(state)
        if "weight_decay_lambda" in state:
            state["_weight_decay_lambda"] = state.pop("weight_decay_lambda")
        self.__dict__.update(state)

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu",
                 weight_init_std="relu", weight_decay_lambda=0, *, dtype=np.float32,
                 seed=None, rng=None):
        self.input_size = check_size("input_size", input_size)
        self.output_size = check_size("output_size", output_size)
        self.hidden_size_list = [check_size("hidden size", size) for size in hidden_size_list]
        self.hidden_layer_num = len(self.hidden_size_list)
        self.activation = str(activation).lower()
        if self.activation not in ACTIVATION_LAYERS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATION_LAYERS)}, "
                             f"got {activation!r}")
        self.weight_decay_lambda = weight_decay_lambda
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        self._check_memory()
        self.rng = resolve_rng(seed, rng)
        self.params = {}
        self.param_owners = {}  # params key -> (layers key, attribute of that layer)
        self._init_weight(weight_init_std)

        self.layers = OrderedDict()
        for idx in range(1, self.hidden_layer_num + 1):
            self._add_hidden_layer(idx)
        self._add_affine(self.hidden_layer_num + 1)
        self.last_layer = self.layers_module.SoftmaxWithLoss()

    def _check_memory(self):
        """``MemoryError`` for a net that cannot be built and trained here: its
        parameters three times (the weights, the gradients, and the fused nets' arena or
        the book's layers' copies), its largest weight matrix drawn in float64, and
        ``LAYER_BYTES`` of Python objects a hidden layer."""
        sizes = [self.input_size, *self.hidden_size_list, self.output_size]
        weights = [fan_in * fan_out for fan_in, fan_out in itertools.pairwise(sizes)]
        n = sum(weights) + sum(sizes[1:])
        _validate.fits_in_memory(
            3 * n * self.dtype.itemsize + 8 * max(weights) + LAYER_BYTES * len(sizes),
            f"a net of {self.hidden_layer_num:,} hidden "
            f"layer{'s' * (self.hidden_layer_num != 1)} and {n:,} {self.dtype.name} parameters")

    def _init_weight(self, weight_init_std):
        all_size_list = [self.input_size] + self.hidden_size_list + [self.output_size]
        for idx in range(1, len(all_size_list)):
            fan_in, fan_out = all_size_list[idx - 1], all_size_list[idx]
            std = weight_std(weight_init_std, fan_in)
            try:
                with np.errstate(over="raise"):
                    weight = (std * self.rng.standard_normal((fan_in, fan_out))
                              ).astype(self.dtype)
            except FloatingPointError:
                raise ValueError(f"weight_init_std={weight_init_std!r} gives W{idx} weights "
                                 f"beyond the range of {self.dtype.name} (largest "
                                 f"{np.finfo(self.dtype).max:.3g})") from None
            self.params[f"W{idx}"] = weight
            self.params[f"b{idx}"] = np.zeros(fan_out, dtype=self.dtype)

    def _add_hidden_layer(self, idx):
        self._add_affine(idx)
        self._add_activation(idx)

    def _add_layer(self, key, cls, params, **options):
        """``self.layers[key] = cls(**options, attr=self.params[k], ...)`` for each
        ``attr -> k`` of ``params``, recorded in ``param_owners``."""
        self.layers[key] = cls(**{attr: self.params[k] for attr, k in params.items()}, **options)
        self.param_owners.update({k: (key, attr) for attr, k in params.items()})

    def _layer_of(self, key):
        """The layer that owns ``params[key]``, and its attribute name for it."""
        layer_key, attr = self.param_owners[key]
        return getattr(self.layers[layer_key], "layer", self.layers[layer_key]), attr

    def _add_affine(self, idx):
        self._add_layer(f"Affine{idx}", self.layers_module.Affine, {"W": f"W{idx}", "b": f"b{idx}"})

    def _decayed_keys(self):
        """The parameters whose gradient weight decay adds ``lambda * p`` to."""
        return [f"W{idx}" for idx in range(1, self.hidden_layer_num + 2)]

    def _weight_matrices(self):
        return [self.params[f"W{idx}"] for idx in range(1, self.hidden_layer_num + 2)]

    def _add_activation(self, idx):
        activation_layer = getattr(self.layers_module, ACTIVATION_LAYERS[self.activation])
        self.layers[f"Activation_function{idx}"] = activation_layer()

    def _forward(self, x, train_flg):
        """The logits; Dropout and normalization layers are told whether this is training."""
        x = np.asarray(x, dtype=self.dtype)
        for key, layer in self.layers.items():
            if key.startswith(TRAIN_FLAG_LAYERS):
                x = layer.forward(x, train_flg)
            else:
                x = layer.forward(x)
        return x

    def _loss(self, x, t, train_flg):
        loss = self.last_layer.forward(self._forward(x, train_flg), t)
        weight_decay = 0.0
        for W in self._weight_matrices():
            weight_decay += 0.5 * self.weight_decay_lambda * float(np.sum(W ** 2))
        return loss + weight_decay

    def predict(self, x):
        return self._forward(x, train_flg=False)

    def loss(self, x, t):
        """Cross-entropy of ``predict(x)`` against ``t`` plus the weight decay."""
        return self._loss(x, t, train_flg=False)

    def accuracy(self, x, t):
        """The fraction of samples whose largest logit is the label (``t``: labels or one-hot)."""
        y = np.argmax(self.predict(x), axis=1)
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        return np.sum(y == t) / float(x.shape[0])

    def numerical_gradient(self, x, t):
        """The gradient of the training loss by central differences, keyed like ``params``."""
        def loss_w(_):
            return self._loss(x, t, train_flg=True)

        return {key: numerical_gradient(loss_w, param) for key, param in self.params.items()}

    def gradient(self, x, t):
        """The gradient of the training loss by backpropagation, keyed like ``params``."""
        self._loss(x, t, train_flg=True)
        dout = self.last_layer.backward(1)
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
        return self._collect_grads()

    def _collect_grads(self):
        """Each parameter's gradient, the attribute ``d<name>`` of the layer that owns it,
        plus ``lambda * p`` for the decayed ones."""
        grads = {}
        for key in self.params:
            layer, attr = self._layer_of(key)
            grads[key] = getattr(layer, "d" + attr)
        if self.weight_decay_lambda:  # without a pass over the weights when 0
            for key in self._decayed_keys():
                grads[key] = grads[key] + self.weight_decay_lambda * self.params[key]
        return grads


class LayerNetExtend(LayerNet):
    """``MultiLayerNet`` with optional normalization and dropout.

    A hidden layer is Affine, a normalization layer, activation, Dropout
    (``use_dropout``).  ``normalization`` is one of ``NORMALIZATIONS``:

    * ``'batch'`` (or the book's ``use_batchnorm=True``): ``BatchNorm{i}``;
    * ``'layer'``: ``LayerNorm{i}``;
    * ``'group'``: ``GroupNorm{i}``, the D units of the hidden layer in ``groups`` groups
      (``groups`` must divide every hidden size);
    * ``'instance'``: ``InstanceNorm{i}``.  A fully connected layer has no positions, so
      its D units are viewed as ``groups`` channels of D / groups positions each (one
      gamma and beta per channel): with ``groups=1``, each sample normalized over its
      features with a single gamma and beta;
    * ``'switchable'``: ``SwitchNorm{i}``, mixing the layer and the batch statistics (a
      unit has no positions, so no instance statistics), with the mixing logits
      ``mean_weight{i}`` and ``var_weight{i}`` (zeros: an equal mix);
    * ``'weight'``: every Affine layer, the last included, is a ``WeightNormalization``
      with ``v{i}`` (drawn as ``W{i}`` would be), ``g{i} = ||v{i}||`` per column (so the
      net starts as the plain one) and ``b{i}``, in place of ``W{i}``.  Weight decay is
      ``0.5 lambda sum(W^2)`` of the effective weights, which is ``0.5 lambda sum(g^2)``.

    Normalizations add ``gamma{i}`` (ones) and ``beta{i}`` (zeros) to ``params``.  Each
    Dropout layer gets ``seed=draw_seed(self.rng)``, in layer order, after all weights
    are drawn.  ``dropout_ration`` is the book's spelling; ``dropout_ratio`` is accepted
    too.  Dropout is the book's, not inverted: the fused training step of
    ``fastnet.nets`` implements that form only.  ``use_batchnorm=True`` with a
    ``normalization`` other than ``'batch'`` is a ValueError.

    A training batch of one sample: ``gradient``, ``numerical_gradient`` and
    ``train_step`` take it with batch norm, as the book's code does (its
    ``batch_norm_gradient_check.py`` checks on ``x_train[:1]``; every feature then
    normalizes to 0, so the gradients below the first batch norm are 0), while
    ``predict``/``loss`` with ``train_flg=True`` run the layer classes, whose
    ``BatchNormalization`` refuses it (ValueError).  Switchable norm refuses it
    everywhere.
    """

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu",
                 weight_init_std="relu", weight_decay_lambda=0, use_dropout=False,
                 dropout_ration=0.5, use_batchnorm=False, *, dropout_ratio=None,
                 normalization=None, groups=2, dtype=np.float32, seed=None, rng=None):
        # 0.5 is dropout_ration's default, so only another value counts as a conflict.
        if dropout_ratio is None:
            dropout_ratio = dropout_ration
        elif dropout_ration != 0.5 and dropout_ration != dropout_ratio:
            raise ValueError(f"dropout_ration={dropout_ration!r} and dropout_ratio="
                             f"{dropout_ratio!r} disagree; give only dropout_ratio")
        if normalization is not None and normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be None or one of {NORMALIZATIONS}, "
                             f"got {normalization!r}")
        if use_batchnorm and normalization not in (None, "batch"):
            raise ValueError(f"use_batchnorm=True and normalization={normalization!r} "
                             f"conflict; give only normalization")
        self.use_dropout = use_dropout
        self.dropout_ratio = dropout_ratio
        self.normalization = "batch" if use_batchnorm else normalization
        self.use_batchnorm = self.normalization == "batch"
        self.groups = check_size("groups", groups)
        check_normalized_sizes(self.normalization, self.groups, hidden_size_list)
        super().__init__(input_size, hidden_size_list, output_size, activation,
                         weight_init_std, weight_decay_lambda, dtype=dtype, seed=seed, rng=rng)

    def _init_weight(self, weight_init_std):
        super()._init_weight(weight_init_std)
        if self.normalization == "weight":
            for idx in range(1, self.hidden_layer_num + 2):
                v = self.params.pop(f"W{idx}")
                self.params[f"v{idx}"] = v
                with np.errstate(over="ignore"):  # refused below
                    g = np.sqrt(np.sum(v ** 2, axis=0)).astype(self.dtype)
                self.params[f"g{idx}"] = g
                if not np.isfinite(g).all():  # sum(v ** 2) overflows the dtype
                    raise ValueError(f"weight_init_std={weight_init_std!r} with weight "
                                     f"normalization: the norm of a column of v{idx} "
                                     f"overflows {np.dtype(self.dtype).name}")
                if not g.all():  # weight_init_std=0, or too small for the dtype
                    raise ValueError(f"weight_init_std={weight_init_std!r} with weight "
                                     f"normalization: v{idx} has a column whose norm is 0 "
                                     f"in {np.dtype(self.dtype).name}, with no direction "
                                     f"to normalize (g * v / ||v||)")

    def _add_affine(self, idx):
        if self.normalization != "weight":
            super()._add_affine(idx)
            return
        self._add_layer(f"Affine{idx}", self.layers_module.WeightNormalization,
                        {"v": f"v{idx}", "g": f"g{idx}", "b": f"b{idx}"})

    def _decayed_keys(self):
        if self.normalization == "weight":  # d/dg of 0.5 lambda ||g v / ||v||||^2 = lambda g
            return [f"g{idx}" for idx in range(1, self.hidden_layer_num + 2)]
        return super()._decayed_keys()

    def _weight_matrices(self):
        if self.normalization == "weight":
            return [self.layers[f"Affine{idx}"].W for idx in range(1, self.hidden_layer_num + 2)]
        return super()._weight_matrices()

    def _add_hidden_layer(self, idx):
        self._add_affine(idx)
        if self.normalization not in (None, "weight"):
            self._add_normalization(idx)
        self._add_activation(idx)
        if self.use_dropout:
            self._add_dropout(idx)

    def _add_normalization(self, idx):
        size = self.hidden_size_list[idx - 1]
        width = self.groups if self.normalization == "instance" else size
        self.params[f"gamma{idx}"] = np.ones(width, dtype=self.dtype)
        self.params[f"beta{idx}"] = np.zeros(width, dtype=self.dtype)
        names = {"gamma": f"gamma{idx}", "beta": f"beta{idx}"}
        options = {"groups": self.groups} if self.normalization == "group" else {}
        if self.normalization == "switchable":
            for name in ("mean_weight", "var_weight"):  # the (layer, batch) logits
                self.params[f"{name}{idx}"] = np.zeros(2, dtype=self.dtype)
                names[name] = f"{name}{idx}"
        key = NORMALIZATION_LAYERS[self.normalization]
        cls = getattr(self.layers_module, NORMALIZATION_CLASSES[self.normalization])
        self._add_layer(f"{key}{idx}", cls, names, **options)
        if self.normalization == "instance":
            self.layers[f"{key}{idx}"] = ChannelView(self.layers[f"{key}{idx}"], self.groups)

    def _add_dropout(self, idx):
        self.layers[f"Dropout{idx}"] = self.layers_module.Dropout(
            self.dropout_ratio, seed=draw_seed(self.rng))

    def predict(self, x, train_flg=False):
        return self._forward(x, train_flg)

    def loss(self, x, t, train_flg=False):
        """Cross-entropy of ``predict(x, train_flg)`` against ``t`` plus the weight decay."""
        return self._loss(x, t, train_flg)


# ------------------------------------------------------------------ the Trainer

class TrainerLoop:
    """Mini-batch training of ``network`` with book-style progress reports.

    One epoch is ``iter_per_epoch = max(train_size / mini_batch_size, 1)`` steps and
    training runs ``int(epochs * iter_per_epoch)`` steps.  At every step whose count
    is a multiple of ``iter_per_epoch`` (the start of an epoch; with a fractional
    ``iter_per_epoch`` that is rarer, as in the book) the train and test accuracies
    are appended to ``train_acc_list`` and ``test_acc_list``, on the first
    ``evaluate_sample_num_per_epoch`` samples of each (all of them for None), as the
    book's Trainer evaluates them.

    Unlike the book, mini-batches are drawn without replacement: consecutive slices
    of a random permutation, reshuffled when fewer than a batch remain.  All
    sampling uses ``self.rng = resolve_rng(seed, rng)``.

    ``lr_schedule`` (not in the book) is a ``fastnet.schedules`` schedule, its spec dict
    (``{"name": "step_decay", "step_size": 5}``) or any callable ``epoch -> multiplier``:
    it is applied per epoch, not per step.  Before each step the optimizer's ``lr`` is
    set to ``lr0 * lr_schedule(epoch)``, ``lr0`` being the optimizer's learning rate
    when made and ``epoch = floor(step / iter_per_epoch)`` (0 during the first epoch;
    in exact arithmetic, not floats).
    A multiplier that is not a real number is a TypeError naming the epoch, one that is
    not finite or below 0 a ValueError.

    ``population_statistics=True`` (not in the book) replaces batch norm's running
    averages, after the last step and before the final test accuracy, by the paper's
    population estimate: ``network.estimate_population_statistics(x_train, m)`` with
    ``m = min(mini_batch_size, train_size)``, which must be at least 2.  The network
    must have batch norm (``MultiLayerNetExtend(..., use_batchnorm=True)``).  The
    per-epoch accuracies are measured with the running averages as before.
    """

    # the module whose ``make_optimizer(name, **optimizer_param)`` makes the optimizer
    optimizers_module = None

    def __init__(self, network, x_train, t_train, x_test, t_test, epochs=20,
                 mini_batch_size=100, optimizer="SGD",
                 optimizer_param={"lr": 0.01},  # noqa: B006 (the book's; only read, never changed)
                 evaluate_sample_num_per_epoch=None, verbose=True, *, lr_schedule=None,
                 population_statistics=False, seed=None, rng=None):
        for name, x, t in (("train", x_train, t_train), ("test", x_test, t_test)):
            if len(x) != len(t):
                raise ValueError(f"x_{name} and t_{name} have different lengths: "
                                 f"{len(x)} and {len(t)}")
        if len(x_train) == 0:
            raise ValueError("x_train is empty")
        if len(x_test) == 0:
            raise ValueError("x_test is empty")
        if not _validate.is_real_number(epochs):  # the book's takes 2.5 epochs too
            raise TypeError(f"epochs must be a number, got {epochs!r}")
        if not 0 <= epochs < math.inf:
            raise ValueError(f"epochs must be a finite number >= 0, got {epochs!r}")
        if isinstance(mini_batch_size, bool) or not isinstance(mini_batch_size, Integral):
            raise TypeError(f"mini_batch_size must be an int, got {mini_batch_size!r}")
        if mini_batch_size < 1:
            raise ValueError(f"mini_batch_size must be >= 1, got {mini_batch_size!r}")
        if evaluate_sample_num_per_epoch is not None:
            evaluate_sample_num_per_epoch = check_size("evaluate_sample_num_per_epoch",
                                                       evaluate_sample_num_per_epoch)
        if not isinstance(population_statistics, bool | np.bool_):
            raise TypeError(f"population_statistics must be True or False, got "
                            f"{population_statistics!r}")
        if population_statistics and not getattr(network, "use_batchnorm", False):
            raise ValueError("population_statistics=True needs a network with batch "
                             "normalization (MultiLayerNetExtend(..., use_batchnorm=True))")
        if population_statistics and min(mini_batch_size, len(x_train)) < 2:
            raise ValueError(f"population_statistics=True needs batches of at least 2 "
                             f"samples, got {min(mini_batch_size, len(x_train))}")
        self.network = network
        self.population_statistics = bool(population_statistics)
        self.verbose = verbose
        self.x_train, self.t_train = x_train, t_train
        self.x_test, self.t_test = x_test, t_test
        self.epochs = epochs
        self.batch_size = mini_batch_size
        self.evaluate_sample_num_per_epoch = evaluate_sample_num_per_epoch
        self.optimizer = self.optimizers_module.make_optimizer(optimizer, **optimizer_param)
        self.lr_schedule = schedules.as_schedule(lr_schedule)
        self.initial_lr = self.optimizer.lr
        self.rng = resolve_rng(seed, rng)

        self.train_size = len(x_train)
        self.iter_per_epoch = max(self.train_size / mini_batch_size, 1)
        steps = epochs * self.iter_per_epoch
        if not math.isfinite(steps):
            raise ValueError(f"epochs={epochs!r} of {self.iter_per_epoch:g} steps each is "
                             f"more steps than a float holds")
        self.max_iter = int(steps)
        self.current_iter = 0
        self.current_epoch = 0
        self._order = np.empty(0, dtype=np.intp)  # the permutation being sliced
        self._cursor = 0

        self.train_loss_list = []
        self.train_acc_list = []
        self.test_acc_list = []

    def _next_batch(self):
        if self._cursor + self.batch_size > len(self._order):
            self._order = self.rng.permutation(self.train_size)
            self._cursor = 0
        batch = self._order[self._cursor:self._cursor + self.batch_size]
        self._cursor += self.batch_size
        return batch

    def _step(self, x_batch, t_batch):
        """One update of the network on one mini-batch; returns the loss after it."""
        grads = self.network.gradient(x_batch, t_batch)
        self.optimizer.update(self.network.params, grads)
        return self.network.loss(x_batch, t_batch)

    def _epoch(self):
        """The epoch of step ``current_iter``: ``floor(step / iter_per_epoch)``, computed
        in integers (the float quotient put step 250 of 1000 images in batches of 60,
        exactly the start of epoch 15, in epoch 14)."""
        return self.current_iter * min(self.batch_size, self.train_size) // self.train_size

    def _records_accuracy(self):
        """Whether this step (number ``current_iter``, just taken) records the
        accuracies: the book's test, a step count that is a multiple of
        ``iter_per_epoch``."""
        return self.current_iter % self.iter_per_epoch == 0

    def _sample(self, x, t):
        """The first ``evaluate_sample_num_per_epoch`` samples of ``(x, t)`` (the book's;
        drawing them at random would move the mini-batches' random stream)."""
        n = self.evaluate_sample_num_per_epoch
        return (x, t) if n is None else (x[:n], t[:n])

    def train_step(self):
        if self.lr_schedule is not None:
            epoch = self._epoch()
            multiplier = _validate.real_scalar(
                self.lr_schedule(epoch), f"the multiplier lr_schedule({epoch}) returned", 0)
            self.optimizer.lr = self.initial_lr * multiplier
        batch = self._next_batch()
        loss = self._step(self.x_train[batch], self.t_train[batch])
        self.train_loss_list.append(loss)
        if self.verbose:
            print("train loss:" + str(loss))

        if self._records_accuracy():
            self.current_epoch += 1
            train_acc = self.network.accuracy(*self._sample(self.x_train, self.t_train))
            test_acc = self.network.accuracy(*self._sample(self.x_test, self.t_test))
            self.train_acc_list.append(train_acc)
            self.test_acc_list.append(test_acc)
            if self.verbose:
                print("=== epoch:" + str(self.current_epoch) + ", train acc:"
                      + str(train_acc) + ", test acc:" + str(test_acc) + " ===")
        self.current_iter += 1

    def train(self):
        for _ in range(self.max_iter):
            self.train_step()
        if self.population_statistics:
            self.network.estimate_population_statistics(
                self.x_train, min(self.batch_size, self.train_size))

        test_acc = self.network.accuracy(self.x_test, self.t_test)
        if self.verbose:
            print("=============== Final Test Accuracy ===============")
            print("test acc:" + str(test_acc))
