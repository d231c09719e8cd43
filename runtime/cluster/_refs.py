"""Refs that work the same for local and remote actors, and remote asks into pykka actors.

``ActorRefLike`` is what ``ActorSystem.ref(address)`` returns: ``tell`` and
``ask`` go straight into a pykka mailbox when the actor is on this node, and
through the transport otherwise. Messages to remote actors must be msgpack
values (refs travel as ``Address``).
"""

from __future__ import annotations

import concurrent.futures
import sys
from collections.abc import Callable
from typing import Any

import pykka
from pykka._envelope import Envelope  # pykka <5: the only way to ask without blocking a thread

from transport import ActorNotFound, Address, AskTimeout, Reply, Transport

__all__ = ["Ref", "ask_into"]


class _ReplyFuture(pykka.Future[Any]):
    """A pykka future that forwards the actor's answer to a transport ``Reply``.

    Based on ``pykka.Future``, not ``ThreadingFuture``: nothing ever waits on it,
    so it needs no condition variable (one per remote ask, on the I/O thread).
    """

    def __init__(self, reply: Reply) -> None:
        super().__init__()
        self._reply = reply

    def set(self, value: Any = None) -> None:
        self._reply.ok(value)

    def set_exception(self, exc_info: Any = None) -> None:
        error = exc_info[1] if isinstance(exc_info, tuple) else sys.exc_info()[1]
        self._reply.error(error or RuntimeError("actor failed without an exception"))


def ask_into(ref: pykka.ActorRef[Any], message: Any, reply: Reply) -> None:
    """Put ``message`` in ``ref``'s mailbox; its answer goes to ``reply`` (no thread waits)."""
    if not ref.is_alive():
        raise pykka.ActorDeadError(f"{ref} is not alive")
    ref.actor_inbox.put(Envelope(message, reply_to=_ReplyFuture(reply)))


class Ref:
    """A location-transparent handle on the actor at ``address`` (``node/path``)."""

    def __init__(
        self,
        address: Address,
        *,
        local: Callable[[], pykka.ActorRef[Any] | None],
        transport: Transport | None,
    ) -> None:
        self.address = address
        self._local = local
        self._transport = transport

    def __repr__(self) -> str:
        return f"<Ref {self.address}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ref) and other.address == self.address

    def __hash__(self) -> int:
        return hash(self.address)

    def tell(self, message: Any) -> None:
        """Send without waiting for an answer.

        Waits only for room when the transport's outbox (or, for an actor on
        this node, its dispatch queue) is full, then raises ``OutboxFull``;
        raises ActorNotFound/NodeDown when the target is known to be unreachable.
        """
        if self._transport is not None:
            self._transport.tell(self.address, message)
            return
        self._local_ref().tell(message)

    def ask_future(self, message: Any, *, timeout: float) -> concurrent.futures.Future[Any]:
        """Send and return a future of the answer (fails with AskTimeout past ``timeout``)."""
        if self._transport is not None:
            return self._transport.ask(self.address, message, timeout=timeout)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        ref = self._local_ref()
        pykka_future = ref.ask(message, block=False)
        try:
            future.set_result(pykka_future.get(timeout=timeout))
        except pykka.Timeout:
            future.set_exception(AskTimeout(f"no answer from {self.address} within {timeout}s"))
        except Exception as exc:  # noqa: BLE001 - the actor's error is the answer
            future.set_exception(exc)
        return future

    def ask(self, message: Any, *, timeout: float) -> Any:
        """Send and wait for the answer, at most ``timeout`` seconds."""
        future = self.ask_future(message, timeout=timeout)
        try:
            return future.result(timeout=timeout + 1.0)
        except concurrent.futures.TimeoutError as exc:
            raise AskTimeout(f"no answer from {self.address} within {timeout}s") from exc

    def _local_ref(self) -> pykka.ActorRef[Any]:
        ref = self._local()
        if ref is None:
            raise ActorNotFound(f"no actor at {self.address}")
        return ref
