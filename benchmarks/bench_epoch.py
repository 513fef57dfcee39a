"""One epoch end to end: the book's ``Trainer`` on MNIST-shaped data.

60,000 training and 10,000 test images of 784 float32 pixels (random, so nothing is
downloaded), MultiLayerNet 784-100x4-10, mini-batch 100, accuracies on 1,000 samples
at the start of the epoch and on the whole test set at the end, as ``Trainer`` does.
``torch`` runs the same loop by hand (shuffled slices, the same evaluations).
"""
import numpy as np

from .common import INPUT_SIZE, OUTPUT_SIZE, require_torch, torch_model, torch_optimizer

N_TRAIN, N_TEST, BATCH, HIDDEN, EVAL_SAMPLES = 60_000, 10_000, 100, [100] * 4, 1_000
OPTIMIZER_PARAMS = {"sgd": ("SGD", {"lr": 0.01}), "adam": ("Adam", {"lr": 0.001})}


def mnist_shaped(seed=0):
    rng = np.random.default_rng(seed)
    x_train = rng.random((N_TRAIN, INPUT_SIZE), dtype=np.float32)
    x_test = rng.random((N_TEST, INPUT_SIZE), dtype=np.float32)
    return (x_train, rng.integers(0, OUTPUT_SIZE, N_TRAIN),
            x_test, rng.integers(0, OUTPUT_SIZE, N_TEST))


class TrainerEpoch:
    params = (["reference", "fastnet", "torch"], list(OPTIMIZER_PARAMS))
    param_names = ("implementation", "optimizer")
    number = 1
    repeat = (1, 5, 30.0)
    warmup_time = 0
    timeout = 600

    def setup(self, implementation, optimizer):
        data = mnist_shaped()
        name, hyper = OPTIMIZER_PARAMS[optimizer]
        if implementation == "torch":
            self.run = self._torch_epoch(data, name, hyper)
            return
        if implementation == "fastnet":
            from fastnet import nets, trainer
        else:
            from fastnet.reference import nets, trainer
        net = nets.MultiLayerNet(INPUT_SIZE, HIDDEN, OUTPUT_SIZE, seed=0)
        self.trainer = trainer.Trainer(net, *data, epochs=1, mini_batch_size=BATCH,
                                       optimizer=name, optimizer_param=hyper,
                                       evaluate_sample_num_per_epoch=EVAL_SAMPLES,
                                       verbose=False, seed=0)
        self.trainer.train_step()  # compile, allocate the workspaces
        self.run = self.trainer.train

    def _torch_epoch(self, data, name, hyper):
        torch = require_torch()
        torch.manual_seed(0)
        x_train, t_train, x_test, t_test = (torch.from_numpy(a) for a in data)
        model = torch_model(torch, HIDDEN)
        optimizer = torch_optimizer(torch, name, model.parameters(), **hyper)
        loss_fn = torch.nn.functional.cross_entropy
        generator = torch.Generator().manual_seed(0)

        def accuracy(x, t):
            with torch.no_grad():
                model.eval()
                hits = (model(x).argmax(1) == t).float().mean().item()
                model.train()
            return hits

        def epoch():
            pick = torch.randperm(N_TRAIN, generator=generator)[:EVAL_SAMPLES]
            accuracy(x_train[pick], t_train[pick])
            accuracy(x_test[pick % N_TEST], t_test[pick % N_TEST])
            order = torch.randperm(N_TRAIN, generator=generator)
            for start in range(0, N_TRAIN - BATCH + 1, BATCH):
                rows = order[start:start + BATCH]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(x_train[rows]), t_train[rows])
                loss.backward()
                optimizer.step()
                loss.item()  # the Trainer records every loss as a Python float
            accuracy(x_test, t_test)
        return epoch

    def time_epoch(self, implementation, optimizer):
        self.run()
