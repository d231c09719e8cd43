"""Events and observers: exact sequences, monitored scopes, raising observers, final events."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from runtime import (
    ActorSystem,
    Fixed,
    LoggingObserver,
    PermanentError,
    RetryPolicy,
    TemporaryError,
    parallel,
    task,
)
from runtime import events as ev
from tests.support import EventRecorder

pytestmark = pytest.mark.timeout(30)


def test_observers_see_the_exact_event_sequence_of_a_run_with_one_retry(
    system: ActorSystem, recorder: EventRecorder
) -> None:
    calls = {"n": 0}

    def flaky(ctx: Any) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise TemporaryError("transient")
        return "ok"

    wf = task(flaky).retry(RetryPolicy(2, Fixed(0.01))).monitored(recorder)
    assert system.run(wf, {}).result(5) == "ok"
    assert recorder.names() == [
        "Started:-",
        "Planned:-",
        "StateChanged:flaky:Pending>Running",
        "Started:flaky",
        "StateChanged:flaky:Running>Failed",
        "Failed:flaky",
        "Retrying:flaky",
        "StateChanged:flaky:Failed>Running",
        "Started:flaky",
        "StateChanged:flaky:Running>Completed",
        "Completed:flaky",
        "Completed:-",
    ]
    failed = next(e for e in recorder.events if isinstance(e, ev.Failed))
    retrying = next(e for e in recorder.events if isinstance(e, ev.Retrying))
    assert (failed.final, failed.attempts, str(failed.error)) == (False, 1, "transient")
    assert (retrying.attempt, retrying.delay) == (2, 0.01)


def test_monitored_observers_see_only_their_own_steps(
    system: ActorSystem, recorder: EventRecorder
) -> None:
    wf = task(lambda c: 1, name="outside").then(
        task(lambda c: 2, name="inside").monitored(recorder)
    )
    system.run(wf, {}).result(5)
    steps = {getattr(e, "step", None) for e in recorder.events}
    assert steps == {None, "inside"}


def test_system_wide_subscribers_see_every_run(
    system: ActorSystem, recorder: EventRecorder
) -> None:
    system.events.subscribe(recorder)
    first = system.run(task(lambda c: 1), {})
    second = system.run(task(lambda c: 2), {})
    first.result(5), second.result(5)
    completed = {
        e.run_id for e in recorder.events if isinstance(e, ev.Completed) and e.step is None
    }
    assert completed == {first.id, second.id}


def test_a_raising_observer_is_logged_and_never_breaks_a_run(
    system: ActorSystem, recorder: EventRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def on_event(self, event: ev.Event) -> None:
            raise RuntimeError("observer bug")

    wf = task(lambda c: "fine").monitored(Broken(), recorder)
    with caplog.at_level(logging.ERROR):
        assert system.run(wf, {}).result(5) == "fine"
    assert any("observer bug" in r.getMessage() or r.exc_info for r in caplog.records)
    assert recorder.names()[-1] == "Completed:-"  # the next observer still got everything


def test_logging_observer_writes_failures_at_warning(
    system: ActorSystem, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(ctx: Any) -> None:
        raise ValueError("bad row")

    with caplog.at_level(logging.INFO, logger="actorflow.events"):
        handle = system.run(task(broken), {}, observers=[LoggingObserver()])
        with pytest.raises(ValueError, match="bad row"):
            handle.result(5)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "bad row" in warnings[0].getMessage()
    assert any("Pending -> Running" in r.getMessage() for r in caplog.records)


# Regression (review 2026-11-27, 021ec94 as xfail, fixed in 9558454).
def test_a_non_final_failure_whose_outer_retry_is_canceled_gets_a_terminal_event() -> None:
    """``parallel((a.then(b)).retry(...), c)``: a fails (not final: the outer retry will
    rerun it after 30 s), then c fails and cancels the branch during that backoff. An
    observer of step a must not be left with only ``Failed(final=False)``."""
    recorder = EventRecorder()

    def a(ctx: Any) -> None:
        raise TemporaryError("a broke")

    def c(ctx: Any) -> None:
        recorder.wait_for(lambda e: isinstance(e, ev.Failed) and e.step == "a", timeout=10)
        raise PermanentError("c broke")

    retried = task(a).then(task(lambda ctx: None, name="b")).retry(RetryPolicy(3, Fixed(30)))
    with ActorSystem("final") as system:
        handle = system.run(parallel(retried, task(c)), {}, observers=[recorder])
        with pytest.raises(PermanentError):
            handle.result(timeout=10)
    about_a = [
        (type(e).__name__, getattr(e, "final", None))
        for e in recorder.events
        if getattr(e, "step", None) == "a"
    ]
    assert about_a[-1] in {("Failed", True), ("Canceled", None)}, about_a


# Regression (review 2026-11-27, fe11a14): an observer's SystemExit stopped the event bus.
def test_an_observer_raising_system_exit_does_not_stop_the_event_bus(
    system: ActorSystem,
) -> None:
    class Exits:
        def on_event(self, event: ev.Event) -> None:
            raise SystemExit("observer bug")

    assert system.run(task(lambda c: 1), {}, observers=[Exits()]).result(5) == 1
    assert system.run(task(lambda c: 2), {}).result(5) == 2
