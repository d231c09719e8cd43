"""Retry policies: each backoff, timing, retry_on, and timers that never block a mailbox."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from runtime import (
    ActorSystem,
    Custom,
    Exponential,
    Fixed,
    ManualClock,
    NodeState,
    PermanentError,
    RetryPolicy,
    TemporaryError,
    parallel,
    task,
)
from runtime import events as ev
from tests.support import EventRecorder, gate

pytestmark = pytest.mark.timeout(30)


def failing(times: int, error: type[Exception] = TemporaryError) -> Any:
    """A task that raises ``error`` on its first ``times`` calls, then returns the call count."""
    calls = {"n": 0}

    def flaky(ctx: Any) -> int:
        calls["n"] += 1
        if calls["n"] <= times:
            raise error(f"failure {calls['n']}")
        return calls["n"]

    return flaky


def test_fixed_backoff_waits_the_same_delay_before_every_attempt() -> None:
    assert [Fixed(0.25).delay(n) for n in (1, 2, 3)] == [0.25, 0.25, 0.25]


def test_exponential_backoff_doubles_up_to_its_cap() -> None:
    backoff = Exponential(initial=1, multiplier=2, max=30)
    assert [backoff.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_exponential_jitter_stays_within_its_fraction_and_is_reproducible() -> None:
    a = Exponential(initial=10, multiplier=1, max=10, jitter=0.5, rng=random.Random(7))
    b = Exponential(initial=10, multiplier=1, max=10, jitter=0.5, rng=random.Random(7))
    delays = [a.delay(1) for _ in range(200)]
    assert all(5.0 <= d <= 10.0 for d in delays)
    assert len(set(delays)) > 100
    assert delays == [b.delay(1) for _ in range(200)]


def test_custom_backoff_uses_the_function_and_rejects_negative_results() -> None:
    backoff = Custom(lambda attempt: attempt * 0.5)
    assert backoff.delay(3) == 1.5
    with pytest.raises(ValueError, match="attempt 2"):
        Custom(lambda attempt: -1.0).delay(2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be an int >= 1, got 0"),
        ({"backoff": 5}, "backoff must have a delay"),
        ({"retry_on": ("nope",)}, "retry_on must hold exception types"),
    ],
)
def test_bad_policy_arguments_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize(
    ("backoff", "expected_wait"),
    [
        (Fixed(0.1), 0.2),
        (Exponential(initial=0.05, multiplier=2, max=1), 0.15),
        (Custom(lambda attempt: 0.1 * attempt), 0.3),
    ],
    ids=["fixed", "exponential", "custom"],
)
def test_each_backoff_waits_about_its_delays_on_the_real_clock(
    system: ActorSystem, backoff: Any, expected_wait: float
) -> None:
    started = time.monotonic()
    handle = system.run(task(failing(2)).retry(RetryPolicy(3, backoff)), {})
    assert handle.result(10) == 3
    elapsed = time.monotonic() - started
    assert expected_wait <= elapsed < expected_wait + 1.5  # generous upper bound: loaded CI
    assert handle.steps()[0].attempts == 3


def test_retry_exhausted_fails_with_the_last_error(system: ActorSystem) -> None:
    handle = system.run(task(failing(5)).retry(RetryPolicy(3, Fixed(0))), {})
    with pytest.raises(TemporaryError, match="failure 3"):
        handle.result(5)
    step = handle.steps()[0]
    assert (step.state, step.attempts) == (NodeState.FAILED, 3)


def test_retry_on_refuses_a_permanent_error(system: ActorSystem) -> None:
    handle = system.run(task(failing(1, PermanentError)).retry(RetryPolicy(5, Fixed(0))), {})
    with pytest.raises(PermanentError):
        handle.result(5)
    assert handle.steps()[0].attempts == 1


def test_retry_on_accepts_a_predicate(system: ActorSystem) -> None:
    policy = RetryPolicy(3, Fixed(0), retry_on=lambda e: isinstance(e, ValueError))
    assert system.run(task(failing(2, ValueError)).retry(policy), {}).result(5) == 3


def test_exponential_backoff_is_timed_by_the_injected_clock(
    manual_system: ActorSystem, clock: ManualClock
) -> None:
    policy = RetryPolicy(4, Exponential(initial=1, multiplier=2, max=30))
    handle = manual_system.run(task(failing(3)).retry(policy), {})
    for expected in (1.0, 2.0, 4.0):
        clock.wait_for_timers(1)
        assert clock.next_delay() == expected
        assert not handle.done()
        clock.advance(expected)
    assert handle.result(5) == 4


def test_while_one_step_backs_off_the_others_progress(
    manual_system: ActorSystem, clock: ManualClock, recorder: EventRecorder
) -> None:
    slow_retry = task(failing(1), name="flaky").retry(RetryPolicy(2, Fixed(3600)))
    other = task(lambda ctx: "other done", name="other")
    handle = manual_system.run(parallel(slow_retry, other), {}, observers=[recorder])
    recorder.wait_for(lambda e: isinstance(e, ev.Completed) and e.step == "other")
    clock.wait_for_timers(1)
    assert not handle.done()  # still backing off, an hour to go, and nothing is stuck
    clock.advance(3600)
    assert handle.result(5) == (2, "other done")


def test_retry_of_a_composite_reruns_the_whole_sub_workflow(system: ActorSystem) -> None:
    calls: list[str] = []

    def first(ctx: Any) -> None:
        calls.append("first")

    flaky = failing(1)

    def second(ctx: Any) -> int:
        calls.append("second")
        return flaky(ctx)

    handle = system.run(task(first).then(task(second)).retry(RetryPolicy(2, Fixed(0))), {})
    assert handle.result(5) == 2
    assert calls == ["first", "second", "first", "second"]


def test_a_step_under_a_composite_retry_says_final_only_when_nothing_will_retry(
    system: ActorSystem, recorder: EventRecorder
) -> None:
    """Inside ``(a.then(b)).retry(2 attempts)`` b's first failure is not final; its last is.

    A PermanentError is refused by the outer policy, so it is final at once.
    """
    flaky = failing(5)
    wf = task(lambda ctx: None, name="a").then(task(flaky, name="b"))
    handle = system.run(wf.retry(RetryPolicy(2, Fixed(0))), {}, observers=[recorder])
    with pytest.raises(TemporaryError):
        handle.result(5)
    finals = [e.final for e in recorder.events if isinstance(e, ev.Failed) and e.step == "b"]
    assert finals == [False, True]

    permanent = EventRecorder()
    wf = task(failing(1, PermanentError), name="p").then(task(lambda ctx: None, name="q"))
    handle = system.run(wf.retry(RetryPolicy(3, Fixed(0))), {}, observers=[permanent])
    with pytest.raises(PermanentError):
        handle.result(5)
    steps = [(e.step, e.final) for e in permanent.events if isinstance(e, ev.Failed) and e.step]
    assert steps == [("p", True)]


def fails_first(name: str, calls: dict[str, int]) -> Any:
    def step(ctx: Any) -> str:
        calls[name] = calls.get(name, 0) + 1
        if calls[name] == 1:
            raise TemporaryError(f"{name} fails once")
        return name

    return task(step, name=name)


# Regression (review 2026-11-27, fe11a14): the outer retry reused the canceled node and hung.
def test_an_outer_retry_reruns_a_step_that_was_canceled_while_backing_off(
    system: ActorSystem, recorder: EventRecorder
) -> None:
    # b fails and waits an hour for its retry; a's failure cancels b; the outer retry
    # must run b again on a fresh node (it used to reuse the canceled one and hang).
    calls: dict[str, int] = {}
    inner_b = fails_first("b", calls).retry(RetryPolicy(3, Fixed(3600)))
    release, blocked = gate()

    def a(ctx: Any) -> str:
        calls["a"] = calls.get("a", 0) + 1
        if calls["a"] == 1:
            blocked(ctx)  # fail only after b is backing off
            raise TemporaryError("a fails once")
        return "a"

    wf = task(a).parallel(inner_b).retry(RetryPolicy(2, Fixed(0.01)))
    handle = system.run(wf, {}, observers=[recorder])
    recorder.wait_for(lambda e: isinstance(e, ev.Retrying) and e.step == "b")
    release.set()
    assert handle.result(10) == ("a", "b")
    assert calls == {"a": 2, "b": 2}
