"""The book's optimizers on fused kernels (``fastnet.kernels.optimizers``).

Each class takes the book's hyperparameters (checked by ``fastnet._book``, as its
``fastnet.reference.optimizers`` namesake, the NumPy oracle, checks them) and keeps
lazily created state dicts ``v``/``h``/``m``/``iter``, with ``update`` running one fused
pass per parameter instead of several NumPy expressions.
``update_flat`` does the same over a whole parameter arena in one pass; the nets'
fast ``train_step`` uses it, and so does ``update`` when given a net's own
``params``/``grads`` dicts, and the per-key state dicts then hold views into the
optimizer's state arenas, so they stay inspectable.

``update`` takes everything the book's optimizers take.  Entries the kernel cannot
update in place (a Python float, as in the book's ``optimizer_compare_naive.py``, a
float16 array, a broadcasting gradient) get each class's ``_book_rule``: the book's
NumPy expressions for one key, so NumPy's promotion and errors are the book's.
"""
import copy
import functools
import inspect
import math
import numbers

import numpy as np

from . import _book, _validate
from .arena import ArenaDict, aligned_zeros
from .kernels import optimizers as kernels
from .kernels.jit import pick

EPS = 1e-7


class _FusedUpdate:
    """What every fused optimizer shares: kernel calls over flat arrays."""

    kernel = None
    state_names = ()

    def _hyperparameters(self):
        """The kernel's scalar arguments after the state arrays, before ``wd``: a dict
        from each one's formula (named in errors) to its value, in the kernel's order."""
        raise NotImplementedError

    def _begin_step(self):
        """Per-step bookkeeping (Adam's step count)."""

    def update(self, params, grads):
        """Update every entry of ``params`` from ``grads`` (same keys), as the book does.

        A float32/float64 array parameter whose gradient has its shape and a real dtype
        (float32/float64, converted to the parameter's; int or bool, promoted) is updated
        in place by the fused kernel.  Every other entry the book's code takes -- a
        Python or NumPy scalar (``params = {'x': -7.0}`` of the book's
        ``optimizer_compare_naive.py``), a float16 array, a gradient that broadcasts,
        such as a scalar -- gets the book's NumPy expressions (``_book_rule``): an array
        is updated in place, a scalar is re-bound in ``params`` as the book's
        ``params[key] -= ...`` re-binds it, and the state holds what the book's would.
        What the book's code rejects raises the same exception (an int array parameter:
        NumPy's casting ``TypeError``; a list as gradient: ``TypeError``).

        All keys are checked and the book's updates computed before anything is written,
        so a failing call leaves the parameters and the state (Adam's step count
        included) as they were.

        A net's own ``net.params`` and ``net.grads`` (``fastnet.arena.ArenaDict``s of one
        layout whose entries are still their arena views) take one ``update_flat`` pass
        over the arenas instead, without weight decay: ``gradient()`` has added it.
        """
        if _one_arena(params, grads):
            self.update_flat(params.arena, grads.arena, params.layout)
            return
        _book.check_hyperparameters(self)
        fused, book = {}, []
        for key, param in params.items():
            grad = self._fused_grad(key, param, grads)
            if grad is None:
                book.append(key)
            else:
                fused[key] = grad
        states = {key: [self._state(name, key, params[key]) for name in self.state_names]
                  for key in fused}  # stored once every key has succeeded
        self._begin_step()
        try:
            staged = [self._book_step(key, params[key], grads[key]) for key in book]
            scalars = {dtype: self._scalars(dtype, 0.0)
                       for dtype in {params[key].dtype for key in fused}}
        except BaseException:
            self._cancel_step()
            raise
        for key, grad in fused.items():
            param = params[key]
            flat = param.reshape(-1) if param.flags.c_contiguous else param.flatten()
            self._run(flat, grad.reshape(-1), [s.reshape(-1) for s in states[key]],
                      scalars[param.dtype])
            if not param.flags.c_contiguous:
                param[...] = flat.reshape(param.shape)
            for name, state in zip(self.state_names, states[key]):
                getattr(self, name)[key] = state
        for key, new_param, new_state in staged:
            _store(params, key, new_param)
            for name, value in new_state.items():
                _store(getattr(self, name), key, value)

    @staticmethod
    def _fused_grad(key, param, grads):
        """``grads[key]`` as the kernel takes it, or None where the book's arithmetic
        decides (see ``update``); a gradient of a shape that cannot broadcast to the
        parameter's is the ValueError the book's in-place update would raise."""
        if key not in grads:
            raise KeyError(f"grads has no entry for parameter {key!r}")
        if isinstance(param, np.ndarray) and not param.flags.writeable:
            raise ValueError(f"params[{key!r}] is read-only: update writes each array "
                             f"parameter in place (the book's p -= ...)")
        grad = grads[key]
        if not (isinstance(param, np.ndarray) and param.dtype in _validate.FLOAT_DTYPES
                and isinstance(grad, np.ndarray | np.generic | numbers.Real)):
            return None
        grad = np.asarray(grad)
        if grad.dtype not in _validate.FLOAT_DTYPES and grad.dtype.kind not in "biu":
            return None  # float16, complex, object: the book's promotion rules
        if grad.shape != param.shape:
            if _broadcasts_to(grad.shape, param.shape):
                return None
            raise ValueError(f"grads[{key!r}] must have shape {param.shape}, got {grad.shape}")
        return np.asarray(grad, dtype=param.dtype, order="C")

    def _book_step(self, key, param, grad):
        """``(key, new param, new state by name)``: the book's update of one key, computed
        on copies so that nothing changes until every key has succeeded."""
        state = {}
        for name in self.state_names:
            value = getattr(self, name).get(key)
            state[name] = np.zeros_like(param) if value is None else copy.copy(value)
        try:
            return key, self._book_rule(copy.copy(param), grad, state), state
        except Exception as err:  # the book's exception, told where it arose
            err.add_note(f"raised by {type(self).__name__}.update for params[{key!r}] "
                         "(the book's NumPy update, which raises it too)")
            raise

    def _book_rule(self, p, g, state):
        """The book's NumPy update of one parameter ``p`` (returned: updated in place if
        an array, else a new value), its gradient ``g`` and ``state`` (name -> value,
        updated); Python-float hyperparameters, so NumPy's promotion is the book's."""
        raise NotImplementedError

    def _cancel_step(self):
        """Undo ``_begin_step`` after a failed update."""

    def update_flat(self, params, grads, views, weight_decay=0.0, n_decayed=0):
        """One step over a flat parameter arena and its gradient arena.

        ``params`` and ``grads`` are 1-D C-contiguous arrays of one float dtype
        (float32/float64) and size, ``params`` writeable.  ``views`` maps each key to
        ``(offset, shape)`` in the arena (within it), to expose the state per key;
        ``weight_decay * p`` is added to the gradient of the first ``n_decayed``
        elements (the weight matrices) inside the same pass.  TypeError for arrays of
        another type or dtype, ValueError for other shapes, sizes or views; nothing is
        changed then.
        """
        _check_arenas(params, grads, views, n_decayed)
        states = self._state_arenas(params, views)
        scalars = self._begin_flat_step(params.dtype, weight_decay)
        self._step_flat(params, grads, states, scalars, n_decayed if weight_decay else 0)

    def _begin_flat_step(self, dtype, weight_decay):
        """Check the hyperparameters, begin the step (``_cancel_step`` undoes it) and
        return the kernel's scalars in ``dtype``, ``weight_decay`` last: the half of
        ``update_flat`` that can refuse, which a net's ``train_step`` runs before its
        pass."""
        _book.check_hyperparameters(self)
        self._begin_step()
        try:
            return self._scalars(dtype, weight_decay)
        except ValueError:
            self._cancel_step()
            raise

    def _state_arenas(self, params, views):
        """The state arenas for the parameter arena ``params`` (``_state_arena``), taken
        before a step begins: per-key state that cannot be taken is refused first."""
        return [self._state_arena(name, params, views) for name in self.state_names]

    def _step_flat(self, params, grads, states, scalars, n_decayed):
        """The other half: the kernel over the arenas and ``states``, ``scalars``'
        weight decay (last) on the first ``n_decayed`` elements only."""
        if n_decayed:
            self._run(params[:n_decayed], grads[:n_decayed],
                      [s[:n_decayed] for s in states], scalars)
            params, grads = params[n_decayed:], grads[n_decayed:]
            states = [s[n_decayed:] for s in states]
        if scalars[-1]:
            scalars = scalars.copy()
            scalars[-1] = 0  # the same step without the decay
        self._run(params, grads, states, scalars)

    def _scalars(self, dtype, weight_decay):
        """The kernel's scalar arguments after the state arrays (this step's, once
        ``_begin_step`` has run) and ``weight_decay``, in ``dtype``; ValueError where
        one of them, or a hyperparameter the user gave (Adam's lr of 1e39, whose
        bias-corrected step size fits float32), overflows it."""
        hyper = self._hyperparameters()
        given = [(name, value) for name in _given_names(type(self))
                 if _validate.is_real_number(value := getattr(self, name, None))]
        try:
            return _validate.fit_in([*hyper.values(), weight_decay,
                                     *(value for _, value in given)],
                                    dtype, f"{type(self).__name__}'s hyperparameters"
                                    )[:len(hyper) + 1]
        except ValueError as err:  # name the argument the user gave, else the formula
            unnamed = err
        cls = type(self).__name__
        for name, value in given:
            _validate.fit_in([value], dtype, f"{cls}'s {name}")
        _validate.fit_in([weight_decay], dtype, "the weight decay (weight_decay_lambda)")
        formed_from = [f"{name}={value!r}" for name, value in given]
        if "iter" in vars(self):
            formed_from.append(f"iter={self.iter}")
        with np.errstate(over="ignore"):
            fits = np.isfinite(np.array(list(hyper.values()), dtype))
        for (formula, value), fit in zip(hyper.items(), fits):
            if not fit:
                raise ValueError(f"{cls}'s {formula} is {value:.6g} with "
                                 f"{', '.join(formed_from)}: it does not fit "
                                 f"{np.dtype(dtype).name} (it overflows to inf)")
        raise unnamed

    def _run(self, p, g, states, scalars):
        if p.size:
            pick(self.kernel, p.size)(p, g, *states, *scalars)

    def _state(self, name, key, param):
        """The kernel's state array for ``key``: C-contiguous, shaped and typed like
        ``param`` (state the book's rule left as a scalar is converted); a new array is
        not stored in the state dict (the caller stores it once the step succeeds)."""
        state = getattr(self, name).get(key)
        if not (type(state) is np.ndarray and state.shape == param.shape
                and state.dtype == param.dtype and state.flags.c_contiguous):
            state = (np.zeros(param.shape, param.dtype) if state is None else
                     np.array(self._broadcast_state(name, key, state, param.shape), param.dtype))
        return state

    def _broadcast_state(self, name, key, value, shape):
        """The per-key state ``value`` set by the user, broadcast to its parameter's
        ``shape``; ValueError naming the entry where it does not broadcast."""
        try:
            return np.broadcast_to(value, shape)
        except ValueError:
            raise ValueError(f"{type(self).__name__}'s {name}[{key!r}] has shape "
                             f"{np.shape(value)}, which does not broadcast to its "
                             f"parameter's shape {shape}") from None

    def __setstate__(self, state):
        """A copy (``copy.deepcopy``, pickle) keeps the per-key state (``m``, ``v``...) and
        drops the flat state arenas, which no longer share its memory: the next update
        of an arena builds them again from the per-key state."""
        self.__dict__.update({k: v for k, v in state.items() if k != "_arenas"})

    def _state_arena(self, name, params, views):
        """The flat state arena ``name`` for ``params``, made on first use; the per-key
        dict then holds views into it.  State set since, as the book's per-key state may
        be set (an entry re-bound, ``opt.v[key] = ...``, or the dict replaced: ``opt.v =
        {}`` restarts it), is copied in first, a missing entry as zeros."""
        arenas = self.__dict__.setdefault("_arenas", {})
        per_key = getattr(self, name)
        arena, bound_dict, bound = arenas.get(name, (None, None, {}))
        if arena is None or arena.shape != params.shape or arena.dtype != params.dtype:
            arena, bound = aligned_zeros(params.shape, params.dtype), {}
        elif per_key is bound_dict and all(per_key.get(key) is view
                                           for key, view in bound.items()):
            return arena
        for key, (offset, shape) in views.items():
            view = bound.get(key)
            if view is None:
                view = bound[key] = arena[offset:offset + math.prod(shape)].reshape(shape)
            value = per_key.get(key)
            if value is not view:
                view[...] = 0 if value is None else self._broadcast_state(name, key, value,
                                                                          shape)
                per_key[key] = view
        arenas[name] = (arena, per_key, bound)
        return arena


@functools.cache
def _given_names(cls):
    """The hyperparameters ``cls`` takes, by name (its constructor's arguments)."""
    return tuple(inspect.signature(cls.__init__).parameters)[1:]


def _one_arena(params, grads):
    """Whether ``params`` and ``grads`` are intact arena dicts of one layout over
    arenas that ``update_flat`` takes (``_check_arenas``; an ``ArenaDict``'s views lie
    within its arena, or it could not have been made)."""
    if not (isinstance(params, ArenaDict) and isinstance(grads, ArenaDict)
            and params.layout is grads.layout and params.intact() and grads.intact()):
        return False
    try:
        _check_arenas(params.arena, grads.arena, {}, 0)
    except (TypeError, ValueError):  # the per-key update takes them
        return False
    return True


def _check_arenas(params, grads, views, n_decayed):
    """``update_flat``'s arguments, checked: a kernel reads and writes the arenas by
    index up to their size (see its docstring)."""
    for name, arena in (("params", params), ("grads", grads)):
        if not isinstance(arena, np.ndarray):
            raise TypeError(f"update_flat: {name} must be a NumPy array, got "
                            f"{type(arena).__name__}")
        if arena.dtype not in _validate.FLOAT_DTYPES:
            raise TypeError(f"update_flat: {name} must be float32 or float64, got dtype "
                            f"{arena.dtype}")
        if arena.ndim != 1 or not arena.flags.c_contiguous:
            raise ValueError(f"update_flat: {name} must be a 1-D C-contiguous arena, got "
                             f"shape {arena.shape}"
                             + ("" if arena.flags.c_contiguous else " (not contiguous)"))
    if grads.dtype != params.dtype or grads.size != params.size:
        raise ValueError(f"update_flat: grads ({grads.size} {grads.dtype}) must be the size "
                         f"and dtype of params ({params.size} {params.dtype})")
    if not params.flags.writeable:
        raise ValueError("update_flat: params is read-only")
    for key, (offset, shape) in views.items():
        if not 0 <= offset <= offset + math.prod(shape) <= params.size:
            raise ValueError(f"update_flat: view {key!r} at offset {offset}, shape "
                             f"{tuple(shape)}, is outside the arena of {params.size}")
    if not 0 <= n_decayed <= params.size:
        raise ValueError(f"update_flat: n_decayed must be in [0, {params.size}], got "
                         f"{n_decayed}")


def _broadcasts_to(shape, target):
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def _store(values, key, value):
    """``values[key] = value``, written into the array already there when ``value`` is
    an array of its shape and dtype (an in-place update keeps the caller's array)."""
    old = values.get(key)
    if (isinstance(old, np.ndarray) and isinstance(value, np.ndarray)
            and old.shape == value.shape and old.dtype == value.dtype):
        old[...] = value
    else:
        values[key] = value


class SGD(_FusedUpdate, _book.SGDArgs):
    """Stochastic gradient descent: ``p -= lr * g``."""

    kernel = staticmethod(kernels.sgd)

    def _hyperparameters(self):
        return {"lr": self.lr}

    def _book_rule(self, p, g, state):
        p -= self.lr * g
        return p


class Momentum(_FusedUpdate, _book.MomentumArgs):
    """Momentum SGD: ``v = momentum * v - lr * g; p += v``."""

    kernel = staticmethod(kernels.momentum)
    state_names = ("v",)

    def _hyperparameters(self):
        return {"lr": self.lr, "momentum": self.momentum}

    def _book_rule(self, p, g, state):
        state["v"] = self.momentum * state["v"] - self.lr * g
        p += state["v"]
        return p


class Nesterov(_FusedUpdate, _book.MomentumArgs):
    """Nesterov's accelerated gradient (Bengio et al. 2012, arXiv:1212.0901).

    ``p += momentum**2 * v; p -= (1 + momentum) * lr * g; v = momentum * v - lr * g``,
    in that order: ``p`` moves with the velocity of the *previous* step.
    """

    kernel = staticmethod(kernels.nesterov)
    state_names = ("v",)

    def _hyperparameters(self):
        mu = self.momentum
        return {"lr": self.lr, "momentum": mu, "momentum**2": mu * mu,
                "(1 + momentum) * lr": (1 + mu) * self.lr}

    def _book_rule(self, p, g, state):
        p += self.momentum * self.momentum * state["v"]
        p -= (1 + self.momentum) * self.lr * g
        state["v"] = self.momentum * state["v"] - self.lr * g
        return p


class AdaGrad(_FusedUpdate, _book.AdaGradArgs):
    """AdaGrad: ``h += g * g; p -= lr * g / (sqrt(h) + eps)``, ``eps = 1e-7``."""

    kernel = staticmethod(kernels.adagrad)
    state_names = ("h",)

    def _hyperparameters(self):
        return {"lr": self.lr, "eps": EPS}

    def _book_rule(self, p, g, state):
        state["h"] += g * g
        p -= self.lr * g / (np.sqrt(state["h"]) + EPS)
        return p


class RMSprop(_FusedUpdate, _book.RMSpropArgs):
    """RMSprop: ``h = decay_rate * h + (1 - decay_rate) * g * g;
    p -= lr * g / (sqrt(h) + eps)``, ``eps = 1e-7``."""

    kernel = staticmethod(kernels.rmsprop)
    state_names = ("h",)

    def _hyperparameters(self):
        return {"lr": self.lr, "decay_rate": self.decay_rate,
                "1 - decay_rate": 1 - self.decay_rate, "eps": EPS}

    def _book_rule(self, p, g, state):
        state["h"] *= self.decay_rate
        state["h"] += (1 - self.decay_rate) * g * g
        p -= self.lr * g / (np.sqrt(state["h"]) + EPS)
        return p


class Adam(_FusedUpdate, _book.AdamArgs):
    """Adam (Kingma and Ba, arXiv:1412.6980v8), bias correction folded into the step.

    ``iter += 1; lr_t = lr * sqrt(1 - beta2**iter) / (1 - beta1**iter);
    m += (1 - beta1) * (g - m); v += (1 - beta2) * (g * g - v);
    p -= lr_t * m / (sqrt(v) + eps)``, ``eps = 1e-7`` on the uncorrected ``sqrt(v)``.
    """

    kernel = staticmethod(kernels.adam)
    state_names = ("m", "v")

    def _begin_step(self):
        self.iter += 1
        self._lr_t = self.lr * math.sqrt(1 - self.beta2 ** self.iter) / (1 - self.beta1 ** self.iter)

    def _hyperparameters(self):
        return {"step size lr * sqrt(1 - beta2**iter) / (1 - beta1**iter)": self._lr_t,
                "1 - beta1": 1 - self.beta1, "1 - beta2": 1 - self.beta2, "eps": EPS}

    def _book_rule(self, p, g, state):
        state["m"] += (1 - self.beta1) * (g - state["m"])
        state["v"] += (1 - self.beta2) * (g ** 2 - state["v"])
        p -= self._lr_t * state["m"] / (np.sqrt(state["v"]) + EPS)
        return p

    def _cancel_step(self):
        self.iter -= 1


class AdamW(Adam, _book.AdamWArgs):
    """AdamW (Loshchilov and Hutter, arXiv:1711.05101), as ``torch.optim.AdamW``.

    ``iter += 1; m += (1 - beta1) * (g - m); v += (1 - beta2) * (g * g - v);
    m_hat = m / (1 - beta1**iter); v_hat = v / (1 - beta2**iter);
    p -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * p)``: decoupled weight
    decay, applied to every parameter given; ``eps`` (default 1e-8) on the corrected
    ``sqrt(v_hat)``.  Leave the nets' ``weight_decay_lambda`` at 0 with it (see
    ``fastnet.reference.optimizers.AdamW`` for the conventions).
    """

    kernel = staticmethod(kernels.adamw)

    def _begin_step(self):
        self.iter += 1

    def _hyperparameters(self):
        return {"lr": self.lr, "1 - beta1": 1 - self.beta1, "1 - beta2": 1 - self.beta2,
                "1 - beta1**iter": 1 - self.beta1 ** self.iter,
                "1 - beta2**iter": 1 - self.beta2 ** self.iter, "eps": self.eps,
                "weight_decay": self.weight_decay}

    def _scalars(self, dtype, weight_decay):
        """As every optimizer's, and ValueError for an ``eps`` that is 0 in ``dtype``
        (1e-50 in float32): a gradient of 0 would then step by 0/0 = NaN."""
        scalars = super()._scalars(dtype, weight_decay)
        if not scalars[5]:
            raise ValueError(f"AdamW's eps={self.eps!r} is 0 in {np.dtype(dtype).name} "
                             f"(its smallest positive value is "
                             f"{np.finfo(dtype).smallest_subnormal:.3g}): a zero gradient "
                             f"would step by 0/0 = NaN")
        return scalars

    def _book_rule(self, p, g, state):
        state["m"] += (1 - self.beta1) * (g - state["m"])
        state["v"] += (1 - self.beta2) * (g ** 2 - state["v"])
        m_hat = state["m"] / (1 - self.beta1 ** self.iter)
        v_hat = state["v"] / (1 - self.beta2 ** self.iter)
        p -= self.lr * (m_hat / (np.sqrt(v_hat) + self.eps) + self.weight_decay * p)
        return p


OPTIMIZERS = {name: globals()[cls] for name, cls in _book.OPTIMIZER_CLASSES.items()}


def make_optimizer(name, **kwargs):
    """The optimizer called ``name`` (case-insensitive): sgd, momentum, nesterov, adagrad,
    rmsprop, adam or adamw."""
    return _book.make_optimizer(name, OPTIMIZERS, kwargs)
