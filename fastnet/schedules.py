"""Learning-rate schedules: the factor by which an optimizer's initial learning rate is
multiplied at epoch (or step) ``t = 0, 1, 2, ...``.

=========================================  ==============================================
``StepDecay(step_size, gamma=0.1)``        ``gamma ** floor(t / step_size)`` (PyTorch's
                                           ``StepLR``)
``ExponentialDecay(gamma)``                ``gamma ** t`` (PyTorch's ``ExponentialLR``)
``InverseTimeDecay(decay_rate)``           ``1 / (1 + decay_rate * t)``, the course notes'
                                           "learning rate decay" ``lr = lr0 / (1 +
                                           decay_rate * epoch_num)`` (Ng's deep learning
                                           course)
``CosineDecay(decay_steps, alpha=0.0)``    ``alpha + (1 - alpha) * (1 + cos(pi * min(t,
                                           decay_steps) / decay_steps)) / 2`` (optax's
                                           ``cosine_decay_schedule``; PyTorch's
                                           ``CosineAnnealingLR`` with ``eta_min = alpha *
                                           lr0``, held at ``alpha`` after ``decay_steps``)
=========================================  ==============================================

Every optimizer, fastnet's and the reference's, reads ``optimizer.lr`` at each update,
so a schedule is applied by setting it: ``optimizer.lr = lr0 * schedule(t)``.  The
Trainer does this once per epoch (``Trainer(..., lr_schedule=...)``).

A schedule is a frozen object, equal to another of the same name and parameters; its
``spec`` (``{"name": ..., **parameters}``, plain JSON) builds it again through
``make_schedule(**spec)``, so a search space can hold schedules as data.
"""
import dataclasses
import math
import numbers
import sys
from typing import ClassVar

from . import _validate


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if value > sys.float_info.max:  # the multipliers divide by it as a float
        raise ValueError(f"{name} must fit a float (at most {sys.float_info.max:.4g}), "
                         f"got an integer of {int(value).bit_length()} bits")
    return int(value)


class _Schedule:
    name: ClassVar[str]

    def __call__(self, t):
        """The learning-rate multiplier at epoch or step ``t`` (a real number >= 0)."""
        return self._multiplier(_validate.real_scalar(t, "t", 0))

    @property
    def spec(self):
        """``{"name": ..., **parameters}``: ``make_schedule(**spec)`` rebuilds ``self``."""
        return {"name": self.name, **dataclasses.asdict(self)}

    def _set(self, field, value):  # a frozen dataclass normalises its fields this way
        object.__setattr__(self, field, value)


@dataclasses.dataclass(frozen=True)
class StepDecay(_Schedule):
    """``gamma ** floor(t / step_size)``: the rate falls by ``gamma`` every ``step_size``."""

    name: ClassVar[str] = "step_decay"
    step_size: int
    gamma: float = 0.1

    def __post_init__(self):
        self._set("step_size", _positive_int(self.step_size, "step_size"))
        self._set("gamma", _validate.real_scalar(self.gamma, "gamma", 0, 1, low_open=True,
                                                 high_open=False))

    def _multiplier(self, t):
        return self.gamma ** (t // self.step_size)


@dataclasses.dataclass(frozen=True)
class ExponentialDecay(_Schedule):
    """``gamma ** t``."""

    name: ClassVar[str] = "exponential_decay"
    gamma: float

    def __post_init__(self):
        self._set("gamma", _validate.real_scalar(self.gamma, "gamma", 0, 1, low_open=True,
                                                 high_open=False))

    def _multiplier(self, t):
        return self.gamma ** t


@dataclasses.dataclass(frozen=True)
class InverseTimeDecay(_Schedule):
    """``1 / (1 + decay_rate * t)``."""

    name: ClassVar[str] = "inverse_time_decay"
    decay_rate: float

    def __post_init__(self):
        self._set("decay_rate", _validate.real_scalar(self.decay_rate, "decay_rate", 0))

    def _multiplier(self, t):
        return 1.0 / (1.0 + self.decay_rate * t)


@dataclasses.dataclass(frozen=True)
class CosineDecay(_Schedule):
    """``alpha + (1 - alpha) * (1 + cos(pi * min(t, decay_steps) / decay_steps)) / 2``:
    from 1 at ``t = 0`` down to ``alpha`` at ``t = decay_steps``, then ``alpha``."""

    name: ClassVar[str] = "cosine_decay"
    decay_steps: int
    alpha: float = 0.0

    def __post_init__(self):
        self._set("decay_steps", _positive_int(self.decay_steps, "decay_steps"))
        self._set("alpha", _validate.real_scalar(self.alpha, "alpha", 0, 1, high_open=False))

    def _multiplier(self, t):
        progress = min(t, self.decay_steps) / self.decay_steps
        return self.alpha + (1 - self.alpha) * 0.5 * (1 + math.cos(math.pi * progress))


SCHEDULES = {cls.name: cls for cls in (StepDecay, ExponentialDecay, InverseTimeDecay,
                                       CosineDecay)}


def make_schedule(name, **params):
    """The schedule called ``name`` (a key of ``SCHEDULES``) with ``params``;
    ``make_schedule(**schedule.spec)`` is a copy of ``schedule``."""
    cls = SCHEDULES.get(name)
    if cls is None:
        raise ValueError(f"unknown schedule {name!r}; choose one of: {', '.join(SCHEDULES)}")
    return cls(**params)


def as_schedule(schedule):
    """``schedule`` as a callable ``t -> multiplier``: a schedule or any callable as it
    is, a spec dict through ``make_schedule``; None stays None (no schedule)."""
    if isinstance(schedule, dict):
        return make_schedule(**schedule)
    if isinstance(schedule, type):  # callable, but calling it makes a schedule
        raise TypeError(f"a learning-rate schedule must be a schedule, not the class "
                        f"{schedule.__name__}: make one, as in {schedule.__name__}(...) "
                        f"with its parameters")
    if schedule is None or callable(schedule):
        return schedule
    raise TypeError(f"a learning-rate schedule must be a schedule, a callable t -> "
                    f"multiplier or a spec dict, got {type(schedule).__name__}")
