"""The book's optimizers on fused kernels (``fastnet.kernels.optimizers``).

Each class is its ``fastnet.reference.optimizers`` namesake (same hyperparameters,
validation and lazily created state dicts ``v``/``h``/``m``/``iter``) with ``update``
running one fused pass per parameter instead of several NumPy expressions.
``update_flat`` does the same over a whole parameter arena in one pass; the nets'
fast ``train_step`` uses it, and the per-key state dicts then hold views into the
optimizer's state arenas, so they stay inspectable.
"""
import math

import numpy as np

from . import _validate
from .kernels import optimizers as kernels
from .kernels.jit import pick
from .reference import optimizers as reference

EPS = 1e-7


class _FusedUpdate:
    """What every fused optimizer shares: kernel calls over flat arrays."""

    kernel = None
    state_names = ()

    def _hyperparameters(self):
        """The kernel's scalar arguments after the state arrays, before ``wd``."""
        raise NotImplementedError

    def _begin_step(self):
        """Per-step bookkeeping (Adam's step count)."""

    def update(self, params, grads):
        """Update every array of ``params`` in place from ``grads`` (same keys).

        Every gradient is checked before anything is updated, so a bad one leaves the
        parameters and the state (Adam's step count included) as they were.
        """
        checked = {key: self._checked_grad(key, param, grads) for key, param in params.items()}
        self._begin_step()
        for key, param in params.items():
            flat = param.reshape(-1) if param.flags.c_contiguous else param.flatten()
            states = [self._state(name, key, param).reshape(-1) for name in self.state_names]
            self._run(flat, checked[key].reshape(-1), states, 0.0)
            if not param.flags.c_contiguous:
                param[...] = flat.reshape(param.shape)

    @staticmethod
    def _checked_grad(key, param, grads):
        if key not in grads:
            raise KeyError(f"grads has no entry for parameter {key!r}")
        if not isinstance(param, np.ndarray) or param.dtype not in _validate.FLOAT_DTYPES:
            raise TypeError(f"params[{key!r}] must be a float32 or float64 array")
        return _validate.same_shape(
            _validate.float_array(grads[key], f"grads[{key!r}]", param.dtype, 0),
            param.shape, f"grads[{key!r}]")

    def update_flat(self, params, grads, views, weight_decay=0.0, n_decayed=0):
        """One step over a flat parameter arena and its gradient arena.

        ``views`` maps each key to ``(offset, shape)`` in the arena, to expose the
        state per key; ``weight_decay * p`` is added to the gradient of the first
        ``n_decayed`` elements (the weight matrices) inside the same pass.
        """
        self._begin_step()
        states = [self._state_arena(name, params, views) for name in self.state_names]
        if not weight_decay:
            n_decayed = 0  # the whole arena in one kernel call
        self._run(params[:n_decayed], grads[:n_decayed], [s[:n_decayed] for s in states],
                  weight_decay)
        self._run(params[n_decayed:], grads[n_decayed:], [s[n_decayed:] for s in states], 0.0)

    def _run(self, p, g, states, weight_decay):
        if p.size:
            scalar = p.dtype.type
            pick(self.kernel, p.size)(p, g, *states,
                                      *[scalar(h) for h in self._hyperparameters()],
                                      scalar(weight_decay))

    def _state(self, name, key, param):
        per_key = getattr(self, name)
        if key not in per_key:
            per_key[key] = np.zeros(param.shape, param.dtype)
        return per_key[key]

    def _state_arena(self, name, params, views):
        """The flat state arena ``name`` for ``params``, made on first use; the per-key
        dict then holds views into it (state that already existed is carried over)."""
        arenas = self.__dict__.setdefault("_arenas", {})
        arena = arenas.get(name)
        if arena is None or arena.shape != params.shape or arena.dtype != params.dtype:
            arena = arenas[name] = np.zeros_like(params)
            per_key = getattr(self, name)
            for key, (offset, shape) in views.items():
                view = arena[offset:offset + math.prod(shape)].reshape(shape)
                if key in per_key:
                    view[...] = per_key[key]
                per_key[key] = view
        return arena


class SGD(_FusedUpdate, reference.SGD):
    __doc__ = reference.SGD.__doc__
    kernel = staticmethod(kernels.sgd)

    def _hyperparameters(self):
        return (self.lr,)


class Momentum(_FusedUpdate, reference.Momentum):
    __doc__ = reference.Momentum.__doc__
    kernel = staticmethod(kernels.momentum)
    state_names = ("v",)

    def _hyperparameters(self):
        return (self.lr, self.momentum)


class Nesterov(_FusedUpdate, reference.Nesterov):
    __doc__ = reference.Nesterov.__doc__
    kernel = staticmethod(kernels.nesterov)
    state_names = ("v",)

    def _hyperparameters(self):
        mu = self.momentum
        return (self.lr, mu, mu * mu, (1 + mu) * self.lr)


class AdaGrad(_FusedUpdate, reference.AdaGrad):
    __doc__ = reference.AdaGrad.__doc__
    kernel = staticmethod(kernels.adagrad)
    state_names = ("h",)

    def _hyperparameters(self):
        return (self.lr, EPS)


class RMSprop(_FusedUpdate, reference.RMSprop):
    __doc__ = reference.RMSprop.__doc__
    kernel = staticmethod(kernels.rmsprop)
    state_names = ("h",)

    def _hyperparameters(self):
        return (self.lr, self.decay_rate, 1 - self.decay_rate, EPS)


class Adam(_FusedUpdate, reference.Adam):
    __doc__ = reference.Adam.__doc__
    kernel = staticmethod(kernels.adam)
    state_names = ("m", "v")

    def _begin_step(self):
        self.iter += 1
        self._lr_t = self.lr * math.sqrt(1 - self.beta2 ** self.iter) / (1 - self.beta1 ** self.iter)

    def _hyperparameters(self):
        return (self._lr_t, 1 - self.beta1, 1 - self.beta2, EPS)


OPTIMIZERS = {name: globals()[cls.__name__] for name, cls in reference.OPTIMIZERS.items()}


def make_optimizer(name, **kwargs):
    """The optimizer called ``name`` (case-insensitive): sgd, momentum, nesterov, adagrad,
    rmsprop or adam."""
    return reference.optimizer_class(name, OPTIMIZERS)(**kwargs)
