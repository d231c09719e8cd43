"""A node actor running async tasks: the loop it keeps, cancels as CancelledError, refusals.

These drive one ``NodeActor`` directly (a real pykka thread), so the node's
own final state is visible: a run's coordinator drops a canceled step's late
report, so at the run level only the run's state would show.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import queue
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pykka
import pytest

from actors import NodeActor, NodeState, NotifyingEvent, PermanentError, RealClock, Start
from actors import StepResult as Result
from actors._async import is_async
from actors._node import Assign

pytestmark = pytest.mark.timeout(30)


class Node:
    """One node actor hosting ``fn``, and the results it reports."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn
        self.results: queue.Queue[Result] = queue.Queue()
        self.cancel = NotifyingEvent()
        self.ref: pykka.ActorRef[NodeActor] = NodeActor.start(
            "step",
            fn,
            run_id="run-1",
            clock=RealClock(),
            emit=lambda event: None,
            report=self.results.put,
            cancel_event=self.cancel,
        )

    def rebind(self) -> None:
        """Host the next step, as the pool re-binds a node actor."""
        self.cancel = NotifyingEvent()
        self.ref.tell(
            Assign("next", self.fn, "run-2", lambda event: None, self.results.put, self.cancel)
        )

    def run(self, ctx: Any = None) -> Result:
        self.ref.tell(Start(ctx))
        return self.results.get(timeout=10)


@pytest.fixture
def nodes() -> Iterator[Callable[[Callable[[Any], Any]], Node]]:
    started: list[Node] = []

    def make(fn: Callable[[Any], Any]) -> Node:
        node = Node(fn)
        started.append(node)
        return node

    yield make
    for node in started:
        node.cancel.set()
        node.ref.stop(timeout=10)


def test_a_coroutine_that_swallows_the_cancel_and_returns_still_ends_canceled(
    nodes: Callable[[Callable[[Any], Any]], Node],
) -> None:
    entered = threading.Event()

    async def stubborn(ctx: Any) -> str:
        entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return "swallowed"
        return "slept"

    node = nodes(stubborn)
    node.ref.tell(Start(None))
    assert entered.wait(5)
    node.cancel.set()
    result = node.results.get(timeout=5)
    assert (result.state, result.output) == (NodeState.CANCELED, "swallowed")


def test_a_cancel_before_the_coroutine_starts_never_runs_it(
    nodes: Callable[[Callable[[Any], Any]], Node],
) -> None:
    ran: list[str] = []

    async def never(ctx: Any) -> None:
        ran.append("ran")

    node = nodes(never)
    node.cancel.set()
    assert node.run().state is NodeState.CANCELED
    assert ran == []


def test_steps_on_one_node_actor_share_its_loop_and_leftover_tasks_are_canceled(
    nodes: Callable[[Callable[[Any], Any]], Node],
) -> None:
    loops: list[asyncio.AbstractEventLoop] = []
    background_canceled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            background_canceled.set()
            raise

    async def spawns(ctx: Any) -> int:
        loops.append(asyncio.get_running_loop())
        if len(loops) == 1:
            asyncio.get_running_loop().create_task(forever())  # left running on purpose
        return len(loops)

    node = nodes(spawns)
    first = node.run()
    assert (first.state, first.output) == (NodeState.COMPLETED, 1)
    assert background_canceled.is_set()  # before the step reported, not during the next one
    node.rebind()  # as the pool does for the next step of a chain
    assert node.run().output == 2
    assert loops[0] is loops[1]
    assert not loops[0].is_closed()
    node.ref.stop(timeout=10)
    assert loops[0].is_closed()


def test_a_sync_task_returning_a_coroutine_fails_naming_it_and_the_coroutine_is_closed(
    nodes: Callable[[Callable[[Any], Any]], Node],
) -> None:
    made: list[Coroutine[Any, Any, Any]] = []

    async def fetch(ctx: Any) -> int:
        return 1

    def forgot(ctx: Any) -> Any:
        made.append(fetch(ctx))
        return made[-1]

    result = nodes(forgot).run()
    assert result.state is NodeState.FAILED
    assert isinstance(result.error, PermanentError)
    message = str(result.error)
    assert "step 'step'" in message
    assert "forgot" in message
    assert "async def" in message
    assert inspect.getcoroutinestate(made[0]) == inspect.CORO_CLOSED  # so no RuntimeWarning


def test_an_async_task_returning_an_unawaited_coroutine_is_refused_too(
    nodes: Callable[[Callable[[Any], Any]], Node],
) -> None:
    async def inner() -> int:
        return 1

    async def outer(ctx: Any) -> Any:
        return inner()

    result = nodes(outer).run()
    assert isinstance(result.error, PermanentError)
    assert "outer" in str(result.error)


class AsyncCallable:
    async def __call__(self, ctx: Any) -> str:
        await asyncio.sleep(0)
        return "called"


async def _add(n: int, ctx: Any) -> int:
    await asyncio.sleep(0)
    return n + 1


def test_partials_and_objects_with_an_async_call_are_async_tasks(
    nodes: Callable[[Callable[[Any], Any]], Node],
) -> None:
    assert is_async(AsyncCallable()) and is_async(functools.partial(_add, 1))
    assert not is_async(lambda ctx: None) and not is_async(AsyncCallable)
    assert nodes(AsyncCallable()).run().output == "called"
    assert nodes(functools.partial(_add, 41)).run().output == 42


def test_system_exit_in_a_coroutine_fails_the_step_and_the_loop_keeps_serving(
    nodes: Callable[[Callable[[Any], Any]], Node],
) -> None:
    calls: list[int] = []

    async def exits_once(ctx: Any) -> str:
        calls.append(1)
        await asyncio.sleep(0)
        if len(calls) == 1:
            raise SystemExit(3)
        return "second"

    node = nodes(exits_once)
    failed = node.run()
    assert failed.state is NodeState.FAILED
    assert isinstance(failed.error, PermanentError)
    assert isinstance(failed.error.__cause__, SystemExit)
    assert node.run().output == "second"


def test_a_notifying_event_runs_its_hooks_once_and_at_once_when_already_set() -> None:
    event = NotifyingEvent()
    calls: list[str] = []
    event.add_hook(lambda: calls.append("a"))
    remove = event.add_hook(lambda: calls.append("removed"))
    remove()
    event.set()
    event.set()
    event.add_hook(lambda: calls.append("late"))
    assert calls == ["a", "late"]
    assert event.is_set() and event.wait(0)
