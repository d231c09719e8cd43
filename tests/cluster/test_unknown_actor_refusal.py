"""Messages to a path where no actor lives are refused on the receiving node's I/O
thread, except while a spawn request of the same sender may still start one there."""

from __future__ import annotations

import threading
import time
from typing import Any

import pykka
import pytest

from runtime import ActorSystem
from runtime.cluster import SYSTEM_PATH
from tests.support import wait_until
from transport import ActorNotFound, Address

pytestmark = pytest.mark.timeout(60)

constructing = threading.Event()


class SlowToStart(pykka.ThreadingActor):
    """Its constructor runs on the receiving node's dispatch thread (a spawn request)
    and takes a while: messages sent right after the request arrive meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        constructing.set()
        time.sleep(0.5)  # slow start-up work, not a wait for an event
        self.got: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "got?":
            return self.got
        self.got.append(message)
        return None


def test_a_tell_right_behind_a_spawn_request_reaches_the_new_actor() -> None:
    with ActorSystem("b", listen="tcp://127.0.0.1:0", plaintext=True) as b:
        name = b.register_actor(SlowToStart)
        with ActorSystem("a", listen="tcp://127.0.0.1:0", plaintext=True, join=[b.address]) as a:
            assert a.cluster is not None
            transport = a.cluster.transport
            request = {"op": "spawn", "class": name, "args": [], "name": "slow"}
            transport.tell(Address("b", SYSTEM_PATH), request)  # a tell: nobody waits
            transport.tell(Address("b", "slow"), "first")
            transport.tell(Address("b", "slow"), "second")
            assert constructing.wait(20)
            assert a.ref("b/slow").ask("got?", timeout=20) == ["first", "second"]
            assert b.stats().frames_dropped.get("unknown_actor", 0) == 0


def test_tells_and_asks_to_no_actor_are_refused_and_counted_against_their_sender() -> None:
    with (
        ActorSystem("b", listen="tcp://127.0.0.1:0", plaintext=True) as b,
        ActorSystem("a", listen="tcp://127.0.0.1:0", plaintext=True, join=[b.address]) as a,
    ):
        nobody = a.ref("b/nobody")
        for n in range(50):
            nobody.tell(n)
        with pytest.raises(ActorNotFound, match="no actor at b/nobody"):
            nobody.ask("anyone?", timeout=20)
        assert wait_until(
            lambda: b.stats().dropped_by_peer.get("a", {}).get("unknown_actor") == 50,
            timeout=20,
        ), b.stats().dropped_by_peer
