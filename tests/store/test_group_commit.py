"""GroupCommitter with real threads: who commits together, and who gets which result.

Every wait has a deadline; the tests hold a commit open with an Event, never a
sleep, so they are deterministic on a loaded machine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from actors import PersistenceError
from runtime.store._group_commit import GroupCommitter
from tests.support import wait_until

pytestmark = pytest.mark.timeout(30)
DEADLINE = 10.0
LONG_WINDOW = 20.0  # a leader would wait this long for an announced writer: never reached


class Recorder:
    """A commit function that records its batches and can be held open."""

    def __init__(self, fail: Callable[[str], BaseException | None] = lambda item: None) -> None:
        self.batches: list[list[str]] = []
        self.entered = threading.Event()
        self.hold = threading.Event()
        self.hold.set()
        self._fail = fail

    def __call__(self, batch: Sequence[str]) -> list[BaseException | None]:
        self.batches.append(list(batch))
        self.entered.set()
        assert self.hold.wait(DEADLINE), "the test never released the commit"
        return [self._fail(item) for item in batch]


def in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, list[BaseException | None]]:
    """Start ``target``; the list gets its exception (or None) when it ends."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # the test inspects it
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def join(*threads: threading.Thread) -> None:
    for thread in threads:
        thread.join(DEADLINE)
        assert not thread.is_alive(), "a writer is still waiting"


def test_a_lone_writer_commits_alone_and_never_waits_for_the_window() -> None:
    commit = Recorder()
    group: GroupCommitter[str] = GroupCommitter(commit, window=LONG_WINDOW, max_batch=8)
    thread, outcome = in_thread(lambda: group.submit("a"))
    join(thread)  # long before the window: nobody was announced, so nobody was waited for
    assert outcome == [None]
    assert commit.batches == [["a"]]
    stats = group.stats()
    assert (stats.submitted, stats.batches, stats.largest_batch, stats.queued) == (1, 1, 1, 0)


def test_writers_arriving_during_a_commit_share_the_next_one() -> None:
    commit = Recorder()
    commit.hold.clear()
    group: GroupCommitter[str] = GroupCommitter(commit, window=0, max_batch=8)
    leader, _ = in_thread(lambda: group.submit("first"))
    assert commit.entered.wait(DEADLINE)
    followers = [in_thread(lambda n=n: group.submit(f"f{n}")) for n in range(5)]
    assert wait_until(lambda: group.stats().queued == 5, DEADLINE)
    commit.hold.set()
    join(leader, *(thread for thread, _ in followers))
    assert commit.batches[0] == ["first"]
    assert sorted(commit.batches[1]) == [f"f{n}" for n in range(5)]
    assert len(commit.batches) == 2  # 6 writes, 2 commits
    assert all(outcome == [None] for _, outcome in followers)


def test_max_batch_bounds_a_batch_and_every_writer_is_still_served() -> None:
    commit = Recorder()
    commit.hold.clear()
    group: GroupCommitter[str] = GroupCommitter(commit, window=0, max_batch=2)
    leader, _ = in_thread(lambda: group.submit("first"))
    assert commit.entered.wait(DEADLINE)
    followers = [in_thread(lambda n=n: group.submit(f"f{n}")) for n in range(5)]
    assert wait_until(lambda: group.stats().queued == 5, DEADLINE)
    commit.hold.set()
    join(leader, *(thread for thread, _ in followers))
    assert [len(batch) for batch in commit.batches] == [1, 2, 2, 1]
    assert sorted(item for batch in commit.batches[1:] for item in batch) == [
        f"f{n}" for n in range(5)
    ]


def test_each_writer_gets_its_own_result() -> None:
    commit = Recorder(fail=lambda item: ValueError(item) if item.startswith("bad") else None)
    commit.hold.clear()
    group: GroupCommitter[str] = GroupCommitter(commit, window=0, max_batch=8)
    leader, _ = in_thread(lambda: group.submit("first"))
    assert commit.entered.wait(DEADLINE)
    names = ["ok-1", "bad-1", "ok-2", "bad-2"]
    writers = {name: in_thread(lambda name=name: group.submit(name)) for name in names}
    assert wait_until(lambda: group.stats().queued == 4, DEADLINE)
    commit.hold.set()
    join(leader, *(thread for thread, _ in writers.values()))
    assert len(commit.batches) == 2
    for name, (_, outcome) in writers.items():
        [error] = outcome
        if name.startswith("bad"):
            assert isinstance(error, ValueError) and str(error) == name
        else:
            assert error is None


def test_a_commit_that_raises_fails_its_whole_batch_and_the_next_leader_goes_on() -> None:
    calls: list[list[str]] = []
    entered, hold = threading.Event(), threading.Event()

    def commit(batch: Sequence[str]) -> list[BaseException | None]:
        calls.append(list(batch))
        if len(calls) == 1:
            entered.set()
            assert hold.wait(DEADLINE)
            return [None]
        if len(calls) == 2:
            raise OSError("disk gone")
        return [None] * len(batch)

    group: GroupCommitter[str] = GroupCommitter(commit, window=0, max_batch=8)
    leader, _ = in_thread(lambda: group.submit("first"))
    assert entered.wait(DEADLINE)
    writers = [in_thread(lambda n=n: group.submit(f"w{n}")) for n in range(3)]
    assert wait_until(lambda: group.stats().queued == 3, DEADLINE)
    hold.set()
    join(leader, *(thread for thread, _ in writers))
    errors = [outcome[0] for _, outcome in writers]
    assert sum(isinstance(error, OSError) for error in errors) == 1  # the leader's own
    wrapped = [error for error in errors if isinstance(error, PersistenceError)]
    assert len(wrapped) == 2
    assert all(isinstance(error.__cause__, OSError) for error in wrapped)
    assert "group commit failed: OSError: disk gone" in str(wrapped[0])
    group.submit("later")  # the lead was given up: a later writer commits
    assert calls[-1] == ["later"]


def test_a_leader_waits_for_an_announced_writer_and_commits_both_at_once() -> None:
    commit = Recorder()
    group: GroupCommitter[str] = GroupCommitter(commit, window=LONG_WINDOW, max_batch=8)
    announced, go = threading.Event(), threading.Event()

    def late() -> None:
        with group.arrival() as arrival:
            announced.set()
            assert go.wait(DEADLINE)
            arrival.submit("late")

    late_thread, late_outcome = in_thread(late)
    assert announced.wait(DEADLINE)
    leader, leader_outcome = in_thread(lambda: group.submit("early"))
    assert wait_until(lambda: group.stats().queued == 1, DEADLINE)  # the leader is waiting
    go.set()
    join(leader, late_thread)
    assert (leader_outcome, late_outcome) == ([None], [None])
    assert commit.batches == [["early", "late"]]


def test_a_writer_that_gives_up_before_submitting_is_not_waited_for() -> None:
    commit = Recorder()
    group: GroupCommitter[str] = GroupCommitter(commit, window=LONG_WINDOW, max_batch=8)
    announced, give_up = threading.Event(), threading.Event()

    def quitter() -> None:
        with group.arrival():
            announced.set()
            assert give_up.wait(DEADLINE)
            raise ValueError("bad record")

    quitter_thread, quitter_outcome = in_thread(quitter)
    assert announced.wait(DEADLINE)
    leader, leader_outcome = in_thread(lambda: group.submit("early"))
    assert wait_until(lambda: group.stats().queued == 1, DEADLINE)
    give_up.set()
    join(quitter_thread, leader)  # well before LONG_WINDOW
    assert isinstance(quitter_outcome[0], ValueError)
    assert leader_outcome == [None]
    assert commit.batches == [["early"]]


@pytest.mark.parametrize(("window", "max_batch"), [(-1.0, 1), (0.0, 0)])
def test_bad_settings_are_refused(window: float, max_batch: int) -> None:
    with pytest.raises(ValueError, match=r"window|max_batch"):
        GroupCommitter(Recorder(), window=window, max_batch=max_batch)
