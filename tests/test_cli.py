"""``fastnet train`` (save, load, refusals), argument errors and the ``bench`` hand-off.

Uses the data fixtures of test_experiments.py: a small fake MNIST, or the real test
digits where ``$FASTNET_MNIST_DIR`` is set.
"""
import io
import re
import subprocess
import sys

import numpy as np
import pytest
import test_experiments

from fastnet.cli import main

# The data fixtures (``offline`` is autouse) and the fake-MNIST writer.
mnist_dir, offline = test_experiments.mnist_dir, test_experiments.offline
write_fake_mnist = test_experiments.write_fake_mnist

SMALL = ["--hidden", "20,20", "--epochs", "2", "--train-size", "300", "--test-size", "100"]


def train(capsys, data_dir, *options):
    """Run ``fastnet train``; return its exit status, stdout and stderr."""
    status = main(["train", "--data-dir", str(data_dir), *SMALL, *options])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def final_accuracies(stdout):
    match = re.search(r"final: train acc ([\d.]+), test acc ([\d.]+)", stdout)
    return float(match[1]), float(match[2])


# The nets of the round trips (hidden 20,20): the options, how the net line describes
# the normalization, the file's format and normalization entry (None in version 1).
TRAINED_NETS = [
    ([], "relu, float32", "fastnet-mlp/1", None),
    (["--batchnorm", "--dropout", "0.2", "--dtype", "float64", "--optimizer", "adam"],
     "relu, batch norm, dropout 0.2, float64", "fastnet-mlp/1", None),
    (["--normalization", "batch"], "relu, batch norm, float32", "fastnet-mlp/1", None),
    (["--normalization", "layer", "--dropout", "0.2"], "relu, layer norm, dropout 0.2",
     "fastnet-mlp/2", "layer"),
    (["--normalization", "group", "--groups", "4", "--activation", "tanh"],
     "tanh, group norm (4 groups), float32", "fastnet-mlp/2", "group"),
    (["--normalization", "instance", "--groups", "5", "--dtype", "float64"],
     "relu, instance norm (5 channels), float64", "fastnet-mlp/2", "instance"),
    (["--normalization", "weight", "--optimizer", "adam"], "relu, weight norm, float32",
     "fastnet-mlp/2", "weight"),
    (["--normalization", "switchable", "--optimizer", "momentum"],
     "relu, switchable norm, float32", "fastnet-mlp/2", "switchable"),
]


@pytest.mark.parametrize("options, described, version, normalization", [
    pytest.param(*case, id=" ".join(case[0][:2]) or "plain") for case in TRAINED_NETS])
def test_save_then_load_round_trips(options, described, version, normalization, mnist_dir,
                                    tmp_path, capsys):
    path = tmp_path / "net.npz"
    status, stdout, _ = train(capsys, mnist_dir, "--save", str(path), *options)
    assert status == 0 and f"saved to {path}" in stdout
    assert f"net: 784-20-20-10 {described}" in stdout
    assert stdout.count("epoch ") == 2
    trained = final_accuracies(stdout)
    with np.load(path, allow_pickle=False) as saved:  # no pickle needed to read it
        assert list(saved["hidden_size_list"]) == [20, 20] and "params/b3" in saved
        assert str(saved["format"]) == version
        assert str(saved["normalization"]) == normalization if normalization else True
        assert ("running/mean1" in saved) == any(name in described for name in (
            "batch norm", "switchable norm"))

    for backend in ("fastnet", "reference"):
        status, stdout, _ = train(capsys, mnist_dir, "--load", str(path), "--epochs", "0",
                                  "--backend", backend)
        assert status == 0 and f"net: 784-20-20-10 {described}" in stdout
        if backend == "fastnet":
            assert final_accuracies(stdout) == trained
        np.testing.assert_allclose(final_accuracies(stdout), trained, atol=0.011)
    # The file's normalization given again is no conflict.
    status, stdout, _ = train(capsys, mnist_dir, "--load", str(path), "--epochs", "0",
                              *[option for option in options
                                if option not in ("--optimizer", "adam", "momentum")])
    assert status == 0
    status, stdout, _ = train(capsys, mnist_dir, "--load", str(path), "--epochs", "1")
    assert status == 0 and "epoch   1" in stdout


@pytest.mark.parametrize("batch, epochs, lines", [
    ("100", "3", [1, 2, 3]), ("128", "3", [1, 2, 3]), ("110", "3", [1, 2, 3]),
    ("128", "1", [1]), ("1000", "2", [1, 2])],
    ids=["divides", "128 of 300", "110 of 300", "one cut short", "all"])
def test_each_epoch_is_reported_after_its_last_step_once(batch, epochs, lines, mnist_dir,
                                                         capsys):
    """An epoch is 300 / batch steps: with a fractional count the book's Trainer records
    seldom (128 of 300: at
    step 0, then once in 32 epochs), and 'epoch k' counted those records.  Here
    'epoch k' is after the k-th epoch's last step, the last epoch (cut short by the
    book's int(epochs * 300 / batch) steps) after the last step."""
    status, stdout, _ = train(capsys, mnist_dir, "--batch-size", batch, "--epochs", epochs)
    assert status == 0
    assert [int(n) for n in re.findall(r"^epoch +(\d+):", stdout, re.MULTILINE)] == lines
    if batch == "1000":
        assert "of batch 300 (all the training images; --batch-size 1000)" in stdout


def test_a_net_larger_than_the_machine_is_refused_in_one_line(mnist_dir, capsys,
                                                              monkeypatch):
    """Not killed by the kernel's OOM killer (exit 137, no word) as --hidden 3000000 was."""
    from fastnet import _validate

    monkeypatch.setattr(_validate, "physical_memory", lambda: 2**30)
    status = main(["train", "--data-dir", str(mnist_dir), "--hidden", "300000"])
    stdout, stderr = capsys.readouterr()
    assert status == 1 and "epoch" not in stdout
    assert stderr.splitlines()[-1] == (
        "fastnet train: error: out of memory (a net of 1 hidden layer and 238,500,010 "
        "float32 parameters needs 4.4 GiB, more than this machine's 1.0 GiB of memory); "
        "smaller sizes or fewer images")


def test_a_diverged_run_fails_and_saves_nothing(mnist_dir, tmp_path, capsys):
    """A nan loss went on to 'final' with status 0, and --save wrote a net of nans."""
    path = tmp_path / "net.npz"
    status, stdout, stderr = train(capsys, mnist_dir, "--init", "1e30", "--save", str(path))
    assert status == 1 and "final" not in stdout and not path.exists()
    assert stderr.splitlines()[-1] == (
        "fastnet train: error: training diverged: the loss was nan at step 1 of 6; try a "
        "smaller --lr or --init (nothing was saved)")
    # the last step's update, after the last loss: one step to inf weights
    status, stdout, stderr = train(capsys, mnist_dir, "--epochs", "1", "--batch-size", "300",
                                   "--lr", "3e38", "--init", "1000", "--save", str(path))
    assert status == 1 and "final" not in stdout and not path.exists()
    assert stderr.splitlines()[-1] == (
        "fastnet train: error: training diverged: the parameters are not finite after the "
        "last step; try a smaller --lr or --init (nothing was saved)")


@pytest.mark.parametrize("options, flag", [
    (["--batchnorm", "--batch-size", "1"], "--batch-size"),
    (["--normalization", "switchable", "--train-size", "1"], "--train-size")])
def test_batch_statistics_of_one_image_are_refused(options, flag, mnist_dir, tmp_path,
                                                   capsys):
    """Batch norm trained on batches of 1 outputs beta whatever the input (loss 2.3026,
    accuracy 0, status 0); switchable norm failed in the kernel.  A net loaded with
    --load is refused by its own normalization."""
    path = tmp_path / "net.npz"
    norm = options[:1] if options[0] == "--batchnorm" else options[:2]
    assert train(capsys, mnist_dir, *norm, "--epochs", "0", "--save", str(path))[0] == 0
    status, stdout, stderr = train(capsys, mnist_dir, "--load", str(path), *options[len(norm):])
    assert status == 1 and stdout == ""
    assert stderr.splitlines()[-1].endswith(
        "norm needs mini-batches of at least 2 images (one image normalizes every unit "
        f"to 0): raise {flag}")
    status, stdout, stderr = train(capsys, mnist_dir, *options)
    assert status == 1 and stdout == ""
    assert stderr.splitlines()[-1].endswith(
        "norm needs mini-batches of at least 2 images (one image normalizes every unit "
        f"to 0): raise {flag}")


def test_choices_are_taken_in_any_case(mnist_dir, capsys):
    """As the book and the README write them: --optimizer Adam, --activation ReLU."""
    status, stdout, _ = train(capsys, mnist_dir, "--optimizer", "Adam", "--activation",
                              "ReLU", "--normalization", "Batch", "--epochs", "0")
    assert status == 0 and "relu, batch norm" in stdout and "adam" in stdout


def test_save_never_overwrites_without_force(mnist_dir, tmp_path, capsys):
    path = tmp_path / "nets" / "net.npz"
    path.parent.mkdir()
    path.write_bytes(b"precious")
    status, _, stderr = train(capsys, mnist_dir, "--save", str(path))
    assert status == 1 and "exists; pass --force" in stderr
    assert path.read_bytes() == b"precious"
    status, _, _ = train(capsys, mnist_dir, "--save", str(path), "--force")
    assert status == 0 and path.read_bytes()[:2] == b"PK"  # an npz is a zip
    assert [p.name for p in path.parent.iterdir()] == ["net.npz"]  # no temporary left


def test_save_into_a_folder_spelled_with_a_slash_is_refused(mnist_dir, tmp_path, capsys):
    status, _, stderr = train(capsys, mnist_dir, "--save", f"{tmp_path / 'new'}/")
    assert status == 1 and f"{tmp_path / 'new'} is a folder; --save names a file" in stderr
    assert list(tmp_path.iterdir()) == []
    status, _, stderr = train(capsys, mnist_dir, "--save", "")
    assert status == 1 and "is a folder; --save names a file" in stderr


def test_load_refuses_an_incompatible_net(mnist_dir, tmp_path, capsys):
    path = tmp_path / "net.npz"
    assert train(capsys, mnist_dir, "--save", str(path))[0] == 0
    status, _, stderr = train(capsys, mnist_dir, "--load", str(path), "--hidden", "30")
    assert status == 1 and "--hidden 20,20,30 does not match the net" in stderr  # appended
    status, _, stderr = train(capsys, mnist_dir, "--load", str(path), "--batchnorm")
    assert status == 1 and "--batchnorm True does not match" in stderr
    status, _, stderr = train(capsys, mnist_dir, "--load", str(path), "--normalization", "layer")
    assert status == 1 and (f"--normalization layer does not match the net in {path} "
                            "(normalization none)") in stderr
    status, _, stderr = train(capsys, mnist_dir, "--load", str(path), "--groups", "2")
    assert status == 1 and (f"--groups applies to group and instance norm; the net in {path} "
                            "has normalization none") in stderr

    grouped = tmp_path / "group.npz"
    assert train(capsys, mnist_dir, "--save", str(grouped), "--normalization", "group",
                 "--groups", "4")[0] == 0
    status, _, stderr = train(capsys, mnist_dir, "--load", str(grouped), "--groups", "2")
    assert status == 1 and "--groups 2 does not match the net" in stderr
    assert "(groups 4); leave it out to use the file's" in stderr
    status, _, stderr = train(capsys, mnist_dir, "--load", str(grouped), "--batchnorm")
    assert status == 1 and "--batchnorm True does not match" in stderr

    other = tmp_path / "other.npz"
    np.savez(other, W1=np.zeros((784, 20)))
    status, _, stderr = train(capsys, mnist_dir, "--load", str(other))
    assert status == 1 and "is not a fastnet net: expected format 'fastnet-mlp/1'" in stderr
    status, _, stderr = train(capsys, mnist_dir, "--load", str(tmp_path / "missing.npz"))
    assert status == 1 and "cannot read" in stderr
    # the file is read before the data: no dataset here, and the file's fault is said
    no_data = tmp_path / "no-data"
    no_data.mkdir()
    status, _, stderr = train(capsys, no_data, "--load", str(other))
    assert status == 1 and "is not a fastnet net: expected format 'fastnet-mlp/1'" in stderr

    with np.load(path) as saved:
        arrays = dict(saved)
    arrays["params/W2"] = arrays["params/W2"][:, :5]
    np.savez(tmp_path / "bad.npz", **arrays)
    status, _, stderr = train(capsys, mnist_dir, "--load", str(tmp_path / "bad.npz"))
    assert status == 1 and "params/W2" not in stderr and "W2 has shape (20, 5)" in stderr


@pytest.mark.parametrize("argv, message", [
    (["train", "--lr", "-1"], "argument --lr: must be > 0"),
    (["train", "--lr", "fast"], "argument --lr: not a number"),
    (["train", "--dropout", "1.5"], "argument --dropout: must be in (0, 1)"),
    (["train", "--activation", "softsign"], "argument --activation: invalid choice"),
    (["train", "--hidden", "10,x"], "argument --hidden: not an integer"),
    (["train", "--hidden", "10,0"], "argument --hidden: must be an integer >= 1"),
    (["train", "--init", "glorot"],
     "argument --init: must be relu, he, sigmoid, xavier or a std > 0, got 'glorot'"),
    (["train", "--epochs", "-1"], "argument --epochs: must be an integer >= 0"),
    (["train", "--optimizer", "lbfgs"], "argument --optimizer: invalid choice"),
    (["train", "--normalization", "spectral"], "argument --normalization: invalid choice"),
    (["train", "--groups", "0"], "argument --groups: must be an integer >= 1"),
    (["experiment", "nope"], "argument NAME: invalid choice"),
    (["experiment"], "the following arguments are required: NAME"),
    ([], "the following arguments are required: COMMAND"),
])
def test_bad_flags_exit_with_status_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("options, message", [
    (["--batchnorm", "--normalization", "layer"],
     "--batchnorm is --normalization batch; it conflicts with --normalization layer"),
    (["--groups", "4"], "--groups applies to --normalization group and instance"),
    (["--normalization", "layer", "--groups", "4"],
     "--groups applies to --normalization group and instance"),
    (["--normalization", "group", "--groups", "3"],
     ("--groups 3 does not divide the hidden size 20 (group norm needs groups dividing "
      "every hidden size)")),
    (["--normalization", "instance", "--hidden", "25"],  # --hidden appends: 20,20,25
     "--groups 2 does not divide the hidden size 25 (instance norm needs"),
    (["--normalization", "group", "--groups", "20"],
     "group norm of the hidden size 20 in 20 groups normalizes groups of one unit"),
], ids=["batchnorm-and-layer", "groups-alone", "groups-with-layer", "groups-3", "hidden-25",
        "groups-of-one"])
def test_normalization_flags_that_disagree(options, message, mnist_dir, capsys):
    status, _, stderr = train(capsys, mnist_dir, *options)
    assert status == 1 and f"fastnet train: error: {message}" in stderr
    assert "Traceback" not in stderr


def test_errors_after_parsing_exit_with_status_1(mnist_dir, tmp_path, capsys):
    status, _, stderr = train(capsys, mnist_dir, "--optimizer", "adam", "--momentum", "0.5")
    assert status == 1 and "--momentum applies to momentum and nesterov" in stderr
    status, _, stderr = train(capsys, mnist_dir, "--train-size", "10000000")
    assert status == 1 and "--train-size 10000000 exceeds" in stderr
    (tmp_path / "empty").mkdir()
    status, _, stderr = train(capsys, tmp_path / "empty")
    assert status == 1 and "fastnet train: error: MNIST not found" in stderr
    # the library's advice in the command's spelling
    assert "pass --data-dir <folder>" in stderr and "data_dir=" not in stderr


def test_a_data_dir_under_home_is_expanded(mnist_dir, tmp_path, capsys, monkeypatch):
    """``--data-dir=~/x`` reaches the command unexpanded: the loader expands it."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "mnist").symlink_to(mnist_dir)
    monkeypatch.setenv("HOME", str(home))
    status, out, _ = train(capsys, "~/mnist")
    assert status == 0 and "final: " in out


def test_a_data_dir_that_is_no_folder_is_a_usage_error(tmp_path, capsys):
    """A typo was searched past: the dataset came from another folder, silently."""
    (tmp_path / "file").write_text("")
    for path, said in ((tmp_path / "nothing-here", "no such folder"),
                       (tmp_path / "file", "not a folder")):
        with pytest.raises(SystemExit) as exit_:
            main(["train", "--data-dir", str(path), *SMALL])
        assert exit_.value.code == 2
        assert f"argument --data-dir: {said}: '{path}'" in capsys.readouterr().err


def test_mnist_fallback_is_announced(tmp_path, capsys):
    folder = write_fake_mnist(tmp_path / "only-test", n_test=400, splits=("t10k",))
    status = main(["train", "--data-dir", str(folder), "--hidden", "10", "--epochs", "1"])
    captured = capsys.readouterr()
    assert status == 0 and "MNIST FALLBACK" in captured.err
    assert "using 320 train / 80 test" in captured.out


def test_bench_gets_the_remaining_arguments(monkeypatch):
    bench = pytest.importorskip("fastnet.bench")
    calls = []
    monkeypatch.setattr(bench, "main", lambda argv: calls.append(argv) or 7)
    assert main(["bench", "--quick", "mlp-sgd"]) == 7
    assert calls == [["--quick", "mlp-sgd"]]


def test_progress_bar_draws_only_on_a_terminal(tmp_path, capsys, monkeypatch):
    """tqdm's bar goes to stderr only when that is a terminal, and is wiped at the end;
    the epoch lines go to stdout either way."""
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    mnist_dir = write_fake_mnist(tmp_path / "mnist")  # all four files: no download bars
    terminal = Terminal()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stderr", terminal)
        status, stdout, _ = train(capsys, mnist_dir)
    assert status == 0 and stdout.count("epoch ") == 2
    drawn = terminal.getvalue()
    assert re.search(r"\d+%\|.*\| [0-6]/6 \[.*step/s\]", drawn)  # 2 epochs of 3 batches
    assert "epoch" not in drawn
    assert re.fullmatch(r".*\r *\r", drawn, re.DOTALL)  # the bar's line is cleared

    status, stdout, stderr = train(capsys, mnist_dir)
    assert status == 0 and stdout.count("epoch ") == 2
    assert stderr == ""


def test_python_dash_m_fastnet():
    result = subprocess.run([sys.executable, "-m", "fastnet", "--help"], capture_output=True,
                            text=True, check=True)
    assert all(command in result.stdout for command in ("train", "experiment", "bench"))


def test_ctrl_c_while_the_command_imports_is_one_line_and_status_130():
    """The command's imports take most of a second; ``import fastnet`` itself imports
    no Numba, so a Ctrl-C in that second reaches the entry point's handler (simulated
    where the import of ``fastnet.cli`` begins) and ends as a later Ctrl-C does."""
    modules = ("import sys, fastnet\n"
               "print(sorted({'numba', 'numpy', 'fastnet.threads'} & set(sys.modules)))")
    light = subprocess.run([sys.executable, "-c", modules], capture_output=True, text=True,
                           check=True)
    assert light.stdout.strip() == "[]"
    interrupted = ("import builtins, sys\n"
                   "from fastnet.__main__ import main\n"
                   "real_import = builtins.__import__\n"
                   "def ctrl_c_at_cli(name, *args, **kwargs):\n"
                   "    if name == 'cli':\n"
                   "        raise KeyboardInterrupt\n"
                   "    return real_import(name, *args, **kwargs)\n"
                   "builtins.__import__ = ctrl_c_at_cli\n"
                   "sys.exit(main())")
    result = subprocess.run([sys.executable, "-c", interrupted], capture_output=True,
                            text=True, check=False)
    assert (result.returncode, result.stderr) == (130, "fastnet: interrupted\n")


def test_fastnet_runs_under_python_dash_OO():
    """``python -OO`` strips the docstrings (``__doc__`` is None), which some modules
    build on: every module still imports and every command prints its help."""
    imports = ("import importlib, pkgutil, fastnet\n"
               "for m in pkgutil.walk_packages(fastnet.__path__, 'fastnet.'):\n"
               "    if not m.name.endswith('__main__'):\n"
               "        importlib.import_module(m.name)")
    subprocess.run([sys.executable, "-OO", "-c", imports], capture_output=True, check=True)
    for command in ("train", "experiment", "bench", "sweep"):
        result = subprocess.run([sys.executable, "-OO", "-m", "fastnet", command, "--help"],
                                capture_output=True, text=True, check=True)
        assert result.stdout.startswith(f"usage: fastnet {command}")


def test_an_unwritable_save_or_out_is_refused_before_training(mnist_dir, tmp_path, capsys,
                                                             monkeypatch):
    """Checked before the run, whose result would be lost at its end."""
    trained = []
    monkeypatch.setattr("fastnet.cli._fit", lambda *args: trained.append(args))
    folder = tmp_path / "a-folder"
    folder.mkdir()
    for save, message in ((folder, f"{folder} is a folder; --save names a file"),
                          (tmp_path / "missing" / "net.npz", "cannot write in ")):
        status, _, stderr = train(capsys, mnist_dir, "--save", str(save))
        assert status == 1 and stderr.startswith(f"fastnet train: error: {message}"), stderr
    afile = tmp_path / "afile"
    afile.write_text("")
    status = main(["experiment", "optimizers", "--quick", "--out", str(afile)])
    assert status == 1
    assert capsys.readouterr().err == f"fastnet experiment: error: {afile} is a file; --out names a folder\n"
    assert trained == []


def test_corrupt_dataset_files_are_one_line_errors(tmp_path, capsys):
    folder = write_fake_mnist(tmp_path / "mnist")
    labels = folder / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:20])  # truncated
    status, stdout, stderr = train(capsys, folder)
    assert status == 1 and stdout == ""
    assert stderr.startswith("fastnet train: error: ") and stderr.count("\n") == 1, stderr


def test_an_interrupted_command_says_so_with_status_130(mnist_dir, capsys, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr("fastnet.cli._fit", interrupted)
    status, _, stderr = train(capsys, mnist_dir)
    assert status == 130 and stderr.splitlines()[-1] == "fastnet train: interrupted", stderr


def test_a_closed_stdout_does_not_lose_the_net_to_save(mnist_dir, tmp_path):
    """``fastnet train --save net.npz | head -1``: training goes on quietly and saves."""
    path = tmp_path / "net.npz"
    proc = subprocess.Popen([sys.executable, "-m", "fastnet", "train", "--data-dir",
                             str(mnist_dir), *SMALL, "--save", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the command writes its first line
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0, stderr
    assert f"fastnet train: stdout was closed; training on to save {path}" in stderr
    assert "Traceback" not in stderr and path.exists()


@pytest.mark.parametrize("save", [True, False], ids=["save", "no-save"])
def test_a_full_stdout_does_not_lose_the_net_and_fails_the_command(save, mnist_dir, tmp_path):
    """``fastnet train --save net.npz > /dev/full``: the net is saved all the same, and the
    command fails naming standard output (it named no file: '[Errno 28] No space left on
    device'), with or without a net to save."""
    path = tmp_path / "net.npz"
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "fastnet", "train", "--data-dir",
                               str(mnist_dir), *SMALL, *(["--save", str(path)] * save)],
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=300,
                              check=False)
    last = proc.stderr.splitlines()[-1]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    if save:
        assert (f"fastnet train: cannot write standard output (No space left on device); "
                f"training on to save {path}") in proc.stderr
        assert last == ("fastnet train: error: cannot write standard output (No space left "
                        f"on device); the net was saved to {path}")
        assert path.exists()
    else:
        assert last == ("fastnet train: error: cannot write standard output (No space left "
                        "on device)")


def test_adamw_takes_its_decoupled_weight_decay(mnist_dir, capsys):
    status, stdout, _ = train(capsys, mnist_dir, "--optimizer", "adamw",
                              "--decoupled-weight-decay", "0.05")
    assert status == 0 and "adamw {'weight_decay': 0.05}" in stdout
    status, _, stderr = train(capsys, mnist_dir, "--decoupled-weight-decay", "0.05")
    assert status == 1 and "--decoupled-weight-decay applies to adamw, not sgd" in stderr
    status, _, stderr = train(capsys, mnist_dir, "--optimizer", "adamw", "--weight-decay", "0.1")
    assert status == 0 and "warning: --weight-decay with adamw adds the book's L2 term" in stderr


def test_an_integer_past_64_bits_is_an_integer(mnist_dir, capsys):
    """--seed 2**64 is a seed (NumPy takes any size), not argparse's "invalid value"."""
    status, stdout, _ = train(capsys, mnist_dir, "--seed", str(2**64), "--epochs", "0")
    assert status == 0 and "final: " in stdout


def test_fastnet_debug_shows_the_traceback_of_a_library_error(tmp_path, monkeypatch, capsys):
    """A ValueError of the library is one line; FASTNET_DEBUG=1 lets it through."""
    folder = write_fake_mnist(tmp_path / "mnist")
    labels = folder / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:20])
    monkeypatch.setenv("FASTNET_DEBUG", "1")
    with pytest.raises(ValueError):
        main(["train", "--data-dir", str(folder), *SMALL])
