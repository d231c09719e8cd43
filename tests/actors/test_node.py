"""The node actor that runs one step: whatever its task raises or swallows, the step ends right.

A task raising ``SystemExit`` or ``KeyboardInterrupt`` fails its step with a
``PermanentError`` (the original is its ``__cause__``) and no other actor stops;
a task that swallows the cancel request still ends Canceled.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from runtime import ActorSystem, Canceled, PermanentError, task
from tests.support import gate

pytestmark = pytest.mark.timeout(30)


def test_a_task_swallowing_exceptions_cannot_turn_a_cancel_into_success(
    system: ActorSystem,
) -> None:
    started = threading.Event()
    release, _ = gate()

    def stubborn(ctx: Any) -> str:
        started.set()
        try:
            release.wait(10)
        except Exception:  # a bare except Exception must not hide the cancel
            return "swallowed"
        return "done"

    handle = system.run(task(stubborn), {})
    assert started.wait(5)
    handle.cancel()
    release.set()
    with pytest.raises(Canceled):
        handle.result(5)


def test_system_exit_in_a_task_fails_the_step_with_a_permanent_error_and_the_system_keeps_working(
    system: ActorSystem,
) -> None:
    def exits(ctx: Any) -> None:
        raise SystemExit(3)

    def interrupts(ctx: Any) -> None:
        raise KeyboardInterrupt

    # Issue 9: re-raised as they were, SystemExit(3) ended the caller's process with status 3.
    with pytest.raises(PermanentError, match="raised SystemExit: 3") as exited:
        system.run(task(exits), {}).result(5)
    assert isinstance(exited.value.__cause__, SystemExit)
    assert exited.value.__cause__.code == 3
    with pytest.raises(PermanentError, match="raised KeyboardInterrupt") as interrupted:
        system.run(task(interrupts), {}).result(5)
    assert isinstance(interrupted.value.__cause__, KeyboardInterrupt)
    assert system.run(task(lambda c: "alive"), {}).result(5) == "alive"
