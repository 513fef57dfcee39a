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

    def _add_affine(self, idx):
        self.layers[f"Affine{idx}"] = self.layers_module.Affine(
            self.params[f"W{idx}"], self.params[f"b{idx}"])

    def _add_activation(self, idx):
        activation_layer = getattr(self.layers_module, ACTIVATION_LAYERS[self.activation])
        self.layers[f"Activation_function{idx}"] = activation_layer()

    def _forward(self, x, train_flg):
        """The logits; Dropout and BatchNorm layers are told whether this is training."""
        x = np.asarray(x, dtype=self.dtype)
        for key, layer in self.layers.items():
            if key.startswith(("Dropout", "BatchNorm")):
                x = layer.forward(x, train_flg)
            else:
                x = layer.forward(x)
        return x

    def _loss(self, x, t, train_flg):
        weight_decay = 0.0
        for idx in range(1, self.hidden_layer_num + 2):
            W = self.params[f"W{idx}"]
            weight_decay += 0.5 * self.weight_decay_lambda * float(np.sum(W ** 2))
        return self.last_layer.forward(self._forward(x, train_flg), t) + weight_decay

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
        grads = {}
        for idx in range(1, self.hidden_layer_num + 2):
            affine = self.layers[f"Affine{idx}"]
            grads[f"W{idx}"] = affine.dW
            if self.weight_decay_lambda:  # lambda * W, without a pass over W when 0
                grads[f"W{idx}"] = affine.dW + self.weight_decay_lambda * self.params[f"W{idx}"]
            grads[f"b{idx}"] = affine.db
        return grads


class MultiLayerNetExtend(MultiLayerNet):
    """``MultiLayerNet`` with optional batch normalization and dropout.

    A hidden layer is Affine, BatchNorm (``use_batchnorm``), activation, Dropout
    (``use_dropout``).  Batch norm adds ``gamma{i}`` (ones) and ``beta{i}`` (zeros) to
    ``params``.  Each Dropout layer gets ``seed=draw_seed(self.rng)``, in layer order,
    after all weights are drawn.  ``dropout_ration`` is the book's spelling;
    ``dropout_ratio`` is accepted too.  Dropout is the book's, not inverted: the fused
    training step of ``fastnet.nets`` implements that form only.
    """

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu",
                 weight_init_std="relu", weight_decay_lambda=0, use_dropout=False,
                 dropout_ration=0.5, use_batchnorm=False, *, dropout_ratio=None,
                 dtype=np.float32, seed=None, rng=None):
        # 0.5 is dropout_ration's default, so only another value counts as a conflict.
        if dropout_ratio is None:
            dropout_ratio = dropout_ration
        elif dropout_ration != 0.5 and dropout_ration != dropout_ratio:
            raise ValueError(f"dropout_ration={dropout_ration!r} and dropout_ratio="
                             f"{dropout_ratio!r} disagree; give only dropout_ratio")
        self.use_dropout = use_dropout
        self.dropout_ratio = dropout_ratio
        self.use_batchnorm = use_batchnorm
        super().__init__(input_size, hidden_size_list, output_size, activation,
                         weight_init_std, weight_decay_lambda, dtype=dtype, seed=seed, rng=rng)

    def _add_hidden_layer(self, idx):
        self._add_affine(idx)
        if self.use_batchnorm:
            self._add_batchnorm(idx)
        self._add_activation(idx)
        if self.use_dropout:
            self._add_dropout(idx)

    def _add_batchnorm(self, idx):
        size = self.hidden_size_list[idx - 1]
        self.params[f"gamma{idx}"] = np.ones(size, dtype=self.dtype)
        self.params[f"beta{idx}"] = np.zeros(size, dtype=self.dtype)
        self.layers[f"BatchNorm{idx}"] = self.layers_module.BatchNormalization(
            self.params[f"gamma{idx}"], self.params[f"beta{idx}"])

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

    def _collect_grads(self):
        grads = super()._collect_grads()
        if self.use_batchnorm:
            for idx in range(1, self.hidden_layer_num + 1):
                batchnorm = self.layers[f"BatchNorm{idx}"]
                grads[f"gamma{idx}"] = batchnorm.dgamma
                grads[f"beta{idx}"] = batchnorm.dbeta
        return grads
