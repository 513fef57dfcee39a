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


# --------------------------------------------------------------------- normalizations

NORM_SHAPES = ["128x100", "64x16x8x8"]


class _NormalizationBenchmark:
    """Forward and backward (training mode) of one of issue 11's normalization layers on
    float32 input of (N, D) or (N, C, H, W); ``SameBytesCopy`` is the floor to hold it
    against."""

    params = (IMPLEMENTATIONS, NORM_SHAPES)
    param_names = ("implementation", "shape")
    layer_name = None

    def make(self, cls, shape):
        channels = shape[1]
        return cls(np.ones(channels, np.float32), np.zeros(channels, np.float32))

    def setup(self, implementation, shape):
        shape = parse_shape(shape)
        cls = getattr(_layers(implementation), self.layer_name, None)
        if cls is None:  # a commit before the class
            raise NotImplementedError(f"this fastnet has no {self.layer_name}")
        self.x = standard_normal(shape, np.float32)
        self.layer = self.make(cls, shape)
        self.dout = standard_normal(self.forward().shape, np.float32, 1e-2)
        self.layer.backward(self.dout)

    def forward(self):
        return self.layer.forward(self.x, True)

    def time_forward_backward(self, implementation, shape):
        self.forward()
        self.layer.backward(self.dout)


class LayerNormalization(_NormalizationBenchmark):
    layer_name = "LayerNormalization"


class GroupNormalization(_NormalizationBenchmark):
    """Four groups (of 25 features, or of 4 channels)."""

    layer_name = "GroupNormalization"

    def make(self, cls, shape):
        return cls(np.ones(shape[1], np.float32), np.zeros(shape[1], np.float32), 4)


class InstanceNormalization(_NormalizationBenchmark):
    layer_name = "InstanceNormalization"

    def setup(self, implementation, shape):
        if "x" not in shape.split("x", 2)[-1]:
            raise NotImplementedError("instance norm needs (N, C, H, W) input")
        super().setup(implementation, shape)


class SwitchableNormalization(_NormalizationBenchmark):
    layer_name = "SwitchableNormalization"


class WeightNormalization(_NormalizationBenchmark):
    """The input flattened into a weight-normalized square Affine (features -> features),
    as ``fastnet bench``'s norm-weight workloads run it."""

    layer_name = "WeightNormalization"

    def make(self, cls, shape):
        features = int(np.prod(shape[1:]))
        return cls(standard_normal((features, features), np.float32, np.sqrt(2 / features)),
                   np.ones(features, np.float32), np.zeros(features, np.float32))

    def forward(self):
        return self.layer.forward(self.x)


class SameBytesCopy:
    """The floor the normalization benchmarks are held against, as ``fastnet bench``'s
    ``copy_step``: a copy of x into y and of dout (x's shape) into dx."""

    params = NORM_SHAPES
    param_names = ("shape",)

    def setup(self, shape):
        self.x = standard_normal(parse_shape(shape), np.float32)
        self.dout = standard_normal(self.x.shape, np.float32, 1e-2)
        self.y, self.dx = np.empty_like(self.x), np.empty_like(self.x)

    def time_copy(self, shape):
        np.copyto(self.y, self.x)
        np.copyto(self.dx, self.dout)
