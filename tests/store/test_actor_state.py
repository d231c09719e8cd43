"""The ActorStateStore contract (fenced actor leases and snapshots), against every store.

Uses the ``store`` fixture of ``conftest`` (every store factory); a new store
(PostgreSQL) passes by being added to ``STORE_FACTORIES``.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from actors import ManualClock, PersistenceError, StaleEpoch
from runtime.store import ActorStateStore, decode_value, encode_value


def actors_of(store: Any) -> ActorStateStore:
    assert isinstance(store, ActorStateStore)
    return store


def test_store_satisfies_the_actor_state_protocol(store: Any) -> None:
    assert isinstance(store, ActorStateStore)


def test_first_claim_is_epoch_one_and_every_claim_by_the_owner_bumps_it(store: Any) -> None:
    actors = actors_of(store)
    assert [actors.claim_actor("k", owner="a", lease=30) for _ in range(3)] == [1, 2, 3]
    lease = actors.actor_lease("k")
    assert lease is not None and (lease.epoch, lease.owner) == (3, "a")


def test_a_live_lease_of_another_owner_refuses_a_claim_until_it_expires(
    store: Any, clock: ManualClock
) -> None:
    actors = actors_of(store)
    actors.claim_actor("k", owner="a", lease=30)
    clock.advance(29.9)
    assert actors.claim_actor("k", owner="b", lease=30) is None
    clock.advance(0.2)
    assert actors.claim_actor("k", owner="b", lease=30) == 2


def test_force_takes_a_live_lease(store: Any) -> None:
    actors = actors_of(store)
    actors.claim_actor("k", owner="a", lease=30)
    assert actors.claim_actor("k", owner="b", lease=30, force=True) == 2


def test_if_epoch_takes_a_live_lease_only_at_that_epoch(store: Any) -> None:
    actors = actors_of(store)
    actors.claim_actor("k", owner="a", lease=30)
    assert actors.claim_actor("k", owner="b", lease=30, if_epoch=5) is None
    assert actors.claim_actor("k", owner="b", lease=30, if_epoch=1) == 2
    assert actors.claim_actor("k", owner="c", lease=30, if_epoch=1) is None  # lost the race


def test_of_many_racing_takeovers_at_one_epoch_exactly_one_wins(store: Any) -> None:
    actors = actors_of(store)
    actors.claim_actor("k", owner="dead", lease=30)
    start = threading.Barrier(8)

    def take(i: int) -> int | None:
        start.wait(5)
        return actors.claim_actor("k", owner=f"m{i}", lease=30, if_epoch=1)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(take, range(8)))
    assert sorted(r for r in results if r is not None) == [2]


def test_renew_extends_only_the_current_epoch(store: Any, clock: ManualClock) -> None:
    actors = actors_of(store)
    epoch = actors.claim_actor("k", owner="a", lease=10)
    assert epoch == 1
    clock.advance(8)
    actors.renew_actor("k", epoch=1, lease=10)
    clock.advance(8)
    assert actors.claim_actor("k", owner="b", lease=10) is None
    actors.claim_actor("k", owner="b", lease=10, force=True)
    with pytest.raises(StaleEpoch, match=r"actor k.*epoch 1.*epoch 2"):
        actors.renew_actor("k", epoch=1, lease=10)
    with pytest.raises(StaleEpoch, match="never claimed"):
        actors.renew_actor("other", epoch=1, lease=10)


def test_release_lets_another_owner_claim_and_a_stale_release_is_a_no_op(store: Any) -> None:
    actors = actors_of(store)
    actors.claim_actor("k", owner="a", lease=30)
    actors.release_actor("k", epoch=7)  # stale: nothing happens
    assert actors.claim_actor("k", owner="b", lease=30) is None
    actors.release_actor("k", epoch=1)
    lease = actors.actor_lease("k")
    assert lease is not None and lease.owner is None
    with pytest.raises(StaleEpoch):
        actors.renew_actor("k", epoch=1, lease=30)
    assert actors.claim_actor("k", owner="b", lease=30) == 2


def test_a_snapshot_saved_at_the_current_epoch_loads_back(store: Any) -> None:
    actors = actors_of(store)
    assert actors.load_snapshot("k") is None
    epoch = actors.claim_actor("k", owner="a", lease=30)
    assert epoch is not None
    actors.save_snapshot("k", epoch=epoch, state=encode_value({"count": 3}, what="actor k"))
    actors.save_snapshot("k", epoch=epoch, state=encode_value({"count": 4}, what="actor k"))
    snapshot = actors.load_snapshot("k")
    assert snapshot is not None and snapshot.epoch == 1
    assert decode_value(snapshot.state, what="actor k") == {"count": 4}


def test_a_stale_incarnations_snapshot_is_refused_and_changes_nothing(store: Any) -> None:
    actors = actors_of(store)
    actors.claim_actor("k", owner="a", lease=30)
    actors.save_snapshot("k", epoch=1, state=b"old")
    actors.claim_actor("k", owner="b", lease=30, force=True)
    with pytest.raises(StaleEpoch, match="actor k: cannot save a snapshot with epoch 1"):
        actors.save_snapshot("k", epoch=1, state=b"zombie")
    snapshot = actors.load_snapshot("k")
    assert snapshot is not None and (snapshot.state, snapshot.epoch) == (b"old", 1)
    actors.save_snapshot("k", epoch=2, state=b"new")
    snapshot = actors.load_snapshot("k")
    assert snapshot is not None and (snapshot.state, snapshot.epoch) == (b"new", 2)


def test_a_snapshot_of_a_key_never_claimed_is_refused(store: Any) -> None:
    with pytest.raises(StaleEpoch, match="never claimed"):
        actors_of(store).save_snapshot("k", epoch=1, state=b"x")


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: s.claim_actor("", owner="a", lease=1), "key"),
        (lambda s: s.claim_actor("k", owner="", lease=1), "owner"),
        (lambda s: s.claim_actor("k", owner="a", lease=0), "lease"),
        (lambda s: s.save_snapshot("k", epoch=1, state="text"), "bytes"),
        (lambda s: s.save_snapshot("k", epoch=0, state=b""), "epoch"),
    ],
)
def test_bad_arguments_are_refused_naming_them(store: Any, call: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call(store)


def test_actor_keys_do_not_show_up_as_runs(store: Any) -> None:
    actors_of(store).claim_actor("k", owner="a", lease=30)
    assert store.list() == []


def test_a_closed_store_refuses_actor_calls(store: Any) -> None:
    store.close()
    with pytest.raises(PersistenceError):
        actors_of(store).claim_actor("k", owner="a", lease=30)
