"""``fastnet bench``'s normalization workloads (issue 11): every layer's step builds and
runs, the group name selects them all, and a short run emits the documented JSON, with
and without torch."""
import json
import sys

import pytest

from fastnet import bench
from fastnet.bench import cli, norm_workload, runner

SHORT = ["--quick", "--json", "--seconds", "0.1", "--gap", "0"]
LAYER_IMPLEMENTATIONS = {"fastnet", "reference", "copy"}
SUBSET = ["norm-layer-128x100", "norm-switchable-64x16x8x8", "norm-weight-128x100"]


def run_json(capsys, *args):
    assert bench.main([*SHORT, *args]) == 0
    return json.loads(capsys.readouterr().out)


def check_timings(result, implementations):
    assert set(result["implementations"]) == implementations
    for summary in result["implementations"].values():
        assert summary["samples"] >= bench.QUICK["min_rounds"]
        assert 0 < summary["min"] <= summary["median"]


def test_group_selects_every_normalization_workload(monkeypatch):
    chosen = {}

    def run(workloads, *args, **kwargs):  # records what would run, runs nothing
        chosen["workloads"] = workloads
        return {"meta": {}, "workloads": {}}

    monkeypatch.setattr(cli, "run", run)
    monkeypatch.setattr(cli, "format_report", lambda report: "")
    assert bench.main(["--workload", "normalization"]) == 0
    assert chosen["workloads"] == runner.NORMALIZATION_WORKLOADS
    layers = {spec.layer for spec in norm_workload.NORM_LAYERS.values()}
    assert layers == {"batch", "layer", "group", "instance", "switchable", "weight"}
    assert len(norm_workload.NORM_LAYERS) == 11  # instance norm has no (128, 100)
    assert "ln-sgd" in chosen["workloads"] and "ln-sgd" not in runner.DEFAULT_WORKLOADS


def test_targets_are_the_issues():
    for name, spec in norm_workload.NORM_LAYERS.items():
        targets = {t.metric: (t.op, t.threshold) for t in bench.TARGETS.get(name, [])}
        if spec.layer == "batch":  # for reference only
            assert not targets
            continue
        versus = "speedup_vs_reference" if spec.layer == "switchable" else "speedup_vs_torch"
        assert targets == {versus: (">=", 2.0), "fastnet_over_copy": ("<=", 1.5)}, name
    assert [(t.metric, t.op, t.threshold) for t in bench.TARGETS["ln-sgd"]] == [
        ("speedup_vs_torch", ">=", 2.5), ("book_path_over_fused", "<=", 1.15)]


@pytest.mark.parametrize("name", list(norm_workload.NORM_LAYERS))
def test_every_step_runs(name):
    spec = norm_workload.NORM_LAYERS[name]
    x, dout = norm_workload.norm_data(spec)
    steps = [norm_workload.layer_step(spec, x, dout),
             norm_workload.layer_step(spec, x, dout, "fastnet.reference"),
             norm_workload.copy_step(x, dout)]
    if spec.layer == "weight":
        steps.append(norm_workload.affine_step(spec, x, dout))
    for step in steps:
        step()
        step()


@pytest.mark.parametrize("name", [n for n, s in norm_workload.NORM_LAYERS.items()
                                  if norm_workload.has_torch_module(s)])
def test_every_torch_step_runs(name):
    torch = pytest.importorskip("torch")
    step, note = norm_workload.torch_layer_step(torch, norm_workload.NORM_LAYERS[name])
    step()
    step()
    assert note


def test_without_torch(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    report = run_json(capsys, "--workload", ",".join(SUBSET))
    assert list(report["workloads"]) == SUBSET
    for name, result in report["workloads"].items():
        extra = {"affine"} if "weight" in name else set()
        check_timings(result, LAYER_IMPLEMENTATIONS | extra)
        assert "torch" in result["skipped"]
        assert result["ratios"]["speedup_vs_torch"] is None
        assert result["ratios"]["fastnet_over_copy"] > 0
        statuses = {t["metric"]: t["status"] for t in result["targets"]}
        assert statuses["fastnet_over_copy"] in ("PASS", "MISS")
        if "switchable" in name:
            assert statuses["speedup_vs_reference"] in ("PASS", "MISS")
        else:
            assert statuses["speedup_vs_torch"] == "SKIP"
    assert report["workloads"]["norm-weight-128x100"]["ratios"]["fastnet_over_affine"] > 0


def test_with_torch(capsys):
    pytest.importorskip("torch")
    report = run_json(capsys, "--workload", ",".join([*SUBSET, "ln-sgd"]))
    layer = report["workloads"]["norm-layer-128x100"]
    check_timings(layer, LAYER_IMPLEMENTATIONS | {"torch"})
    assert "LayerNorm" in layer["notes"]["torch"]
    switchable = report["workloads"]["norm-switchable-64x16x8x8"]
    check_timings(switchable, LAYER_IMPLEMENTATIONS)
    assert "no switchable" in switchable["skipped"]["torch"]
    check_timings(report["workloads"]["norm-weight-128x100"],
                  LAYER_IMPLEMENTATIONS | {"affine", "torch"})
    net = report["workloads"]["ln-sgd"]
    check_timings(net, {"fastnet", "fastnet-book-path", "reference", "torch", "gemm-floor",
                        "gemm-floor-njit"})
    assert "normalization=layer" in net["description"]
    for result in report["workloads"].values():
        assert all(t["status"] != "SKIP" for t in result["targets"])
