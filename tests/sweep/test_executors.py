"""Local workers that cannot start stop the sweep with one line saying why, instead of
hanging it: each case is a real script run in a subprocess with a timeout, so that a
regression fails rather than hangs."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fastnet.sweep import executors

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120  # seconds; each script ends in a few when it works

DATA = """
import numpy as np
from fastnet import sweep
rng = np.random.default_rng(0)
x, t = rng.random((64, 784), dtype=np.float32), rng.integers(0, 10, 64)
data = ((x, t), (x[:16], t[:16]))
space = {"lr": sweep.log_uniform(1e-3, 1e-1), "epochs": 1, "hidden_size_list": [10]}
"""


def run_script(tmp_path, body):
    """``body`` (after ``DATA``) run as a script: its exit status and last stderr line."""
    script = tmp_path / "script.py"
    script.write_text(DATA + textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, check=False,
                          capture_output=True, text=True, timeout=TIMEOUT)
    lines = done.stderr.strip().splitlines()
    return done.returncode, lines[-1] if lines else "", script


def test_a_script_without_main_guard_stops_with_what_to_do(tmp_path):
    db = tmp_path / "sweep.db"
    code, last, script = run_script(tmp_path, f"""
        sweep.run(space, 2, data, db={str(db)!r}, workers=2, threads_per_worker=1,
                  progress=False)
        """)
    assert code == 1
    assert last.startswith("fastnet.sweep.executors.WorkersDidNotStart: "), last
    assert f"{script} starts the sweep when imported" in last
    assert 'under `if __name__ == "__main__":`' in last
    assert "Safe importing of main module" in last
    assert not db.exists()  # the workers start before the store is opened


def test_an_initializer_that_raises_stops_with_its_error(tmp_path):
    code, last, _ = run_script(tmp_path, """
        from fastnet.sweep import executors
        if __name__ == "__main__":
            spec = {"dataset": "no-such-set", "train_size": 10, "validation": 5,
                    "train_eval": None, "split_seed": 0}
            executors.LocalExecutor(spec, np.dtype(np.float32), "fastnet", workers=2)
        """)
    assert code == 1
    assert last == ("fastnet.sweep.executors.WorkersDidNotStart: the sweep's worker "
                    "processes could not start: loading the data or setting their threads "
                    "raised ValueError: unknown dataset 'no-such-set'; choose one of "
                    "['fashion-mnist', 'mnist']")


def test_a_worker_killed_while_it_starts_stops_with_the_signal(tmp_path):
    code, last, _ = run_script(tmp_path, """
        import os, signal
        from fastnet.sweep import executors

        def die():
            os.kill(os.getpid(), signal.SIGKILL)

        class KilledWhenUnpickled:
            def __reduce__(self):
                return die, ()

        if __name__ == "__main__":
            spec = {"dataset": KilledWhenUnpickled()}
            executors.LocalExecutor(spec, np.dtype(np.float32), "fastnet", workers=2)
        """)
    assert code == 1
    assert last == ("fastnet.sweep.executors.WorkersDidNotStart: a worker process of the "
                    "sweep was killed by SIGKILL before it was ready to train (its own "
                    "error, if any, is printed above)")


def test_only_a_process_importing_its_parents_main_module_exits():
    executors.exit_if_importing_main()  # this one is not: nothing happens


def test_a_dask_scheduler_that_does_not_answer_is_named():
    """Not the sweep file's fault (the CLI prefixes an OSError with --db): a
    ConnectionError naming the scheduler."""
    pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), \
            pytest.raises(ConnectionError,
                          match="cannot connect to the Dask scheduler at tcp://127.0.0.1:1: "):
        executors.DaskExecutor({"dataset": "mnist"}, "float32", "fastnet",
                               scheduler="tcp://127.0.0.1:1")
