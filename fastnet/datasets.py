"""MNIST and Fashion-MNIST as NumPy arrays, found on disk or downloaded once.

``load_mnist`` is the book's ``dataset/mnist.py`` loader with three repairs: the files
come from several current mirrors (the original site no longer serves them), every
download is checked against the published MD5 and written atomically (by pooch, with a
tqdm bar on stderr), and the parsed arrays are cached as an ``.npz`` loaded with
``allow_pickle=False`` instead of a pickle.

The four standard IDX files of a dataset must all sit in one folder.  Folders are
searched in this order (the first one holding all four wins):

1. ``data_dir``, when given: it must be an existing folder (``DatasetNotFoundError``
   otherwise, so that a typo is not searched past to another folder's files);
2. ``$FASTNET_DATA/<name>/``, then ``$FASTNET_DATA/`` itself;
3. ``user_cache_dir()/datasets/<name>/`` (where downloads go, unless ``data_dir`` may
   be written: its missing files are then completed there);
4. ``/usr/share/datasets/<name>/`` (Debian's ``dataset-fashion-mnist`` installs there).

``<name>`` is ``mnist`` or ``fashion-mnist``.  A file may be gzipped (``*.gz``, the
standard names) or already unpacked (the same name without ``.gz``).

Downloads are checked against the published MD5 of the ``.gz`` files.  Files found on
disk are checked by content instead, because repackagers (Debian included) re-gzip
them, which changes the ``.gz`` bytes but not the images: a file whose unpacked bytes
are another published file (Fashion-MNIST's where MNIST's are looked for, the test
images where the training images are) is refused with a ``ValueError`` that names it.
Other content is used as given, as long as it parses: a folder may hold one's own
data in the MNIST format.

The parsed arrays are cached in ``user_cache_dir()/datasets/<name>/<name>-parsed.npz``,
which records the path, size and mtime of the files it was parsed from.  When no folder
holds the files, that cache alone serves, without any download, as long as each file it
records lay in one of the folders searched (a cache parsed from another ``data_dir`` is
no answer) and is gone or unchanged: a changed source file makes it stale, never served.
"""
import contextlib
import gzip
import hashlib
import http.client
import math
import os
import re
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pooch
from tqdm import tqdm

from . import __version__, _files
from .config import user_cache_dir

__all__ = [
    "LOADERS",
    "DatasetNotFoundError",
    "load_dataset",
    "load_fashion_mnist",
    "load_idx",
    "load_mnist",
    "load_test_set",
]

# Which array each standard file holds, in the book's key names.
FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "t_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "t_test": "t10k-labels-idx1-ubyte.gz",
}

SYSTEM_DATA_DIR = Path("/usr/share/datasets")
DOWNLOAD_TIMEOUT_S = 30  # for each read: a silent server fails after this long
DOWNLOAD_DEADLINE_S = 900  # for a whole file: a server trickling bytes fails after this
_CHUNK = 1 << 16


@dataclass
class Dataset:
    """Where a dataset comes from.  Tests and users may replace ``mirrors``/``md5``."""

    name: str  # folder name under $FASTNET_DATA, the cache and /usr/share/datasets
    title: str
    mirrors: list  # base URLs, tried in order; a file's URL is base + file name
    md5: dict  # file name -> published MD5 of the .gz
    sha256: dict  # file name -> published SHA-256 of the unpacked IDX file
    mirrors_env: str  # environment variable that replaces ``mirrors`` (space/comma list)
    debian_package: str | None = None


DATASETS = {
    "mnist": Dataset(
        name="mnist",
        title="MNIST",
        mirrors=[
            "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's
            "https://storage.googleapis.com/cvdf-datasets/mnist/",  # TensorFlow's
        ],
        md5={  # as published in torchvision/datasets/mnist.py
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        sha256={  # as published with the files' unpacked sizes by many projects
            "train-images-idx3-ubyte.gz":
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte.gz":
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte.gz":
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte.gz":
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        mirrors_env="FASTNET_MNIST_MIRRORS",
    ),
    "fashion-mnist": Dataset(
        name="fashion-mnist",
        title="Fashion-MNIST",
        mirrors=[
            # Zalando's bucket serves its website endpoint over plain HTTP only; the
            # MD5 check is what makes any mirror trustworthy.
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ],
        md5={  # as published in the README of zalandoresearch/fashion-mnist
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        sha256={  # of the files above, unpacked (Debian's re-gzipped files unpack to these)
            "train-images-idx3-ubyte.gz":
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte.gz":
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte.gz":
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte.gz":
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        mirrors_env="FASTNET_FASHION_MNIST_MIRRORS",
        debian_package="dataset-fashion-mnist",
    ),
}


class DatasetNotFoundError(FileNotFoundError):
    """The dataset is on no searched folder nor in the parsed cache, and could not be
    downloaded."""


def load_mnist(normalize=True, flatten=True, one_hot_label=False, data_dir=None,
               download=True):
    """MNIST digits as ``(x_train, t_train), (x_test, t_test)``, like the book's loader.

    Images are float32 in [0, 1] when ``normalize`` (uint8 0..255 otherwise), shaped
    ``(N, 784)`` when ``flatten`` or ``(N, 1, 28, 28)``.  Labels are int64 class indices
    ``(N,)``, or float32 one-hot ``(N, 10)`` when ``one_hot_label`` (the book's one-hot
    is float too).  The files come from the first folder holding all four (see the
    module doc); when none does, from the parsed cache if every file it was parsed from
    lay in a folder searched and is gone or unchanged; else they are downloaded.
    ``download=False`` never touches the network.  Raises ``DatasetNotFoundError`` when
    ``data_dir`` is not an existing folder, or naming every folder searched, the parsed
    cache and every mirror tried; ``ValueError`` naming the file when the files found
    are corrupt or inconsistent.
    """
    return _load("mnist", normalize, flatten, one_hot_label, data_dir, download)


def load_fashion_mnist(normalize=True, flatten=True, one_hot_label=False, data_dir=None,
                       download=True):
    """Fashion-MNIST (Zalando's 10 clothing classes), same layout as ``load_mnist``."""
    return _load("fashion-mnist", normalize, flatten, one_hot_label, data_dir, download)


def load_test_set(name="mnist", normalize=True, flatten=True, one_hot_label=False,
                  data_dir=None):
    """Only the test split ``(x_test, t_test)`` of ``name`` ("mnist" or "fashion-mnist"),
    from the first folder in the search order that holds its two files, else from the
    parsed cache if the two files it was parsed from lay in a folder searched and are
    gone or unchanged.  Layouts and
    dtypes as ``load_mnist``'s.

    Never downloads: it is for machines where only the test images are at hand.  Raises
    ``DatasetNotFoundError`` when ``data_dir`` is not an existing folder, or naming every
    folder searched and the parsed cache.
    """
    spec = _spec(name)
    names = FILES["x_test"], FILES["t_test"]
    folders = _search_folders(spec, data_dir)
    for folder, _ in folders:
        images, labels = (_find(folder, filename) for filename in names)
        if images and labels:
            x, t = _read_split(spec, "test", images, labels)
            return _images(x, normalize, flatten), _labels(t, one_hot_label)
    cached, state = _cache_without_sources(spec, ("x_test", "t_test"), folders)
    if cached is not None:
        return _images(cached["x_test"], normalize, flatten), \
            _labels(cached["t_test"], one_hot_label)
    raise DatasetNotFoundError(
        f"{spec.title} test files ({', '.join(names)}) not found in any of: "
        + ", ".join(f"{folder} ({origin})" for folder, origin in folders)
        + f"; parsed cache {_cache_path(spec)}: {state}.  "
        + _how_to_provide(spec, names, mirrors=False))


def load_idx(path):
    """The uint8 array stored in one IDX file (gzipped or not), shaped as its header says.

    Only unsigned-byte IDX (type code 0x08, the MNIST family) is supported.  Raises
    ``ValueError`` naming the file when the gzip stream is truncated or corrupt, the
    magic number is wrong, or the payload length disagrees with the header.
    """
    path = Path(path)
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{path}: truncated or corrupt gzip stream ({err})") from None
    if len(data) < 4 or data[0:2] != b"\0\0" or data[2] != 0x08 or data[3] == 0:
        raise ValueError(f"{path}: not an unsigned-byte IDX file "
                         f"(magic {data[:4].hex() or 'missing'}, expected 000008nn)")
    ndim = data[3]
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise ValueError(f"{path}: truncated IDX header ({len(data)} bytes)")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(shape)
    if len(data) - header_len != expected:
        raise ValueError(f"{path}: header promises {'x'.join(map(str, shape))} = {expected} "
                         f"bytes of data, file has {len(data) - header_len}; "
                         "truncated or corrupt")
    return np.frombuffer(data, np.uint8, offset=header_len).reshape(shape).copy()


def _spec(name):
    """The table's entry of dataset ``name``; ValueError naming the choices."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]


def fetch(name, folder, mirrors=None, checksums=None):
    """Download whichever of dataset ``name``'s four files ``folder`` lacks; return folder.

    ``mirrors`` (a URL or a list of them) defaults to ``$<mirrors_env>`` if set, else
    the table's list;
    ``checksums`` (file name -> MD5) defaults to the table's.  Each file is tried on
    each mirror in turn; a file is only ever moved into place complete and verified.
    Raises ``DatasetNotFoundError`` listing every URL tried for the file that could not
    be had, and why each failed.
    """
    spec = _spec(name)
    if mirrors is None:
        env = os.environ.get(spec.mirrors_env, "").strip()
        mirrors = re.split(r"[\s,]+", env) if env else spec.mirrors
    elif isinstance(mirrors, str):  # one URL, not a list of its characters
        mirrors = [mirrors]
    checksums = spec.md5 if checksums is None else checksums
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DatasetNotFoundError(f"cannot download into {folder}: {err}") from err
    for filename in _missing(folder):
        failures = []  # this file's: another file's misses on the way do not matter
        for base in mirrors:
            url = base.rstrip("/") + "/" + filename
            try:
                _download(url, folder, filename, checksums.get(filename))
                break
            except (OSError, ValueError) as err:  # requests' errors are OSErrors
                failures.append(f"  {url}: {_reason(err)}")
        else:
            tried = "\n".join(failures) or "  (no mirrors configured)"
            raise DatasetNotFoundError(
                f"could not download {filename} into {folder}; tried:\n{tried}")
    return folder


def _load(name, normalize, flatten, one_hot_label, data_dir, download):
    """The four raw arrays (see ``_raw_arrays``), converted to the book's layout."""
    raw = _raw_arrays(DATASETS[name], data_dir, download)
    images = {k: _images(raw[k], normalize, flatten) for k in ("x_train", "x_test")}
    labels = {k: _labels(raw[k], one_hot_label) for k in ("t_train", "t_test")}
    return (images["x_train"], labels["t_train"]), (images["x_test"], labels["t_test"])


def _search_folders(spec, data_dir):
    """``(folder, where it came from)`` pairs in search order (see the module doc)."""
    folders = []
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        if not folder.is_dir():  # a typo must not be searched past to another folder
            state = "a file, not a folder" if folder.exists() else "no such folder"
            raise DatasetNotFoundError(
                f"data_dir {folder}: {state}.  Pass an existing folder, or leave "
                f"data_dir out to search $FASTNET_DATA, the user cache and "
                f"{SYSTEM_DATA_DIR}.")
        folders.append((folder, "data_dir"))
    env = os.environ.get("FASTNET_DATA")
    if env:
        root = Path(env).expanduser()
        folders += [(root / spec.name, "$FASTNET_DATA/" + spec.name), (root, "$FASTNET_DATA")]
    folders.append((user_cache_dir() / "datasets" / spec.name, "user cache"))
    folders.append((SYSTEM_DATA_DIR / spec.name, "system datasets"))
    return folders


def _raw_arrays(spec, data_dir, download):
    """The four raw uint8 arrays: parsed (through the cache) from the first folder
    holding all four files; else from the parsed cache alone, when every file it was
    parsed from is gone or unchanged; else parsed from a download."""
    folders = _search_folders(spec, data_dir)
    folder, looked = _located(folders)
    if folder is not None:
        return _parsed_arrays(spec, _paths(folder))
    cached, state = _cache_without_sources(spec, tuple(FILES), folders)
    if cached is not None:
        return cached
    looked.append(f"  {_cache_path(spec)} (parsed cache): {state}")
    if not download:
        tried = "download=False, so no download was tried."
    else:
        try:
            folder = fetch(spec.name, _download_folder(spec, data_dir))
        except DatasetNotFoundError as err:
            tried = str(err)
        else:
            return _parsed_arrays(spec, _paths(folder))
    raise DatasetNotFoundError(
        f"{spec.title} not found.  Looked in (all four files must be in one folder):\n"
        + "\n".join(looked) + "\n" + tried + "\n" + _how_to_provide(spec)) from None


def _located(folders):
    """The first of ``folders`` (``_search_folders``) holding all four files, or None;
    and a line per folder before it saying what it lacks."""
    looked = []
    for folder, origin in folders:
        missing = _missing(folder)
        if not missing:
            return folder, looked
        state = ("missing " + ", ".join(missing) if folder.is_dir()
                 else "a file, not a folder" if folder.exists() else "no such folder")
        looked.append(f"  {folder} ({origin}): {state}")
    return None, looked


def _how_to_provide(spec, names=tuple(FILES.values()), mirrors=True):
    """The ways a user can make the files available, for the not-found message."""
    how = (f"To provide the files ({', '.join(names)}), put them in one folder "
           f"and pass data_dir=<folder>, or set FASTNET_DATA=<folder> (files directly in "
           f"it or in <folder>/{spec.name}/)")
    if mirrors:
        how += f", or set {spec.mirrors_env} to a space-separated list of mirror URLs"
    if spec.debian_package:
        how += f", or run `apt-get install {spec.debian_package}` (Debian/Ubuntu)"
    return how + "."


def _download_folder(spec, data_dir):
    """``data_dir`` (an existing folder: ``_search_folders`` checked) where it may be
    written (its missing files are completed there), else the user cache.  One without
    write permission is not written, even by root, whom ``os.access`` lets write
    anywhere."""
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        if os.access(folder, os.W_OK) and folder.stat().st_mode & 0o222:
            return folder
    return user_cache_dir() / "datasets" / spec.name


def _find(folder, filename):
    """The file in ``folder``, gzipped or unpacked, or None."""
    for candidate in (folder / filename, folder / filename.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _paths(folder):
    """The four files' paths in ``folder``, by key."""
    return {key: _find(folder, filename) for key, filename in FILES.items()}


def _missing(folder):
    """The standard file names that ``folder`` lacks (in either form)."""
    return [fn for fn in FILES.values() if _find(folder, fn) is None]


def _download(url, folder, filename, md5):
    """Fetch ``url`` as ``folder/filename`` through pooch, with a tqdm bar on stderr.

    pooch streams into a temporary file beside the destination, checks the MD5 and only
    then moves it into place; on any failure the temporary file is removed.
    """
    path = pooch.retrieve(url, known_hash=f"md5:{md5}" if md5 else None, fname=filename,
                          path=folder, downloader=_downloader(filename))
    # pooch's temporary file is created 0600; give the file the mode any new file gets,
    # so that a shared cache stays readable to others.  Not fatal: the file may be
    # another user's, where their download landed between our look and pooch's.
    umask = os.umask(0o022)
    os.umask(umask)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~umask)


def _downloader(filename):
    """A pooch downloader: HTTP(S) with a timeout and fastnet's User-Agent, drawing a
    progress bar that lives exactly as long as the transfer (wiped when it fails).

    The bar is drawn in logs as well, but only every 10 s there, so CI logs stay short.
    """
    def download(url, output_file, caller):
        interval = 0.1 if sys.stderr.isatty() else 10
        # pooch sets the total from the Content-Length, but only updates a bar that is
        # truthy, and a tqdm without a positive total is not: hence the placeholder 1.
        with _DeadlineBar(desc=filename, total=1, unit="B", unit_scale=True,
                          file=sys.stderr, mininterval=interval) as bar:
            transfer = pooch.HTTPDownloader(progressbar=bar, chunk_size=_CHUNK,
                                            timeout=DOWNLOAD_TIMEOUT_S,
                                            headers={"User-Agent": f"fastnet/{__version__}"})
            try:
                transfer(url, output_file, caller)
            except BaseException:
                bar.leave = False  # wipe it: the failure is reported with the URL
                raise
    return download


class _DeadlineBar(tqdm):
    """The download's progress bar, which pooch updates after each chunk: past
    ``DOWNLOAD_DEADLINE_S`` seconds since it began, it ends the transfer (TimeoutError),
    which a per-read timeout cannot do for a server that sends a byte every few
    seconds."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._deadline = time.monotonic() + DOWNLOAD_DEADLINE_S

    def update(self, n=1):
        # pooch's last call completes the bar (n = total - self.n): a transfer that
        # ended is kept
        if time.monotonic() > self._deadline and self.n + n != self.total:
            raise TimeoutError(f"the transfer took more than {DOWNLOAD_DEADLINE_S} s "
                               f"(fastnet.datasets.DOWNLOAD_DEADLINE_S)")
        return super().update(n)


def _reason(err):
    """Why one URL failed, in one line for the list of URLs tried.

    requests words an HTTP error and a cut-short body as ``404 Client Error: Not Found for
    url: <the URL again>`` and a nested tuple; these two get plain words instead.
    """
    response = getattr(err, "response", None)
    if response is not None and not response.ok:
        return f"HTTP Error {response.status_code}: {response.reason}"
    incomplete = _nested(err, http.client.IncompleteRead)
    if incomplete is not None and incomplete.expected is not None:
        # urllib3 counts the bytes read (an int), http.client keeps them (bytes).
        received = incomplete.partial if isinstance(incomplete.partial, int) \
            else len(incomplete.partial)
        return f"truncated: received {received} of {received + incomplete.expected} bytes"
    return str(err)


def _nested(err, kind):
    """The first exception of type ``kind`` in ``err`` or its arguments, or None."""
    if isinstance(err, kind):
        return err
    for arg in getattr(err, "args", ()):
        if isinstance(arg, BaseException) and (found := _nested(arg, kind)) is not None:
            return found
    return None


def _parsed_arrays(spec, paths):
    """The four raw uint8 arrays, from the ``.npz`` cache when it matches the sources.

    The cache lives in the user cache dir and records each source's path, size and
    mtime; any change (or a different folder) makes it stale and it is rebuilt.
    """
    cache = _cache_path(spec)
    stamp = ";".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                     for p in paths.values())
    try:
        with np.load(cache, allow_pickle=False) as cached:
            if str(cached["stamp"]) == stamp:
                arrays = {key: cached[key] for key in FILES}
                for split in ("train", "test"):  # checked as parsed files are
                    _check_split(spec, split, arrays["x_" + split], arrays["t_" + split],
                                 cache, cache)
                return arrays
    except (OSError, EOFError, ValueError, KeyError, IndexError, zipfile.BadZipFile):
        pass  # no cache yet, or an unreadable or damaged one: parse and rewrite it
    arrays = {}
    for split in ("train", "test"):
        images, labels = paths["x_" + split], paths["t_" + split]
        arrays["x_" + split], arrays["t_" + split] = _read_split(spec, split, images, labels)
    _write_cache(cache, stamp, arrays)
    return arrays


def _resolved(folder):
    """``folder`` as the cache's stamp records its files' folders (``Path.resolve``)."""
    return Path(folder).expanduser().resolve()


def _cache_path(spec):
    return user_cache_dir() / "datasets" / spec.name / f"{spec.name}-parsed.npz"


def _cache_without_sources(spec, keys, folders):
    """``(arrays, None)``: the raw arrays ``keys`` (of ``FILES``) from the parsed cache,
    when each file it parsed them from lay in one of the ``(folder, origin)`` pairs
    searched now (a cache parsed from another ``data_dir``, a test's made-up files say,
    is no answer to this search) and is gone or unchanged (same size and mtime), and the
    arrays hold whole splits; else ``(None, why not)``, for the not-found message."""
    cache = _cache_path(spec)
    try:
        with np.load(cache, allow_pickle=False) as cached:
            stamp, arrays = str(cached["stamp"]), {key: cached[key] for key in keys}
    except FileNotFoundError:
        return None, "no such file"
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as err:
        return None, f"unreadable ({err})"
    # The stamp is "<path>:<size>:<mtime_ns>" per file, in FILES order, joined by ";".
    sources = re.findall(r"(.+?):(\d+):(-?\d+)(?:;|$)", stamp)
    if len(sources) != len(FILES):
        return None, "unreadable (no record of the files it was parsed from)"
    searched = {_resolved(folder) for folder, _ in folders}
    for key, (path, size, mtime) in zip(FILES, sources):
        if key not in keys:
            continue
        if Path(path).parent not in searched:
            return None, (f"parsed from {Path(path).parent}, a folder this search does not "
                          f"look in")
        try:
            now = os.stat(path)
        except OSError:  # gone (or out of reach): unless in its other form (see _find)
            other = path.removesuffix(".gz") if path.endswith(".gz") else path + ".gz"
            if os.path.exists(other):
                return None, f"stale: {path}, which it was parsed from, is now {other}"
            continue
        if (now.st_size, now.st_mtime_ns) != (int(size), int(mtime)):
            return None, f"stale: {path}, which it was parsed from, has changed since"
    for split in ("train", "test"):
        images, labels = f"x_{split}", f"t_{split}"
        if images not in keys:
            continue
        try:
            for key, ndim in ((images, 3), (labels, 1)):
                if arrays[key].dtype != np.uint8 or arrays[key].ndim != ndim:
                    raise ValueError(f"{cache}[{key}]: {arrays[key].dtype} array of shape "
                                     f"{arrays[key].shape}, expected {ndim}-d uint8")
            _check_split(spec, split, arrays[images], arrays[labels], f"{cache}[{images}]",
                         f"{cache}[{labels}]")
        except ValueError as err:
            return None, f"invalid ({err})"
    return arrays, None


def _write_cache(cache, stamp, arrays):
    """Save the npz atomically; a read-only cache dir just means no cache."""
    with contextlib.suppress(OSError):
        cache.parent.mkdir(parents=True, exist_ok=True)
        with _files.atomic_file(cache) as out:
            np.savez(out, stamp=np.array(stamp), **arrays)


def _read_split(spec, split, images_path, labels_path):
    """Parse and cross-check one split of ``spec`` (see ``_check_split``)."""
    images, labels = _read_idx(images_path, 3, "image"), _read_idx(labels_path, 1, "label")
    _check_split(spec, split, images, labels, images_path, labels_path)
    return images, labels


def _check_split(spec, split, images, labels, images_path, labels_path):
    """Raise ``ValueError`` unless 3-d ``images`` are 28x28, at least one and as many as
    the 1-d ``labels``, the labels are 0..9, and neither array is a published file other
    than ``spec``'s own of this ``split`` ("train" or "test")."""
    if images.shape[1:] != (28, 28):
        raise ValueError(f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, "
                         "expected 28x28")
    if len(images) == 0:
        raise ValueError(f"{images_path} holds no images")
    if len(images) != len(labels):
        raise ValueError(f"{images_path} holds {len(images)} images but {labels_path} "
                         f"holds {len(labels)} labels")
    if labels.max() > 9:
        raise ValueError(f"{labels_path}: label {labels.max()} out of range 0..9")
    for key, array, path in (("x_" + split, images, images_path),
                             ("t_" + split, labels, labels_path)):
        found = _published_as(array)
        if found is not None and found != (spec.name, key):
            name, other = found
            raise ValueError(
                f"{path} holds {DATASETS[name].title}'s {_CONTENT[other]}, not "
                f"{spec.title}'s {_CONTENT[key]} (SHA-256 of its unpacked bytes "
                f"{_idx_sha256(array)[:16]}...): check the folder it was found in")


_CONTENT = {"x_train": "training images", "t_train": "training labels",
            "x_test": "test images", "t_test": "test labels"}


def _published_as(array):
    """``(dataset name, key)`` of the published file whose unpacked bytes ``array``'s IDX
    file has (compared by SHA-256, ``Dataset.sha256``), or None."""
    digest = _idx_sha256(array)
    for spec in DATASETS.values():
        for key, filename in FILES.items():
            if spec.sha256.get(filename) == digest:
                return spec.name, key
    return None


def _idx_sha256(array):
    """SHA-256 (hex) of the unsigned-byte IDX file that holds ``array``: the bytes that
    ``load_idx`` parsed it from, when that file was unpacked."""
    digest = hashlib.sha256(bytes([0, 0, 8, array.ndim]))
    digest.update(b"".join(n.to_bytes(4, "big") for n in array.shape))
    digest.update(np.ascontiguousarray(array, np.uint8).data)
    return digest.hexdigest()


def _read_idx(path, ndim, kind):
    """``load_idx`` that also checks the magic number names the expected kind of file."""
    array = load_idx(path)
    if array.ndim != ndim:
        raise ValueError(f"{path}: magic 0x{0x800 | array.ndim:08x}, expected "
                         f"0x{0x800 | ndim:08x} (an IDX {kind} file)")
    return array


def _images(raw, normalize, flatten):
    """uint8 ``(N, 28, 28)`` to the book's layout: float32/255 if normalize, flat or NCHW."""
    x = raw.reshape(len(raw), -1) if flatten else raw.reshape(len(raw), 1, 28, 28)
    if normalize:
        x = x.astype(np.float32)
        x /= 255.0
    return x


def _labels(raw, one_hot_label):
    """uint8 labels to int64 indices, or float32 one-hot rows ``(N, 10)``."""
    t = raw.astype(np.int64)
    return np.eye(10, dtype=np.float32)[t] if one_hot_label else t


# ------------------------------------------------- splits for training runs

LOADERS = {"mnist": load_mnist, "fashion-mnist": load_fashion_mnist}

# When only the 10k MNIST test digits are at hand, this share of them trains.
FALLBACK_TRAIN_SHARE = 0.8


def load_dataset(name, data_dir=None):
    """``(x_train, t_train), (x_test, t_test), description`` of ``name``.

    Images are normalized float32 ``(N, 784)``, labels class indices; the description
    names the folder the files were read from (the first that holds all four, in the
    search order of the module docstring).  MNIST fallback:
    when ``load_mnist`` cannot find or download the training files but the 10,000 test
    digits are in a folder it searches, the first 8,000 of those train and the last
    2,000 test, and a warning says so on stderr and in the description.
    """
    spec = _spec(name)
    try:
        train, test = LOADERS[name](normalize=True, data_dir=data_dir)
    except DatasetNotFoundError:
        digits = _mnist_test_digits(data_dir) if name == "mnist" else None
        if digits is None:
            raise
        return _fallback_split(*digits)
    folder = _located(_search_folders(spec, data_dir))[0]
    source = folder if folder is not None else f"the parsed cache {_cache_path(spec)}"
    return train, test, (f"{spec.title}: {len(train[0]):,} train / {len(test[0]):,} test "
                         f"images from {source}")


def _mnist_test_digits(data_dir):
    """The MNIST test images (normalized, flat) and labels, or None where not at hand."""
    try:
        return load_test_set("mnist", data_dir=data_dir)
    except DatasetNotFoundError:
        return None


def _fallback_split(x, t):
    n_train = int(FALLBACK_TRAIN_SHARE * len(x))
    description = (f"MNIST FALLBACK: the training files are missing, so the {len(x):,} "
                   f"test digits are split {n_train:,} train / {len(x) - n_train:,} test")
    banner = "!" * 78
    print(f"{banner}\n!! {description}.\n!! Numbers are not comparable with the book's; "
          f"provide the training files (see fastnet.datasets) for a real run.\n{banner}",
          file=sys.stderr, flush=True)
    return (x[:n_train], t[:n_train]), (x[n_train:], t[n_train:]), description
