"""The real-data test: the book's batch-norm net on real MNIST digits, fastnet and the
NumPy reference side by side.

``FASTNET_MNIST_DIR`` names a folder holding the real MNIST test digits
(``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``).  The first 8,000 train,
the last 2,000 are held out.  MultiLayerNetExtend(784, [100] * 4, 10, batch norm),
Adam lr 0.001, batches of 128, 15 epochs, through each package's Trainer.
"""
import os
from pathlib import Path

import numba
import numpy as np
import pytest
import scipy.linalg  # noqa: F401  (load every BLAS compiled code may call, before limiting it)
import threadpoolctl

from fastnet import nets as fast_nets
from fastnet import trainer as fast_trainer
from fastnet.datasets import load_idx
from fastnet.reference import nets as reference_nets
from fastnet.reference import trainer as reference_trainer

IMAGES, LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
EPOCHS, BATCH, SEED = 15, 128, 0
TARGET = 0.955

# Two 15-epoch trainings: about 10 s on one core.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits():
    folder = os.environ.get("FASTNET_MNIST_DIR")
    if not folder:
        pytest.skip("FASTNET_MNIST_DIR is not set: point it at a folder with the real MNIST "
                    f"test digits ({IMAGES}, {LABELS}) to run the real-data test")
    folder = Path(folder)
    missing = [name for name in (IMAGES, LABELS) if not (folder / name).is_file()]
    assert not missing, f"FASTNET_MNIST_DIR={folder} lacks {missing}"
    images, labels = load_idx(folder / IMAGES), load_idx(folder / LABELS)
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    x = images.reshape(len(images), -1).astype(np.float32) / np.float32(255)
    t = labels.astype(np.int64)
    return (x[:8000], t[:8000]), (x[-2000:], t[-2000:])


def train(nets, trainer_module, digits):
    """Per-epoch held-out accuracies (after each epoch's last step) and the trainer."""
    (x_train, t_train), (x_check, t_check) = digits
    net = nets.MultiLayerNetExtend(784, [100] * 4, 10, use_batchnorm=True, seed=SEED)
    trainer = trainer_module.Trainer(net, x_train, t_train, x_check, t_check, epochs=EPOCHS,
                                     mini_batch_size=BATCH, optimizer="Adam",
                                     optimizer_param={"lr": 0.001}, verbose=False, seed=SEED)
    # 62.5 steps per epoch: epoch e ends after round-down((e + 1) * 62.5) steps.
    epoch_ends = {int((e + 1) * trainer.iter_per_epoch) for e in range(EPOCHS)}
    assert max(epoch_ends) == trainer.max_iter
    curve = []
    for step in range(1, trainer.max_iter + 1):
        trainer.train_step()
        if step in epoch_ends:
            curve.append(float(net.accuracy(x_check, t_check)))
    assert net.params["W1"].dtype == np.float32
    return np.array(curve), trainer


@pytest.fixture(scope="module")
def curves(digits):
    # One thread for BLAS and Numba.  The numbers do not depend on it (see
    # test_determinism), and on a busy 2-core machine two spinning BLAS threads were
    # measured to make each step 20-30 times slower.
    threads = numba.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        numba.set_num_threads(1)
        try:
            return {"fastnet": train(fast_nets, fast_trainer, digits),
                    "reference": train(reference_nets, reference_trainer, digits)}
        finally:
            numba.set_num_threads(threads)


def describe(curves):
    return "; ".join(f"{name}: {np.round(curve, 4).tolist()}" for name, (curve, _) in curves.items())


def test_fastnet_reaches_the_target_accuracy(curves):
    curve, trainer = curves["fastnet"]
    assert len(curve) == EPOCHS
    assert len(trainer.train_loss_list) == trainer.max_iter
    assert np.isfinite(trainer.train_loss_list).all()
    assert max(curve) >= TARGET, describe(curves)
    assert curve[-1] >= TARGET - 0.01, describe(curves)  # no collapse at the end


def test_fastnet_and_reference_learning_curves_agree(curves):
    fast, fast_trainer_run = curves["fastnet"]
    ref, ref_trainer_run = curves["reference"]
    assert max(ref) >= TARGET, describe(curves)
    assert np.abs(fast - ref).max() <= 0.01, describe(curves)
    # The trainers' own records (start of every other epoch at 62.5 steps per epoch).
    assert len(fast_trainer_run.test_acc_list) == len(ref_trainer_run.test_acc_list) == 8
    np.testing.assert_allclose(fast_trainer_run.test_acc_list, ref_trainer_run.test_acc_list,
                               atol=0.01)
    np.testing.assert_allclose(fast_trainer_run.train_acc_list, ref_trainer_run.train_acc_list,
                               atol=0.01)
