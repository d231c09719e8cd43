"""The CheckpointStore contract, run against every store (see conftest ``store``)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from actors import ManualClock, PersistenceError, RunBusy, StaleEpoch
from runtime.store import CheckpointStore, Outcome
from tests.store.store_testkit import append, checkpoint, context_of, header, started, step


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


# --- start / append / load ----------------------------------------------------------------


def test_a_started_run_with_appended_steps_loads_back_with_the_current_epoch(
    store: CheckpointStore,
) -> None:
    context = {"rows": [1, 2], "pair": (1, "x")}
    epoch = started(store, "run-1", context=context, settings={"checkpoint": "each"})
    extract, load = step("extract", output=[1, (2, 3)]), step("load", state="running")
    append(store, "run-1", epoch, extract, load)
    loaded = store.load("run-1")
    assert loaded == checkpoint(
        "run-1", epoch, context=context, steps=[extract, load], settings={"checkpoint": "each"}
    )
    assert context_of(loaded) == {"rows": [1, 2], "pair": (1, "x")}
    assert list(loaded.steps) == ["extract", "load"]


def test_a_started_run_without_steps_loads_with_its_header(store: CheckpointStore) -> None:
    epoch = started(store, "run-1", context="initial")
    loaded = store.load("run-1")
    assert loaded == checkpoint("run-1", epoch, context="initial", updated_at=100.0)
    assert (loaded.settings, loaded.outcome, loaded.steps) == ({}, None, {})


def test_load_of_an_unknown_run_raises_naming_the_run(store: CheckpointStore) -> None:
    with pytest.raises(PersistenceError, match="run ghost"):
        store.load("ghost")


def test_load_of_a_run_claimed_but_never_started_raises(store: CheckpointStore) -> None:
    store.claim("run-1", owner="a", lease=30)
    with pytest.raises(PersistenceError, match=r"run run-1.*no checkpoint was ever saved"):
        store.load("run-1")


def test_append_before_start_is_refused(store: CheckpointStore) -> None:
    epoch = store.claim("run-1", owner="a", lease=30)
    with pytest.raises(PersistenceError, match=r"run run-1: cannot append before the run"):
        append(store, "run-1", epoch, step("a"))
    with pytest.raises(PersistenceError, match="no checkpoint was ever saved"):
        store.load("run-1")


def test_writes_of_a_zombie_with_an_old_epoch_are_rejected_and_change_nothing(
    store: CheckpointStore,
) -> None:
    zombie_epoch = started(store, "run-1", context="a-1")
    new_epoch = store.claim("run-1", owner="b", lease=30, force=True)
    append(store, "run-1", new_epoch, step("s"), state="Failed")
    with pytest.raises(StaleEpoch, match=r"run-1.*epoch 1.*epoch 2"):
        append(store, "run-1", zombie_epoch, step("s", state="failed"), step("z"))
    with pytest.raises(StaleEpoch, match=r"run-1.*epoch 1.*epoch 2"):
        store.start(header("run-1", context="a-2"), epoch=zombie_epoch, state="x", updated_at=1)
    loaded = store.load("run-1")
    assert (context_of(loaded), loaded.epoch, loaded.state) == ("a-1", 2, "Failed")
    assert loaded.steps == {"s": step("s")}


def test_writes_to_a_run_never_claimed_raise_stale_epoch(store: CheckpointStore) -> None:
    with pytest.raises(StaleEpoch, match="not claimed"):
        store.start(header("run-1"), epoch=1, state="running", updated_at=1.0)
    with pytest.raises(StaleEpoch, match="not claimed"):
        append(store, "run-1", 1, step("a"))


def test_append_adds_records_and_keeps_the_ones_before(store: CheckpointStore) -> None:
    epoch = started(store, "run-1", context="initial")
    append(store, "run-1", epoch, step("a", output=1))
    append(store, "run-1", epoch, step("b", output=2), state="Paused", updated_at=150.0)
    loaded = store.load("run-1")
    assert loaded.steps == {"a": step("a", output=1), "b": step("b", output=2)}
    assert (loaded.state, loaded.updated_at, context_of(loaded)) == ("Paused", 150.0, "initial")


def test_the_last_record_of_a_step_wins_in_its_first_place(store: CheckpointStore) -> None:
    epoch = started(store, "run-1")
    append(store, "run-1", epoch, step("a", state="failed"), step("b", output=2))
    append(store, "run-1", epoch, step("a", output="again", attempts=2))
    append(store, "run-1", epoch, step("c", state="running"), step("c", output=3))
    loaded = store.load("run-1")
    assert list(loaded.steps) == ["a", "b", "c"]
    assert loaded.steps["a"] == step("a", output="again", attempts=2)
    assert loaded.steps["c"] == step("c", output=3)
    [summary] = store.list()
    assert (summary.steps_total, summary.steps_completed) == (3, 3)


def test_start_again_rewrites_the_header_keeps_the_steps_and_clears_the_outcome(
    store: CheckpointStore,
) -> None:
    epoch = started(store, "run-1", context="first", settings={"k": "v"})
    append(store, "run-1", epoch, step("a", output=1), state="Failed", outcome=Outcome(error="x"))
    epoch = store.claim("run-1", owner="a", lease=30)
    rewritten = header("run-1", context="first", fingerprint="fp-2", settings={"k": "w"})
    store.start(rewritten, epoch=epoch, state="Running", updated_at=200.0)
    loaded = store.load("run-1")
    assert (loaded.fingerprint, loaded.settings, loaded.state) == ("fp-2", {"k": "w"}, "Running")
    assert (loaded.outcome, loaded.steps, loaded.updated_at) == (
        None,
        {"a": step("a", output=1)},
        200.0,
    )


def test_append_rejects_records_that_are_not_a_list_of_step_records(
    store: CheckpointStore,
) -> None:
    epoch = started(store, "run-1")
    for records in (step("a"), "ab", [("a", "completed")]):
        with pytest.raises(ValueError, match="records"):
            store.append("run-1", epoch=epoch, records=records, state="r", updated_at=1.0)  # type: ignore[arg-type]
    assert store.load("run-1").steps == {}


def test_each_record_keeps_the_node_its_attempt_ran_on(store: CheckpointStore) -> None:
    epoch = started(store, "run-1")
    append(store, "run-1", epoch, step("a", node="worker-1"), step("b", state="failed", node="w2"))
    append(store, "run-1", epoch, step("b", output=2, attempts=2, node="coordinator"))
    append(store, "run-1", epoch, step("legacy"))  # written by a version that had no node
    steps = store.load("run-1").steps
    assert {k: r.node for k, r in steps.items()} == {
        "a": "worker-1",
        "b": "coordinator",  # the last record's node: where the last attempt ran
        "legacy": None,
    }


def test_append_rejects_a_node_that_is_not_a_string(store: CheckpointStore) -> None:
    epoch = started(store, "run-1")
    with pytest.raises(ValueError, match=r"step 'a' node must be a str or None, got int"):
        append(store, "run-1", epoch, step("a", node=7))  # type: ignore[arg-type]
    assert store.load("run-1").steps == {}


def test_start_rejects_settings_that_are_not_str_to_str(store: CheckpointStore) -> None:
    epoch = store.claim("run-1", owner="a", lease=30)
    bad = header("run-1", settings={"n": 1})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="settings"):
        store.start(bad, epoch=epoch, state="running", updated_at=1.0)


def test_append_after_release_with_the_current_epoch_is_accepted(store: CheckpointStore) -> None:
    epoch = started(store, "run-1")
    store.release("run-1", epoch=epoch)
    append(store, "run-1", epoch, step("final"), state="Completed")
    assert store.load("run-1").state == "Completed"


def test_a_long_chain_appended_one_step_at_a_time_keeps_every_step(
    store: CheckpointStore,
) -> None:
    epoch = started(store, "run-1", context="initial")
    records = []
    for index in range(300):
        record = step(f"step-{index:04d}", output=index)
        records.append(record)
        append(store, "run-1", epoch, record, updated_at=float(index))
    loaded = store.load("run-1")
    assert loaded.steps == {record.step: record for record in records}
    assert (context_of(loaded), loaded.updated_at) == ("initial", 299.0)


# --- outcome -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome(output=b"\x92\x01\x02"),
        Outcome(output_step="b"),
        Outcome(error="runtime.PermanentError: broken"),
        Outcome(unrecorded="output['when']: datetime cannot be encoded"),
    ],
)
def test_the_outcome_is_stored_with_the_final_state(
    store: CheckpointStore, outcome: Outcome
) -> None:
    epoch = started(store, "run-1")
    append(store, "run-1", epoch, step("a", output=1))
    append(store, "run-1", epoch, step("b", output=2), state="Completed", outcome=outcome)
    assert store.load("run-1").outcome == outcome


def test_an_output_step_must_name_a_completed_step_with_an_output(
    store: CheckpointStore,
) -> None:
    epoch = started(store, "run-1")
    append(store, "run-1", epoch, step("done", output=1), step("broken", state="failed"))
    for name in ("ghost", "broken"):
        with pytest.raises(ValueError, match=rf"output_step '{name}'"):
            append(store, "run-1", epoch, state="Completed", outcome=Outcome(output_step=name))
    with pytest.raises(ValueError, match="output_step 'done'"):  # superseded in this append
        append(
            store,
            "run-1",
            epoch,
            step("done", state="failed"),
            state="Completed",
            outcome=Outcome(output_step="done"),
        )
    loaded = store.load("run-1")  # nothing of the refused appends was written
    assert (loaded.state, loaded.outcome, loaded.steps["done"]) == (
        "running",
        None,
        step("done", output=1),
    )


def test_an_outcome_with_both_an_output_and_an_output_step_is_refused(
    store: CheckpointStore,
) -> None:
    epoch = started(store, "run-1")
    append(store, "run-1", epoch, step("a", output=1))
    with pytest.raises(ValueError, match="not both"):
        append(store, "run-1", epoch, outcome=Outcome(output=b"\x01", output_step="a"))
    assert store.load("run-1").outcome is None


def test_the_next_append_replaces_the_outcome(store: CheckpointStore) -> None:
    epoch = started(store, "run-1")
    append(store, "run-1", epoch, state="Failed", outcome=Outcome(error="boom"))
    append(store, "run-1", epoch, state="Running")
    assert store.load("run-1").outcome is None


# --- delete / list -----------------------------------------------------------------------


def test_delete_forgets_the_run_and_a_zombie_cannot_write_it_back(store: CheckpointStore) -> None:
    epoch = started(store, "run-1")
    append(store, "run-1", epoch, step("a"))
    store.delete("run-1", epoch=epoch)
    store.delete("run-1", epoch=epoch)  # idempotent
    assert store.list() == []
    with pytest.raises(PersistenceError, match="run-1"):
        store.load("run-1")
    with pytest.raises(StaleEpoch):
        append(store, "run-1", epoch, step("b"))
    with pytest.raises(StaleEpoch):
        store.start(header("run-1"), epoch=epoch, state="running", updated_at=1.0)


def test_delete_with_a_stale_epoch_raises_and_keeps_the_run(store: CheckpointStore) -> None:
    old = started(store, "run-1")
    new = store.claim("run-1", owner="b", lease=30, force=True)
    with pytest.raises(StaleEpoch, match=r"run-1: cannot delete with epoch 1.*epoch 2"):
        store.delete("run-1", epoch=old)
    assert store.load("run-1").epoch == new
    store.delete("run-1", epoch=new)
    assert store.list() == []


def test_list_summarizes_ownership_and_progress_oldest_first(
    store: CheckpointStore, clock: ManualClock
) -> None:
    first = started(store, "run-b", created_at=1.0)
    append(
        store,
        "run-b",
        first,
        step("x", state="completed"),
        step("y", state="Completed"),
        step("z", state="running"),
    )
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
    assert (older.created_at, older.updated_at) == (1.0, 101.0)
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


def test_threads_appending_to_different_runs_at_once_all_land(store: CheckpointStore) -> None:
    def run_chain(index: int) -> None:
        run_id = f"run-{index}"
        epoch = started(store, run_id, owner=f"owner-{index}", context=index)
        for number in range(20):
            append(store, run_id, epoch, step(f"s{number}", output=number))

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(run_chain, range(6), timeout=30))
    summaries = store.list()
    assert sorted(s.run_id for s in summaries) == [f"run-{index}" for index in range(6)]
    assert all(s.steps_total == 20 and s.steps_completed == 20 for s in summaries)
    for index in range(6):
        loaded = store.load(f"run-{index}")
        assert context_of(loaded) == index
        assert loaded.steps == {f"s{n}": step(f"s{n}", output=n) for n in range(20)}


# --- updated_at ----------------------------------------------------------------------------


def test_updated_at_is_the_last_writes_even_when_that_clock_was_behind(
    store: CheckpointStore,
) -> None:
    """A run adopted by a host whose clock is behind, or a clock stepped back: the run's
    updated_at is what its last write said, in ``load`` and ``list`` alike."""
    epoch = started(store, "run-1", created_at=100.0)
    append(store, "run-1", epoch, step("a"), updated_at=150.0)
    append(store, "run-1", epoch, step("b"), updated_at=120.0)
    [summary] = store.list()
    assert (store.load("run-1").updated_at, summary.updated_at) == (120.0, 120.0)
    append(store, "run-1", epoch, step("a", attempts=2), state="Paused", updated_at=170.0)
    append(store, "run-1", epoch, step("a", attempts=3), updated_at=130.0)
    [summary] = store.list()
    assert (store.load("run-1").updated_at, summary.updated_at) == (130.0, 130.0)


def test_updated_at_after_start_again_is_the_starts(store: CheckpointStore) -> None:
    epoch = started(store, "run-1", created_at=100.0)
    append(store, "run-1", epoch, step("a"), updated_at=150.0)
    epoch = store.claim("run-1", owner="b", lease=30, force=True)
    store.start(header("run-1"), epoch=epoch, state="Running", updated_at=140.0)
    [summary] = store.list()
    assert (store.load("run-1").updated_at, summary.updated_at) == (140.0, 140.0)
    append(store, "run-1", epoch, state="Failed", outcome=Outcome(error="x"), updated_at=145.0)
    [summary] = store.list()
    assert (store.load("run-1").updated_at, summary.updated_at) == (145.0, 145.0)
