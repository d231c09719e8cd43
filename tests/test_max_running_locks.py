"""max_running_steps and steps that wait for a lock a locked section of the same run holds."""

from __future__ import annotations

from typing import Any

import pytest

from runtime import ActorSystem, LockTimeout, parallel, task
from tests.support import wait_until

pytestmark = pytest.mark.timeout(30)


def _run(max_running: int | None) -> Any:
    with ActorSystem("cap-lock", max_running_steps=max_running) as system:

        def inside(ctx: Any) -> str:
            return "inside"

        def waits_for_the_lock(ctx: Any) -> str:
            lock = system.lock("db", lease=5)

            def held_by_the_section() -> bool:  # then acquire() below must queue
                try:
                    lock.acquire(timeout=0)
                except LockTimeout:
                    return True
                lock.release()
                return False

            assert wait_until(held_by_the_section, timeout=5), (
                "the locked section never took the lock"
            )
            lock.acquire(timeout=3)  # the section gives it back once `inside` ran
            lock.release()
            return "after"

        wf = parallel(task(inside).locked("db", lease=5), task(waits_for_the_lock))
        return system.run(wf, {}).result(timeout=10)


def test_without_a_bound_the_step_waiting_for_the_lock_gets_it() -> None:
    assert _run(None) == ("inside", "after")


def test_with_a_bound_the_step_waiting_for_the_lock_still_gets_it() -> None:
    """max_running_steps=1: `inside` (holding the lock) must not queue behind the step
    that waits for that lock, else neither ever ends (here: LockTimeout after 3 s)."""
    assert _run(1) == ("inside", "after")
