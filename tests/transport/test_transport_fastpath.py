"""The two thread hops the transport saves: inline delivery and futures completed on the I/O thread.

Both must keep the rules: user callbacks never run on the I/O thread, and a
handler's fast path sees messages in arrival order, falling back to ``deliver``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from conftest import LOOPBACK, RecordingHandler

from transport import Address, Reply, Transport

MakeTransport = Callable[..., Transport]


class FastHandler(RecordingHandler):
    """Takes ``fast`` messages on the I/O thread; everything else goes to ``deliver``."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.fast: list[tuple[Any, str]] = []

    def deliver_nowait(self, sender: str, target: str, message: Any, reply: Reply | None) -> bool:
        if target != "fast":
            return False
        self.fast.append((message, threading.current_thread().name))
        if reply is not None:
            reply.ok(message)
        return True


def _pair(make_transport: MakeTransport, handler: Any) -> tuple[Transport, Transport]:
    server = make_transport("p1", handler)
    client = make_transport("test", listen=LOOPBACK)
    assert server.address is not None
    client.join([server.address], timeout=10)
    return client, server


def test_the_fast_path_runs_on_the_io_thread_in_order_and_falls_back(
    make_transport: MakeTransport,
) -> None:
    handler = FastHandler("p1")
    client, _ = _pair(make_transport, handler)
    futures = [client.ask(Address("p1", "fast"), index, timeout=5) for index in range(50)]
    assert [future.result(6) for future in futures] == list(range(50))
    assert [message for message, _ in handler.fast] == list(range(50))
    assert {thread for _, thread in handler.fast} == {"actorflow-io-p1"}
    assert client.ask(Address("p1", "echo"), "slow", timeout=5).result(6) == ["p1", "slow"]


def test_done_callbacks_of_remote_asks_run_on_the_notify_thread(
    make_transport: MakeTransport,
) -> None:
    client, _ = _pair(make_transport, RecordingHandler("p1"))
    ran = threading.Event()
    threads: list[str] = []

    def callback(_: Any) -> None:
        threads.append(threading.current_thread().name)
        ran.set()

    future = client.ask(Address("p1", "hold"), "never answered", timeout=0.3)
    future.add_done_callback(callback)
    assert ran.wait(5)
    assert threads == ["actorflow-notify-test"]
    answered = client.ask(Address("p1", "echo"), 1, timeout=5)
    answered.result(6)
    late = threading.Event()
    answered.add_done_callback(lambda _: late.set())  # done already: still runs, relayed
    assert late.wait(5)
