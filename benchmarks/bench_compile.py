"""Start-up cost: a fresh process imports fastnet, builds the mlp net and takes one
training step.

``cold``: Numba's cache is an empty folder (``NUMBA_CACHE_DIR``), so the step compiles
the kernels it uses, on first use (``fastnet/kernels/jit.py``): the one-off cost on a
new machine.  ``warm``: they are cached, so they are loaded from disk: what every later
process pays.  Each sample is a new
interpreter (asv's ``timeraw``); the time excludes the interpreter's own start.
"""
import os
import subprocess
import sys

import fastnet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastnet.__file__)))

CHILD_SETUP = """
import atexit, os, shutil, sys, tempfile
sys.path.insert(0, {root!r})
if {cold!r}:
    cache = tempfile.mkdtemp(prefix="fastnet-cold-")
    os.environ["NUMBA_CACHE_DIR"] = cache
    atexit.register(shutil.rmtree, cache, True)
"""

CHILD_STEP = """
import numpy as np
from fastnet.nets import MultiLayerNet
from fastnet.optimizers import SGD
net = MultiLayerNet(784, [100] * 4, 10, seed=0)
rng = np.random.default_rng(0)
net.train_step(rng.random((128, 784), dtype=np.float32), rng.integers(0, 10, 128), SGD())
"""


class ImportBuildFirstStep:
    params = ("warm", "cold")
    param_names = ("jit_cache",)
    number = 1
    repeat = (1, 3, 120.0)
    warmup_time = 0
    timeout = 900

    def setup(self, jit_cache):
        if jit_cache == "warm":  # build the cache for these sources, outside the timing
            code = CHILD_SETUP.format(root=ROOT, cold=False) + CHILD_STEP
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)

    def timeraw_import_build_first_step(self, jit_cache):
        return CHILD_STEP, CHILD_SETUP.format(root=ROOT, cold=jit_cache == "cold")
