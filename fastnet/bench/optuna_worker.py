"""The comparator of ``fastnet bench``'s sweep workloads: Optuna driving PyTorch.

Run as a script of its own (``python path/to/optuna_worker.py JOB.json``), never
imported by fastnet, so that neither torch nor optuna is loaded by fastnet's import;
run by its path, not with ``-m``, so that its processes do not import fastnet (Numba
and all) and the comparator pays only its own start-up.
The best way this machine allows (issue 9): ``procs`` processes of one torch thread
each, sharing one study through ``optuna.storages.JournalStorage`` on a journal file,
each running ``study.optimize`` with its share of the trials.

The job (JSON) names the data (an ``.npz`` with ``x_train, t_train, x_val, t_val,
x_train_eval, t_train_eval``), the net (``hidden``), ``batch``, ``epochs``, the trials'
configurations (``configs``: ``lr`` and ``weight_decay``, enqueued in order so that
Optuna trains the very trials fastnet's sweep trained), the evaluation points
(``evals``: ``[step, resource]`` pairs; each evaluates accuracy on the training-
evaluation and validation sets and reports the validation accuracy at ``resource``)
and optionally ``pruner: {"min_resource", "reduction_factor"}`` for Optuna's
``SuccessiveHalvingPruner``.  The net is the book's: He-normal weights (std
sqrt(2 / fan_in)), zero biases, ReLU, SGD with the L2 term on the weights only.  A
trial whose loss becomes non-finite stops and fails (fastnet records it as diverged).

The driver prints one JSON line: the wall seconds from starting the processes to the
last one's exit (imports included, as fastnet's worker start-up is), the count of each
trial state, the best validation accuracy, and the work done: the training steps of all
trials up to their last evaluation, and the count of evaluations.
"""
import itertools
import json
import math
import os
import subprocess
import sys
import time


def _storage(path):
    import optuna

    journal = optuna.storages.journal
    return optuna.storages.JournalStorage(
        journal.JournalFileBackend(path, lock_obj=journal.JournalFileOpenLock(path)))


def _pruner(job):
    import optuna

    spec = job.get("pruner")
    if not spec:
        return optuna.pruners.NopPruner()
    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=spec["min_resource"], reduction_factor=spec["reduction_factor"],
        min_early_stopping_rate=0)


def _objective(job, data):
    import numpy as np
    import optuna
    import torch

    x, t = torch.from_numpy(data["x_train"]), torch.from_numpy(data["t_train"])
    sets = {"train": (torch.from_numpy(data["x_train_eval"]), data["t_train_eval"]),
            "val": (torch.from_numpy(data["x_val"]), data["t_val"])}
    sizes = [x.shape[1], *job["hidden"], int(max(data["t_train"].max(), data["t_val"].max())) + 1]
    n, batch = len(x), min(job["batch"], len(x))
    per_epoch = max(n // job["batch"], 1)
    lr_range, wd_range = job["lr_range"], job["wd_range"]

    def objective(trial):
        lr = trial.suggest_float("lr", *lr_range, log=True)
        weight_decay = trial.suggest_float("weight_decay", *wd_range, log=True)
        torch.manual_seed(trial.number)
        layers = []
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
            linear = torch.nn.Linear(fan_in, fan_out)
            with torch.no_grad():
                linear.weight.normal_(0.0, math.sqrt(2.0 / fan_in))
                linear.bias.zero_()
            layers.append(linear)
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        model = torch.nn.Sequential(*layers)
        weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
        biases = [p for name, p in model.named_parameters() if name.endswith("bias")]
        optimizer = torch.optim.SGD([{"params": weights, "weight_decay": weight_decay},
                                     {"params": biases, "weight_decay": 0.0}], lr=lr)
        loss_fn = torch.nn.CrossEntropyLoss()
        step, perm, accuracy = 0, None, float("nan")
        for stop, resource in job["evals"]:
            model.train()
            while step < stop:
                j = step % per_epoch
                if j == 0:
                    perm = torch.randperm(n)
                rows = perm[j * batch:(j + 1) * batch]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(x[rows]), t[rows])
                loss.backward()
                optimizer.step()
                step += 1
                if not math.isfinite(loss.item()):
                    raise FloatingPointError("loss is not finite")
            model.eval()
            accs = {}
            with torch.no_grad():
                for name, (xs, ts) in sets.items():
                    accs[name] = float(np.mean(model(xs).argmax(1).numpy() == ts))
            accuracy = accs["val"]
            trial.set_user_attr(f"train_acc_{resource}", accs["train"])
            trial.report(accuracy, resource)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return accuracy

    return objective


def worker(job, share, seed):
    import numpy as np
    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with np.load(job["data"]) as f:
        data = {k: f[k] for k in f.files}
    for key in ("t_train", "t_val"):
        data[key] = data[key].astype(np.int64)
    study = optuna.load_study(study_name="bench", storage=_storage(job["journal"]),
                              sampler=optuna.samplers.RandomSampler(seed=seed),
                              pruner=_pruner(job))
    study.optimize(_objective(job, data), n_trials=share, catch=(FloatingPointError,))


def drive(job):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="bench", storage=_storage(job["journal"]),
                                direction="maximize")
    for config in job["configs"]:
        study.enqueue_trial(config)
    trials, procs = len(job["configs"]), job["procs"]
    shares = [trials // procs + (k < trials % procs) for k in range(procs)]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    start = time.perf_counter()
    children = [subprocess.Popen([sys.executable, os.path.abspath(__file__), job["path"], "--worker", str(share), str(k)], env=env)
                for k, share in enumerate(shares) if share]
    codes = [child.wait() for child in children]
    wall = time.perf_counter() - start
    if any(codes):
        raise SystemExit(f"an Optuna worker failed: exit statuses {codes}")
    done = optuna.load_study(study_name="bench", storage=_storage(job["journal"])).trials
    states = {}
    for trial in done:
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
    complete = [t.value for t in done if t.state.name == "COMPLETE" and t.value is not None]
    # the work done, for the caller's FLOP floor: each trial's steps up to its last
    # evaluation (a failed trial's steps after it are not counted) and its evaluations
    step_at = {resource: step for step, resource in job["evals"]}
    reached = [sorted(t.intermediate_values) for t in done]
    print(json.dumps({"wall_s": wall, "states": states, "trials": len(done),
                      "steps": sum(step_at[r[-1]] for r in reached if r),
                      "evaluations": sum(len(r) for r in reached),
                      "best_val_acc": max(complete) if complete else None,
                      "procs": len(children), "torch_threads": 1,
                      "optuna": optuna.__version__}))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as handle:
        job = json.load(handle)
    job["path"] = argv[0]
    if len(argv) > 1 and argv[1] == "--worker":
        worker(job, int(argv[2]), int(argv[3]))
    else:
        drive(job)


if __name__ == "__main__":
    main()
