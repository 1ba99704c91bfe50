"""Many inputs: run one function per input (in order, or in a process pool re-ordered to input
order), with a progress bar on a terminal, stopping or going on after failures.

`imap` is the engine every batch goes through (convert, info, header, stats, diff, view and
anonymize); `run` collects its outcomes into results and failures."""
from __future__ import annotations

import contextlib
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


def run(items, func, *, keep_going: bool = False, on_error=None, jobs: int | None = 1, chunk: int = 1,
        progress: str | None = None):
    """Call func(item) for each item; returns (results in input order, failures).

    Without keep_going the first MedconvError propagates (with jobs > 1: the earliest input's, and
    nothing more starts once any item has failed). With it, failures are collected as (item, error)
    and reported through on_error(item, error); call finish(failures, total) once the successful
    results have been used.
    With jobs > 1, func and the items must be picklable (a module-level function,
    or functools.partial of one); results still come back in input order.
    `chunk` items go to a worker at a time; `progress` names the bar shown on a terminal (None: no bar).
    """
    items = list(items)
    results, failures = [], []
    try:
        with contextlib.closing(imap(items, func, jobs=jobs, chunk=chunk, progress=progress,
                                     fail_fast=not keep_going)) as outcomes:
            for item, kind, value in outcomes:
                if kind == "ok":
                    results.append(value)
                elif kind == "bug" or (kind == "error" and not keep_going):
                    raise value
                elif kind == "error":
                    failures.append((item, value))
                    if on_error:
                        on_error(item, value)
                # "cancelled": not run, after a failure that is raised
    except KeyboardInterrupt:
        raise Interrupted("interrupted; finished outputs are complete, nothing partial was left") from None
    return results, failures


def imap(items, func, *, jobs: int | None = 1, chunk: int = 1, window: int | None = None,
         progress: str | None = None, on_discard=None, fail_fast: bool = False, stop_signals: bool = False):
    """Yield (item, kind, value) for each item, in input order; kind is

    - "ok": value is func(item);
    - "error": value is the MedconvError func raised (rebuilt in this process);
    - "bug": value is any other exception (from a worker: a RuntimeError naming it);
    - "cancelled": not run, because the batch was stopping (value None).

    With jobs > 1 the items go to a process pool (fork where there is one) `chunk` at a time. At
    most `window` chunks are out at once, counting those finished and not yet yielded (which bounds
    memory and whatever the results hold on disk); None: up to 4 * jobs running or queued, finished
    ones wait in memory. Temporary files a worker made (fileio.LIVE_TEMPS) become this process's
    with the chunk's results. A worker's stderr is printed here, in input order.
    fail_fast: any failure, whenever it comes, stops the batch (nothing more starts; running
    items finish). stop_signals: a worker sent SIGINT, SIGTERM or SIGHUP finishes its current item
    and the batch stops (KeyboardInterrupt here); without it a worker ignores SIGINT.
    Closing the iterator early (or Ctrl-C) stops the pool; `on_discard(value)` is then called for
    every "ok" value not handed out, and for the last one handed out (whose use may not have
    finished: on_discard must accept a value already used).
    """
    items = list(items)
    n_chunks = -(-len(items) // max(1, chunk))
    if jobs is None:
        jobs = default_jobs(n_chunks)
    jobs = max(1, min(int(jobs), n_chunks or 1))
    bar = Progress(progress, len(items))
    try:
        if jobs == 1:
            yield from _imap_serial(items, func, bar)
        else:
            pool = _Pool(items, func, jobs, max(1, chunk), window, bar, fail_fast, stop_signals)
            yield from pool.outcomes(on_discard)
    finally:
        bar.close()


def _imap_serial(items, func, bar):
    for item in items:
        try:
            kind, value = "ok", func(item)
        except MedconvError as exc:
            kind, value = "error", exc
        except Exception as exc:
            kind, value = "bug", exc
        bar.advance()
        yield item, kind, value


class _Pool:
    """The process pool of one imap: chunks submitted in input order, outcomes held until their
    turn, the stop flag workers check before each item."""

    def __init__(self, items, func, jobs, chunk, window, bar, fail_fast, stop_signals):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.items, self.func, self.chunk, self.bar, self.fail_fast = items, func, chunk, bar, fail_fast
        self.limit = 4 * jobs if window is None else max(1, window)
        self.count_held = window is not None
        methods = multiprocessing.get_all_start_methods()
        # fork: workers start in milliseconds and inherit the imported modules; elsewhere spawn
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        # raised when the batch stops (a failure with fail_fast, a stop signal, closed early):
        # items not started yet are not started
        self.stop = ctx.Event()
        self.executor = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=init_worker,
                                            initargs=(log.is_quiet(), self.stop, stop_signals))
        self.pending = {}  # future -> start of its chunk
        self.held = {}  # start of a finished chunk -> [(kind, value, message)], until its turn
        self.submitted = 0  # chunks start below this index
        self.stopping = False

    def outcomes(self, on_discard):
        current = []  # the chunk being handed out, from its end: the last one handed out included
        try:
            for start in range(0, len(self.items), self.chunk):
                self._refill()
                while start not in self.held:
                    if self.stopping and start >= self.submitted:  # never submitted
                        self.held[start] = [("cancelled", None, "")] * len(self.items[start:start + self.chunk])
                    else:
                        self._wait()
                current = self.held.pop(start)[::-1]
                self._refill()
                for k in range(len(current)):
                    kind, value, message = current[-1]
                    if message:
                        self.bar.write(message)
                    yield self.items[start + k], kind, value
                    current.pop()  # taken off only once used: a stop before that discards it
        except BaseException:
            self._close(on_discard, current)
            raise
        self.executor.shutdown(wait=True)

    def _refill(self) -> None:
        while not self.stopping and self.submitted < len(self.items):
            if len(self.pending) + (len(self.held) if self.count_held else 0) >= self.limit:
                return
            start = self.submitted
            self.submitted += self.chunk
            with _stop_signals_blocked():  # a worker forked here starts with them held
                future = self.executor.submit(_call_chunk, self.func, self.items[start:start + self.chunk])
            self.pending[future] = start

    def _wait(self) -> None:
        from concurrent.futures import FIRST_COMPLETED, wait

        finished, _ = wait(self.pending, return_when=FIRST_COMPLETED)
        failed = signalled = False
        for future in finished:
            outs, signalled_here = self._take(future)
            signalled = signalled or signalled_here
            for kind, _, _ in outs:
                if kind != "cancelled":
                    self.bar.advance()
                failed = failed or kind in ("error", "bug")
        if signalled:
            raise KeyboardInterrupt  # a worker was sent a stop signal: the batch stops as a whole
        if failed and self.fail_fast:
            # the batch stops at its first failure: nothing more starts (running items finish, their
            # outputs complete); the earliest failed input comes first, in input order
            self.stopping = True
            self.stop.set()
            for future in self.pending:
                future.cancel()
        self._refill()

    def _take(self, future):
        """A finished chunk's outcomes, moved to `held`; its temporary files recorded here."""
        from . import fileio

        n = len(self.items[self.pending[future]:self.pending[future] + self.chunk])
        with fileio.uninterrupted:  # taken from the pool and recorded as one step
            if future.cancelled():
                outs, temps, signalled = [("cancelled", None, "")] * n, (), False
            else:
                outs, temps, signalled = future.result()
            fileio.LIVE_TEMPS.update(temps)
            self.held[self.pending.pop(future)] = outs = [_outcome(*out) for out in outs]
        return outs, signalled

    def _close(self, on_discard, current) -> None:
        """Stopped early (a failure, a stop signal, closed): workers stop after their current item;
        on_discard gets every value nobody will use."""
        self.stop.set()
        try:
            if on_discard is not None:
                for future in list(self.pending):
                    if not future.cancel():
                        with contextlib.suppress(BaseException):
                            self._take(future)
                leftovers = [out for outs in self.held.values() for out in outs] + current
                for kind, value, _ in leftovers:
                    if kind == "ok":
                        on_discard(value)
        finally:
            _stop(self.executor)


def _outcome(kind, value, message):
    """A worker's outcome as this process sees it: errors rebuilt as exceptions."""
    if kind == "error":
        value = _rebuild_error(*value)
    elif kind == "bug":
        value = RuntimeError(value)
    return kind, value, message


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


#: set in a worker by init_worker: "stop", the main process's flag (the batch is stopping), and
#: "signalled", the stop signals this worker received
_WORKER: dict = {}


_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def _stop_signals_blocked():
    """Hold SIGINT, SIGTERM and SIGHUP in this thread for the block: the pool forks its workers
    while a chunk is submitted, and a forked worker keeps the parent's stop handler until
    init_worker replaces it; a signal sent to the group in that gap would end the worker with a
    traceback. The worker inherits the held mask and lets the signals in once its own handlers are
    set; here they are delivered when the block ends."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _let_stop_signals_in() -> None:
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


def init_worker(quiet: bool, stop=None, stop_signals: bool = False) -> None:
    """A pool worker's start: a fork copies the parent's state, so this process starts afresh.

    Ctrl-C reaches the whole process group and only the main process acts on it, so a worker never
    dies half-way through writing a file. With stop_signals, SIGINT, SIGTERM and SIGHUP (sent to
    the group, or to this worker alone) make the worker finish its current item and the batch stop.
    """
    from . import fileio

    _WORKER.update(stop=stop, signalled=[])
    fileio.forget_parent_state()  # the parent's held signal and temporary files are the parent's
    log.set_quiet(quiet)
    if not stop_signals:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    else:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, _signalled)
    _let_stop_signals_in()  # held since the fork (see _stop_signals_blocked)


def _signalled(signum, frame) -> None:
    _WORKER["signalled"].append(signum)
    if hasattr(signal, "alarm"):
        signal.alarm(60)  # ended by SIGALRM should the main process be gone without stopping it


def _call_chunk(func, items):
    """In a worker: the outcomes of some items, the temporary files they left for the main process
    to commit or remove (handed over with them), and whether a stop signal reached this worker."""
    from . import fileio

    out = []
    try:
        for item in items:
            out.append(_call(func, item))
    except BaseException:
        fileio.remove_live_temps()
        raise
    temps = list(fileio.LIVE_TEMPS)
    fileio.LIVE_TEMPS.clear()  # the main process's now (it records them)
    return out, temps, bool(_WORKER.get("signalled"))


def _call(func, item):
    """Run one item in a worker; errors travel back as data (MedconvError's path survives pickling),
    and so do its stderr messages, which the main process prints in input order."""
    import io

    stop = _WORKER.get("stop")
    if _WORKER.get("signalled") or (stop is not None and stop.is_set()):
        return "cancelled", None, ""  # the batch is stopping: not started
    captured, saved = io.StringIO(), sys.stderr
    sys.stderr = captured
    try:
        return "ok", func(item), captured.getvalue()
    except MedconvError as exc:
        return "error", (type(exc), exc.message, exc.path), captured.getvalue()
    except Exception as exc:
        import traceback

        if os.environ.get("MEDCONV_DEBUG", "") not in ("", "0"):
            traceback.print_exc()
        return "bug", f"{type(exc).__name__}: {exc}", captured.getvalue()
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
