"""Many inputs: run one function per input, in order, stopping or going on after failures."""
from __future__ import annotations

from .errors import BatchFailed, MedconvError


def run(items, func, *, keep_going: bool = False, on_error=None):
    """Call func(item) for each item; returns (results in input order, failures).

    Without keep_going the first MedconvError propagates. With it, failures are
    collected as (item, error) and reported through on_error(item, error); call
    finish(failures) once the successful results have been used.
    """
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
    return results, failures


def finish(failures, total: int) -> None:
    """Raise BatchFailed (exit 5) with a summary when any input failed."""
    if failures:
        raise BatchFailed(f"{len(failures)} of {total} inputs failed: "
                          + "; ".join(f"{item}" for item, _ in failures[:5])
                          + (" ..." if len(failures) > 5 else ""))
