"""Saving and loading nets: ``save_net(net, path)`` and ``load_net(path)``.

A saved net is a plain NumPy ``.npz`` archive, readable with
``np.load(path, allow_pickle=False)``, tagged by its ``format`` entry with one of two
versions.  ``fastnet-mlp/1`` holds nets without normalization or with batch norm;
``fastnet-mlp/2`` holds every net ``MultiLayerNetExtend`` builds (``normalization=``
any of ``NORMALIZATIONS``, ``groups=``).  For a net with ``L`` hidden layers:

==========================  =======  =================  =================================
key                         dtype    shape              meaning
==========================  =======  =================  =================================
``format``                  str      ()                 ``'fastnet-mlp/1'`` or ``/2``
``input_size``              int64    ()                 inputs per sample
``hidden_size_list``        int64    (L,)               width of each hidden layer
``output_size``             int64    ()                 classes
``activation``              str      ()                 ``'relu'``, ``'sigmoid'``, ...
``use_batchnorm``           bool     ()                 version 1 only: batch norm after
                                                        the hidden Affines
``normalization``           str      ()                 version 2 only: one of
                                                        ``NORMALIZATIONS``
``groups``                  int64    ()                 version 2 only: the net's
                                                        ``groups`` (group norm's groups,
                                                        instance norm's channels)
``dropout_ratio``           float64  ()                 0.0 for no dropout
``params/W{i}``             net's    (fan_in, fan_out)  i = 1 .. L + 1 (not with weight
                                                        norm)
``params/v{i}``             net's    (fan_in, fan_out)  weight norm's directions,
                                                        i = 1 .. L + 1
``params/g{i}``             net's    (fan_out,)         weight norm's lengths
``params/b{i}``             net's    (fan_out,)         i = 1 .. L + 1
``params/gamma{i}``         net's    (C,)               with batch, layer, group,
                                                        instance or switchable norm,
                                                        i = 1 .. L
``params/beta{i}``          net's    (C,)               as ``gamma{i}``
``params/mean_weight{i}``   net's    (2,)               switchable norm: the mixing
                                                        logits (layer, batch) of the mean
``params/var_weight{i}``    net's    (2,)               the same of the variance
``running/mean{i}``         net's    (C,)               batch or switchable norm's
                                                        running mean, i = 1 .. L
``running/var{i}``          net's    (C,)               their running variance
==========================  =======  =================  =================================

``NORMALIZATIONS`` are ``'none'``, ``'batch'``, ``'layer'``, ``'group'``,
``'instance'``, ``'weight'`` and ``'switchable'``: ``MultiLayerNetExtend``'s
``normalization=`` (``'none'`` for ``None``).  ``C`` is ``hidden_size_list[i-1]``, or
``groups`` for instance norm (one gamma and beta per channel).  "net's" dtype is
float32 or float64, the same for every parameter; the dtype of ``params/b1`` is the
net's.  The running statistics are present when the net's batch-norm or
switchable-norm layers have them (the layers make them on their first training batch;
fastnet's nets always have them).  Not saved: the weight decay, the
optimizer and its state, and the dropout layers' random streams; these are training
settings, given again to ``load_net`` (``weight_decay_lambda=``, ``seed=``) or to the
trainer.  The layers' ``momentum`` and ``eps`` are those ``MultiLayerNetExtend`` gives
them (it takes no argument for either): a net whose normalization layers were given
another ``eps``, which its predictions depend on, is refused by ``save_net``; a
momentum, which only shapes further training, loads as the default.

Versions.  ``save_net`` writes the oldest version that holds the net exactly, as
``np.save`` does with its own format: version 1 for a net without normalization or
with batch norm and the default ``groups=2`` (which does nothing there), so that such
files stay readable by every fastnet; version 2 for the others.  ``load_net`` reads
both.  A fastnet that knows version 1 only refuses a version-2 file with
``ValueError: PATH has format 'fastnet-mlp/2', newer than this fastnet reads
('fastnet-mlp/1'); load it with a newer fastnet``, and so does this one with a version
newer than ``FORMAT_VERSION``.
"""
import contextlib
import errno
import inspect
import itertools
import os
import re
import secrets
import zipfile
import zlib
from pathlib import Path

import numpy as np

from . import _book, _validate, layers, nets

FORMAT_NAME = "fastnet-mlp"
FORMAT_VERSION = 2  # the newest version this fastnet reads and writes
FORMAT = f"{FORMAT_NAME}/{FORMAT_VERSION}"
FORMATS = tuple(f"{FORMAT_NAME}/{version}" for version in range(1, FORMAT_VERSION + 1))
# The architecture's entries of each version
ARCHITECTURE_KEYS = {
    1: ("input_size", "hidden_size_list", "output_size", "activation", "use_batchnorm",
        "dropout_ratio"),
    2: ("input_size", "hidden_size_list", "output_size", "activation", "normalization",
        "groups", "dropout_ratio"),
}
# The format's names of MultiLayerNetExtend's normalizations ('none' for None)
NORMALIZATIONS = ("none", "batch", "layer", "group", "instance", "weight", "switchable")
V1_GROUPS = 2  # the groups a version-1 net loads with: MultiLayerNetExtend's default


def save_net(net, path, *, overwrite=False):
    """Write ``net`` to ``path`` in the oldest ``fastnet-mlp`` version that holds it
    (see the module doc).

    ``net`` is a ``MultiLayerNet`` or ``MultiLayerNetExtend`` of ``fastnet.nets`` or
    ``fastnet.reference.nets``.  The archive is written to a temporary file beside
    ``path`` and renamed onto it only when complete, so ``path`` never holds a
    half-written net, and an existing file is left as it was when the save fails.
    ``path`` is used as given (no ``.npz`` is appended).  An existing ``path`` is a
    ``FileExistsError`` unless ``overwrite`` is true.  A net whose arrays ``load_net``
    would refuse (``params`` entries re-bound to arrays of another shape or of objects,
    keys added or removed, Dropout layers given different ratios, normalization
    layers another ``eps``) is a ``ValueError`` before anything is written; a ``path``
    that is a folder an ``IsADirectoryError``, one in a folder that does not exist a
    ``FileNotFoundError``.
    A symbolic link is written through (its target replaced, the link kept).  What is
    saved is what the net's passes use: entries of ``params`` or layer attributes
    re-bound since the last pass are taken in first (converted to the net's dtype).
    """
    path = os.fsdecode(path)  # str, bytes or os.PathLike
    if path.endswith(("/", os.sep)):  # Path would drop the separator
        raise IsADirectoryError(errno.EISDIR, "save_net: a folder (the path ends with a "
                                "separator), not a file", path)
    path = Path(path)
    if path.is_symlink():  # written through: the link stays, its target is replaced
        path = Path(os.path.realpath(path))
    arrays = _net_arrays(net)
    try:  # what load_net would refuse is not written (seed: np.random is left alone)
        _net_from_arrays({key: np.asarray(value) for key, value in arrays.items()},
                         int(str(arrays["format"]).rpartition("/")[2]), path, seed=0)
    except ValueError as err:
        raise ValueError(f"save_net: not writing {path}, the net's arrays would not load "
                         f"back: {err}") from None
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "save_net: a folder, not a file", str(path))
    if not path.parent.is_dir():  # else the error would name the temporary file
        raise FileNotFoundError(errno.ENOENT, "save_net: no such folder to write into",
                                str(path.parent))
    if not overwrite and path.exists():
        raise _exists(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as out:  # "x": never reuse a file someone else made
            np.savez(out, **arrays)
            out.flush()
            os.fsync(out.fileno())
        _publish(tmp, path, overwrite)
    finally:
        with contextlib.suppress(OSError):  # a failed cleanup must not hide what failed
            tmp.unlink(missing_ok=True)


def _dropout_ratio(net):
    """The ratio of ``net``'s Dropout layers (what its passes use, which a user may have
    set since construction): one for all, as the formats hold one."""
    ratios = {_validate.dropout_ratio(layer.dropout_ratio)
              for key, layer in net.layers.items() if key.startswith("Dropout")}
    if len(ratios) > 1:
        raise ValueError(f"the fastnet-mlp formats hold one dropout ratio for every Dropout "
                         f"layer; the net's layers have {sorted(ratios)}")
    return ratios.pop() if ratios else net.dropout_ratio


def _net_arrays(net):
    """The archive's arrays for ``net``, keyed as in the format table."""
    if not hasattr(net, "params") or not hasattr(net, "hidden_size_list"):
        raise TypeError(f"save_net takes a MultiLayerNet or MultiLayerNetExtend, got "
                        f"{type(net).__name__}")
    if hasattr(net, "_sync_params"):  # what its passes use: a layer's re-bound W too
        with contextlib.suppress(ValueError, KeyError, TypeError):  # load_net says which
            net._sync_params()
    normalization = getattr(net, "normalization", None) or "none"
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"the fastnet-mlp formats hold the normalizations "
                         f"{', '.join(NORMALIZATIONS)}, not {normalization!r}")
    groups = getattr(net, "groups", None) or V1_GROUPS
    version = 1 if normalization in ("none", "batch") and groups == V1_GROUPS else 2
    ratio = _dropout_ratio(net) if getattr(net, "use_dropout", False) else 0.0
    for key, layer in net.layers.items():
        if getattr(layer, "eps", layers.NORM_EPS) != layers.NORM_EPS:
            raise ValueError(f"the fastnet-mlp formats hold no eps: layers[{key!r}].eps="
                             f"{layer.eps!r}, where load_net gives the default "
                             f"{layers.NORM_EPS}")
    arrays = {
        "format": np.str_(f"{FORMAT_NAME}/{version}"),
        "input_size": np.int64(net.input_size),
        "hidden_size_list": np.array(net.hidden_size_list, np.int64).reshape(-1),
        "output_size": np.int64(net.output_size),
        "activation": np.str_(net.activation),
        "dropout_ratio": np.float64(ratio),
    }
    if version == 1:
        arrays["use_batchnorm"] = np.bool_(normalization == "batch")
    else:
        arrays["normalization"] = np.str_(normalization)
        arrays["groups"] = np.int64(groups)
    arrays.update({f"params/{key}": value for key, value in net.params.items()})
    for i, layer in _running_layers(net).items():
        if layer.running_mean is not None:
            arrays[f"running/mean{i}"] = layer.running_mean
            arrays[f"running/var{i}"] = layer.running_var
    return arrays


def _running_layers(net):
    """``{i: layer}`` for the hidden layers ``{name}{i}`` that keep running statistics
    (batch and switchable norm), made yet or not."""
    return {int(match[1]): layer for key, layer in net.layers.items()
            if (match := re.fullmatch(r"[A-Za-z]+(\d+)", key)) and hasattr(layer, "running_mean")}


def _publish(tmp, path, overwrite):
    """Give the complete file ``tmp`` the name ``path`` in one step."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if path exists, with no window between check and write
    except FileExistsError:
        raise _exists(path) from None
    except OSError:  # a file system without hard links: check, then rename
        if path.exists():
            raise _exists(path) from None
        os.replace(tmp, path)


def _exists(path):
    return FileExistsError(errno.EEXIST, "refusing to overwrite an existing file "
                           "(pass overwrite=True)", str(path))


def load_net(path, *, dtype=None, net_class=None, **options):
    """The net saved at ``path`` by ``save_net`` (or ``fastnet train --save``).

    Returns a ``net_class`` (default ``fastnet.nets.MultiLayerNetExtend``; pass
    ``fastnet.reference.nets.MultiLayerNetExtend`` for the NumPy oracle) with the
    saved architecture (normalization and groups included), parameters and running
    statistics, in ``dtype`` (default: the saved one).  ``options`` go to its
    constructor: ``weight_decay_lambda``, ``seed`` or ``rng`` (for dropout's masks),
    which the file does not fix.  Reads ``fastnet-mlp/1`` and ``fastnet-mlp/2``.

    A ``net_class`` without normalization or dropout arguments (``MultiLayerNet``)
    loads a file whose net has neither.  An option the file fixes (the sizes,
    ``activation``, ``use_dropout``, ``dropout_ratio``, ``normalization``,
    ``use_batchnorm``, ``groups``) is a ``TypeError``.

    A file that is not a saved net, lacks an entry, has a newer format version, names
    an unknown normalization, describes a net that cannot be built (``groups`` not
    dividing a hidden size) or that ``net_class`` does not build, holds arrays of the
    wrong shape or of a dtype other than the net's (``params/b1``'s), values beyond the
    range of the ``dtype`` asked for, or a negative running variance raises
    ``ValueError`` naming ``path`` and the problem; a file that cannot be opened raises
    the ``OSError`` of ``open``.
    """
    fixed = sorted(_FIXED_BY_THE_FILE & set(options))
    if fixed:
        raise TypeError(f"load_net: {', '.join(fixed)} {'is' if len(fixed) == 1 else 'are'} "
                        f"fixed by the file; options are the constructor's other "
                        f"arguments (weight_decay_lambda, weight_init_std, seed, rng)")
    path = Path(os.fsdecode(path))
    files, version = _read(path)
    return _net_from_arrays(files, version, path, dtype, net_class, **options)


# The constructor's arguments that a saved net's file fixes.
_FIXED_BY_THE_FILE = {"input_size", "hidden_size_list", "output_size", "activation",
                      "use_dropout", "dropout_ratio", "dropout_ration", "normalization",
                      "use_batchnorm", "groups"}


def _net_from_arrays(files, version, path, dtype=None, net_class=None, **options):
    """``load_net``'s net from the archive's arrays ``files`` of format ``version``
    (``path`` names it in errors)."""
    architecture = _architecture(files, version, path)
    params = {key.removeprefix("params/"): value for key, value in files.items()
              if key.startswith("params/")}
    if "b1" not in params:
        raise ValueError(f"{path} lacks params/b1 (a fastnet-mlp/{version} net has "
                         f"params/b1 ... params/b{len(architecture['hidden_size_list']) + 1})")
    saved = params["b1"].dtype
    if saved not in (np.float32, np.float64):
        raise ValueError(f"{path}: b1 must be a float32 or float64 array (the net's "
                         f"dtype), got dtype {saved}")
    sizes = [architecture["input_size"], *architecture["hidden_size_list"],
             architecture["output_size"]]
    for i, shape in enumerate(itertools.pairwise(sizes), 1):  # before allocating a net
        key = f"v{i}" if f"v{i}" in params else f"W{i}"
        if key not in params:
            raise ValueError(f"{path} lacks params/W{i} (or params/v{i}, weight norm's): "
                             f"the sizes it describes are {sizes}")
        if np.shape(params[key]) != shape:
            raise ValueError(f"{path}: {key} has shape {np.shape(params[key])}, the sizes "
                             f"it describes ({sizes}) make it {shape}")
    net_class = net_class or nets.MultiLayerNetExtend
    sizes = [architecture.pop(key) for key in ("input_size", "hidden_size_list",
                                                 "output_size")]
    arguments = _constructor_arguments(architecture, net_class, path)
    try:
        net = net_class(*sizes, dtype=saved if dtype is None else dtype, **arguments,
                        **options)
    except ValueError as err:  # a size of 0, an unknown activation...
        raise ValueError(f"{path}: cannot build the net it describes: {err}") from None
    _copy_params(net, params, files, path, saved)
    return net


def _constructor_arguments(architecture, net_class, path):
    """``net_class``'s keyword arguments for the rest of ``architecture``
    (``_architecture``'s, sizes taken out): ``activation``, and the others where they
    differ from the defaults, so that a class without them (``MultiLayerNet``) builds
    a net that needs none; a class that takes ``**kwargs`` is given them."""
    normalization = architecture.pop("normalization")
    arguments = {"activation": architecture["activation"]}
    if normalization != "none":
        arguments["normalization"] = normalization
    if architecture.get("groups", V1_GROUPS) != V1_GROUPS:
        arguments["groups"] = architecture["groups"]
    if architecture["use_dropout"]:
        arguments.update(use_dropout=True, dropout_ratio=architecture["dropout_ratio"])
    takes = inspect.signature(net_class).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in takes.values()):
        return arguments  # a subclass passing them on: its constructor says
    lacking = [name for name in arguments if name not in takes]
    if lacking:
        said = ", ".join(f"{name}={arguments[name]!r}" for name in lacking)
        raise ValueError(f"{path} describes a net with {said}, which "
                         f"{net_class.__name__} does not take: load it as a "
                         f"MultiLayerNetExtend")
    return arguments


def _read(path):
    """Every array of the ``.npz`` at ``path``, which must be tagged with one of
    ``FORMATS``, and the version of its format."""
    expected = " or ".join(map(repr, FORMATS))
    unreadable = (f"{path} is not a fastnet net: expected an .npz archive with format "
                  f"{expected}, found a file NumPy cannot read as one")
    try:
        saved = np.load(path, allow_pickle=False)
        files = None  # a .npy file gives a single array
        if isinstance(saved, np.lib.npyio.NpzFile):
            with saved:
                files = dict(saved)
    except (ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(f"{unreadable} ({err})") from None  # ValueError: pickled data
    if files is None:
        raise ValueError(f"{unreadable} (a single .npy array)")
    if "format" not in files:
        raise ValueError(f"{path} is not a fastnet net: expected format {expected}, "
                         f"found no 'format' entry")
    found = str(files["format"])
    name, _, version = found.partition("/")
    if name == FORMAT_NAME and version.isdigit() and int(version) > FORMAT_VERSION:
        raise ValueError(f"{path} has format {found!r}, newer than this fastnet reads "
                         f"({FORMAT!r}); load it with a newer fastnet")
    if found not in FORMATS:
        raise ValueError(f"{path} is not a fastnet net: expected format {expected}, "
                         f"found {found!r}")
    version = int(version)
    missing = [key for key in ARCHITECTURE_KEYS[version] if key not in files]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)} (format {found} needs "
                         f"{', '.join(ARCHITECTURE_KEYS[version])})")
    return files, version


def _architecture(files, version, path):
    """The constructor's arguments from the archive's arrays: the sizes, ``activation``,
    ``normalization`` (a name of ``NORMALIZATIONS``), ``groups`` (version 2),
    ``use_dropout`` and ``dropout_ratio``."""
    def scalar(key, kinds):
        value = files[key]
        if value.ndim != 0 or value.dtype.kind not in kinds:
            raise ValueError(f"{path}: {key} must be a scalar of kind {kinds!r}, got "
                             f"dtype {value.dtype} and shape {value.shape}")
        return value.item()

    sizes = files["hidden_size_list"]
    if sizes.ndim != 1 or (sizes.size and sizes.dtype.kind not in "iu"):
        raise ValueError(f"{path}: hidden_size_list must be a 1-D integer array, got "
                         f"dtype {sizes.dtype} and shape {sizes.shape}")
    dropout_ratio = float(scalar("dropout_ratio", "f"))
    if not 0 <= dropout_ratio <= 1:  # 0: no dropout
        raise ValueError(f"{path}: dropout_ratio must be in [0, 1] (0: no dropout), got "
                         f"{dropout_ratio}")
    architecture = {"input_size": scalar("input_size", "iu"),
                    "hidden_size_list": [int(n) for n in sizes],
                    "output_size": scalar("output_size", "iu"),
                    "activation": scalar("activation", "U"),
                    "use_dropout": dropout_ratio > 0, "dropout_ratio": dropout_ratio or 0.5}
    if version == 1:
        architecture["normalization"] = "batch" if scalar("use_batchnorm", "b") else "none"
        return architecture
    normalization = scalar("normalization", "U")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"{path}: normalization must be one of "
                         f"{', '.join(map(repr, NORMALIZATIONS))}, got {normalization!r}")
    groups = scalar("groups", "iu")
    if groups < 1:
        raise ValueError(f"{path}: groups must be >= 1, got {groups}")
    try:
        _book.check_normalized_sizes(normalization, groups, architecture["hidden_size_list"])
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    architecture.update(normalization=normalization, groups=groups)
    return architecture


def _copy_params(net, params, files, path, saved):
    """Copy the saved arrays (of dtype ``saved``) into ``net``'s own, which its layers
    hold."""
    if set(params) != set(net.params):
        raise ValueError(f"{path} holds parameters {sorted(params)}, the net it describes "
                         f"has {sorted(net.params)}")
    for key, value in params.items():
        net.params[key][...] = _checked(value, net.params[key].shape, key, path, saved,
                                        net.dtype)
    running = _running_layers(net)
    expected = {f"running/{stat}{i}" for i in running for stat in ("mean", "var")}
    stray = sorted(key for key in files if key.startswith("running/") and key not in expected)
    if stray:
        raise ValueError(f"{path} holds {', '.join(stray)}, but the net it describes has "
                         f"no running statistics there (only batch and switchable norm "
                         f"keep them)")
    for i, layer in running.items():
        if f"running/mean{i}" not in files and f"running/var{i}" not in files:
            continue
        for stat in ("mean", "var"):
            value = files.get(f"running/{stat}{i}")
            if value is None:
                other = "var" if stat == "mean" else "mean"
                raise ValueError(f"{path} has running/{other}{i} but lacks running/{stat}{i}")
            value = _checked(value, net.params[f"gamma{i}"].shape, f"running/{stat}{i}",
                             path, saved, net.dtype)
            if stat == "var" and (value < 0).any():  # NaN: a diverged net's, as saved
                raise ValueError(f"{path}: running/var{i} must hold variances >= 0, got "
                                 f"{value[value < 0][0]}")
            current = getattr(layer, f"running_{stat}")
            if current is None:  # the layers make them on their first training batch
                setattr(layer, f"running_{stat}", value)
            else:
                current[...] = value  # fastnet's nets keep them in one arena


def _checked(value, shape, name, path, saved, dtype):
    """The saved array ``name`` in ``dtype``; ValueError unless it has the net's
    ``saved`` dtype and ``shape``, and its finite values stay finite in ``dtype``."""
    if value.dtype != saved:
        raise ValueError(f"{path}: {name} has dtype {value.dtype}, but the net's (b1's) is "
                         f"{saved}: every array of a saved net has its dtype")
    if value.shape != shape:
        raise ValueError(f"{path}: {name} has shape {value.shape}, the net expects {shape}")
    with np.errstate(over="ignore"):
        converted = value.astype(dtype)
    if np.isinf(converted).sum() != np.isinf(value).sum():
        raise ValueError(f"{path}: {name} holds values beyond the range of {np.dtype(dtype)} "
                         f"(largest magnitude {np.nanmax(np.abs(value)):.4g}): it does not "
                         f"load as {np.dtype(dtype)}")
    return converted
