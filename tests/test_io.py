"""fastnet.io: saving and loading nets (formats ``fastnet-mlp/1`` and ``/2``), driven
by one table, ``IO_CASES`` (``cases.NET_CASES``, ``cases.NORM_NET_CASES`` and a few
more): round trips of parameters, running statistics, architecture (normalization and
groups included) and dtype with bit-equal predictions, in the oldest version that holds
each net; a file written by fastnet's first format still loading; atomic,
non-clobbering writes; errors for files that are not saved nets."""
import os
from pathlib import Path

import numpy as np
import pytest
from cases import DTYPES, NET_CASES, NORM_NET_CASES, NetCase, assert_bitwise_equal

from fastnet import io, nets, optimizers
from fastnet.reference import nets as reference_nets
from fastnet.reference import optimizers as reference_optimizers

SIZES = (10, [12, 6], 4)  # hidden sizes that groups 1, 2, 3 and 6 divide
DATA = Path(__file__).parent / "data"

# Every case, and the format version save_net writes for it: 1 where that version holds
# the net exactly (no normalization or batch norm, the default groups), else 2.
IO_CASES = [(case, 2 if case.kwargs.get("normalization", "batch") != "batch"
             or "groups" in case.kwargs else 1)
            for case in [*NET_CASES, *NORM_NET_CASES,
                         NetCase("group-3-dropout", {"normalization": "group", "groups": 3,
                                                     "use_dropout": True}),
                         NetCase("instance-3", {"normalization": "instance", "groups": 3}),
                         NetCase("weight-dropout", {"normalization": "weight",
                                                    "use_dropout": True}),
                         NetCase("batch-groups-4", {"normalization": "batch", "groups": 4})]]
CASES = {case.id: case for case, _ in IO_CASES}
IO_NETS = [pytest.param(case, version, id=case.id) for case, version in IO_CASES]


def make_net(module, case, dtype, seed=3):
    cls = module.MultiLayerNetExtend if case.extend else module.MultiLayerNet
    return cls(*SIZES, dtype=dtype, seed=seed, **case.kwargs)


def batch(dtype, n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, SIZES[0])).astype(dtype), rng.integers(0, SIZES[2], n)


def trained(net, dtype, steps=3):
    """``net`` after a few Adam steps, so params and running statistics are not initial."""
    x, t = batch(dtype)
    if isinstance(net, nets.MultiLayerNet | nets.MultiLayerNetExtend):
        adam = optimizers.Adam(lr=0.01)
        for _ in range(steps):
            net.train_step(x, t, adam)
    else:
        adam = reference_optimizers.Adam(lr=0.01)
        for _ in range(steps):
            adam.update(net.params, net.gradient(x, t))
    return net


def running_stats(net):
    """The running statistics of every layer that keeps them (batch, switchable norm)."""
    return {f"{key}.running_{name}": getattr(layer, f"running_{name}")
            for key, layer in net.layers.items() if hasattr(layer, "running_mean")
            for name in ("mean", "var")}


def assert_same_net(loaded, saved, dtype):
    assert loaded.dtype == dtype
    for attr in ("input_size", "hidden_size_list", "output_size", "activation"):
        assert getattr(loaded, attr) == getattr(saved, attr), attr
    assert loaded.normalization == getattr(saved, "normalization", None)
    assert loaded.groups == (getattr(saved, "groups", None) or 2)
    assert loaded.use_batchnorm == getattr(saved, "use_batchnorm", False)
    assert loaded.use_dropout == getattr(saved, "use_dropout", False)
    if loaded.use_dropout:
        assert loaded.dropout_ratio == saved.dropout_ratio
    assert loaded.params.keys() == saved.params.keys()
    for key, value in saved.params.items():
        assert loaded.params[key].dtype == dtype
        assert_bitwise_equal(loaded.params[key], value, key)
    saved_stats, loaded_stats = running_stats(saved), running_stats(loaded)
    assert loaded_stats.keys() == saved_stats.keys()
    for key, value in saved_stats.items():
        if value is None:
            assert loaded_stats[key] is None, key
        else:
            assert_bitwise_equal(loaded_stats[key], value, key)


def saved_format(path):
    with np.load(path, allow_pickle=False) as saved:
        return str(saved["format"])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case, version", IO_NETS)
def test_round_trip_keeps_everything_and_predicts_bit_for_bit(case, version, dtype, tmp_path):
    net = trained(make_net(nets, case, dtype), dtype)
    path = tmp_path / "net.npz"
    io.save_net(net, path)
    assert saved_format(path) == f"fastnet-mlp/{version}"
    loaded = io.load_net(path)
    assert type(loaded) is nets.MultiLayerNetExtend
    assert_same_net(loaded, net, dtype)
    x, _ = batch(dtype, seed=1)
    assert_bitwise_equal(loaded.predict(x), net.predict(x), "predict")
    # The loaded net's layers hold its params: a training step moves its predictions.
    trained(loaded, dtype, steps=1)
    assert not np.array_equal(loaded.predict(x), net.predict(x))


@pytest.mark.parametrize("case, version", [p for p in IO_NETS if p.id in (
    "plain", "bn-dropout-wd", *(case.id for case in NORM_NET_CASES), "group-3-dropout")])
def test_reference_nets_round_trip_both_ways(case, version, tmp_path):
    dtype = np.dtype(np.float64)
    ref = trained(make_net(reference_nets, case, dtype), dtype)
    io.save_net(ref, tmp_path / "ref.npz")
    assert saved_format(tmp_path / "ref.npz") == f"fastnet-mlp/{version}"
    x, _ = batch(dtype, seed=1)
    for cls in (reference_nets.MultiLayerNetExtend, nets.MultiLayerNetExtend):
        loaded = io.load_net(tmp_path / "ref.npz", net_class=cls)
        assert type(loaded) is cls
        assert_same_net(loaded, ref, dtype)
        np.testing.assert_allclose(loaded.predict(x), ref.predict(x), rtol=1e-12, atol=1e-12)
    fast = trained(make_net(nets, case, dtype), dtype)
    io.save_net(fast, tmp_path / "fast.npz")
    loaded = io.load_net(tmp_path / "fast.npz", net_class=reference_nets.MultiLayerNetExtend)
    assert_same_net(loaded, fast, dtype)


@pytest.mark.parametrize("case_id", ["bn", "switchable"])
def test_running_stats_not_made_yet_are_not_saved(case_id, tmp_path):
    """The reference's batch and switchable norms make theirs on the first training
    batch (fastnet's keep theirs in an arena from the start)."""
    net = make_net(reference_nets, CASES[case_id], np.float32)
    io.save_net(net, tmp_path / "net.npz")
    with np.load(tmp_path / "net.npz", allow_pickle=False) as saved:
        assert not any(key.startswith("running/") for key in saved)
    loaded = io.load_net(tmp_path / "net.npz", net_class=reference_nets.MultiLayerNetExtend)
    assert_same_net(loaded, net, np.float32)


def test_every_normalization_of_the_nets_has_a_name_in_the_format():
    assert set(io.NORMALIZATIONS) == {"none", *reference_nets.NORMALIZATIONS}
    assert {case.kwargs.get("normalization") for case, _ in IO_CASES} == {
        None, *reference_nets.NORMALIZATIONS}


def test_a_fastnet_mlp_1_file_of_the_first_fastnet_still_loads(tmp_path):
    """``data/fastnet-mlp-1.npz`` was written by the fastnet that knew version 1 only:
    12-9-7-4 sigmoid, batch norm, dropout 0.3, float32, after 3 Adam steps;
    ``data/fastnet-mlp-1-predict.npz`` holds inputs and the logits it predicted."""
    net = io.load_net(DATA / "fastnet-mlp-1.npz")
    assert (net.input_size, net.hidden_size_list, net.output_size) == (12, [9, 7], 4)
    assert (net.activation, net.normalization, net.use_batchnorm) == ("sigmoid", "batch", True)
    assert (net.use_dropout, net.dropout_ratio, net.dtype) == (True, 0.3, np.float32)
    with np.load(DATA / "fastnet-mlp-1-predict.npz") as expected:
        np.testing.assert_allclose(net.predict(expected["x"]), expected["logits"],
                                   rtol=1e-6, atol=1e-6)
    # Saved again, it is the same version-1 file: old fastnets keep reading such nets.
    io.save_net(net, tmp_path / "again.npz")
    with np.load(DATA / "fastnet-mlp-1.npz") as old, np.load(tmp_path / "again.npz") as new:
        assert old.keys() == new.keys()
        for key in old:
            assert_bitwise_equal(new[key], old[key], key)


def test_dtype_and_constructor_options(tmp_path):
    net = trained(make_net(nets, CASES["bn-dropout-wd"], np.float32), np.float32)
    io.save_net(net, tmp_path / "net.npz")
    loaded = io.load_net(tmp_path / "net.npz", dtype=np.float64, weight_decay_lambda=0.5,
                         seed=11)
    assert loaded.dtype == np.float64 and loaded.weight_decay_lambda == 0.5
    for key, value in net.params.items():
        assert loaded.params[key].dtype == np.float64
        np.testing.assert_array_equal(loaded.params[key], value.astype(np.float64))
    x, _ = batch(np.float32, seed=1)
    np.testing.assert_allclose(loaded.predict(x), net.predict(x), rtol=1e-5, atol=1e-5)


def test_a_dtype_that_cannot_hold_the_saved_values_is_refused(tmp_path):
    """A float64 net with weights past float32's range, loaded as float32: inf weights
    and predictions before, with only NumPy's RuntimeWarning."""
    net = make_net(nets, CASES["plain"], np.float64)
    net.params["W2"][0, 0] = 1e300
    io.save_net(net, tmp_path / "net.npz")
    with pytest.raises(ValueError, match=r"net.npz: W2 holds values beyond the range of "
                                         r"float32 \(largest magnitude 1e\+300\): it does "
                                         r"not load as float32"):
        io.load_net(tmp_path / "net.npz", dtype=np.float32)
    net.params["W2"][0, 0] = np.inf  # infinities are kept: they fit any dtype
    io.save_net(net, tmp_path / "net.npz", overwrite=True)
    assert np.isinf(io.load_net(tmp_path / "net.npz", dtype=np.float32).params["W2"][0, 0])


def test_a_diverged_nets_nan_running_variance_saves_and_loads(tmp_path):
    net = trained(make_net(nets, CASES["bn"], np.float32), np.float32)
    net.layers["BatchNorm1"].running_var[0] = np.nan
    io.save_net(net, tmp_path / "net.npz")
    assert np.isnan(io.load_net(tmp_path / "net.npz").layers["BatchNorm1"].running_var[0])


@pytest.mark.parametrize("module", [nets, reference_nets], ids=["fastnet", "reference"])
def test_a_multilayernet_loads_as_one(module, tmp_path):
    """net_class=MultiLayerNet raised "unexpected keyword argument 'normalization'"."""
    net = module.MultiLayerNet(*SIZES, seed=3)
    io.save_net(net, tmp_path / "net.npz")
    loaded = io.load_net(tmp_path / "net.npz", net_class=module.MultiLayerNet)
    assert type(loaded) is module.MultiLayerNet
    x, _ = batch(np.float32, seed=1)
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))
    io.save_net(make_net(nets, CASES["bn-dropout-wd"], np.float32), tmp_path / "bn.npz")
    with pytest.raises(ValueError, match=r"bn.npz describes a net with normalization="
                                         r"'batch', use_dropout=True, dropout_ratio=.*, which "
                                         r"MultiLayerNet does not take: load it as a "
                                         r"MultiLayerNetExtend"):
        io.load_net(tmp_path / "bn.npz", net_class=module.MultiLayerNet)


def test_a_subclass_that_passes_keywords_on_loads(tmp_path):
    """A ``(*args, **kwargs)`` subclass was refused: its signature names no argument."""
    class Logged(nets.MultiLayerNetExtend):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)

    net = make_net(nets, CASES["bn-dropout-wd"], np.float32)
    io.save_net(net, tmp_path / "net.npz")
    loaded = io.load_net(tmp_path / "net.npz", net_class=Logged)
    assert type(loaded) is Logged and loaded.use_batchnorm and loaded.use_dropout
    x, _ = batch(np.float32, seed=1)
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))


@pytest.mark.parametrize("options, named", [({"use_dropout": False}, "use_dropout is"),
                                            ({"hidden_size_list": [3], "groups": 1},
                                             "groups, hidden_size_list are")])
def test_options_the_file_fixes_are_refused_by_name(options, named, tmp_path):
    io.save_net(make_net(nets, CASES["plain"], np.float32), tmp_path / "net.npz")
    with pytest.raises(TypeError, match=f"load_net: {named} fixed by the file; options "
                                        f"are the constructor's other arguments"):
        io.load_net(tmp_path / "net.npz", **options)


def test_bytes_paths_save_and_load(tmp_path):
    net = make_net(nets, CASES["plain"], np.float32)
    path = os.fsencode(tmp_path / "net.npz")
    io.save_net(net, path)
    np.testing.assert_array_equal(io.load_net(path).params["W1"], net.params["W1"])


def read_back(net, tmp_path):
    io.save_net(net, tmp_path / "net")
    assert [p.name for p in tmp_path.iterdir()] == ["net"]  # the name as given
    with np.load(tmp_path / "net", allow_pickle=False) as saved:
        return dict(saved)


def assert_params_and_running(files, net, running):
    """``files`` hold ``net``'s params, and running statistics of the ``running`` layers,
    all float32, and nothing else."""
    expected = {f"params/{key}": value.shape for key, value in net.params.items()}
    expected.update({f"running/{stat}{i}": (SIZES[1][i - 1],) for i in running
                     for stat in ("mean", "var")})
    assert {key: value.shape for key, value in files.items()} == expected
    assert all(value.dtype == np.float32 for value in files.values())


def test_file_format_as_documented(tmp_path):
    net = make_net(nets, CASES["sigmoid-bn-dropout"], np.float32)
    files = read_back(net, tmp_path)
    assert str(files.pop("format")) == "fastnet-mlp/1" and io.FORMAT == "fastnet-mlp/2"
    assert files.pop("input_size") == 10 and files.pop("output_size") == 4
    sizes = files.pop("hidden_size_list")
    assert sizes.dtype == np.int64 and sizes.tolist() == [12, 6]
    assert str(files.pop("activation")) == "sigmoid"
    assert files.pop("use_batchnorm").dtype == np.bool_
    assert files.pop("dropout_ratio") == 0.3
    assert_params_and_running(files, net, running=[1, 2])


@pytest.mark.parametrize("case_id, running", [("switchable-sigmoid-dropout", [1, 2]),
                                              ("instance-3", []), ("weight-wd", [])])
def test_version_2_as_documented(case_id, running, tmp_path):
    net = trained(make_net(nets, CASES[case_id], np.float32), np.float32)
    files = read_back(net, tmp_path)
    assert str(files.pop("format")) == "fastnet-mlp/2"
    for key in ("input_size", "output_size", "hidden_size_list", "dropout_ratio"):
        files.pop(key)
    assert str(files.pop("activation")) == net.activation
    normalization = files.pop("normalization")
    assert normalization.dtype.kind == "U" and str(normalization) == net.normalization
    groups = files.pop("groups")
    assert groups.dtype == np.int64 and groups.shape == () and groups == net.groups
    assert "use_batchnorm" not in files
    assert_params_and_running(files, net, running)


# ------------------------------------------------------------------ safe writes

@pytest.fixture(params=["plain", "switchable"])  # a version-1 and a version-2 file
def small_net(request):
    return make_net(nets, CASES[request.param], np.float32)


def test_refuses_to_overwrite_unless_asked(small_net, tmp_path):
    path = tmp_path / "net.npz"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite=True") as error:
        io.save_net(small_net, path)
    assert str(path) in str(error.value)
    assert path.read_bytes() == b"precious"
    io.save_net(small_net, path, overwrite=True)
    assert_same_net(io.load_net(path), small_net, np.float32)
    assert [p.name for p in tmp_path.iterdir()] == ["net.npz"]


def test_refuses_a_file_that_appears_during_the_write(small_net, tmp_path, monkeypatch):
    """No window between the existence check and the rename: another writer's file
    that appears meanwhile is kept."""
    path = tmp_path / "net.npz"
    savez = np.savez

    def racing_savez(file, **arrays):
        savez(file, **arrays)
        path.write_bytes(b"theirs")

    monkeypatch.setattr(np, "savez", racing_savez)
    with pytest.raises(FileExistsError):
        io.save_net(small_net, path)
    assert path.read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["net.npz"]


def test_file_systems_without_hard_links(small_net, tmp_path, monkeypatch):
    monkeypatch.setattr(io.os, "link", fail_rename)
    path = tmp_path / "net.npz"
    io.save_net(small_net, path)
    assert_same_net(io.load_net(path), small_net, np.float32)
    with pytest.raises(FileExistsError):
        io.save_net(small_net, path)
    assert [p.name for p in tmp_path.iterdir()] == ["net.npz"]


def fail_mid_write(file, **arrays):
    file.write(b"PK\x03\x04 half an archive")
    raise OSError("No space left on device")


def fail_rename(*args):
    raise OSError("rename failed")


def interrupt(*args):
    raise KeyboardInterrupt


@pytest.mark.parametrize("patch", [
    pytest.param(lambda m: m.setattr(np, "savez", fail_mid_write), id="writing"),
    pytest.param(lambda m: (m.setattr(io.os, "replace", fail_rename),
                            m.setattr(io.os, "link", fail_rename)), id="renaming"),
    pytest.param(lambda m: m.setattr(io.os, "fsync", interrupt), id="interrupted"),
])
def test_a_failed_save_keeps_the_old_file_and_leaves_no_temporary(patch, small_net,
                                                                  tmp_path, monkeypatch):
    path = tmp_path / "net.npz"
    io.save_net(small_net, path)
    before = path.read_bytes()
    other = make_net(nets, CASES["plain"], np.float32, seed=4)
    with monkeypatch.context() as m:
        patch(m)
        with pytest.raises((OSError, KeyboardInterrupt)):
            io.save_net(other, path, overwrite=True)
        with pytest.raises((OSError, KeyboardInterrupt)):
            io.save_net(other, tmp_path / "new.npz")  # no file to keep: none is left
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["net.npz"]
    assert_same_net(io.load_net(path), small_net, np.float32)


@pytest.mark.parametrize("spoil, message", [
    (lambda params: params.__setitem__("W1", object()), r"W1 has shape \(\)"),
    (lambda params: params.__setitem__("W2", np.zeros((3, 3), np.float32)),
     r"W2 has shape \(3, 3\)"),
    (lambda params: params.__setitem__("extra", np.zeros(2, np.float32)),
     r"holds parameters \[.*'extra'\], the net it describes has"),
    (lambda params: params.pop("b1"), r"lacks params/b1"),
], ids=["object", "shape", "extra-key", "missing-key"])
def test_save_net_refuses_what_load_net_would_refuse(spoil, message, tmp_path):
    """A net whose ``params`` were re-bound is refused before writing: an existing file
    stays, and nothing is left beside it; ``np.random``'s state is not touched."""
    net = make_net(nets, CASES["plain"], np.float32)
    path = tmp_path / "net.npz"
    io.save_net(net, path)
    before = path.read_bytes()
    net.params = dict(net.params)
    spoil(net.params)
    np.random.seed(5)
    with pytest.raises(ValueError, match="save_net: not writing .*would not load back: .*"
                                         + message):
        io.save_net(net, path, overwrite=True)
    assert np.random.rand() == np.random.RandomState(5).rand()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["net.npz"]


@pytest.mark.parametrize("module", [nets, reference_nets], ids=["fastnet", "reference"])
def test_the_dropout_layers_ratio_is_saved(module, tmp_path):
    """What the passes use is the layers' ratio, set since construction: that is saved
    (the formats hold one: layers of different ratios are refused)."""
    net = module.MultiLayerNetExtend(12, [6, 5], 4, use_dropout=True, seed=0)
    for key in ("Dropout1", "Dropout2"):
        net.layers[key].dropout_ratio = 0.1
    io.save_net(net, tmp_path / "net.npz")
    loaded = io.load_net(tmp_path / "net.npz", net_class=module.MultiLayerNetExtend)
    assert [loaded.layers[k].dropout_ratio for k in ("Dropout1", "Dropout2")] == [0.1, 0.1]
    x = np.random.default_rng(0).standard_normal((3, 12)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))
    net.layers["Dropout2"].dropout_ratio = 0.2
    with pytest.raises(ValueError, match=r"one dropout ratio .* layers have \[0.1, 0.2\]"):
        io.save_net(net, tmp_path / "other.npz")
    assert not (tmp_path / "other.npz").exists()


@pytest.mark.parametrize("module", [nets, reference_nets], ids=["fastnet", "reference"])
def test_a_net_whose_layers_have_another_eps_is_not_saved(module, tmp_path):
    """Predictions depend on the normalization layers' eps, which the formats do not
    hold: a net given another is refused before anything is written."""
    net = module.MultiLayerNetExtend(12, [6, 4], 4, normalization="layer", seed=0)
    net.layers["LayerNorm2"].eps = 0.5
    with pytest.raises(ValueError, match=r"the fastnet-mlp formats hold no eps: "
                                         r"layers\['LayerNorm2'\].eps=0.5, where load_net "
                                         r"gives the default 1e-06"):
        io.save_net(net, tmp_path / "net.npz")
    assert not (tmp_path / "net.npz").exists()


def test_save_net_names_a_missing_folder_or_a_folder_given_as_the_file(small_net, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder") as err:
        io.save_net(small_net, tmp_path / "missing" / "net.npz")
    assert err.value.filename == str(tmp_path / "missing")
    with pytest.raises(IsADirectoryError, match="a folder, not a file") as err:
        io.save_net(small_net, tmp_path, overwrite=True)
    assert err.value.filename == str(tmp_path)
    with pytest.raises(IsADirectoryError, match="ends with a separator"):
        io.save_net(small_net, f"{tmp_path / 'new'}/")  # not a file named "new"
    assert list(tmp_path.iterdir()) == []


def test_save_net_writes_through_a_symbolic_link(small_net, tmp_path):
    (tmp_path / "real").mkdir()
    target, link = tmp_path / "real" / "net.npz", tmp_path / "link.npz"
    link.symlink_to(target)  # dangling until the save
    io.save_net(small_net, link)
    assert link.is_symlink() and target.is_file()
    with pytest.raises(FileExistsError):
        io.save_net(small_net, link)
    small_net.params["b1"][...] = 7  # the target's old content replaced
    io.save_net(small_net, link, overwrite=True)
    assert link.is_symlink()
    assert_same_net(io.load_net(target), small_net, np.float32)


def test_save_net_saves_what_the_passes_use(tmp_path):
    """A layer's own W re-bound since the last pass is what predict uses: saved too."""
    net = nets.MultiLayerNetExtend(4, [3], 2, seed=0)
    net.layers["Affine1"].W = np.zeros((4, 3), np.float32)
    net.params["b1"] = np.ones(3, np.int64)  # converted into the arena, as a pass does
    io.save_net(net, tmp_path / "net.npz")
    assert io.load_net(tmp_path / "net.npz").params["b1"].dtype == np.float32
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(io.load_net(tmp_path / "net.npz").predict(x), net.predict(x))


def test_save_net_rejects_what_is_not_a_net(tmp_path):
    with pytest.raises(TypeError, match="save_net takes a MultiLayerNet"):
        io.save_net({"W1": np.zeros((2, 2))}, tmp_path / "net.npz")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ bad files

def saved_arrays(net, tmp_path):
    io.save_net(net, tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz") as saved:
        return dict(saved)


def _without(*keys):
    return lambda arrays: [arrays.pop(key) for key in keys]


def _set(key, value):
    return lambda arrays: arrays.__setitem__(key, value)


FORMATS = r"'fastnet-mlp/1' or 'fastnet-mlp/2'"
# id, the case saved (12-6 hidden units), how the file is spoiled, the error's message
BAD_FILES = [
    ("no-format", "plain", _without("format"),
     rf"is not a fastnet net: expected format {FORMATS}, found no 'format' entry"),
    ("other-format", "plain", _set("format", np.str_("keras-h5/3")),
     rf"is not a fastnet net: expected format {FORMATS}, found 'keras-h5/3'"),
    ("newer-version", "layer", _set("format", np.str_("fastnet-mlp/3")),
     (r"has format 'fastnet-mlp/3', newer than this fastnet reads \('fastnet-mlp/2'\); "
      r"load it with a newer fastnet")),
    ("missing-architecture", "plain", _without("activation"),
     (r"lacks activation \(format fastnet-mlp/1 needs input_size, hidden_size_list, "
      r"output_size, activation, use_batchnorm, dropout_ratio\)")),
    ("v2-missing-normalization", "layer", _without("normalization", "groups"),
     (r"lacks normalization, groups \(format fastnet-mlp/2 needs input_size, "
      r"hidden_size_list, output_size, activation, normalization, groups, dropout_ratio\)")),
    ("v2-is-not-v1", "bn", _set("format", np.str_("fastnet-mlp/2")),
     r"lacks normalization, groups \(format fastnet-mlp/2 needs"),
    ("unknown-normalization", "layer", _set("normalization", np.str_("batchnorm")),
     (r": normalization must be one of 'none', 'batch', 'layer', 'group', 'instance', "
      r"'weight', 'switchable', got 'batchnorm'")),
    ("groups-not-dividing", "group", _set("groups", np.int64(5)),
     (r": groups=5 does not divide the hidden size 12 \(group norm needs groups dividing "
      r"every hidden size\)")),
    ("groups-zero", "layer", _set("groups", np.int64(0)), r": groups must be >= 1, got 0"),
    ("groups-float", "group", _set("groups", np.float64(2)),
     r": groups must be a scalar of kind 'iu', got dtype float64 and shape \(\)"),
    ("unknown-activation", "layer", _set("activation", np.str_("softsign")),
     r": cannot build the net it describes: .*softsign"),
    ("missing-param", "plain", _without("params/b2"), (
        r"holds parameters \['W1', 'W2', 'W3', 'b1', 'b3'\], the net it describes has "
        r"\['W1', 'W2', 'W3', 'b1', 'b2', 'b3'\]")),
    ("missing-mixing-weight", "switchable", _without("params/var_weight2"),
     r"holds parameters \[.*\], the net it describes has \[.*'var_weight2'\]"),
    ("weight-norm-named-plain", "weight-wd", _set("normalization", np.str_("none")),
     (r"holds parameters \['b1', 'b2', 'b3', 'g1', .*\], the net it describes has "
      r"\['W1', 'W2', 'W3', 'b1', 'b2', 'b3'\]")),
    ("missing-b1", "plain", _without("params/b1"),
     r"lacks params/b1 \(a fastnet-mlp/1 net has params/b1 ... params/b3\)"),
    ("wrong-shape", "plain", _set("params/W2", np.zeros((12, 5), np.float32)),
     r": W2 has shape \(12, 5\), the sizes it describes \(\[.*\]\) make it \(12, 6\)"),
    # checked before a net of the sizes is made: no 8 TB allocation for a tampered file
    ("huge-sizes", "plain", _set("hidden_size_list", np.array([10**12, 6])),
     r": W1 has shape \(\d+, 12\), the sizes it describes .* make it \(\d+, 1000000000000\)"),
    ("missing-weight", "plain", _without("params/W3"),
     r"lacks params/W3 \(or params/v3, weight norm's\)"),
    ("nan-dropout-ratio", "plain", _set("dropout_ratio", np.float64("nan")),
     r": dropout_ratio must be in \[0, 1\] \(0: no dropout\), got nan"),
    ("negative-dropout-ratio", "plain", _set("dropout_ratio", np.float64(-0.5)),
     r": dropout_ratio must be in \[0, 1\] \(0: no dropout\), got -0.5"),
    ("wrong-gamma-shape", "instance-tanh", _set("params/gamma1", np.ones(12, np.float32)),
     r": gamma1 has shape \(12,\), the net expects \(2,\)"),
    ("int-param", "plain", _set("params/b2", np.zeros(6, np.int64)),
     (r": b2 has dtype int64, but the net's \(b1's\) is float32: every array of a saved "
      r"net has its dtype")),
    # converted before, with only NumPy's RuntimeWarning where a value overflowed
    ("float64-param-in-float32-net", "plain", _set("params/W1", np.full((10, 12), 1e300)),
     r": W1 has dtype float64, but the net's \(b1's\) is float32"),
    ("float16-param", "plain", _set("params/W2", np.zeros((12, 6), np.float16)),
     r": W2 has dtype float16, but the net's \(b1's\) is float32"),
    ("float64-running-var", "bn", _set("running/var1", np.ones(12)),
     r": running/var1 has dtype float64, but the net's \(b1's\) is float32"),
    ("negative-running-var", "bn", _set("running/var2", -np.ones(6, np.float32)),
     r": running/var2 must hold variances >= 0, got -1.0"),
    ("float16-b1", "weight-wd", _set("params/b1", np.zeros(12, np.float16)),
     r": b1 must be a float32 or float64 array \(the net's dtype\), got dtype float16"),
    ("bad-sizes", "plain", _set("hidden_size_list", np.array([12.0, 6.0])),
     r"hidden_size_list must be a 1-D integer array"),
    ("bad-flag", "plain", _set("use_batchnorm", np.array([1, 0])),
     r"use_batchnorm must be a scalar"),
    ("missing-running-var", "bn", _without("running/var2"),
     r"has running/mean2 but lacks running/var2"),
    ("switchable-missing-running-mean", "switchable", _without("running/mean1"),
     r"has running/var1 but lacks running/mean1"),
    ("running-shape", "switchable", _set("running/var2", np.ones(3, np.float32)),
     r": running/var2 has shape \(3,\), the net expects \(6,\)"),
    ("stray-running-stats", "layer", _set("running/mean1", np.zeros(12, np.float32)),
     r"holds running/mean1, but the net it describes has no running statistics there"),
]


@pytest.mark.parametrize("case_id, corrupt, match",
                         [pytest.param(*b[1:], id=b[0]) for b in BAD_FILES])
def test_files_that_are_not_saved_nets_raise_value_error(case_id, corrupt, match, tmp_path):
    arrays = saved_arrays(trained(make_net(nets, CASES[case_id], np.float32), np.float32),
                          tmp_path)
    corrupt(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match) as error:
        io.load_net(path)
    message = str(error.value)
    assert message.startswith(str(path)) and "\n" not in message


def test_a_fastnet_that_reads_version_1_only_refuses_version_2(tmp_path, monkeypatch):
    """What a fastnet of the first format does with a version-2 file: its reader had
    this module's check, with 1 as the newest version."""
    io.save_net(make_net(nets, CASES["layer"], np.float32), tmp_path / "net.npz")
    monkeypatch.setattr(io, "FORMAT_VERSION", 1)
    monkeypatch.setattr(io, "FORMAT", "fastnet-mlp/1")
    monkeypatch.setattr(io, "FORMATS", ("fastnet-mlp/1",))
    with pytest.raises(ValueError, match=r"net.npz has format 'fastnet-mlp/2', newer than "
                       r"this fastnet reads \('fastnet-mlp/1'\); load it with a newer"):
        io.load_net(tmp_path / "net.npz")


@pytest.mark.parametrize("content, match", [
    (b"W1,b1\n1,2\n", "found a file NumPy cannot read as one"),
    (b"", "found a file NumPy cannot read as one"),
    (b"PK\x03\x04 truncated", "found a file NumPy cannot read as one"),
    (None, r"found a file NumPy cannot read as one \(a single .npy array"),
], ids=["text", "empty", "truncated-zip", "npy"])
def test_files_numpy_cannot_read_as_an_archive(content, match, tmp_path):
    path = tmp_path / "net.npz"
    if content is None:
        with open(path, "wb") as out:
            np.save(out, np.zeros(3))
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        io.load_net(path)


def test_pickled_arrays_are_refused(small_net, tmp_path):
    arrays = saved_arrays(small_net, tmp_path)
    arrays["params/W1"] = np.array([object()] * 3, dtype=object)
    np.savez(tmp_path / "pickled.npz", **arrays)
    with pytest.raises(ValueError, match="cannot read as one"):
        io.load_net(tmp_path / "pickled.npz")


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        io.load_net(tmp_path / "missing.npz")
