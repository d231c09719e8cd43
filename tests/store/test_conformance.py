"""The CheckpointStore contract, run against every store (see conftest ``store``)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from actors import ManualClock, PersistenceError, RunBusy, StaleEpoch
from runtime.store import CheckpointStore
from tests.store.store_testkit import checkpoint, context_of, step


def test_store_satisfies_the_protocol(store: CheckpointStore) -> None:
    assert isinstance(store, CheckpointStore)


# --- claim / renew / release -------------------------------------------------------------


def test_first_claim_of_a_run_returns_epoch_one(store: CheckpointStore) -> None:
    assert store.claim("run-1", owner="a", lease=30) == 1


def test_every_claim_takes_a_new_epoch(store: CheckpointStore) -> None:
    epochs = [store.claim("run-1", owner="a", lease=30) for _ in range(3)]
    assert epochs == [1, 2, 3]


def test_claim_while_another_owner_holds_a_live_lease_raises_run_busy(
    store: CheckpointStore,
) -> None:
    store.claim("run-1", owner="host-a:11", lease=30)
    with pytest.raises(RunBusy, match=r"run-1.*'host-a:11'"):
        store.claim("run-1", owner="host-b:22", lease=30)


def test_claim_succeeds_once_the_other_owners_lease_has_expired(
    store: CheckpointStore, clock: ManualClock
) -> None:
    store.claim("run-1", owner="a", lease=30)
    clock.advance(29.9)
    with pytest.raises(RunBusy):
        store.claim("run-1", owner="b", lease=30)
    clock.advance(0.2)
    assert store.claim("run-1", owner="b", lease=30) == 2


def test_forced_claim_takes_over_a_live_lease(store: CheckpointStore) -> None:
    store.claim("run-1", owner="a", lease=30)
    assert store.claim("run-1", owner="b", lease=30, force=True) == 2
    [summary] = store.list()
    assert summary.owner == "b"


def test_claim_records_owner_and_lease_from_the_clock(
    store: CheckpointStore, clock: ManualClock
) -> None:
    store.claim("run-1", owner="a", lease=30)
    [summary] = store.list()
    assert (summary.owner, summary.lease_until, summary.epoch) == ("a", clock.wall() + 30, 1)
    assert not summary.has_checkpoint


def test_renew_extends_the_lease(store: CheckpointStore, clock: ManualClock) -> None:
    epoch = store.claim("run-1", owner="a", lease=10)
    clock.advance(8)
    store.renew("run-1", epoch=epoch, lease=10)
    clock.advance(8)
    with pytest.raises(RunBusy):
        store.claim("run-1", owner="b", lease=10)


def test_renew_with_an_old_epoch_raises_stale_epoch(store: CheckpointStore) -> None:
    old = store.claim("run-1", owner="a", lease=10)
    store.claim("run-1", owner="b", lease=10, force=True)
    with pytest.raises(StaleEpoch, match=r"run-1.*epoch 1.*epoch 2"):
        store.renew("run-1", epoch=old, lease=10)


def test_renew_of_an_unknown_run_raises_stale_epoch(store: CheckpointStore) -> None:
    with pytest.raises(StaleEpoch, match="not claimed"):
        store.renew("nope", epoch=1, lease=10)


def test_renew_after_release_raises_stale_epoch(store: CheckpointStore) -> None:
    epoch = store.claim("run-1", owner="a", lease=10)
    store.release("run-1", epoch=epoch)
    with pytest.raises(StaleEpoch):
        store.renew("run-1", epoch=epoch, lease=10)


def test_release_lets_another_owner_claim_without_force(store: CheckpointStore) -> None:
    epoch = store.claim("run-1", owner="a", lease=30)
    store.release("run-1", epoch=epoch)
    [summary] = store.list()
    assert (summary.owner, summary.lease_until) == (None, None)
    assert store.claim("run-1", owner="b", lease=30) == 2


def test_release_with_a_stale_epoch_is_a_no_op(store: CheckpointStore) -> None:
    old = store.claim("run-1", owner="a", lease=30)
    store.claim("run-1", owner="b", lease=30, force=True)
    store.release("run-1", epoch=old)
    store.release("unknown-run", epoch=1)
    with pytest.raises(RunBusy, match="'b'"):
        store.claim("run-1", owner="c", lease=30)


@pytest.mark.parametrize("lease", [0, -1.0, float("nan")])
def test_claim_rejects_a_non_positive_lease_naming_it(store: CheckpointStore, lease: float) -> None:
    with pytest.raises(ValueError, match="lease"):
        store.claim("run-1", owner="a", lease=lease)


def test_claim_rejects_an_empty_owner_or_run_id(store: CheckpointStore) -> None:
    with pytest.raises(ValueError, match="owner"):
        store.claim("run-1", owner="", lease=1)
    with pytest.raises(ValueError, match="run_id"):
        store.claim("", owner="a", lease=1)


# --- save / load ---------------------------------------------------------------------------


def test_saved_checkpoint_loads_back_equal_with_the_current_epoch(store: CheckpointStore) -> None:
    epoch = store.claim("run-1", owner="a", lease=30)
    steps = {"extract": step("extract", output=[1, (2, 3)]), "load": step("load", state="running")}
    saved = checkpoint(
        "run-1", epoch, context={"rows": [1, 2], "pair": (1, "x")}, steps=steps, meta={"k": "v"}
    )
    store.save(saved)
    loaded = store.load("run-1")
    assert loaded == saved
    assert context_of(loaded) == {"rows": [1, 2], "pair": (1, "x")}
    assert list(loaded.steps) == ["extract", "load"]


def test_load_of_an_unknown_run_raises_naming_the_run(store: CheckpointStore) -> None:
    with pytest.raises(PersistenceError, match="run ghost"):
        store.load("ghost")


def test_load_of_a_run_claimed_but_never_saved_raises(store: CheckpointStore) -> None:
    store.claim("run-1", owner="a", lease=30)
    with pytest.raises(PersistenceError, match=r"run run-1.*no checkpoint was ever saved"):
        store.load("run-1")


def test_save_by_a_zombie_with_an_old_epoch_is_rejected_and_changes_nothing(
    store: CheckpointStore,
) -> None:
    zombie_epoch = store.claim("run-1", owner="a", lease=30)
    store.save(checkpoint("run-1", zombie_epoch, context="a-1"))
    new_epoch = store.claim("run-1", owner="b", lease=30, force=True)
    store.save(checkpoint("run-1", new_epoch, context="b-1", steps={"s": step("s")}))
    with pytest.raises(StaleEpoch, match=r"run-1.*epoch 1.*epoch 2"):
        store.save(checkpoint("run-1", zombie_epoch, context="a-2"), changed_steps=["s"])
    loaded = store.load("run-1")
    assert (context_of(loaded), loaded.epoch, list(loaded.steps)) == ("b-1", 2, ["s"])


def test_save_of_a_run_never_claimed_raises_stale_epoch(store: CheckpointStore) -> None:
    with pytest.raises(StaleEpoch, match="not claimed"):
        store.save(checkpoint("run-1", 1))


def test_save_with_changed_steps_writes_only_those_steps(store: CheckpointStore) -> None:
    epoch = store.claim("run-1", owner="a", lease=30)
    store.save(checkpoint("run-1", epoch, steps={"a": step("a", output=1)}))
    # "a" differs in the new checkpoint but is not listed as changed: it must not be rewritten.
    steps = {"a": step("a", output=999), "b": step("b", output=2)}
    store.save(checkpoint("run-1", epoch, context="two", steps=steps), changed_steps=["b"])
    loaded = store.load("run-1")
    assert loaded.steps == {"a": step("a", output=1), "b": step("b", output=2)}
    assert context_of(loaded) == "two"


def test_a_changed_step_missing_from_the_checkpoint_is_deleted(store: CheckpointStore) -> None:
    epoch = store.claim("run-1", owner="a", lease=30)
    store.save(checkpoint("run-1", epoch, steps={"a": step("a"), "b": step("b")}))
    store.save(checkpoint("run-1", epoch, steps={"a": step("a")}), changed_steps=("b",))
    assert list(store.load("run-1").steps) == ["a"]


def test_a_full_save_replaces_every_stored_step(store: CheckpointStore) -> None:
    epoch = store.claim("run-1", owner="a", lease=30)
    store.save(checkpoint("run-1", epoch, steps={"a": step("a"), "b": step("b")}))
    store.save(checkpoint("run-1", epoch, steps={"c": step("c", state="failed")}))
    assert store.load("run-1").steps == {"c": step("c", state="failed")}


def test_save_rejects_a_single_string_as_changed_steps(store: CheckpointStore) -> None:
    epoch = store.claim("run-1", owner="a", lease=30)
    with pytest.raises(ValueError, match="changed_steps"):
        store.save(checkpoint("run-1", epoch, steps={"ab": step("ab")}), changed_steps="ab")


def test_save_rejects_meta_that_is_not_str_to_str(store: CheckpointStore) -> None:
    epoch = store.claim("run-1", owner="a", lease=30)
    with pytest.raises(ValueError, match="meta"):
        store.save(checkpoint("run-1", epoch, meta={"n": 1}))  # type: ignore[dict-item]


def test_save_after_release_with_the_current_epoch_is_accepted(store: CheckpointStore) -> None:
    epoch = store.claim("run-1", owner="a", lease=30)
    store.release("run-1", epoch=epoch)
    store.save(checkpoint("run-1", epoch, context="final"))
    assert context_of(store.load("run-1")) == "final"


def test_a_long_chain_saved_one_step_at_a_time_keeps_every_step(store: CheckpointStore) -> None:
    epoch = store.claim("run-1", owner="a", lease=30)
    steps = {}
    for index in range(300):
        key = f"step-{index:04d}"
        steps[key] = step(key, output=index)
        store.save(checkpoint("run-1", epoch, context=index, steps=steps), changed_steps=[key])
    loaded = store.load("run-1")
    assert loaded.steps == steps
    assert context_of(loaded) == 299


# --- delete / list -----------------------------------------------------------------------


def test_delete_forgets_the_run_and_a_zombie_cannot_write_it_back(store: CheckpointStore) -> None:
    epoch = store.claim("run-1", owner="a", lease=30)
    store.save(checkpoint("run-1", epoch, steps={"a": step("a")}))
    store.delete("run-1")
    store.delete("run-1")  # idempotent
    assert store.list() == []
    with pytest.raises(PersistenceError, match="run-1"):
        store.load("run-1")
    with pytest.raises(StaleEpoch):
        store.save(checkpoint("run-1", epoch))


def test_list_summarizes_ownership_and_progress_oldest_first(
    store: CheckpointStore, clock: ManualClock
) -> None:
    first = store.claim("run-b", owner="a", lease=30)
    steps = {
        "x": step("x", state="completed"),
        "y": step("y", state="Completed"),
        "z": step("z", state="running"),
    }
    store.save(checkpoint("run-b", first, steps=steps, state="running", created_at=1.0))
    store.release("run-b", epoch=first)
    clock.advance(5)
    store.claim("run-a", owner="b", lease=30)
    older, newer = store.list()
    assert older.run_id == "run-b"
    assert (older.workflow, older.state, older.owner, older.lease_until) == (
        "etl",
        "running",
        None,
        None,
    )
    assert (older.steps_total, older.steps_completed, older.has_checkpoint) == (3, 2, True)
    assert (newer.run_id, newer.owner, newer.epoch, newer.steps_total) == ("run-a", "b", 1, 0)
    assert (newer.workflow, newer.has_checkpoint) == ("", False)


# --- lifecycle and threads -----------------------------------------------------------------


def test_a_closed_store_raises_persistence_error(store: CheckpointStore) -> None:
    store.close()
    store.close()  # idempotent
    with pytest.raises(PersistenceError, match="closed"):
        store.claim("run-1", owner="a", lease=1)
    with pytest.raises(PersistenceError, match="closed"):
        store.list()


def test_threads_claiming_one_run_at_once_have_exactly_one_winner(store: CheckpointStore) -> None:
    owners = [f"owner-{index}" for index in range(8)]
    barrier = threading.Barrier(len(owners), timeout=10)

    def claim(owner: str) -> str:
        barrier.wait()
        try:
            return f"won {store.claim('run-1', owner=owner, lease=30)}"
        except RunBusy:
            return "busy"

    with ThreadPoolExecutor(max_workers=len(owners)) as pool:
        outcomes = list(pool.map(claim, owners, timeout=30))
    assert sorted(outcomes) == ["busy"] * 7 + ["won 1"]


def test_threads_saving_different_runs_at_once_all_land(store: CheckpointStore) -> None:
    def run_chain(index: int) -> None:
        run_id = f"run-{index}"
        epoch = store.claim(run_id, owner=f"owner-{index}", lease=30)
        steps = {}
        for number in range(20):
            key = f"s{number}"
            steps[key] = step(key, output=number)
            store.save(checkpoint(run_id, epoch, context=number, steps=steps), changed_steps=[key])

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(run_chain, range(6), timeout=30))
    summaries = store.list()
    assert sorted(s.run_id for s in summaries) == [f"run-{index}" for index in range(6)]
    assert all(s.steps_total == 20 and s.steps_completed == 20 for s in summaries)
