"""``fastnet bench``: a short run emits the documented JSON, with and without torch."""
import errno
import json
import os
import sys

import pytest

from fastnet import bench
from fastnet.bench import book_workload, harness
from fastnet.bench import cli as bench_cli
from fastnet.bench.runner import DEFAULT_WORKLOADS

SHORT = ["--quick", "--json", "--seconds", "0.1", "--gap", "0"]
STEP_IMPLEMENTATIONS = {"fastnet", "fastnet-book-path", "reference", "gemm-floor",
                        "gemm-floor-njit"}
MLP_SGD_METRICS = ["speedup_vs_torch", "speedup_vs_reference", "fastnet_over_floor",
                   "book_path_over_fused"]
TARGET_KEYS = {"metric", "label", "op", "threshold", "value", "status"}


def run_json(capsys, *args):
    assert bench.main([*SHORT, *args]) == 0
    return json.loads(capsys.readouterr().out)


def check_result(result, implementations, ratios):
    assert {"description", "unit", "implementations", "notes", "skipped", "ratios",
            "targets"} <= set(result)
    assert set(result["implementations"]) == implementations
    for summary in result["implementations"].values():
        assert summary["samples"] >= bench.QUICK["min_rounds"]
        assert summary["steps_per_sample"] >= 1
        assert 0 < summary["min"] <= summary["median"]
        assert summary["p25"] <= summary["median"] <= summary["p75"]
    assert ratios <= set(result["ratios"])
    for target in result["targets"]:
        assert set(target) == TARGET_KEYS
        assert target["status"] in ("PASS", "MISS", "SKIP")


def test_mlp_sgd_json(capsys):
    pytest.importorskip("torch")
    report = run_json(capsys, "--workload", "mlp-sgd")
    meta = report["meta"]
    assert meta["threads"] >= 1 and meta["numba_threading_layer"]
    assert any(lib["user_api"] == "blas" for lib in meta["threadpools"])
    assert list(report["workloads"]) == ["mlp-sgd"]
    result = report["workloads"]["mlp-sgd"]
    check_result(result, STEP_IMPLEMENTATIONS | {"torch"},
                 {"speedup_vs_torch", "speedup_vs_reference", "fastnet_over_floor",
                  "book_path_over_fused"})
    assert [t["metric"] for t in result["targets"]] == MLP_SGD_METRICS
    assert all(t["status"] != "SKIP" for t in result["targets"])


POPULATION_IMPLEMENTATIONS = {"population", "population-per-member", "sequential",
                              "gemm-floor", "gemm-floor-serial"}
POPULATION_RATIOS = {"speedup_vs_sequential", "speedup_vs_torch", "population_over_floor",
                     "population_over_serial_floor", "per_member_batches_over_shared",
                     "ms_per_member"}


def test_population_json(capsys):
    pytest.importorskip("torch")
    report = run_json(capsys, "--workload", "pop16-mlp-sgd")
    result = report["workloads"]["pop16-mlp-sgd"]
    check_result(result, POPULATION_IMPLEMENTATIONS | {"torch-vmap", "torch-bmm"},
                 POPULATION_RATIOS)
    assert [t["metric"] for t in result["targets"]] == ["speedup_vs_sequential",
                                                        "speedup_vs_torch"]
    assert all(t["status"] != "SKIP" for t in result["targets"])


def test_population_without_torch(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    report = run_json(capsys, "--workload", "pop4-deep-adam")
    result = report["workloads"]["pop4-deep-adam"]
    check_result(result, POPULATION_IMPLEMENTATIONS, POPULATION_RATIOS)
    assert {"torch-vmap", "torch-bmm"} <= set(result["skipped"])
    assert result["ratios"]["speedup_vs_torch"] is None
    assert result["targets"] == []  # K=4 has no target: not a default workload either
    assert "pop4-deep-adam" not in DEFAULT_WORKLOADS
    assert {"pop16-mlp-sgd", "pop64-mlp-sgd"} <= set(DEFAULT_WORKLOADS)


def test_without_torch(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    report = run_json(capsys, "--workload", "mlp-sgd,adam-update")
    assert report["meta"]["torch"] is None
    mlp = report["workloads"]["mlp-sgd"]
    check_result(mlp, STEP_IMPLEMENTATIONS, {"speedup_vs_reference", "book_path_over_fused"})
    assert mlp["ratios"]["book_path_over_fused"] > 0
    assert "torch" in mlp["skipped"]
    assert mlp["ratios"]["speedup_vs_torch"] is None
    assert {t["metric"]: t["status"] for t in mlp["targets"]}["speedup_vs_torch"] == "SKIP"
    adam = report["workloads"]["adam-update"]
    check_result(adam, {"fastnet", "reference", "copy-floor", "copy-floor-1t"},
                 {"fastnet_over_copy_floor"})
    assert adam["ratios"]["fastnet_over_torch"] is None


def test_accuracy_json(capsys):
    """accuracy-10k: net.accuracy on 10,000 images next to its chunked GEMMs."""
    report = run_json(capsys, "--no-torch", "--workload", "accuracy-10k")
    result = report["workloads"]["accuracy-10k"]
    check_result(result, {"fastnet", "gemm-floor"}, {"fastnet_over_floor"})
    assert result["ratios"]["fastnet_over_floor"] > 0
    assert [(t["metric"], t["op"], t["threshold"]) for t in result["targets"]] == [
        ("fastnet_over_floor", "<=", 1.2)]
    assert "accuracy-10k" in DEFAULT_WORKLOADS


def test_gemm_lists():
    """The GEMM lists of a 784-100-10 net: forward per chunk, backward dW and dX."""
    from fastnet.bench.workloads import backward_gemms, forward_gemms, gemm_list_step

    assert forward_gemms([784, 100, 10], 5, chunk=2) == [
        (2, 784, 100, 0, 0), (2, 100, 10, 0, 0), (2, 784, 100, 0, 0), (2, 100, 10, 0, 0),
        (1, 784, 100, 0, 0), (1, 100, 10, 0, 0)]
    assert backward_gemms([784, 100, 10], 8) == [(100, 8, 10, 1, 0), (8, 10, 100, 0, 1),
                                                 (784, 8, 100, 1, 0)]
    gemm_list_step(forward_gemms([784, 100, 10], 5, 2) + backward_gemms([784, 100, 10], 5))()


def test_table_output(capsys):
    assert bench.main(["--quick", "--no-torch", "--workload", "leak", "--leak-steps", "100"]) == 0
    out = capsys.readouterr().out
    assert "threads:" in out and "BLAS" not in out.splitlines()[0]
    assert "leak" in out and "RSS growth" in out


def test_unknown_workload_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--workload", "nope"])
    assert exc.value.code == 2
    assert "unknown workload nope" in capsys.readouterr().err


@pytest.mark.parametrize("op, value, expected", [(">=", 2.5, "PASS"), (">=", 1.9, "MISS"),
                                                 ("<=", 1.1, "PASS"), ("<=", 1.3, "MISS"),
                                                 (">=", None, "SKIP")])
def test_target_status(op, value, expected):
    assert bench.Target("m", op, 2.0 if op == ">=" else 1.2, "label").status(value) == expected


def test_targets_table():
    """targets.csv names only workloads the bench runs, in the order the report shows."""
    assert set(bench.TARGETS) <= set(bench.WORKLOADS)
    assert [t.metric for t in bench.TARGETS["mlp-sgd"]] == MLP_SGD_METRICS
    assert all(t.op in (">=", "<=") for targets in bench.TARGETS.values() for t in targets)


def test_leak_without_psutil(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil now raises ImportError
    report = run_json(capsys, "--no-torch", "--workload", "leak", "--leak-steps", "50")
    leak = report["workloads"]["leak"]
    assert leak["ratios"]["rss_growth_mb"] is None and "psutil" in leak["description"]
    assert [t["status"] for t in leak["targets"]] == ["SKIP"]


@pytest.mark.parametrize("args, message", [
    (["--gap", "-1"], "--gap: expected a number >= 0"),
    (["--leak-steps", "0"], "--leak-steps: expected an integer >= 1"),
    (["--seconds", "nan"], "--seconds: expected a number > 0"),
    (["--seconds", "0"], "--seconds: expected a number > 0"),
    (["--save", "/nonexistent-folder/x.json"], "cannot write in /nonexistent-folder (--save)"),
])
def test_bad_arguments_are_refused_before_any_run(capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        bench.main([*args, "--workload", "mlp-sgd"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_unusable_paths_and_options_are_refused_before_any_run(capsys, monkeypatch, tmp_path):
    """One line naming the flag, before the run, whose results would otherwise be lost
    at its end (or that would ignore the option)."""
    monkeypatch.setattr(bench_cli, "run", lambda *args, **kwargs: pytest.fail("it ran"))
    afile = tmp_path / "afile"
    afile.write_text("")
    cases = [
        (["--workload", "leak", "--save", str(tmp_path)],
         f"{tmp_path} is a folder; --save names a file"),
        (["--workload", "book-scripts", "--book-out", str(afile)],
         f"{afile} is a file; --book-out names a folder"),
        (["--workload", "book-scripts", "--book-out", str(afile / "figures")],
         f"cannot write in {afile / 'figures'} (--book-out): Not a directory"),
        (["--workload", ","], "--workload names no workload; choose from mlp-sgd, "),
        (["--workload", "leak", "--book-out", str(tmp_path), "--book-runs", "2"],
         ("--book-runs, --book-out: only for the workload book-scripts, which is not selected "
          "(--workload)")),
        (["--book-data", "synthetic", "--sweep-trials", "2"],
         ("--book-data: only for the workload book-scripts, which is not selected; "
          "--sweep-trials: only for the workloads sweep-hpo, sweep-dask, none of which is "
          "selected (--workload)")),
    ]
    if os.geteuid() != 0:  # root writes a read-only file
        afile.chmod(0o444)
        cases.append((["--workload", "leak", "--save", str(afile)],
                      f"cannot write {afile} (--save): permission denied"))
    for args, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            bench.main(["--quick", *args])
        assert exit_info.value.code == 2
        last = capsys.readouterr().err.splitlines()[-1]
        assert last.startswith(f"fastnet bench: error: {message}"), last


def test_a_failed_save_keeps_the_previous_file_after_printing_the_report(
        capsys, monkeypatch, tmp_path, file_size_limit):
    saved = tmp_path / "results.json"
    report = run_json(capsys, "--no-torch", "--workload", "leak", "--leak-steps", "50",
                      "--save", str(saved))
    assert json.loads(saved.read_text()) == report
    saved.write_text("previous")
    monkeypatch.setattr(bench_cli, "run", lambda *args, **kwargs: report)
    with file_size_limit(100):
        status = bench.main(["--workload", "leak", "--save", str(saved)])
    out, err = capsys.readouterr()
    assert status == 1 and "leak" in out and "RSS growth" in out
    too_large = f"[Errno {errno.EFBIG}] {os.strerror(errno.EFBIG)}"
    assert err.splitlines()[-1] == (f"fastnet bench: error: --save: the results are printed "
                                    f"above but not saved: {too_large}: '{saved}'")
    assert [path.name for path in tmp_path.iterdir()] == ["results.json"]
    assert saved.read_text() == "previous"
    link = tmp_path / "link.json"
    link.symlink_to(saved)
    assert bench.main(["--workload", "leak", "--save", str(link)]) == 0
    assert link.is_symlink() and json.loads(saved.read_text()) == report  # written through


def test_a_failed_book_script_is_reported_by_its_exception(capsys, monkeypatch):
    def fail(name, way, out_dir, scale, env):
        raise RuntimeError(f"{name} ({way}) failed with status 1:\nTraceback (most recent "
                           f"call last):\n  File \"{name}.py\", line 3, in <module>\n"
                           f"ValueError: the script's own words\n\n")
    monkeypatch.setattr(harness, "run_child", lambda *args: None)  # the warm-up
    monkeypatch.setattr(book_workload, "run_script_process", fail)
    assert bench.main(["--quick", "--no-torch", "--workload", "book-scripts", "--book-scripts",
                       "optimizer_compare_naive", "--book-data", "synthetic"]) == 0
    out, err = capsys.readouterr()
    why = ("optimizer_compare_naive (reference) failed with status 1: ValueError: the "
           "script's own words")
    assert f"  optimizer_compare_naive: failed: {why}" in out.splitlines()
    assert f"(failed: {why})" in out  # the skipped line
    assert f"  optimizer_compare_naive (reference) FAILED: {why}" in err.splitlines()


def test_gemm_recorder_counts_outermost_calls():
    """A net's train_step is one training call, its accuracy one inference call in chunks;
    the wrappers are gone after the block."""
    import numpy as np

    from fastnet.bench.experiment_workload import GemmRecorder
    from fastnet.nets import INFERENCE_CHUNK, MultiLayerNetExtend
    from fastnet.optimizers import SGD

    net = MultiLayerNetExtend(784, [20], 10, normalization="switchable", seed=0)
    x, t = np.random.default_rng(0).random((8, 784), dtype=np.float32), np.arange(8)
    with GemmRecorder() as recorder:
        net.train_step(x, t, SGD())
        net.accuracy(x, t)
    assert recorder.calls == {((784, 20, 10), 8, 1, True, None, False): 1,
                              ((784, 20, 10), 8, 1, False, INFERENCE_CHUNK, False): 1}
    assert len(recorder.gemms()) == 2 + 3 + 2
    assert recorder.member_gemms() == []
    assert "train_step" not in MultiLayerNetExtend.__dict__


def test_gemm_floor_shares_population_members():
    """A population's call is one unit of GEMMs per member, which the floor runs as the
    population does (members shared among threads); a net's GEMMs stay in ``gemms``."""
    import numpy as np

    from fastnet.bench.experiment_workload import GemmRecorder, gemm_floor
    from fastnet.nets import MultiLayerNetExtend
    from fastnet.optimizers import SGD
    from fastnet.population import Population

    pop = Population(784, [20], 10, [{"seed": s} for s in range(3)])
    net = MultiLayerNetExtend(784, [20], 10, seed=0)
    x, t = np.random.default_rng(0).random((8, 784), dtype=np.float32), np.arange(8)
    with GemmRecorder() as recorder:
        recorder.section = "mixed"
        pop.train_step(x, t)
        net.train_step(x, t, SGD())
    units = recorder.member_gemms("mixed")
    assert len(units) == 3 and all(u.tolist() == units[0].tolist() for u in units)
    assert len(units[0]) == 2 + 3 and len(recorder.gemms("mixed")) == 2 + 3
    for n_threads in (1, 2, 5):
        gemm_floor(recorder, "mixed", n_threads)()
    assert recorder.member_gemms("no such section") == []


def test_experiment_all_json(capsys):
    """experiment-all: the quick experiments in this process, then their GEMMs."""
    from fastnet.bench.experiment_workload import experiment_dataset
    from fastnet.datasets import DatasetNotFoundError

    try:
        experiment_dataset()
    except DatasetNotFoundError:
        pytest.skip("neither MNIST nor Fashion-MNIST is at hand")
    report = run_json(capsys, "--no-torch", "--workload", "experiment-all")
    result = report["workloads"]["experiment-all"]
    assert set(result["implementations"]) == {"fastnet", "gemm-floor"}
    ratios = result["ratios"]
    assert ratios["gemm_count"] > 0 and ratios["recorded_calls"] > 0
    assert 0 < ratios["floor_share"] and ratios["fastnet_over_floor"] > 0
    # experiment by experiment: each one's time, and over its own GEMMs where it has any
    from fastnet.experiments import EXPERIMENTS
    assert {f"{name}_s" for name in EXPERIMENTS} <= set(ratios)
    assert ratios["optimizers_over_floor"] > 0 and ratios["normalization_over_floor"] > 0
    assert "optimizer-paths_over_floor" not in ratios  # no net, no GEMM
    assert [t["metric"] for t in result["targets"]] == ["fastnet_over_floor"]
    assert "experiment-all" not in DEFAULT_WORKLOADS


def test_population_memory_of_a_small_population():
    """The measurement itself (a new process): sane values, not a bound."""
    import math

    from fastnet.bench.memory_workload import population_memory
    from fastnet.bench.workloads import NetSpec, PopulationSpec

    spec = PopulationSpec(NetSpec("MultiLayerNet", (50, 50), 32, "Adam", 0.001), 3)
    result = population_memory(spec, n_threads=1, steps=5)
    assert result["k"] == 3 and result["steps"] == 5 and result["finite"]
    assert 0 < result["baseline_mb"] <= result["peak_mb"]
    assert result["growth_mb"] == result["peak_mb"] - result["baseline_mb"]
    assert 0 < result["arenas_mb"] and 0 < result["workspaces_mb"] and 0 < result["batch_mb"]
    assert result["expected_mb"] == pytest.approx(result["arenas_mb"] + result["batch_mb"])
    assert math.isfinite(result["peak_rss_over_arenas"])
    assert result["peak_rss_over_arenas"] >= result["peak_rss_over_arenas_and_workspaces"] >= 0


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_net_arena_bytes_are_a_trained_nets(optimizer):
    """The bound's base is what one net trained alone holds in its arenas."""
    from fastnet import optimizers
    from fastnet.bench.memory_workload import net_arena_bytes
    from fastnet.bench.workloads import INPUT_SIZE, OUTPUT_SIZE, make_batch
    from fastnet.nets import MultiLayerNet

    net = MultiLayerNet(INPUT_SIZE, [30, 20], OUTPUT_SIZE, seed=0)
    opt = optimizers.OPTIMIZERS[optimizer.lower()]()
    net.train_step(*make_batch(16), opt)
    held = net.params.arena.nbytes + net.grads.arena.nbytes + sum(
        view.nbytes for name in opt.state_names for view in getattr(opt, name).values())
    assert net_arena_bytes([30, 20], 16, optimizer)["arenas"] == held


def test_population_memory_json(capsys):
    report = run_json(capsys, "--no-torch", "--workload", "pop16-mlp-sgd-memory")
    result = report["workloads"]["pop16-mlp-sgd-memory"]
    check_result(result, set(), {"peak_rss_over_arenas", "growth_mb", "expected_mb"})
    assert result["unit"] == "MB" and result["ratios"]["growth_mb"] > 0
    assert [t["metric"] for t in result["targets"]] == ["peak_rss_over_arenas"]
    assert "pop16-mlp-sgd-memory" in DEFAULT_WORKLOADS
    assert "pop4-mlp-sgd-memory" not in DEFAULT_WORKLOADS  # no target, as pop4-mlp-sgd


def test_the_header_says_when_openblas_coretype_names_the_kernels(monkeypatch):
    from fastnet.bench import harness, report

    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    assert harness.openblas_own_choice() is None
    if not any(lib["internal_api"] == "openblas" for lib in harness.threadpools()):
        pytest.skip("NumPy's BLAS is not OpenBLAS")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Prescott")  # which no x86-64 of today picks
    own = harness.openblas_own_choice()  # what a child without the variable loads
    assert own and "," not in own and own != "Prescott"
    meta = {"fastnet": "0", "numpy": "0", "numba": "0", "torch": None, "python": "3",
            "cpu": "cpu", "cores": 2, "platform": "p", "load_average": 0.1, "threads": 2,
            "numba_threads": 2, "numba_threading_layer": "tbb", "omp_wait_policy": None,
            "threadpools": [], "torch_note": "left out", "openblas_coretype": "Prescott",
            "openblas_own_choice": own}
    assert (f"    OPENBLAS_CORETYPE=Prescott names OpenBLAS's kernels; without it OpenBLAS "
            f"picks {own} on this CPU") in report._header_lines(meta)
