"""Files that fastnet writes: whole or not at all."""
import contextlib
import os
import secrets
from pathlib import Path


@contextlib.contextmanager
def atomic_file(dest, mode="wb", **options):
    """A file beside ``dest`` that replaces it on success and vanishes on error.

    Readers never see a partial ``dest``, and a failed or interrupted write (a full
    disk, ``ulimit -f``, Ctrl-C) leaves the previous ``dest`` as it was and nothing
    else behind.  ``mode`` is ``"wb"`` or ``"w"``; ``options`` go to ``open`` (text:
    ``newline``, ``encoding``).  An ``OSError`` that names no file, or names the
    temporary one, is raised again naming ``dest``.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_file writes a new file, mode 'w' or 'wb', not {mode!r}")
    dest = Path(dest)
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
        raise OSError(err.errno, err.strerror or str(err), str(dest)) from err

