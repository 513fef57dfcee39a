"""Issue 11's normalization layers in ``fastnet bench``: one training-mode forward +
backward of a layer on float32 input, per implementation.

A workload is a layer on one input shape, ``norm-<layer>-<shape>`` (``NORM_LAYERS``):
layer, group (4 groups), instance (4-D only), switchable, weight (an Affine of the
input's flattened width to the same width) and, for reference, the book's batch norm,
each on (128, 100) and (64, 16, 8, 8).  Every builder returns a zero-argument function,
one call of which is one timed forward + backward:

* ``layer_step``: the layer class of ``fastnet.layers`` or of ``fastnet.reference.layers``;
* ``torch_layer_step``: the torch module a torch user would write (``TORCH_MODULES``),
  the input's gradient wanted, parameter gradients reset to None each step as
  ``zero_grad(set_to_none=True)`` does; torch has no switchable normalization;
* ``copy_step``: ``np.copyto`` of x into y and of dout into dx, arrays of the layer's
  input size: the least any forward + backward moves (read x, write y, read dout,
  write dx);
* ``affine_step`` (weight norm only): fastnet's plain ``Affine`` with the same weight,
  the GEMMs weight normalization adds its work to.

The net of the issue, 784-100x5-10 with layer norm, is ``ln-sgd`` in ``workloads.NETS``.
"""
import importlib
import math
from dataclasses import dataclass

import numpy as np

SHAPES = {"128x100": (128, 100), "64x16x8x8": (64, 16, 8, 8)}
GROUPS = 4


@dataclass(frozen=True)
class NormSpec:
    """One normalization layer on one float32 input shape."""

    layer: str      # batch, layer, group, instance, switchable or weight
    shape: tuple

    @property
    def width(self):
        """Features of a flattened sample: the weight-normalized Affine's width."""
        return math.prod(self.shape[1:])

    def describe(self):
        what = {"batch": "BatchNormalization (the book's, per feature)",
                "layer": "LayerNormalization", "group": f"GroupNormalization({GROUPS} groups)",
                "instance": "InstanceNormalization", "switchable": "SwitchableNormalization",
                "weight": f"WeightNormalization (Affine {self.width}->{self.width})"}[self.layer]
        shape = ", ".join(map(str, self.shape))
        return f"{what}, forward + backward (training) on ({shape}) float32"


NORM_LAYERS = {f"norm-{layer}-{text}": NormSpec(layer, shape)
               for layer in ("layer", "group", "instance", "switchable", "weight", "batch")
               for text, shape in SHAPES.items()
               if not (layer == "instance" and len(shape) == 2)}  # instance norm needs H, W


def norm_data(spec, seed=0):
    """The input and the upstream gradient (shaped like the output) of ``spec``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(spec.shape, dtype=np.float32)
    out_shape = (spec.shape[0], spec.width) if spec.layer == "weight" else spec.shape
    dout = rng.standard_normal(out_shape, dtype=np.float32) * np.float32(1e-2)
    return x, dout


def _weight(spec, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((spec.width, spec.width), dtype=np.float32)
            * np.float32(math.sqrt(2 / spec.width)))


def _make_layer(layers, spec):
    if spec.layer == "weight":
        ones = np.ones(spec.width, np.float32)
        return layers.WeightNormalization(_weight(spec), ones, np.zeros_like(ones))
    # the book's batch norm has a gamma per feature of the flattened sample, the others
    # one per channel
    width = spec.width if spec.layer == "batch" else spec.shape[1]
    gamma, beta = np.ones(width, np.float32), np.zeros(width, np.float32)
    if spec.layer == "group":
        return layers.GroupNormalization(gamma, beta, GROUPS)
    cls = {"batch": layers.BatchNormalization, "layer": layers.LayerNormalization,
           "instance": layers.InstanceNormalization,
           "switchable": layers.SwitchableNormalization}[spec.layer]
    return cls(gamma, beta)


def layer_step(spec, x, dout, package="fastnet"):
    """Forward (training) and backward of the layer class of ``package``'s ``layers``
    (``fastnet`` or ``fastnet.reference``)."""
    layer = _make_layer(importlib.import_module(f"{package}.layers"), spec)
    if spec.layer == "weight":  # an Affine: forward(x) has no train_flg
        def step():
            layer.forward(x)
            layer.backward(dout)
    else:
        def step():
            layer.forward(x, True)
            layer.backward(dout)
    return step


def affine_step(spec, x, dout):
    """fastnet's plain Affine with the weight-normalized layer's shapes."""
    from fastnet.layers import Affine

    layer = Affine(_weight(spec), np.zeros(spec.width, np.float32))

    def step():
        layer.forward(x)
        layer.backward(dout)
    return step


def copy_step(x, dout):
    """``np.copyto`` of x and of dout: read x, write y, read dout, write dx."""
    y, dx = np.empty_like(x), np.empty_like(dout)
    copyto = np.copyto

    def step():
        copyto(y, x)
        copyto(dx, dout)
    return step


# --------------------------------------------------------------------------- torch

def _torch_module(torch, spec):
    """The torch module of ``spec`` and a note on it (see ``has_torch_module``)."""
    nn = torch.nn
    channels = spec.shape[1]
    if spec.layer == "batch":
        return (nn.BatchNorm1d(spec.width, eps=1e-6, momentum=0.1),
                f"nn.BatchNorm1d({spec.width}) on the flattened input")
    if spec.layer == "layer":
        normalized = tuple(spec.shape[1:])
        note = f"nn.LayerNorm({normalized})"
        if len(normalized) > 1:
            note += ": gamma, beta per element, fastnet's per channel"
        return nn.LayerNorm(normalized, eps=1e-6), note
    if spec.layer == "group":
        return nn.GroupNorm(GROUPS, channels, eps=1e-6), f"nn.GroupNorm({GROUPS}, {channels})"
    if spec.layer == "instance":
        return (nn.InstanceNorm2d(channels, eps=1e-6, affine=True),
                f"nn.InstanceNorm2d({channels}, affine=True)")
    if spec.layer == "weight":
        linear = nn.Linear(spec.width, spec.width)
        return (nn.utils.parametrizations.weight_norm(linear),
                f"parametrizations.weight_norm(nn.Linear({spec.width}, {spec.width}))")
    raise ValueError(f"torch has no module for {spec.layer} normalization")


def has_torch_module(spec):
    """Whether torch has a module for ``spec``'s layer (it has no switchable norm)."""
    return spec.layer != "switchable"


def torch_layer_step(torch, spec):
    """torch's forward + backward of ``spec`` (dx wanted; gradients reset to None each
    step) and a note on the module."""
    torch.manual_seed(0)
    module, note = _torch_module(torch, spec)
    module.train()
    x, dout = norm_data(spec)
    if spec.layer in ("batch", "weight"):  # modules of (N, features)
        x, dout = (a.reshape(spec.shape[0], spec.width) for a in (x, dout))
    xt, dt = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(dout)
    params = list(module.parameters())

    def step():
        xt.grad = None
        for p in params:
            p.grad = None
        module(xt).backward(dt)
    return step, note
