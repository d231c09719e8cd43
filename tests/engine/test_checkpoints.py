"""Checkpointed runs in one process: strategies, resume by replay, fencing, bad input."""

from __future__ import annotations

import datetime
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runtime import (
    ActorSystem,
    CheckpointStrategy,
    ManualClock,
    MemoryStore,
    NodeState,
    PermanentError,
    PersistenceError,
    RunBusy,
    SQLiteStore,
    StaleEpoch,
    StepProgress,
    Workflow,
    current_step,
    parallel,
    register_persistable,
    task,
)
from runtime import events as ev
from tests.support import EventRecorder, wait_until

pytestmark = pytest.mark.timeout(30)
AFTER_EACH = CheckpointStrategy.AFTER_EACH_STEP


class Journal:
    """Which steps ran, in order, with their idempotency keys."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.keys: list[str] = []
        self.broken: set[str] = set()

    def step(self, name: str) -> Workflow[dict[str, Any], str]:
        def body(ctx: dict[str, Any]) -> str:
            self.ran.append(name)
            self.keys.append(current_step().idempotency_key)
            if name in self.broken:
                raise PermanentError(f"{name} is broken")
            ctx[name] = len(self.ran)
            return name.upper()

        return task(body, name=name)

    def chain(self, *names: str) -> Workflow[dict[str, Any], str]:
        flow = self.step(names[0])
        for name in names[1:]:
            flow = flow.then(self.step(name))
        return flow.named("chain")


def test_a_failed_run_resumes_from_its_failed_step_without_rerunning_completed_ones() -> None:
    journal, store = Journal(), MemoryStore()
    journal.broken.add("c")
    wf = journal.chain("a", "b", "c", "d")
    with ActorSystem("ck", store=store, checkpoint=AFTER_EACH) as system:
        handle = system.run(wf, {})
        with pytest.raises(PermanentError):
            handle.result(5)
        journal.broken.clear()
        resumed = system.resume(handle.id, wf)
        assert resumed.result(5) == "D"
    assert journal.ran == ["a", "b", "c", "c", "d"]
    assert [s.resumed for s in resumed.steps()] == [True, True, False, False]
    assert len(set(journal.keys[2:4])) == 1  # the same idempotency key across the retry
    summary = next(s for s in store.list() if s.run_id == handle.id)
    assert (summary.state, summary.steps_completed, summary.epoch) == ("Completed", 4, 2)


def test_steps_are_recorded_with_state_names_and_old_lowercase_files_still_resume(
    tmp_path: Path,
) -> None:
    """Step records say ``Completed``/``Failed`` like runs; lowercase ones (older files) replay."""
    journal, db = Journal(), tmp_path / "state.db"
    journal.broken.add("c")
    wf = journal.chain("a", "b", "c")
    with SQLiteStore(db) as store, ActorSystem("ck", store=store, checkpoint=AFTER_EACH) as system:
        handle = system.run(wf, {})
        with pytest.raises(PermanentError):
            handle.result(5)
        states = {k: r.state for k, r in store.load(handle.id).steps.items()}
        assert states == {"a": "Completed", "b": "Completed", "c": "Failed"}
    with sqlite3.connect(db) as conn:  # what a file written by an earlier version holds
        conn.execute("UPDATE steps SET state = lower(state) WHERE run_id = ?", (handle.id,))
    conn.close()
    journal.broken.clear()
    with SQLiteStore(db) as store, ActorSystem("ck", store=store, checkpoint=AFTER_EACH) as system:
        assert next(s for s in store.list() if s.run_id == handle.id).steps_completed == 2
        assert system.resume(handle.id, wf).result(5) == "C"
    assert journal.ran == ["a", "b", "c", "c"]


def test_the_resumed_context_includes_every_completed_steps_changes() -> None:
    journal, store = Journal(), MemoryStore()
    attempts = {"n": 0}

    def report(ctx: dict[str, Any]) -> dict[str, Any]:
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise PermanentError("first attempt breaks")
        return dict(ctx)

    wf = journal.chain("a", "b").then(task(report)).named("with-report")
    with ActorSystem("ctx", store=store, checkpoint=AFTER_EACH) as system:
        handle = system.run(wf, {"seed": 1})
        with pytest.raises(PermanentError):
            handle.result(5)
    with ActorSystem("ctx2", store=store, workflows=[wf]) as system:  # a new system, same store
        assert system.resume(handle.id).result(5) == {"seed": 1, "a": 1, "b": 2}
    assert journal.ran == ["a", "b"]


def test_resume_refuses_a_workflow_whose_structure_changed_unless_forced() -> None:
    journal, store = Journal(), MemoryStore()
    journal.broken.add("b")
    with ActorSystem("shape", store=store, checkpoint=AFTER_EACH) as system:
        handle = system.run(journal.chain("a", "b"), {})
        with pytest.raises(PermanentError):
            handle.result(5)
        journal.broken.clear()
        changed = journal.chain("a", "b", "extra")
        with pytest.raises(PersistenceError, match="structure changed"):
            system.resume(handle.id, changed)
        assert system.resume(handle.id, changed, force=True).result(5) == "EXTRA"


def test_resume_of_an_unknown_run_raises_instead_of_starting_fresh() -> None:
    with (
        ActorSystem("unknown", store=MemoryStore()) as system,
        pytest.raises(PersistenceError, match="no-such-run"),
    ):
        system.resume("no-such-run", task(lambda c: c))


def test_an_unencodable_context_is_refused_naming_the_field_and_type() -> None:
    with ActorSystem("enc", store=MemoryStore(), checkpoint=AFTER_EACH) as system:
        ctx = {"rows": [{"when": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)}]}
        with pytest.raises(PersistenceError, match=r"context\['rows'\]\[0\]\['when'\].*datetime"):
            system.run(task(lambda c: c), ctx)


def test_an_unencodable_step_output_fails_the_run_with_a_persistence_error() -> None:
    with ActorSystem("out", store=MemoryStore(), checkpoint=AFTER_EACH) as system:
        handle = system.run(task(lambda c: object(), name="weird"), {})
        with pytest.raises(PersistenceError, match="weird"):
            handle.result(5)


def test_strategy_none_writes_nothing_and_after_each_step_emits_checkpointed() -> None:
    store, recorder = MemoryStore(), EventRecorder()
    journal = Journal()
    with ActorSystem("none", store=store) as system:
        system.run(journal.chain("a", "b"), {}).result(5)
        assert store.list() == []
        system.run(journal.chain("a", "b").checkpoint(AFTER_EACH), {}, observers=[recorder]).result(
            5
        )
    assert [e.step for e in recorder.events if isinstance(e, ev.Checkpointed)] == ["a", "b"]
    assert len(store.list()) == 1


def test_periodic_and_custom_strategies_decide_when_a_step_is_written() -> None:
    seen: list[StepProgress] = []

    def every_second(progress: StepProgress) -> bool:
        seen.append(progress)
        return progress.completed_steps % 2 == 0

    journal, recorder = Journal(), EventRecorder()
    custom = CheckpointStrategy.custom(every_second)
    with ActorSystem("custom", store=MemoryStore(), checkpoint=custom) as system:
        system.run(journal.chain("a", "b", "c", "d"), {}, observers=[recorder]).result(5)
    assert [e.step for e in recorder.events if isinstance(e, ev.Checkpointed)] == ["b", "d"]
    assert [p.step for p in seen] == ["a", "b", "c", "d"]
    clock, recorder = ManualClock(), EventRecorder()
    periodic = CheckpointStrategy.periodic(60)
    with ActorSystem(
        "periodic", store=MemoryStore(clock=clock), checkpoint=periodic, clock=clock
    ) as system:
        system.run(journal.chain("a", "b"), {}, observers=[recorder]).result(5)
    assert [e for e in recorder.events if isinstance(e, ev.Checkpointed)] == []
    with pytest.raises(ValueError, match="periodic"):
        CheckpointStrategy.periodic(0)


def test_a_second_owner_gets_run_busy_and_a_fenced_zombie_stops_its_run() -> None:
    clock, store = ManualClock(), None
    store = MemoryStore(clock=clock)
    journal = Journal()
    journal.broken.add("b")
    wf = journal.chain("a", "b", "c")
    first = ActorSystem("first", store=store, checkpoint=AFTER_EACH, clock=clock, lease=10)
    handle = first.run(wf, {})
    with pytest.raises(PermanentError):
        handle.result(5)
    with ActorSystem("second", store=store, clock=clock, lease=10) as second:
        store.claim(handle.id, owner="someone-else:1:x", lease=10)  # a live owner elsewhere
        with pytest.raises(RunBusy, match="someone-else"):
            second.resume(handle.id, wf)
        journal.broken.clear()
        taken = second.resume(handle.id, wf, force=True)
        assert taken.result(5) == "C"
    first.shutdown()
    stale = store.load(handle.id)
    with pytest.raises(StaleEpoch):
        store.append(handle.id, epoch=stale.epoch - 1, records=[], state="Running", updated_at=0.0)


def test_the_default_store_is_a_sqlite_file_under_dot_actorflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    journal = Journal()
    with ActorSystem("default", checkpoint=AFTER_EACH) as system:
        handle = system.run(journal.chain("a"), {})
        handle.result(5)
    assert (tmp_path / ".actorflow" / "state.db").is_file()
    with SQLiteStore(tmp_path / ".actorflow" / "state.db") as store:
        assert store.load(handle.id).state == "Completed"


@register_persistable
@dataclass
class Tally:
    """A dataclass context: registered, it needs no to_bytes/from_bytes."""

    seen: list[str]
    label: str = "t"


def test_a_registered_dataclass_context_is_checkpointed_and_resumed(tmp_path: Path) -> None:
    broken = {"c"}

    def add(name: str) -> Workflow[Tally, int]:
        def body(ctx: Tally) -> int:
            assert type(ctx) is Tally
            if name in broken:
                raise PermanentError(f"{name} is broken")
            ctx.seen.append(name)
            return len(ctx.seen)

        return task(body, name=name)

    wf = add("a").then(add("b")).then(add("c")).named("tally")
    with (
        SQLiteStore(tmp_path / "s.db") as store,
        ActorSystem("ck", store=store, checkpoint=AFTER_EACH) as system,
    ):
        handle = system.run(wf, Tally([]))
        with pytest.raises(PermanentError):
            handle.result(5)
        broken.clear()
        # 3: "a" and "b" came back inside the Tally decoded from the file.
        assert system.resume(handle.id, wf).result(5) == 3


# Issue 9: parallel branches finishing together were written one transaction each.
def test_steps_that_complete_together_are_recorded_in_one_append(tmp_path: Path) -> None:
    width, returned, lock = 40, [0], threading.Lock()

    class FirstRecordWaits(SQLiteStore):
        """Its first step record is written only once every branch has returned."""

        def append(self, run_id: str, **fields: Any) -> None:
            if fields["records"] and fields["state"] == "Running" and not held.is_set():
                held.set()
                assert wait_until(lambda: returned[0] == width, timeout=10)
            super().append(run_id, **fields)

    def branch(ctx: Any) -> None:
        with lock:
            returned[0] += 1

    held = threading.Event()
    store = FirstRecordWaits(tmp_path / "state.db")
    with ActorSystem("wide", store=store, checkpoint=AFTER_EACH) as system:
        wf = parallel(*(task(branch, name=f"b{i}") for i in range(width)))
        handle = system.run(wf, {})
        assert handle.result(10) == (None,) * width
    completed = [s for s, r in store.load(handle.id).steps.items() if r.state == "Completed"]
    assert len(completed) == width
    # The first record, then the other 39 in (about) one append, then the outcome;
    # one append per step would be 41.
    assert store.stats().appends < 10
    store.close()


def _labels(recorder: EventRecorder) -> list[str]:
    return [
        f"{type(e).__name__}:{getattr(e, 'step', None) or '-'}"
        for e in recorder.events
        if not isinstance(e, ev.StateChanged)
    ]


# Review of 2026-12-01 (the journal's deferred writes): a step whose record waited for
# the flush was announced Completed after the run's own Canceled.
def test_a_cancel_after_a_step_reported_comes_after_that_step_is_announced() -> None:
    holder: dict[str, Any] = {}

    def cancel_while_a_awaits(progress: StepProgress) -> bool:
        if progress.step == "a":
            holder["handle"].cancel()  # a message lands in the coordinator's mailbox
        return True

    recorder = EventRecorder()
    strategy = CheckpointStrategy.custom(cancel_while_a_awaits)
    store = MemoryStore()
    gate = threading.Event()
    with ActorSystem("c", store=store, checkpoint=strategy) as system:
        wf = task(lambda ctx: gate.wait(5) and "A", name="a").then(task(lambda c: "B", name="b"))
        handle = system.run(wf.named("wf"), {}, observers=[recorder])
        holder["handle"] = handle
        gate.set()
        handle.wait(5)
        assert handle.state is NodeState.CANCELED
    labels = _labels(recorder)
    # the run's terminal event must be the last event of the run
    assert labels[-1] == "Canceled:-", labels


# Review of 2026-12-01: a step that reported before its part's deadline rang lost to it.
def test_a_step_that_reported_before_the_deadline_rang_finishes_its_part_in_time() -> None:
    clock = ManualClock()

    def deadline_passes_meanwhile(progress: StepProgress) -> bool:
        clock.advance(10)  # the deadline's timer rings: a Wake lands in the mailbox
        return True

    recorder = EventRecorder()
    store = MemoryStore(clock=clock)
    strategy = CheckpointStrategy.custom(deadline_passes_meanwhile)
    with ActorSystem("d", store=store, checkpoint=strategy, clock=clock) as system:
        wf = task(lambda ctx: "A", name="a").timeout(5).named("wf")
        handle = system.run(wf, {}, observers=[recorder])
        assert handle.result(5) == "A", _labels(recorder)


class _FailingAppends(MemoryStore):
    """Every append after ``ok`` step appends raises (a disk that broke)."""

    def __init__(self, ok: int) -> None:
        super().__init__()
        self.ok = ok

    def append(self, run_id: str, **fields: Any) -> None:
        if fields["records"]:
            if self.ok <= 0:
                raise PersistenceError("disk broke")
            self.ok -= 1
        super().append(run_id, **fields)


# Review of 2026-12-01: steps whose shared append failed were left Running.
def test_steps_whose_shared_append_fails_end_canceled_never_completed() -> None:
    width = 10
    barrier = threading.Barrier(width, timeout=5)
    recorder = EventRecorder()
    with ActorSystem(
        "f", store=_FailingAppends(ok=0), checkpoint=CheckpointStrategy.AFTER_EACH_STEP
    ) as system:
        wf = parallel(*(task(lambda c: barrier.wait(), name=f"s{i}") for i in range(width)))
        handle = system.run(wf.named("wide"), {}, observers=[recorder])
        handle.wait(5)
        assert handle.state is NodeState.FAILED
        states = {s.step: s.state for s in handle.steps()}
    assert set(states.values()) == {NodeState.CANCELED}, states
    assert not any(isinstance(e, ev.Completed) and e.step for e in recorder.events)
