"""Async tasks: an ``async def`` task runs on an event loop owned by its node actor's thread.

Each node actor creates a loop the first time it runs an async step and keeps
it for the later steps it hosts (a pooled actor is re-bound, its loop stays);
``NodeActor.on_stop`` closes it. Chosen over one loop per system because:

- A blocking call inside a coroutine (``time.sleep``, a sync driver) stalls
  only its own step, as in a sync task; on a shared loop it would stall every
  async step of the system, and the delivery of their cancels and timeouts.
- It adds no thread: the step already holds its node's thread while it runs
  (a shared loop would too, waiting for the coroutine's result), so
  ``max_running_steps`` keeps bounding threads and loops alike. The cost is
  three file descriptors (epoll, self-pipe) per actor that ran an async step.
- ``current_step()`` needs nothing: the step's task copies the node thread's
  context, so a remote step (same ``NodeActor``) behaves the same.
- ``asyncio.run`` per step would create and close a loop each time: ~80 us
  against ~10 us for ``run_until_complete`` on a kept loop (CPython 3.11,
  2 cores), on a step overhead of ~100 us.

Cancellation: the step's ``NotifyingEvent`` gets a hook that cancels the
step's asyncio task through ``call_soon_threadsafe``, so a run cancel, a step
timeout or a canceled scope raises ``asyncio.CancelledError`` at the
coroutine's ``await``. Whatever it then returns, the node ends Canceled (the
sync rule). Tasks the step spawned and left running are canceled when it ends,
so nothing of one step runs during the next step on the same loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from actors._errors import PermanentError
from actors._notify import NotifyingEvent

__all__ = ["StepLoop", "is_async", "not_awaited"]


def is_async(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` gives a coroutine to await: ``async def``, a partial of one,
    or an object whose ``__call__`` is ``async def``."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(type(fn), "__call__", None)  # noqa: B004 - the class's, not the instance's
    return not inspect.isroutine(fn) and call is not None and inspect.iscoroutinefunction(call)


def not_awaited(step: str, fn: Callable[..., Any], value: object) -> PermanentError:
    """The error for a task that returned an awaitable; a coroutine is closed (no warning)."""
    if inspect.iscoroutine(value):
        value.close()  # never started: closing it stops "coroutine ... was never awaited"
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return PermanentError(
        f"step {step!r}: task {name} returned an un-awaited {type(value).__name__} instead of "
        "a value; define the task with `async def` or await inside it"
    )


class StepLoop:
    """One node actor's event loop, created on first use (call it only from that thread)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    def run(self, coro: Coroutine[Any, Any, Any], cancel: NotifyingEvent) -> Any:
        """Run ``coro`` to its end; ``cancel`` being set raises CancelledError inside it."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        loop = self._loop
        main = loop.create_task(coro)  # copies this thread's context: current_step() works

        def deliver() -> None:  # on the thread that set ``cancel``
            with contextlib.suppress(RuntimeError):  # loop closed: the step is long over
                loop.call_soon_threadsafe(main.cancel, "step canceled")

        remove = cancel.add_hook(deliver)
        try:
            return loop.run_until_complete(main)
        finally:
            remove()
            _cancel_left_over(loop)

    def close(self) -> None:
        """Cancel what is left, finish async generators and the default executor, close."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            _cancel_left_over(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


def _cancel_left_over(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks a step left running and wait for them (as ``asyncio.run`` does)."""
    left = [t for t in asyncio.all_tasks(loop) if not t.done()]
    if not left:
        return
    for t in left:
        t.cancel()
    loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
