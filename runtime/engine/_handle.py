"""RunHandle: the caller's view of one run (id, state, steps, result, cancel).

From asyncio code, ``await handle`` (or ``await handle.result_async(timeout)``)
waits without blocking the loop: the handle's completion resolves a future of
that loop through ``call_soon_threadsafe``, so no executor thread is held per
waiting coroutine.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from actors import NodeState, NotifyingEvent, ResultTimeout

__all__ = ["RunHandle", "StepLog", "StepReport"]

Out = TypeVar("Out")


@dataclass(frozen=True)
class StepReport:
    """What happened to one step: final state, attempts, timings, last error."""

    step: str
    state: NodeState
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    error: BaseException | None = None
    skipped: bool = False
    node: str = ""
    resumed: bool = False  # completed before a resume: recorded output reused, not rerun

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


class StepLog:
    """Thread-safe record of a run's steps: written by its coordinator, read by anyone."""

    def __init__(self, node: str = "") -> None:
        self._node = node
        self._lock = threading.Lock()
        self._reports: dict[str, StepReport] = {}

    def update(self, step: str, **changes: Any) -> StepReport:
        with self._lock:
            old = self._reports.get(step)
            if old is None:
                new = StepReport(
                    **{"step": step, "state": NodeState.PENDING, "node": self._node, **changes}
                )
            else:  # dataclasses.replace at half the cost (twice a step)
                new = StepReport(**{**old.__dict__, **changes})
            self._reports[step] = new
            return new

    def get(self, step: str) -> StepReport | None:
        with self._lock:
            return self._reports.get(step)

    def snapshot(self) -> list[StepReport]:
        with self._lock:
            return list(self._reports.values())


class RunHandle(Generic[Out]):
    """Returned by ``ActorSystem.run``; thread-safe.

    ``result(timeout)`` returns the output or raises the run's error; it only
    returns after the run's observers have been handed its final event.
    """

    def __init__(
        self,
        run_id: str,
        *,
        cancel: Callable[[], None],
        steps: StepLog,
        pause: Callable[[bool], None] = lambda _paused: None,
    ) -> None:
        self.id = run_id
        self._cancel = cancel
        self._pause = pause
        self._paused = False
        self._steps = steps
        self._done = NotifyingEvent()
        self._state = NodeState.PENDING
        self._output: Any = None
        self._error: BaseException | None = None

    @property
    def state(self) -> NodeState:
        return self._state

    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> Out:
        """The run's output; raises its error, or ResultTimeout past ``timeout`` seconds."""
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"result(timeout) must be None or a number >= 0, got {timeout!r}")
        if not self._done.wait(timeout):
            raise ResultTimeout(
                f"run {self.id} still {self._state} after waiting {timeout}s for its result"
            )
        if self._error is not None:
            raise self._error
        return self._output  # type: ignore[no-any-return]

    async def result_async(self, timeout: float | None = None) -> Out:
        """``result(timeout)`` for asyncio code: waits without blocking the running loop."""
        if not self._done.is_set():
            loop = asyncio.get_running_loop()
            ended: asyncio.Future[None] = loop.create_future()

            def wake() -> None:  # on the thread that resolves the run
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                    loop.call_soon_threadsafe(_settle, ended)

            remove = self._done.add_hook(wake)
            try:
                await asyncio.wait_for(ended, timeout)
            except TimeoutError:
                raise ResultTimeout(
                    f"run {self.id} still {self._state} after waiting {timeout}s for its result"
                ) from None
            finally:
                remove()
        return self.result(0)

    def __await__(self) -> Generator[Any, None, Out]:
        """``await handle``: the run's output (or its error), as ``result_async()``."""
        return self.result_async().__await__()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run ends (any final state); False on timeout."""
        return self._done.wait(timeout)

    def cancel(self) -> None:
        """Ask the run to stop: running tasks see ``current_step().cancel_requested``."""
        if not self._done.is_set():
            self._cancel()

    def pause(self) -> None:
        """Start no new step attempt until ``unpause`` (running ones finish)."""
        if not self._done.is_set():
            self._pause(True)

    def unpause(self) -> None:
        """Let a paused run start its held-back steps again."""
        if not self._done.is_set():
            self._pause(False)

    @property
    def paused(self) -> bool:
        return self._paused

    def _set_paused(self, paused: bool) -> None:
        self._paused = paused

    def steps(self) -> list[StepReport]:
        """A snapshot of every step seen so far, in the order they started."""
        return self._steps.snapshot()

    def _set_state(self, state: NodeState) -> None:
        self._state = state

    def _resolve(self, state: NodeState, output: Any, error: BaseException | None) -> None:
        self._state, self._output, self._error = state, output, error
        self._done.set()

    def __repr__(self) -> str:
        return f"<RunHandle {self.id} {self._state}>"


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():  # not already canceled (a timeout, or the waiter was canceled)
        future.set_result(None)
