"""The JIT cache: built once, under a lock, into the user's cache for a read-only install."""
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import fastnet

STEP = """
import numpy as np
from fastnet.nets import MultiLayerNet
from fastnet.optimizers import Adam
net = MultiLayerNet(6, [5], 3, seed=0)
net.train_step(np.ones((4, 6), np.float32), np.arange(4) % 3, Adam())
print("ok")
"""


@pytest.mark.slow
def test_read_only_install_compiles_once_into_user_cache(tmp_path):
    install = tmp_path / "site"
    shutil.copytree(Path(fastnet.__file__).parent, install / "fastnet",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    for package in [install / "fastnet", *(install / "fastnet").rglob("*/")]:
        # A file where __pycache__ would go: not writable even for root, who ignores
        # the mode bits cleared below.
        (package / "__pycache__").write_text("")
    for path in [install, *install.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "FASTNET_"))}
    env.update(PYTHONPATH=str(install), HOME=str(home), XDG_CACHE_HOME=str(home / "cache"),
               PYTHONDONTWRITEBYTECODE="1")

    children = [subprocess.Popen([sys.executable, "-c", STEP], env=env, cwd=home,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
    outputs = [child.communicate(timeout=600) for child in children]

    for child, (out, err) in zip(children, outputs):
        assert child.returncode == 0, err
        assert out.strip() == "ok"
    compiled = sum("compiling kernels" in err for _, err in outputs)
    assert compiled == 1, "exactly one process compiles; the other waits for its cache"
    stamps = list((home / "cache").rglob("fastnet-*.built"))
    assert len(stamps) == 1
    assert list((home / "cache").rglob("*.nbi")), "kernels cached in the user cache folder"
    assert not list(install.rglob("*.nbi")), "nothing written into the read-only install"
    for path in [install, *install.rglob("*")]:  # let pytest clean up
        path.chmod(path.stat().st_mode | stat.S_IWUSR)

    warm = subprocess.run([sys.executable, "-c", STEP], env=env, cwd=home, capture_output=True,
                          text=True, timeout=600)
    assert warm.returncode == 0 and "compiling kernels" not in warm.stderr


def test_a_new_build_compiles_every_kernel_afresh(tmp_path, monkeypatch):
    """Numba checks a cached kernel against its own module only: a kernel whose module
    did not change but whose callee in another module did must not be loaded as cached.
    So a build (new kernel sources, new stamp) first drops every cached kernel."""
    from fastnet.kernels import _warmup

    monkeypatch.setattr(_warmup, "_cache_dir", lambda: str(tmp_path))
    monkeypatch.setattr(_warmup, "compile_all", lambda dtype: None)
    monkeypatch.delenv("NUMBA_DISABLE_JIT", raising=False)
    for name in ("network.mlp_train_step-40.py311.nbi", "network.mlp_train_step-40.py311.1.nbc",
                 "fastnet-0.0.1-0123456789ab-numba-0.1-py311.built"):
        (tmp_path / name).write_text("")
    _warmup.ensure_built()
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        ["fastnet-jit.lock", Path(_warmup._stamp_path()).name])
