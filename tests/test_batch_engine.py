"""The batch engine: batch.imap yields in input order from a process pool, hands unconsumed results
to on_discard when closed early, keeps going past failures, and tells a bug from an input error."""
from __future__ import annotations

import contextlib
import functools
import os
import time

import pytest

from medconv import batch, fileio
from medconv.errors import InputError


def _late_first(i):
    time.sleep(0.002 * (20 - i))  # early items finish last
    return i * 10


def test_imap_yields_in_input_order_with_two_jobs_and_chunks_of_three():
    out = list(batch.imap(range(20), _late_first, jobs=2, chunk=3))
    assert [item for item, _, _ in out] == list(range(20))
    assert [(kind, value) for _, kind, value in out] == [("ok", i * 10) for i in range(20)]


def test_imap_with_a_window_still_gives_every_item_in_order():
    out = list(batch.imap(range(20), _late_first, jobs=2, chunk=3, window=2))
    assert [value for _, _, value in out] == [i * 10 for i in range(20)]


def _temp_file(folder, i):
    """A worker's result that holds a file: a temporary file the main process commits or removes."""
    return fileio.write_temp(folder, b"%d" % i)


def test_on_discard_gets_the_results_nobody_consumed(tmp_path):
    folder = str(tmp_path)
    discarded = []

    def discard(tmp):
        discarded.append(tmp)
        fileio.discard_temp(tmp)

    outcomes = batch.imap(range(30), functools.partial(_temp_file, folder), jobs=2, chunk=3, window=4,
                          on_discard=discard)
    with contextlib.closing(outcomes):
        for item, kind, tmp in outcomes:
            assert kind == "ok" and tmp in fileio.LIVE_TEMPS  # recorded here: removed should the run stop
            fileio.commit_temp(tmp, os.path.join(folder, f"{item}.out"))
            if item == 3:
                break
    assert sorted(os.listdir(folder)) == ["0.out", "1.out", "2.out", "3.out"]  # no temporary file left
    assert len(discarded) >= 2  # at least the rest of the chunk being handed out (items 4 and 5)
    assert not [t for t in discarded if t in fileio.LIVE_TEMPS]


def _odd_fails(i):
    if i % 2:
        raise InputError("broken", f"item{i}")
    return i


def test_keep_going_collects_failures_in_input_order():
    seen = []
    results, failures = batch.run(range(10), _odd_fails, jobs=2, chunk=3, keep_going=True,
                                  on_error=lambda item, exc: seen.append(item))
    assert results == [0, 2, 4, 6, 8]
    assert [item for item, _ in failures] == [1, 3, 5, 7, 9] == seen
    assert all(isinstance(exc, InputError) and exc.path == f"item{item}" for item, exc in failures)
    kinds = [kind for _, kind, _ in batch.imap(range(6), _odd_fails, jobs=2, chunk=3)]
    assert kinds == ["ok", "error"] * 3


def test_without_keep_going_the_earliest_failure_is_raised():
    with pytest.raises(InputError) as info:
        batch.run(range(10), _odd_fails, jobs=2, chunk=3)
    assert info.value.path == "item1"


def _not_ours(i):
    if i == 4:
        raise ValueError("not a medconv error")
    return i


@pytest.mark.parametrize("jobs", [1, 2])
def test_an_exception_of_another_type_is_a_bug(jobs):
    out = {item: (kind, value) for item, kind, value in batch.imap(range(8), _not_ours, jobs=jobs, chunk=3)}
    kind, value = out[4]
    assert kind == "bug" and "not a medconv error" in str(value)
    assert all(out[i] == ("ok", i) for i in range(8) if i != 4)
    if jobs > 1:
        assert isinstance(value, RuntimeError) and "ValueError" in str(value)
    else:
        assert isinstance(value, ValueError)
    with pytest.raises((RuntimeError, ValueError), match="not a medconv error"):
        batch.run(range(8), _not_ours, jobs=jobs, keep_going=True)
