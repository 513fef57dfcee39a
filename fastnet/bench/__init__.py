"""The headline benchmarks side by side in one run: ``fastnet bench``.

Each workload builds every implementation on the same inputs (fastnet, the NumPy
reference, PyTorch in a worker process of its own, and the floors: what the step's
GEMMs, or Adam's memory traffic, cost alone), then times them in rounds, round-robin,
so that noise on a shared machine hits all of them alike; the table shows the median
time per step, the ratios and the targets with PASS or MISS.  Every thread pool gets
``--threads`` threads (all cores by default): Numba's, each BLAS (threadpoolctl) and
torch's.  Run ``python -m fastnet.bench --help``; ``--json`` prints the results for
machines.

By role:

* ``workloads``: the headline nets (``NETS``) and a step builder per implementation;
* ``harness``: threads, round-robin timing, memory readings, child processes;
* ``torch_worker``: torch's process and the line protocol that drives it;
* ``book`` and ``book_workload``: the book's chapter-6 scripts (``book_scripts/``) run
  either way, and the ``book-scripts`` workload that times them, each a process of its
  own (opt-in: ``--workload book-scripts``, half an hour or more at the book's length);
* ``norm_workload``: issue 11's normalization layers one at a time (opt-in: ``--workload
  normalization``, which also runs ``ln-sgd``, the net with layer norm);
* ``sweep_workload`` and ``optuna_worker``: the sweeps (``sweep-*``, opt-in) against
  their GEMM floor and against Optuna driving PyTorch in processes of their own;
* ``memory_workload``: a population's peak RSS growth in a new process against K nets'
  arenas and the batch (``pop*-memory``, issue 10);
* ``experiment_workload``: ``fastnet experiment all`` in-process with the nets' calls
  recorded, against those calls' GEMMs back to back (opt-in: ``--workload
  experiment-all``, minutes at the book's settings);
* ``runner``: one run, workload by workload, ratios against the targets;
* ``report``: the targets (read from ``targets.csv``) and the text table;
* ``cli``: the command line.
"""
from .cli import main
from .harness import FULL, QUICK
from .report import TARGETS, Target, format_report
from .runner import WORKLOADS, run
from .workloads import NETS, NetSpec

__all__ = ["FULL", "NETS", "QUICK", "TARGETS", "WORKLOADS", "NetSpec", "Target",
           "format_report", "main", "run"]
