"""PyTorch in a worker process of its own, driven sample by sample by ``fastnet bench``.

The worker runs in the same round-robin loop as the implementations of the parent
process (it sleeps while they run, and they sleep while it runs).  In one process the
two OpenMP runtimes cannot both run as their users run them: torch loads its libgomp
into the global symbol scope, so Numba's pool picks it up; without fastnet's
``OMP_WAIT_POLICY=PASSIVE`` that pool spins against BLAS's threads (a fastnet step was
measured 10x slower on 16 cores), with it torch runs 2-4x slower.  The worker gets the
environment of a torch user: no ``OMP_WAIT_POLICY``, unless ``--torch-omp-wait-policy
inherit``.

The protocol: one JSON request per line on the worker's stdin (``info``, ``build`` a
workload, ``run`` k steps), one JSON reply per line on its stdout.
"""
import contextlib
import json
import os
import subprocess
import sys
import tempfile

from .harness import has_module, local, threadpools, torch_env
from .norm_workload import NORM_LAYERS, torch_layer_step
from .workloads import (
    NETS,
    POPULATIONS,
    make_batch,
    torch_adam_step,
    torch_bmm_step,
    torch_step,
    torch_vmap_step,
)

# A population's torch versions: sampler name -> builder.
POPULATION_VARIANTS = {"torch-vmap": torch_vmap_step, "torch-bmm": torch_bmm_step}

# torch first: its OpenMP runtime reads OMP_WAIT_POLICY as it loads, before importing
# fastnet sets it.
_WORKER_START = """import os
policy = os.environ.get("OMP_WAIT_POLICY")
import torch
from fastnet.bench import torch_worker
torch_worker.serve(policy)
"""


class TorchWorker:
    """torch in a process of its own, timed sample by sample: ``add_to`` builds a
    workload there and adds a sampler whose ``sample(k)`` has the worker run ``k`` steps
    and returns the seconds the worker measured (pipe latency is not timed).

    ``info`` holds torch's version, threads and thread pools, or is None, and then
    ``reason`` says why."""

    def __init__(self, n_threads, policy, enabled=True, reason=None):
        self.proc, self.info, self.reason = None, None, reason
        if not enabled:
            return
        if not has_module("torch"):
            self.reason = "torch is not importable"
            return
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed in close())
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_START],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            env=torch_env(n_threads, policy))
        self.info = self._call(op="info")
        if self.info is None:
            self.close()

    def _call(self, **message):
        if self.proc is None:
            return None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            self._stderr.seek(0)
            tail = self._stderr.read()[-1500:].strip()
            self.reason = f"the torch worker died: {tail or 'no message'}"
            self.close()
            return None
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"torch worker: {reply['error']}")
        return reply

    def add_to(self, workload, samplers, notes, skipped, name="torch"):
        """Build ``workload`` in the worker and add its sampler ``name`` ('torch', or for
        a population one of ``POPULATION_VARIANTS``), or say why not."""
        reply = self._call(op="build", workload=workload, name=name)
        if reply is None:
            skipped[name] = self.reason
            return
        samplers[name] = lambda k: self._sample(name, k)
        notes[name] = reply["note"]

    def _sample(self, name, k):
        reply = self._call(op="run", name=name, k=k)
        if reply is None:
            raise RuntimeError(self.reason)
        return reply["seconds"]

    def close(self):
        if self.proc is not None:
            with contextlib.suppress(OSError, ValueError):
                self.proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc = None
            self._stderr.close()


def serve(policy):
    """The worker's loop (``policy``: ``OMP_WAIT_POLICY`` as torch loaded)."""
    import torch

    reply_to = sys.stdout
    sys.stdout = sys.stderr  # nothing but replies on the pipe
    torch.set_num_threads(int(os.environ["FASTNET_BENCH_THREADS"]))
    steps = {}  # sampler name -> the step of the workload built last
    for line in sys.stdin:
        message = json.loads(line)
        try:
            if message["op"] == "info":
                reply = {"version": torch.__version__, "threads": torch.get_num_threads(),
                         "omp_wait_policy": policy or "unset", "threadpools": threadpools()}
            elif message["op"] == "build":
                workload, name = message["workload"], message["name"]
                if workload == "adam-update":
                    steps[name], note = torch_adam_step(torch)
                elif workload in NORM_LAYERS:
                    steps[name], note = torch_layer_step(torch, NORM_LAYERS[workload])
                elif workload in POPULATIONS:  # every member on the same mini-batch
                    spec = POPULATIONS[workload]
                    steps[name], note = POPULATION_VARIANTS[name](
                        torch, spec, *make_batch(spec.net.batch))
                else:
                    spec = NETS[workload]
                    steps[name], note = torch_step(torch, spec, *make_batch(spec.batch))
                reply = {"note": note}
            else:
                reply = {"seconds": local(steps[message["name"]])(message["k"])}
        except Exception as exc:  # noqa: BLE001  (any failure goes to the parent, which raises it)
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        reply_to.write(json.dumps(reply) + "\n")
        reply_to.flush()
