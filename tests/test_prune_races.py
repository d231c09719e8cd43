"""Retention against a run the same system resumes meanwhile (review)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runtime import ActorSystem, CheckpointStrategy, PermanentError, SQLiteStore, task
from runtime.store import RunSummary, parse_duration

pytestmark = pytest.mark.timeout(30)


class ListHook(SQLiteStore):
    """Runs ``after_list`` once, right after the next ``list()`` (a deterministic race)."""

    after_list: Callable[[], None] | None = None

    def list(self) -> list[RunSummary]:
        rows = super().list()
        hook, self.after_list = self.after_list, None
        if hook is not None:
            hook()
        return rows


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


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("1.5h", 5400.0), (" 7D ", 7 * 86400.0), ("0", 0.0), ("2m", 120.0)],
)
def test_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "-1d", "nan", "inf", "1e400s", "7 days", "5ms", "1w"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
