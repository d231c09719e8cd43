"""Locks on a PostgreSQL store: ``system.lock()`` and ``wf.locked()`` with no lock server."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from runtime import (
    ActorSystem,
    LockTimeout,
    NotLocked,
    NotLockOwner,
    PostgresStore,
    current_step,
    task,
)
from tests.support import ROOT, wait_until

from .hosts import LINE_TIMEOUT


@pytest.fixture
def two_systems(
    postgres_url: str, postgres_schema: str
) -> Iterator[tuple[ActorSystem, ActorSystem]]:
    """Two systems, each with a store (connections) of its own, on one schema."""
    with (
        PostgresStore(postgres_url, schema=postgres_schema) as store_a,
        PostgresStore(postgres_url, schema=postgres_schema) as store_b,
        ActorSystem("a", store=store_a) as system_a,
        ActorSystem("b", store=store_b) as system_b,
    ):
        yield system_a, system_b


def test_a_held_lock_is_refused_to_others_and_a_waiter_gets_it_on_release(
    two_systems: tuple[ActorSystem, ActorSystem],
) -> None:
    system_a, system_b = two_systems
    held = system_a.lock("db", lease=30)
    first = held.acquire()
    with pytest.raises(LockTimeout):
        system_b.lock("db", lease=30).acquire(timeout=0)
    waiter = system_b.lock("db", lease=30)
    got: list[int] = []
    thread = threading.Thread(target=lambda: got.append(waiter.acquire(timeout=30)))
    thread.start()
    held.release()
    thread.join(40)
    assert got and got[0] > first
    waiter.check(got[0])  # asks the store
    with pytest.raises(NotLockOwner):
        held.check(first)
    waiter.release()
    with pytest.raises(NotLocked):
        waiter.check(got[0])


def test_an_expired_lease_goes_to_the_next_holder_and_fences_the_old_one(
    two_systems: tuple[ActorSystem, ActorSystem],
) -> None:
    system_a, system_b = two_systems
    stale = system_a.lock("job", lease=0.3)
    old = stale.acquire()
    new = system_b.lock("job", lease=30).acquire(timeout=30)  # after the lease ran out
    assert new > old
    with pytest.raises(NotLockOwner):
        stale.renew()
    with pytest.raises(NotLockOwner):
        stale.check(old)


def test_tokens_grow_strictly_across_systems(
    two_systems: tuple[ActorSystem, ActorSystem],
) -> None:
    tokens = []
    for index in range(20):
        lock = two_systems[index % 2].lock("counter", lease=30)
        tokens.append(lock.acquire(timeout=10))
        lock.release()
    assert tokens == sorted(set(tokens))


def test_a_locked_workflow_part_holds_a_lock_in_the_store(
    two_systems: tuple[ActorSystem, ActorSystem],
) -> None:
    system_a, system_b = two_systems
    seen: list[int] = []

    def critical(ctx: int) -> int:
        token = current_step().fencing_tokens["shared"]
        system_b.lock("shared").check(token)  # another system sees the holder in the store
        seen.append(token)
        return ctx + 1

    assert system_a.run(task(critical).locked("shared", lease=5), 1).result(timeout=30) == 2
    assert len(seen) == 1

    def released() -> bool:  # the release is sent as the part ends, not awaited
        try:
            system_b.lock("shared").check(seen[0])
        except NotLocked:
            return True
        return False

    assert wait_until(released, 10)


HOLDER = """
import sys, time
from runtime import ActorSystem
with ActorSystem("holder", store=sys.argv[1]) as system:
    print(system.lock("singleton", lease=1.0).acquire(), flush=True)
    time.sleep(600)
"""


@pytest.mark.timeout(60)
def test_a_lock_whose_holder_process_was_killed_is_free_after_its_lease(
    postgres_url: str, postgres_schema: str
) -> None:
    url = f"{postgres_url}&options=-c%20search_path%3D{postgres_schema}"
    with PostgresStore(postgres_url, schema=postgres_schema):
        pass  # the schema and its tables
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        first = int(holder.stdout.readline())
        holder.kill()
        holder.wait(LINE_TIMEOUT)
        with ActorSystem("next", store=url) as system:
            assert system.lock("singleton").acquire(timeout=30) > first
    finally:
        holder.kill()
        holder.wait(LINE_TIMEOUT)
        if holder.stdout is not None:
            holder.stdout.close()


@pytest.mark.timeout(90)
def test_a_release_before_the_listener_is_registered_still_wakes_the_waiter(
    postgres_url: str, postgres_schema: str
) -> None:
    from runtime.store import StoreLocks

    with PostgresStore(postgres_url, schema=postgres_schema) as store:
        locks = StoreLocks(store, poll=60.0)  # only a notification (or its stand-in) wakes
        try:
            token = locks.try_acquire("gate", "holder", 30.0)
            assert token is not None
            seen = locks.generation("gate")  # what a waiter reads before its try
            assert locks.try_acquire("gate", "waiter", 30.0) is None
            locks.release("gate", token)  # before this process listens on the channel
            waited = time.monotonic()
            locks.wait_release("gate", seen, 60.0)
            # Woken (not timed out: the poll is 60 s), and by then the lock is free.
            assert time.monotonic() - waited < 30.0, "the waiter slept through the release"
            assert locks.try_acquire("gate", "waiter", 30.0) is not None
        finally:
            locks.close()


def test_an_acquire_tried_again_after_its_commit_landed_takes_its_own_row_again(
    postgres_url: str, postgres_schema: str
) -> None:
    """When the connection breaks after an acquire's commit, the store tries the same
    request again: it must get the lock (a new token), not wait out its own lease;
    another request, even from the same owner, still waits."""
    from runtime.store import StoreLocks

    with PostgresStore(postgres_url, schema=postgres_schema) as store:
        locks = StoreLocks(store)
        try:
            first = locks.try_acquire("gate", "node-a", 30.0, request="r1")
            assert first is not None
            again = locks.try_acquire("gate", "node-a", 30.0, request="r1")  # the retry
            assert again is not None and again > first
            with pytest.raises(NotLockOwner):
                locks.check("gate", first)  # only the token the caller will see is valid
            assert locks.try_acquire("gate", "node-a", 30.0, request="r2") is None
            assert locks.try_acquire("gate", "node-b", 30.0) is None
            locks.release("gate", again)
            assert locks.try_acquire("gate", "node-b", 30.0) is not None
        finally:
            locks.close()


def test_a_waiter_paused_past_the_queue_purge_keeps_its_place_when_it_tries_again(
    postgres_url: str, postgres_schema: str
) -> None:
    """A waiter paused for over a minute (SIGSTOP, a swapped-out host) finds its ticket
    deleted as long gone; trying again puts it back, so a waiter that queued after it
    still does not take the lock first."""
    from runtime.store import StoreLocks

    with PostgresStore(postgres_url, schema=postgres_schema) as store:
        locks = StoreLocks(store)
        try:
            held = locks.try_acquire("gate", "holder", 30.0)
            assert held is not None
            paused = locks.enqueue("gate")

            def make_it_long_quiet(cur: Any) -> None:
                cur.execute(
                    "UPDATE store_lock_queue"
                    " SET seen_until = extract(epoch from clock_timestamp())::float8 - 61"
                    " WHERE name = %s AND ticket = %s",
                    ("gate", paused),
                )

            store.database.transaction("age a ticket", make_it_long_quiet)
            later = locks.enqueue("gate")  # purges the long-quiet ticket
            assert _queued(store, "gate") == 1
            assert locks.try_acquire("gate", "paused", 30.0, ticket=paused) is None  # held
            assert _queued(store, "gate") == 2  # its ticket is back
            locks.release("gate", held)
            assert locks.try_acquire("gate", "later", 30.0, ticket=later) is None
            assert locks.try_acquire("gate", "paused", 30.0, ticket=paused) is not None
            locks.dequeue("gate", paused)
            locks.dequeue("gate", later)
        finally:
            locks.close()


def _queued(store: PostgresStore, name: str) -> int:
    """Live waiters queued for lock ``name``."""

    def work(cur: Any) -> int:
        cur.execute(
            "SELECT count(*) FROM store_lock_queue WHERE name = %s"
            " AND seen_until > extract(epoch from clock_timestamp())::float8",
            (name,),
        )
        return int(cur.fetchone()[0])

    return store.database.transaction("count waiters", work, one_statement=True)


@pytest.mark.timeout(120)
def test_waiters_on_different_hosts_get_the_lock_in_arrival_order(
    postgres_url: str, postgres_schema: str
) -> None:
    """Three systems (a store each, as on three hosts) wait in turn while a fourth holds
    the lock; they get it in the order they started waiting."""
    names = ("b", "c", "d")
    with contextlib.ExitStack() as stack:
        stores = {
            n: stack.enter_context(PostgresStore(postgres_url, schema=postgres_schema))
            for n in ("a", *names)
        }
        systems = {n: stack.enter_context(ActorSystem(n, store=stores[n])) for n in stores}
        holder = systems["a"].lock("turns", lease=30)
        holder.acquire()
        order: list[str] = []

        def wait_then_release(name: str) -> None:
            lock = systems[name].lock("turns", lease=30)
            lock.acquire(timeout=60)
            order.append(name)
            lock.release()

        threads = []
        for count, name in enumerate(names, start=1):
            thread = threading.Thread(target=wait_then_release, args=(name,), daemon=True)
            thread.start()
            threads.append(thread)
            assert wait_until(lambda count=count: _queued(stores["a"], "turns") == count, 30)
        holder.release()
        for thread in threads:
            thread.join(60)
        assert order == list(names)
        assert _queued(stores["a"], "turns") == 0


def test_a_free_lock_is_not_taken_past_a_waiter_and_a_quiet_waiter_stops_counting(
    postgres_url: str, postgres_schema: str
) -> None:
    """A ticket queued by a waiter whose host then died: nobody barges past it while it
    counts, and it stops counting once it went quiet for the queue's time to live."""
    from runtime.store import StoreLocks

    with (
        PostgresStore(postgres_url, schema=postgres_schema) as store,
        ActorSystem("a", store=store) as system,
    ):
        locks = StoreLocks(store)
        try:
            dead_ticket = locks.enqueue("gate")  # and never tries again
            assert locks.try_acquire("gate", "newcomer", 30.0) is None
            with pytest.raises(LockTimeout):
                system.lock("gate", lease=30).acquire(timeout=0)
            started = time.monotonic()
            token = system.lock("gate", lease=30).acquire(timeout=30)
            assert token > 0
            assert time.monotonic() - started < locks.queue_ttl + 10
            assert _queued(store, "gate") == 0  # the quiet ticket no longer counts
            locks.dequeue("gate", dead_ticket)
        finally:
            locks.close()


def test_an_acquire_tried_again_after_its_commit_landed_gets_its_row_past_waiters(
    postgres_url: str, postgres_schema: str
) -> None:
    """The store tries an acquire again when the connection broke after its commit; by
    then a waiter may have queued (it saw the lock taken). The retry must still get the
    row it holds, not answer None and leave the lock held by nobody who knows it."""
    from runtime.store import StoreLocks

    with PostgresStore(postgres_url, schema=postgres_schema) as store:
        locks = StoreLocks(store)
        try:
            first = locks.try_acquire("gate", "node-a", 30.0, request="r1")
            assert first is not None
            waiter = locks.enqueue("gate")  # node-b saw it taken and waits
            again = locks.try_acquire("gate", "node-a", 30.0, request="r1")  # the retry
            assert again is not None and again > first
            assert locks.try_acquire("gate", "node-a", 30.0, request="r2") is None
            locks.release("gate", again)
            assert locks.try_acquire("gate", "node-c", 30.0) is None  # the waiter is first
            assert locks.try_acquire("gate", "node-b", 30.0, ticket=waiter) is not None
            locks.dequeue("gate", waiter)
        finally:
            locks.close()
