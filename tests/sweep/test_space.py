"""fastnet.sweep.space: one table of distributions drives the round trip, monotonicity,
range-end, grid and JSON tests; one table of bad inputs names each exact message."""
import json
import re

import numpy as np
import pytest

from fastnet.sweep.space import (
    PARAMETERS, Choice, Space, choice, distribution_from_json, int_uniform, log_int,
    log_uniform, one_minus_log_uniform, parse_param, uniform)

DISTRIBUTIONS = {
    "uniform": uniform(-1, 3),
    "log_uniform": log_uniform(1e-6, 1e-2),
    "one_minus_log_uniform": one_minus_log_uniform(0.9, 0.999),
    "one_minus_log_from_0": one_minus_log_uniform(0, 0.99),
    "int_uniform": int_uniform(1, 10),
    "log_int": log_int(1, 1000),
    "choice": choice(["a", "b", "c"]),
    "choice_of_lists": choice([[100] * 4, [200] * 2]),
}
NUMERIC = {name: d for name, d in DISTRIBUTIONS.items() if not isinstance(d, Choice)}
UNITS = np.random.default_rng(0).random(500).tolist() + [0.0, 0.5, 1.0]


def order(distribution, value):
    """A value's place on the distribution's axis: the value, or a choice's index."""
    if isinstance(distribution, Choice):
        return distribution.options.index(value)
    return value


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_from_unit_is_monotone_and_inside_the_range(name):
    d = DISTRIBUTIONS[name]
    values = [d.from_unit(u) for u in sorted(UNITS)]
    places = [order(d, v) for v in values]
    assert places == sorted(places)
    if not isinstance(d, Choice):
        assert all(d.low <= v <= d.high for v in values)


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_to_unit_inverts_from_unit(name):
    d = DISTRIBUTIONS[name]
    for u in UNITS:
        value = d.from_unit(u)
        unit = d.to_unit(value)
        assert 0 <= unit <= 1
        if isinstance(d, Choice) or d.integer:   # back to the value, exactly
            assert d.from_unit(unit) == value
        else:
            assert unit == pytest.approx(u, abs=1e-12)
            assert d.from_unit(unit) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("name", NUMERIC)
def test_unit_ends_give_the_range_ends(name):
    d = NUMERIC[name]
    assert d.from_unit(0.0) == pytest.approx(d.low, rel=1e-12)
    assert d.from_unit(1.0) == pytest.approx(d.high, rel=1e-12)
    if not d.integer:   # an int's ends sit inside the bins of low and high
        assert (d.to_unit(d.low), d.to_unit(d.high)) == pytest.approx((0.0, 1.0), abs=1e-12)


def test_choice_to_unit_is_the_bin_centre():
    d = choice(["a", "b", "c", "d"])
    assert [d.to_unit(o) for o in "abcd"] == [0.125, 0.375, 0.625, 0.875]
    assert [d.from_unit(u) for u in (0.0, 0.2499, 0.25, 0.999, 1.0)] == ["a", "a", "b", "d", "d"]


def test_choice_from_unit_returns_a_copy():
    d = choice([[1, 2]])
    d.from_unit(0.5).append(3)
    assert d.options == ([1, 2],)


def decade_shares(values, edges):
    return np.histogram(values, bins=edges)[0] / len(values)


def test_log_uniform_puts_a_quarter_in_each_decade():
    d = log_uniform(1e-6, 1e-2)
    values = [d.from_unit(u) for u in np.random.default_rng(1).random(4000)]
    shares = decade_shares(values, [1e-6, 1e-5, 1e-4, 1e-3, 1e-2])
    assert shares == pytest.approx([0.25] * 4, abs=0.03)


def test_one_minus_log_uniform_puts_a_third_in_each_decade_of_one_minus():
    d = one_minus_log_uniform(0.9, 0.9999)
    values = [1 - d.from_unit(u) for u in np.random.default_rng(2).random(3000)]
    assert decade_shares(values, [1e-4, 1e-3, 1e-2, 1e-1]) == pytest.approx([1 / 3] * 3, abs=0.03)


def test_uniform_is_uniform():
    d = uniform(0, 4)
    values = [d.from_unit(u) for u in np.random.default_rng(3).random(4000)]
    assert decade_shares(values, [0, 1, 2, 3, 4]) == pytest.approx([0.25] * 4, abs=0.03)


@pytest.mark.parametrize("d, shares", [
    (int_uniform(1, 3), [1 / 3] * 3),
    (log_int(1, 3), np.diff(np.log([0.5, 1.5, 2.5, 3.5])) / np.log(7)),
])
def test_int_bounds_are_inclusive_with_their_share(d, shares):
    values = [d.from_unit(u) for u in np.random.default_rng(4).random(6000)]
    assert all(isinstance(v, int) for v in values)
    assert [values.count(k) / len(values) for k in (1, 2, 3)] == pytest.approx(shares, abs=0.025)
    assert (d.from_unit(0.0), d.from_unit(np.nextafter(1.0, 0.0)), d.from_unit(1.0)) == (1, 3, 3)


@pytest.mark.parametrize("d, n, expected", [
    (uniform(0, 1), 5, [0.0, 0.25, 0.5, 0.75, 1.0]),
    (uniform(0, 1), 1, [0.5]),
    (log_uniform(1e-6, 1e-2), 5, [1e-6, 1e-5, 1e-4, 1e-3, 1e-2]),
    (one_minus_log_uniform(0.9, 0.999), 3, [0.9, 0.99, 0.999]),
    (int_uniform(1, 3), 10, [1, 2, 3]),
    (int_uniform(0, 10), 3, [0, 5, 10]),
    (log_int(1, 1000), 4, [1, 10, 100, 1000]),
    (log_int(1, 4), 10, [1, 2, 3, 4]),
    (choice(["x", "y"]), 5, ["x", "y"]),
    (choice(["x", "y"]), 1, ["x", "y"]),
])
def test_grid(d, n, expected):
    assert d.grid(n) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name, scale", [
    ("uniform", "linear"), ("log_uniform", "log"), ("one_minus_log_uniform", "one_minus_log"),
    ("int_uniform", "linear"), ("log_int", "log"), ("choice", "categorical")])
def test_scale(name, scale):
    assert DISTRIBUTIONS[name].scale == scale


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_distribution_json_round_trip(name):
    d = DISTRIBUTIONS[name]
    back = distribution_from_json(json.loads(json.dumps(d.to_json())))
    assert back == d and type(back) is type(d) and repr(back) == repr(d)


def test_distributions_normalize_their_inputs():
    assert uniform(0, 1).to_json() == {"type": "uniform", "low": 0.0, "high": 1.0}
    assert choice([(1, 2), (3,)]).options == ([1, 2], [3])
    assert repr(log_int(1, 10)) == "log_int(1, 10)"
    assert repr(choice(["a", 1])) == "choice(['a', 1])"
    assert choice([True, 1]).to_unit(1) == 0.75   # a bool never equals a number


def test_space_orders_and_resolves_names():
    space = Space({"lr": log_uniform(1e-4, 1e-1), "batch_size": 50,
                   "optimizer": choice(["adam", "sgd"]), "hidden": (50, 50)})
    assert space.dimensions == ("lr", "optimizer")
    assert space.constants == {"hidden_size_list": [50, 50], "mini_batch_size": 50}
    assert space.params["optimizer"] == choice(["Adam", "SGD"])
    assert list(space.params) == sorted(space.params)


def test_config_from_unit():
    space = Space({"lr": log_uniform(1e-4, 1e-1), "optimizer": choice(["sgd", "adam"]),
                   "epochs": 5})
    config = space.config_from_unit([1 / 3, 0.75])
    assert config == Space.complete({"lr": 1e-3, "optimizer": "Adam", "epochs": 5}) | {
        "lr": pytest.approx(1e-3)}
    assert list(config) == list(PARAMETERS)
    assert json.loads(json.dumps(config)) == config


def test_space_json_round_trip():
    space = Space({"lr": log_uniform(1e-6, 1e-2), "momentum": one_minus_log_uniform(0.5, 0.99),
                   "hidden": choice([[100] * 4, [200] * 2]), "use_batchnorm": True,
                   "hidden_size": log_int(10, 1000), "batch_size": int_uniform(32, 256),
                   "dropout_ratio": uniform(0, 0.5), "weight_init_std": "he", "epochs": 2.5})
    back = Space.from_json(json.loads(json.dumps(space.to_json())))
    assert back == space and back.dimensions == space.dimensions
    assert back.config_from_unit([0.3] * 6) == space.config_from_unit([0.3] * 6)


def test_parameters_table():
    assert list(PARAMETERS) == [
        "hidden_size_list", "hidden_size", "hidden_layers", "activation", "weight_init_std",
        "use_batchnorm", "normalization", "groups", "use_dropout", "dropout_ratio",
        "weight_decay_lambda", "optimizer", "lr", "momentum", "beta1", "beta2", "decay_rate",
        "decoupled_weight_decay", "lr_schedule", "step_size", "gamma", "lr_decay_rate",
        "decay_steps", "alpha", "mini_batch_size", "epochs"]
    assert {alias: p.name for p in PARAMETERS.values() for alias in p.aliases} == {
        "hidden": "hidden_size_list", "batchnorm": "use_batchnorm", "dropout": "use_dropout",
        "weight_decay": "weight_decay_lambda", "batch_size": "mini_batch_size"}
    for parameter in PARAMETERS.values():
        assert parameter.canonical(parameter.default) == parameter.default


# What Space.complete fills in where a default is None: the value the trial uses.
USED = {"lr": 0.01}


def test_complete_fills_every_default():
    assert Space.complete({}) == {name: p.default for name, p in PARAMETERS.items()} | USED
    config = Space.complete({})
    config["hidden_size_list"].append(1)
    assert Space.complete({})["hidden_size_list"] == [100, 100, 100, 100]


@pytest.mark.parametrize("config, changed", [
    ({"batch_size": 32}, {"mini_batch_size": 32}),
    ({"lr": 1}, {"lr": 1.0}),
    ({"optimizer": "rmsPROP"}, {"optimizer": "RMSprop"}),
    ({"activation": "Tanh"}, {"activation": "tanh"}),
    ({"hidden": (50, 20)}, {"hidden_size_list": [50, 20]}),
    ({"epochs": 3}, {"epochs": 3}),
    ({"epochs": 0.5}, {"epochs": 0.5}),
    ({"weight_init_std": 0.01}, {"weight_init_std": 0.01}),
    ({"hidden_size": 50, "hidden_layers": 2},
     {"hidden_size": 50, "hidden_layers": 2, "hidden_size_list": [50, 50]}),
    ({"hidden_size": 50}, {"hidden_size": 50, "hidden_size_list": [50] * 4}),
    ({"hidden_layers": 2, "hidden_size_list": [30, 20, 10]},
     {"hidden_layers": 2, "hidden_size_list": [30, 30]}),
    ({"hidden_size": None}, {}),
    # the value the trial uses where the default depends on another parameter
    ({"optimizer": "adam"}, {"optimizer": "Adam", "lr": 0.001}),
    ({"optimizer": "AdamW"}, {"optimizer": "AdamW", "lr": 0.001, "decoupled_weight_decay": 0.01}),
    ({"optimizer": "adamw", "decoupled_weight_decay": 0, "lr": 0.1},
     {"optimizer": "AdamW", "lr": 0.1, "decoupled_weight_decay": 0.0}),
    ({"use_batchnorm": True}, {"use_batchnorm": True, "normalization": "batch"}),
    ({"normalization": "batch"}, {"use_batchnorm": True, "normalization": "batch"}),
    ({"normalization": "layer", "groups": 4}, {"normalization": "layer", "groups": 4}),
    ({"lr_schedule": "cosine", "epochs": 2.5},
     {"lr_schedule": "cosine_decay", "decay_steps": 3, "alpha": 0.0, "epochs": 2.5}),
    ({"lr_schedule": "step", "step_size": 2}, {"lr_schedule": "step_decay", "step_size": 2,
                                              "gamma": 0.1}),
    ({"lr_schedule": "exponential", "gamma": 0.5, "step_size": 3},
     {"lr_schedule": "exponential_decay", "gamma": 0.5, "step_size": 3}),
    ({"lr_schedule": "inverse_time", "lr_decay_rate": 1},
     {"lr_schedule": "inverse_time_decay", "lr_decay_rate": 1.0}),
])
def test_complete_canonical_values(config, changed):
    expected = {name: p.default for name, p in PARAMETERS.items()} | USED | changed
    complete = Space.complete(config)
    assert complete == expected
    assert all(type(complete[k]) is type(v) for k, v in changed.items())
    assert Space.complete(complete) == complete


@pytest.mark.parametrize("text, name, value", [
    ("lr=1e-6:1e-2:log", "lr", log_uniform(1e-6, 1e-2)),
    ("lr=0.001:0.1", "lr", uniform(0.001, 0.1)),
    ("lr=0.001:0.1:linear", "lr", uniform(0.001, 0.1)),
    ("momentum=0.9:0.999:one-minus-log", "momentum", one_minus_log_uniform(0.9, 0.999)),
    ("hidden_size=10:100", "hidden_size", int_uniform(10, 100)),
    ("hidden_size=10:1000:log-int", "hidden_size", log_int(10, 1000)),
    ("batch_size=32:256:int", "mini_batch_size", int_uniform(32, 256)),
    ("weight_decay=1e-8:1e-4:log", "weight_decay_lambda", log_uniform(1e-8, 1e-4)),
    ("weight_init_std=0.001:0.1:log", "weight_init_std", log_uniform(0.001, 0.1)),
    ("epochs=1:10", "epochs", uniform(1, 10)),
    ("lr=0.01", "lr", 0.01),
    ("epochs=5", "epochs", 5),
    ("epochs=2.5", "epochs", 2.5),
    ("optimizer=adam", "optimizer", "Adam"),
    ("optimizer=sgd,Momentum,ADAM:choice", "optimizer", choice(["SGD", "Momentum", "Adam"])),
    ("activation=ReLU", "activation", "relu"),
    ("hidden=100x4", "hidden_size_list", [100, 100, 100, 100]),
    ("hidden=100-50", "hidden_size_list", [100, 50]),
    ("hidden=100x2-50", "hidden_size_list", [100, 100, 50]),
    ("hidden=100", "hidden_size_list", [100]),
    ("hidden_size_list=100-50", "hidden_size_list", [100, 50]),
    ("hidden=100x4,200x2:choice", "hidden_size_list", choice([[100] * 4, [200] * 2])),
    ("hidden=100-50,300:choice", "hidden_size_list", choice([[100, 50], [300]])),
    ("batchnorm=true", "use_batchnorm", True),
    ("dropout=False", "use_dropout", False),
    ("use_batchnorm=true,false:choice", "use_batchnorm", choice([True, False])),
    ("weight_init_std=he", "weight_init_std", "he"),
    ("weight_init_std=0.01", "weight_init_std", 0.01),
    ("weight_init_std=Xavier,0.01:choice", "weight_init_std", choice(["xavier", 0.01])),
    ("batch_size=100", "mini_batch_size", 100),
    ("hidden_layers=1,2,3:choice", "hidden_layers", choice([1, 2, 3])),
    ("optimizer=sgd,adamw:choice", "optimizer", choice(["SGD", "AdamW"])),
    ("decoupled_weight_decay=1e-4:1e-1:log", "decoupled_weight_decay", log_uniform(1e-4, 0.1)),
    ("normalization=batch,layer,none:choice", "normalization", choice(["batch", "layer", None])),
    ("normalization=Group", "normalization", "group"),
    ("groups=2,4:choice", "groups", choice([2, 4])),
    ("lr_schedule=cosine,none:choice", "lr_schedule", choice(["cosine_decay", None])),
    ("lr_schedule=Cosine_Decay", "lr_schedule", "cosine_decay"),
    ("lr_schedule=none", "lr_schedule", None),
    ("step_size=1:10", "step_size", int_uniform(1, 10)),
    ("gamma=0.1:1", "gamma", uniform(0.1, 1)),
    ("lr_decay_rate=0.01:1:log", "lr_decay_rate", log_uniform(0.01, 1)),
    ("decay_steps=5", "decay_steps", 5),
    ("alpha=0:0.5", "alpha", uniform(0, 0.5)),
    ("lr=none", "lr", None),
])
def test_parse_param(text, name, value):
    parsed = parse_param(text)
    assert parsed == (name, value)
    assert type(parsed[1]) is type(value)
    assert Space(dict([parsed])).params[name] == value


@pytest.mark.parametrize("name, spec, value", [
    ("normalization", choice(["batch", "none"]), choice(["batch", None])),
    ("lr_schedule", "None", None),
    ("lr", "none", None),
])
def test_none_as_the_command_line_spells_it_is_taken_from_python_too(name, spec, value):
    assert Space({name: spec}).params[name] == value


OPTIMIZERS = "'SGD', 'Momentum', 'Nesterov', 'AdaGrad', 'RMSprop', 'Adam', 'AdamW'"
SCHEDULES = ("'step_decay', 'exponential_decay', 'inverse_time_decay', 'cosine_decay' "
             "(or step, exponential, inverse_time, cosine)")
# every parameter, with the aliases the README advertises
KNOWN = ("hidden_size_list (hidden), hidden_size, hidden_layers, activation, weight_init_std, "
         "use_batchnorm (batchnorm), normalization, groups, use_dropout (dropout), "
         "dropout_ratio, weight_decay_lambda (weight_decay), optimizer, lr, momentum, beta1, "
         "beta2, decay_rate, decoupled_weight_decay, lr_schedule, step_size, gamma, "
         "lr_decay_rate, decay_steps, alpha, mini_batch_size (batch_size), epochs")
DISTRIBUTION_TYPES = "uniform, log_uniform, one_minus_log_uniform, int_uniform, log_int, choice"
SYNTAX = ("--param must be name=value, name=low:high[:linear|log|one-minus-log|int|log-int] "
          "or name=a,b,c:choice")

BAD_INPUTS = [
    # --- distributions
    ("empty-range", lambda: uniform(1, 1), "uniform: low must be < high, got low=1.0, high=1.0"),
    ("inverted-range", lambda: int_uniform(5, 2),
     "int_uniform: low must be < high, got low=5, high=2"),
    ("nan-end", lambda: uniform(float("nan"), 1), "uniform: low must be a finite number, got nan"),
    ("string-end", lambda: log_uniform(1e-3, "1"),
     "log_uniform: high must be a finite number, got '1'"),
    ("log-zero", lambda: log_uniform(0, 1), "log_uniform: a log range needs low > 0, got low=0.0"),
    ("log-negative", lambda: log_uniform(-1, 1),
     "log_uniform: a log range needs low > 0, got low=-1.0"),
    ("one-minus-log-1", lambda: one_minus_log_uniform(0.9, 1),
     "one_minus_log_uniform: needs 0 <= low < high < 1, got low=0.9, high=1.0"),
    ("one-minus-log-negative", lambda: one_minus_log_uniform(-0.1, 0.5),
     "one_minus_log_uniform: needs 0 <= low < high < 1, got low=-0.1, high=0.5"),
    ("int-float-end", lambda: int_uniform(1.5, 3), "int_uniform: low must be an int, got 1.5"),
    ("int-bool-end", lambda: log_int(1, True), "log_int: high must be an int, got True"),
    ("int-end-past-float64", lambda: log_int(1, 10**400),
     "log_int: high must be at most 1.8e+308, got an int of 401 digits"),
    ("width-past-float64", lambda: uniform(-1e308, 1e308),
     ("uniform: high - low must be a finite float64 (the width samples are drawn in), got "
      "low=-1e+308, high=1e+308")),
    ("choice-nan", lambda: choice([float("nan"), 1.0]), "choice: options must be finite, got nan"),
    ("log-int-zero", lambda: log_int(0, 10), "log_int: needs low >= 1, got low=0"),
    ("choice-empty", lambda: choice([]), "choice: needs at least one option, got none"),
    ("choice-string", lambda: choice("abc"), "choice: options must be a list, got 'abc'"),
    ("choice-repeat", lambda: choice(["a", "b", "a"]),
     "choice: options must differ, got 'a' twice"),
    ("from-unit-outside", lambda: uniform(0, 1).from_unit(1.5),
     "u must be a number in [0, 1], got 1.5"),
    ("to-unit-outside", lambda: uniform(0, 1).to_unit(2), "2 is not a value of uniform(0.0, 1.0)"),
    ("to-unit-not-int", lambda: int_uniform(0, 5).to_unit(2.5),
     "2.5 is not a value of int_uniform(0, 5)"),
    ("to-unit-not-option", lambda: choice(["a", "b"]).to_unit("d"),
     "'d' is not an option of choice(['a', 'b'])"),
    ("grid-zero", lambda: uniform(0, 1).grid(0), "n must be an int >= 1, got 0"),
    ("json-type", lambda: distribution_from_json({"type": "log_unifrom", "low": 1, "high": 2}),
     "unknown distribution type 'log_unifrom' (did you mean 'log_uniform'?); "
     f"known: {DISTRIBUTION_TYPES}"),
    ("json-fields", lambda: distribution_from_json({"type": "uniform", "low": 0}),
     "uniform takes the fields high, low, got low"),
    ("json-not-dict", lambda: distribution_from_json("uniform"),
     "a distribution must be a dict with a 'type', got 'uniform'"),
    # --- spaces and configurations
    ("unknown-name", lambda: Space({"lrr": 0.1}),
     f"unknown parameter 'lrr' (did you mean 'lr'?); known: {KNOWN}"),
    ("unknown-alias-typo", lambda: Space({"btach_size": 10}),
     f"unknown parameter 'btach_size' (did you mean 'batch_size'?); known: {KNOWN}"),
    ("unknown-no-match", lambda: Space({"zzz": 1}), f"unknown parameter 'zzz'; known: {KNOWN}"),
    ("name-twice", lambda: Space({"batch_size": 10, "mini_batch_size": 20}),
     "mini_batch_size is given twice, as 'batch_size' and 'mini_batch_size'"),
    ("params-not-dict", lambda: Space([("lr", 0.1)]),
     "params must be a dict of parameter names to values, got [('lr', 0.1)]"),
    ("dropout-range", lambda: Space({"dropout_ratio": uniform(0, 1)}),
     "dropout_ratio must be a float in [0, 1), got 1.0 (the high end of uniform(0.0, 1.0))"),
    ("int-parameter-float-range", lambda: Space({"hidden_size": uniform(1, 10)}),
     "hidden_size must be an int >= 1 (or None), got 1.0 (the low end of uniform(1.0, 10.0))"),
    ("option", lambda: Space({"optimizer": choice(["adam", "adamx"])}),
     f"optimizer must be one of {OPTIMIZERS}, got 'adamx' "
     "(an option of choice(['adam', 'adamx']))"),
    ("lr-zero", lambda: Space({"lr": 0}), "lr must be a float > 0 (or None), got 0"),
    ("weight-decay-negative", lambda: Space({"weight_decay": -1e-3}),
     "weight_decay must be a float >= 0, got -0.001"),
    ("momentum-1", lambda: Space({"momentum": 1.0}), "momentum must be a float in [0, 1), got 1.0"),
    ("batch-size-float", lambda: Space({"batch_size": 10.0}),
     "batch_size must be an int >= 1, got 10.0"),
    ("epochs-zero", lambda: Space({"epochs": 0}),
     "epochs must be a number in (0, 1000000], got 0"),
    # 1e308 raised OverflowError counting steps; 1e200 filled memory listing the epochs
    ("epochs-past-a-million", lambda: Space({"epochs": 1e200}),
     "epochs must be a number in (0, 1000000], got 1e+200"),
    ("bool", lambda: Space({"use_batchnorm": 1}), "use_batchnorm must be true or false, got 1"),
    ("dropout-as-a-ratio", lambda: Space({"dropout": 0.2}),
     "dropout must be true or false, got 0.2 (the ratio is dropout_ratio)"),
    ("hidden-repeat-left-out", lambda: parse_param("hidden=100x"),
     "hidden must be a non-empty list of ints >= 1 (on the command line 100x4 or "
     "100-50), got '100x'"),
    ("groups-not-dividing", lambda: Space({"normalization": "group", "groups": 3,
                                           "hidden": [32, 30]}),
     "groups=3 does not divide every hidden width of hidden=[32, 30] (group norm splits "
     "every hidden width into that many groups)"),
    ("hidden-empty", lambda: Space({"hidden": []}),
     "hidden must be a non-empty list of ints >= 1 (on the command line 100x4 or "
     "100-50), got []"),
    ("weight-init-name", lambda: Space({"weight_init_std": "kaiming"}),
     "weight_init_std must be a float > 0 or one of 'relu', 'he', 'sigmoid', 'xavier', "
     "got 'kaiming'"),
    ("None-without-None-default", lambda: Space({"momentum": None}),
     "momentum must be a float in [0, 1), got None"),
    ("space-json-not-dict", lambda: Space.from_json([]),
     "a space must be a dict of parameter names to values, got []"),
    ("complete-distribution", lambda: Space.complete({"lr": log_uniform(1e-6, 1e-2)}),
     "lr must be a float > 0 (or None), got log_uniform(1e-06, 0.01)"),
    ("complete-unknown", lambda: Space.complete({"beta3": 0.9}),
     f"unknown parameter 'beta3' (did you mean 'beta2'?); known: {KNOWN}"),
    ("u-vector-length",
     lambda: Space({"lr": log_uniform(1e-6, 1e-2),
                    "epochs": uniform(1, 2)}).config_from_unit([0.5]),
     "u_vector must have 2 entries, one per dimension (epochs, lr), got 1"),
    ("u-vector-entry", lambda: Space({"lr": log_uniform(1e-6, 1e-2)}).config_from_unit([-0.5]),
     "u must be a number in [0, 1], got -0.5"),
    # --- the command line
    # the same option in two spellings: the parameter was not named
    ("param-choice-spellings", lambda: parse_param("optimizer=adam,Adam:choice"),
     "optimizer: choice(['adam', 'Adam']): options must differ, got 'Adam' twice"),
    ("space-choice-spellings", lambda: Space({"optimizer": choice(["sgd", "SGD"])}),
     "optimizer: choice(['sgd', 'SGD']): options must differ, got 'SGD' twice"),
    ("param-no-equals", lambda: parse_param("lr"), f"{SYNTAX}, got 'lr'"),
    ("param-too-many-colons", lambda: parse_param("lr=1:2:log:4"), f"{SYNTAX}, got 'lr=1:2:log:4'"),
    ("param-choice-and-scale", lambda: parse_param("lr=1:2:choice"),
     f"{SYNTAX}, got 'lr=1:2:choice'"),
    ("param-unknown-name", lambda: parse_param("bogus=1"),
     f"unknown parameter 'bogus'; known: {KNOWN}"),
    ("param-unknown-scale", lambda: parse_param("lr=1e-6:1e-2:lg"),
     "unknown scale for lr 'lg' (did you mean 'log'?); known: linear, log, one-minus-log, int, "
     "log-int, choice"),
    ("param-range-ends", lambda: parse_param("lr=a:b:log"),
     "lr: the ends of the log range must be numbers, got 'a:b:log'"),
    ("param-int-range-ends", lambda: parse_param("hidden_size=1.5:4:int"),
     "hidden_size: the ends of the int range must be ints, got '1.5:4:int'"),
    ("param-bad-range", lambda: parse_param("momentum=0.9:1:one-minus-log"),
     "momentum: one_minus_log_uniform: needs 0 <= low < high < 1, got low=0.9, high=1.0"),
    ("param-range-outside", lambda: parse_param("dropout_ratio=0:1"),
     "dropout_ratio must be a float in [0, 1), got 1.0 (the high end of uniform(0.0, 1.0))"),
    ("param-constant", lambda: parse_param("hidden_size=1.5"),
     "hidden_size must be an int >= 1 (or None), got 1.5"),
    ("param-empty-value", lambda: parse_param("lr="), "lr must be a float > 0 (or None), got ''"),
    ("param-layer-sizes", lambda: parse_param("hidden=100y4"),
     "hidden must be a non-empty list of ints >= 1 (on the command line 100x4 or "
     "100-50), got '100y4'"),
    ("param-bool", lambda: parse_param("batchnorm=yes"),
     "batchnorm must be true or false, got 'yes'"),
    ("param-option", lambda: parse_param("optimizer=adam,adamx:choice"),
     f"optimizer must be one of {OPTIMIZERS}, got 'adamx' "
     "(an option of choice(['adam', 'adamx']))"),
    # --- the user's spelling of an alias
    ("alias-option", lambda: Space({"batch_size": choice([10, 0])}),
     "batch_size must be an int >= 1, got 0 (an option of choice([10, 0]))"),
    ("alias-range-end", lambda: Space({"batch_size": uniform(1, 10)}),
     "batch_size must be an int >= 1, got 1.0 (the low end of uniform(1.0, 10.0))"),
    ("alias-complete", lambda: Space.complete({"weight_decay": -1}),
     "weight_decay must be a float >= 0, got -1"),
    ("alias-param-range-ends", lambda: parse_param("batch_size=1.5:4:int"),
     "batch_size: the ends of the int range must be ints, got '1.5:4:int'"),
    ("alias-param-bad-range", lambda: parse_param("weight_decay=0:1e-2:log"),
     "weight_decay: log_uniform: a log range needs low > 0, got low=0.0"),
    ("alias-param-scale", lambda: parse_param("batch_size=1:4:lg"),
     "unknown scale for batch_size 'lg' (did you mean 'log'?); known: linear, log, "
     "one-minus-log, int, log-int, choice"),
    ("alias-param-choice", lambda: parse_param("hidden=:choice"),
     "hidden: choice: needs at least one option, got none"),
    # --- normalizations, AdamW, learning-rate schedules
    ("normalization-name", lambda: Space({"normalization": "batchnorm"}),
     "normalization must be one of 'batch', 'layer', 'group', 'instance', 'weight', "
     "'switchable' (or None), got 'batchnorm'"),
    ("normalization-and-batchnorm", lambda: Space({"batchnorm": choice([True, False]),
                                                   "normalization": "layer"}),
     "batchnorm and normalization conflict: give normalization=batch in place of batchnorm"),
    ("complete-normalization-and-batchnorm",
     lambda: Space.complete({"use_batchnorm": True, "normalization": "layer"}),
     "use_batchnorm=True and normalization='layer' conflict"),
    ("groups-zero", lambda: Space({"groups": 0}), "groups must be an int >= 1, got 0"),
    ("decoupled-weight-decay-negative", lambda: Space({"decoupled_weight_decay": -0.1}),
     "decoupled_weight_decay must be a float >= 0 (or None), got -0.1"),
    ("schedule-name", lambda: parse_param("lr_schedule=linear"),
     f"lr_schedule must be one of {SCHEDULES} (or None), got 'linear'"),
    ("schedule-needs-its-argument", lambda: Space({"lr_schedule": "step"}),
     "lr_schedule 'step_decay' needs step_size (--param step_size=...)"),
    ("schedule-option-needs-its-argument",
     lambda: Space({"lr_schedule": choice(["cosine", "exponential"])}),
     "lr_schedule 'exponential_decay' needs gamma (--param gamma=...)"),
    ("complete-schedule-argument", lambda: Space.complete({"lr_schedule": "inverse_time"}),
     "lr_schedule 'inverse_time_decay' needs lr_decay_rate (--param lr_decay_rate=...)"),
    ("gamma-zero", lambda: Space({"gamma": 0}), "gamma must be a float in (0, 1] (or None), got 0"),
    ("alpha-range", lambda: parse_param("alpha=0:1.5"),
     "alpha must be a float in [0, 1] (or None), got 1.5 (the high end of uniform(0.0, 1.5))"),
    ("step-size-float", lambda: parse_param("step_size=2.5"),
     "step_size must be an int >= 1 (or None), got 2.5"),
]


@pytest.mark.parametrize("call, message", [case[1:] for case in BAD_INPUTS],
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        call()


def test_error_messages_are_one_line():
    for _, call, _ in BAD_INPUTS:
        with pytest.raises(ValueError) as info:
            call()
        assert "\n" not in str(info.value)



def test_a_schedule_choice_with_the_arguments_of_each():
    name, value = parse_param("lr_schedule=cosine,step:choice")
    space = Space({name: value, "step_size": int_uniform(1, 5), "alpha": 0.1})
    assert space.params["lr_schedule"] == choice(["cosine_decay", "step_decay"])
    assert space.config_from_unit([0.75, 0.1]) == Space.complete(
        {"lr_schedule": "step_decay", "step_size": 1, "alpha": 0.1})


def test_the_tables_say_what_the_optimizers_and_schedules_take():
    import dataclasses
    import inspect

    from fastnet import optimizers, schedules
    from fastnet.sweep.space import (
        OPTIMIZER_DEFAULTS, OPTIMIZER_HYPERPARAMETERS, SCHEDULE_ARGUMENTS)

    names = [cls.__name__ for cls in optimizers.OPTIMIZERS.values()]
    assert list(OPTIMIZER_HYPERPARAMETERS) == list(OPTIMIZER_DEFAULTS) == names
    assert PARAMETERS["optimizer"].check(choice(names)) == choice(names)
    for name, hyper in OPTIMIZER_HYPERPARAMETERS.items():
        signature = inspect.signature(optimizers.make_optimizer(name).__init__).parameters
        assert set(hyper.values()) == set(signature) - {"eps"}, name
        for key, keyword in hyper.items():  # the sweep's default is the optimizer's
            default = PARAMETERS[key].default
            expected = OPTIMIZER_DEFAULTS[name][key] if default is None else default
            assert signature[keyword].default == expected, (name, key)
        assert Space.complete({"optimizer": name})["lr"] == signature["lr"].default
    assert list(SCHEDULE_ARGUMENTS) == list(schedules.SCHEDULES)
    for name, arguments in SCHEDULE_ARGUMENTS.items():
        fields = dataclasses.fields(schedules.SCHEDULES[name])
        assert list(arguments.values()) == [f.name for f in fields], name
        for key, f in zip(arguments, fields):
            if f.default is not dataclasses.MISSING:  # what complete fills in
                config = Space.complete({"lr_schedule": name, "step_size": 1, "gamma": 0.5,
                                         "lr_decay_rate": 1} | {key: None})
                assert config[key] == f.default, (name, key)


IGNORED = [
    ({"optimizer": "Adam", "momentum": one_minus_log_uniform(0.5, 0.99)},
     ["momentum is given but no trial reads it: only optimizer 'Momentum' or 'Nesterov' "
      "does, and this space's optimizer is 'Adam'"]),
    ({"optimizer": choice(["adam", "momentum"]), "momentum": 0.95}, []),
    ({"beta1": 0.8, "decay_rate": 0.9},
     ["beta1 is given but no trial reads it: only optimizer 'Adam' or 'AdamW' does, and "
      "this space's optimizer is 'SGD'",
      "decay_rate is given but no trial reads it: only optimizer 'RMSprop' does, and this "
      "space's optimizer is 'SGD'"]),
    ({"optimizer": "adam", "decoupled_weight_decay": log_uniform(1e-4, 1e-1)},
     ["decoupled_weight_decay is given but no trial reads it: only optimizer 'AdamW' does, "
      "and this space's optimizer is 'Adam'"]),
    ({"lr_schedule": choice(["cosine", None]), "step_size": 3},
     ["step_size is given but no trial reads it: only lr_schedule 'step_decay' does, and "
      "this space's lr_schedule is 'cosine_decay' or None"]),
    ({"groups": 4, "normalization": choice(["layer", "batch"])},
     ["groups is given but no trial reads it: only normalization 'group' or 'instance' "
      "does, and this space's normalization is 'layer' or 'batch'"]),
    ({"dropout_ratio": uniform(0.1, 0.5)},
     ["dropout_ratio is given but no trial reads it: only use_dropout True does, and this "
      "space's use_dropout is False"]),
    ({"dropout": True, "dropout_ratio": 0.2, "normalization": "group", "groups": 4}, []),
]


@pytest.mark.parametrize("params, messages", IGNORED)
def test_a_parameter_no_trial_reads_is_named_once(params, messages):
    assert Space(params).ignored() == messages
