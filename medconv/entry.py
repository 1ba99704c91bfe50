"""Console-script entry point.

`medconv --version` is what pipelines call to record the tool's version, often once per
job; it is answered here, before the command-line framework and its ~45 ms of imports are
loaded. Everything else goes to `medconv.cli.main` unchanged.
"""
from __future__ import annotations

import sys

_VERSION_FLAGS = ("--version", "-V")


def main(argv=None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) == 1 and args[0] in _VERSION_FLAGS:
        from . import __version__

        sys.stdout.write(f"medconv {__version__}\n")
        sys.exit(0)
    _stop_on_signals()
    from .cli import main as cli_main

    cli_main(argv)


#: the signal that ended the run (SIGTERM from Slurm, docker stop, timeout; SIGHUP), if any
stopped_by: list = []


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP stop medconv like Ctrl-C does: outputs being written are discarded and
    nothing partial is left; the exit code is 128 + the signal's number."""
    import signal

    def stop(signum, frame):
        stopped_by.append(signum)
        raise KeyboardInterrupt

    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, stop)
