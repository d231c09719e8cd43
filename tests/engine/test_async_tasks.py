"""Async tasks in real runs: outputs, retries, cancels as CancelledError, refusals, resumes.

Every wait is on an Event or a handle with a deadline; a coroutine that must
be canceled sleeps 30 s, far past the test's timeout, so only a cancel ends it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from runtime import (
    ActorSystem,
    Canceled,
    CheckpointStrategy,
    Fixed,
    MemoryStore,
    NodeState,
    PermanentError,
    RetryPolicy,
    StepTimeout,
    TemporaryError,
    current_step,
    parallel,
    task,
)

pytestmark = pytest.mark.timeout(30)


async def fetch(ctx: dict[str, Any]) -> int:
    await asyncio.sleep(0)
    ctx["fetched"] = current_step().step
    return 20


async def double(ctx: dict[str, Any]) -> int:
    await asyncio.sleep(0)
    return 2 * len(ctx["fetched"])


def test_an_async_task_runs_to_completion_and_its_output_is_the_value_it_returns(
    system: ActorSystem,
) -> None:
    handle = system.run(task(fetch).then(task(lambda ctx: ctx["fetched"])).then(double), {})
    assert handle.result(5) == 10  # 2 * len("fetch"): the context went through a sync step
    assert [s.state for s in handle.steps()] == [NodeState.COMPLETED] * 3


def test_an_async_task_that_raises_is_retried_by_its_policy(system: ActorSystem) -> None:
    calls: list[int] = []

    async def flaky(ctx: Any) -> int:
        calls.append(1)
        await asyncio.sleep(0)
        if len(calls) < 3:
            raise TemporaryError(f"call {len(calls)} failed")
        return len(calls)

    handle = system.run(task(flaky, retry=RetryPolicy(3, Fixed(0))), {})
    assert handle.result(5) == 3
    assert handle.steps()[0].attempts == 3

    async def broken(ctx: Any) -> None:
        await asyncio.sleep(0)
        raise PermanentError("broken for good")

    with pytest.raises(PermanentError, match="broken for good"):
        system.run(task(broken, retry=RetryPolicy(3, Fixed(0))), {}).result(5)


class Sleeper:
    """An async task that sleeps until canceled, and records how it was woken."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.canceled = threading.Event()

    async def __call__(self, ctx: Any) -> str:
        self.entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.canceled.set()
            raise
        return "slept"


def test_canceling_the_run_raises_cancelled_error_inside_the_coroutine(
    system: ActorSystem,
) -> None:
    sleeper = Sleeper()
    handle = system.run(task(sleeper, name="sleeper").then(task(lambda c: "never")), {})
    assert sleeper.entered.wait(5)
    handle.cancel()
    with pytest.raises(Canceled):
        handle.result(5)
    assert sleeper.canceled.wait(5)
    assert [(s.step, s.state) for s in handle.steps()] == [("sleeper", NodeState.CANCELED)]


def test_a_step_timeout_cancels_its_coroutine(system: ActorSystem) -> None:
    sleeper = Sleeper()
    with pytest.raises(StepTimeout):
        system.run(task(sleeper, name="sleeper", timeout=0.2), {}).result(5)
    assert sleeper.canceled.wait(5)


def test_a_failing_sibling_cancels_an_async_branch(system: ActorSystem) -> None:
    sleeper = Sleeper()

    def fails(ctx: Any) -> None:
        assert sleeper.entered.wait(5)
        raise PermanentError("sibling failed")

    handle = system.run(parallel(task(sleeper, name="sleeper"), task(fails)), {})
    with pytest.raises(PermanentError, match="sibling failed"):
        handle.result(5)
    assert sleeper.canceled.wait(5)


def test_a_swallowed_cancel_still_ends_the_run_canceled(system: ActorSystem) -> None:
    entered, swallowed = threading.Event(), threading.Event()

    async def stubborn(ctx: Any) -> str:
        entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            swallowed.set()
        return "swallowed"

    handle = system.run(task(stubborn), {})
    assert entered.wait(5)
    handle.cancel()
    with pytest.raises(Canceled):
        handle.result(5)
    assert swallowed.wait(5)
    assert handle.steps()[0].state is NodeState.CANCELED


def test_a_sync_task_returning_a_coroutine_fails_clearly(system: ActorSystem) -> None:
    def forgot_async(ctx: Any) -> Any:
        return fetch(ctx)  # pytest turns a "never awaited" RuntimeWarning into an error

    with pytest.raises(
        PermanentError, match=r"task \S*forgot_async returned an un-awaited coroutine.*`async def`"
    ):
        system.run(task(forgot_async), {}).result(5)


def test_a_blocking_coroutine_stalls_only_its_own_step(system: ActorSystem) -> None:
    other_ran = threading.Event()

    async def blocks(ctx: Any) -> bool:
        return other_ran.wait(5)  # blocks this node's thread and loop, not the other's

    async def other(ctx: Any) -> str:
        await asyncio.sleep(0)
        other_ran.set()
        return "other"

    assert system.run(parallel(task(blocks), task(other)), {}).result(10) == (True, "other")


def test_a_checkpointed_async_chain_resumes_after_a_failure_without_rerunning_done_steps() -> None:
    ran: list[str] = []
    broken = {"c"}

    def step(name: str) -> Any:
        async def body(ctx: dict[str, Any]) -> str:
            ran.append(name)
            await asyncio.sleep(0)
            if name in broken:
                raise PermanentError(f"{name} is broken")
            ctx[name] = len(ran)
            return name.upper()

        return task(body, name=name)

    wf = step("a").then(step("b")).then(step("c")).then(step("d")).named("async-chain")
    store = MemoryStore()
    with ActorSystem("ck", store=store, checkpoint=CheckpointStrategy.AFTER_EACH_STEP) as system:
        handle = system.run(wf, {})
        with pytest.raises(PermanentError, match="c is broken"):
            handle.result(5)
        broken.clear()
        resumed = system.resume(handle.id, wf)
        assert resumed.result(5) == "D"
    assert ran == ["a", "b", "c", "c", "d"]
    assert [s.resumed for s in resumed.steps()] == [True, True, False, False]
