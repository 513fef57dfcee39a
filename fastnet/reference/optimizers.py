"""The book's optimizers in plain NumPy: the oracle for ``fastnet.optimizers``.

``update(params, grads)`` takes two dicts of arrays with the same keys and updates
``params`` in place, so layers holding those arrays see the new values.  State
(``v``, ``h``, ``m``, ``iter``) is created lazily, one zero array per key the first
time the key is seen, shaped and typed like the parameter.  In the formulas below
``p`` is a parameter, ``g`` its gradient and ``eps = 1e-7``.  The hyperparameters and
their checks are ``fastnet._book``'s, shared with ``fastnet.optimizers``.
"""
import math

import numpy as np

from .. import _book


def _add_zeros_for_new_keys(state, params):
    """Give ``state`` a zero array like each parameter it has not seen yet."""
    for key, param in params.items():
        if key not in state:
            state[key] = np.zeros_like(param)


class SGD(_book.SGDArgs):
    """Stochastic gradient descent: ``p -= lr * g``."""

    def update(self, params, grads):
        for key in params:
            params[key] -= self.lr * grads[key]


class Momentum(_book.MomentumArgs):
    """Momentum SGD: ``v = momentum * v - lr * g; p += v``."""

    def update(self, params, grads):
        _add_zeros_for_new_keys(self.v, params)
        for key in params:
            self.v[key] = self.momentum * self.v[key] - self.lr * grads[key]
            params[key] += self.v[key]


class Nesterov(Momentum):
    """Nesterov's accelerated gradient (Bengio et al. 2012, arXiv:1212.0901).

    ``p += momentum**2 * v; p -= (1 + momentum) * lr * g; v = momentum * v - lr * g``,
    in that order: ``p`` moves with the velocity of the *previous* step.  (The book's
    code updates ``v`` first and so applies ``momentum**2`` to the new velocity.)
    """

    def update(self, params, grads):
        _add_zeros_for_new_keys(self.v, params)
        for key in params:
            params[key] += self.momentum * self.momentum * self.v[key]
            params[key] -= (1 + self.momentum) * self.lr * grads[key]
            self.v[key] = self.momentum * self.v[key] - self.lr * grads[key]


class AdaGrad(_book.AdaGradArgs):
    """AdaGrad: ``h += g * g; p -= lr * g / (sqrt(h) + eps)``."""

    def update(self, params, grads):
        _add_zeros_for_new_keys(self.h, params)
        for key in params:
            self.h[key] += grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


class RMSprop(_book.RMSpropArgs):
    """RMSprop: ``h = decay_rate * h + (1 - decay_rate) * g * g; p -= lr * g / (sqrt(h) + eps)``."""

    def update(self, params, grads):
        _add_zeros_for_new_keys(self.h, params)
        for key in params:
            self.h[key] *= self.decay_rate
            self.h[key] += (1 - self.decay_rate) * grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


class Adam(_book.AdamArgs):
    """Adam (Kingma and Ba, arXiv:1412.6980v8), bias correction folded into the step.

    ``iter += 1; lr_t = lr * sqrt(1 - beta2**iter) / (1 - beta1**iter);
    m += (1 - beta1) * (g - m); v += (1 - beta2) * (g * g - v);
    p -= lr_t * m / (sqrt(v) + eps)``.  Folding the correction into ``lr_t`` puts
    ``eps`` on the uncorrected ``sqrt(v)``, a slightly different convention from the paper.
    """

    def update(self, params, grads):
        _add_zeros_for_new_keys(self.m, params)
        _add_zeros_for_new_keys(self.v, params)
        self.iter += 1
        lr_t = self.lr * math.sqrt(1 - self.beta2 ** self.iter) / (1 - self.beta1 ** self.iter)
        for key in params:
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
            params[key] -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + 1e-7)


class AdamW(Adam, _book.AdamWArgs):
    """Adam with decoupled weight decay (Loshchilov and Hutter, "Decoupled Weight Decay
    Regularization", ICLR 2019, arXiv:1711.05101), as ``torch.optim.AdamW`` computes it.

    ``iter += 1; m += (1 - beta1) * (g - m); v += (1 - beta2) * (g * g - v);
    m_hat = m / (1 - beta1**iter); v_hat = v / (1 - beta2**iter);
    p -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * p)``.

    The decay shrinks the parameter itself, outside the gradient, so Adam's division by
    ``sqrt(v_hat)`` does not weaken it where gradients are large.  An L2 term in the loss
    (the nets' ``weight_decay_lambda``, added to ``g``) is a different, coupled decay
    that goes through ``m`` and ``v``; with both set, both apply, so leave
    ``weight_decay_lambda`` at 0 when using AdamW's ``weight_decay``.  Every parameter
    given is decayed, biases and batch norm's gamma and beta included, as PyTorch does
    for one parameter group.  Conventions differing from ``Adam`` here: ``eps`` sits on
    the bias-corrected ``sqrt(v_hat)`` (the paper's and PyTorch's placement) and
    defaults to PyTorch's 1e-8; the decay is scaled by ``lr`` (PyTorch's form; the
    paper scales it by the schedule multiplier only), so a learning-rate schedule
    that sets ``lr`` scales both terms.
    """

    def update(self, params, grads):
        _add_zeros_for_new_keys(self.m, params)
        _add_zeros_for_new_keys(self.v, params)
        self.iter += 1
        for key in params:
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
            m_hat = self.m[key] / (1 - self.beta1 ** self.iter)
            v_hat = self.v[key] / (1 - self.beta2 ** self.iter)
            params[key] -= self.lr * (m_hat / (np.sqrt(v_hat) + self.eps)
                                      + self.weight_decay * params[key])


OPTIMIZERS = {name: globals()[cls] for name, cls in _book.OPTIMIZER_CLASSES.items()}


def make_optimizer(name, **kwargs):
    """The optimizer called ``name`` (case-insensitive, a key of ``OPTIMIZERS``)."""
    return _book.make_optimizer(name, OPTIMIZERS, kwargs)
