"""The JIT cache: lazy, locked across processes, stamped by the kernels' sources, built
ahead of time on request, and optional where no folder is writable."""
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import filelock
import numpy as np
import pytest

import fastnet
from fastnet import cache
from fastnet.kernels import jit, softmax

ROOT = Path(fastnet.__file__).parent.parent

# A child that reports which fastnet kernels it compiled (not loaded from the cache).
REPORT_COMPILED = """
import sys
from numba.core import event
from fastnet.kernels import jit

class Report(event.Listener):
    def on_start(self, ev):
        if ev.data["dispatcher"] in jit.KERNELS:
            print("compiled", ev.data["dispatcher"].py_func.__qualname__, ev.data["args"])
    def on_end(self, ev):
        pass

event.register("numba:compile", Report())
"""

STEP = REPORT_COMPILED + """
import numpy as np
from fastnet.nets import MultiLayerNet
from fastnet.optimizers import Adam
net = MultiLayerNet(6, [5], 3, seed=0)
net.train_step(np.ones((4, 6), np.float32), np.arange(4) % 3, Adam())
print("ok")
"""


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "FASTNET_"))}
    env.update(PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


POPULATION_STEPS = """
import numpy as np
from fastnet.population import Population
pop = Population(4, [3], 2, [{"seed": 0}, {"seed": 1, "lr": 0.1}], "Momentum")
x, t = np.ones((5, 4), np.float32), np.arange(5) % 2
pop.train_step(x, t)
pop.train_step(np.stack([x, x]), np.stack([t, t]))
pop.train_step(x, t, rows=np.array([[0, 1], [2, 3]]))
pop.accuracy(x, t)
"""

NORMALIZATION_STEPS = """
import numpy as np
from fastnet.nets import MultiLayerNetExtend
from fastnet.optimizers import Adam, SGD
from fastnet.population import Population
x, t = np.ones((5, 4), np.float32), np.arange(5) % 2
pop = Population(4, [4], 2, [{"seed": 0}], "Adam", use_dropout=True, normalization="layer")
pop.train_step(x, t)
pop.loss(x, t)
for normalization in ("batch", "layer", "group", "instance", "weight", "switchable"):
    net = MultiLayerNetExtend(4, [4], 2, normalization=normalization, seed=0)
    net.train_step(x, t, Adam())
    net.train_step(x, t, SGD())
    net.predict(x)
    net.accuracy(x, t)
"""


def compiled(stdout):
    return {line for line in stdout.splitlines() if line.startswith("compiled ")}


def run(code, env, cwd, timeout=600):
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def read_only_copy(tmp_path):
    """fastnet copied into a folder where nothing can be written, even by root."""
    install = tmp_path / "site"
    shutil.copytree(ROOT / "fastnet", install / "fastnet",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    for package in [install / "fastnet", *(install / "fastnet").rglob("*/")]:
        # A file where __pycache__ would go: not writable even for root, who ignores
        # the mode bits cleared below.
        (package / "__pycache__").write_text("")
    for path in [install, *install.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return install


def make_writable(install):
    for path in [install, *install.rglob("*")]:  # let pytest clean up
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


@pytest.mark.slow
def test_read_only_install_caches_in_the_user_folder_each_kernel_compiled_once(tmp_path):
    install = read_only_copy(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(PYTHONPATH=str(install), HOME=str(home), XDG_CACHE_HOME=str(home / "cache"))

    children = [subprocess.Popen([sys.executable, "-c", STEP], env=env, cwd=home,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
    outputs = [child.communicate(timeout=600) for child in children]
    make_writable(install)

    for child, (out, err) in zip(children, outputs):
        assert child.returncode == 0, err
        assert out.splitlines()[-1] == "ok"
    first, second = (compiled(out) for out, _ in outputs)
    assert first or second
    assert not first & second, "a kernel compiled by one process is loaded by the other"
    assert sum("compiling kernels" in err for _, err in outputs) == bool(first) + bool(second)
    assert len(list((home / "cache").rglob("fastnet-*.built"))) == 1
    assert list((home / "cache").rglob("*.nbi")), "kernels cached in the user cache folder"
    assert not list(install.rglob("*.nbi")), "nothing written into the read-only install"

    warm = run(STEP, env, home)
    assert warm.returncode == 0 and not compiled(warm.stdout)
    assert "compiling kernels" not in warm.stderr


@pytest.mark.slow
def test_without_a_writable_cache_kernels_compile_in_process_with_one_warning(tmp_path):
    install = read_only_copy(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    (home / "cache").write_text("")  # a file where the user cache folder would go
    env = clean_env(PYTHONPATH=str(install), HOME=str(home), XDG_CACHE_HOME=str(home / "cache"))
    result = run(STEP, env, home)
    make_writable(install)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "ok"
    assert result.stderr.count("NUMBA_CACHE_DIR") == 1, result.stderr
    assert "compiling kernels on first use (not cached)" in result.stderr


def test_a_process_waits_for_the_cache_lock_before_compiling(tmp_path):
    env = clean_env(NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    found = run("from fastnet.kernels import jit; print(jit.cache_dir())", env, tmp_path)
    folder = Path(found.stdout.strip())
    assert folder.is_relative_to(tmp_path / "numba"), found.stderr
    code = REPORT_COMPILED + """
import numpy as np
from fastnet.kernels import softmax
softmax.softmax(np.ones((2, 3)), np.empty((2, 3)))
print("done")
"""
    folder.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(folder / jit.LOCK_NAME):
        child = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=tmp_path,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        assert child.poll() is None, "the child compiled while another process held the lock"
        assert not list(folder.glob("*.nbi"))
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0 and out.splitlines()[-1] == "done", err
    assert compiled(out) and list(folder.glob("softmax.softmax-*.nbi"))
    assert Path(jit.stamp_path(str(folder))).name in os.listdir(folder)


@pytest.mark.slow
def test_a_process_started_before_a_source_edit_leaves_no_stale_kernel(tmp_path):
    """A long-running process compiles the sources it imported, under their stamp; a
    process of the edited sources then compiles afresh rather than loading those."""
    install = tmp_path / "site"
    shutil.copytree(ROOT / "fastnet", install / "fastnet",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    env = clean_env(PYTHONPATH=str(install), NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    go = tmp_path / "go"
    loss = """
import os, sys, time
import numpy as np
from fastnet.nets import MultiLayerNet
from fastnet.optimizers import SGD
while len(sys.argv) > 1 and not os.path.exists(sys.argv[1]):
    time.sleep(0.1)
net = MultiLayerNet(6, [5], 3, seed=0)
print(net.train_step(np.ones((4, 6), np.float32), np.arange(4) % 3, SGD()))
"""
    old = subprocess.Popen([sys.executable, "-c", loss, str(go)], env=env, cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(5)  # imported, waiting
    softmax_py = install / "fastnet" / "kernels" / "softmax.py"
    source = softmax_py.read_text()
    assert "    return loss / x.shape[0]\n" in source
    softmax_py.write_text(source.replace("    return loss / x.shape[0]\n",
                                         "    return 1000.0 + loss / x.shape[0]\n"))
    go.write_text("")
    out, err = old.communicate(timeout=600)
    assert old.returncode == 0, err
    new = run(loss, env, tmp_path)
    assert new.returncode == 0, new.stderr
    assert float(new.stdout) == pytest.approx(float(out) + 1000.0)


def test_a_cache_of_other_sources_is_emptied_before_the_first_compilation(tmp_path, monkeypatch):
    """Numba checks a cached kernel against its own module only: a kernel whose module
    did not change but whose callee in another module did must not be loaded as cached.
    So under a new stamp (other kernel sources, another version) the first compilation
    drops every cached kernel and stamp first."""
    monkeypatch.setattr(jit._upstream, "numba_cache_dir", lambda dispatcher: str(tmp_path))
    stale = ["network.mlp_train_step-40.py311.nbi", "network.mlp_train_step-40.py311.1.nbc",
             "fastnet-0.0.1-0123456789ab-numba-0.1-py311.built"]
    for name in stale:
        (tmp_path / name).write_text("")
    with jit._locked_cache(softmax.softmax):
        pass
    current = Path(jit.stamp_path(str(tmp_path))).name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([jit.LOCK_NAME, current])

    (tmp_path / "softmax.softmax-33.py311.nbi").write_text("")  # cached under this stamp
    with jit._locked_cache(softmax.softmax):
        pass
    assert (tmp_path / "softmax.softmax-33.py311.nbi").exists()


@pytest.mark.slow
def test_cache_build_compiles_what_the_cli_and_the_classes_use(tmp_path):
    env = clean_env(NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    cli = [sys.executable, "-m", "fastnet"]
    built = subprocess.run([*cli, "cache", "build"], env=env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=900)
    assert built.returncode == 0, built.stderr
    assert "current" in built.stdout and "compiling kernels" in built.stderr

    again = run(REPORT_COMPILED + "from fastnet import cache; cache.build()", env, tmp_path)
    assert again.returncode == 0 and not compiled(again.stdout), again.stdout
    # another architecture and optimizer than the build's population: the same kernels
    population = run(REPORT_COMPILED + POPULATION_STEPS, env, tmp_path)
    assert population.returncode == 0 and not compiled(population.stdout), population.stdout
    # every normalization and a layer-norm population
    normalized = run(REPORT_COMPILED + NORMALIZATION_STEPS, env, tmp_path)
    assert normalized.returncode == 0 and not compiled(normalized.stdout), normalized.stdout
    mnist = os.environ.get("FASTNET_MNIST_DIR")
    if not mnist:
        pytest.skip("FASTNET_MNIST_DIR is not set: `fastnet train` after the build not run")
    for flags in (["--dtype", "float64", "--batchnorm", "--dropout", "0.2", "--optimizer",
                   "adam", "--weight-decay", "0.01"],
                  ["--activation", "tanh", "--optimizer", "momentum", "--batch-size", "2048"],
                  []):
        result = subprocess.run([*cli, "train", *flags, "--epochs", "1", "--train-size", "3000",
                                 "--test-size", "100", "--data-dir", mnist],
                                env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        assert "compiling kernels" not in result.stderr, flags


def test_cache_info_and_build_errors():
    state = cache.info()
    assert set(state) == {"jit", "folder", "current", "files", "bytes"}
    with pytest.raises(TypeError, match="dtype must be float32 or float64, got int32"):
        cache.build([np.int32])


def test_with_the_jit_disabled_kernels_run_as_python_silently_and_the_cache_says_so(tmp_path):
    """``NUMBA_DISABLE_JIT=1``: dropout's uint64 hash wraps without NumPy's overflow
    warning (an error under ``-W error``) and draws the compiled kernel's mask; ``fastnet
    cache`` says that nothing is compiled rather than asking for a cache folder."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    script = ("import numpy as np, sys; from fastnet import layers; "
              "x = np.arange(1.0, 61.0).reshape(6, 10); "
              "np.save(sys.argv[1], layers.Dropout(0.5, seed=3).forward(x))")
    subprocess.run([sys.executable, "-W", "error", "-c", script, tmp_path / "y.npy"],
                   env=env, check=True, timeout=120)
    x = np.arange(1.0, 61.0).reshape(6, 10)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"),
                                  fastnet.layers.Dropout(0.5, seed=3).forward(x))
    cli = [sys.executable, "-W", "error", "-m", "fastnet", "cache"]
    info = subprocess.run([*cli, "info"], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert info.returncode == 0, info.stderr
    assert info.stdout.strip() == ("no cache: NUMBA_DISABLE_JIT=1 runs the kernels as "
                                   "Python, uncompiled")
    build = subprocess.run([*cli, "build"], env=env, capture_output=True, text=True,
                           timeout=120, check=False)
    assert build.returncode != 0
    assert "nothing to build: NUMBA_DISABLE_JIT=1" in build.stderr
