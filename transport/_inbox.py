"""Where this node's incoming tells and asks go: the handler, in arrival order.

Who calls what: the I/O thread calls ``receive`` for each tell and ask that
arrives (``NodeProtocol``); API threads call ``submit`` for local ones
(``Transport``); the dispatch thread runs ``_deliver``, which calls the
handler and turns its exceptions into answers (or logs them, for a tell).

``receive`` offers a message to the handler's optional ``deliver_nowait``
first, on the I/O thread, but only while nothing its sender sent earlier still
waits for the dispatch thread (nor a job of this node itself, a barrier): the
I/O thread is the only remote submitter, so each sender's order is kept
either way. The dispatch thread serves senders round-robin (``_fair``): a peer
that floods this node waits behind its own messages, not everyone else's.

A tell or ask to a path the handler calls ``absent`` (no actor there) is
refused on the I/O thread too, unless a ``$``-path message (which may start an
actor there) of its sender or of this node still waits for the dispatch
thread: a peer flooding an unknown actor then costs a look-up per message and
never keeps the dispatch thread busy while other peers' messages wait.

A message the node cannot take from its sender (that sender's queue is full)
is refused: an ask is answered ``Overloaded``, a tell dropped, both counted
against the sender (``dispatch_full``). Refusals (``ActorNotFound``,
``ProtocolError``, ``Overloaded``) are answered without a traceback: they
say what was wrong with the message, not where the node was.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from functools import partial
from typing import Any

from transport._errors import ActorNotFound, Overloaded
from transport._fair import FairDispatcher
from transport._ratelog import RateLimitedLog
from transport._reply import MessageHandler, Reply
from transport._stats import Counters

__all__ = ["Inbox"]

log = logging.getLogger(__name__)

_SYSTEM_PREFIX = "$"  # the runtime's own paths: a message to one may start an actor


class Inbox:
    """Delivery of inbound tells and asks to the ``MessageHandler``. See the module docstring.

    Args:
        name: this node's name (in logs).
        handler: delivers to local actors; may define ``deliver_nowait``.
        dispatcher: the dispatch thread's queues (bounded per sender and in all).
        counters: where failed deliveries and suppressed log lines are counted.
    """

    def __init__(
        self, name: str, handler: MessageHandler, dispatcher: FairDispatcher, counters: Counters
    ) -> None:
        self._name = name
        self._handler = handler
        self._nowait: Callable[[str, str, Any, Reply | None], bool] | None = getattr(
            handler, "deliver_nowait", None
        )
        self.handoffs = 0  # (I/O thread) messages received and handed to another thread
        self._absent: Callable[[str], bool] | None = getattr(handler, "absent", None)
        # per sender: its ``$``-path messages queued for the dispatch thread
        self._system_queued: dict[str, int] = {}
        self._system_lock = threading.Lock()
        # (I/O thread) tells refused there, by (sender, target): how many; counted
        # and logged once per I/O turn (``settle``), not once per tell
        self._refused: dict[tuple[str, str], int] = {}
        self._dispatcher = dispatcher
        self._counters = counters
        self._log = counters.watch(RateLimitedLog(log))  # tells to a gone actor: a few lines
        self._errors = counters.watch(RateLimitedLog(log))  # a handler failing on every tell

    def receive(self, sender: str, target: str, message: Any, reply: Reply | None) -> bool:
        """(I/O thread) A received tell or ask: the fast path if it may, else queued.

        A tell has been offered to ``refuse_tell`` already (the caller does so
        before its replay window); an ask to no actor is answered here.
        False when ``sender`` has as many messages waiting as it may: the message
        was refused (an ask answered ``Overloaded``), and counted against it.
        """
        if reply is not None and self.refuses(sender, target):
            reply.error(ActorNotFound(self._not_found(target)))
            return True
        if self._nowait is not None and self._dispatcher.idle_for(sender):
            try:
                if self._nowait(sender, target, message, reply):
                    self.handoffs += 1
                    return True
            except Exception:
                log.exception(
                    "%s: deliver_nowait failed; message to %r dropped", self._name, target
                )
                self._counters.dropped("handler_failed")
                if reply is not None:
                    reply.error(RuntimeError("the receiving node failed to deliver the message"))
                return True
        if self.submit(sender, target, message, reply):
            self.handoffs += 1
            return True
        self._counters.dropped("dispatch_full", peer=sender)
        self._log.warning(
            "dispatch_full",
            "%s: %s from %s to %r refused: %d of its messages wait already",
            self._name,
            "ask" if reply is not None else "tell",
            sender,
            target,
            self._dispatcher.depth_of(sender),
            peer=sender,
        )
        if reply is not None:
            reply.error(Overloaded(f"{self._name} has too many messages from {sender} waiting"))
        return False

    def submit(
        self, sender: str, target: str, message: Any, reply: Reply | None, wait: float = 0.0
    ) -> bool:
        """(Any thread) Queue a delivery for the dispatch thread, waiting up to ``wait``
        seconds for room; False if there was none (or the worker is stopping)."""
        if not target.startswith(_SYSTEM_PREFIX):
            job = partial(self._deliver, sender, target, message, reply)
            return self._dispatcher.submit(sender, job, wait)
        with self._system_lock:
            self._system_queued[sender] = self._system_queued.get(sender, 0) + 1
        job = partial(self._deliver_system, sender, target, message, reply)
        if self._dispatcher.submit(sender, job, wait):
            return True
        self._system_done(sender)
        return False

    def refuse_tell(self, sender: str, target: str) -> bool:
        """(I/O thread) Refuse a tell to no actor now, if it may be (see ``refuses``);
        True if it was: it is counted at the end of the turn (``settle``)."""
        if not self.refuses(sender, target):
            return False
        key = (sender, target)
        self._refused[key] = self._refused.get(key, 0) + 1
        return True

    def settle(self) -> list[tuple[str, str, int]]:
        """(I/O thread, each turn) Count and log the tells refused meanwhile; returns
        how many, by sender and target."""
        if not self._refused:
            return []
        refused, self._refused = self._refused, {}
        by_sender: dict[str, tuple[int, str]] = {}
        for (sender, target), count in refused.items():
            by_sender[sender] = (by_sender.get(sender, (0, ""))[0] + count, target)
        for sender, (count, target) in by_sender.items():
            self._dropped_unknown(sender, count, target)
        return [(sender, target, count) for (sender, target), count in refused.items()]

    def refuses(self, sender: str, target: str) -> bool:
        """(I/O thread) Whether a message of ``sender`` to ``target`` would be refused
        here and now."""
        absent = self._absent
        if absent is None or target.startswith(_SYSTEM_PREFIX):
            return False
        queued = self._system_queued  # (empty but while a spawn may be on its way)
        if queued and (queued.get(sender) or queued.get(self._name)):  # or this node's own
            return False
        return absent(target)

    def _not_found(self, target: str) -> str:
        return f"no actor at {self._name}/{target}"

    def _deliver_system(self, sender: str, target: str, message: Any, reply: Reply | None) -> None:
        try:
            self._deliver(sender, target, message, reply)
        finally:
            self._system_done(sender)

    def _system_done(self, sender: str) -> None:
        with self._system_lock:
            left = self._system_queued[sender] - 1
            if left:
                self._system_queued[sender] = left
            else:
                del self._system_queued[sender]

    def _deliver(self, sender: str, target: str, message: Any, reply: Reply | None) -> None:
        """Runs on the dispatch thread: call the handler, turn its exceptions into answers."""
        try:
            self._handler.deliver(sender, target, message, reply)
        except ActorNotFound as exc:
            self._unknown_actor(sender, target, reply, exc)
        except Exception as exc:  # noqa: BLE001 - the handler's failure goes to the asker
            if reply is not None:
                reply.error(exc)
            else:
                self._errors.error(  # one line per target every 5 s, not one per tell
                    f"handler:{target}",
                    "%s: handler failed on a tell from %s to %r:\n%s",
                    self._name,
                    sender,
                    target,
                    "".join(traceback.format_exception(exc)),
                    peer=sender,
                )

    def _unknown_actor(
        self, sender: str, target: str, reply: Reply | None, exc: ActorNotFound
    ) -> None:
        """An ask is answered ``exc``; a tell is dropped, counted and (rate-limited) logged."""
        if reply is not None:
            reply.error(exc)
        else:
            self._dropped_unknown(sender, 1, target)

    def _dropped_unknown(self, sender: str, count: int, target: str) -> None:
        self._counters.dropped("unknown_actor", count, peer=sender)
        self._log.warning(
            "unknown_actor",
            "%s: %d tell(s) from %s to unknown actors dropped (the last to %r)",
            self._name,
            count,
            sender,
            target,
            peer=sender,
        )
