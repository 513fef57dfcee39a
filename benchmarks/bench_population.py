"""Population training (issue 10): K members of one net stepped together, against K
sequential fused steps, PyTorch's batched versions and the GEMM floor (``common.
population_step`` says what each implementation runs); and the peak memory of a
population against its K nets' arenas."""
import gc

import numpy as np

from .common import (
    INPUT_SIZE,
    OUTPUT_SIZE,
    POPULATION_NETS,
    batch,
    fastnet_api,
    population_step,
    reset_peak_rss,
    status_bytes,
)

IMPLEMENTATIONS = ["population", "population-per-member", "sequential", "torch-vmap",
                   "torch-bmm", "gemm-floor"]


class PopulationStep:
    """One step of all K members (divide by K for the per-member time)."""

    params = ([4, 16, 64], list(POPULATION_NETS), IMPLEMENTATIONS)
    param_names = ("k", "net", "implementation")
    timeout = 600

    def setup(self, k, net, implementation):
        x, t = batch(POPULATION_NETS[net].batch)
        self.step = population_step(implementation, net, k, x, t)
        self.step()

    def time_step(self, k, net, implementation):
        self.step()


class PopulationMemory:
    """Peak memory of building a population of 64 784-100x4-10 Adam members and training
    it for a few steps at batch 128; ``track_arena_mb`` is what its K nets' arenas hold
    (parameters, gradients, Adam's two moments) plus the batch, the issue's bound's
    base (peak within 1.2x of it, on top of the imports and kernels)."""

    params = ([64],)
    param_names = ("k",)
    unit = "MB"

    def setup(self, k):
        self.x, self.t = batch(POPULATION_NETS["mlp-adam"].batch)
        population_step("population", "mlp-adam", 2, self.x, self.t)()  # kernels loaded

    def peakmem_train_step(self, k):
        step = population_step("population", "mlp-adam", k, self.x, self.t)
        for _ in range(3):
            step()

    def track_arena_mb(self, k):
        layout = fastnet_api("fastnet.arena", "NetLayout")(
            INPUT_SIZE, POPULATION_NETS["mlp-adam"].hidden, OUTPUT_SIZE)
        arenas = 4 * k * layout.size * np.dtype(np.float32).itemsize
        return (arenas + self.x.nbytes + self.t.nbytes) / 2**20


class PopulationPeakOverArenas:
    """Issue 10's bound, as ``fastnet bench``'s ``pop<K>-<net>-memory`` measures it: the
    peak RSS growth of building K members and running 5 train steps, over K nets'
    arenas (parameters, gradients, optimizer state); at most 1.2.  The batch is made in
    setup, before the peak is reset: neither counted nor credited.  The peak is reset
    after setup has compiled the step on a population of 4-unit hidden layers (one
    member per thread) and the freed heap has gone back to the system
    (``reset_peak_rss``).  Linux only."""

    params = ([16, 64], ["mlp-sgd", "mlp-adam"])
    param_names = ("k", "net")
    unit = "peak RSS growth / arenas"

    def setup(self, k, net):
        reset_peak_rss()
        spec = POPULATION_NETS[net]
        self.x, self.t = batch(spec.batch)
        layout = fastnet_api("fastnet.arena", "NetLayout")(INPUT_SIZE, spec.hidden,
                                                           OUTPUT_SIZE)
        states = len(fastnet_api("fastnet.optimizers", spec.optimizer).state_names)
        self.expected = k * (2 + states) * layout.size * np.dtype(np.float32).itemsize
        threads = fastnet_api("fastnet.threads", "get_num_threads")()
        warm = fastnet_api("fastnet.population", "Population")(
            INPUT_SIZE, [4] * len(spec.hidden), OUTPUT_SIZE,
            [{"seed": i, "lr": spec.lr} for i in range(threads)], spec.optimizer)
        warm.train_step(self.x, self.t)

    def track_peak_rss_over_arenas(self, k, net):
        gc.collect()
        reset_peak_rss()
        before = status_bytes("VmRSS")
        step = population_step("population", net, k, self.x, self.t)
        for _ in range(5):
            step()
        return (status_bytes("VmHWM") - before) / self.expected
