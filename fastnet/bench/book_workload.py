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
``scripts_disagreeing``, the number of scripts whose printed results differ by more
than ``CHECKS`` allows.

Why these tolerances: the two ways draw different random numbers (initial weights,
mini-batches, dropout masks, searched hyper-parameters), so one run of each is two
samples of the same experiment, and the bound is on how far two runs of the book's own
code fall apart, about three standard deviations of their difference:

* a mini-batch loss (``optimizer_compare_mnist``, ``weight_init_compare``) is averaged
  over the last ``LAST_BLOCKS`` printed iterations (one batch of 128 each); batch to
  batch it varies by about 0.1 around a loss of 0.2-0.5, so the mean of five differs
  between runs by about 0.06: bound 0.15 (std=0.01 stays at ln 10 = 2.30 either way);
* an accuracy on a test set of thousands has a sampling error under 1 point, but 300
  training images (``overfit_*``) make the run-to-run spread of the final accuracy
  about 1.5 points: bound 5 points;
* ``batch_norm_test``'s mean over its 16 weight scales of the final training accuracy
  (1,000 images) includes scales where training takes off in one run and not in the
  other (each such flip moves the mean by up to 5 points): bound 8 points;
* ``hyperparameter_optimization``'s best validation accuracy is read on 100 images
  (sampling error 4 points) after a random search: bound 8 points;
* ``batch_norm_gradient_check`` prints mean |backprop - numerical| per parameter.  On
  one image, batch norm's output is beta, and beta2 starts at 0, exactly on ReLU's
  kink, where the central difference sees half the slope and backprop none: the book's
  code prints about 0.05 there (depending on the run's random weights), about 1e-7
  elsewhere; float32 central differences with h = 1e-4 add up to about 1e-4.  Each
  parameter may differ by ``GRADIENT_NOISE`` plus ``GRADIENT_RELATIVE`` of the larger.

At a scale under 1 (``--quick``) the runs are too short for these bounds, so the checks
are shown but not counted (``scripts_disagreeing`` is None: SKIP).
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

LAST_BLOCKS = 5
LOSS_TOLERANCE = 0.15
ACCURACY_TOLERANCE = 0.05
# batch_norm_gradient_check: float32's rounding of the loss (1e-7 of about 2.3) over
# 2h = 2e-4, and the run-to-run spread of the ReLU-kink term (see the module doc).
GRADIENT_NOISE = 1e-3
GRADIENT_RELATIVE = 0.5
CHILD_TIMEOUT_S = 7200

# Which printed results are compared, and by how much they may differ: a metric of
# ``parse_output``, or a prefix ending in a space for all the metrics it starts.
CHECKS = {
    "optimizer_compare_mnist": {"loss ": LOSS_TOLERANCE},
    "weight_init_compare": {"loss ": LOSS_TOLERANCE},
    "batch_norm_test": {"mean final train acc": 0.08},
    "overfit_weight_decay": {"train acc": ACCURACY_TOLERANCE, "test acc": ACCURACY_TOLERANCE},
    "overfit_dropout": {"train acc": ACCURACY_TOLERANCE, "test acc": ACCURACY_TOLERANCE,
                        "final test acc": ACCURACY_TOLERANCE},
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


def compare(name, reference, fastnet):
    """The checks of ``name``: ``[{"metric", "reference", "fastnet", "tolerance",
    "agree"}]``, for every checked metric both runs printed."""
    checks = []
    if name == "batch_norm_gradient_check":
        for metric in sorted(set(reference) | set(fastnet)):
            ref, fast = reference.get(metric), fastnet.get(metric)
            if ref is None or fast is None:
                checks.append({"metric": metric, "reference": ref, "fastnet": fast,
                               "tolerance": None, "agree": False})
                continue
            tolerance = GRADIENT_NOISE + GRADIENT_RELATIVE * max(abs(ref), abs(fast))
            checks.append({"metric": metric, "reference": ref, "fastnet": fast,
                           "tolerance": tolerance, "agree": abs(ref - fast) <= tolerance})
        return checks
    for prefix, tolerance in CHECKS.get(name, {}).items():
        for metric in sorted(set(reference) | set(fastnet)):
            if metric == prefix or (prefix.endswith(" ") and metric.startswith(prefix)):
                ref, fast = reference.get(metric), fastnet.get(metric)
                agree = ref is not None and fast is not None and abs(ref - fast) <= tolerance
                checks.append({"metric": metric, "reference": ref, "fastnet": fast,
                               "tolerance": tolerance, "agree": agree})
    return checks


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


def _short(results):
    return ", ".join(f"{k} {v:.4g}" for k, v in results.items())


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
    results = {name: {way: {} for way in WAYS} for name in names}
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
                        progress(f"  {name} ({way}) FAILED: {str(err).splitlines()[0]}")
                        break
                    walls[name][way].append(wall)
                    results[name][way] = parse_output(name, stdout)
                    figures[name][way] = sorted(p.name for p in out_dir.glob(f"{name}-{way}*.png"))
    return _result(names, data, settings, walls, results, figures, failed)


def _result(names, data, settings, walls, results, figures, failed):
    scale = settings["book_scale"]
    implementations, notes, ratios, scripts = {}, {}, {}, {}
    medians = {}
    for name in names:
        entry = {"checks": [], "agree": None, "speedup": None, "figures": figures[name],
                 "results": results[name]}
        if name in failed:
            entry["error"] = failed[name]
        elif all(walls[name].values()):
            for way in WAYS:
                key = f"{name} {way}"
                implementations[key] = harness.summary(walls[name][way], 1, scale=1.0)
                notes[key] = _short(results[name][way])
            medians[name] = {way: implementations[f"{name} {way}"]["median"] for way in WAYS}
            entry["speedup"] = medians[name]["reference"] / medians[name]["fastnet"]
            entry["checks"] = compare(name, results[name]["reference"], results[name]["fastnet"])
            entry["agree"] = all(c["agree"] for c in entry["checks"])
        ratios[f"speedup_{name}"] = entry["speedup"]
        scripts[name] = entry
    ran = [name for name in names if name in medians]
    total = {way: sum(medians[name][way] for name in ran) for way in WAYS}
    ratios["speedup_selected"] = total["reference"] / total["fastnet"] if ran else None
    ratios["speedup_total"] = ratios["speedup_selected"] if set(ran) == set(SCRIPTS) else None
    ratios["scripts_disagreeing"] = (
        float(sum(not scripts[name]["agree"] for name in ran))
        if scale == 1 and ran else None)
    skipped = {f"{name} both": f"failed: {failed[name].splitlines()[0]}" for name in failed}
    if scale != 1:
        skipped["agreement"] = f"not judged at scale {scale:g} (runs too short for the bounds)"
    description = (f"the book's chapter-6 scripts ({len(ran)} of {len(SCRIPTS)}), each a "
                   f"process of its own, book's code (reference, float64) vs fastnet; data "
                   f"{data}, scale {scale:g}, {settings['book_runs']} run(s) each")
    return {"description": description, "unit": "s", "implementations": implementations,
            "notes": notes, "skipped": skipped, "ratios": ratios, "scripts": scripts}
