"""Tests for fastnet.datasets on tiny IDX files made here and a loopback HTTP server.

Nothing here reaches the internet: every test runs with the mirror tables emptied, the
mirror environment variables unset, the user cache and the system datasets folder
redirected into ``tmp_path``, and proxies bypassed for the loopback server.
"""
import gzip
import hashlib
import http.server
import os
import re
import stat
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastnet
from fastnet import datasets
from fastnet.datasets import DatasetNotFoundError, fetch, load_fashion_mnist, load_idx, load_mnist

NAMES = list(datasets.FILES.values())
TRAIN_NAMES = [n for n in NAMES if n.startswith("train")]


# --- tiny IDX files ---------------------------------------------------------------

def idx_bytes(array):
    """The uncompressed IDX encoding of a uint8 array."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, np.uint8).tobytes()


def write_idx(path, array, gz=True):
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)


def tiny_split(n, seed):
    """n random 28x28 images (with a 0 and a 255 pixel) and labels cycling 0..9."""
    images = np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    return images, ((np.arange(n) + seed) % 10).astype(np.uint8)


def make_dataset(folder, n_train=12, n_test=6, seed=0, gz=True, only=None):
    """Write the four standard files (or those named in ``only``); return the arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    x_train, t_train = tiny_split(n_train, seed)
    x_test, t_test = tiny_split(n_test, seed + 1)
    arrays = {"x_train": x_train, "t_train": t_train, "x_test": x_test, "t_test": t_test}
    for key, name in datasets.FILES.items():
        if only is None or name in only:
            write_idx(folder / (name if gz else name.removesuffix(".gz")), arrays[key], gz)
    return arrays


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No real cache, no system datasets, no default mirrors, no proxies."""
    monkeypatch.setenv("FASTNET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("no_proxy", "*")
    for var in ("FASTNET_DATA", "FASTNET_MNIST_MIRRORS", "FASTNET_FASHION_MNIST_MIRRORS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(datasets, "SYSTEM_DATA_DIR", tmp_path / "system")
    for spec in datasets.DATASETS.values():
        monkeypatch.setattr(spec, "mirrors", [])


def cache_folder(name="mnist"):
    return Path(os.environ["FASTNET_CACHE_DIR"]) / "datasets" / name


# --- load_idx ------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(array=hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0,
                                                    max_side=5)),
       gz=st.booleans())
def test_load_idx_round_trips_any_ubyte_array(array, gz):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "a.idx"
        write_idx(path, array, gz)
        loaded = load_idx(path)
    assert loaded.dtype == np.uint8 and loaded.shape == array.shape
    np.testing.assert_array_equal(loaded, array)
    assert loaded.flags.writeable


GOOD = idx_bytes(np.zeros((2, 28, 28), np.uint8))
CORRUPT_IDX = [
    ("wrong type code", b"\0\0\x09\x03" + GOOD[4:], False, "not an unsigned-byte IDX file"),
    ("not IDX at all", b"PK\x03\x04" + GOOD[4:], False, "magic 504b0304"),
    ("empty file", b"", False, "magic missing"),
    ("zero dims", b"\0\0\x08\x00", False, "not an unsigned-byte IDX file"),
    ("truncated header", GOOD[:9], False, "truncated IDX header"),
    ("truncated payload", GOOD[:-1], False, "2x28x28 = 1568 bytes of data, file has 1567"),
    ("trailing bytes", GOOD + b"\0", False, "file has 1569; truncated or corrupt"),
    ("truncated gzip", gzip.compress(GOOD)[:-12], True, "truncated or corrupt gzip"),
    ("gzip bad crc", gzip.compress(GOOD)[:-8] + b"\0" * 8, True, "truncated or corrupt gzip"),
]


@pytest.mark.parametrize("data, is_gz, message",
                         [case[1:] for case in CORRUPT_IDX], ids=[c[0] for c in CORRUPT_IDX])
def test_load_idx_rejects_corrupt_files_naming_them(tmp_path, data, is_gz, message):
    path = tmp_path / ("bad.gz" if is_gz else "bad")
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message) as err:
        load_idx(path)
    assert str(path) in str(err.value)


# --- dataset-level validation -------------------------------------------------------

def break_labels_magic(folder):
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros((6, 28, 28), np.uint8))


def break_image_size(folder):
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((6, 27, 28), np.uint8))


def break_counts(folder):
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(11, np.uint8))


def break_label_range(folder):
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.array([0, 1, 2, 10, 3, 4], np.uint8))


def break_empty_split(folder):
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((0, 28, 28), np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(0, np.uint8))


@pytest.mark.parametrize("corrupt, message", [
    (break_empty_split, r"t10k-images-idx3-ubyte.gz holds no images"),
    (break_labels_magic, r"t10k-labels-idx1-ubyte.gz: magic 0x00000803, expected 0x00000801"),
    (break_image_size, r"t10k-images-idx3-ubyte.gz: images are 27x28, expected 28x28"),
    (break_counts, r"holds 12 images but .*train-labels-idx1-ubyte.gz holds 11 labels"),
    (break_label_range, r"t10k-labels-idx1-ubyte.gz: label 10 out of range 0..9"),
])
def test_inconsistent_dataset_raises_value_error(tmp_path, corrupt, message):
    make_dataset(tmp_path / "data")
    corrupt(tmp_path / "data")
    with pytest.raises(ValueError, match=message):
        load_mnist(data_dir=tmp_path / "data", download=False)


def test_empty_test_split_is_refused_by_load_test_set(tmp_path):
    make_dataset(tmp_path / "data")
    break_empty_split(tmp_path / "data")
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz holds no images"):
        datasets.load_test_set(data_dir=tmp_path / "data")


# --- another published file where one dataset's is looked for -----------------------
# A folder searched for MNIST may hold Fashion-MNIST (the same four file names), or a
# split's file may be the other split's: each is a published file, known by the SHA-256
# of its unpacked bytes, and is refused by name.  Here the tiny files of a second folder
# stand in for Fashion-MNIST's published ones.

@pytest.fixture
def published_fashion(monkeypatch, tmp_path):
    """A folder whose four files Fashion-MNIST's table says are its published ones."""
    arrays = make_dataset(tmp_path / "fashion", seed=5)
    table = {name: hashlib.sha256(idx_bytes(arrays[key])).hexdigest()
             for key, name in datasets.FILES.items()}
    monkeypatch.setattr(datasets.DATASETS["fashion-mnist"], "sha256", table)
    return tmp_path / "fashion"


def test_published_files_of_their_own_dataset_load(published_fashion):
    (x_train, _), _ = load_fashion_mnist(data_dir=published_fashion, download=False)
    assert x_train.shape == (12, 784)


@pytest.mark.parametrize("how", ["data_dir", "FASTNET_DATA"])
def test_another_datasets_files_are_refused_by_name(published_fashion, monkeypatch, how):
    if how == "FASTNET_DATA":  # the files directly in $FASTNET_DATA, searched for both
        monkeypatch.setenv("FASTNET_DATA", str(published_fashion))
    data_dir = published_fashion if how == "data_dir" else None
    expected = (f"{published_fashion / 'train-images-idx3-ubyte.gz'} holds Fashion-MNIST's "
                "training images, not MNIST's training images")
    with pytest.raises(ValueError, match=expected):
        load_mnist(data_dir=data_dir, download=False)
    with pytest.raises(ValueError, match="holds Fashion-MNIST's test images, not MNIST's"):
        datasets.load_test_set("mnist", data_dir=data_dir)


def test_a_splits_file_that_is_the_other_splits_is_refused(published_fashion, tmp_path):
    """The test images copied over the training images: the test set would leak."""
    folder = tmp_path / "leak"
    folder.mkdir()
    for name in datasets.FILES.values():
        (folder / name).write_bytes((published_fashion / name).read_bytes())
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(
        (published_fashion / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (folder / "train-images-idx3-ubyte.gz").write_bytes(
        (published_fashion / "t10k-images-idx3-ubyte.gz").read_bytes())
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz holds Fashion-MNIST's "
                                         "test images, not Fashion-MNIST's training images"):
        load_fashion_mnist(data_dir=folder, download=False)


def test_a_cache_parsed_before_the_files_were_known_is_not_served(published_fashion,
                                                                  monkeypatch):
    """The parsed cache holds arrays, not files: they are identified all the same."""
    table = datasets.DATASETS["fashion-mnist"].sha256
    monkeypatch.setattr(datasets.DATASETS["fashion-mnist"], "sha256", {})
    load_mnist(data_dir=published_fashion, download=False)  # unknown yet: used as given
    monkeypatch.setattr(datasets.DATASETS["fashion-mnist"], "sha256", table)
    with pytest.raises(ValueError, match="holds Fashion-MNIST's training images"):
        load_mnist(data_dir=published_fashion, download=False)  # cache stamp matches
    for name in datasets.FILES.values():
        (published_fashion / name).unlink()
    with pytest.raises(DatasetNotFoundError, match=r"parsed cache\): invalid \(.*holds "
                                                   "Fashion-MNIST's training images"):
        load_mnist(data_dir=published_fashion, download=False)  # the cache alone


def test_real_mnist_test_digits_are_the_published_ones(monkeypatch):
    """The table's digests are those of the real files' unpacked bytes, as parsed."""
    folder = os.environ.get("FASTNET_MNIST_DIR")
    if not folder:
        pytest.skip("FASTNET_MNIST_DIR is not set (the real MNIST test digits)")
    x, t = datasets.load_test_set("mnist", normalize=False, data_dir=folder)
    assert datasets._published_as(x.reshape(-1, 28, 28)) == ("mnist", "x_test")
    assert datasets._published_as(t.astype(np.uint8)) == ("mnist", "t_test")
    with pytest.raises(ValueError, match="holds MNIST's test images, not Fashion-MNIST's"):
        datasets.load_test_set("fashion-mnist", data_dir=folder)


def test_real_fashion_mnist_in_fastnet_data_is_not_taken_for_mnist(monkeypatch):
    """The reported case: FASTNET_DATA pointing at Debian's Fashion-MNIST folder."""
    folder = Path("/usr/share/datasets/fashion-mnist")
    if not all((folder / name).is_file() for name in datasets.FILES.values()):
        pytest.skip(f"Fashion-MNIST is not installed in {folder} "
                    "(apt-get install dataset-fashion-mnist)")
    monkeypatch.setenv("FASTNET_DATA", str(folder))
    with pytest.raises(ValueError, match="holds Fashion-MNIST's test images, not MNIST's"):
        datasets.load_test_set("mnist")
    (x_train, _), (x_test, _) = load_fashion_mnist(download=False)
    assert x_train.shape == (60000, 784) and x_test.shape == (10000, 784)
    with pytest.raises(ValueError, match="holds Fashion-MNIST's training images, not MNIST's"):
        load_mnist(download=False)


# --- conversions ---------------------------------------------------------------------

@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("flatten", [True, False])
@pytest.mark.parametrize("one_hot_label", [True, False])
def test_layouts_and_dtypes(tmp_path, normalize, flatten, one_hot_label):
    raw = make_dataset(tmp_path / "data")
    (x_train, t_train), (x_test, t_test) = load_mnist(
        normalize, flatten, one_hot_label, data_dir=tmp_path / "data", download=False)
    for x, t, key in ((x_train, t_train, "train"), (x_test, t_test, "test")):
        n = len(raw["t_" + key])
        assert x.shape == ((n, 784) if flatten else (n, 1, 28, 28))
        assert x.dtype == (np.float32 if normalize else np.uint8)
        expected = raw["x_" + key].astype(np.float32) / 255 if normalize else raw["x_" + key]
        np.testing.assert_array_equal(x.reshape(n, 28, 28), expected)
        if one_hot_label:
            assert t.shape == (n, 10) and t.dtype == np.float32
            np.testing.assert_array_equal(t.argmax(axis=1), raw["t_" + key])
            np.testing.assert_array_equal(t.sum(axis=1), 1)
        else:
            assert t.dtype == np.int64
            np.testing.assert_array_equal(t, raw["t_" + key])
    if normalize:
        assert x_train.min() == 0 and x_train.max() == 1


def test_unpacked_files_are_accepted(tmp_path):
    raw = make_dataset(tmp_path / "data", gz=False)
    (x_train, _), _ = load_mnist(normalize=False, data_dir=tmp_path / "data", download=False)
    np.testing.assert_array_equal(x_train.reshape(-1, 28, 28), raw["x_train"])


# --- where files are looked for ------------------------------------------------------

def test_search_order(tmp_path, monkeypatch):
    """data_dir, $FASTNET_DATA/<name>, $FASTNET_DATA, user cache, system folder."""
    env_root = tmp_path / "env"
    folders = [tmp_path / "explicit", env_root / "mnist", env_root, cache_folder(),
               tmp_path / "system" / "mnist"]
    for n_train, folder in enumerate(folders, start=10):
        make_dataset(folder, n_train=n_train)
    monkeypatch.setenv("FASTNET_DATA", str(env_root))

    def n_train(**kwargs):
        return len(load_mnist(download=False, **kwargs)[0][1])

    assert n_train(data_dir=folders[0]) == 10
    assert n_train() == 11
    os.remove(folders[1] / NAMES[0])  # an incomplete folder is skipped
    assert n_train() == 12
    monkeypatch.delenv("FASTNET_DATA")
    assert n_train() == 13
    os.remove(folders[3] / NAMES[0])
    assert n_train() == 14


def test_files_split_over_folders_are_not_combined(tmp_path, monkeypatch):
    make_dataset(tmp_path / "explicit", only=TRAIN_NAMES)
    make_dataset(tmp_path / "env", only=set(NAMES) - set(TRAIN_NAMES))
    monkeypatch.setenv("FASTNET_DATA", str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError) as err:
        load_mnist(data_dir=tmp_path / "explicit", download=False)
    message = str(err.value)
    assert f"{tmp_path / 'explicit'} (data_dir): missing t10k-images-idx3-ubyte.gz" in message
    assert f"{tmp_path / 'env'} ($FASTNET_DATA): missing train-images-idx3-ubyte.gz" in message
    assert f"{tmp_path / 'env' / 'mnist'} ($FASTNET_DATA/mnist): no such folder" in message
    assert "download=False, so no download was tried" in message
    assert "pass data_dir=" in message and "FASTNET_DATA" in message
    assert isinstance(err.value, OSError)


def test_fashion_mnist_has_its_own_folders_and_hint(tmp_path, monkeypatch):
    make_dataset(tmp_path / "env" / "mnist")
    monkeypatch.setenv("FASTNET_DATA", str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(download=False)
    make_dataset(tmp_path / "system" / "fashion-mnist", n_train=13)
    assert len(load_fashion_mnist(download=False)[0][1]) == 13


# --- parsed cache --------------------------------------------------------------------

def test_npz_cache_round_trip_and_invalidation(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    make_dataset(folder, seed=0)
    first = load_mnist(normalize=False, data_dir=folder, download=False)
    cache = cache_folder() / "mnist-parsed.npz"
    with np.load(cache, allow_pickle=False) as cached:  # no object arrays inside
        assert set(cached.files) == {"stamp", *datasets.FILES}
        np.testing.assert_array_equal(cached["t_train"], first[0][1])

    def no_parsing(path):
        raise AssertionError(f"parsed {path} although the cache is fresh")

    with monkeypatch.context() as patch:
        patch.setattr(datasets, "load_idx", no_parsing)
        second = load_mnist(normalize=False, data_dir=folder, download=False)
    np.testing.assert_array_equal(second[0][0], first[0][0])

    new = make_dataset(folder, seed=5)  # same sizes, new content and mtime
    for name in NAMES:
        os.utime(folder / name, ns=(1, 10**18))
    (x_train, _), _ = load_mnist(normalize=False, data_dir=folder, download=False)
    np.testing.assert_array_equal(x_train.reshape(-1, 28, 28), new["x_train"])


def test_unreadable_cache_is_rebuilt(tmp_path):
    make_dataset(tmp_path / "data")
    cache = cache_folder() / "mnist-parsed.npz"
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"not a zip file")
    load_mnist(data_dir=tmp_path / "data", download=False)
    with np.load(cache, allow_pickle=False) as cached:
        assert "stamp" in cached.files


def test_a_damaged_cache_with_a_matching_stamp_is_parsed_again(tmp_path):
    """Arrays cut short or labels out of 0..9 under a stamp that still matches the
    files: the cache is checked as parsed files are, and rebuilt."""
    make_dataset(tmp_path / "data")
    good = load_mnist(data_dir=tmp_path / "data", download=False, normalize=False)
    cache = cache_folder() / "mnist-parsed.npz"
    with np.load(cache, allow_pickle=False) as cached:
        arrays = dict(cached)
    arrays["x_train"], arrays["t_train"] = arrays["x_train"][:5], arrays["t_train"] + 200
    np.savez(cache, **arrays)
    again = load_mnist(data_dir=tmp_path / "data", download=False, normalize=False)
    for (x, t), (x_good, t_good) in zip(again, good):
        np.testing.assert_array_equal(x, x_good)
        np.testing.assert_array_equal(t, t_good)


def cached_then_gone(folder, only=None, monkeypatch=None):
    """Load ``folder`` once (writing the parsed cache), then delete its files (those in
    ``only``, else all); return the arrays.  With ``monkeypatch``, parsing now fails."""
    raw = make_dataset(folder)
    load_mnist(data_dir=folder, download=False)
    for name in NAMES if only is None else only:
        os.remove(folder / name)
    if monkeypatch is not None:
        monkeypatch.setattr(datasets, "load_idx", lambda path: pytest.fail(f"parsed {path}"))
    return raw


def test_parsed_cache_serves_every_loader_when_the_files_are_gone(tmp_path, monkeypatch):
    """Offline, with only the cache: load_mnist (downloading or not, the folder given as
    data_dir or through FASTNET_DATA), load_test_set and load_dataset get the cached
    arrays, without any download."""
    raw = cached_then_gone(tmp_path / "data", monkeypatch=monkeypatch)
    monkeypatch.setattr(datasets, "fetch", lambda *a, **k: pytest.fail("tried a download"))
    monkeypatch.setenv("FASTNET_DATA", str(tmp_path / "data"))
    (tmp_path / "elsewhere").mkdir()
    for kwargs in ({}, {"download": False}, {"data_dir": tmp_path / "data"},
                   {"data_dir": tmp_path / "elsewhere"}):
        (x_train, t_train), (x_test, t_test) = load_mnist(normalize=False, **kwargs)
        np.testing.assert_array_equal(x_train.reshape(-1, 28, 28), raw["x_train"])
        np.testing.assert_array_equal(t_train, raw["t_train"])
        np.testing.assert_array_equal(x_test.reshape(-1, 28, 28), raw["x_test"])
        assert t_test.dtype == np.int64
    x, t = datasets.load_test_set("mnist", flatten=False, one_hot_label=True)
    assert x.shape == (6, 1, 28, 28) and x.dtype == np.float32
    np.testing.assert_array_equal(t.argmax(axis=1), raw["t_test"])
    train, test, description = datasets.load_dataset("mnist")
    assert (len(train[0]), len(test[0])) == (12, 6) and "FALLBACK" not in description
    assert description.endswith(f"images from the parsed cache {cache_folder() / 'mnist-parsed.npz'}")


def test_load_dataset_names_the_folder_it_read(tmp_path, monkeypatch):
    """A data_dir that does not hold the files (an existing folder) is searched past
    (the documented order): the description says which folder served."""
    make_dataset(tmp_path / "given")
    make_dataset(tmp_path / "env" / "mnist", seed=1)
    monkeypatch.setenv("FASTNET_DATA", str(tmp_path / "env"))
    description = datasets.load_dataset("mnist", tmp_path / "given")[2]
    assert description == f"MNIST: 12 train / 6 test images from {tmp_path / 'given'}"
    (tmp_path / "empty").mkdir()
    description = datasets.load_dataset("mnist", tmp_path / "empty")[2]
    assert description.endswith(f"images from {tmp_path / 'env' / 'mnist'}")


def test_parsed_cache_of_a_folder_not_searched_is_not_served(tmp_path, monkeypatch):
    """A cache parsed from a ``data_dir`` that this search does not look in (a test's
    made-up files, a one-off folder) is no answer to it: not found, saying why."""
    cached_then_gone(tmp_path / "data", monkeypatch=monkeypatch)
    (tmp_path / "elsewhere").mkdir()
    for kwargs in ({}, {"data_dir": tmp_path / "elsewhere"}):
        with pytest.raises(DatasetNotFoundError) as err:
            load_mnist(download=False, **kwargs)
        assert (f"(parsed cache): parsed from {(tmp_path / 'data').resolve()}, a folder this "
                f"search does not look in" in str(err.value))
        with pytest.raises(DatasetNotFoundError, match="does not look in"):
            datasets.load_test_set("mnist", **kwargs)
    assert load_mnist(data_dir=tmp_path / "data", download=False)[0][0].shape == (12, 784)


def test_parsed_cache_serves_when_the_remaining_files_are_unchanged(tmp_path, monkeypatch):
    """The training files gone, the test files still there: the full cached set, not
    the fallback split of the test digits."""
    cached_then_gone(tmp_path / "data", only=TRAIN_NAMES, monkeypatch=monkeypatch)
    train, test, description = datasets.load_dataset("mnist", tmp_path / "data")
    assert (len(train[0]), len(test[0])) == (12, 6) and "FALLBACK" not in description


def test_stale_parsed_cache_is_never_served(tmp_path, monkeypatch):
    """A file the cache was parsed from changed: neither load_mnist nor load_test_set
    serve the cache (load_test_set parses the test files at hand instead)."""
    folder = tmp_path / "data"
    cached_then_gone(folder, only=TRAIN_NAMES)
    new = make_dataset(folder, seed=5, only=set(NAMES) - set(TRAIN_NAMES))
    with pytest.raises(DatasetNotFoundError) as err:
        load_mnist(data_dir=folder, download=False)
    assert (f"{cache_folder() / 'mnist-parsed.npz'} (parsed cache): stale: "
            f"{(folder / NAMES[2]).resolve()}, which it was parsed from, has changed"
            in str(err.value))
    x, _ = datasets.load_test_set("mnist", normalize=False, data_dir=folder)
    np.testing.assert_array_equal(x.reshape(-1, 28, 28), new["x_test"])
    os.remove(folder / NAMES[3])  # the test labels gone, the test images changed
    with pytest.raises(DatasetNotFoundError, match="parsed cache .*: stale: .*has changed"):
        datasets.load_test_set("mnist", data_dir=folder)


def test_parsed_cache_is_stale_when_a_file_comes_back_in_its_other_form(tmp_path):
    """A file the cache was parsed from (``.gz``) gone, and the same name unpacked in its
    folder with other images: the cache is stale, not served."""
    folder = tmp_path / "data"
    cached_then_gone(folder)
    make_dataset(folder, seed=9, gz=False, only={NAMES[2]})
    unpacked = folder / NAMES[2].removesuffix(".gz")
    assert unpacked.is_file()
    with pytest.raises(DatasetNotFoundError) as err:
        load_mnist(data_dir=folder, download=False)
    assert (f"stale: {(folder / NAMES[2]).resolve()}, which it was parsed from, is now "
            f"{unpacked.resolve()}" in str(err.value))


def test_invalid_parsed_cache_is_not_served(tmp_path, monkeypatch):
    cached_then_gone(tmp_path / "data")
    monkeypatch.setenv("FASTNET_DATA", str(tmp_path / "data"))  # searched: see above
    cache = cache_folder() / "mnist-parsed.npz"
    with np.load(cache) as cached:
        arrays = dict(cached)
    arrays["t_train"] = arrays["t_train"][:-1]
    np.savez(cache, **arrays)
    with pytest.raises(DatasetNotFoundError, match=r"\(parsed cache\): invalid \(.*holds 12 "
                       r"images but .*t_train\] holds 11 labels\)"):
        load_mnist(download=False)
    datasets.load_test_set("mnist")  # the test split is whole
    cache.write_bytes(b"not a zip file")
    with pytest.raises(DatasetNotFoundError, match=r"\(parsed cache\): unreadable"):
        load_mnist(download=False)


def test_not_found_names_the_parsed_cache_and_how_to_provide(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        load_mnist(download=False)
    assert f"{cache_folder() / 'mnist-parsed.npz'} (parsed cache): no such file" \
        in str(err.value)
    with pytest.raises(DatasetNotFoundError) as err:
        datasets.load_test_set("mnist")
    message = str(err.value)
    assert "parsed cache" in message and "no such file" in message
    assert "pass data_dir=<folder>, or set FASTNET_DATA=<folder>" in message
    assert "MIRRORS" not in message  # load_test_set never downloads


# --- downloads from a loopback server ------------------------------------------------

TINY = {}  # file name -> gz bytes of a tiny valid dataset


def tiny_files():
    if not TINY:
        with tempfile.TemporaryDirectory() as folder:
            make_dataset(Path(folder))
            TINY.update({name: (Path(folder) / name).read_bytes() for name in NAMES})
    return TINY


class Handler(http.server.BaseHTTPRequestHandler):
    """/good/<f> serves f; /corrupt/<f> one flipped byte; /truncated/<f> half the
    promised bytes; /trickle/<f> a byte every 0.05 s (never a silent read); anything
    else 404."""

    def do_GET(self):
        self.server.requests.append(self.path)
        self.server.user_agents.add(self.headers["User-Agent"])
        mode, _, name = self.path.strip("/").partition("/")
        body = tiny_files().get(name)
        if body is None or mode not in ("good", "corrupt", "truncated", "trickle"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "trickle":
            for k in range(len(body)):
                try:
                    self.wfile.write(body[k:k + 1])
                    self.wfile.flush()
                except OSError:  # the client gave up
                    return
                time.sleep(0.05)
            return
        if mode == "corrupt":
            body = body[:-20] + bytes([body[-20] ^ 0xFF]) + body[-19:]
        self.wfile.write(body[: len(body) // 2] if mode == "truncated" else body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    """Base URL of a loopback server; the tiny files' MD5s become the published ones."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.requests, httpd.user_agents = [], set()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01},
                              daemon=True)
    thread.start()
    md5 = {name: hashlib.md5(body).hexdigest() for name, body in tiny_files().items()}
    monkeypatch.setattr(datasets.DATASETS["mnist"], "md5", md5)
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.mark.parametrize("bad_mirror", ["corrupt", "truncated", "missing"])
def test_fetch_falls_back_to_next_mirror(tmp_path, server, bad_mirror, capsys):
    httpd, url = server
    folder = fetch("mnist", tmp_path / "dl", mirrors=[f"{url}/{bad_mirror}", f"{url}/good/"])
    assert sorted(os.listdir(folder)) == sorted(NAMES)  # no temp files left
    for name, body in tiny_files().items():
        assert (folder / name).read_bytes() == body
    assert len(httpd.requests) == 8
    assert httpd.user_agents == {f"fastnet/{fastnet.__version__}"}
    assert "100%" in capsys.readouterr().err


def test_a_mirror_that_trickles_fails_at_the_deadline(tmp_path, server, monkeypatch):
    """Each read is answered within the per-read timeout; the whole file is not within
    DOWNLOAD_DEADLINE_S: that mirror fails with why, the next one serves."""
    httpd, url = server
    monkeypatch.setattr(datasets, "DOWNLOAD_DEADLINE_S", 0.3)
    monkeypatch.setattr(datasets, "_CHUNK", 1)  # pooch checks the bar after each chunk
    start = time.monotonic()
    folder = fetch("mnist", tmp_path / "dl", mirrors=[f"{url}/trickle", f"{url}/good/"])
    assert time.monotonic() - start < 30
    for name, body in tiny_files().items():
        assert (folder / name).read_bytes() == body
    assert sorted(os.listdir(folder)) == sorted(NAMES)  # no temp files left
    assert sum(path.startswith("/trickle/") for path in httpd.requests) == 4


def test_downloaded_files_get_the_umask_mode(tmp_path, server):
    """Not the 0600 of a temporary file: a shared cache stays readable to others."""
    _, url = server
    umask = os.umask(0o027)
    try:
        folder = fetch("mnist", tmp_path / "dl", mirrors=[f"{url}/good"])
    finally:
        os.umask(umask)
    assert {stat.S_IMODE((folder / name).stat().st_mode) for name in NAMES} == {0o640}


def test_fetch_all_mirrors_failing_reports_each_and_leaves_nothing(tmp_path, server):
    _, url = server
    mirrors = [f"{url}/missing", f"{url}/corrupt", f"{url}/truncated", "http://127.0.0.1:1"]
    with pytest.raises(DatasetNotFoundError) as err:
        fetch("mnist", tmp_path / "dl", mirrors=mirrors)
    message = str(err.value)
    first = NAMES[0]
    assert f"{url}/missing/{first}: HTTP Error 404" in message
    expected = datasets.DATASETS["mnist"].md5[first]
    assert (f"{url}/corrupt/{first}: MD5 hash of downloaded file ({first}) does not match "
            f"the known hash: expected md5:{expected}") in message
    assert f"{url}/truncated/{first}: truncated: received " in message
    assert f"http://127.0.0.1:1/{first}: " in message
    assert os.listdir(tmp_path / "dl") == []


def test_fetch_failure_lists_the_failing_files_urls_only(tmp_path, server):
    """A file found on a later mirror does not appear in the error of a file that fails."""
    _, url = server
    first, second = NAMES[0], NAMES[1]
    checksums = dict(datasets.DATASETS["mnist"].md5, **{second: "0" * 32})
    with pytest.raises(DatasetNotFoundError) as err:
        fetch("mnist", tmp_path / "dl", mirrors=[f"{url}/missing", f"{url}/good"],
              checksums=checksums)
    message = str(err.value)
    assert f"could not download {second}" in message
    assert f"{url}/missing/{second}: HTTP Error 404" in message
    assert first not in message


def test_load_downloads_missing_training_files_into_data_dir(tmp_path, server, monkeypatch):
    """Like CI's folder: only the test set present; the training files are fetched."""
    httpd, url = server
    make_dataset(tmp_path / "data", only=set(NAMES) - set(TRAIN_NAMES))
    monkeypatch.setenv("FASTNET_MNIST_MIRRORS", f"{url}/missing, {url}/good")
    (x_train, _), _ = load_mnist(data_dir=tmp_path / "data")
    assert x_train.shape == (12, 784)
    assert sorted(httpd.requests) == sorted(f"/{m}/{n}" for m in ("missing", "good")
                                            for n in TRAIN_NAMES)


def test_load_downloads_into_user_cache_and_finds_it_there(tmp_path, server, monkeypatch):
    _, url = server
    monkeypatch.setenv("FASTNET_MNIST_MIRRORS", f"{url}/good/")
    load_mnist()
    assert set(NAMES) <= set(os.listdir(cache_folder()))
    load_mnist(download=False)


def test_download_false_never_touches_the_network(server, monkeypatch):
    httpd, url = server
    monkeypatch.setenv("FASTNET_MNIST_MIRRORS", f"{url}/good/")
    with pytest.raises(DatasetNotFoundError):
        load_mnist(download=False)
    assert httpd.requests == []


def test_load_with_every_mirror_failing_says_everything(tmp_path, server, monkeypatch):
    _, url = server
    monkeypatch.setattr(datasets.DATASETS["mnist"], "mirrors", [f"{url}/corrupt"])
    with pytest.raises(DatasetNotFoundError) as err:
        load_mnist()
    message = str(err.value)
    assert f"{cache_folder()} (user cache): no such folder" in message
    assert f"could not download {NAMES[0]} into {cache_folder()}" in message
    assert f"{url}/corrupt/{NAMES[0]}: MD5 hash of downloaded file ({NAMES[0]}) does not " \
        "match the known hash" in message
    assert "FASTNET_MNIST_MIRRORS" in message


@pytest.mark.parametrize("loader", [load_mnist, datasets.load_test_set,
                                    lambda data_dir: datasets.load_dataset("mnist", data_dir)])
def test_a_data_dir_that_does_not_exist_is_refused_not_searched_past(
        tmp_path, monkeypatch, loader):
    """A typo in data_dir must not load another folder's files (the user cache's here)
    as if they were the folder's, nor be created and downloaded into."""
    make_dataset(cache_folder())
    typo = tmp_path / "dta"
    with pytest.raises(DatasetNotFoundError,
                       match=f"data_dir {re.escape(str(typo))}: no such folder"):
        loader(data_dir=typo)
    assert not typo.exists()


def test_a_read_only_data_dir_is_not_written_even_by_root(tmp_path, server, monkeypatch):
    """Only the test set in a folder without write permission: the training files go to
    the user cache, the folder is left as it was (root passes os.access anywhere)."""
    _, url = server
    folder = tmp_path / "data"
    make_dataset(folder, only=set(NAMES) - set(TRAIN_NAMES))
    folder.chmod(0o555)
    before = sorted(os.listdir(folder)), folder.stat().st_mtime_ns
    monkeypatch.setenv("FASTNET_MNIST_MIRRORS", f"{url}/good")
    try:
        (x_train, _), _ = load_mnist(data_dir=folder)
        assert x_train.shape == (12, 784)
        assert (sorted(os.listdir(folder)), folder.stat().st_mtime_ns) == before
        assert set(TRAIN_NAMES) <= set(os.listdir(cache_folder()))
    finally:
        folder.chmod(0o755)


def test_uncreatable_download_folder_is_a_clear_not_found(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"  # a file where the cache folder should go
    blocker.write_bytes(b"")
    monkeypatch.setenv("FASTNET_CACHE_DIR", str(blocker))
    with pytest.raises(DatasetNotFoundError, match=f"cannot download into {blocker}"):
        load_mnist()


def test_a_data_dir_that_is_a_file_is_said_so(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(DatasetNotFoundError, match=r"afile: a file, not a folder"):
        load_mnist(data_dir=afile, download=False)


def test_unknown_dataset_names_the_choices(tmp_path):
    for call in (lambda: datasets.fetch("bogus", tmp_path), lambda: datasets.load_test_set("bogus"),
                 lambda: datasets.load_dataset("bogus")):
        with pytest.raises(ValueError, match=r"unknown dataset 'bogus'; choose one of "
                                             r"\['fashion-mnist', 'mnist'\]"):
            call()
    assert list(tmp_path.iterdir()) == []


def test_fetch_takes_one_mirror_as_a_string(tmp_path, server):
    httpd, url = server
    fetch("mnist", tmp_path / "data", mirrors=f"{url}/good/")
    assert sorted(httpd.requests) == sorted(f"/good/{n}" for n in NAMES)


def test_no_mirrors_configured(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="no mirrors configured"):
        load_mnist(data_dir=tmp_path)


# --- the real digits, where CI provides them -----------------------------------------

@pytest.mark.skipif(not os.environ.get("FASTNET_MNIST_DIR"),
                    reason="FASTNET_MNIST_DIR is not set (CI sets it to the real MNIST "
                           "test files)")
def test_real_mnist_test_set():
    folder = Path(os.environ["FASTNET_MNIST_DIR"])
    images = load_idx(folder / "t10k-images-idx3-ubyte.gz")
    labels = load_idx(folder / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.max() <= 9
    assert set(np.unique(labels)) == set(range(10))
    assert images.max() == 255 and 0.1 < images.mean() / 255 < 0.15  # MNIST mean 0.13


def test_load_test_set_reads_only_the_test_files(tmp_path):
    arrays = make_dataset(tmp_path / "digits", only=(datasets.FILES["x_test"],
                                                     datasets.FILES["t_test"]))
    x, t = datasets.load_test_set("mnist", data_dir=tmp_path / "digits")
    assert x.shape == (6, 784) and x.dtype == np.float32
    np.testing.assert_array_equal(x, arrays["x_test"].reshape(6, -1) / np.float32(255))
    np.testing.assert_array_equal(t, arrays["t_test"])
    (tmp_path / "nothing").mkdir()
    with pytest.raises(datasets.DatasetNotFoundError, match="test files"):
        datasets.load_test_set("mnist", data_dir=tmp_path / "nothing")
