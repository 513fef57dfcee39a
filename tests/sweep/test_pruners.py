"""Successive halving and the median rule: rungs and cuts."""
import pytest

from fastnet.sweep.pruners import MedianPruner, SuccessiveHalving, make_pruner


def test_successive_halving_rungs_grow_by_the_reduction_factor_below_the_last_epoch():
    assert SuccessiveHalving(1, 3).rungs(50) == [1, 3, 9, 27]
    assert SuccessiveHalving(2 / 9, 3).rungs(2) == pytest.approx([2 / 9, 2 / 3])
    assert SuccessiveHalving(1, 2).rungs(1) == []


def test_successive_halving_keeps_the_best_third_ties_to_the_lower_index():
    entries = [(i, s) for i, s in enumerate([0.5, 0.9, 0.1, 0.9, 0.3, 0.7, 0.2])]
    assert SuccessiveHalving(1, 3).survivors(entries) == {1, 3, 5}  # ceil(7 / 3) = 3
    assert SuccessiveHalving(1, 3).survivors([(4, 0.8), (2, 0.8)]) == {2}


def test_the_median_rule_compares_each_trial_with_the_lower_indices():
    pruner = MedianPruner(n_startup_trials=2)
    entries = [(0, 0.5), (1, 0.1), (2, 0.2), (3, 0.6), (4, 0.1)]
    # 0, 1: startup; 2: 0.2 < median(0.5, 0.1) = 0.3; 3: 0.6 >= 0.2; 4: 0.1 < 0.35
    assert pruner.survivors(list(reversed(entries))) == {0, 1, 3}
    assert MedianPruner(0, 1, 2).rungs(6) == [3, 5]


@pytest.mark.parametrize(("spec", "error"), [
    ({"name": "halving", "min_epochs": 0}, "min_epochs must be > 0, got 0"),
    ({"name": "halving", "reduction_factor": 1}, "reduction_factor must be >= 2, got 1"),
    ({"name": "median", "interval_epochs": 0}, "interval_epochs must be > 0, got 0"),
    ("hyperband", "unknown pruner 'hyperband'; choose one of"),
])
def test_bad_pruners_are_refused(spec, error):
    with pytest.raises(ValueError, match=error.replace("(", r"\(")):
        make_pruner(spec)


def test_pruners_round_trip_through_json():
    for pruner in (SuccessiveHalving(0.5, 4), MedianPruner(3, 1, 2)):
        assert make_pruner(pruner.to_json()).to_json() == pruner.to_json()
