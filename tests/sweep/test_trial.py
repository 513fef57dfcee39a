"""One trial's training: resumable bit for bit, BLAS single-threaded, divergence and failure."""
import re

import numpy as np
import pytest

from fastnet.nets import MultiLayerNetExtend
from fastnet.sweep import trial
from fastnet.sweep.space import Space

CONFIG = {"hidden_size_list": [30, 20], "hidden_size": None, "hidden_layers": None,
          "activation": "relu", "weight_init_std": "relu", "use_batchnorm": False,
          "use_dropout": False, "dropout_ratio": 0.5, "weight_decay_lambda": 0.0,
          "optimizer": "SGD", "lr": 0.1, "momentum": 0.9, "beta1": 0.9, "beta2": 0.999,
          "decay_rate": 0.99, "mini_batch_size": 25, "epochs": 3}
# Every optimizer, with batch norm, dropout and weight decay in turn (CONFIG is a
# configuration made before normalizations, AdamW and schedules were searchable) ...
BOOK = [{"optimizer": name, "lr": 0.01} for name in trial.OPTIMIZER_HYPERPARAMETERS] + [
    {"use_batchnorm": True, "optimizer": "Adam", "lr": 1e-3},
    {"use_dropout": True, "dropout_ratio": 0.3, "optimizer": "Momentum"},
    {"weight_decay_lambda": 1e-3, "optimizer": "RMSprop", "lr": 1e-3},
]
# ... then, completed as a sweep completes them: every normalization, AdamW with its
# decoupled decay, and every schedule, whose rate changes between the two halves.
SEARCHED = [
    *({"normalization": name, "groups": 2, "optimizer": "Adam"}
      for name in ("batch", "layer", "group", "instance", "weight", "switchable")),
    {"normalization": "layer", "use_dropout": True, "optimizer": "Momentum"},
    {"optimizer": "AdamW", "decoupled_weight_decay": 0.1},
    {"optimizer": "AdamW", "lr": 0.01, "lr_schedule": "cosine", "normalization": "layer"},
    {"lr_schedule": "step", "step_size": 1, "gamma": 0.5, "optimizer": "Momentum"},
    {"lr_schedule": "exponential", "gamma": 0.7},
    {"lr_schedule": "inverse_time", "lr_decay_rate": 1.0, "optimizer": "RMSprop"},
    {"lr_schedule": "cosine", "decay_steps": 2, "alpha": 0.1, "use_batchnorm": True},
]


def case_id(case):
    return "-".join(f"{k}={v}" for k, v in case.items())


CASES = [pytest.param({**CONFIG, **case}, id=case_id(case)) for case in BOOK] + [
    pytest.param(Space.complete({**CONFIG, **case}), id=case_id(case)) for case in SEARCHED]


def make_data(d=40, n=130, n_val=30, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n + n_val, d), dtype=np.float32)
    t = (x[:, :10].argmax(axis=1) + rng.integers(0, 2, n + n_val)) % 10
    return trial.TrialData.from_arrays((x[:n], t[:n]), (x[n:], t[n:]))


@pytest.mark.parametrize("config", CASES)
def test_a_trial_continued_from_its_checkpoint_ends_where_an_uninterrupted_one_does(config):
    data = make_data()
    whole = trial.train_unit(trial.Unit(0, config, 7, 3, (1, 2, 3)), data, np.float64)
    first = trial.train_unit(trial.Unit(0, config, 7, 1.5, (1, 1.5, 2, 3)), data, np.float64)
    assert first.status == "running" and first.epochs == [1.0, 1.5]
    rest = trial.train_unit(trial.Unit(0, config, 7, 3, (1, 1.5, 2, 3), first.checkpoint),
                            data, np.float64)
    assert whole.status == rest.status == "done" and rest.checkpoint is None
    assert rest.epochs == [2.0, 3.0]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        assert getattr(rest, key) == getattr(whole, key)[1:]  # bit for bit


def test_a_schedule_sets_the_learning_rate_of_each_epoch():
    """gamma 1e-30 from the second epoch on: the updates vanish below float64's
    resolution, so the net stops changing after one epoch and not before."""
    config, data = Space.complete({**CONFIG, "lr_schedule": "step", "step_size": 1,
                                   "gamma": 1e-30}), make_data()
    out = trial.train_unit(trial.Unit(0, config, 7, 3, (1, 2, 3)), data, np.float64)
    plain = trial.train_unit(trial.Unit(0, CONFIG, 7, 3, (1, 2, 3)), data, np.float64)
    assert out.val_loss[0] == plain.val_loss[0] and out.val_loss[1:] == out.val_loss[:2]
    assert plain.val_loss[2] != plain.val_loss[1]


def test_the_data_is_copied_as_given_and_the_net_is_the_books():
    rng = np.random.default_rng(1)
    x = rng.random((60, 784))  # float64, converted
    t = rng.integers(0, 10, 60)
    data = trial.TrialData.from_arrays((x[:50], t[:50]), (x[50:], t[50:]))
    assert data.x_train.shape == (50, 784) and data.x_train.dtype == np.float32
    assert data.x_train.flags.c_contiguous and not np.shares_memory(data.x_train, x)
    np.testing.assert_array_equal(data.x_val, x[50:].astype(np.float32))
    net, _ = trial.build(CONFIG, 3, data)
    book = MultiLayerNetExtend(784, [30, 20], 10, seed=trial._net_seeds(3)[0])
    for key, value in book.params.items():
        np.testing.assert_array_equal(net.params[key], value)


def test_a_trial_trains_with_blas_single_threaded_and_gives_the_threads_back(monkeypatch):
    from fastnet import threading_info, threads

    def blas_threads():
        return {library["threads"] for library in threading_info()["blas"]}

    seen, real_step = [], trial._step
    monkeypatch.setattr(trial, "_step", lambda *a: seen.append(blas_threads()) or real_step(*a))
    before = threads.get_num_threads()
    threads.set_num_threads(2)
    try:
        out = trial.train_unit(trial.Unit(0, CONFIG, 7, 3, (1, 2, 3)), make_data())
        assert out.status == "done" and seen and all(s == {1} for s in seen)
        assert blas_threads() == {2}
    finally:
        threads.set_num_threads(before)


def test_a_trial_whose_loss_turns_non_finite_is_diverged():
    out = trial.train_unit(trial.Unit(0, {**CONFIG, "lr": 1e6}, 0, 3, (1, 2, 3)), make_data())
    assert out.status == "diverged" and out.checkpoint is None and len(out.epochs) < 3
    # why, recorded (nothing before)
    assert re.fullmatch(r"the (training loss was (nan|inf) at step \d+|validation loss was "
                        r"(nan|inf) after epoch \d+)", out.error), out.error


@pytest.mark.filterwarnings("error")  # a warning inside a trial would make it 'failed'
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("weight_decay", "n_train"), [(1e-3, 130), (0.0, 25)],
                         ids=["in-the-penalty", "in-the-evaluation"])
def test_a_diverging_trial_is_diverged_without_warnings(threads, weight_decay, n_train):
    """Weights that overflow float32 in the weight-decay penalty, or logits that do in
    an evaluation after an epoch of one step whose loss was still finite: alone and as
    population members (on every thread of the population), the same statuses, and no
    RuntimeWarning."""
    config = {**CONFIG, "lr": 1e6, "weight_decay_lambda": weight_decay}
    units = [trial.Unit(i, config, i, 3, (1, 2, 3)) for i in range(4)]
    data = make_data(n=n_train)
    alone = [(o.status, o.error) for o in (trial.train_unit(unit, data) for unit in units)]
    statuses = [status for status, _ in alone]
    assert "diverged" in statuses and "failed" not in statuses
    assert all(error.startswith("the ") for status, error in alone if status == "diverged")
    assert [(o.status, o.error)
            for o in trial.run_units(units, data, threads=threads)] == alone


def test_a_failing_trial_reports_its_error_instead_of_raising():
    out = trial.train_unit(trial.Unit(0, {**CONFIG, "lr": -1.0}, 0, 3, (1, 2, 3)), make_data())
    assert out.status == "failed" and "learning rate: -1.0" in out.error and out.host


def test_the_reference_backend_trains_the_same_trial():
    config, data = {**CONFIG, "optimizer": "Momentum"}, make_data()
    fast = trial.train_unit(trial.Unit(0, config, 5, 2, (1, 2)), data, np.float64)
    ref = trial.train_unit(trial.Unit(0, config, 5, 2, (1, 2)), data, np.float64, "reference")
    np.testing.assert_allclose(fast.val_loss, ref.val_loss, rtol=1e-9)


def test_steps_and_epochs_are_counted_as_the_books_trainer_counts_them():
    assert trial.steps_per_epoch(130, 25) == 5 and trial.steps_per_epoch(10, 25) == 1
    assert [trial.epoch_step(e, 5) for e in (0.2, 1 / 3, 1, 2.5)] == [1, 1, 5, 12]


@pytest.mark.parametrize(("train", "validation", "message"), [
    ((np.zeros((0, 4)), np.zeros(0)), (np.zeros((2, 4)), np.zeros(2)), "training images"),
    ((np.zeros((3, 4)), np.zeros(2)), (np.zeros((2, 4)), np.zeros(2)), r"labels must have shape \(3,\)"),
    ((np.zeros((3, 4)), np.zeros(3)), (np.zeros((2, 5)), np.zeros(2)), "4 features"),
    ((np.zeros((3, 0)), np.zeros(3)), (np.zeros((2, 0)), np.zeros(2)), r"training images .* \(3, 0\)"),
    ((np.zeros((3, 4)), [0, 1, -1]), (np.zeros((2, 4)), np.zeros(2)), "training labels must be class"),
    ((np.zeros((3, 4)), [0, 1, 1.5]), (np.zeros((2, 4)), np.zeros(2)), r"got 1.5 at index 2"),
    ((np.zeros((3, 4)), [0, None, 1]), (np.zeros((2, 4)), np.zeros(2)), r"got None at index"),
    ((np.zeros((3, 4)), ["a", "1", "2"]), (np.zeros((2, 4)), np.zeros(2)), "got 'a' at index 0"),
    ((np.zeros((3, 4)), np.zeros((3, 0))), (np.zeros((2, 4)), np.zeros(2)), r"shape \(3,\) or"),
    ((np.zeros((3, 4)), np.zeros(3)), (np.zeros((2, 4)), [[0, 0], [1, 0]]),
     "validation labels: one-hot targets t must hold a single 1 per row"),
    # every trial would diverge on them: refused, not recorded as diverged trials
    ((np.array([[0, 0, 0, 0], [0, np.nan, 0, 0], [0, 0, 0, 0]]), np.zeros(3)),
     (np.zeros((2, 4)), np.zeros(2)),
     "the training images hold NaN or infinite values .*the first in image 1"),
    ((np.zeros((3, 4)), np.zeros(3)), (np.full((2, 4), 1e39), np.zeros(2)),
     r"the validation images hold NaN or infinite values \(in float32\)"),
])
def test_bad_data_is_refused(train, validation, message):
    with pytest.raises(ValueError, match=message):
        trial.TrialData.from_arrays(train, validation)


def test_complex_images_are_refused():
    with pytest.raises(TypeError, match="the training images must hold real numbers"):
        trial.TrialData.from_arrays((np.zeros((3, 4), complex), np.zeros(3)),
                                    (np.zeros((2, 4)), np.zeros(2)))


def test_labels_as_a_column_or_one_hot_and_the_class_count():
    x, column = np.zeros((4, 3)), np.array([[0], [2], [1], [2]])
    data = trial.TrialData.from_arrays((x, column), (x[:2], column[:2]))
    assert data.t_train.tolist() == [0, 2, 1, 2] and data.output_size == 3
    one_hot = np.eye(7)[[4, 0, 1, 3]]  # classes 5 and 6 unseen: the width counts them
    data = trial.TrialData.from_arrays((x, one_hot), (x[:2], one_hot[:2]))
    assert data.t_train.tolist() == [4, 0, 1, 3] and data.output_size == 7
    data = trial.TrialData.from_arrays((x, column), (x, column), 100.0, output_size=5.0)
    assert data.output_size == 5 and len(data.x_train_eval) == 4
    with pytest.raises(ValueError, match="validation labels .* below output_size=3"):
        trial.TrialData.from_arrays((x, [0, 1, 2, 2]), (x[:1], [3]), output_size=3)
    for size in (0, -3, 2.5, True, "3"):
        with pytest.raises(ValueError, match="train_eval_size must be a positive integer"):
            trial.TrialData.from_arrays((x, column), (x, column), train_eval_size=size)
        with pytest.raises(ValueError, match="output_size must be a positive integer"):
            trial.TrialData.from_arrays((x, column), (x, column), output_size=size)


def outcome_fields(out):
    """An Outcome's recorded fields and checkpoint (parameters, optimizer state), for
    bitwise comparison; the wall time and host aside."""
    ckpt = out.checkpoint
    curves = [np.array(getattr(out, key)).tobytes()  # NaN equals NaN as bytes
              for key in ("epochs", "train_loss", "train_acc", "val_loss", "val_acc")]
    return (out.index, out.status, *curves, out.error,
            None if ckpt is None else (ckpt.step, {k: v.tobytes() for k, v in ckpt.params.items()},
                                       [(m.tobytes(), v.tobytes()) for m, v in ckpt.running],
                                       ckpt.dropout_steps, ckpt.optimizer_iter,
                                       {name: {k: v.tobytes() for k, v in values.items()}
                                        for name, values in ckpt.optimizer_state.items()}))


# A chunk of trials of one architecture that differ per member (lr, weight decay, init,
# dropout ratio), with a diverging one (lr 1e6) and one that fails to build (lr -1).
POPULATION_CASES = [
    {"optimizer": "Adam", "lr": 1e-3}, {"optimizer": "Momentum", "lr": 0.05},
    {"optimizer": "SGD", "use_batchnorm": True}, {"optimizer": "RMSprop", "lr": 1e-3,
                                                   "use_dropout": True},
    {"optimizer": "AdamW", "lr": 1e-3, "decoupled_weight_decay": 0.1, "normalization": "layer"},
    {"optimizer": "Momentum", "lr": 0.05, "normalization": "group", "groups": 5},
    {"optimizer": "Adam", "lr": 1e-3, "normalization": "instance", "groups": 2},
    {"optimizer": "SGD", "normalization": "switchable", "use_dropout": True},
]
MEMBERS = [{}, {"lr_scale": 3.0, "weight_decay_lambda": 1e-3}, {"weight_init_std": 0.05},
           {"lr_scale": 1e6}, {"lr_scale": -1.0}, {"dropout_ratio": 0.2}]


def member_units(case, stop_epoch=3, checkpoints=None):
    units = []
    for i, member in enumerate(MEMBERS):
        config = Space.complete({**CONFIG, **case,
                                 **{k: v for k, v in member.items() if k != "lr_scale"}})
        config["lr"] = config["lr"] * member.get("lr_scale", 1.0)
        units.append(trial.Unit(i, config, 11 + i, stop_epoch, (1, 1.5, 2, 3),
                                checkpoints[i] if checkpoints else None))
    return units


@pytest.mark.parametrize("case", POPULATION_CASES,
                         ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("threads", [1, 2])
def test_a_chunk_trained_as_a_population_records_what_each_trial_alone_records(case, threads):
    from fastnet import threads as fastnet_threads
    rng = np.random.default_rng(2)
    x = rng.random((150, 784), dtype=np.float32)  # K = 784: on AVX-512, BLAS-thread dependent
    t = (x[:, :10].argmax(axis=1) + rng.integers(0, 2, 150)) % 10
    data = trial.TrialData.from_arrays((x[:120], t[:120]), (x[120:], t[120:]))
    before = fastnet_threads.get_num_threads()
    fastnet_threads.set_num_threads(threads)
    try:
        units = member_units(case, 1.5)  # to a rung: checkpoints
        statuses = []
        while units:
            alone = [trial.train_unit(unit, data) for unit in units]
            together = trial.run_units(units, data)
            assert len({trial.population_key(u) for u in units}) == 1
            assert [outcome_fields(o) for o in together] == [outcome_fields(o) for o in alone]
            on_three = trial.run_units(units, data, threads=3)  # members' threads given
            assert [outcome_fields(o) for o in on_three] == [outcome_fields(o) for o in alone]
            statuses += [(o.index, o.status) for o in alone]
            units = [trial.Unit(u.index, u.config, u.seed, 3, u.eval_epochs, o.checkpoint)
                     for u, o in zip(units, alone) if o.checkpoint is not None]
    finally:
        fastnet_threads.set_num_threads(before)
    ends = dict(statuses)  # each trial's last status
    assert ends[4] == "failed" and {ends[i] for i in (0, 1, 2, 5)} == {"done"}
    # lr x 1e6 diverges but for the optimizers that normalize their steps (AdamW's
    # decoupled decay, lr x 0.1 a step, does diverge).  Under batch norm, which rescales
    # whatever the weights grow to, SGD's losses reach 1e31 and whether one of them
    # overflows float32 turns on last bits (it did while LLVM could reorder sums and
    # divisions, it does not since): not asserted; the other cases check a diverged member.
    if not case.get("use_batchnorm"):
        assert ends[3] == ("done" if case["optimizer"] in ("Adam", "RMSprop") else "diverged")


def test_units_that_cannot_step_together_train_alone():
    data = make_data()
    units = [trial.Unit(0, CONFIG, 1, 3, (1, 2, 3)),
             trial.Unit(1, {**CONFIG, "mini_batch_size": 10}, 2, 3, (1, 2, 3)),
             trial.Unit(2, CONFIG, 3, 1.5, (1, 2, 3)),
             trial.Unit(3, Space.complete({**CONFIG, "lr_schedule": "exponential",
                                           "gamma": 0.7}), 4, 3, (1, 2, 3)),
             trial.Unit(4, Space.complete({**CONFIG, "normalization": "weight"}), 4, 3,
                        (1, 2, 3)),
             *(trial.Unit(5 + i, Space.complete({**CONFIG, "normalization": norm,
                                                 "groups": groups}), 5, 3, (1, 2, 3))
               for i, (norm, groups) in enumerate([("group", 2), ("group", 5),
                                                   ("instance", 2), ("instance", 5)]))]
    assert len({trial.population_key(u) for u in units[:3] + units[5:]}) == 7
    assert trial.population_key(units[3]) is trial.population_key(units[4]) is None
    assert trial.population_key(units[0], "reference") is None
    assert ([outcome_fields(o) for o in trial.run_units(units, data)]
            == [outcome_fields(trial.train_unit(u, data)) for u in units])
