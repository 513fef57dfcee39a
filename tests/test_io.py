"""fastnet.io: saving and loading nets (format ``fastnet-mlp/1``), driven by
``cases.NET_CASES``: round trips of parameters, running statistics, architecture and
dtype with bit-equal predictions; atomic, non-clobbering writes; errors for files that
are not saved nets."""
import numpy as np
import pytest
from cases import DTYPES, NET_CASES, NETS, assert_bitwise_equal

from fastnet import io, nets, optimizers
from fastnet.reference import nets as reference_nets
from fastnet.reference import optimizers as reference_optimizers

SIZES = (12, [9, 7], 4)


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
    return {f"{name}{i}": getattr(layer, f"running_{name}")
            for i in range(1, len(net.hidden_size_list) + 1)
            if (layer := net.layers.get(f"BatchNorm{i}")) is not None
            for name in ("mean", "var")}


def assert_same_net(loaded, saved, dtype):
    assert loaded.dtype == dtype
    for attr in ("input_size", "hidden_size_list", "output_size", "activation"):
        assert getattr(loaded, attr) == getattr(saved, attr), attr
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
        assert_bitwise_equal(loaded_stats[key], value, key)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", NETS)
def test_round_trip_keeps_everything_and_predicts_bit_for_bit(case, dtype, tmp_path):
    net = trained(make_net(nets, case, dtype), dtype)
    path = tmp_path / "net.npz"
    io.save_net(net, path)
    loaded = io.load_net(path)
    assert type(loaded) is nets.MultiLayerNetExtend
    assert_same_net(loaded, net, dtype)
    x, _ = batch(dtype, seed=1)
    assert_bitwise_equal(loaded.predict(x), net.predict(x), "predict")
    # The loaded net's layers hold its params: a training step moves its predictions.
    trained(loaded, dtype, steps=1)
    assert not np.array_equal(loaded.predict(x), net.predict(x))


@pytest.mark.parametrize("case", [c for c in NETS if c.values[0].id in ("plain", "bn-dropout-wd")])
def test_reference_nets_round_trip_both_ways(case, tmp_path):
    dtype = np.dtype(np.float64)
    ref = trained(make_net(reference_nets, case, dtype), dtype)
    io.save_net(ref, tmp_path / "ref.npz")
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


def test_reference_batchnorm_before_any_batch_has_no_running_stats(tmp_path):
    bn = next(c for c in NET_CASES if c.id == "bn")
    net = make_net(reference_nets, bn, np.float32)
    io.save_net(net, tmp_path / "net.npz")
    with np.load(tmp_path / "net.npz", allow_pickle=False) as saved:
        assert not any(key.startswith("running/") for key in saved)
    loaded = io.load_net(tmp_path / "net.npz", net_class=reference_nets.MultiLayerNetExtend)
    assert loaded.layers["BatchNorm1"].running_mean is None


def test_dtype_and_constructor_options(tmp_path):
    case = next(c for c in NET_CASES if c.id == "bn-dropout-wd")
    net = trained(make_net(nets, case, np.float32), np.float32)
    io.save_net(net, tmp_path / "net.npz")
    loaded = io.load_net(tmp_path / "net.npz", dtype=np.float64, weight_decay_lambda=0.5,
                         seed=11)
    assert loaded.dtype == np.float64 and loaded.weight_decay_lambda == 0.5
    for key, value in net.params.items():
        assert loaded.params[key].dtype == np.float64
        np.testing.assert_array_equal(loaded.params[key], value.astype(np.float64))
    x, _ = batch(np.float32, seed=1)
    np.testing.assert_allclose(loaded.predict(x), net.predict(x), rtol=1e-5, atol=1e-5)


def test_file_format_as_documented(tmp_path):
    case = next(c for c in NET_CASES if c.id == "sigmoid-bn-dropout")
    net = make_net(nets, case, np.float32)
    io.save_net(net, tmp_path / "net")
    assert [p.name for p in tmp_path.iterdir()] == ["net"]  # the name as given
    with np.load(tmp_path / "net", allow_pickle=False) as saved:
        files = dict(saved)
    assert str(files.pop("format")) == io.FORMAT == "fastnet-mlp/1"
    assert files.pop("input_size") == 12 and files.pop("output_size") == 4
    sizes = files.pop("hidden_size_list")
    assert sizes.dtype == np.int64 and sizes.tolist() == [9, 7]
    assert str(files.pop("activation")) == "sigmoid"
    assert files.pop("use_batchnorm").dtype == np.bool_
    assert files.pop("dropout_ratio") == 0.3
    expected = {f"params/{key}": value.shape for key, value in net.params.items()}
    expected.update({f"running/{stat}{i}": (width,) for i, width in enumerate([9, 7], 1)
                     for stat in ("mean", "var")})
    assert {key: value.shape for key, value in files.items()} == expected
    assert all(value.dtype == np.float32 for value in files.values())


# ------------------------------------------------------------------ safe writes

@pytest.fixture
def small_net():
    return make_net(nets, NET_CASES[0], np.float32)


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
    other = make_net(nets, NET_CASES[0], np.float32, seed=4)
    with monkeypatch.context() as m:
        patch(m)
        with pytest.raises((OSError, KeyboardInterrupt)):
            io.save_net(other, path, overwrite=True)
        with pytest.raises((OSError, KeyboardInterrupt)):
            io.save_net(other, tmp_path / "new.npz")  # no file to keep: none is left
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["net.npz"]
    assert_same_net(io.load_net(path), small_net, np.float32)


def test_save_net_rejects_what_is_not_a_net(tmp_path):
    with pytest.raises(TypeError, match="save_net takes a MultiLayerNet"):
        io.save_net({"W1": np.zeros((2, 2))}, tmp_path / "net.npz")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ bad files

def saved_arrays(net, tmp_path):
    io.save_net(net, tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz") as saved:
        return dict(saved)


def _without(key):
    return lambda arrays: arrays.pop(key)


def _set(key, value):
    return lambda arrays: arrays.__setitem__(key, value)


BAD_FILES = [
    ("no-format", _without("format"),
     r"is not a fastnet net: expected format 'fastnet-mlp/1', found no 'format' entry"),
    ("other-format", _set("format", np.str_("keras-h5/3")),
     r"is not a fastnet net: expected format 'fastnet-mlp/1', found 'keras-h5/3'"),
    ("newer-version", _set("format", np.str_("fastnet-mlp/2")),
     r"has format 'fastnet-mlp/2', newer than this fastnet reads \('fastnet-mlp/1'\)"),
    ("missing-architecture", _without("activation"), r"lacks activation \(format"),
    ("missing-param", _without("params/b2"), (
        r"holds parameters \['W1', 'W2', 'W3', 'b1', 'b3'\], the net it describes has "
        r"\['W1', 'W2', 'W3', 'b1', 'b2', 'b3'\]")),
    ("missing-W1", _without("params/W1"), r"lacks params/W1"),
    ("wrong-shape", _set("params/W2", np.zeros((9, 5), np.float32)),
     r": W2 has shape \(9, 5\), the net expects \(9, 7\)"),
    ("int-param", _set("params/b1", np.zeros(9, np.int64)), r"b1 must be a float array"),
    ("bad-sizes", _set("hidden_size_list", np.array([9.0, 7.0])),
     r"hidden_size_list must be a 1-D integer array"),
    ("bad-flag", _set("use_batchnorm", np.array([1, 0])), r"use_batchnorm must be a scalar"),
]


@pytest.mark.parametrize("corrupt, match", [pytest.param(*b[1:], id=b[0]) for b in BAD_FILES])
def test_files_that_are_not_saved_nets_raise_value_error(corrupt, match, small_net, tmp_path):
    arrays = saved_arrays(small_net, tmp_path)
    corrupt(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match) as error:
        io.load_net(path)
    assert str(path) in str(error.value)


def test_missing_running_variance(tmp_path):
    net = make_net(nets, next(c for c in NET_CASES if c.id == "bn"), np.float32)
    arrays = saved_arrays(net, tmp_path)
    del arrays["running/var2"]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="has running/mean2 but lacks running/var2"):
        io.load_net(tmp_path / "bad.npz")


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
