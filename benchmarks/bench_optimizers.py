"""One optimizer step over the parameters of a headline net, gradients given.

Implementations:

* ``reference``: ``fastnet.reference.optimizers`` (NumPy, several passes per key);
* ``fastnet``: ``fastnet.optimizers`` ``update(params, grads)``, one fused pass per key;
* ``fastnet-flat``: ``update_flat`` over one contiguous arena, as ``train_step`` runs it;
* ``torch``: the matching ``torch.optim`` class (fused where supported), grads preset.

``params`` is the parameter set: ``mlp`` (784-100x4-10, 109,810 values) or ``wide``
(784-1024-1024-10, 1,863,690 values).
"""
import numpy as np

from .common import (
    INPUT_SIZE,
    OUTPUT_SIZE,
    fastnet_api,
    net_params,
    require_torch,
    torch_optimizer,
)

OPTIMIZERS = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"]
PARAM_SETS = {"mlp": [100] * 4, "wide": [1024, 1024]}

# The book's defaults, and the torch.optim call that does the same work.
HYPER = {"sgd": {"lr": 0.01}, "momentum": {"lr": 0.01, "momentum": 0.9},
         "nesterov": {"lr": 0.01, "momentum": 0.9}, "adagrad": {"lr": 0.01},
         "rmsprop": {"lr": 0.01, "decay_rate": 0.99}, "adam": {"lr": 0.001},
         "adamw": {"lr": 0.001, "weight_decay": 0.01}}
TORCH = {"sgd": ("SGD", {"lr": 0.01}),
         "momentum": ("SGD", {"lr": 0.01, "momentum": 0.9}),
         "nesterov": ("SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True}),
         "adagrad": ("Adagrad", {"lr": 0.01}),
         "rmsprop": ("RMSprop", {"lr": 0.01, "alpha": 0.99}),
         "adam": ("Adam", {"lr": 0.001}),
         "adamw": ("AdamW", {"lr": 0.001, "weight_decay": 0.01})}


class OptimizerUpdate:
    params = (OPTIMIZERS, ["reference", "fastnet", "fastnet-flat", "torch"], list(PARAM_SETS))
    param_names = ("optimizer", "implementation", "params")

    def setup(self, optimizer, implementation, param_set):
        params, grads = net_params(PARAM_SETS[param_set])
        if implementation == "torch":
            torch = require_torch()
            tensors = [torch.from_numpy(p) for p in params.values()]
            for tensor, grad in zip(tensors, grads.values()):
                tensor.grad = torch.from_numpy(grad)
            name, hyper = TORCH[optimizer]
            self.run = torch_optimizer(torch, name, tensors, **hyper).step
        else:
            package = "fastnet.reference" if implementation == "reference" else "fastnet"
            opt = fastnet_api(f"{package}.optimizers", "OPTIMIZERS")[optimizer](**HYPER[optimizer])
            if implementation != "fastnet-flat":
                self.run = lambda: opt.update(params, grads)
            elif not hasattr(opt, "update_flat"):
                raise NotImplementedError("this fastnet has no update_flat")
            else:  # the nets' arena: weights first (the decayed prefix)
                layout = fastnet_api("fastnet.arena", "NetLayout")(
                    INPUT_SIZE, PARAM_SETS[param_set], OUTPUT_SIZE)
                arena, grad_arena = np.empty(layout.size, np.float32), np.empty(layout.size, np.float32)
                for target, source in ((arena, params), (grad_arena, grads)):
                    for key, view in layout.params(target).items():
                        view[...] = source[key]
                self.run = lambda: opt.update_flat(arena, grad_arena, layout.views, 0.0,
                                                   layout.n_decayed)
        self.run()

    def time_update(self, optimizer, implementation, param_set):
        self.run()
