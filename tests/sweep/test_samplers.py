"""fastnet.sweep.samplers: a sample depends only on (seed, index, history as a set);
Sobol points are scipy's; the grid is the product; coarse to fine stays in the box of
the best trials of the earlier rounds."""
import itertools
import json
import math
import random
import re
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import qmc

from fastnet.sweep.samplers import (
    CoarseToFineSampler, GridSampler, RandomSampler, SobolSampler, sampler_from_json,
    trial_seed)
from fastnet.sweep.space import Choice, Space, choice, int_uniform, log_uniform

SPACE = Space({"lr": log_uniform(1e-6, 1e-2), "hidden_size": int_uniform(10, 100),
               "optimizer": choice(["sgd", "adam", "momentum"]), "hidden_layers": 2})

SAMPLERS = {
    "random": lambda: RandomSampler(SPACE, 7),
    "sobol": lambda: SobolSampler(SPACE, 7),
    "grid": lambda: GridSampler(SPACE, 3),
    "coarse_to_fine": lambda: CoarseToFineSampler(SPACE, 7, rounds=3, round_size=4, top_k=2),
    "coarse_to_fine_random": lambda: CoarseToFineSampler(SPACE, 7, rounds=3, round_size=4,
                                                         top_k=2, margin=0.5, base="random"),
}


def scored_history(n):
    """Trials 0..n-1 of ``SPACE`` at random points, scored by closeness to lr = 1e-3."""
    sampler = RandomSampler(SPACE, 99)
    configs = [sampler.sample(i) for i in range(n)]
    return [(i, c, -abs(math.log10(c["lr"]) + 3)) for i, c in enumerate(configs)]


HISTORY = scored_history(12)


def test_trial_seed():
    seeds = [trial_seed(5, i) for i in range(1000)]
    assert all(isinstance(s, int) and 0 <= s < 2**63 for s in seeds)
    assert len(set(seeds)) == 1000
    assert seeds[:10] == [trial_seed(5, i) for i in range(10)]
    assert trial_seed(6, 0) != seeds[0]


@pytest.mark.parametrize("name", SAMPLERS)
def test_a_sample_depends_only_on_seed_and_index(name):
    alone = SAMPLERS[name]().sample(5, HISTORY)
    in_order = [SAMPLERS[name]().sample(i, HISTORY) for i in range(10)]
    sampler = SAMPLERS[name]()
    reverse = [sampler.sample(i, HISTORY) for i in reversed(range(10))]
    assert alone == in_order[5] == reverse[4]
    assert in_order == reverse[::-1]
    assert len({json.dumps(c, sort_keys=True) for c in in_order}) == 10


@pytest.mark.parametrize("name", SAMPLERS)
def test_samples_are_complete_json_configs(name):
    config = SAMPLERS[name]().sample(7, HISTORY)
    assert config == Space.complete(config)
    assert json.loads(json.dumps(config)) == config
    assert config["hidden_size_list"] == [config["hidden_size"]] * 2


@pytest.mark.parametrize("name", SAMPLERS)
def test_sampler_json_round_trip(name):
    sampler = SAMPLERS[name]()
    back = sampler_from_json(json.loads(json.dumps(sampler.to_json())), SPACE)
    assert type(back) is type(sampler) and back.to_json() == sampler.to_json()
    assert [back.sample(i, HISTORY) for i in range(10)] == [
        sampler.sample(i, HISTORY) for i in range(10)]


def test_random_points_are_uniform_and_seeded():
    sampler = RandomSampler(SPACE, 1)
    points = np.array([sampler.unit(i) for i in range(2000)])
    assert points.shape == (2000, 3) and points.min() >= 0 and points.max() < 1
    assert points.mean(axis=0) == pytest.approx([0.5] * 3, abs=0.03)
    assert sampler.sample(3) == SPACE.config_from_unit(sampler.unit(3))
    assert RandomSampler(SPACE, 2).sample(3) != sampler.sample(3)


@pytest.mark.parametrize("n", [1, 100, 300])
def test_sobol_points_are_the_scrambled_sobol_sequence(n):
    expected = qmc.Sobol(3, scramble=True, seed=7).random(512)[:n]
    sampler = SobolSampler(SPACE, 7)
    assert np.array_equal([sampler.unit(i) for i in range(n)], expected)
    fresh = SobolSampler(SPACE, 7)
    assert np.array_equal(fresh.unit(n - 1), expected[n - 1])
    assert fresh.sample(n - 1) == SPACE.config_from_unit(expected[n - 1])


def test_samplers_of_a_space_without_dimensions():
    space = Space({"lr": 0.1})
    for sampler in (RandomSampler(space, 0), SobolSampler(space, 0), GridSampler(space, 4)):
        assert sampler.sample(0) == Space.complete({"lr": 0.1})
    assert len(GridSampler(space, 4)) == 1


def test_grid_is_the_product_in_c_order():
    sampler = GridSampler(SPACE, 4)
    axes = [SPACE.params[name].grid(4) for name in SPACE.dimensions]
    assert SPACE.dimensions == ("hidden_size", "lr", "optimizer")
    assert len(sampler) == 4 * 4 * 3
    points = [tuple(sampler.sample(i)[name] for name in SPACE.dimensions)
              for i in range(len(sampler))]
    assert points == list(itertools.product(*axes))


def test_rounds():
    sampler = SAMPLERS["coarse_to_fine"]()
    assert len(sampler) == 12
    assert [sampler.round_of(i) for i in range(12)] == [0] * 4 + [1] * 4 + [2] * 4
    assert [sampler.round_start(r) for r in range(3)] == [0, 4, 8]
    for one_round in (RandomSampler(SPACE, 0), SobolSampler(SPACE, 0), GridSampler(SPACE, 2)):
        assert one_round.round_of(0) == one_round.round_of(10**6) == one_round.round_start(0) == 0


@pytest.mark.parametrize("base", ["sobol", "random"])
def test_round_zero_is_the_base_sampler(base):
    sampler = CoarseToFineSampler(SPACE, 3, rounds=2, round_size=8, top_k=2, base=base)
    plain = {"sobol": SobolSampler, "random": RandomSampler}[base](SPACE, 3)
    assert [sampler.sample(i) for i in range(8)] == [plain.sample(i) for i in range(8)]


def top_k_box(history, end, k, margin):
    """Per dimension of ``SPACE``: (lowest, highest) value allowed, or the options allowed."""
    ranked = sorted((h for h in history if h[0] < end and h[2] is not None
                     and not math.isnan(h[2])), key=lambda h: (-h[2], h[0]))[:k]
    box = {}
    for name in SPACE.dimensions:
        d = SPACE.params[name]
        values = [config[name] for _, config, _ in ranked]
        if isinstance(d, Choice):
            box[name] = set(values)
            continue
        units = [d.to_unit(v) for v in values]
        widen = margin * (max(units) - min(units))
        box[name] = (d.from_unit(max(min(units) - widen, 0)),
                     d.from_unit(min(max(units) + widen, 1)))
    return box


def assert_inside(config, box):
    for name, allowed in box.items():
        if isinstance(allowed, set):
            assert config[name] in allowed, name
        else:
            assert allowed[0] * (1 - 1e-12) <= config[name] <= allowed[1] * (1 + 1e-12), name


@pytest.mark.parametrize("margin", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("base", ["sobol", "random"])
def test_later_rounds_stay_in_the_widened_top_k_box(base, margin):
    sampler = CoarseToFineSampler(SPACE, 1, rounds=3, round_size=12, top_k=3, margin=margin,
                                  base=base)
    history = list(HISTORY)
    box = top_k_box(history, 12, 3, margin)
    round_1 = [sampler.sample(i, history) for i in range(12, 24)]
    for config in round_1:
        assert_inside(config, box)
    assert len({c["optimizer"] for c in round_1}) == len(box["optimizer"])
    if margin == 1.0:   # two thirds of the box lie beyond the top-k's own range
        inner = top_k_box(history, 12, 3, 0.0)["lr"]
        assert any(not inner[0] <= c["lr"] <= inner[1] for c in round_1)
    history += [(i, c, -abs(math.log10(c["lr"]) + 3)) for i, c in enumerate(round_1, 12)]
    box = top_k_box(history, 24, 3, margin)   # the best of rounds 0 and 1 together
    for config in (sampler.sample(i, history) for i in range(24, 36)):
        assert_inside(config, box)


def test_the_box_zooms_in():
    sampler = CoarseToFineSampler(SPACE, 1, rounds=2, round_size=12, top_k=3)
    lrs = [math.log10(sampler.sample(i, HISTORY)["lr"]) for i in range(12, 24)]
    best = sorted(HISTORY, key=lambda h: -h[2])[:3]
    low, high = (f(math.log10(c["lr"]) for _, c, _ in best) for f in (min, max))
    assert max(lrs) - min(lrs) <= 1.2 * (high - low) < 4


def test_history_order_and_other_rounds_do_not_matter():
    sampler = SAMPLERS["coarse_to_fine"]()
    shuffled = list(HISTORY)
    random.Random(0).shuffle(shuffled)
    expected = [sampler.sample(i, HISTORY[:4]) for i in range(4, 8)]
    # HISTORY goes on into rounds 1 and 2: those trials are not "earlier rounds" of 4..7
    for history in (HISTORY[:4][::-1], HISTORY, shuffled, tuple(HISTORY)):
        assert [sampler.sample(i, history) for i in range(4, 8)] == expected
    assert [sampler.sample(i, iter(shuffled)) for i in range(4, 8)] == expected


def test_a_rounds_trials_find_the_best_of_one_history_once(monkeypatch):
    """The coordinator samples a round's trials with one history list: its top-k are
    sorted out once (21 ms a trial with 10,000 trials in it), again where the list
    grows, and every sample is the one a fresh sampler gives."""
    sampler, fresh = SAMPLERS["coarse_to_fine"](), SAMPLERS["coarse_to_fine"]()
    calls = []
    top_k = CoarseToFineSampler._top_k
    monkeypatch.setattr(CoarseToFineSampler, "_top_k", lambda self, history, end: (
        calls.append(end), top_k(self, history, end))[1])
    history = list(HISTORY[:4])
    first = [sampler.sample(i, history) for i in range(4, 8)]
    assert calls == [4]
    history += HISTORY[4:8]  # trials of round 1: no better box for round 1
    assert sampler.sample(6, history) == first[2] and calls == [4, 4]
    second = [sampler.sample(i, history) for i in range(8, 12)]
    assert calls == [4, 4, 8]
    assert first == [fresh.sample(i, list(HISTORY[:4])) for i in range(4, 8)]
    assert second == [fresh.sample(i, list(HISTORY[:8])) for i in range(8, 12)]


def test_failed_trials_are_never_in_the_top_k():
    configs = [Space.complete({"lr": lr, "optimizer": opt, "hidden_size": 50})
               for lr, opt in [(1e-2, "momentum"), (1e-6, "momentum"), (1e-4, "sgd"),
                               (1e-3, "adam"), (1e-5, "sgd")]]
    history = list(zip(range(5), configs, [float("nan"), None, 0.9, 0.8, np.float64(0.1)]))
    sampler = CoarseToFineSampler(SPACE, 0, rounds=2, round_size=5, top_k=2, margin=0)
    for config in (sampler.sample(i, history) for i in range(5, 10)):
        assert 1e-4 * (1 - 1e-12) <= config["lr"] <= 1e-3 * (1 + 1e-12)
        assert config["optimizer"] in {"SGD", "Adam"}
        assert config["hidden_size"] == 50


def test_ties_go_to_the_lower_index():
    configs = [Space.complete({"optimizer": opt, "lr": 1e-3, "hidden_size": 50})
               for opt in ("momentum", "adam", "sgd")]
    history = [(2, configs[2], 0.5), (1, configs[1], 0.5), (0, configs[0], 0.5)]
    sampler = CoarseToFineSampler(SPACE, 0, rounds=2, round_size=3, top_k=2)
    assert {sampler.sample(i, history)["optimizer"] for i in range(3, 6)} == {"Momentum", "Adam"}


@pytest.mark.parametrize("history", [(), [(0, SAMPLERS["random"]().sample(0), float("nan"))]])
def test_without_a_scored_trial_later_rounds_sample_the_whole_space(history):
    sampler = CoarseToFineSampler(SPACE, 4, rounds=2, round_size=2, top_k=2)
    assert sampler.sample(3, history) == SobolSampler(SPACE, 4).sample(3)


BAD_INPUTS = [
    ("seed", lambda: RandomSampler(SPACE, -1), "seed must be an int >= 0, got -1"),
    ("seed-float", lambda: SobolSampler(SPACE, 1.5), "seed must be an int >= 0, got 1.5"),
    ("space", lambda: RandomSampler({"lr": 0.1}, 0),
     "space must be a fastnet.sweep.space.Space, got {'lr': 0.1}"),
    ("index", lambda: RandomSampler(SPACE, 0).sample(-1), "index must be an int >= 0, got -1"),
    ("index-bool", lambda: SobolSampler(SPACE, 0).sample(True),
     "index must be an int >= 0, got True"),
    ("one-round", lambda: RandomSampler(SPACE, 0).round_start(1),
     "r must be 0 (RandomSampler has one round), got 1"),
    ("grid-points", lambda: GridSampler(SPACE, 0),
     "points_per_dimension must be an int >= 1, got 0"),
    ("grid-index", lambda: GridSampler(SPACE, 2).sample(12),
     "index must be < 12 (the grid's size), got 12"),
    ("rounds", lambda: CoarseToFineSampler(SPACE, 0, 0, 10, 2),
     "rounds must be an int >= 1, got 0"),
    ("round-size", lambda: CoarseToFineSampler(SPACE, 0, 2, 0, 2),
     "round_size must be an int >= 1, got 0"),
    ("top-k", lambda: CoarseToFineSampler(SPACE, 0, 2, 10, 1), "top_k must be an int >= 2, got 1"),
    ("margin", lambda: CoarseToFineSampler(SPACE, 0, 2, 10, 2, margin=-0.1),
     "margin must be a finite number >= 0, got -0.1"),
    ("base", lambda: CoarseToFineSampler(SPACE, 0, 2, 10, 2, base="halton"),
     "base must be one of 'sobol', 'random', got 'halton'"),
    ("round-of", lambda: CoarseToFineSampler(SPACE, 0, 2, 10, 2).round_of(20),
     "index must be < 20 (the sampler's points), got 20"),
    ("round-size-and-trials", lambda: CoarseToFineSampler(SPACE, 0, 2, 10, 2, trials=20),
     "give round_size or trials (split over the rounds), not both"),
    ("fewer-trials-than-rounds", lambda: CoarseToFineSampler(SPACE, 0, 5, trials=2),
     "trials=2 cannot fill rounds=5: give at least one trial a round"),
    ("round-start", lambda: CoarseToFineSampler(SPACE, 0, 2, 10, 2).round_start(2),
     "r must be < 2 (the number of rounds), got 2"),
    ("trial-seed", lambda: trial_seed(-1, 0), "sweep_seed must be an int >= 0, got -1"),
    ("json-type", lambda: sampler_from_json({"type": "halton"}, SPACE),
     "unknown sampler type 'halton'; known: random, sobol, grid, coarse_to_fine"),
    ("json-not-dict", lambda: sampler_from_json("sobol", SPACE),
     "a sampler must be a dict with a 'type', got 'sobol'"),
]


@pytest.mark.parametrize("trials, rounds, sizes", [(10, 3, [3, 3, 4]), (12, 3, [4, 4, 4]),
                                                   (5, 5, [1] * 5), (7, 1, [7])])
def test_trials_split_over_the_rounds_as_evenly_as_they_go(trials, rounds, sizes):
    """10 trials in 3 rounds ran 4, 4 and 2 (the most refined round the shortest) and
    warned that the sampler ran 10 of its 12 points."""
    sampler = CoarseToFineSampler(SPACE, 0, rounds, trials=trials, top_k=2)
    assert len(sampler) == trials
    assert [sampler.round_of(i) for i in range(trials)] == [
        r for r, size in enumerate(sizes) for _ in range(size)]
    assert [sampler.round_start(r) for r in range(rounds)] == [sum(sizes[:r])
                                                                for r in range(rounds)]
    again = sampler_from_json(json.loads(json.dumps(sampler.to_json())), SPACE)
    assert [again.sample(i) for i in range(trials)] == [sampler.sample(i)
                                                        for i in range(trials)]


@pytest.mark.parametrize("call, message", [case[1:] for case in BAD_INPUTS],
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        call()


def test_json_with_a_missing_setting():
    with pytest.raises(ValueError, match=r"^sobol sampler: .*'seed'"):
        sampler_from_json({"type": "sobol"}, SPACE)


def test_no_kernels_or_nets_are_imported():
    code = ("import sys, fastnet.sweep.space, fastnet.sweep.samplers; "
            "print(sorted(m for m in sys.modules if m.startswith('fastnet.')))")
    modules = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout
    assert not re.search(r"fastnet\.(kernels|nets|layers|optimizers|trainer|arena)", modules)
