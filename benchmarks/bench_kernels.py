"""The compiled kernels alone, against the NumPy reference of the same operation.

``fastnet`` calls the kernel of ``fastnet.kernels`` directly, on C-contiguous inputs
and into preallocated outputs (what the layers and the fused step do after
validating); ``reference`` runs the oracle's layers (``fastnet.reference.layers``),
the book's NumPy expressions.  Shapes are (batch x features).

Kernel arguments are bound by name (``bind``), so reordering a kernel's parameters
does not break the suite and a new parameter fails loudly, naming itself.  Kernels
are looked up with ``fastnet_api``: a commit of fastnet without one skips the benchmark.
"""
import inspect

import numpy as np

from .common import batch, fastnet_api, parse_shape, standard_normal

IMPLEMENTATIONS = ["reference", "fastnet"]
DTYPES = ["float32", "float64"]


def _pick(kernel, size):
    """The serial or the parallel build of ``kernel`` for ``size`` elements, as the layers
    choose them."""
    if size >= fastnet_api("fastnet.config", "PARALLEL_MIN_SIZE"):
        return kernel.parallel_version
    return kernel


def _fused_affine(name, old_name):
    """The affine kernel with the activation fused in: ``name``, called ``old_name``
    before the Affine layer got plain kernels of its own."""
    try:
        return fastnet_api("fastnet.kernels.affine", name)
    except NotImplementedError:
        return fastnet_api("fastnet.kernels.affine", old_name)


def bind(kernel, **named):
    """``kernel``'s positional arguments, taken from ``named`` by parameter name."""
    wanted = list(inspect.signature(kernel.py_func).parameters)
    missing = [name for name in wanted if name not in named]
    if missing:
        raise TypeError(f"{kernel.__name__}{tuple(wanted)}: the benchmark gives no "
                        f"{', '.join(missing)}; update bench_kernels.py")
    return tuple(named[name] for name in wanted)


_GEMM = {}


def _compiled_gemm():
    """``fastnet.kernels.blas.gemm`` (an inline helper) behind a compiled function."""
    if "gemm" not in _GEMM:
        import numba

        jit_options = fastnet_api("fastnet.config", "JIT")
        gemm = fastnet_api("fastnet.kernels.blas", "gemm")

        # Not cached: Numba would not see a change to blas.gemm, inlined from another module.
        @numba.njit(**dict(jit_options, cache=False))
        def compiled_gemm(a, b, out):
            gemm(a, b, out)

        _GEMM["gemm"] = compiled_gemm
    return _GEMM["gemm"]


class Gemm:
    """The three GEMMs of a layer's step, ``x @ W``, ``x.T @ dz`` and ``dz @ W.T``, through
    the kernels' ``blas.gemm`` (NumPy's BLAS where it has CBLAS) and NumPy's matmul."""

    params = (IMPLEMENTATIONS, ["128x784x100", "100x100x100", "256x1024x1024"],
              ["forward", "weight-grad", "input-grad"], DTYPES)
    param_names = ("implementation", "n_k_d", "gemm", "dtype")

    def setup(self, implementation, n_k_d, gemm, dtype):
        n, k, d = parse_shape(n_k_d)
        x, _ = batch(n, k, dtype)
        W = standard_normal((k, d), dtype, np.sqrt(2 / k))
        dz = standard_normal((n, d), dtype)
        a, b, out = {"forward": (x, W, np.empty((n, d), dtype)),
                     "weight-grad": (x.T, dz, np.empty((k, d), dtype)),
                     "input-grad": (dz, W.T, np.empty((n, k), dtype))}[gemm]
        if implementation == "fastnet":
            kernel = _compiled_gemm()
            self.run = lambda: kernel(a, b, out)
        else:
            self.run = lambda: np.matmul(a, b, out=out)
        self.run()

    def time_gemm(self, implementation, n_k_d, gemm, dtype):
        self.run()


class AffineForward:
    """``relu(x @ W + b)``: GEMM with bias and activation in its epilogue."""

    params = (IMPLEMENTATIONS, ["128x784x100", "100x100x100", "256x1024x1024"], DTYPES)
    param_names = ("implementation", "n_k_d", "dtype")

    def setup(self, implementation, n_k_d, dtype):
        n, k, d = parse_shape(n_k_d)
        x, _ = batch(n, k, dtype)
        W = standard_normal((k, d), dtype, np.sqrt(2 / k))
        b = standard_normal(d, dtype, 0.1)
        if implementation == "fastnet":
            kernel = _fused_affine("affine_act_forward", "affine_forward")
            args = bind(kernel, x=x, W=W, b=b, act=fastnet_api("fastnet.kernels.activations",
                                                               "RELU"),
                        out=np.empty((n, d), dtype))
            self.run = lambda: kernel(*args)
        else:
            from fastnet.reference import layers
            dense, relu = layers.Affine(W, b), layers.Relu()
            self.run = lambda: relu.forward(dense.forward(x))
        self.run()

    def time_affine_forward(self, implementation, n_k_d, dtype):
        self.run()


class AffineBackward:
    """ReLU gradient, ``db``, ``dW = x.T @ dz`` and ``dx = dz @ W.T``."""

    params = AffineForward.params
    param_names = AffineForward.param_names

    def setup(self, implementation, n_k_d, dtype):
        n, k, d = parse_shape(n_k_d)
        x, _ = batch(n, k, dtype)
        W = standard_normal((k, d), dtype, np.sqrt(2 / k))
        b = np.zeros(d, dtype)
        dout = standard_normal((n, d), dtype, 1e-2)
        if implementation == "fastnet":
            kernel = _fused_affine("affine_act_backward", "affine_backward")
            y = np.maximum(x @ W, 0)
            args = bind(kernel, dout=dout, x=x, W=W, y=y,
                        act=fastnet_api("fastnet.kernels.activations", "RELU"),
                        keep=np.empty(0, bool),  # no dropout mask
                        dz=np.empty((n, d), dtype), dW=np.empty((k, d), dtype),
                        db=np.empty(d, dtype), dx=np.empty((n, k), dtype))
            self.run = lambda: kernel(*args)
        else:
            from fastnet.reference import layers
            dense, relu = layers.Affine(W, b), layers.Relu()
            relu.forward(dense.forward(x))
            self.run = lambda: dense.backward(relu.backward(dout))
        self.run()

    def time_affine_backward(self, implementation, n_k_d, dtype):
        self.run()


class SoftmaxCrossEntropy:
    """Softmax, mean cross-entropy and its gradient (forward and backward of the loss)."""

    params = (IMPLEMENTATIONS, ["128x10", "1024x10", "256x1000"], DTYPES)
    param_names = ("implementation", "shape", "dtype")

    def setup(self, implementation, shape, dtype):
        n, c = parse_shape(shape)
        x = standard_normal((n, c), dtype, 3.0)
        labels = np.random.default_rng(0).integers(0, c, n)
        if implementation == "fastnet":
            kernel = fastnet_api("fastnet.kernels.softmax", "softmax_cross_entropy_grad")
            args = bind(kernel, x=x, labels=labels, scale=1.0 / n, dx=np.empty_like(x))
            self.run = lambda: kernel(*args)
        else:
            from fastnet.reference import layers
            loss = layers.SoftmaxWithLoss()

            def run():
                loss.forward(x, labels)
                loss.backward()
            self.run = run
        self.run()

    def time_softmax_cross_entropy(self, implementation, shape, dtype):
        self.run()


class BatchNorm:
    """Batch normalization in training mode: forward (statistics, running update,
    normalization) and backward."""

    params = (IMPLEMENTATIONS, ["100x100", "256x1024", "4096x1024"], DTYPES)
    param_names = ("implementation", "shape", "dtype")

    def setup(self, implementation, shape, dtype):
        n, d = parse_shape(shape)
        x = standard_normal((n, d), dtype, 2.0)
        dout = standard_normal((n, d), dtype, 1e-2)
        gamma, beta = np.ones(d, dtype), np.zeros(d, dtype)
        if implementation == "fastnet":
            forward_kernel = fastnet_api("fastnet.kernels.batchnorm", "batchnorm_forward_train")
            backward_kernel = fastnet_api("fastnet.kernels.batchnorm", "batchnorm_backward")
            named = {"x": x, "dout": dout, "gamma": gamma, "beta": beta,
                     "eps": fastnet_api("fastnet.layers", "BN_EPS"),
                     # older commits' batchnorm_forward_train takes an activation
                     "act": fastnet_api("fastnet.kernels.activations", "IDENTITY"),
                     "momentum": 0.9, "running_mean": np.zeros(d, dtype),
                     "running_var": np.zeros(d, dtype), "xn": np.empty_like(x),
                     "std": np.empty(d, dtype), "out": np.empty_like(x),
                     "dgamma": np.empty(d, dtype), "dbeta": np.empty(d, dtype),
                     "dx": np.empty_like(x)}
            forward = _pick(forward_kernel, x.size)
            backward = _pick(backward_kernel, x.size)
            forward_args = bind(forward_kernel, **named)
            backward_args = bind(backward_kernel, **named)
            self.forward = lambda: forward(*forward_args)
            self.backward = lambda: backward(*backward_args)
        else:
            from fastnet.reference import layers
            layer = layers.BatchNormalization(gamma, beta)
            self.forward = lambda: layer.forward(x, True)
            self.backward = lambda: layer.backward(dout)
        self.forward()
        self.backward()

    def time_batchnorm_forward(self, implementation, shape, dtype):
        self.forward()

    def time_batchnorm_backward(self, implementation, shape, dtype):
        self.backward()


class Dropout:
    """Dropout forward in training mode: counter-based uniforms, mask and product."""

    params = (IMPLEMENTATIONS, ["100x100", "256x1024", "4096x1024"], DTYPES)
    param_names = ("implementation", "shape", "dtype")

    def setup(self, implementation, shape, dtype):
        n, d = parse_shape(shape)
        x = standard_normal((n, d), dtype)
        if implementation == "fastnet":
            dropout_forward = fastnet_api("fastnet.kernels.dropout", "dropout_forward")
            stream_key = fastnet_api("fastnet.reference.random", "stream_key")
            kernel = _pick(dropout_forward, x.size)
            args = bind(dropout_forward, x=x.reshape(-1),
                        act=fastnet_api("fastnet.kernels.activations", "IDENTITY"),
                        key=stream_key(7, 0), ratio=0.2, scale=x.dtype.type(1),
                        mask=np.empty(x.size, bool),
                        out=np.empty(x.size, dtype))
            self.run = lambda: kernel(*args)
        else:
            from fastnet.reference import layers
            layer = layers.Dropout(0.2, seed=7)
            self.run = lambda: layer.forward(x, True)
        self.run()

    def time_dropout_forward(self, implementation, shape, dtype):
        self.run()
