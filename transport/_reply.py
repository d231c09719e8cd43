"""What the runtime implements (``MessageHandler``), what it answers asks with (``Reply``),
the table of asks waiting for an answer (``PendingAsks``) and how their futures complete
(``AskFuture``, ``complete_ask``).

Errors crossing a node boundary travel as ``RemoteError`` (type name, message,
traceback text, node); ``ActorNotFound`` is the one error the asker gets back
as its own type, so "no such actor" is never confused with a failure inside
one. Local asks follow the same rule, so a ref behaves the same wherever its
actor lives.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from transport._errors import ActorNotFound, Overloaded, ProtocolError, RemoteError
from transport._workers import SerialWorker

__all__ = [
    "AskFuture",
    "CallbackReply",
    "InlineHandler",
    "MessageHandler",
    "PendingAsk",
    "PendingAsks",
    "Reply",
    "complete_ask",
    "error_from_wire",
    "error_to_wire",
    "new_id_counter",
    "type_name_of",
]

ACTOR_NOT_FOUND_NAME = "runtime.ActorNotFound"
OVERLOADED_NAMES = ("runtime.Overloaded", "transport.Overloaded")  # the second: older nodes

# Refusals: what was wrong is the message itself (no such actor, a malformed
# request, too much from this sender), not a place in this node's code. They
# are answered without a traceback: formatting one costs ~200 us per answer
# (linecache), which a peer sending thousands of bad asks would make us pay.
REFUSALS = (ActorNotFound, ProtocolError, Overloaded)


class Reply(Protocol):
    """The answer channel of one ask. Thread-safe; the first call wins, later calls are ignored.

    May be called from any thread and at any later time (e.g. by the actor that
    handles the message); calling it after the asker gave up is harmless.
    """

    def ok(self, value: Any) -> None:
        """Answer with ``value`` (must be msgpack-encodable for a remote asker)."""
        ...

    def error(self, exc: BaseException) -> None:
        """Answer with a failure; the asker gets ``RemoteError`` (or ``ActorNotFound``)."""
        ...


class MessageHandler(Protocol):
    """The runtime's side of the transport: delivers messages to local actors."""

    def deliver(self, sender: str, target: str, message: Any, reply: Reply | None) -> None:
        """Deliver ``message`` from node ``sender`` to the actor at path ``target``.

        Called on the transport's dispatch thread (never the I/O thread), one
        message at a time in arrival order: hand the message to a mailbox and
        return quickly. ``reply`` is None for a tell. Raising ``ActorNotFound``
        answers an ask with ``ActorNotFound``; raising anything else answers
        with a ``RemoteError`` carrying the traceback (for a tell it is logged).

        A handler may also define ``deliver_nowait(sender, target, message,
        reply) -> bool`` (see ``InlineHandler``): the transport then offers it
        each received message first, on the I/O thread, when no earlier message
        is still waiting for the dispatch thread (so arrival order is kept).
        """
        ...


class InlineHandler(Protocol):
    """The optional fast path of a ``MessageHandler`` (saves a thread hop per message)."""

    def deliver_nowait(self, sender: str, target: str, message: Any, reply: Reply | None) -> bool:
        """Deliver at once if that cannot block, else return False (``deliver`` gets it).

        Runs on the transport's I/O thread: it must not block, take a lock that
        user code may hold, or run user code (putting the message into an
        already-known mailbox is the intended use). It must not raise: the
        transport logs an exception as a dropped message.
        """
        ...

    def absent(self, target: str) -> bool:
        """(I/O thread, optional) True when no actor is at ``target`` and none can
        appear there but through a message to a ``$`` path (a spawn request).

        The transport then refuses a message to ``target`` at once, on the I/O
        thread (``ActorNotFound``; a tell is dropped and counted), whenever no
        ``$``-path message of its sender (nor of this node) still waits: a peer
        flooding a path where nothing lives costs a dict look-up per message,
        not a turn of the dispatch thread. Same rules as ``deliver_nowait``: no
        blocking, no lock user code may hold, never raises.
        """
        ...


def type_name_of(exc: BaseException) -> str:
    """Dotted public name of an exception type (``runtime.NodeDown``, ``ValueError``)."""
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def error_to_wire(exc: BaseException, node: str) -> RemoteError:
    """The ``RemoteError`` that carries ``exc`` (a RemoteError is passed on unchanged)."""
    if isinstance(exc, RemoteError):
        return exc
    if exc.__traceback__ is None or isinstance(exc, REFUSALS):
        text = ""
    else:
        text = "".join(traceback.format_exception(exc))
    return RemoteError(type_name_of(exc), str(exc), text, node)


def error_from_wire(error: RemoteError) -> BaseException:
    """What the asker's future fails with for an error reply."""
    if error.type_name == ACTOR_NOT_FOUND_NAME:
        return ActorNotFound(error.message)
    if error.type_name in OVERLOADED_NAMES:
        return Overloaded(f"{error.message} (on node {error.node})")
    return error


def new_id_counter() -> itertools.count[int]:
    """Message ids for one transport instance: random 62-bit start, then +1 (thread-safe next)."""
    return itertools.count(secrets.randbits(62) + 1)


class CallbackReply:
    """A ``Reply`` that forwards the first answer to ``answer(ok, value_or_error)``."""

    __slots__ = ("_answer", "_answered", "_lock")

    def __init__(self, answer: Callable[[bool, Any], None]) -> None:
        self._answer = answer
        self._answered = False
        self._lock = threading.Lock()

    def _claim(self) -> bool:
        with self._lock:
            if self._answered:
                return False
            self._answered = True
            return True

    def ok(self, value: Any) -> None:
        if self._claim():
            self._answer(True, value)

    def error(self, exc: BaseException) -> None:
        if self._claim():
            self._answer(False, exc)


class AskFuture(Future[Any]):
    """An ask's future: completed on whichever transport thread has the answer (the I/O
    thread for remote answers, saving a thread hop), while done-callbacks added before
    completion still run on the notify thread, never on the I/O thread."""

    def __init__(self, relay: SerialWorker) -> None:
        super().__init__()
        self._relay = relay

    def add_done_callback(self, fn: Callable[[Future[Any]], Any]) -> None:
        relay = self._relay

        def relayed(future: Future[Any]) -> None:
            if not relay.submit(partial(fn, future)):
                fn(future)  # the notifier has stopped (closing): run here rather than never

        super().add_done_callback(relayed)


def complete_ask(future: Future[Any], ok: bool, value: Any) -> None:
    """Complete an ask's ``future`` here, on any thread, the I/O thread included.

    Safe because every ask future is an ``AskFuture``: completing it wakes the
    waiters and relays done-callbacks to the notify thread, so no user code runs
    on the calling thread. A future completed already (a timeout racing an
    answer) keeps its first outcome.
    """
    try:
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
    except InvalidStateError:
        pass  # answered and expired at once: the first outcome stands


@dataclass(slots=True)
class PendingAsk:
    """An ask waiting for its answer from ``node`` until ``deadline`` (monotonic)."""

    future: Future[Any]
    node: str
    deadline: float


class PendingAsks:
    """Asks in flight, keyed by message id; bounded. Thread-safe.

    Entries leave the table exactly once: answered (``resolve``), expired
    (``expire``), failed with their node (``take_node``) or at close (``take_all``).
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: dict[int, PendingAsk] = {}
        self._lock = threading.Lock()

    def add(self, message_id: int, entry: PendingAsk) -> bool:
        """Register an ask; False if the table is full."""
        with self._lock:
            if len(self._entries) >= self._capacity:
                return False
            self._entries[message_id] = entry
            return True

    def resolve(self, message_id: int, node: str) -> PendingAsk | None:
        """Take the ask answered by ``node``; None if unknown or asked of another node."""
        with self._lock:
            entry = self._entries.get(message_id)
            if entry is None or entry.node != node:
                return None
            return self._entries.pop(message_id)

    def discard(self, message_id: int) -> PendingAsk | None:
        with self._lock:
            return self._entries.pop(message_id, None)

    def expire(self, now: float) -> list[PendingAsk]:
        """Take every ask whose deadline has passed."""
        with self._lock:
            due = [key for key, entry in self._entries.items() if entry.deadline <= now]
            return [self._entries.pop(key) for key in due]

    def take_node(self, node: str) -> list[PendingAsk]:
        """Take every ask waiting on ``node`` (it went down or left)."""
        with self._lock:
            keys = [key for key, entry in self._entries.items() if entry.node == node]
            return [self._entries.pop(key) for key in keys]

    def take_all(self) -> list[PendingAsk]:
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
            return entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
