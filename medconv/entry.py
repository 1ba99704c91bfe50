"""Console-script entry point.

`medconv --version` is what pipelines call to record the tool's version, often once per
job; it is answered here, before the command-line framework and its imports are
loaded. Everything else goes to `medconv.cli.main` unchanged.
"""
from __future__ import annotations

import sys

_VERSION_FLAGS = ("--version", "-V")


def main(argv=None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) == 1 and args[0] in _VERSION_FLAGS:
        from . import __version__
        from .errors import ExitStatus

        sys.stdout.write(f"medconv {__version__}\n")
        sys.exit(ExitStatus.OK)
    from . import signals

    signals.install()
    from . import fileio
    from .cli import main as cli_main

    try:
        cli_main(argv)
    finally:
        fileio.remove_live_temps()  # a run stopped part-way: temporary files still recorded go
        # the process ends here: the interpreter's last cyclic collection need not walk every object
        # the run built (headers, frames, modules) only to find them alive; reference counting and
        # the clearing of modules free them as before
        import gc

        gc.freeze()
