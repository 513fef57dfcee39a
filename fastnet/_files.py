"""Files that fastnet writes: whole or not at all, and checked before a long run."""
import contextlib
import os
import secrets
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_file(dest, mode="wb", **options):
    """A file beside ``dest`` that replaces it on success and vanishes on error.

    Readers never see a partial ``dest``, and a failed or interrupted write (a full
    disk, ``ulimit -f``, Ctrl-C) leaves the previous ``dest`` as it was and nothing
    else behind.  A symbolic link is written through (it stays, its target is
    replaced); an existing ``dest`` that is no regular file (a pipe, a device) is
    written directly.  ``mode`` is ``"wb"`` or ``"w"``; ``options`` go to ``open``
    (text: ``newline``, ``encoding``).  An ``OSError`` that names no file, or names the
    temporary one, is raised again naming ``dest`` as given.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_file writes a new file, mode 'w' or 'wb', not {mode!r}")
    given, dest = str(dest), Path(os.path.realpath(dest))  # a link stays, its target is replaced
    if dest.exists() and not dest.is_file():  # a pipe, a device (/dev/stdout): as given
        with open(dest, mode, **options) as out:
            yield out
        return
    # Not mkstemp: its 0600 mode would make a shared file unreadable to others.
    tmp = str(dest.parent / f".{dest.name}.{secrets.token_hex(4)}.part")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
        try:
            with os.fdopen(fd, mode, **options) as out:
                yield out
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    except OSError as err:
        if err.filename not in (None, tmp):
            raise
        raise OSError(err.errno, err.strerror or str(err), given) from err


def unwritable(path, flag, folder=False):
    """Why ``path`` cannot be written, in a sentence naming the option ``flag`` that
    gave it, or None when it can: a file (``folder`` False) that is not a folder,
    whose folder exists and takes new files and which, if it exists, may be written
    (a pipe or a device need only be writable); or a folder (made here if missing)
    that takes new files.  For a check before a
    long run, whose result would otherwise be lost at its end."""
    given, path = str(path), Path(path)  # Path drops a trailing separator
    where = path if folder else path.parent
    if folder and path.exists() and not path.is_dir():
        return f"{path} is a file; {flag} names a folder"
    if not folder and (path.is_dir() or given.endswith(("/", os.sep))):
        return f"{path} is a folder; {flag} names a file"
    if not folder and path.exists():
        if not os.access(path, os.W_OK):
            return f"cannot write {path} ({flag}): permission denied"
        if not os.path.isfile(path):  # a pipe, a device: written as it is, not beside
            return None
    try:
        if folder:
            where.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=where or "."):
            pass
    except OSError as err:
        return f"cannot write in {where or '.'} ({flag}): {err.strerror or err}"
    return None
