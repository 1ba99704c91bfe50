"""Stop signals: SIGINT, SIGTERM and SIGHUP end a run cleanly, with the shell's exit codes.

Installed by the entry point; the command line's error handler reads `stopped_by` to turn an
interrupted run into 128 + the signal's number.
"""
from __future__ import annotations

import sys

#: the signal that ended the run (SIGTERM from Slurm, docker stop, timeout; SIGHUP), if any
stopped_by: list = []


#: seconds the normal clean-up gets after a stop signal before the process is ended regardless
STOP_DEADLINE = 15.0


def install() -> None:
    """SIGINT, SIGTERM and SIGHUP stop medconv: outputs being written are discarded and nothing
    partial is left; the exit code is 130 for Ctrl-C, else 128 + the signal's number.

    The stop is an exception raised wherever the main thread is, which unwinds every write through
    its clean-up. An exception can land inside a threaded compressor's queue handling and leave its
    threads waiting forever, so a watchdog ends the process after STOP_DEADLINE seconds (or at a
    second signal), removing the temporary files still being written first.
    """
    import signal
    import threading

    from . import fileio

    def stop(signum, frame):
        if stopped_by:  # a second signal: no more waiting
            _end_now(stopped_by[0])
        stopped_by.append(signum)
        threading.Thread(target=_watchdog, args=(signum,), daemon=True).start()
        if fileio.hold_signal(signum):
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

    from . import fileio

    if "multiprocessing" in sys.modules:
        import multiprocessing

        for child in multiprocessing.active_children():
            try:
                child.kill()  # a worker must not go on writing once its parent is gone
            except (OSError, ValueError, AttributeError):
                pass
    fileio.remove_live_temps()
    try:
        sys.stderr.write("medconv: error: interrupted; finished outputs are complete, nothing partial was left\n")
        sys.stderr.flush()
    except Exception:
        pass
    os._exit(exit_status(signum))


def exit_status(signum: int) -> int:
    """The exit status of a run a signal stopped: 130 for Ctrl-C, else the shell's 128 + the signal."""
    import signal

    from .errors import ExitStatus

    return int(ExitStatus.INTERRUPTED) if signum == signal.SIGINT else 128 + signum
