"""A training step of the headline nets (``fastnet bench``'s workloads), and memory.

``implementation``:

* ``reference``: the NumPy oracle, ``grads = net.gradient(x, t)`` then ``update``;
* ``fastnet-layers``: the same book loop on fastnet's layer classes (one kernel per layer);
* ``fastnet``: the fused ``net.train_step(x, t, optimizer)``;
* ``torch``: the same model in ``torch.nn`` with ``torch.optim`` (fused where supported).
"""
import gc

from .common import NETS, batch, train_step


class TrainStep:
    params = (list(NETS), ["reference", "fastnet-layers", "fastnet", "torch"])
    param_names = ("net", "implementation")

    def setup(self, net, implementation):
        x, t = batch(NETS[net].batch)
        self.step = train_step(implementation, net, x, t)
        self.step()

    def time_train_step(self, net, implementation):
        self.step()


class WideNetMemory:
    """Peak memory of building the 784-1024-1024-10 net with Adam and training it for
    a few steps at batch 256 (on top of the imports and, for fastnet, its kernels)."""

    params = ("reference", "fastnet")
    param_names = ("implementation",)

    def setup(self, implementation):
        self.x, self.t = batch(NETS["wide-adam"].batch)
        if implementation == "fastnet":  # load the kernels now, not inside the measurement
            x, t = batch(8)
            train_step("fastnet", "mlp-adam", x, t)()

    def peakmem_train_step(self, implementation):
        step = train_step(implementation, "wide-adam", self.x, self.t)
        for _ in range(3):
            step()


class MemoryLeak:
    """RSS growth (MB) over 10,000 fused train steps of the mlp net: flat means no leak."""

    params = ("fastnet",)
    param_names = ("implementation",)
    unit = "MB"
    timeout = 600

    def setup(self, implementation):
        try:
            import psutil
        except ImportError as exc:
            raise NotImplementedError("psutil is not installed (the bench extra)") from exc
        self.process = psutil.Process()
        x, t = batch(NETS["mlp-sgd"].batch)
        self.step = train_step(implementation, "mlp-sgd", x, t)
        for _ in range(200):
            self.step()

    def track_rss_growth_10k_steps(self, implementation):
        gc.collect()
        before = self.process.memory_info().rss
        for _ in range(10_000):
            self.step()
        gc.collect()
        return (self.process.memory_info().rss - before) / 2**20
