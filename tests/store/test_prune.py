"""Retention: prune forgets finished runs past a cut-off, never one that someone holds.

Not even one that the same system resumes while prune runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runtime import (
    ActorSystem,
    Canceled,
    CheckpointStrategy,
    ManualClock,
    MemoryStore,
    PermanentError,
    SQLiteStore,
    task,
)
from runtime.store import (
    Checkpoint,
    RunHeader,
    RunSummary,
    encode_value,
    parse_duration,
    prune_runs,
)
from tests.support import EventRecorder, actorflow

pytestmark = pytest.mark.timeout(30)
HOUR = 3600.0


def ok(ctx: Any) -> str:
    return "ok"


def broken(ctx: Any) -> None:
    raise PermanentError("broken")


def three_finished_runs(system: ActorSystem, recorder: EventRecorder) -> dict[str, str]:
    """One Completed, one Failed and one Canceled run, all checkpointed; state -> run id."""
    done = system.run(task(ok), {})
    done.result(5)
    failed = system.run(task(broken), {})
    with pytest.raises(PermanentError):
        failed.result(5)
    release = threading.Event()
    blocked = system.run(task(lambda ctx: release.wait(10), name="block"), {}, observers=[recorder])
    recorder.wait_for(lambda e: getattr(e, "step", None) == "block")
    blocked.cancel()
    with pytest.raises(Canceled):
        blocked.result(5)
    release.set()
    return {"Completed": done.id, "Failed": failed.id, "Canceled": blocked.id}


def test_prune_forgets_old_completed_and_canceled_runs_and_keeps_failed_ones(
    clock: ManualClock, recorder: EventRecorder
) -> None:
    store = MemoryStore(clock=clock)
    with ActorSystem(
        "prune", clock=clock, store=store, checkpoint=CheckpointStrategy.AFTER_EACH_STEP
    ) as system:
        ids = three_finished_runs(system, recorder)
        assert system.prune(HOUR) == []  # nothing is an hour old yet
        clock.advance(2 * HOUR)
        finished = {ids["Completed"], ids["Canceled"]}  # same time on this clock: any order
        assert set(system.prune(HOUR, dry_run=True)) == finished
        assert {r.run_id for r in system.runs()} == set(ids.values())  # dry run kept all
        assert set(system.prune(HOUR)) == finished
        assert [r.run_id for r in store.list()] == [ids["Failed"]]
        assert system.prune(HOUR, states=["Failed"]) == [ids["Failed"]]
        assert store.list() == []


def test_a_run_that_someone_holds_is_never_pruned(clock: ManualClock) -> None:
    store = MemoryStore(clock=clock)
    with ActorSystem(
        "held", clock=clock, store=store, checkpoint=CheckpointStrategy.AFTER_EACH_STEP
    ) as system:
        handle = system.run(task(ok), {})
        handle.result(5)
        clock.advance(2 * HOUR)
        store.claim(handle.id, owner="a resumer elsewhere", lease=60)  # e.g. resuming it now
        assert system.prune(HOUR) == []
        assert [r.run_id for r in store.list()] == [handle.id]
        clock.advance(61)  # its lease ran out and nobody renewed it
        assert system.prune(HOUR) == [handle.id]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"older_than": -1}, "older_than"),
        ({"older_than": HOUR, "states": ["Running"]}, "finished runs only"),
        ({"older_than": HOUR, "states": "Completed"}, "states"),
        ({"older_than": HOUR, "states": []}, "states"),
    ],
)
def test_bad_prune_arguments_are_refused_naming_them(kwargs: dict[str, Any], message: str) -> None:
    with (
        ActorSystem("bad", store=MemoryStore()) as system,
        pytest.raises(ValueError, match=message),
    ):
        system.prune(**kwargs)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("45s", 45.0), ("30m", 1800.0), ("12h", 43200.0), ("7d", 604800.0), ("0", 0)],
)
def test_durations_with_or_without_a_unit_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "7w", "-1h", "inf", "nan", "1e999s"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("1.5h", 5400.0), (" 7D ", 7 * 86400.0), ("0", 0.0), ("2m", 120.0)],
)
def test_fractions_spaces_and_upper_case_units_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "-1d", "nan", "inf", "1e400s", "7 days", "5ms", "1w"])
def test_bad_durations_are_refused_as_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_the_prune_command_lists_then_prunes_runs_of_a_real_database(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with (
        SQLiteStore(db) as store,
        ActorSystem("cli", store=store, checkpoint=CheckpointStrategy.AFTER_EACH_STEP) as s,
    ):
        done = s.run(task(ok), {})
        done.result(5)
    listed = actorflow("prune", "--db", str(db), "--older-than", "0", "--dry-run")
    assert listed.returncode == 0, listed.stderr
    assert "would prune 1 run(s)" in listed.stdout and done.id in listed.stdout
    pruned = actorflow("prune", "--db", str(db), "--older-than", "0s")
    assert pruned.returncode == 0, pruned.stderr
    assert f"pruned 1 run(s) from {db}" in pruned.stdout
    assert "no runs recorded" in actorflow("runs", "--db", str(db)).stdout
    bad = actorflow("prune", "--db", str(db), "--older-than", "soon")
    assert bad.returncode == 2
    assert "not a duration: 'soon'" in bad.stderr


class ListHook(SQLiteStore):
    """Runs ``after_list`` once, right after the next ``list()`` (a deterministic race)."""

    after_list: Callable[[], None] | None = None

    def list(self) -> list[RunSummary]:
        rows = super().list()
        hook, self.after_list = self.after_list, None
        if hook is not None:
            hook()
        return rows


# Regression (review 2026-11-27, 9cf2573): prune fenced off a run resumed meanwhile.
def test_prune_never_takes_a_failed_run_the_same_system_resumes_meanwhile(
    tmp_path: Path,
) -> None:
    """system.prune claims as the system's own owner id, so its claim passes over the live
    lease of a run this very system resumed since prune listed it; it then gives the run's
    lease back and the resumed run is fenced off (StaleEpoch) at its next write."""
    gate = threading.Event()
    attempts: list[int] = []

    def second(ctx: Any) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise PermanentError("down")
        gate.wait(10)
        return "done"

    wf = task(lambda ctx: 1, name="first").then(task(second, name="second")).named("flow")
    store = ListHook(tmp_path / "state.db")
    with ActorSystem(
        "prune-race",
        store=store,
        checkpoint=CheckpointStrategy.AFTER_EACH_STEP,
        workflows=[wf],
    ) as system:
        failed = system.run(wf, {})
        with pytest.raises(PermanentError):
            failed.result(5)
        resumed: list[Any] = []
        store.after_list = lambda: resumed.append(system.resume(failed.id))
        pruned = system.prune(0, states=["Failed"])
        gate.set()
        try:
            output = resumed[0].result(5)
        except Exception as exc:
            print("resumed run:", type(exc).__name__, exc)
            raise
        assert pruned == []
        assert output == "done"


class LoadHook(SQLiteStore):
    """Runs ``after_load`` once, right after the next ``load()``: prune loads a candidate
    between its claim and its delete, so the hook lands exactly in that window."""

    after_load: Callable[[], None] | None = None

    def load(self, run_id: str) -> Checkpoint:
        loaded = super().load(run_id)
        hook, self.after_load = self.after_load, None
        if hook is not None:
            hook()
        return loaded


def test_a_forced_resume_between_prunes_claim_and_delete_keeps_the_run(tmp_path: Path) -> None:
    """Two stores on one file: prune's delete is fenced by the epoch it claimed."""
    db = tmp_path / "state.db"
    with SQLiteStore(db) as resumer, LoadHook(db) as pruner:
        epoch = resumer.claim("run-1", owner="first", lease=30)
        resumer.start(
            RunHeader("run-1", "etl", "fp", encode_value({}, what="ctx"), 1.0),
            epoch=epoch,
            state="Failed",
            updated_at=1.0,
        )
        resumer.release("run-1", epoch=epoch)
        taken: list[int] = []
        pruner.after_load = lambda: taken.append(
            resumer.claim("run-1", owner="resumer", lease=30, force=True)
        )
        assert prune_runs(pruner, older_than=0, now=10.0, owner="pruner", states=["Failed"]) == []
        [summary] = pruner.list()
        assert (summary.run_id, summary.owner, summary.epoch) == ("run-1", "resumer", taken[0])
        resumer.append(
            "run-1", epoch=taken[0], records=[], state="Running", updated_at=11.0
        )  # the resumed run goes on
        assert pruner.load("run-1").state == "Running"
