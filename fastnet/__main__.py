"""``python -m fastnet`` and the ``fastnet`` command's entry point: ``fastnet.cli.main``.

Importing the command (NumPy, Numba, the kernels' registry) takes most of a second; a
Ctrl-C meanwhile ends it as a Ctrl-C later does, with one line and exit status 130,
not a traceback through the imports; so does a bad setting read at import (a
``FASTNET_NUM_THREADS`` that is not a thread count): one line, exit status 1.
"""
import os
import sys


def main():
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        print("fastnet: interrupted", file=sys.stderr)
        return 130  # 128 + SIGINT, as a shell reports it
    except ValueError as err:  # a setting read at import: FASTNET_NUM_THREADS=abc
        if os.environ.get("FASTNET_DEBUG"):
            raise
        print(f"fastnet: error: {err}", file=sys.stderr)
        return 1
    return cli_main()


if __name__ == "__main__":  # spawned worker processes import this module too
    sys.exit(main())
