"""RunRecorder: each checkpoint appends only what is new, the header once, the output once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from actors import ManualClock, NodeState, PermanentError, PersistenceError
from runtime.store import (
    MemoryStore,
    Outcome,
    RunHeader,
    RunRecorder,
    StepRecord,
    encode_value,
    register_persistable,
    stored_output,
)
from runtime.store._recorder import run_outcome
from runtime.workflow import CheckpointStrategy, StepProgress

AFTER_EACH = CheckpointStrategy.AFTER_EACH_STEP


class SpyStore(MemoryStore):
    """A MemoryStore that notes every write: ``("start", 0)`` or ``("append", records)``."""

    def __init__(self) -> None:
        super().__init__(clock=ManualClock())
        self.writes: list[tuple[str, int]] = []

    def start(self, header: RunHeader, *, epoch: int, state: str, updated_at: float) -> None:
        self.writes.append(("start", 0))
        super().start(header, epoch=epoch, state=state, updated_at=updated_at)

    def append(self, run_id: str, *, records: Sequence[StepRecord], **kwargs: Any) -> None:
        self.writes.append(("append", len(records)))
        super().append(run_id, records=records, **kwargs)


def recorder(
    store: SpyStore,
    *,
    strategy: CheckpointStrategy = AFTER_EACH,
    records: Mapping[str, StepRecord] | None = None,
    settings: Mapping[str, str] | None = None,
    fingerprint: str = "fp",
) -> RunRecorder:
    epoch = store.claim("run-1", owner="me", lease=30)
    return RunRecorder(
        store,
        run_id="run-1",
        workflow="flow",
        fingerprint=fingerprint,
        epoch=epoch,
        strategy=strategy,
        clock=ManualClock(),
        initial_context=RunRecorder.encode_context("run-1", {"start": True}),
        created_at=5.0,
        records=records,
        settings=settings,
    )


def complete(rec: RunRecorder, key: str, output: Any, ctx: Any = None) -> bool:
    return rec.step_completed(
        key, output=output, ctx=ctx or {}, attempts=1, started_at=1.0, finished_at=2.0
    )


def test_every_checkpoint_of_a_long_run_appends_only_its_new_record() -> None:
    store = SpyStore()
    rec = recorder(store, settings={"lease": "30"})
    rec.start()
    for index in range(2000):
        assert complete(rec, f"s{index}", index)
    rec.finish(NodeState.COMPLETED, 1999)
    assert store.writes == [("start", 0)] + [("append", 1)] * 2000 + [("append", 0)]
    loaded = store.load("run-1")
    assert (len(loaded.steps), loaded.settings, loaded.created_at) == (2000, {"lease": "30"}, 5.0)
    assert loaded.outcome == Outcome(output_step="s1999")
    assert stored_output(loaded) == 1999


def test_records_not_yet_due_are_appended_together_with_the_next_write() -> None:
    store = SpyStore()
    never = CheckpointStrategy.custom(lambda progress: False)
    rec = recorder(store, strategy=never)
    rec.start()
    assert not complete(rec, "a", 1)
    assert not complete(rec, "b", 2)
    rec.step_failed("c", error=PermanentError("x"), attempts=2, started_at=1.0, finished_at=2.0)
    assert store.writes == [("start", 0), ("append", 3)]
    assert list(store.load("run-1").steps) == ["a", "b", "c"]


def test_the_strategy_sees_the_number_of_completed_steps() -> None:
    seen: list[int] = []

    def note(progress: StepProgress) -> bool:
        seen.append(progress.completed_steps)
        return False

    records = {"a": StepRecord("a", "Completed", 1, b"\x92\x01\x80", None, None, None)}
    rec = recorder(SpyStore(), strategy=CheckpointStrategy.custom(note), records=records)
    complete(rec, "b", 2)
    complete(rec, "b", 2)  # the same step again counts once
    complete(rec, "c", 3)
    assert seen == [2, 2, 3]


def test_a_resume_appends_its_state_and_writes_the_header_only_when_asked() -> None:
    store = SpyStore()
    first = recorder(store, settings={"k": "v"})
    first.start()
    complete(first, "a", 1)
    first.finish(NodeState.FAILED, error=PermanentError("down"))
    recorded = dict(store.load("run-1").steps)

    resumed = recorder(store, records=recorded)
    resumed.start()
    assert store.writes[-1] == ("append", 0)
    loaded = store.load("run-1")
    assert (loaded.state, loaded.outcome, loaded.settings) == ("Running", None, {"k": "v"})

    rewritten = recorder(store, records=recorded, fingerprint="fp-2", settings={"k": "v"})
    rewritten.rewrite_header = True  # the run now follows a changed workflow
    rewritten.start()
    assert store.writes[-1] == ("start", 0)
    loaded = store.load("run-1")
    assert (loaded.fingerprint, loaded.steps, loaded.state) == ("fp-2", recorded, "Running")


@dataclass
class Box:
    items: list[int]


register_persistable(Box)


def last(key: str, output: Any) -> tuple[str, bytes]:
    return key, encode_value([output, {"ctx": 1}], what="record")


@pytest.mark.parametrize(
    "output",
    [None, 0, "text", b"\x00" * 100, [1, (2, 3)], {"k": [1.5, None]}, Box([1, 2]), (Box([]),)],
)
def test_an_output_equal_to_the_last_recorded_one_refers_to_its_step(output: Any) -> None:
    assert run_outcome("r", NodeState.COMPLETED, output, None, last("s", output)) == Outcome(
        output_step="s"
    )


def test_any_other_output_is_stored_once_as_encoded_bytes() -> None:
    items = [1, 2]
    key_and_record = last("s", items)
    items.append(3)  # the same object, changed since its step was recorded
    assert run_outcome("r", NodeState.COMPLETED, items, None, key_and_record) == Outcome(
        output=encode_value([1, 2, 3], what="output")
    )
    for output, previous in [([1], [1, 2]), (1, "1"), ((1, 2), [1, 2]), ({}, None)]:
        outcome = run_outcome("r", NodeState.COMPLETED, output, None, last("s", previous))
        assert outcome == Outcome(output=encode_value(output, what="output"))
    assert run_outcome("r", NodeState.COMPLETED, 1, None, None) == Outcome(
        output=encode_value(1, what="output")
    )


def test_failed_canceled_and_unencodable_outcomes() -> None:
    assert run_outcome("r", NodeState.FAILED, None, PermanentError("down")) == Outcome(
        error="runtime.PermanentError: down"
    )
    assert run_outcome("r", NodeState.CANCELED, None, None) is None
    unrecorded = run_outcome("r", NodeState.COMPLETED, object(), None)
    assert unrecorded is not None and unrecorded.output is None
    assert "cannot encode output" in (unrecorded.unrecorded or "")


def test_a_run_whose_last_step_failed_after_completing_stores_its_output_itself() -> None:
    store = SpyStore()
    rec = recorder(store)
    rec.start()
    complete(rec, "a", "out")
    rec.step_failed("a", error=PermanentError("x"), attempts=2, started_at=1.0, finished_at=2.0)
    rec.finish(NodeState.COMPLETED, "out")
    loaded = store.load("run-1")
    assert loaded.outcome == Outcome(output=encode_value("out", what="output"))
    assert stored_output(loaded) == "out"


def test_stored_output_explains_a_dangling_step_reference() -> None:
    store = SpyStore()
    rec = recorder(store)
    rec.start()
    complete(rec, "a", "out")
    rec.finish(NodeState.COMPLETED, "out")
    loaded = store.load("run-1")
    broken = type(loaded)(**{**loaded.__dict__, "steps": {}})
    with pytest.raises(PersistenceError, match=r"recorded as step 'a'.*no completed record"):
        stored_output(broken)
