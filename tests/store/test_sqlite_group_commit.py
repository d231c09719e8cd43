"""SQLiteStore group commit: appends due together share a transaction, each keeps its result.

The appends are made to queue up behind a transaction deterministically: a raw
connection holds the file's write lock, so the first append's commit waits in
``BEGIN IMMEDIATE`` while the others queue; the test releases the lock once
``stats().queued`` says they all wait. Every wait has a deadline.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from actors import PersistenceError, StaleEpoch
from runtime.store import Outcome, SQLiteStore
from runtime.store._sqlite_append import APPEND_RUN, APPEND_STEP, LAST_RECORD
from runtime.store._sqlite_rows import LOAD_STEPS
from tests.store.store_testkit import append, started, step
from tests.support import wait_until

pytestmark = pytest.mark.timeout(60)
DEADLINE = 20.0
WRITERS = 6


@contextmanager
def write_lock_held(path: Path) -> Iterator[Callable[[], None]]:
    """Hold the file's write lock from another connection; yields its release."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                conn.execute("ROLLBACK")
                released = True

        try:
            yield release
        finally:
            release()


def appending_at_once(
    store: SQLiteStore, jobs: dict[str, Callable[[], None]]
) -> dict[str, BaseException | None]:
    """Run ``jobs`` in threads while the write lock is held; release it once all queued.

    The first job leads: it takes its batch (itself) and waits for the lock; the
    others queue behind it and share the next transaction.
    """
    outcomes: dict[str, BaseException | None] = {}

    def run(name: str, job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as exc:  # the test inspects it
            outcomes[name] = exc
        else:
            outcomes[name] = None

    submitted = store.stats().appends
    with write_lock_held(store.path) as release:
        threads = [threading.Thread(target=run, args=item) for item in jobs.items()]
        threads[0].start()
        # The leader has taken its batch (itself) and waits for the lock.
        assert wait_until(lambda: leading(store, submitted + 1), DEADLINE), store.stats()
        for thread in threads[1:]:
            thread.start()
        assert wait_until(lambda: store.stats().queued == len(jobs) - 1, DEADLINE), store.stats()
        release()
        for thread in threads:
            thread.join(DEADLINE)
            assert not thread.is_alive()
    return outcomes


def leading(store: SQLiteStore, appends: int) -> bool:
    stats = store.stats()
    return stats.appends == appends and stats.queued == 0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(tmp_path / "state.db", busy_timeout=DEADLINE) as opened:
        yield opened


def test_concurrent_appends_of_several_runs_take_fewer_transactions(store: SQLiteStore) -> None:
    epochs = {f"run-{n}": started(store, f"run-{n}") for n in range(WRITERS)}
    before = store.stats()
    outcomes = appending_at_once(
        store,
        {
            run_id: lambda run_id=run_id, epoch=epoch: append(
                store, run_id, epoch, step("s", output=run_id), state="Completed"
            )
            for run_id, epoch in epochs.items()
        },
    )
    assert outcomes == dict.fromkeys(epochs)
    after = store.stats()
    assert after.appends - before.appends == WRITERS
    assert after.append_transactions - before.append_transactions == 2  # < WRITERS
    assert after.largest_batch == WRITERS - 1
    for run_id in epochs:
        loaded = store.load(run_id)
        assert (loaded.state, loaded.steps) == ("Completed", {"s": step("s", output=run_id)})


def test_a_stale_or_bad_append_fails_alone_and_its_companions_are_committed(
    store: SQLiteStore,
) -> None:
    epochs = {f"run-{n}": started(store, f"run-{n}") for n in range(WRITERS)}
    store.claim("run-2", owner="someone else", lease=30, force=True)  # run-2's writer is stale

    def job(run_id: str, epoch: int) -> Callable[[], None]:
        if run_id == "run-4":  # names a step it never recorded
            outcome = Outcome(output_step="ghost")
            return lambda: append(store, run_id, epoch, step("s"), outcome=outcome)
        if run_id == "run-5":  # an int SQLite cannot bind
            return lambda: append(store, run_id, epoch, step("s", attempts=2**70))
        return lambda: append(store, run_id, epoch, step("s", output=run_id), state="Done")

    before = store.stats()
    outcomes = appending_at_once(store, {run_id: job(run_id, e) for run_id, e in epochs.items()})
    assert isinstance(outcomes.pop("run-2"), StaleEpoch)
    assert isinstance(outcomes.pop("run-4"), ValueError)
    error = outcomes.pop("run-5")
    assert isinstance(error, PersistenceError)
    assert isinstance(error.__cause__, OverflowError)
    assert outcomes == dict.fromkeys(["run-0", "run-1", "run-3"])
    assert store.stats().append_transactions - before.append_transactions == 2
    for run_id in ("run-0", "run-1", "run-3"):
        loaded = store.load(run_id)
        assert (loaded.state, list(loaded.steps)) == ("Done", ["s"])
    for run_id in ("run-2", "run-4", "run-5"):  # nothing of the refused appends was written
        loaded = store.load(run_id)
        assert (loaded.state, loaded.steps) == ("running", {})


def test_a_failed_transaction_fails_every_append_of_its_batch(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "state.db", busy_timeout=0.05) as store:
        epoch = started(store, "run-1")
        with write_lock_held(store.path):
            with pytest.raises(PersistenceError, match=r"run run-1: append in .*locked") as caught:
                append(store, "run-1", epoch, step("s"))
            assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        append(store, "run-1", epoch, step("s"))  # the lead was given back
        assert list(store.load("run-1").steps) == ["s"]


def test_appends_after_close_fail_naming_the_store(store: SQLiteStore) -> None:
    epoch = started(store, "run-1")
    store.close()
    with pytest.raises(PersistenceError, match="closed"):
        append(store, "run-1", epoch, step("s"))


def plan(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> str:
    return " | ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))


def test_an_append_touches_only_indexed_rows_however_long_the_run(store: SQLiteStore) -> None:
    """The cost of an append does not grow with the steps recorded: no statement scans."""
    epoch = started(store, "run-1")
    for index in range(200):
        append(store, "run-1", epoch, step(f"s{index}", output=index))
    assert store._conn is not None
    conn = store._conn
    update = plan(conn, APPEND_RUN, ("r", 1.0, None, None, None, None, None, "run-1", epoch))
    assert "SEARCH runs USING INDEX sqlite_autoindex_runs_1 (run_id=?)" in update
    last = plan(conn, LAST_RECORD, ("run-1", "s1"))
    assert "SEARCH steps USING INDEX steps_by_run (run_id=? AND step=?)" in last
    assert "SCAN" not in update + last
    assert APPEND_STEP.startswith("INSERT INTO steps")  # appends; never reads the steps
    assert "SEARCH steps USING INDEX steps_by_run (run_id=?)" in plan(conn, LOAD_STEPS, ("x",))


def test_an_append_runs_the_same_statements_at_step_10_and_at_step_1000(
    store: SQLiteStore,
) -> None:
    epoch = started(store, "run-1")
    statements: list[str] = []
    assert store._conn is not None
    store._conn.set_trace_callback(statements.append)
    counts = []
    for index in range(1000):
        statements.clear()
        append(store, "run-1", epoch, step(f"s{index}", output=index))
        counts.append(len(statements))
    store._conn.set_trace_callback(None)
    assert set(counts) == {counts[0]}
