"""A RunHandle awaited from asyncio code: its output, its error, its timeout, a free loop.

A run held by a gate that only the awaiting coroutine's loop opens proves the
loop is not blocked: were ``await handle`` or ``system.run`` blocking it, the
gate would never open and the test would time out.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from runtime import ActorSystem, PermanentError, ResultTimeout, task
from tests.support import gate

pytestmark = pytest.mark.timeout(30)


async def _answer(ctx: Any) -> int:
    await asyncio.sleep(0)
    return 42


def test_await_a_handle_from_asyncio_run(system: ActorSystem) -> None:
    async def main() -> tuple[int, int]:
        handle = system.run(task(_answer), {})
        first = await handle
        return first, await handle  # a finished handle answers at once, again

    assert asyncio.run(main()) == (42, 42)


def test_awaiting_a_run_leaves_the_loop_free(system: ActorSystem) -> None:
    release, blocked = gate()

    async def main() -> str:
        handle = system.run(task(blocked), {})  # only starts the run: the step is held
        waiter = asyncio.ensure_future(handle.result_async(timeout=10))
        for _ in range(3):
            await asyncio.sleep(0)  # the loop turns while the waiter waits
        assert not waiter.done()
        release.set()
        return await waiter

    assert asyncio.run(main()) == "released"


def test_await_raises_the_runs_error(system: ActorSystem) -> None:
    def broken(ctx: Any) -> None:
        raise PermanentError("broken")

    async def main() -> None:
        await system.run(task(broken), {})

    with pytest.raises(PermanentError, match="broken"):
        asyncio.run(main())


def test_result_async_times_out_with_result_timeout_and_the_run_goes_on(
    system: ActorSystem,
) -> None:
    release, blocked = gate()
    handle = system.run(task(blocked), {})

    async def main() -> None:
        await handle.result_async(timeout=0.05)

    with pytest.raises(ResultTimeout, match="still Running"):
        asyncio.run(main())
    assert not handle.done()
    release.set()
    assert handle.result(5) == "released"


def test_a_waiter_canceled_before_the_run_ends_leaves_no_hook_behind(system: ActorSystem) -> None:
    release, blocked = gate()
    handle = system.run(task(blocked), {})

    async def gives_up() -> None:
        waiter = asyncio.ensure_future(handle.result_async())
        await asyncio.sleep(0)
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter

    asyncio.run(gives_up())
    release.set()
    assert handle.result(5) == "released"
    assert handle._done._hooks == []  # nothing left to call into a closed loop


def test_many_coroutines_await_one_run(system: ActorSystem) -> None:
    async def slow(ctx: Any) -> str:
        await asyncio.sleep(0.05)
        return "done"

    async def main() -> list[str]:
        handle = system.run(task(slow), {})
        return list(await asyncio.gather(*(handle.result_async(5) for _ in range(20))))

    assert asyncio.run(main()) == ["done"] * 20
