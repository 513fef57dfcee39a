"""``fastnet bench``'s targets and its report: a text table for people, JSON for machines.

The targets are data, one row each in ``targets.csv`` next to this module: the
workload, the ratio it bounds (a key of the workload's ``ratios``), ``>=`` or ``<=``,
the threshold, the label printed, and, for the reader, the issue that set it (empty:
a threshold of the bench's own).
"""
import csv
import io
import json
import math
import os
from dataclasses import dataclass
from importlib import resources


@dataclass
class Target:
    metric: str        # a key of the workload's ratios
    op: str            # ">=" or "<="
    threshold: float
    label: str

    def status(self, value):
        if value is None or not math.isfinite(value):
            return "SKIP"
        ok = value >= self.threshold if self.op == ">=" else value <= self.threshold
        return "PASS" if ok else "MISS"

    def report(self, value):
        return {"metric": self.metric, "label": self.label, "op": self.op,
                "threshold": self.threshold, "value": value, "status": self.status(value)}


def load_targets():
    """``{workload: [Target, ...]}`` from ``targets.csv``, in the file's order."""
    text = resources.files(__package__).joinpath("targets.csv").read_text()
    targets = {}
    for row in csv.DictReader(io.StringIO(text)):
        if row["op"] not in (">=", "<="):
            raise ValueError(f"targets.csv: op must be >= or <=, got {row['op']!r}")
        targets.setdefault(row["workload"], []).append(
            Target(row["metric"], row["op"], float(row["threshold"]), row["label"]))
    return targets


TARGETS = load_targets()


def write_json(report, handle):
    """The report as JSON (``run``'s result as it is)."""
    json.dump(report, handle, indent=1)


# --------------------------------------------------------------------------- text

def _fmt(value, unit):
    if value is None:
        return "-"
    return f"{value:.3f}" if unit != "s" else f"{value:.2f}"


def _pool_lines(pools):
    lines = []
    for lib in pools:
        where = lib["filepath"] or ""
        owner = (where.split("site-packages/")[-1].split("/")[0] if "site-packages" in where
                 else os.path.dirname(where))
        extra = ", ".join(f"{k} {lib[k]}" for k in ("threading_layer", "architecture") if lib[k])
        lines.append(f"    {lib['user_api']:6s} {lib['internal_api']:9s} "
                     f"{lib['version'] or '':14s} {lib['num_threads']} threads  "
                     f"{os.path.basename(where)} ({owner})" + (f"; {extra}" if extra else ""))
    return lines


def _header_lines(meta):
    torch_threads = f"; torch {meta['torch_threads']}" if meta.get("torch") else ""
    lines = [
        (f"fastnet bench: fastnet {meta['fastnet']}, numpy {meta['numpy']}, numba "
         f"{meta['numba']}, torch {meta['torch'] or '-'}, python {meta['python']}"),
        f"machine: {meta['cpu']}, {meta['cores']} cores usable; {meta['platform']}",
        (f"load average: {meta['load_average']} before, {meta.get('load_average_after')} "
         f"after (above {meta['cores']}, other processes took cores: ratios hold better "
         f"than times)"),
        (f"threads: {meta['threads']} (numba {meta['numba_threads']}, threading layer "
         f"{meta['numba_threading_layer']}{torch_threads})"),
        (f"this process (fastnet, reference, floors): OMP_WAIT_POLICY="
         f"{meta['omp_wait_policy']}; thread pools:"),
    ]
    lines += _pool_lines(meta["threadpools"])
    if meta.get("openblas_coretype"):
        own = meta.get("openblas_own_choice")
        lines.append(f"    OPENBLAS_CORETYPE={meta['openblas_coretype']} names OpenBLAS's kernels"
                     + (f"; without it OpenBLAS picks {own} on this CPU" if own else ""))
    if meta.get("torch"):
        lines.append(f"torch's worker process: OMP_WAIT_POLICY={meta['torch_omp_wait_policy']};"
                     f" thread pools:")
        lines += _pool_lines(meta["torch_threadpools"])
    else:
        lines.append(f"torch: {meta['torch_note']}")
    return lines


def _workload_lines(name, result):
    unit = result["unit"]
    lines = [f"{name}: {result['description']}"]
    width = max([17, *map(len, result["implementations"])])
    if result["implementations"]:
        lines.append(f"  {'implementation':{width}s} {'median ' + unit:>12s} {'p25..p75':>19s}"
                     f"  samples")
        for impl, s in result["implementations"].items():
            note = result["notes"].get(impl, "")
            spread = f"{_fmt(s['p25'], unit)}..{_fmt(s['p75'], unit)}"
            lines.append(f"  {impl:{width}s} {_fmt(s['median'], unit):>12s} {spread:>19s}  "
                         f"{s['samples']}x{s['steps_per_sample']}"
                         + (f"  ({note})" if note else ""))
    for impl, why in result["skipped"].items():
        lines.append(f"  {impl:{width}s} {'skipped':>12s}  ({why})")
    shown = {target["metric"] for target in result["targets"]}
    extras = [f"{k} {v:.3g}" for k, v in result["ratios"].items()
              if k not in shown and v is not None]
    if extras:
        lines.append("  also: " + ", ".join(extras))
    return lines + _script_lines(result.get("scripts", {}))


def failure_line(error):
    """A failed book script's ``error`` (``"<script> (<way>) failed with status N:"``,
    then the end of its stderr) in one line: the first, which says which, and the last
    that is not blank, which says why (the exception)."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    if not lines:
        return "failed"
    head, cause = lines[0].rstrip(":"), lines[-1]
    return head if len(lines) == 1 else f"{head}: {cause}"


def _script_lines(scripts):
    """The book-scripts workload's checks: what each way printed, and whether it agrees;
    with repeated runs, the means, standard deviations, Welch's p and each run's values."""
    def value(v):
        return "-" if v is None else f"{v:.4g}"

    lines = []
    for name, entry in scripts.items():
        if "error" in entry:
            lines.append(f"  {name}: failed: {failure_line(entry['error'])}")
        for check in entry["checks"]:
            verdict = "agree" if check["agree"] else "DIFFER"
            if check.get("test") != "Welch":
                lines.append(f"  {name}: {check['metric']}: reference "
                             f"{value(check['reference'])}, fastnet {value(check['fastnet'])} "
                             f"(within {value(check['tolerance'])}: {verdict})")
                continue
            means = ", ".join(f"{way} {value(check[way])} sd {value(check[f'{way}_sd'])} "
                              f"(n {check[f'n_{way}']})" for way in ("reference", "fastnet"))
            lines.append(f"  {name}: {check['metric']}: {means}; Welch p "
                         f"{value(check['p_value'])}, practical size "
                         f"{value(check['tolerance'])}: {verdict}")
            runs = entry.get("results", {})
            lines.append("      runs: " + "; ".join(
                f"{way} " + " ".join(value(v) for v in runs[way].get(check["metric"], []))
                for way in ("reference", "fastnet") if way in runs))
    return lines


def _summary_lines(results):
    width = max([34, *(len(t["label"]) for r in results.values() for t in r["targets"])])
    name_width = max([12, *(len(name) for name, r in results.items() if r["targets"])])
    header = f"{'workload':{name_width}s} {'measure':{width}s} {'value':>8s} {'target':>9s}"
    lines = [f"{header}  status"]
    for name, result in results.items():
        for target in result["targets"]:
            value = target["value"]
            lines.append(f"{name:{name_width}s} {target['label']:{width}s} "
                         f"{'-' if value is None else f'{value:.2f}':>8s} "
                         f"{target['op'] + ' ' + format(target['threshold'], 'g'):>9s}  "
                         f"{target['status']}")
    return lines


def format_report(report):
    """The human-readable table of a ``run`` result (or of its saved JSON)."""
    lines = _header_lines(report["meta"]) + [""]
    for name, result in report["workloads"].items():
        lines += _workload_lines(name, result) + [""]
    lines += _summary_lines(report["workloads"])
    return "\n".join(lines)
