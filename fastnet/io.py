"""Saving and loading nets: ``save_net(net, path)`` and ``load_net(path)``.

A saved net is a plain NumPy ``.npz`` archive, readable with
``np.load(path, allow_pickle=False)``, in the format tagged ``fastnet-mlp/1``.  For a
net with ``L`` hidden layers it holds these arrays:

=====================  =======  ==========================  =============================
key                    dtype    shape                       meaning
=====================  =======  ==========================  =============================
``format``             str      ()                          ``'fastnet-mlp/1'``
``input_size``         int64    ()                          inputs per sample
``hidden_size_list``   int64    (L,)                        width of each hidden layer
``output_size``        int64    ()                          classes
``activation``         str      ()                          ``'relu'``, ``'sigmoid'``, ...
``use_batchnorm``      bool     ()                          batch norm after hidden Affines
``dropout_ratio``      float64  ()                          0.0 for no dropout
``params/W{i}``        net's    (fan_in, fan_out)           i = 1 .. L + 1
``params/b{i}``        net's    (fan_out,)                  i = 1 .. L + 1
``params/gamma{i}``    net's    (hidden_size_list[i-1],)    with batch norm, i = 1 .. L
``params/beta{i}``     net's    (hidden_size_list[i-1],)    with batch norm, i = 1 .. L
``running/mean{i}``    net's    (hidden_size_list[i-1],)    batch norm running mean
``running/var{i}``     net's    (hidden_size_list[i-1],)    batch norm running variance
=====================  =======  ==========================  =============================

"net's" dtype is float32 or float64, the same for every parameter; the dtype of
``params/W1`` is the net's.  The running statistics are present when the net's
batch-norm layers have them (fastnet's nets always do; the reference's after their
first training batch).  Not saved: the weight decay, the optimizer and its state, and
the dropout layers' random streams; these are training settings, given again to
``load_net`` (``weight_decay_lambda=``, ``seed=``) or to the trainer.

A later format that old readers cannot read gets a new number (``fastnet-mlp/2``);
``load_net`` refuses a number newer than its own with an error that says so.
"""
import errno
import os
import secrets
import zipfile
import zlib
from pathlib import Path

import numpy as np

from . import nets

FORMAT_NAME = "fastnet-mlp"
FORMAT_VERSION = 1
FORMAT = f"{FORMAT_NAME}/{FORMAT_VERSION}"
ARCHITECTURE_KEYS = ("input_size", "hidden_size_list", "output_size", "activation",
                     "use_batchnorm", "dropout_ratio")


def save_net(net, path, *, overwrite=False):
    """Write ``net`` to ``path`` in the ``fastnet-mlp/1`` format (see the module doc).

    ``net`` is a ``MultiLayerNet`` or ``MultiLayerNetExtend`` of ``fastnet.nets`` or
    ``fastnet.reference.nets``.  The archive is written to a temporary file beside
    ``path`` and renamed onto it only when complete, so ``path`` never holds a
    half-written net, and an existing file is left as it was when the save fails.
    ``path`` is used as given (no ``.npz`` is appended).  An existing ``path`` is a
    ``FileExistsError`` unless ``overwrite`` is true.
    """
    path = Path(path)
    arrays = _net_arrays(net)
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
        tmp.unlink(missing_ok=True)


def _net_arrays(net):
    """The archive's arrays for ``net``, keyed as in the format table."""
    if not hasattr(net, "params") or not hasattr(net, "hidden_size_list"):
        raise TypeError(f"save_net takes a MultiLayerNet or MultiLayerNetExtend, got "
                        f"{type(net).__name__}")
    normalization = getattr(net, "normalization", None)
    if normalization not in (None, "batch"):
        raise ValueError(f"the {FORMAT} format holds nets without normalization or with "
                         f"batch norm, not normalization={normalization!r}")
    use_dropout = getattr(net, "use_dropout", False)
    arrays = {
        "format": np.str_(FORMAT),
        "input_size": np.int64(net.input_size),
        "hidden_size_list": np.array(net.hidden_size_list, np.int64).reshape(-1),
        "output_size": np.int64(net.output_size),
        "activation": np.str_(net.activation),
        "use_batchnorm": np.bool_(getattr(net, "use_batchnorm", False)),
        "dropout_ratio": np.float64(net.dropout_ratio if use_dropout else 0.0),
    }
    arrays.update({f"params/{key}": value for key, value in net.params.items()})
    for i in range(1, len(net.hidden_size_list) + 1):
        batchnorm = net.layers.get(f"BatchNorm{i}")
        if batchnorm is not None and batchnorm.running_mean is not None:
            arrays[f"running/mean{i}"] = batchnorm.running_mean
            arrays[f"running/var{i}"] = batchnorm.running_var
    return arrays


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
    saved architecture, parameters and running statistics, in ``dtype`` (default: the
    saved one).  ``options`` go to its constructor: ``weight_decay_lambda``, ``seed``
    or ``rng`` (for dropout's masks), which the file does not fix.

    A file that is not a saved net, lacks an entry, has a newer format version or
    holds arrays of the wrong shape raises ``ValueError`` naming the problem; a file
    that cannot be opened raises the ``OSError`` of ``open``.
    """
    path = Path(path)
    files = _read(path)
    architecture = _architecture(files, path)
    params = {key.removeprefix("params/"): value for key, value in files.items()
              if key.startswith("params/")}
    if "W1" not in params:
        raise ValueError(f"{path} lacks params/W1 (a {FORMAT} net has params/W1 ... "
                         f"params/W{len(architecture['hidden_size_list']) + 1})")
    net = (net_class or nets.MultiLayerNetExtend)(
        architecture["input_size"], architecture["hidden_size_list"],
        architecture["output_size"], activation=architecture["activation"],
        use_dropout=architecture["dropout_ratio"] > 0,
        dropout_ratio=architecture["dropout_ratio"] or 0.5,
        use_batchnorm=architecture["use_batchnorm"],
        dtype=params["W1"].dtype if dtype is None else dtype, **options)
    _copy_params(net, params, files, path)
    return net


def _read(path):
    """Every array of the ``.npz`` at ``path``, which must be tagged ``FORMAT``."""
    unreadable = (f"{path} is not a fastnet net: expected an .npz archive with format "
                  f"{FORMAT!r}, found a file NumPy cannot read as one")
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
        raise ValueError(f"{path} is not a fastnet net: expected format {FORMAT!r}, "
                         f"found no 'format' entry")
    found = str(files["format"])
    name, _, version = found.partition("/")
    if name == FORMAT_NAME and version.isdigit() and int(version) > FORMAT_VERSION:
        raise ValueError(f"{path} has format {found!r}, newer than this fastnet reads "
                         f"({FORMAT!r}); load it with a newer fastnet")
    if found != FORMAT:
        raise ValueError(f"{path} is not a fastnet net: expected format {FORMAT!r}, "
                         f"found {found!r}")
    missing = [key for key in ARCHITECTURE_KEYS if key not in files]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)} (format {FORMAT} needs "
                         f"{', '.join(ARCHITECTURE_KEYS)})")
    return files


def _architecture(files, path):
    """The constructor's architecture arguments from the archive's arrays."""
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
    return {"input_size": scalar("input_size", "iu"),
            "hidden_size_list": [int(n) for n in sizes],
            "output_size": scalar("output_size", "iu"),
            "activation": scalar("activation", "U"),
            "use_batchnorm": scalar("use_batchnorm", "b"),
            "dropout_ratio": float(scalar("dropout_ratio", "f"))}


def _copy_params(net, params, files, path):
    """Copy the saved arrays into ``net``'s own, which its layers hold."""
    if set(params) != set(net.params):
        raise ValueError(f"{path} holds parameters {sorted(params)}, the net it describes "
                         f"has {sorted(net.params)}")
    for key, value in params.items():
        _check_array(value, net.params[key].shape, key, path)
        net.params[key][...] = value
    for i in range(1, len(net.hidden_size_list) + 1):
        batchnorm = net.layers.get(f"BatchNorm{i}")
        if batchnorm is None or f"running/mean{i}" not in files:
            continue
        for stat in ("mean", "var"):
            value = files.get(f"running/{stat}{i}")
            if value is None:
                raise ValueError(f"{path} has running/mean{i} but lacks running/{stat}{i}")
            _check_array(value, net.params[f"gamma{i}"].shape, f"running/{stat}{i}", path)
            current = getattr(batchnorm, f"running_{stat}")
            if current is None:  # the reference's layers make them on the first batch
                setattr(batchnorm, f"running_{stat}", value.astype(net.dtype))
            else:
                current[...] = value  # fastnet's nets keep these in one arena


def _check_array(value, shape, name, path):
    if value.dtype.kind != "f":
        raise ValueError(f"{path}: {name} must be a float array, got dtype {value.dtype}")
    if value.shape != shape:
        raise ValueError(f"{path}: {name} has shape {value.shape}, the net expects {shape}")
