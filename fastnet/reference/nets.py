"""The book's fully connected nets in plain NumPy: the oracle for ``fastnet.nets``.

Every layer is built through the class attribute ``layers_module``, so a subclass
that sets it to another module with the same layer classes gets the same net on
other kernels.
"""
from collections import OrderedDict
from numbers import Integral, Real

import numpy as np

from . import layers as reference_layers
from .functions import numerical_gradient
from .random import draw_seed, resolve_rng

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
HE_NAMES = ("relu", "he")
XAVIER_NAMES = ("sigmoid", "xavier")


def _check_size(name, value):
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _weight_std(weight_init_std, fan_in):
    """The std of a weight matrix with ``fan_in`` inputs: He, Xavier or a number."""
    if isinstance(weight_init_std, str):
        name = weight_init_std.lower()
        if name in HE_NAMES:
            return np.sqrt(2.0 / fan_in)
        if name in XAVIER_NAMES:
            return np.sqrt(1.0 / fan_in)
    elif isinstance(weight_init_std, Real) and 0 < weight_init_std < np.inf:
        return weight_init_std
    raise ValueError(f"weight_init_std must be a positive number or one of "
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

    def forward(self, x, train_flg=True):
        return self.layer.forward(x.reshape(x.shape[0], self.channels, -1),
                                  train_flg).reshape(x.shape)

    def backward(self, dout):
        return self.layer.backward(dout.reshape(dout.shape[0], self.channels, -1)
                                   ).reshape(dout.shape)


class MultiLayerNet:
    """Fully connected net: (Affine, activation) per hidden layer, Affine, softmax loss.

    ``weight_init_std`` is the std of the weights, or 'relu'/'he' for
    ``sqrt(2 / fan_in)``, or 'sigmoid'/'xavier' for ``sqrt(1 / fan_in)``; the loss
    adds ``0.5 * weight_decay_lambda * sum(W**2)`` over every weight matrix.  Weights
    are ``std * standard_normal((fan_in, fan_out))`` in ``dtype``, drawn W1, W2, ...
    from ``resolve_rng(seed, rng)`` (kept as ``self.rng``); biases are zeros.
    """

    layers_module = reference_layers

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu",
                 weight_init_std="relu", weight_decay_lambda=0, *, dtype=np.float32,
                 seed=None, rng=None):
        self.input_size = _check_size("input_size", input_size)
        self.output_size = _check_size("output_size", output_size)
        self.hidden_size_list = [_check_size("hidden size", size) for size in hidden_size_list]
        self.hidden_layer_num = len(self.hidden_size_list)
        self.activation = str(activation).lower()
        if self.activation not in ACTIVATION_LAYERS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATION_LAYERS)}, "
                             f"got {activation!r}")
        if not 0 <= weight_decay_lambda < np.inf:
            raise ValueError(f"weight_decay_lambda must be a finite number >= 0, "
                             f"got {weight_decay_lambda!r}")
        self.weight_decay_lambda = float(weight_decay_lambda)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        self.rng = resolve_rng(seed, rng)
        self.params = {}
        self.param_owners = {}  # params key -> (layers key, attribute of that layer)
        self._init_weight(weight_init_std)

        self.layers = OrderedDict()
        for idx in range(1, self.hidden_layer_num + 1):
            self._add_hidden_layer(idx)
        self._add_affine(self.hidden_layer_num + 1)
        self.last_layer = self.layers_module.SoftmaxWithLoss()

    def _init_weight(self, weight_init_std):
        all_size_list = [self.input_size] + self.hidden_size_list + [self.output_size]
        for idx in range(1, len(all_size_list)):
            fan_in, fan_out = all_size_list[idx - 1], all_size_list[idx]
            std = _weight_std(weight_init_std, fan_in)
            weight = std * self.rng.standard_normal((fan_in, fan_out))
            self.params[f"W{idx}"] = weight.astype(self.dtype)
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


class MultiLayerNetExtend(MultiLayerNet):
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
        self.groups = _check_size("groups", groups)
        if self.normalization in ("group", "instance"):
            for size in hidden_size_list:
                if size % self.groups:
                    raise ValueError(f"groups={self.groups} does not divide the hidden size "
                                     f"{size}")
        super().__init__(input_size, hidden_size_list, output_size, activation,
                         weight_init_std, weight_decay_lambda, dtype=dtype, seed=seed, rng=rng)

    def _init_weight(self, weight_init_std):
        super()._init_weight(weight_init_std)
        if self.normalization == "weight":
            for idx in range(1, self.hidden_layer_num + 2):
                v = self.params.pop(f"W{idx}")
                self.params[f"v{idx}"] = v
                self.params[f"g{idx}"] = np.sqrt(np.sum(v ** 2, axis=0)).astype(self.dtype)

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

    def estimate_population_statistics(self, x_train, batch_size):
        """Set batch norm's test-time statistics to the paper's population estimate
        (Ioffe and Szegedy 2015, Algorithm 2; the course notes' section 7.7).

        One pass over ``x_train`` in consecutive batches of ``m = batch_size`` rows,
        in training mode, collects each BatchNorm layer's batch mean and (biased) batch
        variance; then ``running_mean = mean of the batch means`` and ``running_var =
        m / (m - 1) * mean of the batch variances``, the unbiased estimate, replacing the
        running averages.  Only whole batches count (a last partial batch is left out,
        its variance would need another factor).  Dropout runs as in training: each
        Dropout layer draws one mask per batch and its ``step`` advances.  Weights,
        gammas and betas are not changed.  Errors: ValueError without batch norm, for
        ``batch_size`` < 2, or for fewer than ``batch_size`` samples.
        """
        x_train = np.asarray(x_train, dtype=self.dtype)
        n_batches = population_batches(self.use_batchnorm, len(x_train), batch_size)
        batchnorms = {key: layer for key, layer in self.layers.items()
                      if key.startswith("BatchNorm")}
        means = {key: [] for key in batchnorms}
        variances = {key: [] for key in batchnorms}
        for i in range(n_batches):
            h = x_train[i * batch_size:(i + 1) * batch_size]
            for key, layer in self.layers.items():
                if key in batchnorms:
                    means[key].append(h.mean(axis=0))
                    variances[key].append(h.var(axis=0))
                if key.startswith(("Dropout", "BatchNorm")):
                    h = layer.forward(h, True)
                else:
                    h = layer.forward(h)
        m = batch_size
        for key, layer in batchnorms.items():
            layer.running_mean = np.mean(means[key], axis=0).astype(self.dtype)
            layer.running_var = (m / (m - 1) * np.mean(variances[key], axis=0)).astype(self.dtype)

    def loss(self, x, t, train_flg=False):
        """Cross-entropy of ``predict(x, train_flg)`` against ``t`` plus the weight decay."""
        return self._loss(x, t, train_flg)

