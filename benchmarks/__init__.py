"""asv benchmarks of fastnet against its NumPy reference and PyTorch (see README.md).

One module per area, each benchmark parametrized over ``implementation`` so that the
speed-up shows in one table.  The suite's workloads and helpers live in ``common.py``;
nothing there or here is a benchmark.

The fastnet measured is the one asv installed in its environment for the commit it
measures; with ``asv run --python=same`` (nothing installed) it is the importable one
(an install, or a tree on ``ASV_PYTHONPATH``: asv does not pass ``PYTHONPATH`` on),
else the checkout that holds this folder.
"""
import contextlib
import importlib
import importlib.util
import os
import sys

if importlib.util.find_spec("fastnet") is None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Imported once here, in asv's fork server, so every benchmark process starts with them.
# A commit of fastnet without one of them loses the benchmarks that use it (in their
# setup), not the discovery of the suite.
for _module in ("fastnet.layers", "fastnet.nets", "fastnet.optimizers", "fastnet.reference"):
    with contextlib.suppress(ImportError):
        importlib.import_module(_module)
