"""``fastnet bench``'s sweep workloads at tiny size, end to end (no timing is checked):
sweep-hpo, sweep-overhead, sweep-dask and sweep-halving, with Optuna + PyTorch where
both are installed and reported as skipped where not."""
import json
import sys

import numpy as np
import pytest

from fastnet import bench
from fastnet.bench import harness, sweep_workload
from fastnet.bench.cli import OPTION_WORKLOADS

TINY = ["--quick", "--json"]
# each given where a workload selected takes it (the bench refuses the others)
TINY_SIZES = {"--sweep-trials": "2", "--sweep-epochs": "1", "--overhead-trials": "4",
              "--halving-trials": "3"}
TARGET_KEYS = {"metric", "label", "op", "threshold", "value", "status"}


def synthetic(n_train, n_val, seed=0):
    rng = np.random.default_rng(seed)
    return ((rng.random((n_train, 784), dtype=np.float32), rng.integers(0, 10, n_train)),
            (rng.random((n_val, 784), dtype=np.float32), rng.integers(0, 10, n_val)))


@pytest.fixture(autouse=True)
def small_data(monkeypatch):
    """Synthetic images instead of MNIST / Fashion-MNIST, which CI may not have."""
    monkeypatch.setattr(sweep_workload, "hpo_data",
                        lambda settings: (synthetic(200, 50), "synthetic"))
    monkeypatch.setattr(sweep_workload, "halving_spec", lambda settings: synthetic(900, 100, 1))


def run_json(capsys, workloads, *args):
    sizes = [part for flag, value in TINY_SIZES.items()
             if set(OPTION_WORKLOADS[flag]) & set(workloads.split(",")) for part in (flag, value)]
    assert bench.main([*TINY, *sizes, "--workload", workloads, *args]) == 0
    return json.loads(capsys.readouterr().out)


def check(result, implementations, ratios):
    assert {"description", "unit", "implementations", "notes", "skipped", "ratios",
            "targets"} <= set(result)
    assert set(result["implementations"]) == implementations
    for summary in result["implementations"].values():
        assert summary["median"] > 0 and summary["samples"] == 1
    for name in ratios:
        assert result["ratios"][name] is not None, name
    for target in result["targets"]:
        assert set(target) == TARGET_KEYS
        assert target["status"] in ("PASS", "MISS", "SKIP")


def test_hpo_flops_counted_from_the_shapes():
    # 784-100x6-10: forward 129,400 MACs per image, weight gradients the same, input
    # gradients of all but the first layer 51,000 MACs; 4 steps of 100, 500 evaluated.
    per_image_train = 2 * (2 * 129_400 + 51_000)
    per_epoch = 400 * per_image_train + 500 * 2 * 129_400
    assert sweep_workload.hpo_flops() == 50 * per_epoch == 18_862_000_000
    assert sweep_workload.train_flops([3, 4, 2], 5) == 2 * 2 * 5 * (12 + 8) + 2 * 5 * 8


def test_halving_work_counted_from_the_results():
    from fastnet.sweep.store import TrialResult

    def result(status, epochs):
        return TrialResult(0, 0, {}, 0, status, epochs=epochs)

    # 9 steps an epoch: pruned at 2/9 (2 steps, 1 evaluation), done at 2 epochs (18
    # steps, 4 evaluations), diverged before its first evaluation (nothing counted)
    results = [result("pruned", [2 / 9]), result("done", [2 / 9, 2 / 3, 1, 2]),
               result("diverged", [])]
    assert sweep_workload.sweep_work(results, 9) == (20, 5)
    sizes = [784, 100, 100, 100, 100, 10]
    assert sweep_workload.halving_flops(20, 5, 100, 300) == (
        sweep_workload.train_flops(sizes, 2000) + 5 * sweep_workload.forward_flops(sizes, 300))


def test_sweep_workloads_without_torch(capsys, monkeypatch):
    # (not sys.modules[...] = None: SciPy's array-API checks trip over a None torch)
    has_module = harness.has_module
    monkeypatch.setattr(harness, "has_module",
                        lambda name: name not in ("torch", "optuna") and has_module(name))
    report = run_json(capsys, "sweep-hpo,sweep-overhead,sweep-halving")
    hpo = report["workloads"]["sweep-hpo"]
    check(hpo, {"gemm-floor", "fastnet", "reference", "old-style"},
          {"fastnet_over_floor", "reference_over_fastnet", "old_style_over_fastnet"})
    assert "optuna+torch" in hpo["skipped"]
    assert {t["metric"]: t["status"] for t in hpo["targets"]}[
        "optuna_torch_over_fastnet"] == "SKIP"
    overhead = report["workloads"]["sweep-overhead"]
    workers = f"sweep {report['meta']['threads']} workers"
    check(overhead, {"back-to-back", "sweep in-process", workers},
          {"overhead_ms_per_trial", "record_results_per_s", "record_with_mark_running_per_s"})
    assert overhead["ratios"]["record_with_mark_running_per_s"] > 0
    halving = report["workloads"]["sweep-halving"]
    check(halving, {"fastnet", "fastnet-floor"},
          {"fastnet_trials_per_hour", "fastnet_best_val_acc", "fastnet_over_floor"})
    assert "optuna+torch" in halving["skipped"]
    assert "SCALED DOWN" in halving["description"]


def test_sweep_workloads_with_optuna_and_torch(capsys):
    pytest.importorskip("torch")
    pytest.importorskip("optuna")
    report = run_json(capsys, "sweep-hpo,sweep-halving", "--sweep-no-reference")
    hpo = report["workloads"]["sweep-hpo"]
    check(hpo, {"gemm-floor", "fastnet", "optuna+torch", "old-style"},
          {"optuna_torch_over_fastnet"})
    assert "COMPLETE" in hpo["notes"]["optuna+torch"]
    halving = report["workloads"]["sweep-halving"]
    check(halving, {"fastnet", "fastnet-floor", "optuna+torch", "optuna+torch-floor"},
          {"trials_per_hour_vs_optuna", "best_acc_gap_points", "optuna_over_floor",
           "optuna_over_fastnet_per_flop"})
    assert all(t["status"] != "SKIP" for t in halving["targets"])


def test_sweep_dask(capsys):
    pytest.importorskip("distributed")
    result = run_json(capsys, "sweep-dask")["workloads"]["sweep-dask"]
    check(result, {"local", "dask"}, {"dask_over_local"})
    assert result["ratios"]["results_identical"] == 1.0


def test_sweep_dask_skipped_without_distributed(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    result = run_json(capsys, "sweep-dask")["workloads"]["sweep-dask"]
    assert "dask" in result["skipped"] and result["implementations"] == {}
    assert result["targets"][0]["status"] == "SKIP"


def test_record_rate_counts_results():
    record_only, with_marking = sweep_workload.record_rate(40, batch=16, epochs=3)
    assert record_only > 0 and with_marking > 0


def test_sweep_workloads_are_not_in_the_default_run():
    from fastnet.bench.runner import DEFAULT_WORKLOADS, SWEEP_WORKLOADS, WORKLOADS

    assert set(SWEEP_WORKLOADS) <= set(WORKLOADS)
    assert not set(SWEEP_WORKLOADS) & set(DEFAULT_WORKLOADS)
