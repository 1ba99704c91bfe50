"""Many inputs: run one function per input (in order, or in a process pool re-ordered to input
order), with a progress bar on a terminal, stopping or going on after failures."""
from __future__ import annotations

import os
import signal
import sys

from . import log
from .errors import BatchFailed, Interrupted, MedconvError


def default_jobs(n_items: int) -> int:
    """CPUs for a batch, 1 for a single input."""
    if n_items <= 1:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, n_items))


def run(items, func, *, keep_going: bool = False, on_error=None, jobs: int | None = 1, progress: str | None = None):
    """Call func(item) for each item; returns (results in input order, failures).

    Without keep_going the first MedconvError propagates. With it, failures are
    collected as (item, error) and reported through on_error(item, error); call
    finish(failures, total) once the successful results have been used.
    With jobs > 1, func and the items must be picklable (a module-level function,
    or functools.partial of one); results still come back in input order.
    `progress` names the bar shown on a terminal (None: no bar).
    """
    items = list(items)
    if jobs is None:
        jobs = default_jobs(len(items))
    jobs = max(1, min(int(jobs), len(items) or 1))
    bar = Progress(progress, len(items))
    try:
        if jobs == 1:
            return _run_serial(items, func, keep_going, on_error, bar)
        return _run_pool(items, func, keep_going, on_error, bar, jobs)
    except KeyboardInterrupt:
        raise Interrupted("interrupted; finished outputs are complete, nothing partial was left") from None
    finally:
        bar.close()


def _run_serial(items, func, keep_going, on_error, bar):
    results, failures = [], []
    for item in items:
        try:
            results.append(func(item))
        except MedconvError as exc:
            if not keep_going:
                raise
            failures.append((item, exc))
            if on_error:
                on_error(item, exc)
        finally:
            bar.advance()
    return results, failures


def _run_pool(items, func, keep_going, on_error, bar, jobs):
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    methods = multiprocessing.get_all_start_methods()
    # fork: workers start in milliseconds and inherit the imported modules; elsewhere spawn
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    stop = ctx.Event()  # raised on a failure without -k or a stop signal: queued items do not start
    executor = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=init_worker,
                                   initargs=(log.is_quiet(), stop))
    outcomes = [None] * len(items)
    messages = [""] * len(items)
    failures = []
    done_upto = 0
    try:
        # a few items per worker in flight (small items would otherwise wait on the main process);
        # after a failure (without -k) or a stop signal, the stop flag keeps queued ones from starting
        todo = iter(enumerate(items))
        pending = {}
        stopping = False

        def refill():
            while not stopping and len(pending) < 4 * jobs:
                nxt = next(todo, None)
                if nxt is None:
                    return
                pending[executor.submit(_call, func, nxt[1])] = nxt[0]

        refill()
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            failed = False
            for fut in finished:
                i = pending.pop(fut)
                if fut.cancelled():
                    outcomes[i] = ("cancelled", None)
                    continue
                outcomes[i], messages[i] = fut.result()
                failed = failed or outcomes[i][0] in ("error", "bug")
                bar.advance()
            if failed and not keep_going:
                # the batch stops at its first failure: nothing more starts (running items finish,
                # their outputs complete); the earliest failed input is raised below, in input order
                stopping = True
                stop.set()
                for fut in pending:
                    fut.cancel()
                for i, _ in todo:
                    outcomes[i] = ("cancelled", None)
            refill()
            # report in input order, so the first failure raised is the earliest input's
            while done_upto < len(items) and outcomes[done_upto] is not None:
                kind, value = outcomes[done_upto]
                if messages[done_upto]:
                    bar.write(messages[done_upto])
                if kind == "error":
                    value = _rebuild_error(*value)
                if kind == "error":
                    if not keep_going:
                        raise value
                    failures.append((items[done_upto], value))
                    if on_error:
                        on_error(items[done_upto], value)
                elif kind == "bug":
                    raise RuntimeError(value)
                done_upto += 1  # ("cancelled", None): not run, after a failure that is raised
    except BaseException:
        stop.set()
        _stop(executor)
        raise
    executor.shutdown(wait=True)
    results = [value for kind, value in outcomes if kind == "ok"]
    return results, failures


def _stop(executor) -> None:
    """Cancel queued items and let running ones finish (their writes are atomic and short);
    a second Ctrl-C while waiting ends the workers at once."""
    import time

    procs = list((getattr(executor, "_processes", None) or {}).values())
    try:
        executor.shutdown(wait=False, cancel_futures=True)
        # running items end in well under a second; a worker still alive after this is stuck
        deadline = time.monotonic() + _STOP_GRACE
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
    except KeyboardInterrupt:
        _terminate(procs)
        raise
    _terminate([p for p in procs if p.is_alive()])


#: seconds the workers get to finish their current item after Ctrl-C
_STOP_GRACE = 30.0


def _terminate(procs) -> None:
    for proc in procs:
        try:
            proc.terminate()
        except (OSError, ValueError, AttributeError):
            pass


#: set in a worker by init_worker: "stop", the main process's flag (a failure without -k, a signal)
_WORKER: dict = {}


def worker_stop():
    """In a worker process: the main process's stop flag (set after a failure without -k or a stop
    signal: queued items do not start), else None."""
    return _WORKER.get("stop")


def init_worker(quiet: bool, stop=None) -> None:
    """The start of a worker process: the parent's quiet setting and stop flag; Ctrl-C left to the
    main process."""
    from . import io

    _WORKER["stop"] = stop
    io.forget_parent_state()  # a fork copies the parent's state: this process starts afresh
    log.set_quiet(quiet)
    # Ctrl-C reaches the whole process group: only the main process acts on it, so a worker
    # never dies half-way through writing a file
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _call(func, item):
    """Run one item in a worker; errors travel back as data (MedconvError's path survives pickling),
    and so do its stderr messages, which the main process prints in input order."""
    import io

    stop = worker_stop()
    if stop is not None and stop.is_set():
        return ("cancelled", None), ""  # queued before the batch stopped: not started
    captured, saved = io.StringIO(), sys.stderr
    sys.stderr = captured
    try:
        return ("ok", func(item)), captured.getvalue()
    except MedconvError as exc:
        return ("error", (type(exc), exc.message, exc.path)), captured.getvalue()
    except Exception as exc:
        import traceback

        if os.environ.get("MEDCONV_DEBUG", "") not in ("", "0"):
            traceback.print_exc()
        return ("bug", f"{type(exc).__name__}: {exc}"), captured.getvalue()
    finally:
        sys.stderr = saved


def _rebuild_error(cls, message, path):
    """The MedconvError a worker raised, rebuilt on this side of the process boundary."""
    try:
        return cls(message, path)
    except TypeError:  # a subclass with its own constructor: the same class, built as the base builds
        err = cls.__new__(cls)
        MedconvError.__init__(err, message, path)
        return err


#: seconds a batch runs before its progress bar appears: a batch done sooner shows none
PROGRESS_DELAY = 1.0


class Progress:
    """A rich progress bar on stderr, only on a terminal and without --quiet; it appears once the
    batch has run PROGRESS_DELAY seconds and is removed when the batch ends (transient)."""

    def __init__(self, label, total):
        import threading

        self._bar = None
        self._lock = threading.Lock()
        self._done = 0
        self._closed = False
        self._timer = None
        if not label or total < 2 or log.is_quiet() or not _stderr_is_tty():
            return
        self._label, self._total = label, total
        delay = float(os.environ.get("MEDCONV_PROGRESS_DELAY", PROGRESS_DELAY))
        if delay <= 0:
            self._start()
        else:
            self._timer = threading.Timer(delay, self._start)
            self._timer.daemon = True
            self._timer.start()

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        class _Rate(TextColumn):
            def render(self, task):
                speed = task.finished_speed or task.speed
                from rich.text import Text

                return Text(f"{speed:.1f}/s" if speed else "-/s")

        with self._lock:
            if self._closed or self._bar is not None:
                return
            bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TaskProgressColumn(), _Rate(""), TimeElapsedColumn(), TextColumn("ETA"),
                           TimeRemainingColumn(), console=Console(file=sys.stderr), transient=True)
            bar.start()
            self._task = bar.add_task(self._label, total=self._total, completed=self._done)
            self._bar = bar

    def write(self, text: str) -> None:
        """Messages above the bar (or plainly on stderr without one)."""
        with self._lock:
            if self._bar is not None:
                self._bar.console.print(text.rstrip("\n"), markup=False, highlight=False)
                return
        sys.stderr.write(text)
        sys.stderr.flush()

    def advance(self):
        with self._lock:
            self._done += 1
            if self._bar is not None:
                self._bar.advance(self._task)

    def close(self):
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
            if self._bar is not None:
                self._bar.stop()
                self._bar = None


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def finish(failures, total: int) -> None:
    """Print a summary table of failures on stderr and raise BatchFailed (exit 5) when any input failed."""
    if not failures:
        return
    if not log.is_quiet():
        rows = [(_label(item), f"{exc.message} (exit {exc.exit_code})") for item, exc in failures]
        width = min(60, max(len(r[0]) for r in rows))
        lines = [f"medconv: {len(failures)} of {total} inputs failed:"]
        lines += [f"  {name:<{width}}  {why}" for name, why in rows]
        print("\n".join(lines), file=sys.stderr)
    raise BatchFailed(f"{len(failures)} of {total} inputs failed: "
                      + "; ".join(_label(item) for item, _ in failures[:5])
                      + (" ..." if len(failures) > 5 else ""))


def _label(item) -> str:
    """The source path of an item (a path, or a tuple/object whose first element is one)."""
    if isinstance(item, (tuple, list)) and item:
        return _label(item[0])
    return str(item)  # planned tasks print as their source (and series)
