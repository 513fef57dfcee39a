"""The book's layer classes: ``fastnet.layers`` (validation, new output arrays, one
kernel call) against ``fastnet.reference.layers`` (NumPy), float32."""
import numpy as np

from .common import batch, parse_shape, standard_normal

IMPLEMENTATIONS = ["reference", "fastnet"]
SHAPES = ["100x100", "256x1024"]


def _layers(implementation):
    if implementation == "fastnet":
        from fastnet import layers
    else:
        from fastnet.reference import layers
    return layers


class _LayerBenchmark:
    """Forward and backward of one layer on (batch x features) float32 input."""

    params = (IMPLEMENTATIONS, SHAPES)
    param_names = ("implementation", "shape")

    def make(self, layers, n, d):
        raise NotImplementedError

    def setup(self, implementation, shape):
        n, d = parse_shape(shape)
        self.x = standard_normal((n, d), np.float32)
        self.dout = standard_normal((n, d), np.float32, 1e-2)
        self.layer = self.make(_layers(implementation), n, d)
        self.forward()
        self.layer.backward(self.dout)

    def forward(self):
        return self.layer.forward(self.x)

    def time_forward(self, implementation, shape):
        self.forward()

    def time_backward(self, implementation, shape):
        self.layer.backward(self.dout)


class Relu(_LayerBenchmark):
    def make(self, layers, n, d):
        return layers.Relu()


class Sigmoid(_LayerBenchmark):
    def make(self, layers, n, d):
        return layers.Sigmoid()


class Affine(_LayerBenchmark):
    """``Affine`` with a square weight matrix (d x d)."""

    def make(self, layers, n, d):
        return layers.Affine(standard_normal((d, d), np.float32, np.sqrt(2 / d)),
                             np.zeros(d, np.float32))


class BatchNormalization(_LayerBenchmark):
    def make(self, layers, n, d):
        return layers.BatchNormalization(np.ones(d, np.float32), np.zeros(d, np.float32))

    def forward(self):
        return self.layer.forward(self.x, True)


class Dropout(_LayerBenchmark):
    def make(self, layers, n, d):
        return layers.Dropout(0.2, seed=7)

    def forward(self):
        return self.layer.forward(self.x, True)


class SoftmaxWithLoss:
    """The loss layer on (batch x 10) logits: forward returns the loss, backward dx."""

    params = (IMPLEMENTATIONS, [128, 1024])
    param_names = ("implementation", "batch")

    def setup(self, implementation, n):
        self.x = standard_normal((n, 10), np.float32, 3.0)
        _, self.t = batch(n)
        self.layer = _layers(implementation).SoftmaxWithLoss()
        self.layer.forward(self.x, self.t)
        self.layer.backward()

    def time_forward(self, implementation, n):
        self.layer.forward(self.x, self.t)

    def time_backward(self, implementation, n):
        self.layer.backward()
