"""``python -m fastnet`` and the ``fastnet`` command's entry point: ``fastnet.cli.main``.

Importing the command (NumPy, Numba, the kernels' registry) takes most of a second; a
Ctrl-C meanwhile ends it as a Ctrl-C later does, with one line and exit status 130,
not a traceback through the imports.
"""
import sys


def main():
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        print("fastnet: interrupted", file=sys.stderr)
        return 130  # 128 + SIGINT, as a shell reports it
    return cli_main()


if __name__ == "__main__":  # spawned worker processes import this module too
    sys.exit(main())
