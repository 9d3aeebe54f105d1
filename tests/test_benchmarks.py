"""The benchmark's own arithmetic: a change's main-thread work read from a trace, and Lighthouse's
total blocking time, on hand-made inputs."""

from __future__ import annotations

import pytest

from benchmarks.latency import MARK_END, MARK_START, main_thread_work
from benchmarks.load import blocking_time

MAIN, OTHER = (1, 10), (2, 20)  # (pid, tid): the page's main thread, another


def mark(ts, message, thread=MAIN):
    return {"name": "TimeStamp", "ph": "I", "ts": ts, "pid": thread[0], "tid": thread[1],
            "args": {"data": {"message": message}}}


def task(ts, dur, tdur, name="ThreadControllerImpl::RunTask", thread=MAIN):
    return {"name": name, "ph": "X", "ts": ts, "dur": dur, "tdur": tdur, "pid": thread[0], "tid": thread[1]}


def test_work_is_the_main_threads_cpu_time_between_the_marks():
    events = [
        mark(1000, MARK_START), mark(9000, MARK_END),
        task(0, 2000, 1000),  # half inside: half its CPU time counts
        task(2000, 3000, 2500), task(2500, 1000, 900, name="RunTask"),  # nested: counted once
        task(6000, 2000, 500),  # waiting more than working: its CPU time, not its length
        task(3000, 3000, 3000, thread=OTHER),  # the compositor's: not the page's
        task(9500, 1000, 1000),  # after the change
        mark(20000, MARK_START), mark(21000, MARK_END), task(20000, 1000, 800),
    ]
    assert main_thread_work(events) == pytest.approx([(500 + 2500 + 500) / 1000, 0.8])


def test_no_marks_no_changes():
    assert main_thread_work([task(0, 100, 100)]) == []


def test_blocking_time_counts_what_each_long_task_lasts_beyond_50_ms_after_the_first_paint():
    assert blocking_time([[0, 120], [500, 40], [900, 80]], after=100) == 30
    assert blocking_time([[200, 300]], after=100) == 250
    assert blocking_time([], after=0) == 0
