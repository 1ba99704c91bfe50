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
    from . import io
    from .cli import main as cli_main

    try:
        cli_main(argv)
    finally:
        io.remove_live_temps()  # a run stopped part-way: temporary files still recorded go


#: the signal that ended the run (SIGTERM from Slurm, docker stop, timeout; SIGHUP), if any
stopped_by: list = []


#: seconds the normal clean-up gets after a stop signal before the process is ended regardless
STOP_DEADLINE = 15.0


def _stop_on_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP stop medconv: outputs being written are discarded and nothing
    partial is left; the exit code is 130 for Ctrl-C, else 128 + the signal's number.

    The stop is an exception raised wherever the main thread is, which unwinds every write through
    its clean-up. An exception can land inside a threaded compressor's queue handling and leave its
    threads waiting forever, so a watchdog ends the process after STOP_DEADLINE seconds (or at a
    second signal), removing the temporary files still being written first.
    """
    import signal
    import threading

    from . import io

    def stop(signum, frame):
        if stopped_by:  # a second signal: no more waiting
            _end_now(stopped_by[0])
        stopped_by.append(signum)
        threading.Thread(target=_watchdog, args=(signum,), daemon=True).start()
        if io.hold_signal(signum):
            return  # raised when the temporary file being created or renamed is recorded or gone
        raise KeyboardInterrupt

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):
            signal.signal(sig, stop)


def _watchdog(signum: int) -> None:
    import time

    time.sleep(STOP_DEADLINE)
    _end_now(signum)


def _end_now(signum: int) -> None:
    """End worker processes, remove the temporary files still being written and end the process
    at once."""
    import os

    from . import io

    if "multiprocessing" in sys.modules:
        import multiprocessing

        for child in multiprocessing.active_children():
            try:
                child.kill()  # a worker must not go on writing once its parent is gone
            except (OSError, ValueError, AttributeError):
                pass
    io.remove_live_temps()
    try:
        sys.stderr.write("medconv: error: interrupted; finished outputs are complete, nothing partial was left\n")
        sys.stderr.flush()
    except Exception:
        pass
    os._exit(130 if signum == 2 else 128 + signum)
