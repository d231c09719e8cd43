"""Singletons between in-process members sharing one store (the process tests kill -9)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from runtime import ActorSystem, MemoryStore, TerminationReason
from tests.actors_remote.watch_kit import Counter, Echo, Inbox
from tests.support import wait_until

LEASE = 0.6


@pytest.fixture
def pair() -> Iterator[tuple[ActorSystem, ActorSystem, MemoryStore]]:
    store = MemoryStore()
    with (
        ActorSystem("one", listen="tcp://127.0.0.1:0", plaintext=True, store=store) as one,
        ActorSystem(
            "two", listen="tcp://127.0.0.1:0", join=[str(one.address)], plaintext=True, store=store
        ) as two,
    ):
        yield one, two, store


def _holder(store: MemoryStore) -> str | None:
    lease = store.actor_lease("singleton/counter")
    return None if lease is None or lease.owner is None else lease.owner.partition("/")[0]


@pytest.mark.timeout(60)
def test_one_instance_serves_both_members_and_moves_with_its_snapshot_on_leave(
    pair: tuple[ActorSystem, ActorSystem, MemoryStore],
) -> None:
    one, two, store = pair
    handle = one.singleton("counter", Counter, lease=LEASE)
    two.singleton("counter", Counter, lease=LEASE)
    assert wait_until(lambda: _holder(store) is not None, 10)
    assert [handle.ask("add", timeout=10) for _ in range(3)] == [1, 2, 3]
    assert two.singleton_ref("counter").ask("add", timeout=10) == 4
    holder = one if _holder(store) == "one" else two
    other = two if holder is one else one
    assert _runs_it(holder) and not _runs_it(other)
    epoch = handle.epoch()
    assert epoch is not None
    holder.shutdown()  # leaves: releases the lease, the other claims it
    assert wait_until(lambda: _holder(store) == other.name, 10)
    assert other.singleton_ref("counter").ask("add", timeout=10) == 5  # from the snapshot
    assert other.singleton_ref("counter").epoch() == epoch + 1
    assert _runs_it(other)


def _runs_it(system: ActorSystem) -> bool:
    ref = system._named_ref("$singleton/counter")
    return ref is not None and ref.is_alive()


@pytest.mark.timeout(60)
def test_a_holder_whose_renew_is_refused_stops_its_instance(
    pair: tuple[ActorSystem, ActorSystem, MemoryStore],
) -> None:
    one, _two, store = pair
    one.singleton("counter", Counter, lease=LEASE)
    assert wait_until(lambda: _holder(store) == "one", 10)
    instance = one._named_ref("$singleton/counter")
    assert instance is not None
    gone = Inbox()
    one.watch(instance, gone)
    store.claim_actor("singleton/counter", owner="elsewhere/x", lease=60, force=True)
    [message] = gone.wait(1)
    assert message.reason is TerminationReason.STOPPED
    assert _holder(store) == "elsewhere"  # nothing took it back while that lease is live


def test_singleton_arguments_are_checked(
    pair: tuple[ActorSystem, ActorSystem, MemoryStore],
) -> None:
    one, _two, _store = pair
    with pytest.raises(ValueError, match="name"):
        one.singleton("$x", Echo)
    with pytest.raises(TypeError, match="pykka Actor class"):
        one.singleton("x", object)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lease"):
        one.singleton("x", Echo, lease=0)
    one.singleton("x", Echo)
    with pytest.raises(ValueError, match="already a candidate"):
        one.singleton("x", Echo)


def test_a_named_actor_spawned_again_is_watched_as_the_new_one(system: ActorSystem) -> None:
    first = system.spawn(Echo, name="again")
    first.stop()
    second = system.spawn(Echo, name="again")
    inbox = Inbox()
    system.watch("test/again", inbox)
    assert not wait_until(lambda: inbox.received, 0.2)  # the first one's exit is not the second's
    second.stop()
    assert inbox.wait(1)[0].reason is TerminationReason.STOPPED


class StuckRenewStore(MemoryStore):
    """A MemoryStore whose ``renew_actor`` blocks while ``stuck`` is set (a busy database)."""

    def __init__(self) -> None:
        super().__init__()
        self.stuck = threading.Event()
        self.release = threading.Event()

    def renew_actor(self, key: str, *, epoch: int, lease: float) -> None:
        if self.stuck.is_set():
            self.release.wait(30)
        super().renew_actor(key, epoch=epoch, lease=lease)


@pytest.mark.timeout(60)
def test_a_holder_whose_renew_hangs_stops_its_instance_before_the_lease_ends() -> None:
    store = StuckRenewStore()
    with ActorSystem("solo", store=store) as system:
        system.singleton("counter", Counter, lease=LEASE)
        assert wait_until(lambda: _holder(store) == "solo", 10)
        instance = system._named_ref("$singleton/counter")
        assert instance is not None
        gone = Inbox()
        system.watch(instance, gone)
        store.stuck.set()
        [message] = gone.wait(1, timeout=20)  # the watchdog, not the stuck keeper, stopped it
        assert message.reason is TerminationReason.STOPPED
        lease = store.actor_lease("singleton/counter")
        assert lease is not None and lease.lease_until is not None
        store.release.set()


@pytest.mark.timeout(60)
def test_a_crashed_instance_is_started_again_by_its_holder_from_its_snapshot(
    pair: tuple[ActorSystem, ActorSystem, MemoryStore],
) -> None:
    one, _two, store = pair
    handle = one.singleton("counter", Counter, lease=LEASE)
    assert wait_until(lambda: _holder(store) == "one", 10)
    assert [handle.ask("add", timeout=10) for _ in range(2)] == [1, 2]
    epoch = handle.epoch()
    assert epoch is not None
    handle.tell("crash")
    assert wait_until(lambda: handle.epoch() == epoch + 1 and _runs_it(one), 10)
    assert handle.ask("add", timeout=10) == 3


class SlowRenewStore(MemoryStore):
    """A MemoryStore whose ``renew_actor`` takes ``delay`` seconds (a loaded database)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def renew_actor(self, key: str, *, epoch: int, lease: float) -> None:
        threading.Event().wait(self.delay)  # the store's latency, not a wait for an event
        super().renew_actor(key, epoch=epoch, lease=lease)


@pytest.mark.timeout(60)
def test_a_holder_whose_renews_take_a_fifth_of_the_lease_keeps_its_instance() -> None:
    lease = 3.0
    store = SlowRenewStore(delay=lease / 5)  # well within the lease, renewed every third
    with ActorSystem("solo", store=store) as system:
        handle = system.singleton("counter", Counter, lease=lease)
        assert wait_until(lambda: _holder(store) == "solo", 10)
        epoch = handle.epoch()
        assert not wait_until(lambda: handle.epoch() != epoch, 3 * lease)  # never restarted
        assert _runs_it(system)
