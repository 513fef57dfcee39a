"""The book's fully connected nets in plain NumPy: the oracle for ``fastnet.nets``.

The nets are the book's layer-by-layer nets of ``fastnet._book`` (arguments, weight
init, layers, passes; shared with ``fastnet.nets``, whose fused kernels are tested
against these) built from the NumPy layers of ``fastnet.reference.layers``.
"""
import numpy as np

from .. import _book
from . import layers as reference_layers

# The book's names, re-exported for the users of the reference
ACTIVATION_LAYERS = _book.ACTIVATION_LAYERS
NORMALIZATIONS = _book.NORMALIZATIONS
HE_NAMES = _book.HE_NAMES
XAVIER_NAMES = _book.XAVIER_NAMES


class MultiLayerNet(_book.LayerNet):
    __doc__ = _book.LayerNet.__doc__
    layers_module = reference_layers


class MultiLayerNetExtend(_book.LayerNetExtend):
    __doc__ = _book.LayerNetExtend.__doc__
    layers_module = reference_layers

    def estimate_population_statistics(self, x_train, batch_size):
        """Set batch norm's test-time statistics to the paper's population estimate
        (Ioffe and Szegedy 2015, Algorithm 2; the course notes' section 7.7).

        One pass over ``x_train`` in consecutive batches of ``m = batch_size`` rows,
        in training mode, collects each BatchNorm layer's batch mean and (biased) batch
        variance; then ``running_mean = mean of the batch means`` and ``running_var =
        m / (m - 1) * mean of the batch variances``, the unbiased estimate, replacing the
        running averages.  Only whole batches count (a last partial batch is left out,
        its variance would need another factor).  Dropout runs as in training: each
        Dropout layer draws one mask per batch and its ``step`` advances.  Weights,
        gammas and betas are not changed.  Errors: ValueError without batch norm, for
        ``batch_size`` < 2, or for fewer than ``batch_size`` samples.
        """
        x_train = np.asarray(x_train, dtype=self.dtype)
        n_batches = _book.population_batches(self.use_batchnorm, len(x_train), batch_size)
        batchnorms = {key: layer for key, layer in self.layers.items()
                      if key.startswith("BatchNorm")}
        means = {key: [] for key in batchnorms}
        variances = {key: [] for key in batchnorms}
        for i in range(n_batches):
            h = x_train[i * batch_size:(i + 1) * batch_size]
            for key, layer in self.layers.items():
                if key in batchnorms:
                    means[key].append(h.mean(axis=0))
                    variances[key].append(h.var(axis=0))
                if key.startswith(("Dropout", "BatchNorm")):
                    h = layer.forward(h, True)
                else:
                    h = layer.forward(h)
        m = batch_size
        for key, layer in batchnorms.items():
            layer.running_mean = np.mean(means[key], axis=0).astype(self.dtype)
            layer.running_var = (m / (m - 1) * np.mean(variances[key], axis=0)).astype(self.dtype)
