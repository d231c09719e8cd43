"""Lease locks with fencing tokens (``system.lock``): served locally, or by one node for all."""

from __future__ import annotations

import threading

import pytest

from runtime import (
    ActorSystem,
    Address,
    LockTimeout,
    ManualClock,
    NotLocked,
    NotLockOwner,
    RemoteError,
)
from runtime.cluster import LOCKS_PATH

pytestmark = pytest.mark.timeout(30)


def test_a_lock_grants_increasing_tokens_to_one_holder_at_a_time(system: ActorSystem) -> None:
    first, second = system.lock("db", lease=30), system.lock("db", lease=30)
    token = first.acquire(timeout=1)
    with pytest.raises(LockTimeout, match="db"):
        second.acquire(timeout=0)
    first.release()
    assert second.acquire(timeout=1) > token
    second.release()


def test_releasing_a_lock_not_held_raises_not_locked(system: ActorSystem) -> None:
    lock = system.lock("free", lease=5)
    with pytest.raises(NotLocked):
        lock.release()
    held = system.lock("free", lease=5)
    token = held.acquire(timeout=1)
    held.release()
    with pytest.raises(NotLocked):
        held.check(token)


def test_an_expired_holder_is_fenced_off_by_the_next_token(
    manual_system: ActorSystem, clock: ManualClock
) -> None:
    stale, fresh = manual_system.lock("job", lease=10), manual_system.lock("job", lease=10)
    old_token = stale.acquire(timeout=0)
    clock.advance(11)  # the lease runs out without a renewal
    new_token = fresh.acquire(timeout=0)
    assert new_token > old_token
    with pytest.raises(NotLockOwner, match=str(old_token)):
        stale.renew()
    with pytest.raises(NotLockOwner):
        fresh.check(old_token)  # what a fenced resource asks before accepting a write
    fresh.check(new_token)
    with pytest.raises(NotLockOwner):
        stale.release()
    fresh.release()


def test_a_waiter_gets_the_lock_when_the_holder_releases(system: ActorSystem) -> None:
    holder, waiter = system.lock("q", lease=30), system.lock("q", lease=30)
    holder.acquire(timeout=1)
    got: list[int] = []
    thread = threading.Thread(target=lambda: got.append(waiter.acquire(timeout=10)))
    thread.start()
    holder.release()
    thread.join(10)
    assert got and got[0] > 0
    waiter.release()


def test_a_waiter_times_out_on_the_injected_clock(
    manual_system: ActorSystem, clock: ManualClock
) -> None:
    manual_system.lock("busy", lease=100).acquire(timeout=0)
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            manual_system.lock("busy", lease=100).acquire(timeout=5)
        except LockTimeout as exc:
            errors.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    clock.wait_for_timers(2)  # the holder's lease and the waiter's deadline
    clock.advance(5)
    thread.join(10)
    assert errors and "within 5" in str(errors[0])


def test_locks_are_served_by_one_node_for_the_whole_cluster() -> None:
    with ActorSystem("keeper", listen="tcp://127.0.0.1:0", plaintext=True) as keeper:
        assert keeper.address is not None
        with ActorSystem(
            "client",
            listen="tcp://127.0.0.1:0",
            join=[keeper.address],
            plaintext=True,
            locks_on="keeper",
        ) as client:
            remote = client.lock("global", lease=30)
            token = remote.acquire(timeout=5)
            with pytest.raises(LockTimeout):
                keeper.lock("global", lease=30).acquire(timeout=0)
            with pytest.raises(NotLockOwner):
                remote.check(token - 1)
            remote.release()
            assert keeper.lock("global", lease=30).acquire(timeout=1) > token


# Regression (review 2026-11-27, fe11a14): a malformed wire request could stop the lock manager.
def test_a_malformed_lock_request_from_the_wire_gets_an_error_and_locks_keep_working() -> None:
    with ActorSystem("keeper", listen="tcp://127.0.0.1:0", plaintext=True) as keeper:
        with ActorSystem(
            "peer", listen="tcp://127.0.0.1:0", join=[str(keeper.address)], plaintext=True
        ) as peer:
            assert peer.cluster is not None
            bad = {"op": "acquire", "name": "db", "owner": "x", "lease": "ten", "timeout": None}
            future = peer.cluster.transport.ask(Address("keeper", LOCKS_PATH), bad, timeout=5)
            with pytest.raises(RemoteError, match="lease"):
                future.result(6)
        lock = keeper.lock("db", lease=5)
        assert lock.acquire(timeout=1) > 0
        with pytest.raises(LockTimeout):
            keeper.lock("db", lease=5).acquire(timeout=0)


# Regression (review 2026-11-27, fe11a14): a bad acquire(timeout) could stop the lock manager.
def test_a_bad_local_lock_argument_is_answered_not_fatal(system: ActorSystem) -> None:
    with pytest.raises(TypeError):
        system.lock("x", lease=5).acquire(timeout="soon")  # type: ignore[arg-type]
    assert system.lock("x", lease=5).acquire(timeout=1) > 0
