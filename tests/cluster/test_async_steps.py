"""Async steps on another node: the peer's node actor awaits them, and a cancel reaches them.

Both members live in this process (loopback, plaintext), so the tasks here are
module-level (the peer finds them by ``module:qualname``) and share events.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from runtime import ActorSystem, Canceled, current_step, task

pytestmark = pytest.mark.timeout(30)

ENTERED = threading.Event()
CANCELED = threading.Event()


async def remote_fetch(ctx: dict[str, Any]) -> str:
    await asyncio.sleep(0)
    ctx["seen_by"] = current_step().step
    return "fetched remotely"


async def remote_sleeper(ctx: dict[str, Any]) -> str:
    ENTERED.set()
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        CANCELED.set()
        raise
    return "slept"


def test_an_async_step_runs_on_a_peer_and_a_cancel_reaches_its_coroutine(
    coordinator_and_peer: tuple[ActorSystem, ActorSystem],
) -> None:
    coordinator, peer = coordinator_and_peer
    peer.register_task(remote_fetch)
    peer.register_task(remote_sleeper)
    handle = coordinator.run(
        task(remote_fetch, on="peer").then(task(lambda ctx: ctx["seen_by"])), {}
    )
    assert handle.result(10) == "remote_fetch"
    assert handle.steps()[0].node == "peer"

    ENTERED.clear()
    CANCELED.clear()
    held = coordinator.run(task(remote_sleeper, on="peer"), {})
    assert ENTERED.wait(10)
    held.cancel()
    with pytest.raises(Canceled):
        held.result(10)
    assert CANCELED.wait(10)
