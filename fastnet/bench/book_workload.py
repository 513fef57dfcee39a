"""``fastnet bench --workload book-scripts``: the book's chapter-6 scripts, run both ways.

Each script (``book.SCRIPTS``) runs in a process of its own, once on the book's code as
published (``reference``: ``fastnet.reference`` in float64, see ``book``) and once on
fastnet, the two interleaved (which goes first alternates from script to script and run
to run) so that load on a shared machine hits both alike.  Recorded: the wall time of
the whole process (``python script.py`` as a reader runs it: start-up, imports, data,
training, figure) and what the script prints, parsed into its final losses or
accuracies (``parse_output``).  Before the first timed run, an untimed warm-up process
loads (or compiles into the cache) the kernels the scripts use, so that compilation,
paid once per install, is not charged to one script.  One bias, in fastnet's favour:
the reference process imports ``fastnet.reference``, and with it ``fastnet``'s package,
which loads Numba (about 0.5 s) where the book's code would not; it matters only for
the scripts of seconds (``optimizer_compare_naive``).

The ratios: ``speedup_<script>`` (reference time / fastnet time, medians over
``book_runs``), ``speedup_total`` (summed over all eight; only when all eight ran) and
``scripts_disagreeing``, the number of scripts with a checked metric that disagrees
(below), that did not print every result checked for it, or that failed (a script
that fails either way counts as disagreeing, at any scale: it has no results to agree
with; its speedup is None).  Every run's printed results are kept: the report's
``results`` is ``{way: {metric: [value per run]}}`` per script.

"Statistically the same as the book's" (issue 8): the two ways draw different random
numbers (initial weights, mini-batches, dropout masks, searched hyper-parameters), so
a run of each is a sample of the same experiment, and fastnet agrees when its samples
could come from the book's distribution up to a difference nobody would care about.

With ``MIN_RUNS`` (3) or more runs each way (``--book-runs``), each checked metric
(``compare_runs``) is the mean of its runs each way, and it disagrees only when the two
means differ both

* significantly: Welch's t-test (``scipy.stats.ttest_ind(equal_var=False)``), p <
  ``SIGNIFICANCE`` (0.01).  A t-test, not Mann-Whitney's U: with n runs each way U's
  smallest two-sided p-value is 2 / C(2n, n), 0.1 at n = 3 and 0.029 at n = 4, so at the
  run counts we can afford it could never reach 0.01; most metrics are themselves means
  (over hundreds or thousands of images, five mini-batches of 128, 16 weight scales),
  close to normal run to run, which is what the t-test needs at small n.  Welch's form, not
  Student's, because float32 against float64 and different kernels need not give the
  same spread, and an equal-variance test is miscalibrated when the spreads and counts
  differ.  Level 0.01 rather than 0.05 because a full run tests two dozen metrics;
  and
* by more than a practical size, ``PRACTICAL_FRACTION`` (half) of the one-pair bound
  below.  That bound is about three standard deviations of the difference of two single
  runs; a shift of the mean by half of it (about two standard deviations of one run,
  7-8 points of training accuracy for ``overfit_*``) would make the one-pair check fail
  in about 7% of pairs instead of 0.3%, a reader rerunning the book's scripts would see
  it, and it is what the check must catch.  A smaller shift hides in the run-to-run
  spread, and precision alone can make one significant at enough runs without mattering
  (the gradient check's float32 differences of 1e-4 against float64's 1e-7).

The test's power grows with the runs: at 10 runs each way a shift of two standard
deviations of one run is found about 9 times in 10, at 3 runs each way under 1 in 10, so
3 runs catch only gross shifts; use 10 for a verdict.  A metric that a run did not
print disagrees.

With fewer than ``MIN_RUNS`` runs a way there is too little to test, and the check is
on one pair: the last run each way, their difference against the bound (``compare``).  Why these bounds: they are on
how far two runs of the book's own code fall apart, about three standard deviations of
their difference:

* a mini-batch loss (``optimizer_compare_mnist``, ``weight_init_compare``) is averaged
  over the last ``LAST_BLOCKS`` printed iterations (one batch of 128 each); batch to
  batch it varies by about 0.1 around a loss of 0.2-0.5, so the mean of five differs
  between runs by about 0.06: bound 0.15 (std=0.01 stays at ln 10 = 2.30 either way).
  Measured with 5 runs each way on Fashion-MNIST: each optimizer's and initializer's
  loss varies by 0.01-0.05 from run to run (pooled 0.035, 3 sqrt(2) times which is
  0.15);
* an accuracy on a test set of thousands has a sampling error under 1 point, but 300
  training images (``overfit_*``) make the final accuracies vary from run to run far
  more.  Measured with 8 runs each way on Fashion-MNIST (``--book-runs 8``; standard
  deviations pooled over the two ways, whose means agreed, Welch p 0.38-0.94): the last
  epoch's training accuracy varies by 3.43 points (``overfit_weight_decay``) and 3.84
  (``overfit_dropout``), the test accuracy by 1.61 and 3.32 (``overfit_dropout``'s final
  test accuracy 3.30); the bounds, 3 sqrt(2) times those to the point: training accuracy
  15 and 16 points, test accuracy 7 and 14;
* ``batch_norm_test``'s mean over its 16 weight scales of the final training accuracy
  (1,000 images) includes scales where training takes off in one run and not in the
  other (each such flip moves the mean by up to 5 points): bound 8 points (in 5 runs
  each way no run flipped, and the mean varied by 0.6 points);
* ``hyperparameter_optimization``'s best validation accuracy is read on 100 images
  (sampling error 4 points) after a random search: bound 8 points (measured as above
  with 5 runs each way: it varies by 1.9 points, pooled);
* ``batch_norm_gradient_check`` prints mean |backprop - numerical| per parameter.  On
  one image, batch norm's output is beta, and beta2 starts at 0, exactly on ReLU's
  kink, where the central difference sees half the slope and backprop none: the book's
  code prints about 0.05 there (depending on the run's random weights), about 1e-7
  elsewhere; float32 central differences with h = 1e-4 add up to about 1e-4.  Each
  parameter may differ by ``GRADIENT_NOISE`` plus ``GRADIENT_RELATIVE`` of the larger.

At a scale under 1 (``--quick``) the runs are too short for these bounds, so the checks
are shown but not counted (``scripts_disagreeing`` is None, SKIP, unless a script
failed).
"""
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import harness
from .book import CHILD, SCRIPTS, WAYS, load_dataset
from .report import failure_line

LAST_BLOCKS = 5
LOSS_TOLERANCE = 0.15
# batch_norm_gradient_check: float32's rounding of the loss (1e-7 of about 2.3) over
# 2h = 2e-4, and the run-to-run spread of the ReLU-kink term (see the module doc).
GRADIENT_NOISE = 1e-3
GRADIENT_RELATIVE = 0.5
# Repeated runs (see the module doc): Welch's t-test from MIN_RUNS runs each way, at
# level SIGNIFICANCE, against a practical size of PRACTICAL_FRACTION of the one-pair bound.
MIN_RUNS = 3
SIGNIFICANCE = 0.01
PRACTICAL_FRACTION = 0.5
CHILD_TIMEOUT_S = 7200

# Which printed results are compared, and by how much they may differ: a metric of
# ``parse_output``, or a prefix ending in a space for all the metrics it starts.
CHECKS = {
    "optimizer_compare_mnist": {"loss ": LOSS_TOLERANCE},
    "weight_init_compare": {"loss ": LOSS_TOLERANCE},
    "batch_norm_test": {"mean final train acc": 0.08},
    "overfit_weight_decay": {"train acc": 0.15, "test acc": 0.07},
    "overfit_dropout": {"train acc": 0.16, "test acc": 0.14, "final test acc": 0.14},
    "hyperparameter_optimization": {"best val acc": 0.08},
}

# Loads (or compiles into the cache) the kernels of every path the scripts take.
WARM_UP = """
import numpy as np
from fastnet.nets import MultiLayerNet, MultiLayerNetExtend
from fastnet.optimizers import SGD, Momentum, AdaGrad, Adam
from fastnet.trainer import Trainer
rng = np.random.default_rng(0)
x = rng.random((100, 784), dtype=np.float32)
t = rng.integers(0, 10, 100)
nets = [MultiLayerNet(784, [20, 20], 10, weight_init_std=w, weight_decay_lambda=d)
        for w in (0.01, "sigmoid", "relu") for d in (0, 0.1)]
nets += [MultiLayerNetExtend(784, [20, 20], 10, use_batchnorm=b, use_dropout=d,
                             dropout_ration=0.2) for b in (False, True) for d in (False, True)]
for net in nets:
    for optimizer in (SGD(), Momentum(), AdaGrad(), Adam()):
        for n in (1, 100):
            optimizer.update(net.params, net.gradient(x[:n], t[:n]))
            net.loss(x[:n], t[:n])
    net.accuracy(x, t)
nets[-1].numerical_gradient(x[:1], t[:1])  # batch_norm_gradient_check's float64 kernel
Trainer(nets[-1], x, t, x, t, epochs=1, verbose=False).train()
print({})
"""


# --------------------------------------------------------------------------- parsing

def _number(text):
    return float(text.strip())


def parse_output(name, stdout):
    """The final results ``name`` printed, as ``{metric: value}`` (see the module doc)."""
    lines = stdout.splitlines()
    if name in ("optimizer_compare_mnist", "weight_init_compare"):
        blocks = []
        for line in lines:
            if re.fullmatch(r"=+iteration:\d+=+", line.strip()):
                blocks.append({})
            elif blocks and (m := re.fullmatch(r"(.+):([-+0-9.eEnaif]+)", line.strip())):
                blocks[-1][m[1]] = _number(m[2])
        last = blocks[-LAST_BLOCKS:]
        return {f"loss {key}": statistics.fmean(b[key] for b in last) for key in last[-1]} \
            if last else {}
    if name == "batch_norm_test":
        finals = []  # (normal, batch norm) at the last epoch of each weight scale
        for line in lines:
            if re.fullmatch(r"=+ \d+/\d+ =+", line.strip()):
                finals.append(None)
            elif finals and (m := re.fullmatch(r"epoch:\d+ \| (\S+) - (\S+)", line.strip())):
                finals[-1] = (_number(m[1]), _number(m[2]))
        finals = [f for f in finals if f is not None]
        if not finals:
            return {}
        return {"mean final train acc": statistics.fmean(f[0] for f in finals),
                "mean final train acc (batch norm)": statistics.fmean(f[1] for f in finals),
                "weight scales": float(len(finals))}
    if name == "batch_norm_gradient_check":
        return {f"grad diff {m[1]}": _number(m[2]) for line in lines
                if (m := re.fullmatch(r"(\w+):([-+0-9.eEnaif]+)", line.strip()))}
    if name in ("overfit_weight_decay", "overfit_dropout"):
        results = {}
        for line in lines:
            if m := re.search(r"epoch:(\d+), train acc:(\S+), test acc:([-+0-9.eE]+)", line):
                results.update({"epochs": float(m[1]), "train acc": _number(m[2]),
                                "test acc": _number(m[3])})
            elif m := re.fullmatch(r"test acc:(\S+)", line.strip()):
                results["final test acc"] = _number(m[1])
        return results
    if name == "hyperparameter_optimization":
        accs = [_number(m[1]) for line in lines if (m := re.match(r"val acc:(\S+) \|", line))]
        return {"best val acc": max(accs), "trials": float(len(accs))} if accs else {}
    return {}


def _fixed_tolerance(tolerance):
    return lambda ref, fast: tolerance


def _gradient_tolerance(ref, fast):
    if ref is None or fast is None:
        return None
    return GRADIENT_NOISE + GRADIENT_RELATIVE * max(abs(ref), abs(fast))


def _matches(metric, key):
    """Whether ``metric`` is ``key``, or starts with it where ``key`` is a prefix (ends
    in a space)."""
    return metric == key or (key.endswith(" ") and metric.startswith(key))


def _required(name):
    """The keys of ``CHECKS`` (metrics, or prefixes standing for at least one metric)
    that ``name``'s runs must print."""
    return ["grad diff "] if name == "batch_norm_gradient_check" else list(CHECKS.get(name, {}))


def _checked(name, metrics):
    """``[(metric, tolerance)]``: the metrics of ``name`` among ``metrics`` that are
    compared, each with its one-pair bound as a function of the two values compared."""
    if name == "batch_norm_gradient_check":
        return [(metric, _gradient_tolerance) for metric in sorted(metrics)]
    return [(metric, _fixed_tolerance(tolerance))
            for prefix, tolerance in CHECKS.get(name, {}).items()
            for metric in sorted(metrics) if _matches(metric, prefix)]


def _prints_every_check(name, checks):
    """Whether ``checks`` (``compare_runs``'s) cover every key ``name`` must print."""
    return all(any(_matches(check["metric"], key) for check in checks)
               for key in _required(name))


def compare(name, reference, fastnet):
    """The one-pair checks of ``name``: ``[{"metric", "reference", "fastnet",
    "tolerance", "agree"}]``, for every checked metric either run printed; a metric the
    other run did not print disagrees."""
    checks = []
    for metric, tolerance in _checked(name, set(reference) | set(fastnet)):
        ref, fast = reference.get(metric), fastnet.get(metric)
        bound = tolerance(ref, fast)
        agree = ref is not None and fast is not None and abs(ref - fast) <= bound
        checks.append({"metric": metric, "reference": ref, "fastnet": fast,
                       "tolerance": bound, "agree": agree})
    return checks


def welch_p_value(reference, fastnet):
    """Two-sided p-value of Welch's t-test of equal means (``scipy.stats.ttest_ind``,
    ``equal_var=False``); where both samples are constant (no variance to test
    against), 1 if their values are equal, else 0."""
    if statistics.pvariance(reference) == 0 == statistics.pvariance(fastnet):
        return 1.0 if reference[0] == fastnet[0] else 0.0
    from scipy import stats  # about 0.5 s to import: only where runs are compared
    return float(stats.ttest_ind(reference, fastnet, equal_var=False).pvalue)


def _welch_check(metric, tolerance, reference, fastnet):
    """The check of one metric over its values per run (None where a run did not print
    it) each way; see ``compare_runs``."""
    check = {"metric": metric, "test": "Welch"}
    printed = {}
    for way, values in (("reference", reference), ("fastnet", fastnet)):
        printed[way] = [v for v in values if v is not None]
        check[way] = statistics.fmean(printed[way]) if printed[way] else None
        check[f"{way}_sd"] = statistics.stdev(printed[way]) if len(printed[way]) > 1 else None
        check[f"n_{way}"] = len(printed[way])
    if None in reference or None in fastnet:
        check.update(p_value=None, significant=None, tolerance=None, agree=False)
        return check
    check["tolerance"] = PRACTICAL_FRACTION * tolerance(check["reference"], check["fastnet"])
    check["p_value"] = welch_p_value(printed["reference"], printed["fastnet"])
    check["significant"] = check["p_value"] < SIGNIFICANCE
    check["agree"] = not (check["significant"]
                          and abs(check["reference"] - check["fastnet"]) > check["tolerance"])
    return check


def compare_runs(name, reference, fastnet):
    """The checks of ``name`` over lists of runs (``parse_output``'s dicts), one per
    checked metric: ``{"metric", "test", "reference", "fastnet", "reference_sd",
    "fastnet_sd", "n_reference", "n_fastnet", "p_value", "significant", "tolerance",
    "agree"}``.  With ``MIN_RUNS`` or more runs each way, Welch's t-test: ``reference``
    and ``fastnet`` are the means, ``tolerance`` the practical size (``PRACTICAL_FRACTION``
    of the one-pair bound), and a metric disagrees when its means differ significantly
    (p < ``SIGNIFICANCE``) *and* by more than the practical size, or when a run did not
    print it.  With fewer, the one-pair check (``compare``) of the last run each way."""
    if min(len(reference), len(fastnet)) < MIN_RUNS:
        if not (reference and fastnet):
            return []
        return [{**check, "test": "one pair", "reference_sd": None, "fastnet_sd": None,
                 "n_reference": 1, "n_fastnet": 1, "p_value": None, "significant": None}
                for check in compare(name, reference[-1], fastnet[-1])]
    values = {way: by_metric(runs) for way, runs in (("reference", reference),
                                                      ("fastnet", fastnet))}
    return [_welch_check(metric, tolerance,
                         values["reference"].get(metric, [None] * len(reference)),
                         values["fastnet"].get(metric, [None] * len(fastnet)))
            for metric, tolerance in _checked(name, set(values["reference"])
                                              | set(values["fastnet"]))]


def by_metric(runs):
    """``runs`` (``parse_output``'s dicts, one per run) as ``{metric: [value per run]}``,
    None where a run did not print the metric."""
    metrics = sorted({metric for run in runs for metric in run})
    return {metric: [run.get(metric) for run in runs] for metric in metrics}


# --------------------------------------------------------------------------- running

def run_script_process(name, way, out_dir, scale, env):
    """Wall seconds and stdout of a process running script ``name`` ``way`` (``book.CHILD``)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *CHILD, name, way, str(out_dir), repr(float(scale))],
                          env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
                          check=False)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{name} ({way}) failed with status {proc.returncode}:\n"
                           f"{proc.stderr[-3000:]}")
    return wall, proc.stdout


def _short(values):
    """``{metric: [value per run]}`` in a few words: the value, or the mean of the runs."""
    means = {metric: statistics.fmean(v for v in runs if v is not None)
             for metric, runs in values.items() if any(v is not None for v in runs)}
    several = max(map(len, values.values()), default=0) > 1
    return ", ".join(f"{k} {v:.4g}" for k, v in means.items()) + (" (means)" if several else "")


def book_scripts_workload(n_threads, settings, progress):
    """The ``book-scripts`` entry of the report (``targets`` are added by the runner)."""
    names = settings.get("book_scripts") or SCRIPTS
    scale, runs = settings["book_scale"], settings["book_runs"]
    _, _, data = load_dataset(settings["book_data"])
    extra = {"FASTNET_BOOK_DATA": data, "MPLBACKEND": "Agg"}
    if settings.get("book_test_size"):
        extra["FASTNET_BOOK_TEST_SIZE"] = str(settings["book_test_size"])
    env = harness.child_env(n_threads, **extra)
    progress("  warm-up: fastnet's kernels into the cache")
    harness.run_child(WARM_UP, env)
    walls = {name: {way: [] for way in WAYS} for name in names}
    results = {name: {way: [] for way in WAYS} for name in names}  # one dict per run
    figures = {name: {way: [] for way in WAYS} for name in names}
    failed = {}
    with tempfile.TemporaryDirectory(prefix="fastnet-book-") as scratch:
        out_dir = Path(settings.get("book_out") or scratch)
        for run in range(runs):
            for index, name in enumerate(names):
                if name in failed:
                    continue
                for way in (WAYS if (run + index) % 2 == 0 else WAYS[::-1]):
                    progress(f"  {name} ({way}), run {run + 1}/{runs}")
                    try:
                        wall, stdout = run_script_process(name, way, out_dir, scale, env)
                    except (RuntimeError, subprocess.TimeoutExpired) as err:
                        failed[name] = str(err)
                        progress(f"  {name} ({way}) FAILED: {failure_line(str(err))}")
                        break
                    walls[name][way].append(wall)
                    results[name][way].append(parse_output(name, stdout))
                    figures[name][way] = sorted(p.name for p in out_dir.glob(f"{name}-{way}*.png"))
    return _result(names, data, settings, walls, results, figures, failed)


def _result(names, data, settings, walls, results, figures, failed):
    scale = settings["book_scale"]
    implementations, notes, ratios, scripts = {}, {}, {}, {}
    medians = {}
    for name in names:
        entry = {"checks": [], "agree": None, "speedup": None, "figures": figures[name],
                 "results": {way: by_metric(results[name][way]) for way in WAYS}}
        if name in failed:
            entry["error"] = failed[name]
        elif all(walls[name].values()):
            for way in WAYS:
                key = f"{name} {way}"
                implementations[key] = harness.summary(walls[name][way], 1, scale=1.0)
                notes[key] = _short(entry["results"][way])
            medians[name] = {way: implementations[f"{name} {way}"]["median"] for way in WAYS}
            entry["speedup"] = medians[name]["reference"] / medians[name]["fastnet"]
            entry["checks"] = compare_runs(name, results[name]["reference"],
                                           results[name]["fastnet"])
            # A checked result that neither way printed has no check to disagree: it
            # disagrees here (all() of no checks would say it agrees).
            entry["agree"] = (all(c["agree"] for c in entry["checks"])
                              and _prints_every_check(name, entry["checks"]))
        ratios[f"speedup_{name}"] = entry["speedup"]
        scripts[name] = entry
    ran = [name for name in names if name in medians]
    total = {way: sum(medians[name][way] for name in ran) for way in WAYS}
    ratios["speedup_selected"] = total["reference"] / total["fastnet"] if ran else None
    ratios["speedup_total"] = ratios["speedup_selected"] if set(ran) == set(SCRIPTS) else None
    if scale == 1 and (ran or failed):
        disagreeing = float(sum(not scripts[name]["agree"] for name in ran) + len(failed))
    else:  # results at a smaller scale are not judged; a script that failed still is
        disagreeing = float(len(failed)) if failed else None
    ratios["scripts_disagreeing"] = disagreeing
    skipped = {f"{name} both": f"failed: {failure_line(failed[name])}" for name in failed}
    if scale != 1:
        skipped["agreement"] = f"not judged at scale {scale:g} (runs too short for the bounds)"
    description = (f"the book's chapter-6 scripts ({len(ran)} of {len(SCRIPTS)}), each a "
                   f"process of its own, book's code (reference, float64) vs fastnet; data "
                   f"{data}, scale {scale:g}, {settings['book_runs']} run(s) each")
    return {"description": description, "unit": "s", "implementations": implementations,
            "notes": notes, "skipped": skipped, "ratios": ratios, "scripts": scripts}
