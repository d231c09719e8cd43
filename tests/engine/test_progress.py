"""ProgressObserver: its counts, its lines on a non-terminal and a terminal, its ETA."""

from __future__ import annotations

import io
import itertools
import re
from typing import Any

import pytest

from runtime import (
    ActorSystem,
    Fixed,
    ManualClock,
    PermanentError,
    ProgressObserver,
    RetryPolicy,
    RunProgress,
    TemporaryError,
    map_items,
    task,
)
from runtime import events as ev

pytestmark = pytest.mark.timeout(30)


def one(ctx: Any) -> int:
    return 1


def test_counts_and_lines_of_a_run_with_a_retry_a_map_and_a_skip(system: ActorSystem) -> None:
    calls = {"n": 0}

    def flaky(ctx: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise TemporaryError("transient")
        return 1

    wf = (
        task(flaky, retry=RetryPolicy(2, Fixed(0.01)))
        .then(task(one, name="skipped").when(lambda c: False, skip=True))
        .then(map_items(lambda c: [1, 2, 3], one, name="each"))
    )
    out = io.StringIO()
    progress = ProgressObserver(out)
    handle = system.run(wf, {}, observers=[progress])
    handle.result(5)  # the run resolves after its observers saw its last event
    counts = progress.progress(handle.id)
    assert counts is not None
    assert (counts.total, counts.open, counts.done, counts.retries, counts.failures) == (
        4,
        0,
        4,
        1,
        0,
    )
    assert counts.running == set() and counts.state == "done"
    lines = out.getvalue().splitlines()
    assert lines[0] == "[0/2+] 0 running"  # flaky and skipped; the map still to count
    assert "[0/2+] 0 running, 1 retry" in lines
    assert "[1/1+] 0 running, 1 retry" in lines  # the skip took a step off; the map is to come
    assert re.fullmatch(r"\[4/4\] done in \d+\.\ds, 1 retry", lines[-1]), lines
    assert all(a != b for a, b in itertools.pairwise(lines))  # only changes print


def test_a_failed_run_says_so_and_counts_the_failure(system: ActorSystem) -> None:
    def broken(ctx: Any) -> int:
        raise PermanentError("no")

    out = io.StringIO()
    handle = system.run(task(one).then(task(broken)), {}, observers=[ProgressObserver(out)])
    with pytest.raises(PermanentError):
        handle.result(5)
    assert out.getvalue().splitlines()[-1] == "[1/2] failed, 1 failed"


def test_on_a_terminal_the_line_is_rewritten_in_place(system: ActorSystem) -> None:
    out = io.StringIO()
    progress = ProgressObserver(out, terminal=True, interval=0)
    system.run(task(one, name="a").then(task(one, name="b")), {}, observers=[progress]).result(5)
    text = out.getvalue()
    assert text.startswith("\r[0/2] 0 running\x1b[K")
    assert text.count("\n") == 1 and text.endswith("\n")  # only the run's end ends the line
    assert re.search(r"\r\[2/2\] done in \d+\.\ds\x1b\[K\n$", text), text


def test_lines_name_the_run_once_the_observer_follows_more_than_one(system: ActorSystem) -> None:
    out = io.StringIO()
    progress = ProgressObserver(out)
    first = system.run(task(one), {}, observers=[progress])
    first.result(5)
    second = system.run(task(one), {}, observers=[progress])
    second.result(5)
    assert out.getvalue().splitlines()[-1].startswith(f"{second.id} [1/1] done")


def test_eta_is_the_mean_step_time_times_the_steps_left_over_the_steps_running() -> None:
    run = RunProgress("r", total=10)
    assert run.eta() is None  # nothing completed yet: no mean to go by
    for step, duration in (("a", 1.0), ("b", 3.0)):
        ProgressObserver._count(run, ev.Completed("r", step, 1, duration))
    ProgressObserver._count(run, ev.Started("r", "c"))
    assert run.eta() == pytest.approx(2.0 * 8 / 1)
    ProgressObserver._count(run, ev.Started("r", "d"))
    assert run.eta() == pytest.approx(2.0 * 8 / 2)
    ProgressObserver._count(run, ev.Completed("r", "a", 2, 100.0))  # re-run by a retry
    assert (run.done, run.mean_step()) == (2, 2.0)
    assert run.line() == "[2/10] 2 running, ETA 8.0s"


def test_eta_of_a_run_on_a_manual_clock(manual_system: ActorSystem, clock: ManualClock) -> None:
    def two_seconds(ctx: Any) -> int:
        clock.advance(2.0)  # the step's duration, as the node measures it
        return 1

    wf = task(two_seconds, name="a").then(task(two_seconds, name="b"))
    wf = wf.then(task(two_seconds, name="c")).then(task(two_seconds, name="d"))
    out = io.StringIO()
    manual_system.run(wf, {}, observers=[ProgressObserver(out)]).result(5)
    lines = out.getvalue().splitlines()
    assert "[1/4] 0 running, ETA 6.0s" in lines
    assert "[2/4] 1 running, ETA 4.0s" in lines
    assert "[3/4] 1 running, ETA 2.0s" in lines
    assert lines[-1] == "[4/4] done in 8.0s"
