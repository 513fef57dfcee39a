"""fastnet.schedules: each schedule against its formula over 100 steps, specs as JSON,
the error table with exact messages, schedules driving every optimizer of
``cases.OPTIMIZER_CASES`` and the Trainer's per-epoch ``lr_schedule``."""
import json
import math
from fractions import Fraction

import numpy as np
import pytest
from cases import OPTIMIZERS, assert_close, gradient_of, make_params

from fastnet import nets as fast_nets
from fastnet import optimizers as fast_optimizers
from fastnet import schedules
from fastnet import trainer as fast_trainer
from fastnet.reference import nets as reference_nets
from fastnet.reference import optimizers as reference_optimizers
from fastnet.reference import trainer as reference_trainer

STEPS = 100
T = np.arange(STEPS, dtype=np.float64)

# spec, the multipliers at t = 0..99 written out with NumPy
SCHEDULE_CASES = [
    ({"name": "step_decay", "step_size": 7, "gamma": 0.5}, 0.5 ** np.floor(T / 7)),
    ({"name": "step_decay", "step_size": 30}, 0.1 ** np.floor(T / 30)),
    ({"name": "exponential_decay", "gamma": 0.97}, 0.97 ** T),
    ({"name": "inverse_time_decay", "decay_rate": 0.1}, 1 / (1 + 0.1 * T)),
    ({"name": "inverse_time_decay", "decay_rate": 0}, np.ones(STEPS)),
    ({"name": "cosine_decay", "decay_steps": 60, "alpha": 0.1},
     0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * np.minimum(T, 60) / 60))),
    ({"name": "cosine_decay", "decay_steps": 100}, 0.5 * (1 + np.cos(np.pi * T / 100))),
]
CASES = [pytest.param(spec, expected, id="-".join(map(str, spec.values())))
         for spec, expected in SCHEDULE_CASES]


@pytest.mark.parametrize("spec, expected", CASES)
def test_schedule_follows_its_formula_over_100_steps(spec, expected):
    schedule = schedules.make_schedule(**spec)
    np.testing.assert_allclose([schedule(t) for t in range(STEPS)], expected, rtol=1e-14,
                               atol=1e-15)
    assert schedule(0) == 1.0


@pytest.mark.parametrize("spec, expected", CASES)
def test_spec_is_json_and_rebuilds_the_schedule(spec, expected):
    schedule = schedules.make_schedule(**spec)
    assert type(schedule) is schedules.SCHEDULES[spec["name"]]
    assert {**schedule.spec, **spec} == schedule.spec  # given parameters kept, defaults added
    rebuilt = schedules.make_schedule(**json.loads(json.dumps(schedule.spec)))
    assert rebuilt == schedule and rebuilt.spec == schedule.spec
    assert schedules.as_schedule(spec) == schedule


def test_classes_take_their_parameters_directly():
    assert schedules.StepDecay(10, 0.5) == schedules.make_schedule("step_decay", step_size=10,
                                                                   gamma=0.5)
    assert schedules.CosineDecay(5)(5) == schedules.CosineDecay(5)(50) == 0.0
    assert schedules.InverseTimeDecay(1.0)(3) == 0.25


BAD_SCHEDULES = [
    ("unknown-name", lambda: schedules.make_schedule("warmup", steps=3), ValueError,
     ("unknown schedule 'warmup'; choose one of: step_decay, exponential_decay, "
      "inverse_time_decay, cosine_decay")),
    ("step-size-0", lambda: schedules.StepDecay(0), ValueError,
     "step_size must be a positive integer, got 0"),
    ("step-size-float", lambda: schedules.StepDecay(2.5), TypeError,
     "step_size must be a positive integer, got 2.5"),
    ("step-size-past-float", lambda: schedules.StepDecay(10**400), ValueError,
     "step_size must fit a float (at most 1.798e+308), got an integer of 1329 bits"),
    ("cosine-steps-past-float", lambda: schedules.CosineDecay(10**5000), ValueError,
     "decay_steps must fit a float (at most 1.798e+308), got an integer of 16610 bits"),
    ("step-gamma-above-1", lambda: schedules.StepDecay(5, gamma=1.5), ValueError,
     "gamma must be <= 1, got 1.5"),
    ("step-gamma-0", lambda: schedules.StepDecay(5, gamma=0), ValueError,
     "gamma must be > 0, got 0.0"),
    ("exponential-gamma-negative", lambda: schedules.ExponentialDecay(-0.5), ValueError,
     "gamma must be > 0, got -0.5"),
    ("exponential-gamma-nan", lambda: schedules.ExponentialDecay(float("nan")), ValueError,
     "gamma must be a finite real number, got nan"),
    ("inverse-time-negative", lambda: schedules.InverseTimeDecay(-0.1), ValueError,
     "decay_rate must be >= 0, got -0.1"),
    ("cosine-steps-0", lambda: schedules.CosineDecay(0), ValueError,
     "decay_steps must be a positive integer, got 0"),
    ("cosine-alpha-above-1", lambda: schedules.CosineDecay(10, alpha=1.1), ValueError,
     "alpha must be <= 1, got 1.1"),
    ("negative-t", lambda: schedules.ExponentialDecay(0.9)(-1), ValueError,
     "t must be >= 0, got -1.0"),
    ("missing-parameter", lambda: schedules.make_schedule("step_decay"), TypeError,
     "missing 1 required positional argument: 'step_size'"),
    ("not-a-schedule", lambda: schedules.as_schedule(0.5), TypeError,
     ("a learning-rate schedule must be a schedule, a callable t -> multiplier or a spec "
      "dict, got float")),
    ("a-class", lambda: schedules.as_schedule(schedules.CosineDecay), TypeError,
     ("a learning-rate schedule must be a schedule, not the class CosineDecay: make one, "
      "as in CosineDecay(...) with its parameters")),
]


@pytest.mark.parametrize("call, error, message", [pytest.param(*b[1:], id=b[0])
                                                   for b in BAD_SCHEDULES])
def test_bad_schedule_raises(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert str(info.value).endswith(message)


# ------------------------------------------------------------------ with the optimizers

@pytest.mark.parametrize("case", OPTIMIZERS)
def test_every_optimizer_follows_a_schedule_set_through_lr(case):
    """``optimizer.lr = lr0 * schedule(t)`` before each update: fastnet's fused update
    follows the reference, and the run differs from the unscheduled one."""
    schedule = schedules.StepDecay(5, gamma=0.1)
    fast, ref, plain = (case.make(m) for m in (fast_optimizers, reference_optimizers,
                                               reference_optimizers))
    lr0 = fast.lr
    fast_params, ref_params, plain_params = (make_params(np.float64) for _ in range(3))
    for step in range(20):
        fast.lr = ref.lr = lr0 * schedule(step)
        fast.update(fast_params, gradient_of(fast_params, step))
        ref.update(ref_params, gradient_of(ref_params, step))
        plain.update(plain_params, gradient_of(plain_params, step))
    for key in ref_params:
        assert_close(fast_params[key], ref_params[key], np.float64, key)
    assert not np.allclose(ref_params["W1"], plain_params["W1"])


# ------------------------------------------------------------------ with the Trainer

def recorded_lrs(trainer, monkeypatch):
    """The optimizer's lr at each step of ``trainer.train()``."""
    lrs = []
    step = trainer._step

    def recording(x, t):
        lrs.append(trainer.optimizer.lr)
        return step(x, t)

    monkeypatch.setattr(trainer, "_step", recording)
    trainer.train()
    return lrs


@pytest.mark.parametrize("nets, trainer_module", [(fast_nets, fast_trainer),
                                                  (reference_nets, reference_trainer)],
                         ids=["fastnet", "reference"])
@pytest.mark.parametrize("optimizer", ["SGD", "AdamW"])
@pytest.mark.parametrize("train_size, batch_size, epochs", [
    (40, 20, 6), (50, 20, 6),
    # step 500 begins epoch 15 exactly, which 500 / (1000 / 30) in floats put in epoch 14
    (1000, 30, 16)], ids=["whole-epochs", "fractional-epochs", "exact-in-fractions"])
def test_trainer_applies_the_schedule_once_per_epoch(nets, trainer_module, optimizer,
                                                      train_size, batch_size, epochs,
                                                      monkeypatch):
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((train_size, 4)), rng.integers(0, 3, train_size)
    net = nets.MultiLayerNet(4, [5], 3, dtype=np.float64, seed=0)
    spec = {"name": "step_decay", "step_size": 1, "gamma": 0.5}
    trainer = trainer_module.Trainer(net, x, t, x, t, epochs=epochs,
                                     mini_batch_size=batch_size, optimizer=optimizer,
                                     optimizer_param={"lr": 0.1}, verbose=False, seed=1,
                                     lr_schedule=spec)
    lrs = recorded_lrs(trainer, monkeypatch)
    per_epoch = Fraction(train_size, batch_size)  # steps, exactly
    of_step = [math.floor(i / per_epoch) for i in range(trainer.max_iter)]
    assert lrs == [0.1 * 0.5 ** epoch for epoch in of_step]
    assert of_step[-1] == epochs - 1 and len(lrs) == trainer.max_iter


def test_trainer_without_a_schedule_keeps_the_lr(monkeypatch):
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    net = fast_nets.MultiLayerNet(4, [5], 3, seed=0)
    trainer = fast_trainer.Trainer(net, x, t, x, t, epochs=3, mini_batch_size=20,
                                   optimizer="Adam", optimizer_param={"lr": 0.01},
                                   verbose=False, seed=1, lr_schedule=lambda epoch: 1.0)
    assert recorded_lrs(trainer, monkeypatch) == [0.01] * 6
    trainer = fast_trainer.Trainer(net, x, t, x, t, epochs=3, mini_batch_size=20,
                                   optimizer="Adam", optimizer_param={"lr": 0.01},
                                   verbose=False, seed=1)
    assert trainer.lr_schedule is None
    assert recorded_lrs(trainer, monkeypatch) == [0.01] * 6


@pytest.mark.parametrize("trainer_module", [fast_trainer, reference_trainer],
                         ids=["fastnet", "reference"])
@pytest.mark.parametrize("schedule, error, message", [
    (lambda epoch: None, TypeError,
     "the multiplier lr_schedule(0) returned must be a finite real number, got None"),
    (lambda epoch: 1.0 - epoch, ValueError,
     "the multiplier lr_schedule(2) returned must be >= 0, got -1.0"),
    (lambda epoch: "0.5", TypeError,
     "the multiplier lr_schedule(0) returned must be a finite real number, got '0.5'"),
    (lambda epoch: float("inf"), ValueError,
     "the multiplier lr_schedule(0) returned must be a finite real number, got inf"),
], ids=["none", "negative", "a-string", "infinite"])
def test_trainer_names_the_epoch_of_a_bad_multiplier(trainer_module, schedule, error,
                                                      message):
    """A callable's result is checked before it becomes the lr (None raised NumPy's
    "unsupported operand type(s) for *: 'float' and 'NoneType'")."""
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    net = fast_nets.MultiLayerNet(4, [5], 3, seed=0)
    trainer = trainer_module.Trainer(net, x, t, x, t, epochs=3, mini_batch_size=20,
                                     verbose=False, seed=1, lr_schedule=schedule)
    with pytest.raises(error) as info:
        trainer.train()
    assert str(info.value) == message


@pytest.mark.parametrize("optimizer", ["SGD", "Momentum", "AdamW"])
def test_scheduled_training_matches_the_reference(optimizer):
    """The fused ``train_step`` (SGD inside the backward pass included) reads the lr the
    schedule set, as the reference's update does."""
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((60, 4)), rng.integers(0, 3, 60)
    params = {}
    for name, nets, trainer_module, spec in (
            ("fastnet", fast_nets, fast_trainer, {"name": "exponential_decay", "gamma": 0.5}),
            ("reference", reference_nets, reference_trainer,
             {"name": "exponential_decay", "gamma": 0.5}),
            ("unscheduled", reference_nets, reference_trainer, None)):
        net = nets.MultiLayerNet(4, [5], 3, dtype=np.float64, seed=0)
        trainer_module.Trainer(net, x, t, x, t, epochs=4, mini_batch_size=20,
                               optimizer=optimizer, optimizer_param={"lr": 0.1},
                               verbose=False, seed=1, lr_schedule=spec).train()
        params[name] = {k: np.array(v) for k, v in net.params.items()}
    for key, value in params["reference"].items():
        assert_close(params["fastnet"][key], value, np.float64, key)
    assert not np.allclose(params["reference"]["W1"], params["unscheduled"]["W1"])
